"""The core rounds benchmark runs end to end in quick mode; its numbers are not checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import core_rounds

pytestmark = pytest.mark.bench


def test_quick_run_writes_its_table_with_the_command(tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.md"
    other = "<!-- bench:other:start -->\nkept\n<!-- bench:other:end -->"
    output.write_text(f"# Benchmarks\n\n{other}\n")

    assert core_rounds.main(["--quick", "--output", str(output)]) == 0

    text = output.read_text()
    assert other in text
    section = text.split(core_rounds.SECTION_START)[1].split(core_rounds.SECTION_END)[0]
    assert f"`python benchmarks/core_rounds.py --quick --output {output}`" in section
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows[1:]] == [
        "egreedy-v1",
        "linucb-v1",
        "ucb-ix1",
        "squarecb-ix1",
        "ts-ix1",
        "ucb-ix2",
    ]


def test_a_second_run_replaces_its_own_section_only(tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.md"
    for _ in range(2):
        core_rounds.main(["--quick", "--policy", "linucb-v1", "--output", str(output)])
    text = output.read_text()
    assert text.startswith("# Benchmarks")
    assert text.count(core_rounds.SECTION_START) == 1
    assert text.count(core_rounds.SECTION_END) == 1


def test_the_pre_check_refuses_to_time_sides_that_choose_differently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(core_rounds.OldLinUCB, "decide", lambda self, context, candidates: 0)
    with pytest.raises(core_rounds.MismatchError, match="linucb-v1 round"):
        core_rounds.check_same_choices(30, seed=1)
