"""Fixtures for the browser tests: Debian's headless Chromium driven by Playwright, against a
real server started here on its own SQLite file.

Without ``/usr/bin/chromium`` (``apt-get install chromium``) these tests skip and say so, except
under ``CI=true``, where they fail: CI installs it. Playwright's own browser downloads are never
used. Set ``OO_ML_CONSOLE_SCREENSHOTS=docs/img`` to refresh the README's screenshots.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from oo_ml.api.app import create_app
from tests.api.support import LiveServer, candidate, make_settings, score_body

from .support import CHROMIUM, CHROMIUM_ARGS, USER


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI installs it, so this is an error here)")
    pytest.skip(reason)


@pytest.fixture(scope="package")  # closed after the browser tests: its loop must not leak
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} not found: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415 (optional until used)
    except ImportError:
        _unavailable('playwright is not installed: pip install -e ".[test]"')
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


def _seed_decisions(client: httpx.Client, rounds: int = 30) -> list[str]:
    """A user who has been shown tips under two policies and answered all but the last."""
    events = []
    sources = ("todoist", "calendar", "email")
    for i in range(rounds):
        tips = [
            candidate(
                f"t-{k}",
                content=f"Task {k}",
                source=sources[(i + k) % 3],
                is_overdue=(i + k) % 4 == 0,
                task_age_days=float((i * 3 + k) % 9) - 2.0,
                priority=1 + (i + 2 * k) % 4,
            )
            for k in range(5)
        ]
        body = score_body(USER, tips, hour=7 + i % 12, day=i % 7)
        body["policy"] = "ucb-ix1" if i % 2 else "egreedy-v1"
        decided = client.post("/v1/rank", json=body)
        decided.raise_for_status()
        event_id = decided.json()["event_id"]
        events.append(event_id)
        if i == rounds - 1:
            break
        chosen = next(t for t in tips if t["id"] == decided.json()["tip_id"])
        action = "done" if chosen["features"]["priority"] >= 3 else ("snooze", "dismiss")[i % 2]
        client.post(
            "/v1/feedback",
            json={
                "event_id": event_id,
                "action": action,
                "dwell_ms": 45_000 if action == "done" else None,
            },
        ).raise_for_status()
    return events


@dataclass(frozen=True)
class Console:
    server: LiveServer
    events: list[str]

    @property
    def url(self) -> str:
        return self.server.base_url


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """One server for the module, with a user's decisions already logged."""
    path = tmp_path_factory.mktemp("browser") / "oo-ml.db"
    server = LiveServer(create_app(make_settings(f"sqlite:///{path}"))).start()
    try:
        yield Console(server, _seed_decisions(server.client))
    finally:
        server.stop()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: ``OO_ML_CONSOLE_SCREENSHOTS`` if set, else a temporary folder."""
    chosen = os.environ.get("OO_ML_CONSOLE_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder
