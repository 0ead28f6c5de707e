"""Request bodies, a concurrent HTTP client, and θ recomputed from what the service logged."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPException
from typing import Any
from urllib.parse import urlencode, urlsplit

import numpy as np

from tests.robustness.servers import ADMIN_TOKEN

POLICY = "egreedy-v1"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

# (action, dwell_ms) and its dwell-v1 reward in thousandths.
OUTCOMES = (
    (("done", 30_000), 1000),
    (("snooze", None), 100),
    (("dismiss", None), -1000),
    (("done", 5_000), -300),
    (("done", 300_000), 600),
    (("done", None), 600),
)


def rank_body(user_id: str, i: int) -> dict[str, Any]:
    """The ``i``-th ``/v1/rank`` request: three candidates whose features vary with ``i``."""
    candidates = [
        {
            "id": f"tip-{i}-{j}",
            "content": "",
            "source": "todoist",
            "features": {
                "is_overdue": (i + j) % 3 == 0,
                "task_age_days": float((7 * i + 3 * j) % 40) - 5.0,
                "priority": 1 + (i + 2 * j) % 4,
            },
        }
        for j in range(3)
    ]
    context = {"hour_of_day": (5 * i) % 24, "day_of_week": i % 7}
    return {"user_id": user_id, "policy": POLICY, "candidates": candidates, "context": context}


def feedback_body(event_id: str, i: int) -> tuple[dict[str, Any], int]:
    """The ``i``-th ``/v1/feedback`` body for ``event_id`` and the reward it must earn."""
    (action, dwell_ms), milli = OUTCOMES[i % len(OUTCOMES)]
    return {"event_id": event_id, "action": action, "dwell_ms": dwell_ms}, milli


def legacy_reward_body(user_id: str, tip_id: str, i: int) -> dict[str, Any]:
    """The ``i``-th ``/reward/egreedy`` body: the old contract's numeric reward and features."""
    return {
        "user_id": user_id,
        "tip_id": tip_id,
        "reward": [1.0, 0.5, 0.0, -0.5, -1.0][i % 5],
        "features": {
            "hour_of_day": (3 * i) % 24,
            "is_overdue": i % 2 == 0,
            "task_age_days": float(i % 31),
            "priority": 1 + i % 4,
        },
        "day_of_week": i % 7,
    }


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


class Connections:
    """Keep-alive HTTP/1.1 connections to one server, one per calling thread.

    ``http.client`` rather than httpx: with tens of connections in flight, httpx's client costs
    several milliseconds of CPU per request, enough to make the client the bottleneck.
    """

    def __init__(self, base_url: str, timeout: float = 120.0) -> None:
        parsed = urlsplit(base_url)
        self._address = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self._timeout = timeout
        self._local = threading.local()
        self._opened: list[HTTPConnection] = []

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Answer:
        """One request; raises ``OSError`` or ``http.client.HTTPException`` if the server
        goes away, and the next request from this thread opens a new connection."""
        conn: HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = HTTPConnection(*self._address, timeout=self._timeout)
            self._local.conn = conn
            self._opened.append(conn)
        headers = dict(ADMIN)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, None if body is None else json.dumps(body), headers)
            response = conn.getresponse()
            return Answer(response.status, response.read().decode())
        except (OSError, HTTPException):
            conn.close()
            self._local.conn = None
            raise

    def close(self) -> None:
        for conn in self._opened:
            conn.close()

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def send_all(
    base_url: str,
    requests: Sequence[tuple[str, str, dict[str, Any] | None]],
    connections: int = 50,
) -> list[Answer]:
    """Every ``(method, path, json)`` at once, over ``connections`` concurrent connections."""
    with Connections(base_url) as client, ThreadPoolExecutor(connections) as pool:
        return list(pool.map(lambda request: client.request(*request), requests))


def get_json(base_url: str, path: str, **params: Any) -> Any:
    """The JSON of a ``GET`` that must answer 200."""
    with Connections(base_url) as client:
        answer = client.request("GET", f"{path}?{urlencode(params)}" if params else path)
    assert answer.status == 200, answer.text
    return answer.json()


def ridge_theta(decisions: Sequence[dict[str, Any]], lam: float = 1.0) -> np.ndarray:
    """θ solving (λI + Σ x xᵀ) θ = Σ r x over the decisions' chosen features and rewards."""
    rows = np.array([d["candidates"][d["chosen"]]["features"] for d in decisions])
    rewards = np.array([d["feedback"]["reward_milli"] / 1000.0 for d in decisions])
    a = lam * np.eye(rows.shape[1]) + rows.T @ rows
    return np.linalg.solve(a, rows.T @ rewards)


def served_theta(stats: dict[str, Any]) -> np.ndarray:
    """θ from ``/v1/users/{id}/stats`` (a list of ``{"label", "value"}``)."""
    return np.array([entry["value"] for entry in stats["theta"]])
