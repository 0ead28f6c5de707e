"""What the API tests share: a real uvicorn server in a thread, request bodies shaped as the oO
app sends them, and a snapshot of everything the service holds about one user."""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx
import uvicorn
from fastapi import FastAPI

from oo_ml.api.app import create_app
from oo_ml.engine import Engine
from oo_ml.settings import Settings
from oo_ml.store.base import Store

ADMIN_TOKEN = "adm-3f9c1e7b2d4a6f80a1b2"
API_TOKEN = "api-8d2e4c6a0b1f3e5d7c9a"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

EGREEDY_LABELS = [
    "hour_sin",
    "hour_cos",
    "is_overdue",
    "task_age",
    "priority",
    "dow_sin",
    "dow_cos",
]
LINUCB_LABELS = EGREEDY_LABELS[:5]
ISO_SECONDS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"


def q(user_id: str) -> str:
    """``user_id`` as one URL path segment."""
    return quote(user_id, safe="")


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for a test server: its own database, an admin token, no settle loop, no .env."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "admin_token": ADMIN_TOKEN,
        "default_reward_enabled": False,
        # Commits survive a crash of the process but skip the fsync: no test pulls the plug.
        "sqlite_synchronous": "NORMAL",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class LiveServer:
    """``app`` served by uvicorn on a free 127.0.0.1 port from a background thread."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        # proto=IPPROTO_TCP makes asyncio set TCP_NODELAY on accepted connections (no Nagle delay).
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=5
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"uvicorn-{self.port}", daemon=True)
        self.client = httpx.Client(base_url=self.base_url, trust_env=False, timeout=30)
        self._stopped = False

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the test server did not start (see the captured log)")
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not start within 30 s")
            time.sleep(0.01)
        return self

    @property
    def engine(self) -> Engine:
        engine: Engine = self.app.state.engine
        return engine

    def stop(self) -> None:
        """Shut down; stopping twice is harmless."""
        if self._stopped:
            return
        self._stopped = True
        self.client.close()
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()
        if self._thread.is_alive():
            raise RuntimeError("the test server did not stop within 30 s")


@contextmanager
def live_server(settings: Settings, *, store: Store | None = None) -> Iterator[LiveServer]:
    server = LiveServer(create_app(settings, store=store)).start()
    try:
        yield server
    finally:
        server.stop()


# -- request bodies as the oO app sends them (seed_main's ScoreRequest / RewardRequest) -----


def candidate(
    tip_id: str,
    *,
    content: str = "Write the quarterly report",
    source: str = "todoist",
    source_id: str | None = None,
    hour_of_day: int = 12,
    is_overdue: bool = False,
    task_age_days: float = 0.0,
    priority: int = 1,
) -> dict[str, Any]:
    return {
        "id": tip_id,
        "content": content,
        "source": source,
        "source_id": source_id,
        "features": {
            "hour_of_day": hour_of_day,
            "is_overdue": is_overdue,
            "task_age_days": task_age_days,
            "priority": priority,
        },
    }


def score_body(
    user_id: str, candidates: list[dict[str, Any]], *, hour: int = 9, day: int = 2
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "candidates": candidates,
        "context": {"hour_of_day": hour, "day_of_week": day},
    }


def reward_body(
    user_id: str,
    tip_id: str,
    reward: float,
    *,
    hour_of_day: int = 12,
    is_overdue: bool = False,
    task_age_days: float = 0.0,
    priority: int = 1,
    day_of_week: int | None = None,
) -> dict[str, Any]:
    """A ``/reward`` body; ``day_of_week`` is left out (the client's default) unless given."""
    body: dict[str, Any] = {
        "user_id": user_id,
        "tip_id": tip_id,
        "reward": reward,
        "features": {
            "hour_of_day": hour_of_day,
            "is_overdue": is_overdue,
            "task_age_days": task_age_days,
            "priority": priority,
        },
    }
    if day_of_week is not None:
        body["day_of_week"] = day_of_week
    return body


def three_tips() -> list[dict[str, Any]]:
    return [
        candidate("t-report", is_overdue=True, task_age_days=4.0, priority=4, source_id="td-1"),
        candidate("t-call", content="Call the dentist", task_age_days=-2.0, priority=2),
        candidate("t-inbox", content="Inbox zero", source="email", priority=1),
    ]


# -- features by hand: the existing service's encodings, written out independently ----------


def v1_features(hour: int, is_overdue: bool, age: float, priority: int) -> list[float]:
    return [
        math.sin(2 * math.pi * hour / 24),
        math.cos(2 * math.pi * hour / 24),
        float(is_overdue),
        min(max(age, 0.0), 30.0) / 30.0,
        (priority - 1) / 3,
    ]


def v2_features(hour: int, day: int, is_overdue: bool, age: float, priority: int) -> list[float]:
    return [
        *v1_features(hour, is_overdue, age, priority),
        math.sin(2 * math.pi * day / 7),
        math.cos(2 * math.pi * day / 7),
    ]


# -- what the service holds about one user --------------------------------------------------


def snapshot(client: httpx.Client, user_id: str) -> dict[str, Any]:
    """Stats under both existing policies and the active one, history and logged decisions."""
    uid = q(user_id)
    parts = {
        "stats": client.get(f"/stats/{uid}"),
        "stats_egreedy": client.get(f"/stats/egreedy/{uid}"),
        "v1_stats": client.get(f"/v1/users/{uid}/stats"),
        "v1_stats_linucb": client.get(f"/v1/users/{uid}/stats", params={"policy": "linucb-v1"}),
        "features": client.get(f"/features/{uid}"),
        "decisions": client.get(f"/v1/users/{uid}/decisions", params={"limit": 500}, headers=ADMIN),
    }
    for name, response in parts.items():
        assert response.status_code == 200, (name, response.text)
    return {name: response.json() for name, response in parts.items()}


class FakeClock:
    """A clock for ``Engine.clock`` that moves only when told to."""

    def __init__(self, now: float = 1_900_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.02)
