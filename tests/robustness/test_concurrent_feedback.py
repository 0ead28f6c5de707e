"""Issue: 500 concurrent feedback requests for one user across 2 worker processes are all
applied, with no 5xx. The existing service loses most of them
(``benchmarks/lost_updates.py`` counts how many)."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import numpy as np
import pytest
import sqlalchemy
from sqlalchemy.pool import NullPool

from oo_ml.store.sql import _lock_key
from tests.robustness.conftest import StartServer
from tests.robustness.load import (
    ADMIN,
    POLICY,
    feedback_body,
    get_json,
    legacy_reward_body,
    rank_body,
    ridge_theta,
    send_all,
    served_theta,
)
from tests.robustness.servers import Server, connections_by_worker, metric_total, metrics_by_worker

N = 500
LOCK_WAIT_SECONDS = 60.0

pytestmark = pytest.mark.slow


def counted_by_each_worker(server: Server, metric: str) -> dict[int, float]:
    """``metric`` summed over its labels, as each of the server's workers counted it."""
    by_worker = metrics_by_worker(server)
    assert sorted(by_worker) == sorted(server.worker_pids()), server.log_tail()
    return {pid: metric_total(text, metric) for pid, text in by_worker.items()}


def assert_both_workers_counted(server: Server, metric: str, total: int) -> None:
    counted = counted_by_each_worker(server, metric)
    assert len(counted) == 2, counted
    assert sum(counted.values()) == total, counted
    assert all(count > 0 for count in counted.values()), counted


def test_500_concurrent_feedbacks_for_one_user_on_two_workers_are_all_applied(
    database_url: str, serve: StartServer
) -> None:
    server = serve(database_url, workers=2)
    assert len(set(server.worker_pids())) == 2
    user = "one-busy-user"
    ranked = send_all(server.base_url, [("POST", "/v1/rank", rank_body(user, i)) for i in range(N)])
    assert [r.status for r in ranked] == [200] * N, {r.text for r in ranked}
    event_ids = [r.json()["event_id"] for r in ranked]
    bodies = [feedback_body(event_id, i) for i, event_id in enumerate(event_ids)]

    answers = send_all(server.base_url, [("POST", "/v1/feedback", body) for body, _ in bodies])

    assert [r.status for r in answers] == [200] * N, {r.text for r in answers}
    assert [r.json()["duplicate"] for r in answers] == [False] * N
    assert [r.json()["reward_milli"] for r in answers] == [milli for _, milli in bodies]
    stats = get_json(server.base_url, f"/v1/users/{user}/stats", policy=POLICY)
    assert (stats["pulls"], stats["reward_count"], stats["model_updates"]) == (N, N, N)
    assert stats["reward_sum"] == sum(milli for _, milli in bodies) / 1000
    fetched = send_all(server.base_url, [("GET", f"/v1/decisions/{e}", None) for e in event_ids])
    assert [r.status for r in fetched] == [200] * N
    logged = [r.json() for r in fetched]
    assert all(d["feedback"]["applied"] for d in logged)
    np.testing.assert_allclose(served_theta(stats), ridge_theta(logged), rtol=1e-9, atol=1e-12)
    assert_both_workers_counted(server, "oo_ml_decisions_total", N)
    assert_both_workers_counted(server, "oo_ml_feedback_total", N)


def test_500_concurrent_legacy_rewards_for_one_user_on_two_workers_all_count(
    database_url: str, serve: StartServer
) -> None:
    server = serve(database_url, workers=2)
    user = "one-busy-legacy-user"
    rewards = [legacy_reward_body(user, f"tip-{i}", i) for i in range(N)]

    answers = send_all(server.base_url, [("POST", "/reward/egreedy", body) for body in rewards])

    assert [r.status for r in answers] == [200] * N, {r.text for r in answers}
    stats = get_json(server.base_url, f"/stats/egreedy/{user}")
    assert stats["reward_count"] == N
    assert stats["cumulative_reward"] == pytest.approx(sum(body["reward"] for body in rewards))
    logged = get_json(server.base_url, f"/v1/users/{user}/decisions", limit=N)["decisions"]
    assert len(logged) == N
    assert all(d["origin"] == "legacy" and d["feedback"]["applied"] for d in logged)
    np.testing.assert_allclose(stats["theta"], ridge_theta(logged), rtol=1e-9, atol=1e-12)
    assert_both_workers_counted(server, "oo_ml_feedback_total", N)


def wait_for_lock_waiters(conn: sqlalchemy.Connection, key: int, waiters: int) -> None:
    """Until ``waiters`` sessions queue for the advisory lock ``key`` (PostgreSQL)."""
    unsigned = key % 2**64
    query = sqlalchemy.text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND classid::bigint = :high AND objid::bigint = :low AND objsubid = 1"
    )
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while (
        conn.execute(query, {"high": unsigned >> 32, "low": unsigned % 2**32}).scalar() != waiters
    ):
        conn.commit()
        assert time.monotonic() < deadline, f"{waiters} workers never queued for the model lock"
        time.sleep(0.01)
    conn.commit()


def post_on_each_worker_while_model_is_locked(
    server: Server, database_url: str, user: str, requests: list[tuple[str, dict[str, Any]]]
) -> list[int]:
    """Send ``requests[i]`` to worker ``i`` while a test session holds the user's model lock,
    wait until every worker's job queues for it, then let them all go at once."""
    engine = sqlalchemy.create_engine(database_url, poolclass=NullPool)
    connections = connections_by_worker(server)
    assert len(connections) == len(requests)
    key = _lock_key(user, POLICY)
    headers = {"Content-Type": "application/json", **ADMIN}
    try:
        with engine.connect() as holder:
            holder.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            holder.commit()
            try:
                for conn, (path, body) in zip(connections.values(), requests, strict=True):
                    conn.request("POST", path, body=json.dumps(body), headers=headers)
                wait_for_lock_waiters(holder, key, len(requests))
            finally:
                holder.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                holder.commit()
        statuses = []
        for conn in connections.values():
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        return statuses
    finally:
        for conn in connections.values():
            conn.close()
        engine.dispose()


@pytest.mark.postgres
def test_two_workers_applying_feedback_for_one_user_at_the_same_moment_both_count(
    postgres_url: str, serve: StartServer
) -> None:
    """The interleaving a lost update needs, forced: both jobs have read what they need and
    wait for the model lock at the same time."""
    server = serve(postgres_url, workers=2)
    user = f"simultaneous-feedback-{secrets.token_hex(4)}"  # lock keys span schemas
    ranked = send_all(server.base_url, [("POST", "/v1/rank", rank_body(user, i)) for i in (0, 1)])
    event_ids = [r.json()["event_id"] for r in ranked]
    requests = [("/v1/feedback", feedback_body(e, i)[0]) for i, e in enumerate(event_ids)]

    statuses = post_on_each_worker_while_model_is_locked(server, postgres_url, user, requests)

    assert statuses == [200, 200]
    stats = get_json(server.base_url, f"/v1/users/{user}/stats", policy=POLICY)
    assert (stats["reward_count"], stats["model_updates"]) == (2, 2)


@pytest.mark.postgres
def test_two_workers_rewarding_one_shown_tip_at_the_same_moment_both_count(
    postgres_url: str, serve: StartServer
) -> None:
    """``/reward`` counts every call, "a tip rewarded twice gets a second record" — also when
    the two calls reach two workers at once. Fails: both jobs find the tip's decision without
    feedback before they take the model lock, so the second one to get it sees the first
    one's feedback, answers ``{"ok": true}`` and drops its reward."""
    server = serve(postgres_url, workers=2)
    user = f"simultaneous-legacy-{secrets.token_hex(4)}"
    shown = send_all(server.base_url, [("POST", "/score/egreedy", rank_body(user, 0))])[0]
    tip_id = shown.json()["tip_id"]
    requests = [("/reward/egreedy", legacy_reward_body(user, tip_id, i)) for i in (0, 1)]

    statuses = post_on_each_worker_while_model_is_locked(server, postgres_url, user, requests)

    assert statuses == [200, 200]
    stats = get_json(server.base_url, f"/stats/egreedy/{user}")
    assert stats["reward_count"] == 2
