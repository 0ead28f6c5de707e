"""The reward wait time: a decision without feedback gets the default reward, once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from oo_ml.api.app import create_app
from oo_ml.cli import app as cli
from oo_ml.settings import Settings

from .conftest import ServerFactory
from .support import FakeClock, LiveServer, score_body, three_tips, wait_until

WAIT_SECONDS = 60.0


def rank(client: httpx.Client, user: str = "waiting") -> str:
    response = client.post(
        "/v1/rank", json={**score_body(user, three_tips()), "policy": "linucb-v1"}
    )
    assert response.status_code == 200, response.text
    event: str = response.json()["event_id"]
    return event


def logged_feedback(client: httpx.Client, event: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = client.get(f"/v1/decisions/{event}").json()["feedback"]
    return found


def settled_feedback(client: httpx.Client, event: str) -> dict[str, Any]:
    found = logged_feedback(client, event)
    assert found is not None, f"{event} has no feedback"
    return found


def linucb_stats(client: httpx.Client, user: str = "waiting") -> dict[str, Any]:
    stats: dict[str, Any] = client.get(
        f"/v1/users/{user}/stats", params={"policy": "linucb-v1"}
    ).json()
    return stats


@pytest.fixture
def waiting_server(start_server: ServerFactory) -> tuple[LiveServer, FakeClock]:
    server = start_server(default_reward=-0.25, reward_wait_seconds=WAIT_SECONDS)
    clock = FakeClock()
    server.engine.clock = clock
    return server, clock


def test_unanswered_decision_gets_the_default_reward_once(
    waiting_server: tuple[LiveServer, FakeClock],
) -> None:
    server, clock = waiting_server
    client, engine = server.client, server.engine
    silent = rank(client)
    answered = rank(client)
    done = client.post("/v1/feedback", json={"event_id": answered, "action": "done"})
    assert done.json()["reward"] == 0.6

    clock.advance(WAIT_SECONDS - 1)
    assert engine.settle() == 0
    assert logged_feedback(client, silent) is None

    clock.advance(2)
    assert engine.settle() == 1
    settled = logged_feedback(client, silent)
    assert settled is not None
    assert (settled["origin"], settled["reward"], settled["action"]) == ("default", -0.25, None)
    assert settled["applied"] is True
    stats = linucb_stats(client)
    assert (stats["reward_count"], stats["model_updates"]) == (2, 2)
    assert stats["reward_sum"] == pytest.approx(0.6 - 0.25)

    clock.advance(3600)
    assert engine.settle() == 0
    assert linucb_stats(client) == stats
    assert settled_feedback(client, answered)["origin"] == "client"

    late = client.post(
        "/v1/feedback", json={"eventId": silent, "action": "done", "dwellMs": 30_000}
    )
    assert late.status_code == 200
    assert late.json()["duplicate"] is True
    assert late.json()["reward"] == -0.25
    assert linucb_stats(client) == stats
    assert logged_feedback(client, silent) == settled


def test_the_server_settles_on_its_own_when_enabled(start_server: ServerFactory) -> None:
    server = start_server(
        default_reward_enabled=True,
        default_reward=0.1,
        reward_wait_seconds=WAIT_SECONDS,
        settle_interval_seconds=0.05,
    )
    clock = FakeClock()
    server.engine.clock = clock
    event = rank(server.client)
    clock.advance(WAIT_SECONDS + 1)
    wait_until(lambda: logged_feedback(server.client, event) is not None)
    assert settled_feedback(server.client, event)["reward"] == 0.1
    assert linucb_stats(server.client)["reward_count"] == 1


def _settle_loops_running(settings: Settings) -> int:
    app = create_app(settings)

    async def count() -> int:
        async with app.router.lifespan_context(app):
            return sum(
                task.get_coro().__qualname__ == "_settle_forever"  # type: ignore[union-attr]
                for task in asyncio.all_tasks()
            )

    return asyncio.run(count())


@pytest.mark.parametrize(("enabled", "loops"), [("false", 0), ("true", 1)])
def test_default_reward_enabled_decides_whether_a_settle_loop_runs(
    monkeypatch: pytest.MonkeyPatch, database_url: str, enabled: str, loops: int
) -> None:
    monkeypatch.setenv("OO_ML_DATABASE_URL", database_url)
    monkeypatch.setenv("OO_ML_DEFAULT_REWARD_ENABLED", enabled)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.default_reward_enabled is (enabled == "true")
    assert _settle_loops_running(settings) == loops


def test_cli_settles_a_sqlite_file(
    start_server: ServerFactory, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server()
    # Decisions made two hours ago, one of them answered.
    server.engine.clock = FakeClock(time.time() - 2 * 3600)
    silent, answered = rank(server.client), rank(server.client)
    server.client.post("/v1/feedback", json={"event_id": answered, "action": "snooze"})
    fresh_clock = FakeClock(time.time())
    server.engine.clock = fresh_clock
    fresh = rank(server.client)

    monkeypatch.chdir(tmp_path)  # no stray .env
    env = {
        "OO_ML_DATABASE_URL": database_url,
        "OO_ML_REWARD_WAIT_SECONDS": "3600",
        "OO_ML_DEFAULT_REWARD": "-0.2",
    }
    result = CliRunner().invoke(cli, ["rewards", "settle"], env=env)
    assert result.exit_code == 0, result.output
    assert "settled 1 decisions with reward -0.200" in result.output
    settled = logged_feedback(server.client, silent)
    assert settled is not None
    assert (settled["origin"], settled["reward"]) == ("default", -0.2)
    assert settled_feedback(server.client, answered)["origin"] == "client"
    assert logged_feedback(server.client, fresh) is None
    assert linucb_stats(server.client)["reward_count"] == 2

    again = CliRunner().invoke(cli, ["rewards", "settle"], env=env)
    assert again.exit_code == 0, again.output
    assert "settled 0 decisions" in again.output
    assert linucb_stats(server.client)["reward_count"] == 2
