"""What the console computes from records, without a server: evidence, the run form."""

from __future__ import annotations

from typing import Any

import httpx

from oo_ml.admin.views import RunForm, latest_evidence, policy_rows
from oo_ml.store.base import RunRecord


def _summary(**means: float) -> dict[str, Any]:
    first = next(iter(means))
    return {
        "first_policy": first,
        "policies": {
            name: {
                "mean_reward": mean,
                "ci95": [mean - 0.125, mean + 0.125],
                "normalized": 0.5,
                "normalized_last_quarter": 0.6,
                "lift_pct": 100.0 * (mean - means[first]) / abs(means[first]),
                "actions": {"done": 0.5, "snooze": 0.3, "dismiss": 0.2},
            }
            for name, mean in means.items()
        },
    }


def _run(run_id: str, status: str, summary: dict[str, Any] | None) -> RunRecord:
    config = {"judge": "rule", "users": 4, "steps": 30}
    return RunRecord(run_id, 1, 1, status, config, 10, 10, summary)


def test_evidence_comes_from_the_newest_finished_run_that_includes_the_policy() -> None:
    runs = [  # newest first
        _run("run-3", "failed", None),
        _run("run-2", "done", _summary(**{"egreedy-v1": 0.2, "ucb-ix1": 0.3})),
        _run("run-1", "done", _summary(**{"linucb-v1": 0.1, "ucb-ix1": 0.9})),
    ]
    evidence = latest_evidence(runs)
    assert evidence["ucb-ix1"].run_id == "run-2"
    assert evidence["ucb-ix1"].lift_pct is not None
    assert round(evidence["ucb-ix1"].lift_pct, 6) == 50.0
    assert evidence["ucb-ix1"].baseline == "egreedy-v1"
    assert (evidence["ucb-ix1"].ci_low, evidence["ucb-ix1"].ci_high) == (0.175, 0.425)
    assert evidence["linucb-v1"].run_id == "run-1"
    assert "squarecb-ix1" not in evidence


def test_policy_rows_survive_a_summary_without_intervals() -> None:
    summary = _summary(**{"egreedy-v1": 0.2})
    summary["policies"]["egreedy-v1"]["ci95"] = []
    [row] = policy_rows(summary)
    assert (row["ci_low"], row["ci_high"]) == (None, None)


def test_run_form_puts_the_active_policy_first_and_keeps_registry_order() -> None:
    form = RunForm(
        policies=["ts-ix1", "linucb-v1", "egreedy-v1"],
        personas=["quick-wins", "morning-focused"],
        users="3",
        steps="10",
        seed="5",
    )
    config = form.config(baseline="egreedy-v1")
    assert config is not None, form.errors
    assert config.policies == ("egreedy-v1", "linucb-v1", "ts-ix1")
    assert config.personas == ("morning-focused", "quick-wins")
    assert (config.users, config.steps, config.seed) == (3, 10, 5)


def test_run_form_default_checks_the_active_policy_and_every_persona() -> None:
    form = RunForm.default("ts-ix1")
    assert "ts-ix1" in form.policies
    assert len(form.policies) == 3
    assert "quick-wins" in form.personas


def test_run_form_refuses_runs_the_simulator_refuses() -> None:
    form = RunForm(
        policies=["egreedy-v1"], personas=["quick-wins"], users="1", steps="5", seed="-1"
    )
    assert form.config() is None
    assert form.errors == ["Seed must be between 0 and 9,223,372,036,854,775,807."]
    form = RunForm(policies=["egreedy-v1"], personas=["quick-wins"], judge="oracle")
    assert form.config() is None
    assert form.errors == ["Choose a judge: rule, llm, command."]


def test_login_page_warns_about_plain_http_on_a_network_address(client: httpx.Client) -> None:
    page = client.get("/admin/login", headers={"Host": "oo-ml.lan:8000"})
    assert "plain HTTP from a network address" in page.text
