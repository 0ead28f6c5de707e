"""``oo-ml sim`` end to end: a real process, a real SQLite file, the printed tables."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import oo_ml
from oo_ml.cli import app
from oo_ml.sim.persona import shipped_personas

SMALL = ["--personas", "morning-focused,quick-wins", "--users", "2", "--steps", "12"]


def oo_ml_cli(
    tmp_path: Path, database: str, *args: str, settings: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("OO_ML_")  # this machine's settings must not leak in
    }
    env |= {
        "OO_ML_DATABASE_URL": f"sqlite:///{tmp_path / database}",
        "PYTHONPATH": str(Path(oo_ml.__file__).resolve().parents[1]),
        "COLUMNS": "200",  # rich wraps tables to the terminal's width
        **(settings or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "oo_ml.cli", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def table_rows(output: str) -> dict[str, list[str]]:
    """The rows of the printed comparison table, by policy: cells stripped of the borders."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        if len(cells) in {6, 8} and re.fullmatch(r"[a-z0-9-]+", cells[0]) and cells[0] != "policy":
            rows[cells[0]] = cells[1:]
    return rows


def test_a_run_is_stored_listed_and_shown_with_its_curves(tmp_path: Path) -> None:
    done = oo_ml_cli(tmp_path, "a.db", "sim", "run", "--policy", "ucb-ix1", *SMALL, "--seed", "4")
    assert done.returncode == 0, done.stderr
    run_id = re.search(r"Run (run-[0-9a-f-]+) \(done\)", done.stdout)
    assert run_id is not None, done.stdout
    rows = table_rows(done.stdout)
    assert list(rows) == ["ucb-ix1"]
    assert re.fullmatch(r"[+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]", rows["ucb-ix1"][0])
    assert len(rows["ucb-ix1"]) == 5  # alone: no lift, no difference from a first policy

    listed = oo_ml_cli(tmp_path, "a.db", "sim", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if run_id[1] in row)
    assert "done" in line
    assert "24/24" in line
    assert "2 × 12" in line

    plot = tmp_path / "curves.svg"
    shown = oo_ml_cli(tmp_path, "a.db", "sim", "show", run_id[1], "--plot", str(plot))
    assert shown.returncode == 0, shown.stderr
    assert table_rows(shown.stdout) == rows
    assert plot.read_text().lstrip().startswith("<svg")

    missing = oo_ml_cli(tmp_path, "a.db", "sim", "show", "run-nope")
    assert missing.returncode == 1
    assert "no run 'run-nope'" in missing.stdout


def test_compare_prints_lift_over_the_first_policy_and_repeats_itself(tmp_path: Path) -> None:
    args = ["sim", "compare", "--policies", "egreedy-v1,ucb-ix1", *SMALL, "--seed", "9"]
    first = oo_ml_cli(tmp_path, "a.db", *args, "--plot", str(tmp_path / "a.svg"))
    again = oo_ml_cli(tmp_path, "b.db", *args, "--plot", str(tmp_path / "b.svg"))
    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    rows = table_rows(first.stdout)
    assert list(rows) == ["egreedy-v1", "ucb-ix1"]
    assert rows["egreedy-v1"][4] == "+0.0%"  # the baseline against itself
    assert re.fullmatch(r"[+-]\d+\.\d%", rows["ucb-ix1"][4])
    assert rows["egreedy-v1"][5] == "—"
    number = r"[+-]\d\.\d{3}"
    assert re.fullmatch(rf"{number} \[{number}, {number}\]", rows["ucb-ix1"][5])
    assert table_rows(again.stdout) == rows  # same seed, same numbers
    by_persona = first.stdout[first.stdout.index("By persona: normalized score") :]
    for persona in ("morning-focused", "quick-wins"):
        cells = next(line for line in by_persona.splitlines() if persona in line)
        assert len(re.findall(r"-?\d\.\d{3}", cells)) == 2  # one score per policy
    assert (tmp_path / "a.svg").read_text() == (tmp_path / "b.svg").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "no-such-policy"], "no-such-policy"),
        (["--policy", "ucb-ix1", "--personas", "nobody"], "nobody"),
        (["--policy", "ucb-ix1", "--judge", "oracle"], "oracle"),
    ],
)
def test_bad_arguments_are_refused_and_store_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    refused = oo_ml_cli(tmp_path, "a.db", "sim", "run", *args, "--users", "1", "--steps", "2")
    assert refused.returncode == 2
    assert message in refused.stdout + refused.stderr
    listed = oo_ml_cli(tmp_path, "a.db", "sim", "list")
    assert "run-" not in listed.stdout


def test_a_run_with_a_judge_that_can_fail_says_what_it_did(tmp_path: Path) -> None:
    judge = tmp_path / "judge.py"
    judge.write_text(
        "import sys\n"
        "prompt = sys.stdin.read()\n"
        'print(\'{"action": "dismiss", "dwell_seconds": null}\')\n'
    )
    command = shlex.join([sys.executable, str(judge)])
    args = ["sim", "run", "--policy", "egreedy-v1", "--users", "2", "--steps", "3"]
    done = oo_ml_cli(
        tmp_path, "a.db", *args, "--judge", "command", settings={"OO_ML_JUDGE_COMMAND": command}
    )
    assert done.returncode == 0, done.stderr
    assert (
        "judge command: 6 judgements: 0 from the cache, 6 asked, 0 retries, 0 invalid replies, "
        "0 unanswered (counted as dismissed)"
    ) in " ".join(done.stdout.split())


OWL = """name = "owl"
description = "Late; [really] late."
awake = [18, 3]
[response]
threshold = 0.1
[prefer]
source.email = -1.0
[[when]]
hours = [22, 2]
priority = 0.5
[[when]]
days = [5, 6]
weekend = true
overdue = 0.25
[drift]
at_step = 40
persona = "quick-wins"
"""


def test_personas_lists_the_shipped_ones_in_brief() -> None:
    result = CliRunner().invoke(app, ["sim", "personas"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in shipped_personas():
        assert name in result.output
    assert re.search(
        r"shift-change\s*│\s*07:00–22:59\s*│\s*from step 75: evening-focused", result.output
    )


def test_personas_shows_what_a_file_says_in_words_and_as_json(tmp_path: Path) -> None:
    (tmp_path / "owl.toml").write_text(OWL)
    runner = CliRunner()
    words = runner.invoke(
        app, ["sim", "personas", str(tmp_path / "owl.toml")], env={"COLUMNS": "200"}
    )
    assert words.exit_code == 0, words.output
    assert "owl: Late; [really] late." in words.output
    assert "not asked" not in words.output  # its night rule lies within its waking hours
    for line in (
        "asks for tips 18:00–03:59",
        "p(done) = sigmoid(5 · (utility − 0.1)); snoozes 50% of the rest",
        "always: source.email -1",
        "when 22:00–02:59: priority +0.5",
        "when weekends, Sat Sun: overdue +0.25",
        "from step 40: quick-wins",
    ):
        assert line in words.output
    as_json = runner.invoke(app, ["sim", "personas", "--json", str(tmp_path / "owl.toml")])
    assert as_json.exit_code == 0, as_json.output
    (data,) = json.loads(as_json.output)
    assert data == {
        "name": "owl",
        "description": "Late; [really] late.",
        "awake": [18, 3],
        "response": {"threshold": 0.1, "slope": 5.0, "snooze_share": 0.5,
                     "dwell_median_s": 60.0, "dwell_sigma": 0.8},
        "prefer": {"source.email": -1.0},
        "when": [
            {"hours": [22, 2], "priority": 0.5},
            {"hours": [0, 23], "weekend": True, "days": [5, 6], "overdue": 0.25},
        ],
        "drift": {"at_step": 40, "persona": "quick-wins"},
    }  # fmt: skip


def test_personas_refuses_a_bad_file_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(OWL.replace("awake = [18, 3]", "awake = [18, 25]"))
    result = CliRunner().invoke(
        app, ["sim", "personas", str(tmp_path / "bad.toml")], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 2
    assert "awake: must be [from, to]" in result.output


def test_a_run_with_a_persona_file_shows_it_after_the_file_is_gone(tmp_path: Path) -> None:
    (tmp_path / "owl.toml").write_text(
        OWL.replace('persona = "quick-wins"', 'persona = "lark.toml"')
    )
    (tmp_path / "lark.toml").write_text('name = "lark"\ndescription = "Early."\nawake = [5, 12]\n')
    args = ("--personas", "owl.toml,quick-wins", "--users", "2", "--steps", "5")
    done = oo_ml_cli(tmp_path, "a.db", "sim", "run", "--policy", "egreedy-v1", *args)
    assert done.returncode == 0, done.stderr
    run_id = re.search(r"Run (run-[0-9a-f-]+) \(done\)", done.stdout)
    assert run_id is not None, done.stdout
    (tmp_path / "owl.toml").unlink()
    (tmp_path / "lark.toml").unlink()
    shown = oo_ml_cli(tmp_path, "a.db", "sim", "show", run_id[1])
    assert shown.returncode == 0, shown.stderr
    for output in (done.stdout, shown.stdout):
        assert "Personas defined with the run:" in output
        assert "owl: Late; [really] late." in output
        assert "asks for tips 18:00–03:59" in output
        assert "from step 40: lark" in output
        assert "lark: Early." in output


def test_personas_points_out_rule_hours_the_persona_is_never_asked_in() -> None:
    result = CliRunner().invoke(app, ["sim", "personas", "evening-focused"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "when 05:00–11:59" in result.output
    assert "not asked at 05:00, 06:00: outside its waking hours" in result.output
    assert "not asked at 23:00: outside its waking hours" in result.output


def test_a_run_through_the_engine_gives_the_same_numbers(tmp_path: Path) -> None:
    """``--through-engine`` makes every decision in the serving engine: slower, the same
    table (the simulator's own decisions are held to it event by event in test_direct)."""
    args = ["sim", "compare", "--policies", "egreedy-v1,ucb-ix1", *SMALL, "--seed", "6"]
    direct = oo_ml_cli(tmp_path, "a.db", *args, "--plot", str(tmp_path / "a.svg"))
    engine = oo_ml_cli(
        tmp_path, "b.db", *args, "--plot", str(tmp_path / "b.svg"), "--through-engine"
    )
    assert direct.returncode == 0, direct.stderr
    assert engine.returncode == 0, engine.stderr
    rows = table_rows(direct.stdout)
    assert list(rows) == ["egreedy-v1", "ucb-ix1"]
    assert table_rows(engine.stdout) == rows
