"""Feedback on PostgreSQL with two workers when many requests touch the same few users.

Each worker's writer commits its pending jobs as one transaction, and a feedback locks its
(user, policy) model until the commit. With few users and many clients, two workers' batches
keep meeting on the same users. This measures feedback throughput and latency in that *hot*
case against a *cold* one (ten times as many users, the same number of feedbacks) in the same
run: the hot/cold throughput ratio is what contention costs.

For every run: a new PostgreSQL database, ``oo-ml serve --workers 2``, ``decisions`` ranks
spread evenly over the users (not timed), then one feedback per decision in a shuffled order
from ``clients`` concurrent keep-alive clients (timed). A request taking 900 ms or more counts
as a stall: PostgreSQL breaks a lock wait cycle after ``deadlock_timeout`` (1 s).

``--tree PATH`` also runs the code of another checkout (a ``git worktree`` of an older commit)
in the same run, interleaved, to compare before and after a change.

    python benchmarks/http/contention.py                       # writes docs/benchmarks.md
    python benchmarks/http/contention.py --tree ../wt/old --no-write
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from benchmarks._docs import DOCS, command_line, markdown_table, write_section
from benchmarks.http.bench import ROOT, base_env, free_port, postgres_database, serving

STALL_S = 0.9


@dataclass(frozen=True)
class Measured:
    rate: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    stalls: int
    errors: int


def _rank_all(client: httpx.Client, users: int, decisions: int) -> list[str]:
    events = []
    for i in range(decisions):
        body = {
            "user_id": f"user-{i % users}",
            "context": {"hour_of_day": 9 + i % 8, "day_of_week": i % 7},
            "candidates": [
                {"id": f"t{k}", "content": "", "source": "todoist", "features": {"priority": 1 + k}}
                for k in range(4)
            ],
        }
        answer = client.post("/v1/rank", json=body)
        answer.raise_for_status()
        events.append(str(answer.json()["event_id"]))
    return events


def _feedback_all(base: str, events: list[str], clients: int) -> Measured:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client_loop(chunk: list[str]) -> None:
        with httpx.Client(base_url=base, trust_env=False, timeout=60) as client:
            for event_id in chunk:
                started = time.perf_counter()
                answer = client.post(
                    "/v1/feedback", json={"event_id": event_id, "action": "done", "dwell_ms": 20000}
                )
                took = time.perf_counter() - started
                with lock:
                    latencies.append(took)
                    errors[0] += answer.status_code != 200

    threads = [
        threading.Thread(target=client_loop, args=(events[i::clients],)) for i in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return Measured(
        rate=len(latencies) / wall,
        p50_ms=1000 * latencies[len(latencies) // 2],
        p99_ms=1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        max_ms=1000 * latencies[-1],
        stalls=sum(1 for t in latencies if t >= STALL_S),
        errors=errors[0],
    )


def measure(tree: Path, users: int, args: argparse.Namespace, seed: int) -> Measured:
    """One run: a new database and server running ``tree``'s code, ranks, then timed feedback."""
    env = base_env()
    env["PYTHONPATH"] = str(tree / "src")
    port = free_port()
    with postgres_database() as url, tempfile.TemporaryDirectory() as work:
        env |= {"OO_ML_DATABASE_URL": url, "OO_ML_ADMIN_TOKEN": secrets.token_urlsafe(24)}
        argv = [sys.executable, "-m", "oo_ml.cli", "serve", "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--workers", "2"]
        log = Path(work) / "serve.log"
        with serving("oo-ml", argv, env=env, cwd=Path(work), log=log, health="/health", port=port):
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, trust_env=False, timeout=60) as client:
                events = _rank_all(client, users, args.decisions)
            random.Random(seed).shuffle(events)
            return _feedback_all(base, events, args.clients)


def _label(tree: Path) -> str:
    git = ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"]
    found = subprocess.run(git, check=False, capture_output=True, text=True)
    commit = found.stdout.strip() or "?"
    return "this checkout" if tree == ROOT else f"{commit} (`--tree`)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hot-users", type=int, default=20)
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tree", type=Path, action="append", default=[], help="another checkout")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, default=DOCS, help="markdown to update")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    trees = [ROOT, *(t.resolve() for t in args.tree)]
    cases = [(tree, users) for tree in trees for users in (args.hot_users * 10, args.hot_users)]
    runs: dict[tuple[Path, int], list[Measured]] = {case: [] for case in cases}
    for repeat in range(args.repeats):  # interleaved, the order rotating every repeat
        shift = repeat % len(cases)
        for tree, users in cases[shift:] + cases[:shift]:
            runs[(tree, users)].append(measure(tree, users, args, args.seed + repeat))
    header = (
        "code",
        "users",
        "feedback/s",
        "÷ cold",
        "p50 ms",
        "p99 ms",
        "max ms",
        f"≥ {STALL_S * 1000:.0f} ms",
        "errors",
    )
    rows = []
    for tree in trees:
        cold = statistics.median(m.rate for m in runs[(tree, args.hot_users * 10)])
        for users in (args.hot_users * 10, args.hot_users):
            done = runs[(tree, users)]
            rate = statistics.median(m.rate for m in done)
            rows.append(
                (
                    _label(tree),
                    f"{users} ({'cold' if users > args.hot_users else 'hot'})",
                    f"{rate:,.0f}",
                    f"{rate / cold:.2f}",
                    f"{statistics.median(m.p50_ms for m in done):.0f}",
                    f"{statistics.median(m.p99_ms for m in done):.0f}",
                    f"{max(m.max_ms for m in done):,.0f}",
                    " / ".join(str(m.stalls) for m in done),
                    str(sum(m.errors for m in done)),
                )
            )
    table = markdown_table(header, rows)
    print(table)
    if not args.no_write:
        command = command_line("benchmarks/http/contention.py", argv)
        body = (
            "## Feedback under contention: PostgreSQL, two workers, few users\n\n"
            f"`{command}` — {args.decisions} decisions ranked over the users, then one "
            f"feedback each in a shuffled order from {args.clients} concurrent keep-alive "
            f"clients (Python threads on the same two cores); medians of {args.repeats} "
            "interleaved runs, a new database each (max: over all runs; stalls: requests of "
            "900 ms or more, per run). Cold: ten times the hot users, the same load.\n\n" + table
        )
        write_section("pg-contention", body, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
