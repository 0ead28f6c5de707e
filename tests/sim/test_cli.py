"""``oo-ml sim`` end to end: a real process, a real SQLite file, the printed tables."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import oo_ml

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
