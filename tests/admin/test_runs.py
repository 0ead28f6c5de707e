"""Simulation runs from the console: started in the background, followed, cancelled, failed,
and recovered after a server died."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import httpx
import pytest

import oo_ml.admin.routes
from oo_ml.admin.runs import ProcessIdentity, RunManager
from oo_ml.sim.runner import SimConfig, SimRunner
from oo_ml.store.base import RunRecord
from oo_ml.store.memory import MemoryStore
from oo_ml.store.sql import SqlStore
from tests.api.support import LiveServer

from .conftest import ServerFactory
from .support import BEARER, ExplodingJudge, GateJudge, start_run, wait_for_run


def _manager(server: LiveServer) -> RunManager:
    manager: RunManager = server.app.state.console_runs
    return manager


def test_a_comparison_runs_in_the_background_and_its_page_shows_the_results(
    server: LiveServer, csrf: str
) -> None:
    client = server.client
    run_id = start_run(client, csrf)
    # The API keeps answering while the run executes.
    assert client.get("/health").status_code == 200
    finished = wait_for_run(client, run_id)
    assert finished["status"] == "done"
    assert finished["done_steps"] == finished["total_steps"] == 2 * 2 * 20
    page = client.get(f"/admin/runs/{run_id}")
    assert page.status_code == 200
    assert "<svg" in page.text
    assert 'id="action-table"' in page.text
    assert 'id="persona-table"' in page.text
    assert "morning-focused" in page.text
    assert "Cancel run" not in page.text
    listing = client.get("/admin/simulations").text
    assert f'data-run-id="{run_id}" data-status="done"' in listing


def test_simulated_decisions_never_reach_the_serving_tables(server: LiveServer, csrf: str) -> None:
    run_id = start_run(server.client, csrf)
    assert wait_for_run(server.client, run_id)["status"] == "done"
    store = server.engine.store
    first_user = f"{run_id}/egreedy-v1/u0"
    assert store.read(lambda txn: txn.recent_decisions(first_user, 10)) == []
    assert len(store.read(lambda txn: txn.sim_events(run_id))) == 80


def test_the_baseline_is_the_active_policy_when_it_is_compared(
    server: LiveServer, csrf: str
) -> None:
    run_id = start_run(server.client, csrf, policies=["linucb-v1", "ucb-ix1", "egreedy-v1"])
    run = server.engine.store.read(lambda txn: txn.get_run(run_id))
    assert run is not None
    assert run.config["policies"] == ["egreedy-v1", "linucb-v1", "ucb-ix1"]


def test_a_form_with_bad_values_is_shown_again_with_the_reasons(
    server: LiveServer, csrf: str
) -> None:
    response = server.client.post(
        "/admin/simulations",
        data={
            "csrf_token": csrf,
            "policies": [],
            "personas": ["morning-focused", "../../etc/passwd.toml"],
            "users": "0",
            "steps": "lots",
            "judge": "rule",
            "seed": "1",
        },
    )
    assert response.status_code == 422
    for reason in (
        "Choose at least one policy.",
        "unknown names: ../../etc/passwd.toml",
        "Users must be between 1 and 100,000.",
        "Steps must be a whole number.",
    ):
        assert reason in response.text
    assert 'value="lots"' in response.text  # what was typed stays in the form
    assert server.engine.store.read(lambda txn: txn.list_runs(10)) == []


def test_an_unconfigured_judge_is_refused_before_anything_is_stored(
    server: LiveServer, csrf: str
) -> None:
    response = server.client.post(
        "/admin/simulations",
        data={
            "csrf_token": csrf,
            "policies": ["egreedy-v1"],
            "personas": ["quick-wins"],
            "users": "1",
            "steps": "5",
            "judge": "llm",
            "seed": "0",
        },
    )
    assert response.status_code == 422
    assert "OO_ML_LLM_BASE_URL" in response.text
    assert server.engine.store.read(lambda txn: txn.list_runs(10)) == []


def test_cancel_stops_a_running_run(server: LiveServer, csrf: str) -> None:
    gate = GateJudge()
    _manager(server).judge_factory = gate.factory
    run_id = start_run(server.client, csrf, policies=["egreedy-v1"], users="1", steps="2000")
    assert gate.entered.wait(30)
    assert wait_for_run(server.client, run_id, ("running",))["done_steps"] == 0
    page = server.client.get(f"/admin/runs/{run_id}").text
    assert "Cancel run" in page
    response = server.client.post(f"/admin/runs/{run_id}/cancel", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/runs/{run_id}?notice=cancelling"
    gate.gate.set()
    finished = wait_for_run(server.client, run_id)
    assert finished["status"] == "cancelled"
    assert finished["done_steps"] < finished["total_steps"]
    page = server.client.get(f"/admin/runs/{run_id}").text
    assert "The run was cancelled" in page


def test_cancel_needs_the_csrf_token(server: LiveServer, csrf: str) -> None:
    gate = GateJudge()
    _manager(server).judge_factory = gate.factory
    run_id = start_run(server.client, csrf, policies=["egreedy-v1"], users="1", steps="600")
    assert gate.entered.wait(30)
    refused = server.client.post(f"/admin/runs/{run_id}/cancel", data={"csrf_token": "nope"})
    assert refused.status_code == 403
    gate.gate.set()
    assert wait_for_run(server.client, run_id)["status"] == "done"


def test_a_failing_run_shows_why(server: LiveServer, csrf: str) -> None:
    _manager(server).judge_factory = lambda _name, _settings: ExplodingJudge()
    run_id = start_run(server.client, csrf)
    finished = wait_for_run(server.client, run_id)
    assert finished["status"] == "failed"
    assert finished["error"] == "RuntimeError: the persona model broke"
    page = server.client.get(f"/admin/runs/{run_id}").text
    assert "The run failed." in page
    assert "RuntimeError: the persona model broke" in page


def test_unknown_runs_answer_404_pages(client: httpx.Client, csrf: str) -> None:
    response = client.get("/admin/runs/run-missing")
    assert response.status_code == 404
    assert "no simulation run &#39;run-missing&#39;" in response.text
    cancel = client.post("/admin/runs/run-missing/cancel", data={"csrf_token": csrf})
    assert cancel.status_code == 404


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _run(run_id: str, status: str, owner: ProcessIdentity | None) -> RunRecord:
    config = {"policies": ["egreedy-v1"], "personas": ["quick-wins"], "users": 1, "steps": 10}
    if owner is not None:
        config["console"] = owner.to_dict()
    return RunRecord(run_id, 1, 1, status, config, total_steps=10, done_steps=4)


def test_runs_left_running_by_a_dead_server_are_marked_failed_at_startup(
    database_url: str, start_server: ServerFactory
) -> None:
    here = ProcessIdentity.current()
    dead = ProcessIdentity(here.host, here.boot, _dead_pid(), None)
    rebooted = ProcessIdentity(here.host, "another-boot", os.getpid(), here.start)
    elsewhere = ProcessIdentity("another-host", "", 1, None)
    store = SqlStore(database_url)
    try:
        runs = [
            _run("run-dead-running", "running", dead),
            _run("run-dead-queued", "queued", dead),
            _run("run-rebooted", "running", rebooted),
            _run("run-alive", "running", here),
            _run("run-elsewhere", "running", elsewhere),
            _run("run-cli", "running", None),
            _run("run-dead-done", "done", dead),
        ]
        store.write(lambda txn: [txn.insert_run(run) for run in runs])
    finally:
        store.close()
    server = start_server()
    status = {
        run.run_id: (run.status, run.error)
        for run in server.engine.store.read(lambda txn: txn.list_runs(20))
    }
    for failed in ("run-dead-running", "run-dead-queued", "run-rebooted"):
        state, error = status[failed]
        assert state == "failed"
        assert error is not None
        assert "stopped before it finished" in error
    assert status["run-alive"] == ("running", None)
    assert status["run-elsewhere"] == ("running", None)
    assert status["run-cli"] == ("running", None)
    assert status["run-dead-done"] == ("done", None)
    page = server.client.get("/admin/runs/run-dead-running", headers=BEARER).text
    assert "stopped before it finished" in page


def test_a_run_from_the_command_line_cannot_be_cancelled_here(
    database_url: str, start_server: ServerFactory
) -> None:
    store = SqlStore(database_url)
    try:
        store.write(lambda txn: txn.insert_run(_run("run-cli", "running", None)))
    finally:
        store.close()
    server = start_server()
    response = server.client.post("/admin/runs/run-cli/cancel", headers=BEARER)
    assert response.headers["location"] == "/admin/runs/run-cli?notice=foreign"
    page = server.client.get(response.headers["location"], headers=BEARER).text
    assert "stop it where it was started" in page


def test_runs_still_executing_when_the_server_stops_are_marked_failed(
    start_server: ServerFactory,
) -> None:
    server = start_server()
    gate = GateJudge()
    _manager(server).judge_factory = gate.factory
    response = server.client.post(
        "/admin/simulations",
        headers=BEARER,
        data={
            "policies": "egreedy-v1",
            "personas": "quick-wins",
            "users": "1",
            "steps": "100000",
            "judge": "rule",
            "seed": "0",
        },
    )
    run_id = response.headers["location"].rsplit("/", 1)[-1]
    assert gate.entered.wait(30)
    store_url = server.app.state.settings.database_url
    gate.gate.set()
    server.stop()
    store = SqlStore(store_url)
    try:
        run = store.read(lambda txn: txn.get_run(run_id))
    finally:
        store.close()
    assert run is not None
    assert run.status == "failed"
    assert run.error == "the server stopped before the run finished"


def test_the_simulator_is_compiled_before_the_server_serves(
    start_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not in a thread beside the first requests: numba holds the GIL while it compiles, and it
    swaps the process-wide warning filters, racing a request that does the same."""
    finished = threading.Event()

    def slow_warm_up() -> None:
        time.sleep(0.3)  # a compilation: far longer than the rest of the startup
        finished.set()

    monkeypatch.setattr(oo_ml.admin.routes, "warm_up", slow_warm_up)
    server = start_server()
    assert finished.is_set()
    assert server.client.get("/admin/policies", headers=BEARER).status_code == 200


def test_the_run_page_says_what_a_judge_that_can_fail_did(
    database_url: str, start_server: ServerFactory
) -> None:
    counts = {"calls": 40, "cache_hits": 10, "retries": 3, "invalid_replies": 2, "failures": 1}
    config = {"policies": ["egreedy-v1"], "personas": ["quick-wins"], "users": 4, "steps": 10}
    run = RunRecord("run-llm", 1, 1, "done", {**config, "judge": "llm"}, total_steps=40,
                    done_steps=40, summary={"judge": counts})  # fmt: skip
    store = SqlStore(database_url)
    try:
        store.write(lambda txn: txn.insert_run(run))
    finally:
        store.close()
    page = start_server().client.get("/admin/runs/run-llm", headers=BEARER).text
    said = page[page.index('id="judge-counts"') :].split("</span>")[0]
    for text in ("40 judgements", "10 from the cache", "30 asked", "3 retries",
                 "2 invalid replies", "1 unanswered (counted as dismissed)"):  # fmt: skip
        assert text in said


def test_a_running_run_shows_its_curve_so_far_and_serves_it_for_the_live_page(
    database_url: str, start_server: ServerFactory
) -> None:
    small = SimConfig(("egreedy-v1", "ucb-ix1"), ("quick-wins",), 2, 10, seed=1)
    so_far = SimRunner(MemoryStore()).run(small).summary
    config = {**small.to_dict(), "judge": "llm"}  # started from the command line: no owner
    runs = [
        RunRecord("run-live", 1, 1, "running", config, total_steps=40, done_steps=20,
                  summary=so_far),
        RunRecord("run-new", 1, 1, "running", config, total_steps=40, done_steps=0),
    ]  # fmt: skip
    store = SqlStore(database_url)
    try:
        store.write(lambda txn: [txn.insert_run(run) for run in runs])
    finally:
        store.close()
    client = start_server().client
    page = client.get("/admin/runs/run-live", headers=BEARER).text
    assert "Reward curve so far" in page
    assert 'data-live-src="/admin/runs/run-live/curve.svg"' in page
    assert "Comparison so far" in page
    curve = client.get("/admin/runs/run-live/curve.svg", headers=BEARER)
    assert curve.status_code == 200
    assert curve.headers["content-type"].startswith("image/svg+xml")
    assert curve.text.lstrip().startswith("<svg")
    assert curve.text.count("<polyline") == 4  # two policies, oracle, random
    fresh = client.get("/admin/runs/run-new", headers=BEARER).text
    assert "The curve appears after the first steps." in fresh
    assert client.get("/admin/runs/run-new/curve.svg", headers=BEARER).status_code == 204
    assert client.get("/admin/runs/run-gone/curve.svg", headers=BEARER).status_code == 404


OWN_PERSONA = """name = "night-shift"
description = "Works nights; urgent things only."
awake = [20, 6]
[prefer]
overdue = 0.7
[drift]
at_step = 10
persona = "quick-wins"
"""


def test_a_persona_typed_into_the_form_is_simulated_and_kept_with_the_run(
    server: LiveServer, csrf: str
) -> None:
    run_id = start_run(server.client, csrf, personas=["morning-focused"], own_persona=OWN_PERSONA)
    assert wait_for_run(server.client, run_id)["status"] == "done"
    run = server.engine.store.read(lambda txn: txn.get_run(run_id))
    assert run is not None
    assert run.config["personas"] == ["morning-focused", "night-shift"]
    (definition,) = run.config["persona_definitions"]
    assert (definition["name"], definition["awake"]) == ("night-shift", [20, 6])
    events = server.engine.store.read(lambda txn: txn.sim_events(run_id))
    night = [e.hour_of_day for e in events if e.persona == "night-shift" and e.step < 10]
    assert night
    assert all(h >= 20 or h <= 6 for h in night)
    page = server.client.get(f"/admin/runs/{run_id}").text
    assert "night-shift, defined with the run" in page
    assert '"awake": [\n    20,\n    6\n  ]' in page


def test_a_persona_typed_badly_is_shown_again_with_the_reason(
    server: LiveServer, csrf: str
) -> None:
    for typed, reason in (
        (
            'name = "x"\ndescription = "d"\nawake = [7, 25]',
            "Your persona: awake: must be [from, to]",
        ),
        ('name = "x"\ndescription = ', "Your persona is not valid TOML"),
        ('name = "quick-wins"\ndescription = "d"', "the name &#39;quick-wins&#39; is taken"),
    ):
        response = server.client.post(
            "/admin/simulations",
            data={"csrf_token": csrf, "policies": ["egreedy-v1"], "personas": ["quick-wins"],
                  "users": "2", "steps": "5", "judge": "rule", "seed": "1", "own_persona": typed},
        )  # fmt: skip
        assert response.status_code == 422, typed
        assert reason in response.text, response.text
    assert server.engine.store.read(lambda txn: txn.list_runs(10)) == []
