"""The simulator against a running service: every decision and feedback over HTTP, none of it
through a proxy the environment names."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from oo_ml.cli import app
from oo_ml.sim.runner import HttpClient, SimConfig, SimRunner, stream_seed
from oo_ml.sim.tasks import TaskStream
from oo_ml.store.memory import MemoryStore
from oo_ml.store.sql import SqlStore

from .conftest import ServerFactory
from .support import ADMIN, q

DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, a proxied request fails

CONFIG = SimConfig(
    policies=("egreedy-v1", "ucb-ix1"),
    personas=("morning-focused", "quick-wins"),
    users=3,
    steps=8,
    seed=5,
)


@pytest.fixture
def proxied(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every proxy variable points at a port where nothing listens, localhost included."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, DEAD_PROXY)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("token", [None, "sim-client-token-5e1f"])
def test_a_run_over_http_decides_and_learns_on_the_service(
    start_server: ServerFactory, proxied: None, token: str | None
) -> None:
    server = start_server(api_token=token)
    if token is not None:
        anonymous = server.client.get("/v1/users/someone/stats")
        assert anonymous.status_code == 401  # the run's client must send the token
        server.client.headers["Authorization"] = f"Bearer {token}"
    # The environment's proxy is real to a client that trusts it: the run's client must not.
    with (
        httpx.Client(base_url=server.base_url, timeout=5.0) as trusting,
        pytest.raises(httpx.TransportError),
    ):
        trusting.get("/health")

    client = HttpClient(server.base_url, token)
    store = MemoryStore()
    try:
        run = SimRunner(store, client_factory=lambda _: client).run(CONFIG, run_id="over-http")
    finally:
        client.close()
    assert run.status == "done", run.error
    events = store.read(lambda t: t.sim_events(run.run_id))
    assert len(events) == CONFIG.total_steps
    assert all(e.oracle_reward is not None for e in events)  # the rule judge's oracle
    for policy in CONFIG.policies:
        for u in range(CONFIG.users):
            user_id = f"over-http/{policy}/u{u}"
            ours = [e for e in events if e.policy == policy and e.user_id == f"u{u}"]
            logged = server.client.get(f"/v1/users/{q(user_id)}/decisions", headers=ADMIN)
            assert logged.status_code == 200, logged.text
            decisions = logged.json()["decisions"][::-1]  # oldest first
            # The service logged every tip the run showed, and learned from every answer.
            assert [d["tip_id"] for d in decisions] == [e.chosen_id for e in ours]
            assert [d["feedback"]["reward_milli"] for d in decisions] == [
                e.reward_milli for e in ours
            ]
            assert {d["policy"] for d in decisions} == {policy}
            assert [d["probability"] for d in decisions] == [e.probability for e in ours]
            # The first tip was chosen among the user's first pool, exactly as simulated.
            first = TaskStream(stream_seed(CONFIG.seed, u), f"u{u}", CONFIG.pool_size)
            sent = [
                (c["tip_id"], c["is_overdue"], c["task_age_days"], c["priority"], c["source"])
                for c in decisions[0]["candidates"]
            ]
            assert sent == [
                (c.id, c.is_overdue, c.task_age_days, c.priority, c.source)
                for c in first.candidates()
            ]
            assert decisions[0]["context"] == {
                "hour_of_day": first.context.hour_of_day,
                "day_of_week": first.context.day_of_week,
            }
            stats = server.client.get(
                f"/v1/users/{q(user_id)}/stats", params={"policy": policy}
            ).json()
            assert stats["model_updates"] == stats["reward_count"] == CONFIG.steps


def test_the_command_line_runs_a_comparison_against_a_service(
    start_server: ServerFactory,
    proxied: None,
    tmp_path: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = start_server()
    monkeypatch.setenv("OO_ML_DATABASE_URL", f"sqlite:///{tmp_path}/runs.db")
    result = CliRunner().invoke(
        app,
        [
            "sim", "compare", "--policies", "egreedy-v1,ucb-ix1", "--personas", "quick-wins",
            "--users", "2", "--steps", "5", "--seed", "3", "--url", server.base_url,
            "--plot", f"{tmp_path}/curves.svg",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "ucb-ix1" in result.output
    store = SqlStore(f"sqlite:///{tmp_path}/runs.db")
    try:
        (run,) = store.read(lambda t: t.list_runs(5))
    finally:
        store.close()
    assert run.status == "done"
    assert run.done_steps == 2 * 2 * 5
    for policy in ("egreedy-v1", "ucb-ix1"):
        user_id = q(f"{run.run_id}/{policy}/u1")
        logged = server.client.get(f"/v1/users/{user_id}/decisions", headers=ADMIN).json()
        assert len(logged["decisions"]) == 5  # the service made every decision
