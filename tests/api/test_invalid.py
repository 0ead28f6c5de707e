"""Bad input: one table, one test per row. Every row is refused with 422 (or 413) naming the
field, and leaves the user's state exactly as it was."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from .support import (
    ADMIN,
    LiveServer,
    candidate,
    live_server,
    make_settings,
    reward_body,
    score_body,
    snapshot,
    three_tips,
)

USER = "u-bad"
OPEN_EVENT = "ev-open"
MAX_CANDIDATES = 5
MAX_BODY = 16 * 1024
RAW = "__raw__"
DELETE = object()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, migrated_sqlite_file: Path
) -> Iterator[LiveServer]:
    path = tmp_path_factory.mktemp("invalid") / "oo-ml.db"
    shutil.copyfile(migrated_sqlite_file, path)
    settings = make_settings(
        f"sqlite:///{path}", max_candidates=MAX_CANDIDATES, max_body_bytes=MAX_BODY
    )
    with live_server(settings) as running:
        seed_state(running.client)
        yield running


def seed_state(client: httpx.Client) -> None:
    """A user with history, rewards under both policies and one unanswered decision."""
    for path, reward in (("/score", "/reward"), ("/score/egreedy", "/reward/egreedy")):
        chosen = client.post(path, json=score_body(USER, three_tips())).json()["tip_id"]
        assert client.post(reward, json=reward_body(USER, chosen, 0.5)).status_code == 200
    rank = {**score_body(USER, three_tips()), "event_id": OPEN_EVENT}
    assert client.post("/v1/rank", json=rank).status_code == 200


BODIES: dict[str, dict[str, Any]] = {
    "/score": score_body(USER, three_tips()),
    "/score/egreedy": score_body(USER, three_tips()),
    "/v1/rank": {**score_body(USER, three_tips()), "policy": "linucb-v1"},
    "/reward": reward_body(USER, "t-report", 0.5, is_overdue=True, day_of_week=3),
    "/reward/egreedy": reward_body(USER, "t-report", 0.5, day_of_week=3),
    "/v1/feedback": {"event_id": OPEN_EVENT, "action": "done", "dwell_ms": 30_000},
}


@dataclass(frozen=True)
class Bad:
    """``path`` with its valid body changed at ``field`` (dotted) to ``value``."""

    path: str
    field: str
    value: Any
    loc: tuple[str | int, ...] | None = None  # default: ("body", *field)
    raw: str | None = None  # JSON text put in place of ``value``

    def body(self) -> bytes:
        body = copy.deepcopy(BODIES[self.path])
        *parents, last = [int(p) if p.isdigit() else p for p in self.field.split(".")]
        target: Any = body
        for part in parents:
            target = target[part]
        if self.value is DELETE:
            del target[last]
        else:
            target[last] = RAW if self.raw is not None else self.value
        text = json.dumps(body)
        if self.raw is not None:
            text = text.replace(json.dumps(RAW), self.raw)
        return text.encode()

    def expected_loc(self) -> tuple[str | int, ...]:
        if self.loc is not None:
            return self.loc
        return ("body", *(int(p) if p.isdigit() else p for p in self.field.split(".")))


AGE = "candidates.0.features.task_age_days"
HOUR = "context.hour_of_day"
DAY = "context.day_of_week"
PRIORITY = "candidates.1.features.priority"
OVERDUE = "candidates.0.features.is_overdue"


def _many(n: int) -> list[dict[str, Any]]:
    return [candidate(f"tip-{i}") for i in range(n)]


def _raw(path: str, field: str, text: str, loc: tuple[str | int, ...] | None = None) -> Bad:
    return Bad(path, field, None, loc=loc, raw=text)


ROWS: dict[str, Bad] = {
    # Non-finite and overflowing numbers, sent as the raw JSON text a careless client emits.
    "age-nan": _raw("/score", AGE, "NaN"),
    "age-inf": _raw("/score/egreedy", AGE, "Infinity"),
    "age-minus-inf": _raw("/v1/rank", AGE, "-Infinity"),
    "age-overflow-1e400": _raw("/score", AGE, "1e400"),
    "hour-nan": _raw("/score", HOUR, "NaN"),
    "hour-overflow": _raw("/v1/rank", HOUR, "1e400"),
    "day-minus-inf": _raw("/v1/rank", DAY, "-Infinity"),
    "priority-inf": _raw("/score", PRIORITY, "Infinity"),
    "reward-nan": _raw("/reward", "reward", "NaN"),
    "reward-inf": _raw("/reward/egreedy", "reward", "Infinity"),
    "reward-overflow": _raw("/reward", "reward", "-1e400"),
    "reward-features-age-nan": _raw("/reward", "features.task_age_days", "NaN"),
    "dwell-nan": _raw("/v1/feedback", "dwell_ms", "NaN"),
    "dwell-overflow": _raw("/v1/feedback", "dwell_ms", "1e400"),
    # Out of range.
    "hour-24": Bad("/score", HOUR, 24),
    "hour-minus-1": Bad("/v1/rank", HOUR, -1),
    "hour-99-in-reward": Bad("/reward", "features.hour_of_day", 99),
    "hour-24-in-candidate": Bad("/score", "candidates.2.features.hour_of_day", 24),
    "day-7": Bad("/score/egreedy", DAY, 7),
    "day-minus-1": Bad("/v1/rank", DAY, -1),
    "day-7-in-reward": Bad("/reward/egreedy", "day_of_week", 7),
    "priority-0": Bad("/score", PRIORITY, 0),
    "priority-5": Bad("/v1/rank", PRIORITY, 5),
    "priority-5-in-reward": Bad("/reward", "features.priority", 5),
    "age-over-a-century": Bad("/score", AGE, 36_501),
    "age-minus-a-century": Bad("/v1/rank", AGE, -36_501.0),
    "age-1e300": Bad("/score", AGE, 1e300),
    "reward-above-one": Bad("/reward", "reward", 1.5),
    "reward-below-minus-one": Bad("/reward/egreedy", "reward", -2),
    # Wrong JSON types.
    "hour-as-string": Bad("/score", HOUR, "12"),
    "hour-as-float": Bad("/v1/rank", HOUR, 12.0),
    "priority-as-float": Bad("/score", PRIORITY, 2.0),
    "priority-as-string": Bad("/score/egreedy", PRIORITY, "4"),
    "overdue-as-1": Bad("/score", OVERDUE, 1),
    "overdue-as-string": Bad("/v1/rank", OVERDUE, "true"),
    "overdue-as-1-in-reward": Bad("/reward", "features.is_overdue", 1),
    "age-as-string": Bad("/score", AGE, "3"),
    "reward-as-string": Bad("/reward", "reward", "1"),
    "reward-as-bool": Bad("/reward", "reward", True),
    "user-id-null": Bad("/score", "user_id", None),
    "user-id-int": Bad("/v1/rank", "user_id", 42),
    "user-id-empty": Bad("/score", "user_id", ""),
    "user-id-missing": Bad("/score", "user_id", DELETE),
    "user-id-257-chars": Bad("/v1/rank", "user_id", "u" * 257),
    "candidates-null": Bad("/score", "candidates", None),
    "candidate-id-null": Bad("/score", "candidates.0.id", None),
    "candidate-id-missing": Bad("/v1/rank", "candidates.1.id", DELETE),
    "candidate-id-empty": Bad("/score", "candidates.1.id", ""),
    "content-null": Bad("/score", "candidates.0.content", None),
    "source-missing": Bad("/score/egreedy", "candidates.2.source", DELETE),
    "context-as-list": Bad("/score", "context", [9, 2]),
    "tip-id-null": Bad("/reward", "tip_id", None),
    "features-null-in-reward": Bad("/reward/egreedy", "features", None),
    "features-missing-in-reward": Bad("/reward", "features", DELETE),
    "event-id-null": Bad("/v1/feedback", "event_id", None),
    "action-null": Bad("/v1/feedback", "action", None),
    "dwell-as-string": Bad("/v1/feedback", "dwell_ms", "1000"),
    "dwell-as-float": Bad("/v1/feedback", "dwell_ms", 1000.5),
    # Candidates, policies, actions, ids.
    "no-candidates": Bad("/score", "candidates", []),
    "no-candidates-rank": Bad("/v1/rank", "candidates", []),
    "duplicate-candidate-ids": Bad("/v1/rank", "candidates.1.id", "t-report"),
    "duplicate-candidate-ids-score": Bad("/score", "candidates.2.id", "t-call"),
    "more-than-max-candidates": Bad("/v1/rank", "candidates", _many(MAX_CANDIDATES + 1)),
    "more-than-max-score": Bad("/score/egreedy", "candidates", _many(MAX_CANDIDATES + 1)),
    "unknown-policy": Bad("/v1/rank", "policy", "nope-v9"),
    "bad-event-id": Bad("/v1/rank", "event_id", "has space"),
    "unknown-action": Bad("/v1/feedback", "action", "clicked"),
    "negative-dwell": Bad("/v1/feedback", "dwell_ms", -1),
    "dwell-over-30-days": Bad("/v1/feedback", "dwell_ms", 30 * 24 * 3600 * 1000 + 1),
    "feedback-bad-event-id": Bad("/v1/feedback", "event_id", "ev/../open"),
}


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_bad_input_is_422_naming_the_field_and_changes_nothing(
    server: LiveServer, row: Bad
) -> None:
    client = server.client
    before = snapshot(client, USER)
    response = client.post(
        row.path, content=row.body(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    locs = [tuple(d["loc"]) for d in response.json()["detail"]]
    assert row.expected_loc() in locs, locs
    assert snapshot(client, USER) == before


def test_camel_case_negative_dwell_names_the_field_as_sent(server: LiveServer) -> None:
    before = snapshot(server.client, USER)
    body = {"eventId": OPEN_EVENT, "action": "done", "dwellMs": -5}
    response = server.client.post("/v1/feedback", json=body)
    assert response.status_code == 422
    assert ("body", "dwellMs") in [tuple(d["loc"]) for d in response.json()["detail"]]
    assert snapshot(server.client, USER) == before


def test_unknown_policy_in_the_stats_query_is_422(server: LiveServer) -> None:
    response = server.client.get(f"/v1/users/{USER}/stats", params={"policy": "nope-v9"})
    assert response.status_code == 422
    assert any("policy" in d["loc"] for d in response.json()["detail"])


def _oversized() -> bytes:
    body = score_body(USER, three_tips())
    body["padding"] = "x" * (MAX_BODY + 1)  # an ignored field: only the size is wrong
    return json.dumps(body).encode()


@pytest.mark.parametrize("path", ["/score", "/v1/rank", "/reward", "/v1/feedback"])
def test_oversized_body_is_413_and_changes_nothing(server: LiveServer, path: str) -> None:
    before = snapshot(server.client, USER)
    response = server.client.post(
        path, content=_oversized(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert snapshot(server.client, USER) == before


def test_oversized_chunked_body_is_413(server: LiveServer) -> None:
    """Without a Content-Length the limit still holds while the body streams in."""
    data = _oversized()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), 1024):
            yield data[start : start + 1024]

    before = snapshot(server.client, USER)
    response = server.client.post(
        "/v1/rank", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert snapshot(server.client, USER) == before


def test_the_state_snapshot_sees_a_real_change(server: LiveServer) -> None:
    """The control for the table above: an accepted request does change the snapshot."""
    client = server.client
    before = snapshot(client, USER)
    assert client.post("/score", json=score_body(USER, three_tips())).status_code == 200
    after = snapshot(client, USER)
    assert after != before
    assert after["stats"]["pulls"] == before["stats"]["pulls"] + 1
    assert len(after["decisions"]["decisions"]) == len(before["decisions"]["decisions"]) + 1
    # Put the state back as the other rows expect it: forget and re-seed the user.
    assert client.delete(f"/v1/users/{USER}", headers=ADMIN).status_code == 200
    seed_state(client)
