"""``kill -9`` of the server under write load, then a restart on the same database: every
acknowledged update is in the model, model and log agree, nothing is corrupt, it answers."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPException
from typing import Any

import numpy as np
import pytest
from sqlalchemy.engine import make_url

from tests.robustness.conftest import StartServer
from tests.robustness.load import (
    POLICY,
    Connections,
    feedback_body,
    get_json,
    rank_body,
    ridge_theta,
    send_all,
    served_theta,
)
from tests.robustness.servers import group_members

DECISIONS = 300
KILL_AFTER_ACKS = 50
LOAD_SECONDS = 120.0
ORPHAN_SECONDS = 15.0

pytestmark = pytest.mark.slow


def integrity(database_url: str) -> str:
    """SQLite's ``PRAGMA integrity_check`` of the database file."""
    conn = sqlite3.connect(make_url(database_url).database or "")
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


class FeedbackLoad:
    """Sends feedback for ``event_ids`` from a pool of threads, remembering every 200."""

    def __init__(self, base_url: str, event_ids: list[str]) -> None:
        self.base_url = base_url
        self.bodies = [feedback_body(event_id, i)[0] for i, event_id in enumerate(event_ids)]
        self.acknowledged: dict[str, int] = {}  # event id → reward_milli in the answer
        self.refused: list[str] = []
        self.enough = threading.Event()
        self._lock = threading.Lock()

    def _send(self, client: Connections, body: dict[str, Any]) -> None:
        try:
            answer = client.request("POST", "/v1/feedback", body)
        except (OSError, HTTPException):
            return  # the server died with this request in flight: not acknowledged
        with self._lock:
            if answer.status == 200:
                self.acknowledged[body["event_id"]] = answer.json()["reward_milli"]
                if len(self.acknowledged) >= KILL_AFTER_ACKS:
                    self.enough.set()
            else:
                self.refused.append(f"{answer.status} {answer.text}")

    def run(self) -> None:
        with Connections(self.base_url, timeout=30.0) as client, ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda body: self._send(client, body), self.bodies))
        self.enough.set()


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_under_feedback_load_keeps_every_acknowledged_update(
    database_url: str, serve: StartServer, workers: int
) -> None:
    user = "user-under-load"
    server = serve(database_url, workers=workers)
    ranked = send_all(
        server.base_url, [("POST", "/v1/rank", rank_body(user, i)) for i in range(DECISIONS)]
    )
    assert [r.status for r in ranked] == [200] * DECISIONS
    event_ids = [r.json()["event_id"] for r in ranked]

    load = FeedbackLoad(server.base_url, event_ids)
    sender = threading.Thread(target=load.run)
    sender.start()
    try:
        assert load.enough.wait(LOAD_SECONDS)
        server.kill()
    finally:
        sender.join(LOAD_SECONDS)
    assert not sender.is_alive()
    assert load.refused == []
    assert KILL_AFTER_ACKS <= len(load.acknowledged) < DECISIONS, "the kill came after the load"
    if database_url.startswith("sqlite"):
        assert integrity(database_url) == "ok"

    restarted = serve(database_url, workers=workers, port=server.port)
    logged = get_json(restarted.base_url, f"/v1/users/{user}/decisions", limit=DECISIONS)
    assert {d["event_id"] for d in logged["decisions"]} == set(event_ids)
    answered = [d for d in logged["decisions"] if d["feedback"] is not None]
    recorded = {d["event_id"]: d["feedback"]["reward_milli"] for d in answered}
    assert recorded.items() >= load.acknowledged.items()  # every acknowledged update survived
    assert all(d["feedback"]["applied"] for d in answered)

    stats = get_json(restarted.base_url, f"/v1/users/{user}/stats", policy=POLICY)
    # The model and the feedback log agree: no update without its row, no row without update.
    assert stats["reward_count"] == stats["model_updates"] == len(answered)
    assert stats["reward_sum"] == sum(recorded.values()) / 1000
    np.testing.assert_allclose(served_theta(stats), ridge_theta(answered), rtol=1e-9, atol=1e-12)

    rank = send_all(restarted.base_url, [("POST", "/v1/rank", rank_body(user, DECISIONS))])[0]
    assert rank.status == 200, rank.text
    body, milli = feedback_body(rank.json()["event_id"], 0)
    answer = send_all(restarted.base_url, [("POST", "/v1/feedback", body)])[0]
    assert answer.status == 200, answer.text
    assert answer.json()["reward_milli"] == milli
    after = get_json(restarted.base_url, f"/v1/users/{user}/stats", policy=POLICY)
    assert after["reward_count"] == len(answered) + 1
    assert after["pulls"] == DECISIONS + 1
    if database_url.startswith("sqlite"):
        assert integrity(database_url) == "ok"


def test_kill_9_of_the_supervisor_alone_takes_its_workers_down(
    sqlite_url: str, serve: StartServer
) -> None:
    """``kill -9`` of the pid of ``oo-ml serve`` (what an operator or a process manager
    kills) must not leave its workers behind: orphans go on serving the port, and a restart on
    that port would run beside them, since ``SO_REUSEPORT`` lets it bind."""
    server = serve(sqlite_url, workers=2)
    workers = set(server.worker_pids())
    assert len(workers) == 2

    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=ORPHAN_SECONDS)

    deadline = time.monotonic() + ORPHAN_SECONDS
    while (orphans := workers & set(group_members(server.process.pid))) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert not orphans, f"workers {sorted(orphans)} outlived their supervisor"
