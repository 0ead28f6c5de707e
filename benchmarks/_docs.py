"""Writing a benchmark's table into docs/benchmarks.md: each script owns one marked section."""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

__all__ = ["DOCS", "command_line", "markdown_table", "markers", "print_table", "write_section"]

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
_HEADER = (
    "# Benchmarks\n\n"
    "Numbers written by the scripts in `benchmarks/`. Each script rewrites only its own section,\n"
    "together with the command that produced it.\n"
)


def command_line(script: str | None = None, argv: Sequence[str] | None = None) -> str:
    """The command that is running, as someone would type it again; ``script`` and ``argv``
    when ``main(argv)`` was called from Python (a test) rather than from the shell."""
    if argv is None:
        return shlex.join(["python", *sys.argv])
    return shlex.join(["python", script or sys.argv[0], *argv])


def markers(name: str) -> tuple[str, str]:
    """The comments that open and close benchmark ``name``'s section."""
    return f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table: the header, a plain separator, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_section(name: str, body: str, path: Path = DOCS) -> None:
    """Replace (or append) the section between ``<!-- bench:NAME:start/end -->``."""
    start, end = markers(name)
    section = f"{start}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else _HEADER
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def print_table(
    console: Console,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    caption: str | None = None,
    left: int = 1,
) -> None:
    """A benchmark's table on the terminal: the first ``left`` columns left-aligned."""
    table = Table(title=title, caption=caption)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i < left else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
