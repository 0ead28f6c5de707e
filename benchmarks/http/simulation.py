"""The simulator against a running service: steps/s with a step's users asking one at a time
against asking together (``OO_ML_SIM_HTTP_CONCURRENCY``), in the same run.

For every repeat: a new SQLite database and ``oo-ml serve`` (one worker, this checkout's code),
then one simulation per concurrency, interleaved, the order rotating every repeat, each with
new users (a run's user ids carry its run id) and its events stored in memory. The client runs
in this process, on the same two cores as the server.

    python benchmarks/http/simulation.py                 # writes docs/benchmarks.md
    python benchmarks/http/simulation.py --no-write
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from benchmarks._docs import DOCS, command_line, markdown_table, write_section
from benchmarks.http.bench import base_env, free_port, serving

from oo_ml.sim.runner import HttpClient, SimConfig, SimRunner
from oo_ml.store.memory import MemoryStore


def steps_per_second(base: str, config: SimConfig, concurrency: int) -> float:
    runner = SimRunner(
        MemoryStore(), client_factory=lambda _: HttpClient(base, concurrency=concurrency)
    )
    started = time.perf_counter()
    run = runner.run(config)
    elapsed = time.perf_counter() - started
    if run.status != "done":
        raise RuntimeError(f"the run {run.status}: {run.error}")
    return config.total_steps / elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policies", default="egreedy-v1,ucb-ix1")
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--concurrency", default="1,8", help="comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, default=DOCS, help="markdown to update")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    config = SimConfig(
        tuple(args.policies.split(",")),
        ("morning-focused", "evening-focused", "quick-wins", "deadline-driven"),
        args.users,
        args.steps,
        seed=args.seed,
    )
    rates: dict[int, list[float]] = {level: [] for level in levels}
    for repeat in range(args.repeats):
        port = free_port()
        with tempfile.TemporaryDirectory() as work:
            env = base_env() | {
                "OO_ML_DATABASE_URL": f"sqlite:///{work}/service.db",
                "OO_ML_ADMIN_TOKEN": secrets.token_urlsafe(24),
            }
            argv_serve = [sys.executable, "-m", "oo_ml.cli", "serve", "--host", "127.0.0.1"]
            argv_serve += ["--port", str(port)]
            log = Path(work) / "serve.log"
            with serving(
                "oo-ml", argv_serve, env=env, cwd=Path(work), log=log, health="/health", port=port
            ):
                base = f"http://127.0.0.1:{port}"
                steps_per_second(base, config, levels[-1])  # warm-up: compiled kernels
                shift = repeat % len(levels)
                for level in levels[shift:] + levels[:shift]:
                    rates[level].append(steps_per_second(base, config, level))
    baseline = statistics.median(rates[levels[0]])
    header = ("concurrency", "steps/s, median", "÷ one at a time", "per repeat")
    rows = [
        (
            str(level),
            f"{statistics.median(rates[level]):,.0f}",
            f"{statistics.median(rates[level]) / baseline:.2f}",
            ", ".join(f"{r:,.0f}" for r in rates[level]),
        )
        for level in levels
    ]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_write:
        command = command_line("benchmarks/http/simulation.py", argv)
        body = (
            "## Simulation over HTTP\n\n"
            f"`{command}` — {args.users} users × {args.steps} steps of "
            f"{', '.join(config.policies)} (rule judge, 4 personas) against `oo-ml serve` (one "
            "worker, SQLite, in its own process; the client in the benchmark's, on the same two "
            "cores): steps/s with a "
            "step's users asking one request at a time and together; medians of "
            f"{args.repeats} repeats, a new service database each.\n\n" + table
        )
        write_section("sim-http", body, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
