"""The ``llm`` judge against a real OpenAI-compatible HTTP server on 127.0.0.1.

The server runs in a thread, answers from the prompt (priority 4 → done after 45 s, anything
else → dismiss) and misbehaves on request: each name pushed onto ``server.script`` shapes one
answer, in order.
"""

from __future__ import annotations

import json
import math
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydantic
import pytest

from oo_ml.errors import ConfigurationError, NotFoundError, ValidationError
from oo_ml.settings import Settings
from oo_ml.sim.judges import Judgement, JudgeRequest, RuleJudge, make_judge
from oo_ml.sim.llm_judge import (
    FALLBACK,
    MAX_BACKOFF_SECONDS,
    SYSTEM_PROMPT,
    JudgeError,
    LLMJudge,
    backoff_delay,
    format_judgement,
    parse_judgement,
)
from oo_ml.sim.persona import shipped_personas
from oo_ml.sim.report import judge_text
from oo_ml.sim.runner import SimConfig, SimRunner
from oo_ml.sim.tasks import SimTask
from oo_ml.store.memory import MemoryStore
from oo_ml.types import Action, Context

DONE_45 = Judgement(Action.DONE, 45_000)
DISMISSED = Judgement(Action.DISMISS, None)

# Contents the server can send instead of the right answer, each refused by the parser.
INVALID_CONTENT = {
    "not_json": "{action: done",
    "wrong_action": '{"action": "maybe", "dwell_seconds": null}',
    "negative_dwell": '{"action": "done", "dwell_seconds": -5}',
    "nan_dwell": '{"action": "done", "dwell_seconds": NaN}',
    "dwell_over_six_hours": '{"action": "done", "dwell_seconds": 21601}',
    "extra_key": '{"action": "dismiss", "dwell_seconds": null, "reason": "busy"}',
    "prose_around_json": 'Sure! {"action": "dismiss", "dwell_seconds": null}',
    "empty": "",
}


def make_request(priority: int = 4, step: int = 0) -> JudgeRequest:
    task = SimTask("u1-t1", "Draft the quarterly report", "work", "todoist", priority, 2.0)
    return JudgeRequest(shipped_personas()["morning-focused"], Context(9, 1), task, step)


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@dataclass
class FakeLLM:
    """State of the fake endpoint: what it received and how it will answer next."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    script: deque[str] = field(default_factory=deque)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    together: threading.Barrier | None = None
    """When set, every request waits until that many are in flight at once (or 10 s)."""
    met: list[bool] = field(default_factory=list)
    """For each request that waited: whether the others came."""
    refuses_json_mode: bool = False
    """When set, a request with ``response_format`` is refused with a 400, as LM Studio
    refuses ``json_object``."""

    def right_answer(self, body: dict[str, Any]) -> str:
        prompt = next(m["content"] for m in body["messages"] if m["role"] == "user")
        if "priority 4 of 4" in prompt:
            return '{"action": "done", "dwell_seconds": 45}'
        return '{"action": "dismiss", "dwell_seconds": null}'


class Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        fake = self.server.fake
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with fake.lock:
            fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            behaviour = fake.script.popleft() if fake.script else "ok"
        refusal = self.refusal(fake, body, behaviour)
        if refusal is not None:
            self.send(*refusal)
            return
        content: str | None = fake.right_answer(body)
        if fake.together is not None:
            try:
                fake.together.wait(10)
            except threading.BrokenBarrierError:
                fake.met.append(False)
            else:
                fake.met.append(True)
        if behaviour == "sleep":  # past the client's timeout, then hang up without answering
            fake.release.wait(10)
            return
        if behaviour == "fenced":
            content = f"```json\n{content}\n```"
        elif behaviour == "thinking":
            content = f"<think>\nThe person weighs the task.\n</think>\n\n{content}"
        elif behaviour == "null_content":
            content = None
        elif behaviour in INVALID_CONTENT:
            content = INVALID_CONTENT[behaviour]
        message = {"role": "assistant", "content": content}
        self.send(200, {"object": "chat.completion", "choices": [{"index": 0, "message": message}]})

    def refusal(
        self, fake: FakeLLM, body: dict[str, Any], behaviour: str
    ) -> tuple[int, object, dict[str, str]] | None:
        """(status, payload, headers) of an answer that is not a chat completion, if any."""
        if self.path != "/v1/chat/completions":
            return 404, {"error": {"message": f"no route {self.path}"}}, {}
        if fake.refuses_json_mode and "response_format" in body:
            message = "'response_format.type' must be 'json_schema' or 'text'"
            return 400, {"error": {"message": message}}, {}
        errors: dict[str, tuple[int, object, dict[str, str]]] = {
            "500": (500, {"error": {"message": "overloaded"}}, {}),
            "503": (503, {"error": {"message": "overloaded"}}, {}),
            "429": (429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}),
            "401": (401, {"error": {"message": "invalid api key"}}, {}),
            "400": (400, {"error": {"message": "model 'sim-model' does not support tools"}}, {}),
            "not_a_completion": (200, {"object": "error"}, {}),
        }
        return errors.get(behaviour)


class FakeServer(ThreadingHTTPServer):
    fake: FakeLLM


@pytest.fixture
def server() -> Iterator[FakeLLM]:
    httpd = FakeServer(("127.0.0.1", 0), Handler)
    httpd.fake = FakeLLM(url=f"http://127.0.0.1:{httpd.server_address[1]}/v1")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield httpd.fake
    finally:
        httpd.fake.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.fixture
def new_judge(server: FakeLLM) -> Iterator[Callable[..., LLMJudge]]:
    """Builds judges against ``server`` (no backoff unless asked) and closes them afterwards."""
    judges: list[LLMJudge] = []

    def build(**options: Any) -> LLMJudge:
        options = {"backoff_s": 0.0, "timeout_s": 5.0, **options}
        judge = LLMJudge(options.pop("base_url", server.url), "sim-model", **options)
        judges.append(judge)
        return judge

    yield build
    for judge in judges:
        judge.close()


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A localhost port that refuses connections (bound, never listening) while the test runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# --- the parser ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"action": "done", "dwell_seconds": 45}', DONE_45),
        ('{"action": "done", "dwell_seconds": 12.3456}', Judgement(Action.DONE, 12_346)),
        ('{"action": "done", "dwell_seconds": 0}', Judgement(Action.DONE, 0)),
        ('{"action": "done", "dwell_seconds": 21600}', Judgement(Action.DONE, 21_600_000)),
        ('{"action": "done", "dwell_seconds": null}', Judgement(Action.DONE, None)),
        ('{"action": "done"}', Judgement(Action.DONE, None)),
        ('{"action": "snooze", "dwell_seconds": null}', Judgement(Action.SNOOZE, None)),
        ('{"action": "dismiss"}', DISMISSED),
        ('  \n{"action": "dismiss"}\n', DISMISSED),
        ('```json\n{"action": "done", "dwell_seconds": 45}\n```', DONE_45),
        ('```\n{"action": "done", "dwell_seconds": 45}\n```', DONE_45),
        ('<think>\nUrgent.\n</think>\n\n{"action": "done", "dwell_seconds": 45}', DONE_45),
        ('<think>Low priority.</think>```json\n{"action": "dismiss"}\n```', DISMISSED),
        ('<think></think>{"action": "dismiss"}', DISMISSED),
    ],
)
def test_parser_accepts_a_bare_or_fenced_json_object(reply: str, expected: Judgement) -> None:
    assert parse_judgement(reply) == expected


@pytest.mark.parametrize(
    ("reply", "field", "message"),
    [
        ("", "reply", "is empty"),
        ("{action: done", "reply", "is not JSON"),
        ('Sure! {"action": "dismiss"}', "reply", "is not JSON"),
        ('{"action": "dismiss"} Hope that helps!', "reply", "is not JSON"),
        ('```json\n{"action": "dismiss"}\n```\nDone.', "reply", "is not JSON"),
        ("<think>It is late; skip it.</think>", "reply", "is empty"),
        ('<think>Skip it. {"action": "dismiss"}', "reply", "is not JSON"),
        ('{"action": "dismiss"}<think>Skip it.</think>', "reply", "is not JSON"),
        ('Hmm. <think>Skip it.</think>{"action": "dismiss"}', "reply", "is not JSON"),
        ('<think>a</think><think>b</think>{"action": "dismiss"}', "reply", "is not JSON"),
        ('["done", 45]', "reply", "must be a JSON object, got list"),
        ('{"action": "dismiss", "reason": "busy"}', "reply", "unexpected keys ['reason']"),
        ('{"action": "done", "action": "dismiss"}', "reply", "duplicate key 'action'"),
        ('{"dwell_seconds": 4}', "action", "must be one of done, snooze, dismiss, got None"),
        ('{"action": "Done"}', "action", "got 'Done'"),
        ('{"action": 1}', "action", "got 1"),
        ('{"action": "done", "dwell_seconds": -5}', "dwell_seconds", "between 0 and 21600"),
        ('{"action": "done", "dwell_seconds": 21601}', "dwell_seconds", "between 0 and 21600"),
        ('{"action": "done", "dwell_seconds": 1e400}', "dwell_seconds", "between 0 and 21600"),
        ('{"action": "done", "dwell_seconds": 1' + "0" * 400 + "}", "dwell_seconds", "between"),
        ('{"action": "done", "dwell_seconds": NaN}', "reply", "NaN is not a number"),
        ('{"action": "done", "dwell_seconds": Infinity}', "reply", "Infinity is not a number"),
        ('{"action": "done", "dwell_seconds": "45"}', "dwell_seconds", "must be a number, got str"),
        ('{"action": "done", "dwell_seconds": true}', "dwell_seconds", "got bool"),
        ('{"action": "dismiss", "dwell_seconds": 0}', "dwell_seconds", "must be null for dismiss"),
        ('{"action": "snooze", "dwell_seconds": 3}', "dwell_seconds", "must be null for snooze"),
        (" " * 70_000, "reply", "longer than 65536 characters"),
    ],
)
def test_parser_refuses_anything_but_one_valid_judgement(
    reply: str, field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_judgement(reply)
    assert caught.value.field == field
    assert message in caught.value.message


@pytest.mark.parametrize(
    "judgement",
    [DONE_45, Judgement(Action.DONE, 1), Judgement(Action.DONE, None), DISMISSED, FALLBACK],
)
def test_canonical_reply_parses_back_to_the_same_judgement(judgement: Judgement) -> None:
    assert parse_judgement(format_judgement(judgement)) == judgement


def test_backoff_doubles_honours_retry_after_and_is_capped() -> None:
    assert [backoff_delay(i, 0.25) for i in range(4)] == [0.25, 0.5, 1.0, 2.0]
    assert backoff_delay(0, 0.25, retry_after=4.0) == 4.0
    assert backoff_delay(3, 0.25, retry_after=0.0) == 2.0
    assert backoff_delay(50, 1.0) == MAX_BACKOFF_SECONDS
    assert backoff_delay(0, 0.0, retry_after=1e9) == MAX_BACKOFF_SECONDS


# --- talking to the server ----------------------------------------------------------------


def test_answers_from_the_prompt(server: FakeLLM, new_judge: Callable[..., LLMJudge]) -> None:
    judge = new_judge()
    assert judge.name == "llm"
    assert judge.judge(make_request(priority=4), rng()) == DONE_45
    assert judge.judge(make_request(priority=1), rng()) == DISMISSED
    assert len(server.requests) == 2
    assert judge.stats.calls == 2
    assert (judge.stats.invalid_replies, judge.stats.retries, judge.stats.failures) == (0, 0, 0)


def test_sends_a_chat_completion_request_with_the_prompt(
    server: FakeLLM, new_judge: Callable[..., LLMJudge]
) -> None:
    request = make_request()
    new_judge(temperature=0.0).judge(request, rng())
    (sent,) = server.requests
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"] == {
        "model": "sim-model",
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": request.prompt()},
        ],
        "temperature": 0.0,
        "response_format": {"type": "json_object"},
    }


def test_json_mode_can_be_turned_off(server: FakeLLM, new_judge: Callable[..., LLMJudge]) -> None:
    new_judge(json_mode=False).judge(make_request(), rng())
    assert "response_format" not in server.requests[0]["body"]


@pytest.mark.parametrize("kind", ["fenced", "thinking"])
def test_fenced_or_thought_through_reply_is_accepted(
    kind: str, server: FakeLLM, new_judge: Callable[..., LLMJudge]
) -> None:
    server.script.append(kind)
    judge = new_judge()
    assert judge.judge(make_request(), rng()) == DONE_45
    assert judge.stats.invalid_replies == 0


def test_a_server_that_refuses_json_mode_is_asked_without_it_from_then_on(
    server: FakeLLM, new_judge: Callable[..., LLMJudge]
) -> None:
    server.refuses_json_mode = True
    judge = new_judge(retries=0)
    assert judge.json_mode
    assert judge.judge(make_request(), rng()) == DONE_45
    assert judge.judge(make_request(priority=1), rng()) == DISMISSED
    assert ["response_format" in r["body"] for r in server.requests] == [True, False, False]
    assert not judge.json_mode
    # Neither the refusal nor the second asking is a retry, an invalid reply or a failure.
    assert (judge.stats.retries, judge.stats.invalid_replies, judge.stats.failures) == (0, 0, 0)


def test_another_bad_request_is_still_a_configuration_error(
    server: FakeLLM, new_judge: Callable[..., LLMJudge]
) -> None:
    server.script.append("400")
    judge = new_judge(retries=3)
    with pytest.raises(ConfigurationError, match=r"answered 400 .*does not support tools"):
        judge.judge(make_request(), rng())
    assert len(server.requests) == 1
    assert judge.json_mode


def test_authorization_header_carries_the_key(
    server: FakeLLM, new_judge: Callable[..., LLMJudge]
) -> None:
    new_judge(api_key="sk-local-test-key").judge(make_request(), rng())
    new_judge().judge(make_request(), rng())
    with_key, without_key = (r["headers"] for r in server.requests)
    assert with_key["Authorization"] == "Bearer sk-local-test-key"
    assert "Authorization" not in without_key


def test_proxy_environment_is_ignored(
    server: FakeLLM,
    new_judge: Callable[..., LLMJudge],
    dead_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = f"http://127.0.0.1:{dead_port}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    # The environment does capture a client that trusts it...
    with httpx.Client(timeout=5.0) as trusting, pytest.raises(httpx.TransportError):
        trusting.post(f"{server.url}/chat/completions", json={})
    assert server.requests == []
    # ...but not the judge.
    judge = new_judge(retries=0)
    assert judge.judge(make_request(), rng()) == DONE_45
    assert len(server.requests) == 1


@pytest.mark.parametrize("kind", [*INVALID_CONTENT, "null_content"])
def test_invalid_reply_is_counted_and_retried_with_the_reason(
    kind: str, server: FakeLLM, new_judge: Callable[..., LLMJudge]
) -> None:
    server.script.append(kind)
    judge = new_judge(retries=2)
    assert judge.judge(make_request(), rng()) == DONE_45
    assert (judge.stats.invalid_replies, judge.stats.retries, judge.stats.failures) == (1, 1, 0)
    first, second = (r["body"]["messages"] for r in server.requests)
    assert second[:2] == first
    assert second[2]["role"] == "assistant"
    assert second[3]["role"] == "user"
    assert second[3]["content"].startswith("That reply was refused (")


def test_replies_invalid_on_every_attempt_fall_back_to_dismiss(
    server: FakeLLM, new_judge: Callable[..., LLMJudge]
) -> None:
    server.script.extend(["not_json", "wrong_action", "nan_dwell"])
    judge = new_judge(retries=2)
    assert judge.judge(make_request(), rng()) == FALLBACK == DISMISSED
    assert (judge.stats.invalid_replies, judge.stats.retries, judge.stats.failures) == (3, 2, 1)
    assert len(server.requests) == 3


@pytest.mark.parametrize("statuses", [["500"], ["429"], ["503", "429", "500"]])
def test_server_errors_and_rate_limits_are_retried(
    statuses: list[str], server: FakeLLM, new_judge: Callable[..., LLMJudge]
) -> None:
    server.script.extend(statuses)
    judge = new_judge(retries=3, backoff_s=0.01)
    assert judge.judge(make_request(), rng()) == DONE_45
    assert judge.stats.retries == len(statuses)
    assert (judge.stats.invalid_replies, judge.stats.failures) == (0, 0)
    assert len(server.requests) == len(statuses) + 1


def test_an_answer_that_is_not_a_chat_completion_is_retried_but_not_an_invalid_reply(
    server: FakeLLM, new_judge: Callable[..., LLMJudge]
) -> None:
    server.script.append("not_a_completion")
    judge = new_judge()
    assert judge.judge(make_request(), rng()) == DONE_45
    assert (judge.stats.invalid_replies, judge.stats.retries) == (0, 1)


def test_server_errors_on_every_attempt_fall_back_to_dismiss(
    server: FakeLLM, new_judge: Callable[..., LLMJudge]
) -> None:
    server.script.extend(["500", "500"])
    judge = new_judge(retries=1)
    assert judge.judge(make_request(), rng()) == FALLBACK
    assert (judge.stats.retries, judge.stats.failures, judge.stats.invalid_replies) == (1, 1, 0)


def test_a_refused_request_is_a_configuration_error_and_not_retried(
    server: FakeLLM, new_judge: Callable[..., LLMJudge]
) -> None:
    server.script.append("401")
    judge = new_judge(retries=3)
    with pytest.raises(ConfigurationError, match=r"answered 401 .*invalid api key"):
        judge.judge(make_request(), rng())
    assert len(server.requests) == 1
    assert judge.stats.retries == 0


def test_a_wrong_base_url_is_a_configuration_error(
    server: FakeLLM, new_judge: Callable[..., LLMJudge]
) -> None:
    judge = new_judge(base_url=server.url.removesuffix("/v1") + "/v2")
    with pytest.raises(ConfigurationError, match="answered 404"):
        judge.judge(make_request(), rng())


def test_a_timeout_is_retried(server: FakeLLM, new_judge: Callable[..., LLMJudge]) -> None:
    server.script.append("sleep")
    judge = new_judge(timeout_s=0.2, retries=1)
    assert judge.judge(make_request(), rng()) == DONE_45
    assert (judge.stats.retries, judge.stats.failures) == (1, 0)


def test_timeouts_on_every_attempt_fall_back_to_dismiss(
    server: FakeLLM, new_judge: Callable[..., LLMJudge]
) -> None:
    server.script.extend(["sleep", "sleep"])
    judge = new_judge(timeout_s=0.2, retries=1)
    assert judge.judge(make_request(), rng()) == FALLBACK
    assert (judge.stats.retries, judge.stats.failures, judge.stats.invalid_replies) == (1, 1, 0)
    assert len(server.requests) == 2


def test_an_unreachable_endpoint_falls_back_to_dismiss(
    new_judge: Callable[..., LLMJudge], dead_port: int
) -> None:
    judge = new_judge(base_url=f"http://127.0.0.1:{dead_port}/v1", retries=1)
    assert judge.judge(make_request(), rng()) == FALLBACK
    assert (judge.stats.retries, judge.stats.failures) == (1, 1)


def test_too_many_failures_in_a_row_raise(
    server: FakeLLM, new_judge: Callable[..., LLMJudge]
) -> None:
    judge = new_judge(retries=0, max_consecutive_failures=2)
    server.script.extend(["not_json", "ok", "500"])
    assert judge.judge(make_request(), rng()) == FALLBACK
    assert judge.judge(make_request(), rng()) == DONE_45  # a success resets the streak
    assert judge.judge(make_request(), rng()) == FALLBACK
    server.script.append("wrong_action")
    with pytest.raises(JudgeError, match="2 judgements in a row failed"):
        judge.judge(make_request(), rng())
    assert judge.stats.failures == 3


# --- the cache ----------------------------------------------------------------------------


def test_a_repeat_is_answered_from_the_cache(
    server: FakeLLM, new_judge: Callable[..., LLMJudge], tmp_path: Path
) -> None:
    judge = new_judge(cache_dir=tmp_path)
    assert judge.judge(make_request(), rng()) == DONE_45
    assert judge.judge(make_request(), rng()) == DONE_45
    assert len(server.requests) == 1
    assert (judge.stats.calls, judge.stats.cache_hits) == (2, 1)
    (entry,) = tmp_path.iterdir()
    assert len(entry.stem) == 64
    assert json.loads(entry.read_text()) == {"action": "done", "dwell_seconds": 45.0}


def test_a_new_judge_with_the_same_cache_dir_hits_the_cache(
    server: FakeLLM, new_judge: Callable[..., LLMJudge], tmp_path: Path
) -> None:
    new_judge(cache_dir=tmp_path).judge(make_request(), rng())
    rerun = new_judge(cache_dir=tmp_path)
    assert rerun.judge(make_request(), rng()) == DONE_45
    assert rerun.stats.cache_hits == 1
    assert len(server.requests) == 1


def test_the_cache_key_covers_the_prompt_model_and_temperature(
    server: FakeLLM, new_judge: Callable[..., LLMJudge], tmp_path: Path
) -> None:
    new_judge(cache_dir=tmp_path).judge(make_request(priority=4), rng())
    assert new_judge(cache_dir=tmp_path).judge(make_request(priority=1), rng()) == DISMISSED
    new_judge(cache_dir=tmp_path, temperature=0.7).judge(make_request(priority=4), rng())
    other_model = LLMJudge(server.url, "other-model", cache_dir=tmp_path)
    with other_model:
        other_model.judge(make_request(priority=4), rng())
    assert len(server.requests) == 4
    assert len(list(tmp_path.iterdir())) == 4


def test_failures_are_not_cached(
    server: FakeLLM, new_judge: Callable[..., LLMJudge], tmp_path: Path
) -> None:
    server.script.append("not_json")
    judge = new_judge(cache_dir=tmp_path, retries=0)
    assert judge.judge(make_request(), rng()) == FALLBACK
    assert list(tmp_path.iterdir()) == []
    assert judge.judge(make_request(), rng()) == DONE_45
    assert (judge.stats.cache_hits, len(server.requests)) == (0, 2)


def test_a_corrupt_cache_entry_is_ignored_and_rewritten(
    server: FakeLLM, new_judge: Callable[..., LLMJudge], tmp_path: Path
) -> None:
    new_judge(cache_dir=tmp_path).judge(make_request(), rng())
    (entry,) = tmp_path.iterdir()
    entry.write_text('{"action": "done", "dwell_sec')
    judge = new_judge(cache_dir=tmp_path)
    assert judge.judge(make_request(), rng()) == DONE_45
    assert (judge.stats.cache_hits, len(server.requests)) == (0, 2)
    assert parse_judgement(entry.read_text()) == DONE_45
    assert [p.name for p in tmp_path.iterdir()] == [entry.name]  # no temporary files left


def test_cache_dir_is_created_on_first_write(
    new_judge: Callable[..., LLMJudge], tmp_path: Path
) -> None:
    cache = tmp_path / "nested" / "llm"
    new_judge(cache_dir=cache).judge(make_request(), rng())
    assert len(list(cache.iterdir())) == 1


# --- in a simulation -----------------------------------------------------------------------


def simulate(judge: LLMJudge, concurrency: int, **options: Any) -> tuple[Any, list[Any]]:
    """A small llm-judged run in memory: the run and its events without the run id."""
    store = MemoryStore()
    config = SimConfig(("egreedy-v1", "ucb-ix1"), ("morning-focused", "quick-wins"), 4, 3,
                       judge="llm", seed=2)  # fmt: skip
    run = SimRunner(store, judge=judge, judge_concurrency=concurrency, **options).run(config)
    events = store.read(lambda txn: txn.sim_events(run.run_id))
    return run, [e._replace(run_id="-") for e in events]


def test_a_simulation_asks_a_slow_judge_about_a_whole_step_at_once(
    server: FakeLLM, new_judge: Callable[..., LLMJudge]
) -> None:
    # Eight tips a step (two policies × four users); the server holds every request until
    # four are in flight together: it only answers if the runner really asks four at once.
    server.together = threading.Barrier(4)
    run, events = simulate(new_judge(), concurrency=4)
    assert run.status == "done", run.error
    assert len(events) == 2 * 4 * 3
    assert server.met == [True] * len(events)


def test_a_run_records_what_its_judge_did_and_only_its_own_share(
    server: FakeLLM, new_judge: Callable[..., LLMJudge]
) -> None:
    judge = new_judge()
    server.script.extend(["not_json", "ok", "503"])  # one invalid reply, one server error
    first, events = simulate(judge, concurrency=1)
    assert first.summary is not None
    assert first.summary["judge"] == {
        "calls": len(events), "cache_hits": 0, "retries": 2, "invalid_replies": 1, "failures": 0,
    }  # fmt: skip
    text = judge_text(first)
    assert text is not None
    assert "2 retries, 1 invalid replies, 0 unanswered" in text
    second, _ = simulate(judge, concurrency=1)  # the same judge: its counters keep going
    assert second.summary is not None
    assert second.summary["judge"]["calls"] == len(events)
    assert second.summary["judge"]["invalid_replies"] == 0
    rule_run, _ = simulate_rule()
    assert rule_run.summary is not None
    assert "judge" not in rule_run.summary  # the rule judge cannot fail


def simulate_rule() -> tuple[Any, list[Any]]:
    store = MemoryStore()
    config = SimConfig(("egreedy-v1",), ("quick-wins",), 2, 3, seed=2)
    run = SimRunner(store).run(config)
    return run, list(store.read(lambda txn: txn.sim_events(run.run_id)))


def test_how_many_are_asked_at_once_does_not_change_the_numbers(
    server: FakeLLM, new_judge: Callable[..., LLMJudge]
) -> None:
    one_run, one = simulate(new_judge(), concurrency=1)
    many_run, many = simulate(new_judge(), concurrency=8)
    assert one == many
    assert one_run.summary == many_run.summary
    assert {e.action for e in one} == {"done", "dismiss"}  # the server's answers, both kinds


def test_a_slow_judged_run_stops_after_the_step_it_was_cancelled_in(
    server: FakeLLM, new_judge: Callable[..., LLMJudge]
) -> None:
    cancel = threading.Event()
    run, events = simulate(
        new_judge(), concurrency=2, cancel=cancel, progress=lambda done, total: cancel.set()
    )
    assert run.status == "cancelled"
    assert run.done_steps == len(events) == 2 * 4  # the first step, kept; nothing after it


class CancellingJudge:
    """A judge plug-in that dismisses every tip and sets ``cancel`` at its ``at``-th answer."""

    name = "cancelling"

    def __init__(self, cancel: threading.Event, at: int) -> None:
        self.cancel, self.at, self.calls = cancel, at, 0

    def judge(self, request: JudgeRequest, rng: np.random.Generator) -> Judgement:
        self.calls += 1
        if self.calls == self.at:
            self.cancel.set()
        return DISMISSED


def test_a_cancel_stops_a_slow_judged_step_between_two_judgements() -> None:
    cancel = threading.Event()
    judge = CancellingJudge(cancel, at=3)
    store = MemoryStore()
    config = SimConfig(("egreedy-v1", "ucb-ix1"), ("morning-focused",), 4, 3, seed=2)
    run = SimRunner(store, judge=judge, judge_concurrency=1, cancel=cancel).run(config)
    assert run.status == "cancelled"
    assert judge.calls == 3  # of the step's eight: none asked after the cancel
    assert run.done_steps == 0
    assert store.read(lambda txn: txn.sim_events(run.run_id)) == []


# --- construction and settings ------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"base_url": "127.0.0.1:8080/v1"}, "must start with http:// or https://"),
        ({"base_url": "ftp://127.0.0.1/v1"}, "must start with http:// or https://"),
        ({"base_url": "http://"}, "must start with http:// or https://"),
        ({"base_url": "http://[::1"}, "is not a URL"),
        ({"model": ""}, "model must be named"),
        ({"timeout_s": 0}, "timeout_s must be a positive number"),
        ({"timeout_s": math.inf}, "timeout_s must be a positive number"),
        ({"retries": -1}, "retries must be an integer in"),
        ({"backoff_s": -0.1}, "backoff_s must be in"),
        ({"temperature": math.nan}, "temperature must be in"),
        ({"max_consecutive_failures": 0}, "max_consecutive_failures must be"),
    ],
)
def test_refuses_unusable_options(options: dict[str, Any], message: str) -> None:
    arguments = {"base_url": "http://127.0.0.1:1/v1", "model": "m", **options}
    with pytest.raises(ConfigurationError, match=message):
        LLMJudge(**arguments)


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_make_judge_builds_the_llm_judge_from_settings(server: FakeLLM, tmp_path: Path) -> None:
    judge = make_judge(
        "llm",
        settings(
            llm_base_url=server.url,
            llm_model="sim-model",
            llm_api_key="sk-from-settings",
            llm_timeout_seconds=2.5,
            llm_cache_dir=str(tmp_path),
        ),
    )
    assert isinstance(judge, LLMJudge)
    with judge:
        assert (judge.model, judge.timeout_s, judge.cache_dir) == ("sim-model", 2.5, tmp_path)
        assert judge.judge(make_request(), rng()) == DONE_45
    assert server.requests[0]["headers"]["Authorization"] == "Bearer sk-from-settings"


def test_make_judge_with_an_empty_cache_dir_does_not_cache(server: FakeLLM) -> None:
    judge = make_judge("llm", settings(llm_base_url=server.url, llm_model="m", llm_cache_dir=""))
    assert isinstance(judge, LLMJudge)
    with judge:
        assert judge.cache_dir is None


@pytest.mark.parametrize(
    ("values", "missing"),
    [
        ({}, "OO_ML_LLM_BASE_URL and OO_ML_LLM_MODEL"),
        ({"llm_model": "m"}, "OO_ML_LLM_BASE_URL to be set"),
        ({"llm_base_url": "http://127.0.0.1:1/v1"}, "OO_ML_LLM_MODEL to be set"),
    ],
)
def test_make_judge_llm_names_the_missing_settings(values: dict[str, str], missing: str) -> None:
    with pytest.raises(ConfigurationError, match=f"the llm judge needs {missing}"):
        make_judge("llm", settings(**values))


def test_make_judge_rule_and_unknown_names() -> None:
    assert isinstance(make_judge("rule", settings()), RuleJudge)
    with pytest.raises(NotFoundError, match="unknown judge 'gpt'; known: rule, llm, command"):
        make_judge("gpt", settings())


def test_settings_refuse_a_base_url_without_scheme() -> None:
    with pytest.raises(pydantic.ValidationError, match="llm_base_url"):
        settings(llm_base_url="127.0.0.1:8080/v1")


def test_settings_keep_the_llm_key_secret() -> None:
    assert "sk-secret" not in repr(settings(llm_api_key="sk-secret"))
