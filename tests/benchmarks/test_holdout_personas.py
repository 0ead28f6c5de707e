"""The held-out personas of ``benchmarks/personas/``: valid, new, and measured by ``holdout``."""

from __future__ import annotations

import pytest

from benchmarks import simulation
from oo_ml.sim.persona import load_personas, shipped_personas

pytestmark = pytest.mark.bench


def test_held_out_personas_load_and_are_none_of_the_shipped_ones() -> None:
    personas = load_personas(simulation.HOLDOUT)
    names = [p.name for p in personas]
    assert len(names) >= 4
    assert len(set(names)) == len(names)
    assert not set(names) & set(shipped_personas())
    assert all(p.description for p in personas)


def test_holdout_reports_every_policy_on_both_persona_sets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(simulation, "_show", lambda *args: None)
    body = simulation.holdout(["egreedy-v1", "ucb-ix1"], users=4, steps=8, seeds=[1, 2])
    rows = [line for line in body.splitlines() if line.startswith("| ") and "seed 1" not in line]
    assert [row.split(" | ")[0:3] for row in rows] == [
        ["| held-out", str(len(simulation.HOLDOUT)), "egreedy-v1"],
        ["| held-out", str(len(simulation.HOLDOUT)), "ucb-ix1"],
        ["| shipped + held-out", str(len(simulation.HOLDOUT) + 7), "egreedy-v1"],
        ["| shipped + held-out", str(len(simulation.HOLDOUT) + 7), "ucb-ix1"],
    ]
    for row in rows:
        cells = row.strip("| ").split(" | ")
        scores = [float(cell) for cell in cells[3:5]]
        # Mean and min of the unrounded scores, so within rounding of the printed ones.
        assert float(cells[5]) == pytest.approx(sum(scores) / 2, abs=0.0011)
        assert cells[6] == f"{min(scores):.3f}"


@pytest.mark.parametrize(
    ("persona_set", "title"),
    [
        ("shipped", "### Learning quality with fewer users\n"),
        ("held-out", "### Learning quality with fewer users, the held-out personas\n"),
        ("mixed", "### Learning quality with fewer users, the shipped and held-out personas\n"),
    ],
)
def test_users_runs_each_persona_set(
    monkeypatch: pytest.MonkeyPatch, persona_set: str, title: str
) -> None:
    monkeypatch.setattr(simulation, "_show", lambda *args: None)
    runs: list[tuple[str, ...]] = []
    real = simulation._last_quarters

    def recorded(policies, personas, users, steps, seeds):  # type: ignore[no-untyped-def]
        runs.append(tuple(personas))
        return real(policies, personas, users, steps, seeds)

    monkeypatch.setattr(simulation, "_last_quarters", recorded)
    body = simulation.users_sweep(["ucb-ix1"], [2, 3], steps=6, seeds=[1], persona_set=persona_set)
    assert body.startswith(title)
    assert runs == [simulation.persona_sets()[persona_set]] * 2
    rows = [
        line.split(" | ")[:2]
        for line in body.splitlines()
        if line.startswith("| 2") or line.startswith("| 3")
    ]
    assert rows == [["| 2", "ucb-ix1"], ["| 3", "ucb-ix1"]]
