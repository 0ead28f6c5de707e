"""``DirectProtocol`` (``oo_ml.api.protocol``) under a real ``oo-ml serve``, over real sockets.

One server for the module: ``python -m oo_ml.cli serve --workers 1`` in a temporary directory
(its SQLite file there), with an API token so that the direct path's token check is used too.
Requests are written byte by byte on raw sockets, so that keep-alive, pipelining, one write
of head and body, ``Connection: close`` and the requests the protocol declines can be seen
exactly. The "normal path" answer to compare with is the same request sent in a way that the
protocol declines (a query string, mostly): uvicorn's own cycle, then the app.

Which path answered is seen on the wire: the protocol writes head and body at once (one TCP
segment), uvicorn's cycle apart (two, on a fresh connection with ``TCP_NODELAY``), counted
with ``TCP_INFO``'s ``tcpi_data_segs_in`` (Linux, like ``oo-ml serve``'s ``SO_REUSEPORT``).

One test starts a second server of its own: the app under uvicorn's default configuration
with :func:`~oo_ml.api.protocol.install`, whose access log ``oo-ml serve`` turns off.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.robustness.servers import free_port

from .support import ADMIN, ADMIN_TOKEN, API_TOKEN, candidate, reward_body, score_body, three_tips

TIMEOUT_S = 10.0
STARTUP_S = 60.0
HEAD_NAMES = ["date", "server", "content-length", "content-type"]
DIRECT_ROUTES = [
    "/v1/rank",
    "/v1/feedback",
    "/score",
    "/score/egreedy",
    "/reward",
    "/reward/egreedy",
]


# -- the server -----------------------------------------------------------------------------


@dataclass
class Served:
    """The running ``oo-ml serve``: its port, working directory and log (stdout + stderr)."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self) -> Conn:
        return Conn(self.port)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _server_env() -> dict[str, str]:
    """The test's environment without the service's settings or any proxy, plus the server's."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("OO_ML_") and not name.lower().endswith("_proxy")
    }
    env |= {
        "OO_ML_ADMIN_TOKEN": ADMIN_TOKEN,
        "OO_ML_API_TOKEN": API_TOKEN,
        "OO_ML_DEFAULT_REWARD_ENABLED": "false",
        "OO_ML_SQLITE_SYNCHRONOUS": "NORMAL",
        "OO_ML_LOG_LEVEL": "info",
    }
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


def _start(arguments: list[str], directory: Path, port: int) -> Served:
    """``python arguments…`` in ``directory``, its output to ``server.log`` there; returns once
    ``GET /health`` answers (stops it and fails if it does not)."""
    log_path = directory / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, *arguments],
            cwd=directory,
            env=_server_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Served(process, port, directory, log_path)
    try:
        deadline = time.monotonic() + STARTUP_S
        with httpx.Client(base_url=server.base_url, trust_env=False, timeout=5.0) as client:
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"the server exited early:\n{server.log()}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/health").status_code == 200:
                        return server
                if time.monotonic() > deadline:
                    raise AssertionError(f"the server is not up in {STARTUP_S} s:\n{server.log()}")
                time.sleep(0.05)
    except BaseException:
        _stop(process)
        raise


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``oo-ml serve`` on one worker, in a directory of its own (its ``oo-ml.db`` there)."""
    directory = tmp_path_factory.mktemp("protocol")
    port = free_port()
    arguments = ["-m", "oo_ml.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = _start([*arguments, "--workers", "1"], directory, port)
    try:
        yield server
    finally:
        _stop(server.process)


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    with httpx.Client(
        base_url=served.base_url, trust_env=False, timeout=TIMEOUT_S, headers=headers
    ) as c:
        yield c


# -- raw HTTP/1.1 ---------------------------------------------------------------------------

_counter = itertools.count()


def uid(prefix: str = "u") -> str:
    """A user or event id no other request of the module uses."""
    return f"{prefix}-proto-{next(_counter)}"


def one_tip(user_id: str) -> dict[str, Any]:
    """A rank body with one candidate: every policy's answer is the same for a fresh user."""
    return score_body(user_id, [candidate("t-only", priority=2)])


def _encode(body: bytes | dict[str, Any]) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def post(
    path: str,
    body: bytes | dict[str, Any],
    *,
    headers: list[tuple[str, str]] | None = None,
    version: str = "1.1",
    content_type: str | None = "application/json",
    token: str | None = API_TOKEN,
    length: bool = True,
) -> bytes:
    """The bytes of a ``POST`` (a dict body as JSON)."""
    data = _encode(body)
    lines = [f"POST {path} HTTP/{version}", "Host: 127.0.0.1"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    if length:
        lines.append(f"Content-Length: {len(data)}")
    lines += [f"{name}: {value}" for name, value in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def get(path: str, *, headers: list[tuple[str, str]] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Answer:
    """One HTTP/1.1 response as read from the socket."""

    status: int
    head: bytes
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.headers]

    def header(self, name: str) -> str | None:
        values = [value for found, value in self.headers if found == name]
        assert len(values) <= 1, (name, self.headers)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


_DATA_SEGS_IN = 152
"""Offset of ``tcpi_data_segs_in`` in Linux's ``struct tcp_info``."""


class Conn:
    """A client connection that reads answers one at a time from what it received."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()
        self.reads: list[bytes] = []
        """Every ``recv``'s bytes, in order."""

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise AssertionError(
                f"the server closed the connection; unread: {bytes(self.buffer)!r}"
            )
        self.reads.append(chunk)
        self.buffer += chunk

    def answer(self) -> Answer:
        """The next response: status line, headers, then a ``Content-Length`` body."""
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        end = self.buffer.index(b"\r\n\r\n") + 4
        head = bytes(self.buffer[:end])
        status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
        version, status, _reason = status_line.split(" ", 2)
        assert version == "HTTP/1.1", status_line
        headers = []
        for line in lines:
            name, _, value = line.partition(":")
            headers.append((name.lower(), value.strip()))
        answer = Answer(int(status), head, headers, b"")
        assert answer.header("transfer-encoding") is None, head
        length = 0 if answer.status < 200 else int(answer.header("content-length") or "-1")
        assert length >= 0, f"no content-length: {head!r}"
        while len(self.buffer) < end + length:
            self._more()
        answer.body = bytes(self.buffer[end : end + length])
        del self.buffer[: end + length]
        return answer

    def ask(self, data: bytes) -> Answer:
        self.send(data)
        return self.answer()

    def segments_in(self) -> int:
        """TCP segments with data received so far on this connection (``tcpi_data_segs_in``)."""
        info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        if len(info) < _DATA_SEGS_IN + 4:
            pytest.skip("TCP_INFO has no tcpi_data_segs_in (Linux < 4.6)")
        return int(struct.unpack_from("I", info, _DATA_SEGS_IN)[0])

    def ask_counted(self, data: bytes) -> tuple[Answer, int]:
        """The answer, and in how many TCP segments it came. uvicorn's own cycle writes the
        head and the body apart (with ``TCP_NODELAY``: two segments on a fresh connection),
        the direct protocol both in one write (one segment)."""
        before = self.segments_in()
        answer = self.ask(data)
        return answer, self.segments_in() - before

    def closed_by_server(self) -> bool:
        """Whether the server closed the connection (waits up to the socket timeout for it,
        or for more bytes)."""
        if self.buffer:
            return False
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        self.buffer += chunk
        return not chunk


def without_event_id(answer: Answer) -> bytes:
    """The body with its ``event_id`` value replaced (fresh on every decision)."""
    event_id = answer.json()["event_id"]
    assert isinstance(event_id, str)
    assert event_id
    return answer.body.replace(json.dumps(event_id).encode(), b'"EVENT"', 1)


def assert_same_answer(direct: Answer, normal: Answer, *, event_ids: bool = False) -> None:
    """The same status, header names in the same order, the same values (the date aside)
    and the same body (event ids aside when ``event_ids``)."""
    assert direct.status == normal.status
    assert direct.names == normal.names
    assert [h for h in direct.headers if h[0] != "date"] == [
        h for h in normal.headers if h[0] != "date"
    ]
    if event_ids:
        assert without_event_id(direct) == without_event_id(normal)
    else:
        assert direct.body == normal.body


def declined(path: str) -> str:
    """The same route, with a query string the route ignores: the protocol declines it."""
    return path + "?x=1"


# -- 1. a valid answer -----------------------------------------------------------------------


def test_rank_answer_head_and_body(served: Served) -> None:
    body = score_body(uid(), three_tips())
    with served.connect() as conn:
        answer = conn.ask(post("/v1/rank", body))
    assert answer.status == 200
    assert answer.head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.names == HEAD_NAMES
    assert answer.header("content-length") == str(len(answer.body))
    assert answer.header("content-type") == "application/json"
    assert answer.header("server") == "uvicorn"
    date = answer.header("date")
    assert date is not None
    assert parsedate_to_datetime(date).tzinfo is not None
    found = answer.json()
    assert set(found) == {"event_id", "tip_id", "policy", "score", "probability", "ranking"}
    assert re.fullmatch(r"[0-9a-f]{32}", found["event_id"])
    assert found["policy"] == "egreedy-v1"
    ids = {c["id"] for c in body["candidates"]}
    assert found["tip_id"] in ids
    assert next(r["tip_id"] for r in found["ranking"]) == found["tip_id"]
    assert {r["tip_id"] for r in found["ranking"]} == ids
    for ranked in found["ranking"]:
        assert set(ranked) == {"tip_id", "score", "probability"}
        assert isinstance(ranked["score"], float)
        assert 0.0 <= ranked["probability"] <= 1.0
    assert sum(r["probability"] for r in found["ranking"]) == pytest.approx(1.0)
    assert (served.directory / "oo-ml.db").exists()  # the default database, in its directory


@pytest.mark.parametrize("path", ["/v1/rank", "/score", "/score/egreedy"])
def test_direct_answer_is_the_normal_paths(served: Served, path: str) -> None:
    """Status line, header names and order, values and body: as uvicorn's cycle sends them
    (two fresh users, one candidate: the same decision)."""
    with served.connect() as conn:
        direct = conn.ask(post(path, one_tip(uid())))
        normal = conn.ask(post(declined(path), one_tip(uid())))
    assert direct.names == HEAD_NAMES
    assert direct.head.split(b"\r\n")[0] == normal.head.split(b"\r\n")[0]
    assert_same_answer(direct, normal, event_ids=path == "/v1/rank")


@pytest.mark.parametrize("path", DIRECT_ROUTES)
def test_direct_answer_is_one_write(served: Served, client: httpx.Client, path: str) -> None:
    """Head and body leave in one write: one TCP segment, where the same request declined
    (uvicorn's cycle, then the app) comes in two."""
    user = uid()
    ranked = [client.post("/v1/rank", json=one_tip(user)) for _ in range(2)]
    assert [r.status_code for r in ranked] == [200, 200]
    bodies: dict[str, list[dict[str, Any]]] = {
        "/v1/rank": [one_tip(user)] * 2,
        "/v1/feedback": [{"event_id": r.json()["event_id"], "action": "done"} for r in ranked],
        "/score": [one_tip(user)] * 2,
        "/score/egreedy": [one_tip(user)] * 2,
        "/reward": [reward_body(user, "t-only", 0.5)] * 2,
        "/reward/egreedy": [reward_body(user, "t-only", 0.5)] * 2,
    }
    with served.connect() as conn:
        direct, segments = conn.ask_counted(post(path, bodies[path][0]))
    assert direct.status == 200
    assert segments == 1
    assert conn.reads == [direct.head + direct.body]
    with served.connect() as conn:
        normal, segments = conn.ask_counted(post(declined(path), bodies[path][1]))
    assert normal.status == 200
    assert segments == 2


# -- 2. keep-alive ---------------------------------------------------------------------------


def test_fifty_ranks_on_one_connection(served: Served) -> None:
    user = uid()
    event_ids = set()
    with served.connect() as conn:
        for i in range(50):
            tips = three_tips() if i % 2 else [candidate(f"t-{i}")]
            answer = conn.ask(post("/v1/rank", score_body(user, tips, hour=i % 24)))
            assert answer.status == 200, answer.body
            assert answer.names == HEAD_NAMES
            event_ids.add(answer.json()["event_id"])
        assert len(event_ids) == 50
        health = conn.ask(get("/health"))  # still open
    assert health.status == 200
    assert health.json() == {"ok": True}


def test_health_and_rank_interleaved(served: Served) -> None:
    user = uid()
    with served.connect() as conn:
        for _ in range(5):
            health = conn.ask(get("/health"))
            assert health.status == 200
            assert health.json() == {"ok": True}
            rank = conn.ask(post("/v1/rank", score_body(user, three_tips())))
            assert rank.status == 200
            assert rank.names == HEAD_NAMES
            feedback = {"event_id": rank.json()["event_id"], "action": "dismiss"}
            answer = conn.ask(post("/v1/feedback", feedback))
            assert answer.status == 200
            assert answer.json()["duplicate"] is False


def test_body_sent_in_pieces(served: Served) -> None:
    """Headers, then the body a few bytes a write: read whole before it is answered."""
    body = json.dumps(one_tip(uid())).encode()
    request = post("/v1/rank", body)
    head_end = request.index(b"\r\n\r\n") + 4
    with served.connect() as conn:
        conn.send(request[:20])
        conn.send(request[20:head_end])
        for at in range(head_end, len(request), 7):
            conn.send(request[at : at + 7])
        answer = conn.answer()
        assert answer.status == 200
        assert answer.json()["tip_id"] == "t-only"
        assert conn.ask(get("/health")).status == 200


# -- 3. pipelining ---------------------------------------------------------------------------


def test_pipelined_requests_answered_in_order(served: Served) -> None:
    user = uid()
    chosen = uid("evt")
    requests = [
        post("/v1/rank", score_body(user, three_tips())),
        post("/v1/rank", {**one_tip(user), "event_id": chosen}),
        get("/health"),
        post("/v1/feedback", {"event_id": uid("never-ranked"), "action": "done"}),
        post("/v1/feedback", {"event_id": chosen, "action": "done", "dwell_ms": 4000}),
        post("/score/egreedy", one_tip(uid())),  # a fresh user: a score of 0
        post("/v1/rank", {**one_tip(user), "context": {"hour_of_day": 24}}),  # refused
        post("/reward/egreedy", reward_body(user, "t-only", 1.0)),
    ]
    with served.connect() as conn:
        conn.send(b"".join(requests))
        answers = [conn.answer() for _ in requests]
        statuses = [a.status for a in answers]
        assert statuses == [200, 200, 200, 404, 200, 200, 422, 200]
        assert {r["tip_id"] for r in answers[0].json()["ranking"]} == {
            c["id"] for c in three_tips()
        }
        assert answers[1].json()["event_id"] == chosen
        assert answers[2].json() == {"ok": True}
        assert "detail" in answers[3].json()
        assert answers[4].json()["event_id"] == chosen  # answered after its rank
        assert answers[4].json()["duplicate"] is False
        assert answers[5].body == b'{"tip_id":"t-only","score":0.0,"policy":"egreedy-v1"}'
        assert answers[6].json()["detail"][0]["loc"] == ["body", "context", "hour_of_day"]
        assert answers[7].body == b'{"ok":true}'
        for answer in answers:
            assert answer.header("connection") is None
            assert answer.header("content-length") == str(len(answer.body))
        # After the pipeline, the connection serves direct requests again.
        again = conn.ask(post("/v1/rank", one_tip(user)))
        assert again.status == 200
        assert again.names == HEAD_NAMES


def test_pipeline_ending_with_connection_close(served: Served) -> None:
    user = uid()
    requests = [
        post("/v1/rank", one_tip(user)),
        post("/score", one_tip(user)),
        post("/v1/rank", one_tip(user), headers=[("Connection", "close")]),
    ]
    with served.connect() as conn:
        conn.send(b"".join(requests))
        answers = [conn.answer() for _ in requests]
        assert [a.status for a in answers] == [200, 200, 200]
        assert [a.header("connection") for a in answers] == [None, None, "close"]
        assert conn.closed_by_server()


def test_many_pipelined_ranks_in_order(served: Served) -> None:
    """Thirty ranks in one write, each naming its event id, some refused, one ``/health``:
    every answer, in the order asked."""
    user = uid()
    event_ids = [uid("evt") for _ in range(30)]
    requests = []
    for i, event_id in enumerate(event_ids):
        body: dict[str, Any] = {**score_body(user, three_tips()), "event_id": event_id}
        if i % 7 == 3:
            body["context"] = {"hour_of_day": -1}  # refused by the model
        requests.append(post("/v1/rank", body))
    requests.insert(0, post("/v1/rank", {"user_id": user}))  # the first one refused too
    requests.insert(15, get("/health"))
    with served.connect() as conn:
        conn.send(b"".join(requests))
        answers = [conn.answer() for _ in requests]
        health = answers.pop(15)
        first = answers.pop(0)
        assert health.status == 200
        assert health.json() == {"ok": True}
        assert first.status == 422
        for i, (event_id, answer) in enumerate(zip(event_ids, answers, strict=True)):
            if i % 7 == 3:
                assert answer.status == 422, answer.body
            else:
                assert answer.status == 200, answer.body
                assert answer.json()["event_id"] == event_id
        assert conn.ask(post("/v1/rank", one_tip(user))).status == 200


# -- 4. refusals are FastAPI's ---------------------------------------------------------------


def _with_features(user: str, **features: Any) -> dict[str, Any]:
    body = score_body(user, three_tips())
    body["candidates"][1]["features"].update(features)
    return body


REFUSED: dict[str, tuple[str, Any]] = {
    "hour-24": (
        "/v1/rank",
        lambda u: {**score_body(u, three_tips()), "context": {"hour_of_day": 24}},
    ),
    "missing-candidates": ("/v1/rank", lambda u: {"user_id": u}),
    "missing-user": ("/score", lambda u: {"candidates": three_tips()}),
    "duplicate-ids": ("/v1/rank", lambda u: score_body(u, [candidate("t-a"), candidate("t-a")])),
    "empty-candidates": ("/score/egreedy", lambda u: score_body(u, [])),
    "age-1e999": (
        "/v1/rank",
        lambda u: (
            json.dumps(_with_features(u, task_age_days=12345.5))
            .replace("12345.5", "1e999")
            .encode()
        ),
    ),
    "priority-as-string": ("/score", lambda u: _with_features(u, priority="2")),
    "not-json": ("/v1/rank", lambda u: b'{"user_id": "' + u.encode() + b'", "candidates": ['),
    "unknown-policy": ("/v1/rank", lambda u: {**one_tip(u), "policy": "nope-v9"}),
    "bad-event-id": ("/v1/rank", lambda u: {**one_tip(u), "event_id": "not an id"}),
    "reward-out-of-range": ("/reward", lambda u: reward_body(u, "t-only", 1.5)),
    "reward-no-features": (
        "/reward/egreedy",
        lambda u: {**reward_body(u, "t", 0.5), "features": None},
    ),
    "feedback-bad-action": ("/v1/feedback", lambda u: {"event_id": u, "action": "maybe"}),
    "feedback-no-event": ("/v1/feedback", lambda u: {"action": "done"}),
}


ENGINE_REFUSALS = {"duplicate-ids", "empty-candidates", "unknown-policy"}
"""Bodies the model accepts and the engine refuses (a ``ValidationError`` or an unknown
policy, through the app's exception handlers)."""


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_body_is_answered_as_the_normal_path(served: Served, case: str) -> None:
    """The refusal is FastAPI's (or the app's handler's), byte for byte, and the connection
    serves a valid direct request after it."""
    path, make = REFUSED[case]
    with served.connect() as conn:
        direct, segments = conn.ask_counted(post(path, make(uid())))
        valid, valid_segments = conn.ask_counted(post("/v1/rank", one_tip(uid())))
        normal = conn.ask(post(declined(path), make(uid())))
        assert conn.ask(get("/health")).status == 200
    assert direct.status == 422, direct.body
    detail = direct.json()["detail"]
    assert isinstance(detail, list)
    assert detail
    assert set(detail[0]) == {"loc", "msg", "type"}
    assert_same_answer(direct, normal)
    # A body the model refuses goes on to uvicorn's cycle (head and body written apart); a
    # body the model accepts but the engine refuses is answered by the protocol in one write.
    assert segments == (1 if case in ENGINE_REFUSALS else 2)
    assert valid.status == 200
    assert valid.names == HEAD_NAMES
    assert valid_segments == 1


def test_unauthorized_is_fastapis(served: Served) -> None:
    body = one_tip(uid())
    with served.connect() as conn:
        for token in (None, "wrong-token-0123456789abc"):
            direct = conn.ask(post("/v1/rank", body, token=token))
            normal = conn.ask(post(declined("/v1/rank"), body, token=token))
            assert direct.status == 401
            assert direct.header("www-authenticate") == "Bearer"
            assert_same_answer(direct, normal)
        assert conn.ask(post("/v1/rank", body)).status == 200
    # The admin token passes the API check, on the direct path too.
    with served.connect() as conn:
        assert conn.ask(post("/v1/rank", body, token=ADMIN_TOKEN)).status == 200


def test_body_over_the_limit_is_fastapis_413(served: Served) -> None:
    body = json.dumps(one_tip(uid())).encode()
    body += b" " * (1_048_576 + 1 - len(body))
    with served.connect() as conn:
        direct = conn.ask(post("/v1/rank", body))
        normal = conn.ask(post(declined("/v1/rank"), body))
    assert direct.status == 413
    assert_same_answer(direct, normal)


# -- 5. the engine's errors, through the app's handlers ---------------------------------------


def test_unknown_event_feedback_is_404(served: Served) -> None:
    unknown = uid("evt-unknown")
    body = {"event_id": unknown, "action": "done"}
    with served.connect() as conn:
        direct, segments = conn.ask_counted(post("/v1/feedback", body))
        normal = conn.ask(post(declined("/v1/feedback"), body))
        after = conn.ask(post("/v1/rank", one_tip(uid())))
    assert direct.status == 404
    assert segments == 1  # answered by the protocol, through the app's handler
    assert direct.names == HEAD_NAMES
    found = direct.json()
    assert list(found) == ["detail"]
    assert isinstance(found["detail"], str)
    assert unknown in found["detail"]
    assert_same_answer(direct, normal)
    assert after.status == 200


def test_existing_event_id_is_409(served: Served) -> None:
    event_id = uid("evt")
    with served.connect() as conn:
        first = conn.ask(post("/v1/rank", {**one_tip(uid()), "event_id": event_id}))
        direct, segments = conn.ask_counted(
            post("/v1/rank", {**one_tip(uid()), "event_id": event_id})
        )
        normal = conn.ask(post(declined("/v1/rank"), {**one_tip(uid()), "event_id": event_id}))
        health = conn.ask(get("/health"))
        after = conn.ask(post("/v1/rank", one_tip(uid())))
    assert first.status == 200
    assert first.json()["event_id"] == event_id
    assert direct.status == 409
    assert segments == 1
    assert direct.names == HEAD_NAMES
    assert list(direct.json()) == ["detail"]
    assert event_id in direct.json()["detail"]
    assert_same_answer(direct, normal)
    assert health.status == 200
    assert after.status == 200


# -- 6. Connection: close ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/rank", one_tip("u-close"), 200),
        ("/score", one_tip("u-close"), 200),
        ("/v1/feedback", {"event_id": "evt-never-ranked-close", "action": "done"}, 404),
        ("/v1/rank", {"user_id": "u-close"}, 422),  # handed on to uvicorn's cycle
    ],
    ids=["rank", "score", "feedback-404", "refused-422"],
)
def test_connection_close(served: Served, path: str, body: dict[str, Any], status: int) -> None:
    closing = [("Connection", "close")]
    with served.connect() as conn:
        direct = conn.ask(post(path, body, headers=closing))
        assert direct.status == status
        assert direct.names == [*HEAD_NAMES, "connection"]
        assert direct.header("connection") == "close"
        assert conn.closed_by_server()
    with served.connect() as conn:
        normal = conn.ask(post(declined(path), body, headers=closing))
        assert conn.closed_by_server()
    assert direct.names == normal.names
    if path != "/v1/rank" or status != 200:
        assert_same_answer(direct, normal)


# -- 7. declined requests: uvicorn's own path, the same content -------------------------------


def _chunked(path: str, body: bytes) -> bytes:
    chunks = [body[:10], body[10:]]
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    return post(path, b"", headers=[("Transfer-Encoding", "chunked")], length=False) + encoded


_SPELLINGS = {
    "chunked": lambda body: _chunked("/score", body),
    "http-1.0": lambda body: post("/score", body, version="1.0"),
    "query": lambda body: post("/score?policy=ignored", body),
    "percent-escape": lambda body: post("/sc%6Fre", body),
    "type-parameters": lambda body: post(
        "/score", body, content_type="application/json; charset=utf-8"
    ),
    "type-case": lambda body: post("/score", body, content_type="Application/JSON"),
    "keep-alive-header": lambda body: post("/score", body, headers=[("Connection", "keep-alive")]),
}


def _score_request(user: str, variant: str) -> list[bytes]:
    """``POST /score`` for ``user`` spelled as ``variant``: the parts to send in turn."""
    body = json.dumps(one_tip(user)).encode()
    if variant == "expect-100":  # the head, then the body once "100 Continue" is read
        request = post("/score", body, headers=[("Expect", "100-continue")])
        return [request[: -len(body)], body]
    return [_SPELLINGS[variant](body)]


DECLINED_VARIANTS = {  # variant: TCP segments of the answer on a fresh connection
    "expect-100": 3,  # "100 Continue", then uvicorn's head and body
    "chunked": 2,
    "http-1.0": 2,
    "query": 2,
    "percent-escape": 2,
    # Not declined: direct_route strips a content type's parameters and case.
    "type-parameters": 1,
    "type-case": 1,
    "keep-alive-header": 1,
}


@pytest.mark.parametrize("variant", list(DECLINED_VARIANTS))
def test_declined_request_gets_the_same_answer(served: Served, variant: str) -> None:
    with served.connect() as conn:
        direct = conn.ask(post("/score", one_tip(uid())))
    with served.connect() as conn:
        parts = _score_request(uid(), variant)
        conn.send(parts[0])
        if variant == "expect-100":
            interim = conn.answer()
            assert interim.status == 100
            assert interim.head == b"HTTP/1.1 100 Continue\r\n\r\n"
        for part in parts[1:]:
            conn.send(part)
        answer = conn.answer()
        assert conn.segments_in() == DECLINED_VARIANTS[variant]
        if variant == "http-1.0":
            assert answer.header("connection") == "close"
            assert answer.names == [*HEAD_NAMES, "connection"]
            assert conn.closed_by_server()
            answer.headers.remove(("connection", "close"))
        else:
            assert conn.ask(get("/health")).status == 200  # still open
    assert direct.json()["tip_id"] == "t-only"
    assert direct.json()["policy"] == "linucb-v1"
    assert_same_answer(direct, answer)


def test_no_content_length_is_the_normal_paths_422(served: Served) -> None:
    """No length, no chunks: an empty body, which the protocol leaves to FastAPI (as it does
    ``Content-Length: 0``)."""
    with served.connect() as conn:
        missing = conn.ask(post("/v1/rank", b"", length=False))
        zero = conn.ask(post("/v1/rank", b""))
        normal = conn.ask(post(declined("/v1/rank"), b"", length=False))
        after = conn.ask(post("/v1/rank", one_tip(uid())))
    assert missing.status == 422
    assert missing.json()["detail"][0]["loc"] == ["body"]
    assert_same_answer(missing, zero)
    assert_same_answer(missing, normal)
    assert after.status == 200


def test_other_methods_and_paths_are_the_apps(served: Served) -> None:
    with served.connect() as conn:
        not_allowed = conn.ask(get("/v1/rank"))
        assert not_allowed.status == 405
        assert conn.ask(get("/v1/rank?x=1")).body == not_allowed.body
        missing = conn.ask(post("/v1/ranks", one_tip(uid())))
        assert missing.status == 404
        assert conn.ask(post("/v1/rank", one_tip(uid()))).status == 200


# -- 8. feedback on the direct path ------------------------------------------------------------


def test_feedback_once_then_duplicate(served: Served) -> None:
    with served.connect() as conn:
        ranked = conn.ask(post("/v1/rank", score_body(uid(), three_tips())))
        event_id = ranked.json()["event_id"]
        feedback = {"event_id": event_id, "action": "done", "dwell_ms": 4000}
        first = conn.ask(post("/v1/feedback", feedback))
        second = conn.ask(post("/v1/feedback", feedback))
        normal = conn.ask(post(declined("/v1/feedback"), feedback))
    assert first.status == second.status == 200
    assert first.names == HEAD_NAMES
    found = first.json()
    assert set(found) == {"event_id", "reward", "reward_milli", "reward_rule", "duplicate"}
    assert found["event_id"] == event_id
    assert found["duplicate"] is False
    assert isinstance(found["reward"], float)
    assert isinstance(found["reward_milli"], int)
    assert found["reward_rule"] == "dwell-v1"
    again = second.json()
    assert again["duplicate"] is True
    assert {**again, "duplicate": False} == found
    assert_same_answer(second, normal)


def test_feedback_alias_spelling(served: Served) -> None:
    with served.connect() as conn:
        ranked = conn.ask(post("/v1/rank", one_tip(uid())))
        event_id = ranked.json()["event_id"]
        answer = conn.ask(post("/v1/feedback", {"eventId": event_id, "action": "snooze"}))
    assert answer.status == 200
    assert answer.json()["event_id"] == event_id
    assert answer.json()["duplicate"] is False


# -- 9. the existing contract's answers --------------------------------------------------------


@pytest.mark.parametrize("policy", ["", "/egreedy"])
def test_contract_session_is_the_normal_paths_bytes(served: Served, policy: str) -> None:
    """A score, a reward and a score again under each policy, for one user on the direct path
    and one on the normal path: the same bytes every time (no randomness with one candidate;
    ``linucb-v1`` with three)."""
    tips = three_tips() if policy == "" else [candidate("t-only", priority=2)]
    mine, theirs = uid(), uid()
    steps: list[tuple[str, Callable[[str], dict[str, Any]]]] = [
        (f"/score{policy}", lambda u: score_body(u, tips)),
        (f"/reward{policy}", lambda u: reward_body(u, tips[0]["id"], 1.0, is_overdue=True)),
        (f"/reward{policy}", lambda u: reward_body(u, "t-never-shown", -0.25, day_of_week=4)),
        (f"/score{policy}", lambda u: {**score_body(u, tips, hour=21, day=6), "policy": 5}),
    ]
    with served.connect() as conn:
        for path, make in steps:
            direct = conn.ask(post(path, make(mine)))
            normal = conn.ask(post(declined(path), make(theirs)))
            assert direct.status == 200, direct.body
            assert direct.names == HEAD_NAMES
            assert_same_answer(direct, normal)
            found = direct.json()
            if path.startswith("/reward"):
                assert direct.body == b'{"ok":true}'
            else:
                assert list(found) == ["tip_id", "score", "policy"]
                assert isinstance(found["score"], float)
                assert found["policy"] == ("egreedy-v1" if policy else "linucb-v1")


def test_rank_answer_matches_normal_path_structure(served: Served) -> None:
    """Three candidates under the exploring policy: the decisions may differ, the shape may not."""
    with served.connect() as conn:
        direct = conn.ask(post("/v1/rank", score_body(uid(), three_tips())))
        normal = conn.ask(post(declined("/v1/rank"), score_body(uid(), three_tips())))
    assert direct.status == normal.status == 200
    assert direct.names == normal.names

    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: shape(item) for key, item in value.items()}
        if isinstance(value, list):
            return [shape(item) for item in value]
        return type(value).__name__

    assert shape(direct.json()) == shape(normal.json())


def _counts(client: httpx.Client) -> dict[tuple[str, str], float]:
    """``oo_ml_request_seconds_count`` of each POST route and status class."""
    text = client.get("/metrics").text
    pattern = r'oo_ml_request_seconds_count\{method="POST",route="([^"]+)",status="(\dxx)"\} (\S+)'
    return {(route, status): float(n) for route, status, n in re.findall(pattern, text)}


def test_each_answer_is_timed_once(served: Served, client: httpx.Client) -> None:
    """The latency histogram counts every request once, whichever path answered it."""
    before = _counts(client)
    user = uid()
    with served.connect() as conn:
        ranked = conn.ask(post("/v1/rank", one_tip(user)))  # direct
        conn.ask(post(declined("/v1/rank"), one_tip(user)))  # uvicorn's cycle, then the app
        conn.ask(post("/v1/rank", {"user_id": user}))  # handed on: FastAPI's 422
        conn.ask(post("/v1/rank", {**one_tip(user), "policy": "nope-v9"}))  # handler's 422
        feedback = {"event_id": ranked.json()["event_id"], "action": "done"}
        conn.ask(post("/v1/feedback", feedback))  # direct
        conn.ask(post("/v1/feedback", {"event_id": uid("evt-none"), "action": "done"}))  # 404
        conn.ask(post("/score/egreedy", one_tip(user)))
        conn.ask(post("/reward/egreedy", reward_body(user, "t-only", 0.5)))
    after = _counts(client)
    delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    assert {key: n for key, n in delta.items() if n} == {
        ("/v1/rank", "2xx"): 2,
        ("/v1/rank", "4xx"): 2,
        ("/v1/feedback", "2xx"): 1,
        ("/v1/feedback", "4xx"): 1,
        ("/score/egreedy", "2xx"): 1,
        ("/reward/egreedy", "2xx"): 1,
    }


# -- 10. clients that leave --------------------------------------------------------------------


def _decisions(client: httpx.Client, user: str) -> int:
    answer = client.get(f"/v1/users/{user}/decisions", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    items = found["decisions"] if isinstance(found, dict) else found
    return len(items)


def _wait_for_decision(client: httpx.Client, user: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while _decisions(client, user) < 1:
        assert time.monotonic() < deadline, f"no decision logged for {user}"
        time.sleep(0.02)


def test_clients_that_leave_do_not_break_the_server(served: Served, client: httpx.Client) -> None:
    closed, reset, pipelined = uid(), uid(), uid()
    # Sends a rank request and closes at once (FIN), before reading.
    with served.connect() as conn:
        conn.send(post("/v1/rank", one_tip(closed)))
    # The same, then a reset (SO_LINGER 0) instead of a close.
    with served.connect() as conn:
        conn.send(post("/v1/rank", one_tip(reset)))
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # Headers and half a body, then gone.
    with served.connect() as conn:
        request = post("/v1/rank", one_tip(uid()))
        conn.send(request[: len(request) - 20])
    # Two pipelined requests (a direct one, then one waiting behind it), then gone.
    with served.connect() as conn:
        conn.send(post("/v1/rank", one_tip(pipelined)) + post("/score", one_tip(pipelined)))
    # A request whose answer is half read, then gone.
    with served.connect() as conn:
        conn.send(post("/v1/rank", score_body(uid(), three_tips())))
        conn.sock.recv(10)

    _wait_for_decision(client, closed)  # the engine still decided (logged before answering)
    _wait_for_decision(client, pipelined)
    for _ in range(3):
        with served.connect() as conn:
            assert conn.ask(post("/v1/rank", one_tip(uid()))).status == 200
            assert conn.ask(get("/health")).status == 200
    assert client.get("/health").status_code == 200
    log = served.log()
    assert "Traceback" not in log, log
    assert '"level": "error"' not in log, log
    assert served.process.poll() is None


# -- install() for another uvicorn configuration ----------------------------------------------

_UVICORN_DEFAULTS = """
import sys

import uvicorn

from oo_ml.api.protocol import install

port = int(sys.argv[1])
config = uvicorn.Config("oo_ml.api:create_app", factory=True, host="127.0.0.1", port=port)
config.load()
if not install(config):
    sys.exit("install() declined the app")
uvicorn.Server(config).run()
"""
"""The service's app under uvicorn's defaults (its logging configuration, with the access
log on), with the direct protocol installed as ``oo_ml.serve`` installs it."""


def test_access_log_under_uvicorns_logging(tmp_path: Path) -> None:
    port = free_port()
    server = _start(["-u", "-c", _UVICORN_DEFAULTS, str(port)], tmp_path, port)
    try:
        with server.connect() as conn:
            direct, segments = conn.ask_counted(post("/v1/rank", one_tip(uid())))
            normal = conn.ask(post(declined("/v1/rank"), one_tip(uid())))
        assert direct.status == normal.status == 200
        assert segments == 1  # the direct protocol answered
        log = server.log()  # the access line is logged before the answer is written
        assert '"POST /v1/rank?x=1 HTTP/1.1" 200 OK' in log  # uvicorn's cycle: logged
        assert "Logging error" not in log, log
        assert '"POST /v1/rank HTTP/1.1" 200 OK' in log, log
    finally:
        _stop(server.process)


# -- last: the whole module's log --------------------------------------------------------------


def test_server_log_has_no_error(served: Served, client: httpx.Client) -> None:
    assert client.get("/health").status_code == 200
    log = served.log()
    assert "Traceback" not in log, log
    assert '"level": "error"' not in log, log
    assert "Fatal error" not in log, log
    assert "Exception in ASGI application" not in log, log
