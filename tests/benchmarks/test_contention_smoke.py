"""The PostgreSQL contention benchmark runs end to end on a tiny load; its numbers are not
checked, only that every feedback was answered and both cases were written."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.http import contention

pytestmark = [pytest.mark.bench, pytest.mark.postgres]


def test_tiny_run_writes_a_cold_and_a_hot_row(tmp_path: Path, postgres_server: str) -> None:
    output = tmp_path / "benchmarks.md"
    args = ["--hot-users", "2", "--decisions", "40", "--clients", "4", "--repeats", "1"]
    assert contention.main([*args, "--output", str(output)]) == 0
    section = output.read_text().split("<!-- bench:pg-contention:start -->")[1]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| this")]
    assert [row[1] for row in rows] == ["20 (cold)", "2 (hot)"]
    assert [row[-1] for row in rows] == ["0 |", "0 |"]  # no feedback was refused
    assert "--decisions 40" in section
