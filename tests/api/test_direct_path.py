"""``ServiceApp``'s direct path answers as FastAPI does: ``/v1/rank``, ``/v1/feedback`` and the
existing contract's ``/score``, ``/score/egreedy``, ``/reward`` and ``/reward/egreedy``.

Each request is sent to two servers on one database: one as configured (direct path), one
whose app overrides a dependency with itself, which sends every request through FastAPI's own
handling (``oo_ml.api.fast``). Status, body and metrics must agree; for the existing contract,
the body byte for byte. In-process, with the engine's answers fixed, the same app is also
called both ways on answers whose JSON is spelled in unusual ways (floats such as ``1e-07``,
escaped and non-ASCII ids), and must send the very same bytes and headers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import Message

from oo_ml.api.app import create_app
from oo_ml.api.deps import ApiDep, require_api
from oo_ml.api.fast import DirectRoute, ServiceApp, exact_json
from oo_ml.api.routes import compat
from oo_ml.api.schemas import FeedbackIn, ScoreIn
from oo_ml.engine import Engine, FeedbackResult
from oo_ml.settings import engine_config
from oo_ml.store.base import DecisionRecord
from oo_ml.store.memory import MemoryStore
from oo_ml.types import Candidate, Context

from .conftest import ServerFactory
from .support import API_TOKEN, candidate, make_settings, reward_body, score_body, three_tips

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def pair(start_server: ServerFactory) -> tuple[httpx.Client, httpx.Client]:
    direct = start_server(api_token=API_TOKEN)
    framework = start_server(api_token=API_TOKEN)
    framework.app.dependency_overrides[require_api] = require_api
    return direct.client, framework.client


def _both(pair: tuple[httpx.Client, httpx.Client], path: str, **kw: Any) -> list[httpx.Response]:
    return [client.post(path, **kw) for client in pair]


def _same_answer(answers: list[httpx.Response]) -> None:
    direct, framework = answers
    assert direct.status_code == framework.status_code
    assert direct.headers["content-type"] == framework.headers["content-type"]
    assert direct.json() == framework.json()


@pytest.mark.parametrize(
    "body",
    [
        {**score_body("u1", three_tips()), "policy": "nope-v9"},  # refused by the engine
        {**score_body("u1", three_tips()), "candidates": []},
        {**score_body("u1", three_tips()), "context": {"hour_of_day": 24}},  # by the model
        {"user_id": "u1"},
    ],
    ids=["unknown-policy", "no-candidates", "bad-hour", "no-candidates-field"],
)
def test_refused_rank_is_answered_alike(
    pair: tuple[httpx.Client, httpx.Client], body: dict[str, Any]
) -> None:
    _same_answer(_both(pair, "/v1/rank", json=body, headers=AUTH))


def test_token_body_type_and_event_errors_are_answered_alike(
    pair: tuple[httpx.Client, httpx.Client],
) -> None:
    body = {**score_body("u1", three_tips()), "event_id": "evt-direct-1"}
    first = pair[0].post("/v1/rank", json=body, headers=AUTH)
    assert first.status_code == 200
    _same_answer(_both(pair, "/v1/rank", json=body, headers=AUTH))  # 409: exists (same db)
    _same_answer(_both(pair, "/v1/rank", json=body))  # 401: no token
    _same_answer(_both(pair, "/v1/rank", content=b'{"user_id":', headers=AUTH))  # no JSON type
    _same_answer(
        _both(
            pair,
            "/v1/rank",
            content=b'{"user_id": "u1", "candidates": [',
            headers={**AUTH, "Content-Type": "application/json"},
        )
    )
    missing = {"event_id": "never-ranked", "action": "done"}
    _same_answer(_both(pair, "/v1/feedback", json=missing, headers=AUTH))  # 404


def test_accepted_requests_are_counted_and_timed(pair: tuple[httpx.Client, httpx.Client]) -> None:
    direct = pair[0]
    answer = direct.post("/v1/rank", json=score_body("u2", three_tips()), headers=AUTH)
    assert answer.status_code == 200
    fb = {"event_id": answer.json()["event_id"], "action": "done", "dwell_ms": 4000}
    assert direct.post("/v1/feedback", json=fb, headers=AUTH).status_code == 200
    assert direct.post("/v1/feedback", json={**fb, "action": "x"}, headers=AUTH).status_code == 422
    metrics = direct.get("/metrics").text

    def count(route: str, status: str) -> float:
        pattern = (
            r'oo_ml_request_seconds_count\{method="POST",route="'
            + re.escape(route)
            + r'",status="'
            + status
            + r'"\} (\S+)'
        )
        found = re.search(pattern, metrics)
        return float(found.group(1)) if found else 0.0

    assert count("/v1/rank", "2xx") == 1
    assert count("/v1/feedback", "2xx") == 1
    assert count("/v1/feedback", "4xx") == 1
    assert re.search(r'oo_ml_decisions_total\{policy="egreedy-v1"\} 1\.0', metrics)
    assert re.search(r'oo_ml_feedback_total\{action="done",origin="client"\} 1\.0', metrics)


# -- the existing contract: the same bytes from both paths -----------------------------------


def _contract_steps(user_id: str) -> list[tuple[str, dict[str, Any]]]:
    """An app session: scores and rewards under both policies (egreedy with one candidate, so
    that its exploration cannot choose differently on the two servers), with the client's
    spellings: extra fields, a ``policy`` and an ``event_id`` the contract ignores."""
    return [
        ("/score", score_body(user_id, three_tips())),
        ("/reward", reward_body(user_id, "t-report", 1.0, is_overdue=True, task_age_days=4.0)),
        ("/score", {**score_body(user_id, three_tips(), hour=21, day=6), "policy": 5}),
        ("/reward", reward_body(user_id, "t-never-shown", -0.25, priority=3, day_of_week=4)),
        ("/score/egreedy", score_body(user_id, [candidate("t-call", priority=2)])),
        ("/reward/egreedy", {**reward_body(user_id, "t-call", 0.5), "event_id": "bad id"}),
        ("/score/egreedy", {**score_body(user_id, [candidate("t-call")]), "app": {"v": [1]}}),
        ("/score", score_body(user_id, [candidate('t-\u00e9"\\')])),
    ]


def test_existing_contract_is_answered_byte_for_byte(
    pair: tuple[httpx.Client, httpx.Client],
) -> None:
    """The same session for one user on each server: every answer the same bytes (status,
    content type and length), and the same learned state afterwards."""
    direct, framework = pair
    for (path, mine), (_, theirs) in zip(
        _contract_steps("u-direct"), _contract_steps("u-framework"), strict=True
    ):
        answers = [direct.post(path, json=mine, headers=AUTH)]
        answers.append(framework.post(path, json=theirs, headers=AUTH))
        assert answers[0].status_code == answers[1].status_code == 200, path
        assert answers[0].content == answers[1].content, path
        for header in ("content-type", "content-length"):
            assert answers[0].headers[header] == answers[1].headers[header]
    for stats in ("/stats/", "/stats/egreedy/"):
        mine_stats = direct.get(stats + "u-direct", headers=AUTH).json()
        theirs_stats = framework.get(stats + "u-framework", headers=AUTH).json()
        for found in (mine_stats, theirs_stats):
            del found["user_id"], found["last_updated"]
        assert mine_stats == theirs_stats
        assert mine_stats["reward_count"] > 0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/score", {"user_id": "u1"}),
        ("/score", {**score_body("u1", three_tips()), "context": {"hour_of_day": 24}}),
        ("/score", {**score_body("u1", three_tips()), "candidates": []}),  # refused by the engine
        ("/score/egreedy", score_body("u1", [candidate("a\x00b")])),  # by the core
        ("/reward", {**reward_body("u1", "t", 0.5), "reward": 1.5}),
        ("/reward", {**reward_body("u1", "t", 0.5), "features": None}),
        ("/reward/egreedy", reward_body("u1", "a\x00", 0.5)),  # refused by the core
        ("/v1/feedback", {"eventId": 5, "event_id": "evt-1", "action": "done"}),
        ("/v1/feedback", {"event_id": "evt-1", "action": "done", "dwellMs": -1}),
    ],
)
def test_refused_contract_bodies_are_answered_alike(
    pair: tuple[httpx.Client, httpx.Client], path: str, body: dict[str, Any]
) -> None:
    answers = _both(pair, path, json=body, headers=AUTH)
    _same_answer(answers)
    assert answers[0].status_code == 422
    assert answers[0].content == answers[1].content


def test_feedback_in_either_spelling_is_answered_alike(
    pair: tuple[httpx.Client, httpx.Client],
) -> None:
    """``eventId``/``dwellMs`` win over ``event_id``/``dwell_ms`` on both paths (a dwell of 5 ms
    read instead of 30 s would make another reward)."""
    direct = pair[0]
    spellings: list[dict[str, Any]] = [
        {"eventId": "", "event_id": "not-this-one", "action": "done", "dwellMs": 30_000},
        {"eventId": "", "action": "done", "dwellMs": 30_000, "dwell_ms": 5},
        {"event_id": "", "action": "snooze", "dwell_ms": None, "extra": [1]},
    ]
    for n, spelled in enumerate(spellings):
        key = "eventId" if "eventId" in spelled else "event_id"
        answers = []
        for i, client in enumerate(pair):
            ranked = direct.post(
                "/v1/rank", json=score_body(f"u-fb-{n}-{i}", three_tips()), headers=AUTH
            )
            event_id = ranked.json()["event_id"]
            answer = client.post("/v1/feedback", json={**spelled, key: event_id}, headers=AUTH)
            assert answer.status_code == 200
            found = answer.json()
            assert found.pop("event_id") == event_id
            answers.append(found)
        assert answers[0] == answers[1]


# -- in process: unusual spellings of the answers, the same bytes both ways -------------------


class _FixedEngine:
    """An engine whose decisions and feedback are given (the API layer is what is tested)."""

    def __init__(self, engine: Engine, record: DecisionRecord, feedback: FeedbackResult) -> None:
        self.config = engine.config
        self.record = record
        self.feedback = feedback
        self._next: DecisionRecord | FeedbackResult | None = None

    def rank_job(self, *args: Any, **kwargs: Any) -> None:
        self._next = self.record

    def legacy_reward_job(self, *args: Any, **kwargs: Any) -> None:
        self._next = self.feedback

    async def run_async(self, job: None) -> DecisionRecord | FeedbackResult | None:
        return self._next


@pytest.fixture(scope="module")
def fixed_app(tmp_path_factory: pytest.TempPathFactory) -> tuple[ServiceApp, _FixedEngine]:
    path: Path = tmp_path_factory.mktemp("fixed") / "unused.db"  # never opened: no lifespan
    settings = make_settings(f"sqlite:///{path}", api_token=API_TOKEN)
    app = create_app(settings)
    assert isinstance(app, ServiceApp)
    real = Engine(MemoryStore(), engine_config(settings))
    tips = [Candidate("t-a"), Candidate("t-b")]
    record = real.store.submit(real.rank_job("u1", Context(9, 2), tips)).result()
    job = real.legacy_reward_job(
        "u1", "egreedy-v1", "t-a", -0.25, client_candidate=tips[0], client_context=Context(9, 2)
    )
    app.state.engine = _FixedEngine(real, record, real.store.submit(job).result())
    return app, app.state.engine


def _call(app: ServiceApp, path: str, body: bytes) -> tuple[list[Message], dict[str, Any]]:
    """``POST path`` sent to the app in-process: what it sent, and the request's scope after."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", f"Bearer {API_TOKEN}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent, scope


def _both_ways(app: ServiceApp, path: str, body: bytes) -> list[list[Message]]:
    """What the app sends directly, then through FastAPI's route (a dependency override)."""
    direct, scope = _call(app, path, body)
    assert "route" not in scope  # the direct path answered: FastAPI's router never saw it
    app.dependency_overrides[require_api] = require_api
    try:
        framework, scope = _call(app, path, body)
    finally:
        app.dependency_overrides.clear()
    assert "route" in scope
    return [direct, framework]


_AWKWARD_FLOATS = [1e-07, -1e-05, 1e16, 1.5e300, -0.0, 0.1 + 0.2, 123456789.123, 5e-324]
_AWKWARD_IDS = ["t-é", "t-😀", 't-"q"', "t-\\", "t-\n\t\x01\x7f", "t-\u2028", "t-\ufeff"]


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(_AWKWARD_FLOATS) | st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(_AWKWARD_IDS) | st.text(min_size=1, max_size=20),
    st.sampled_from(["/score", "/score/egreedy"]),
)
def test_score_answers_are_the_routes_bytes_in_process(
    fixed_app: tuple[ServiceApp, _FixedEngine], score: float, tip_id: str, path: str
) -> None:
    """Whatever the score and the chosen id, the direct path sends the route's exact bytes
    and headers (orjson would spell ``1e-07`` as ``1e-7``: the contract's JSON is the
    standard library's)."""
    app, fixed = fixed_app
    base = fixed.record
    fixed.record = dataclasses.replace(
        base,
        candidates=(Candidate(tip_id), base.candidates[1]),
        scores=np.array([score, 0.0]),
        chosen=0,
    )
    try:
        body = json.dumps(score_body("u1", [candidate("t-a"), candidate("t-b")])).encode()
        direct, framework = _both_ways(app, path, body)
    finally:
        fixed.record = base
    assert direct == framework
    assert json.loads(direct[1]["body"])["score"] == score


@pytest.mark.parametrize("path", ["/reward", "/reward/egreedy"])
def test_reward_answers_are_the_routes_bytes_in_process(
    fixed_app: tuple[ServiceApp, _FixedEngine], path: str
) -> None:
    app, _ = fixed_app
    body = json.dumps(reward_body("u1", "t-a", -0.25)).encode()
    direct, framework = _both_ways(app, path, body)
    assert direct == framework
    assert direct[1]["body"] == b'{"ok":true}'


@settings(max_examples=200)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=10,
    )
)
def test_exact_json_is_json_response_rendering(content: Any) -> None:
    assert exact_json(content) == JSONResponse(content).body


# -- what ServiceApp.direct refuses to take over ----------------------------------------------


async def _answer(engine: Any, metrics: Any, body: Any) -> dict[str, Any]:
    return {}


def _router_with(route: Any) -> APIRouter:
    router = APIRouter()
    router.post("/x", dependencies=[ApiDep])(route)
    return router


async def _fine(body: ScoreIn, request: Request) -> JSONResponse:
    return JSONResponse({})


async def _with_query(body: ScoreIn, request: Request, policy: str = "p") -> JSONResponse:
    return JSONResponse({})


async def _returns_a_dict(body: ScoreIn, request: Request) -> dict[str, Any]:
    return {}


async def _other_model(body: FeedbackIn, request: Request) -> JSONResponse:
    return JSONResponse({})


@pytest.mark.parametrize(
    ("endpoint", "accepted"),
    [(_fine, True), (_with_query, False), (_returns_a_dict, False), (_other_model, False)],
)
def test_direct_takes_only_routes_shaped_as_it_answers(endpoint: Any, accepted: bool) -> None:
    app = ServiceApp()
    route = DirectRoute(ScoreIn, _answer)
    if accepted:
        app.direct(_router_with(endpoint), {"/x": route})
        app.direct(compat.router, {"/score": compat.DIRECT["/score"]})  # adds to the first
        assert set(app._direct) == {"/x", "/score"}
    else:
        with pytest.raises(ValueError, match="/x"):
            app.direct(_router_with(endpoint), {"/x": route})
    with pytest.raises(ValueError, match="/y"):
        app.direct(_router_with(endpoint), {"/y": route})
