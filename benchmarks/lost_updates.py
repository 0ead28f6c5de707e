"""Concurrent rewards for one user across two worker processes: how many each service keeps.

Each run starts a service with two worker processes on fresh state, sends ``--requests``
concurrent ``POST /reward/egreedy`` for one user from ``--connections`` concurrent clients,
then reads ``reward_count`` from ``GET /stats/egreedy/{user}``:

* the existing service: ``shared/reference/seed_main.py`` as is, under
  ``uvicorn seed_main:app --workers 2`` with its own ``STATE_DIR`` (per-user JSON files,
  read-modify-write without a lock);
* oo-ml: ``oo-ml serve --workers 2`` on a fresh SQLite database.

How many of the existing service's updates survive depends on timing, which is why this is a
benchmark and not a test; ``tests/robustness`` asserts that oo-ml keeps every one.

    python benchmarks/lost_updates.py                 # 3 runs each, updates docs/benchmarks.md
    python benchmarks/lost_updates.py --quick         # smoke run, writes nothing
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPException
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script too

from benchmarks._docs import DOCS, print_table, write_section  # noqa: E402

DEFAULT_SEED = ROOT.parent / "shared" / "reference" / "seed_main.py"
COLUMNS = ("service", "run", "sent", "200", "5xx", "no answer", "reward_count", "lost", "in file")
STARTUP_SECONDS = 60.0
USER = "one-busy-user"


@dataclass(frozen=True, slots=True)
class Run:
    service: str
    run: int
    sent: int
    ok: int
    server_errors: int
    no_answer: int
    reward_count: int | None  # None: the stats endpoint itself failed (a corrupt state file)
    in_file: int | None = None  # the existing service: reward_count of its state file's first
    # JSON object, which is what is left when concurrent writes have garbled the rest

    def row(self) -> tuple[str, ...]:
        count = "unreadable" if self.reward_count is None else str(self.reward_count)
        lost = "?" if self.reward_count is None else str(self.sent - self.reward_count)
        numbers = (self.sent, self.ok, self.server_errors, self.no_answer)
        in_file = "—" if self.in_file is None else str(self.in_file)
        return (self.service, str(self.run), *map(str, numbers), count, lost, in_file)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(conn: HTTPConnection, method: str, path: str, body: object = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, None if body is None else json.dumps(body), headers)
    response = conn.getresponse()
    return response.status, response.read().decode(errors="replace")


@contextlib.contextmanager
def running(
    command: list[str], env: dict[str, str], cwd: Path, port: int, workers: int
) -> Iterator[None]:
    """The service in its own session, until every worker has started; killed afterwards."""
    log_path = cwd / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while log_path.read_text(errors="replace").count("Application startup complete") < workers:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[:3]} did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def reward_body(i: int) -> dict[str, object]:
    """The ``i``-th reward of the existing contract."""
    return {
        "user_id": USER,
        "tip_id": f"tip-{i}",
        "reward": [1.0, 0.5, 0.0, -0.5, -1.0][i % 5],
        "features": {
            "hour_of_day": (3 * i) % 24,
            "is_overdue": i % 2 == 0,
            "task_age_days": float(i % 31),
            "priority": 1 + i % 4,
        },
        "day_of_week": i % 7,
    }


def hammer(port: int, requests: int, connections: int) -> tuple[int, int, int]:
    """(200s, 5xx, requests without an answer) for ``requests`` concurrent rewards.

    Each request has a connection of its own: the existing service's workers close a
    connection after a 500, and a request sent on it then would count against it unfairly.
    """

    def send(i: int) -> int | None:
        conn = HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            return request(conn, "POST", "/reward/egreedy", reward_body(i))[0]
        except (OSError, HTTPException):
            return None
        finally:
            conn.close()

    with ThreadPoolExecutor(connections) as pool:
        statuses = list(pool.map(send, range(requests)))
    ok = statuses.count(200)
    server_errors = sum(1 for s in statuses if s is not None and s >= 500)
    return ok, server_errors, statuses.count(None)


def reward_count(port: int) -> int | None:
    conn = HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        status, text = request(conn, "GET", f"/stats/egreedy/{USER}")
    finally:
        conn.close()
    return int(json.loads(text)["reward_count"]) if status == 200 else None


def count_in_state_file(state_dir: Path) -> int | None:
    """``meta.reward_count`` of the first JSON object in the user's ε-greedy state file."""
    safe = "".join(c if c.isalnum() else "_" for c in USER)
    try:
        text = (state_dir / f"{safe}_egreedy.json").read_text(errors="replace")
        state, _ = json.JSONDecoder().raw_decode(text)
        return int(state["meta"]["reward_count"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def measure(service: str, run: int, args: argparse.Namespace, workdir: Path) -> Run:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OO_ML_", "STATE_DIR"))}
    if service == "existing":
        shutil.copy(args.seed, workdir / "seed_main.py")
        env["STATE_DIR"] = str(workdir / "state")
        command = [sys.executable, "-m", "uvicorn", "seed_main:app", "--app-dir", str(workdir)]
        command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers)]
    else:
        env |= {
            "OO_ML_DATABASE_URL": f"sqlite:///{workdir}/oo-ml.db",
            "OO_ML_ADMIN_TOKEN": "lost-updates-benchmark-token",
            "OO_ML_DEFAULT_REWARD_ENABLED": "false",
        }
        command = [sys.executable, "-m", "oo_ml.cli", "serve", "--port", str(port)]
        command += ["--workers", str(args.workers)]
    with running(command, env, workdir, port, args.workers):
        ok, server_errors, no_answer = hammer(port, args.requests, args.connections)
        count = reward_count(port)
    in_file = count_in_state_file(workdir / "state") if service == "existing" else None
    return Run(service, run, args.requests, ok, server_errors, no_answer, count, in_file)


def markdown(command: str, settings: str, rows: Sequence[tuple[str, ...]]) -> str:
    lines = [
        "## Lost updates: concurrent rewards for one user",
        "",
        "Concurrent `POST /reward/egreedy` for one user against two worker processes, then",
        "`reward_count` from `GET /stats/egreedy/{user}`; `lost` = sent − counted. The existing",
        "service is `shared/reference/seed_main.py` as is under `uvicorn --workers 2`;",
        "`unreadable` means its stats endpoint failed on a corrupt state file; `in file` is the",
        "`reward_count` of the first JSON object in that file (what survived the garbling).",
        "",
        f"Command: `{command}`",
        "",
        settings,
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=500, help="concurrent rewards per run")
    parser.add_argument("--connections", type=int, default=50, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per service")
    parser.add_argument("--runs", type=int, default=3, help="runs per service")
    parser.add_argument("--seed", type=Path, default=DEFAULT_SEED, help="the existing service")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 run of 100 requests")
    parser.add_argument(
        "--output",
        type=Path,
        help="markdown file whose section to update "
        "(default: docs/benchmarks.md, none with --quick)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.runs = 100, 1
    if min(args.requests, args.connections, args.workers, args.runs) < 1:
        parser.error("--requests, --connections, --workers and --runs must be positive")
    if not args.seed.is_file():
        parser.error(f"the existing service is not at {args.seed}; pass --seed")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "benchmarks/lost_updates.py", *given])
    console = Console(width=None if sys.stdout.isatty() else 132)
    results = []
    for service in ("existing", "oo-ml"):
        for run in range(1, args.runs + 1):
            with tempfile.TemporaryDirectory(prefix="lost-updates-") as workdir:
                results.append(measure(service, run, args, Path(workdir)))
            console.print(f"measured {service} run {run}")
    rows = [r.row() for r in results]
    settings = (
        f"{args.requests} rewards from {args.connections} concurrent clients, "
        f"{args.workers} workers; "
        f"Python {platform.python_version()}, {os.cpu_count()} cores; "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}."
    )
    print_table(
        console,
        "lost updates: concurrent rewards for one user",
        COLUMNS,
        rows,
        caption=settings,
        left=2,
    )
    output = args.output or (None if args.quick else DOCS)
    if output is not None:
        write_section("lost-updates", markdown(command, settings, rows), output)
        console.print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
