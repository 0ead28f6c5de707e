"""Simulation runs over the API: started, followed and read by a script with the admin token,
against a real server on SQLite (and PostgreSQL where marked)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from oo_ml.sim.runner import SimConfig, SimRunner
from oo_ml.store.sql import SqlStore

from .conftest import BOTH_DATABASES, ServerFactory
from .support import ADMIN

BODY = {
    "policies": ["egreedy-v1", "ucb-ix1"],
    "personas": ["morning-focused", "quick-wins"],
    "users": 3,
    "steps": 20,
    "seed": 4,
}


OWL: dict[str, Any] = {
    "name": "owl",
    "description": "Asks late at night and does what is urgent then.",
    "awake": [18, 3],
    "response": {"threshold": 0.2},
    "prefer": {"source.email": -0.5},
    "when": [{"hours": [22, 2], "priority": 0.8}],
    "drift": {"at_step": 10, "persona": "lark"},
}
LARK: dict[str, Any] = {"name": "lark", "description": "Up at dawn.", "awake": [5, 12]}


def wait_done(client: httpx.Client, url: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = client.get(url, headers=ADMIN).json()
        if run["status"] not in {"queued", "running"} or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


@BOTH_DATABASES
def test_a_script_starts_a_comparison_follows_it_and_reads_the_results(
    start_server: ServerFactory,
) -> None:
    client = start_server().client
    started = client.post("/v1/sim/runs", json=BODY, headers=ADMIN)
    assert started.status_code == 202, started.text
    queued = started.json()
    assert started.headers["location"] == f"/v1/sim/runs/{queued['run_id']}"
    assert queued["total_steps"] == 2 * 3 * 20
    assert queued["config"]["policies"] == BODY["policies"]
    assert queued["on_server"] is True
    assert "console" not in queued["config"]  # which process runs it is not the client's

    run = wait_done(client, started.headers["location"])
    assert run["status"] == "done", run
    assert run["done_steps"] == run["total_steps"]
    table = run["summary"]["policies"]
    assert list(table) == ["egreedy-v1", "ucb-ix1"]
    assert table["egreedy-v1"]["difference"] is None
    low, high = table["ucb-ix1"]["difference_ci95"]
    assert low <= table["ucb-ix1"]["difference"] <= high
    assert set(run["summary"]["personas"]) == {"morning-focused", "quick-wins"}

    listed = client.get("/v1/sim/runs", headers=ADMIN).json()["runs"]
    assert [r["run_id"] for r in listed] == [queued["run_id"]]
    assert "summary" not in listed[0]
    assert client.get(f"/admin/runs/{queued['run_id']}", headers=ADMIN).status_code == 200
    finished = client.post(f"/v1/sim/runs/{queued['run_id']}/cancel", headers=ADMIN)
    assert finished.json() == {"run_id": queued["run_id"], "outcome": "finished"}


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"policies": ["egreedy-v1", "nope-v9"]}, ["body", "policies", 1]),
        ({"policies": ["ucb-ix1", "ucb-ix1"]}, ["body", "policies", 1]),
        ({"policies": []}, ["body", "policies"]),
        ({"personas": []}, ["body", "personas"]),
        ({"personas": ["quick-wins", "/etc/passwd"]}, ["body", "personas", 1]),
        ({"personas": ["src/oo_ml/sim/personas/quick_wins.toml"]}, ["body", "personas", 0]),
        ({"users": 0}, ["body", "users"]),
        ({"steps": "20"}, ["body", "steps"]),
        ({"seed": -1}, ["body", "seed"]),
        ({"judge": "oracle"}, ["body", "judge"]),
        ({"judge": "llm"}, ["body", "judge"]),  # not configured on this server
        ({"users": 100_000, "steps": 100}, ["body", "steps"]),  # more than a server run does
        ({"extra": 1}, ["body", "extra"]),
        ({"personas": ["owl"]}, ["body", "personas", 0]),  # defined nowhere
        ({"persona_definitions": [3]}, ["body", "persona_definitions", 0]),
        ({"persona_definitions": [{**OWL, "awake": [7, 24]}]}, ["body", "persona_definitions"]),
        ({"persona_definitions": [{**OWL, "name": "quick-wins"}]}, ["body", "persona_definitions"]),
        ({"persona_definitions": [{**OWL, "name": "owl.toml"}]}, ["body", "persona_definitions"]),
        (
            {"persona_definitions": [{**OWL, "drift": {"at_step": 2, "persona": "lark.toml"}}]},
            ["body", "persona_definitions"],
        ),
        (
            {"persona_definitions": [{**OWL, "response": {"slope": "steep"}}]},
            ["body", "persona_definitions"],
        ),
        ({"persona_definitions": [OWL] * 65}, ["body", "persona_definitions"]),
    ],
)
def test_refused_settings_name_the_field_and_store_nothing(
    start_server: ServerFactory, change: dict[str, Any], loc: list[Any]
) -> None:
    client = start_server().client
    refused = client.post("/v1/sim/runs", json={**BODY, **change}, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["loc"] == loc
    assert client.get("/v1/sim/runs", headers=ADMIN).json() == {"runs": []}


def test_left_out_settings_are_those_of_the_command_line_and_the_console(
    client: httpx.Client,
) -> None:
    started = client.post("/v1/sim/runs", json={"policies": ["ucb-ix1"]}, headers=ADMIN)
    assert started.status_code == 202, started.text
    run = started.json()
    client.post(f"/v1/sim/runs/{run['run_id']}/cancel", headers=ADMIN)
    personas = [p["name"] for p in client.get("/v1/sim/personas", headers=ADMIN).json()["personas"]]
    config = run["config"]
    assert len(personas) >= 6
    assert config["personas"] == personas
    assert (config["users"], config["steps"], config["seed"]) == (12, 150, 0)
    assert (config["judge"], run["total_steps"]) == ("rule", 12 * 150)


def test_a_run_from_the_command_line_is_listed_as_not_on_the_server(
    start_server: ServerFactory, database_url: str
) -> None:
    client = start_server().client
    store = SqlStore(database_url)
    try:
        config = SimConfig(("egreedy-v1",), ("quick-wins",), users=2, steps=3)
        done = SimRunner(store).run(config)
    finally:
        store.close()
    (listed,) = client.get("/v1/sim/runs", headers=ADMIN).json()["runs"]
    assert (listed["run_id"], listed["status"], listed["on_server"]) == (done.run_id, "done", False)
    assert listed["config"] == config.to_dict()


def test_runs_need_the_admin_token(start_server: ServerFactory) -> None:
    client = start_server(api_token="api-token-for-tests-3f9a2c7e").client
    api = {"Authorization": "Bearer api-token-for-tests-3f9a2c7e"}
    for method, path, body in [
        ("POST", "/v1/sim/runs", BODY),
        ("GET", "/v1/sim/runs", None),
        ("GET", "/v1/sim/runs/run-x", None),
        ("POST", "/v1/sim/runs/run-x/cancel", None),
        ("GET", "/v1/sim/personas", None),
    ]:
        for headers in ({}, api):
            answer = client.request(method, path, json=body, headers=headers)
            assert answer.status_code in {401, 403}, (method, path, answer.status_code)
    assert client.get("/v1/sim/runs", headers=ADMIN).json() == {"runs": []}


def test_unknown_runs_are_404_and_personas_are_listed(client: httpx.Client) -> None:
    assert client.get("/v1/sim/runs/run-nope", headers=ADMIN).status_code == 404
    assert client.post("/v1/sim/runs/run-nope/cancel", headers=ADMIN).status_code == 404
    personas = client.get("/v1/sim/personas", headers=ADMIN).json()["personas"]
    names = {p["name"] for p in personas}
    assert {"morning-focused", "quick-wins", "shift-change"} <= names
    assert all(p["description"] for p in personas)
    assert next(p for p in personas if p["name"] == "shift-change")["drift_at"] == 75
    assert all(p["awake"] == [7, 22] for p in personas)


@BOTH_DATABASES
def test_a_run_simulates_personas_defined_in_the_request_and_stores_them(
    start_server: ServerFactory,
) -> None:
    """Left out, the personas are the shipped ones and those defined; the run's settings keep
    the definitions, so they say all that was simulated."""
    client = start_server().client
    body = {**BODY, "personas": None, "persona_definitions": [OWL, LARK], "users": 9}
    started = client.post("/v1/sim/runs", json=body, headers=ADMIN)
    assert started.status_code == 202, started.text
    config = started.json()["config"]
    assert config["personas"][-2:] == ["owl", "lark"]
    assert config["persona_definitions"] == [OWL, LARK]
    run = wait_done(client, started.headers["location"])
    assert run["status"] == "done", run
    assert {"owl", "lark"} <= set(run["summary"]["personas"])
    assert SimConfig.from_dict(run["config"]).load_personas()[-2].at_step(10).name == "lark"
