"""The OPE accuracy benchmark runs end to end on a tiny simulation; its numbers are not checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import ope_accuracy

pytestmark = pytest.mark.bench


def test_tiny_run_writes_a_row_per_policy(tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.md"
    ope_accuracy.main(
        [
            "--users",
            "7",
            "--steps",
            "12",
            "--policies",
            "egreedy-v1,ucb-ix1",
            "--output",
            str(output),
        ]
    )
    section = output.read_text().split("<!-- bench:ope-accuracy:start -->")[1]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert [row.split(" | ")[0] for row in rows] == ["| `egreedy-v1`", "| `ucb-ix1`"]
    assert "--users 7 --steps 12" in section
    assert "(all 84 decisions\nof it)" in section  # the whole log, not the client's last 1000
