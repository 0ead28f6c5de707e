"""``ServiceApp``'s direct path for ``/v1/rank`` and ``/v1/feedback`` answers as FastAPI does.

Each request is sent to two servers on one database: one as configured (direct path), one
whose app overrides a dependency with itself, which sends every request through FastAPI's own
handling (``oo_ml.api.fast``). Status, body and metrics must agree.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from oo_ml.api.deps import require_api

from .conftest import ServerFactory
from .support import API_TOKEN, score_body, three_tips

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
