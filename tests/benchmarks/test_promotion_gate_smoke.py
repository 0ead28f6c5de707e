"""The promotion-gate benchmark runs end to end on a tiny log; its timings are not checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import promotion_gate

pytestmark = pytest.mark.bench


def test_tiny_run_writes_a_row_per_shadow(tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.md"
    promotion_gate.main(
        ["--users", "6", "--rounds", "8", "--repeats", "1", "--output", str(output)]
    )
    section = output.read_text().split("<!-- bench:promotion-gate:start -->")[1]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| `")]
    assert [row[0] for row in rows] == ["| `ucb-pop5` vs `ucb-ix1`", "| `egreedy-v1` vs `ucb-ix1`"]
    assert all(row[1] == "48" for row in rows)
    # Without a population prior the replay learns exactly the model that decided: the same
    # estimate either way.
    egreedy = rows[1]
    assert egreedy[5] == egreedy[6].removesuffix(" |")
    assert "--users 6 --rounds 8" in section
