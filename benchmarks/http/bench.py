"""HTTP throughput and latency of rank and feedback, against the framework's floor and the
existing service, all in one run on this machine.

Systems, each started fresh by this script for every repeat and stopped after it:

* ``floor``: a bare FastAPI app with one ``async`` endpoint returning ``{"ok": true}``
  (``floor_app.py``), under uvicorn like the service; ``GET /``.
* ``existing``: the existing service, ``shared/reference/seed_main.py`` copied as is to a
  temporary directory and run with ``uvicorn seed_main:app`` (state files in a temporary
  ``STATE_DIR``); ``POST /score/egreedy`` with the same bodies as rank.
* ``sqlite``: ``oo-ml serve --workers 1`` on a new SQLite file, ``synchronous=FULL`` (the
  default: every acknowledged write survives a power loss); ``--sqlite-normal`` adds the same
  on ``synchronous=NORMAL``, labelled as such. Besides rank and feedback, the existing
  contract's ``POST /score/egreedy`` (what the app calls today) with rank's bodies.
* ``postgres``: ``oo-ml serve --workers 2`` on a new PostgreSQL database (dropped afterwards).

``oo-ml serve``'s workers answer the direct routes' common requests at the HTTP protocol level
(``oo_ml.api.protocol``, docs/adr/0007) and everything else through uvicorn's ASGI path; the
floor app has no direct route and runs under stock uvicorn, as it would under ``oo-ml serve``.

Rank bodies (``rank.lua``): 1 000 user ids, 10 candidates with varied features, built before
the run. Feedback (``feedback.lua``) names event ids returned by this server's own rank runs,
each once: a duplicate would be a cheap no-op and flatter the number; the script counts any
duplicate or unknown id as an error. Every server logs at its default level to a file.

Keep-alive latency with several workers: ``GET`` at c=1 on the floor app under
``uvicorn --workers 2`` (its listener lacks ``TCP_NODELAY``: ~40 ms per keep-alive request,
uvicorn issue #3149, with the h11 parser; with ``httptools``, installed with the project, the
delay is gone), under ``oo_ml.serve``'s own two-worker launcher, and ``/health`` on the
service with two workers.

The load generator is ``wrk`` (Debian package ``wrk``) with one thread, on the same two cores
as the servers; nothing is pinned. Systems are interleaved (their order rotates every repeat)
so that noise from the machine hits all of them; the table shows medians over repeats. Traffic
goes to 127.0.0.1 only; every run is bounded in time.

    python benchmarks/http/bench.py                  # full run, updates docs/benchmarks.md
    python benchmarks/http/bench.py --quick          # smoke run, writes nothing
    python benchmarks/http/bench.py --existing PATH  # seed_main.py elsewhere (a git worktree)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SEED_MAIN = next(
    (
        path
        for path in (d / "shared" / "reference" / "seed_main.py" for d in ROOT.parents)
        if path.exists()
    ),
    ROOT.parent / "shared" / "reference" / "seed_main.py",
)
"""``shared/`` beside the checkout, or beside a directory above it (a git worktree)."""
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
SECTION_START = "<!-- bench:http:start -->"
SECTION_END = "<!-- bench:http:end -->"
DOC_HEADER = (
    "# Benchmarks\n\n"
    "Numbers written by the scripts in `benchmarks/`. Each script rewrites only its own section,\n"
    "together with the command that produced it.\n"
)
HOST = "127.0.0.1"
PG_ADMIN = {"host": HOST, "port": 5432, "user": "postgres", "dbname": "test"}
TARGET_FLOOR = 0.5
TARGET_EXISTING = 2.5


@dataclass(frozen=True)
class Run:
    """One wrk run's numbers (latencies in microseconds)."""

    requests: int
    seconds: float
    p50_us: float
    p99_us: float
    errors: int
    cpu_us_per_request: float | None
    load: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class Results:
    runs: dict[tuple[str, str, int], list[Run]] = field(default_factory=dict)

    def add(self, system: str, endpoint: str, connections: int, run: Run) -> None:
        self.runs.setdefault((system, endpoint, connections), []).append(run)

    def median(self, key: tuple[str, str, int], attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs[key])


# -- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def get(port: int, path: str, timeout: float = 2.0) -> int:
    conn = HTTPConnection(HOST, port, timeout=timeout)  # no proxies: http.client ignores them
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU of every live process in the process group."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields[2] is pgrp (the 5th field of stat)
            total += int(fields[11]) + int(fields[12])
    return total / tick


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    health: str

    def cpu(self) -> float:
        return group_cpu_seconds(self.process.pid)


@contextmanager
def serving(
    name: str, argv: list[str], *, env: dict[str, str], cwd: Path, log: Path, health: str, port: int
) -> Iterator[Server]:
    """Start ``argv`` in its own process group, wait until ``health`` answers, stop it after."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(name, port, process, health)
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {log}")
            try:
                if get(port, health) == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer {health} within 90 s; see {log}")
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        # workers of a supervisor that died first are in the same group
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def base_env() -> dict[str, str]:
    """The environment without proxy settings (all traffic is local), with this checkout's
    ``src`` first on ``PYTHONPATH``: the servers run this checkout's code even where the
    package is installed (editable) from another checkout."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    )
    return env


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped afterwards."""
    name = f"oo_bench_{secrets.token_hex(6)}"
    with psycopg.connect(**PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql+psycopg://postgres@{HOST}:5432/{name}"
    finally:
        with psycopg.connect(**PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# -- load -------------------------------------------------------------------------------------


@dataclass
class Load:
    wrk: str
    threads: int
    duration: float
    seed: int

    def run(
        self,
        server: Server,
        script: str,
        connections: int,
        *,
        env: dict[str, str],
        work: Path,
        duration: float | None = None,
    ) -> tuple[Run, dict[str, Any]]:
        seconds = self.duration if duration is None else duration
        threads = min(self.threads, connections)
        result = work / f"wrk-{secrets.token_hex(4)}.json"
        run_env = base_env() | env | {"BENCH_RESULT": str(result), "BENCH_THREADS": str(threads)}
        argv = [
            self.wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",  # wrk takes whole seconds
            "--timeout",
            "10s",
            "-s",
            str(HERE / script),
            f"http://{HOST}:{server.port}",
        ]
        load = os.getloadavg()[0]
        cpu_before = server.cpu()
        subprocess.run(argv, env=run_env, check=True, capture_output=True, timeout=seconds + 60)
        cpu_after = server.cpu()
        data = json.loads(result.read_text())
        result.unlink()
        errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
        errors += data.get("duplicates", 0)
        requests = data["requests"]
        return (
            Run(
                requests=requests,
                seconds=data["duration_us"] / 1e6,
                p50_us=data["p50_us"],
                p99_us=data["p99_us"],
                errors=errors,
                cpu_us_per_request=(cpu_after - cpu_before) * 1e6 / requests if requests else None,
                load=load,
            ),
            data,
        )


def rank_env(path: str, seed: int, ids_out: Path | None = None) -> dict[str, str]:
    env = {"BENCH_PATH": path, "BENCH_SEED": str(seed), "BENCH_USERS": "1000"}
    if ids_out is not None:
        env["BENCH_IDS_OUT"] = str(ids_out)
    return env


def read_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    ids = path.read_text().split()
    path.unlink()
    return ids


# -- systems ----------------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    load: Load
    results: Results = field(default_factory=Results)

    def log(self, message: str) -> None:
        print(message, flush=True)

    def record(
        self, system: str, endpoint: str, c: int, result: tuple[Run, dict[str, Any]]
    ) -> None:
        run, data = result
        self.results.add(system, endpoint, c, run)
        kinds = ("connect", "read", "write", "status", "timeout", "duplicates")
        detail = ", ".join(f"{k} {data[k]}" for k in kinds if data.get(k))
        self.log(
            f"  {system:<18} {endpoint:<20} c={c:<3} {run.rps:8.0f} req/s  "
            f"p50 {run.p50_us / 1000:7.2f} ms  p99 {run.p99_us / 1000:7.2f} ms  "
            f"errors {run.errors}{f' ({detail})' if detail else ''}  load {run.load:.1f}"
        )

    def show_errors(self, log: Path) -> None:
        """The server's last error lines, to tell what the errors were."""
        lines = [line for line in log.read_text(errors="replace").splitlines() if "error" in line]
        for line in lines[-3:]:
            self.log(f"    server: {line[:300]}")

    def warm_up(self, server: Server, script: str, env: dict[str, str], work: Path) -> None:
        self.load.run(server, script, 8, env=env, work=work, duration=self.args.warmup)

    def floor(self, work: Path) -> None:
        port = free_port()
        argv = [sys.executable, "-m", "uvicorn", "floor_app:app", "--app-dir", str(HERE)]
        argv += ["--host", HOST, "--port", str(port), "--no-access-log", "--log-level", "warning"]
        with serving(
            "floor", argv, env=base_env(), cwd=work, log=work / "floor.log", health="/", port=port
        ) as server:
            env = {"BENCH_PATH": "/"}
            self.warm_up(server, "get.lua", env, work)
            for c in self.args.connections:
                result = self.load.run(server, "get.lua", c, env=env, work=work)
                self.record("floor", "GET /", c, result)

    def existing(self, work: Path) -> None:
        app_dir = work / "seed"
        app_dir.mkdir()
        shutil.copy2(self.args.existing, app_dir / "seed_main.py")
        env = base_env() | {"STATE_DIR": str(work / "state")}
        port = free_port()
        argv = [sys.executable, "-m", "uvicorn", "seed_main:app", "--app-dir", str(app_dir)]
        argv += ["--host", HOST, "--port", str(port), "--no-access-log", "--log-level", "warning"]
        with serving(
            "existing",
            argv,
            env=env,
            cwd=app_dir,
            log=work / "seed.log",
            health="/health",
            port=port,
        ) as server:
            body = rank_env("/score/egreedy", self.load.seed)
            self.warm_up(server, "rank.lua", body, work)
            for c in self.args.connections:
                result = self.load.run(server, "rank.lua", c, env=body, work=work)
                self.record("existing", "POST /score/egreedy", c, result)

    def ours(self, system: str, database_url: str, workers: int, sync: str, work: Path) -> None:
        env = base_env() | {
            "OO_ML_DATABASE_URL": database_url,
            "OO_ML_ADMIN_TOKEN": secrets.token_urlsafe(24),
            "OO_ML_SQLITE_SYNCHRONOUS": sync,
        }
        port = free_port()
        argv = [sys.executable, "-m", "oo_ml.cli", "serve", "--host", HOST, "--port", str(port)]
        argv += ["--workers", str(workers)]
        log = work / f"{system}.log"
        with serving(
            system, argv, env=env, cwd=work, log=log, health="/health", port=port
        ) as server:
            ids: list[str] = []
            ids_file = work / "ids.txt"
            best = 0.0
            self.warm_up(server, "rank.lua", rank_env("/v1/rank", self.load.seed, ids_file), work)
            ids += read_ids(ids_file)
            for c in self.args.connections:
                env_c = rank_env("/v1/rank", self.load.seed + c, ids_file)
                result = self.load.run(server, "rank.lua", c, env=env_c, work=work)
                ids += read_ids(ids_file)
                best = max(best, result[0].rps)
                self.record(system, "POST /v1/rank", c, result)
                if result[0].errors:
                    self.show_errors(log)
            if workers == 1:
                # The existing app's own endpoint (same bodies), as the app calls it today.
                for c in self.args.connections:
                    env_c = rank_env("/score/egreedy", self.load.seed + c)
                    result = self.load.run(server, "rank.lua", c, env=env_c, work=work)
                    self.record(system, "POST /score/egreedy", c, result)
                    if result[0].errors:
                        self.show_errors(log)
            random.Random(self.load.seed).shuffle(ids)
            for c in self.args.connections:
                ids = self.enough_ids(server, ids, best, work)
                pool = work / "feedback-ids.txt"
                pool.write_text("\n".join(ids) + "\n")
                env_f = {"BENCH_IDS": str(pool), "BENCH_SEED": str(self.load.seed + c)}
                result = self.load.run(server, "feedback.lua", c, env=env_f, work=work)
                # At most one request per connection was in flight when wrk stopped; skip those
                # ids too, so that no id is ever sent twice.
                ids = ids[result[0].requests + c + 1 :]
                best = max(best, result[0].rps)
                self.record(system, "POST /v1/feedback", c, result)
                if result[0].errors:
                    self.show_errors(log)

    def enough_ids(self, server: Server, ids: list[str], rate: float, work: Path) -> list[str]:
        """Rank more (unrecorded) until the ids last one feedback run at ``rate`` (the best rate
        seen so far on this server) three times over; a run that still ran out would show 404s."""
        need = int(3 * rate * self.load.duration) + 256
        ids_file = work / "ids.txt"
        for attempt in range(10):
            if len(ids) >= need:
                break
            seconds = max(1.0, min(30.0, (need - len(ids)) / max(rate, 50.0)))
            env = rank_env("/v1/rank", self.load.seed + 1000 + attempt, ids_file)
            self.load.run(server, "rank.lua", 32, env=env, work=work, duration=seconds)
            fresh = read_ids(ids_file)
            random.Random(attempt).shuffle(fresh)
            ids += fresh
        return ids

    def sqlite(self, sync: str, work: Path) -> None:
        name = "sqlite" if sync == "FULL" else "sqlite NORMAL"
        self.ours(name, f"sqlite:///{work / 'oo-ml.db'}", 1, sync, work)

    def postgres(self, work: Path) -> None:
        with postgres_database() as url:
            self.ours("postgres", url, 2, "FULL", work)

    def keep_alive(self, work: Path) -> None:
        """Keep-alive GET latency at c=1 with two workers: uvicorn's and ours."""
        env = {"BENCH_PATH": "/"}
        port = free_port()
        argv = [sys.executable, "-m", "uvicorn", "floor_app:app", "--app-dir", str(HERE)]
        argv += ["--host", HOST, "--port", str(port), "--no-access-log", "--log-level", "warning"]
        argv += ["--workers", "2"]
        log = work / "floor-uvicorn-2.log"
        with serving(
            "floor uvicorn -w2", argv, env=base_env(), cwd=work, log=log, health="/", port=port
        ) as server:
            self.warm_up(server, "get.lua", env, work)
            result = self.load.run(server, "get.lua", 1, env=env, work=work)
            self.record("floor, uvicorn --workers 2", "GET /", 1, result)
        port = free_port()
        launcher = (
            "import sys; from oo_ml.serve import run_server; "
            "run_server(sys.argv[1], int(sys.argv[2]), 2, 'warning', app='floor_app:app', "
            "factory=False)"
        )
        argv = [sys.executable, "-c", launcher, HOST, str(port)]
        env_floor = base_env()
        env_floor["PYTHONPATH"] = os.pathsep.join([str(HERE), env_floor["PYTHONPATH"]])
        log = work / "floor-ours-2.log"
        with serving(
            "floor ours -w2", argv, env=env_floor, cwd=work, log=log, health="/", port=port
        ) as server:
            self.warm_up(server, "get.lua", env, work)
            result = self.load.run(server, "get.lua", 1, env=env, work=work)
            self.record("floor, oo_ml.serve 2 workers", "GET /", 1, result)
        port = free_port()
        env_ours = base_env() | {
            "OO_ML_DATABASE_URL": f"sqlite:///{work / 'health.db'}",
            "OO_ML_ADMIN_TOKEN": secrets.token_urlsafe(24),
        }
        argv = [sys.executable, "-m", "oo_ml.cli", "serve", "--host", HOST, "--port", str(port)]
        argv += ["--workers", "2"]
        log = work / "ours-health-2.log"
        with serving(
            "ours -w2", argv, env=env_ours, cwd=work, log=log, health="/health", port=port
        ) as server:
            health = {"BENCH_PATH": "/health"}
            self.warm_up(server, "get.lua", health, work)
            result = self.load.run(server, "get.lua", 1, env=health, work=work)
            self.record("service, 2 workers", "GET /health", 1, result)


def fsync_latency_ms(samples: int = 60) -> tuple[float, float, float]:
    """p10, p50, p90 of ``fdatasync`` after an 8 KiB overwrite, in a temporary file like the
    benchmark's SQLite files: what one durable commit costs on this disk."""
    times = []
    with tempfile.TemporaryFile() as f:
        fd = f.fileno()
        os.write(fd, b"\0" * (1 << 20))
        os.fsync(fd)
        for i in range(samples):
            os.pwrite(fd, secrets.token_bytes(8192), (i * 8192) % (1 << 20))
            start = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return times[samples // 10], times[samples // 2], times[samples * 9 // 10]


# -- report -----------------------------------------------------------------------------------

MAIN_ROWS = [
    ("floor", "GET /", "uvicorn, 1 worker", "—"),
    ("existing", "POST /score/egreedy", "uvicorn, 1 worker", "JSON files"),
    ("sqlite", "POST /v1/rank", "1 worker", "SQLite FULL"),
    ("sqlite", "POST /v1/feedback", "1 worker", "SQLite FULL"),
    ("sqlite", "POST /score/egreedy", "1 worker", "SQLite FULL"),
    ("sqlite NORMAL", "POST /v1/rank", "1 worker", "SQLite NORMAL"),
    ("sqlite NORMAL", "POST /v1/feedback", "1 worker", "SQLite NORMAL"),
    ("sqlite NORMAL", "POST /score/egreedy", "1 worker", "SQLite NORMAL"),
    ("postgres", "POST /v1/rank", "2 workers", "PostgreSQL"),
    ("postgres", "POST /v1/feedback", "2 workers", "PostgreSQL"),
]
LATENCY_ROWS = [
    ("floor, uvicorn --workers 2", "GET /"),
    ("floor, oo_ml.serve 2 workers", "GET /"),
    ("service, 2 workers", "GET /health"),
    ("postgres", "POST /v1/rank"),
]


def fmt_ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def main_table(results: Results, connections: Sequence[int]) -> list[str]:
    lines = [
        "| system | endpoint | server | store | c | req/s | p50 ms | p99 ms | errors "
        "| server CPU µs/req |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for system, endpoint, server, store in MAIN_ROWS:
        label = "service" if system not in ("floor", "existing") else system
        for c in connections:
            key = (system, endpoint, c)
            if key not in results.runs:
                continue
            runs = results.runs[key]
            cpu = [r.cpu_us_per_request for r in runs if r.cpu_us_per_request is not None]
            lines.append(
                f"| {label} | `{endpoint}` | {server} | {store} | {c} "
                f"| {results.median(key, 'rps'):,.0f} | {fmt_ms(results.median(key, 'p50_us'))} "
                f"| {fmt_ms(results.median(key, 'p99_us'))} | {sum(r.errors for r in runs)} "
                f"| {statistics.median(cpu) if cpu else float('nan'):,.0f} |"
            )
    return lines


def latency_table(results: Results) -> list[str]:
    lines = ["| server | request | c | p50 ms | p99 ms | req/s |", "|---|---|---:|---:|---:|---:|"]
    for system, endpoint in LATENCY_ROWS:
        key = (system, endpoint, 1)
        if key not in results.runs:
            continue
        name = "service, 2 workers (PostgreSQL)" if system == "postgres" else system
        lines.append(
            f"| {name} | `{endpoint}` | 1 | {fmt_ms(results.median(key, 'p50_us'))} "
            f"| {fmt_ms(results.median(key, 'p99_us'))} | {results.median(key, 'rps'):,.0f} |"
        )
    return lines


def verdicts(results: Results) -> list[str]:
    key_rank, key_floor, key_old = (
        ("sqlite", "POST /v1/rank", 8),
        ("floor", "GET /", 8),
        ("existing", "POST /score/egreedy", 8),
    )
    if not all(k in results.runs for k in (key_rank, key_floor, key_old)):
        return []
    rank = results.median(key_rank, "rps")
    vs_floor = rank / results.median(key_floor, "rps")
    vs_old = rank / results.median(key_old, "rps")
    errors = sum(r.errors for r in results.runs[key_rank])

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    return [
        f"- rank / floor = **{vs_floor:.2f}×** (target ≥ {TARGET_FLOOR}×: "
        f"{verdict(vs_floor >= TARGET_FLOOR)})",
        f"- rank / existing `/score/egreedy` = **{vs_old:.2f}×** (target ≥ {TARGET_EXISTING}×: "
        f"{verdict(vs_old >= TARGET_EXISTING)})",
        f"- rank errors: {errors} (target 0: {verdict(errors == 0)})",
    ]


def markdown(command: str, settings: str, results: Results, connections: Sequence[int]) -> str:
    lines = [
        "## HTTP: rank and feedback against the framework's floor and the existing service",
        "",
        "Requests per second and latency over HTTP/1.1 keep-alive connections, `wrk` on the same",
        "two cores as the servers. `floor` is a bare FastAPI app with one `async` endpoint",
        'returning `{"ok": true}` under the same server; `existing` is the existing service',
        "(`shared/reference/seed_main.py`, run as is) answering `/score/egreedy` with the same",
        "bodies as rank (1 000 users, 10 candidates). Feedback names event ids from the",
        "server's own rank runs, each exactly once. The service's `/score/egreedy` is the",
        "existing contract's endpoint that the app calls today, with the same bodies.",
        "SQLite runs with `synchronous=FULL`, the",
        "default: every acknowledged decision survives a power loss; rows labelled NORMAL",
        "trade that for speed. Medians over interleaved repeats; errors are summed.",
        "See the docstring of `benchmarks/http/bench.py` for exactly what runs.",
        "",
        f"Command: `{command}`",
        "",
        settings,
        "",
        *main_table(results, connections),
        "",
        "Targets at c=8, one worker, SQLite (FULL), zero errors:",
        "",
        *verdicts(results),
        "",
        "Keep-alive latency with two workers, one connection:",
        "",
        *latency_table(results),
        "",
    ]
    return "\n".join(lines)


def write_section(path: Path, body: str) -> None:
    """Replace this benchmark's section of ``path``, creating the file if needed."""
    section = f"{SECTION_START}\n{body}{SECTION_END}"
    text = path.read_text(encoding="utf-8") if path.exists() else DOC_HEADER
    pattern = re.compile(re.escape(SECTION_START) + ".*?" + re.escape(SECTION_END), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per server")
    parser.add_argument("--repeats", type=int, default=3, help="fresh servers per system")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--systems",
        nargs="+",
        default=["floor", "existing", "sqlite", "postgres", "keep-alive"],
        choices=["floor", "existing", "sqlite", "sqlite-normal", "postgres", "keep-alive"],
    )
    parser.add_argument("--sqlite-normal", action="store_true", help="also SQLite NORMAL")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--existing",
        type=Path,
        default=SEED_MAIN,
        help="the existing service's seed_main.py (default: shared/ beside the checkout)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 s runs, 1 repeat")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="markdown to update")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.repeats, args.no_write = 1.0, 1.0, 1, True
    if args.sqlite_normal and "sqlite-normal" not in args.systems:
        args.systems.append("sqlite-normal")
    if args.duration <= 0 or args.repeats < 1 or min(args.connections) < 1:
        parser.error("--duration, --repeats and --connections must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(
        ["python", "benchmarks/http/bench.py", *(sys.argv[1:] if argv is None else argv)]
    )
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    if "existing" in args.systems and not args.existing.exists():
        print(f"existing service not found at {args.existing}: see --existing", file=sys.stderr)
        return 2
    bench = Bench(args, Load(wrk, args.threads, args.duration, args.seed))
    steps = {
        "floor": bench.floor,
        "existing": bench.existing,
        "sqlite": lambda work: bench.sqlite("FULL", work),
        "sqlite-normal": lambda work: bench.sqlite("NORMAL", work),
        "postgres": bench.postgres,
        "keep-alive": bench.keep_alive,
    }
    order = [s for s in steps if s in args.systems]
    started = time.monotonic()
    fsync_before = fsync_latency_ms()
    for repeat in range(args.repeats):
        rotated = order[repeat % len(order) :] + order[: repeat % len(order)]
        bench.log(f"repeat {repeat + 1}/{args.repeats}: {', '.join(rotated)}")
        for system in rotated:
            with tempfile.TemporaryDirectory(prefix=f"oo-bench-{system}-") as tmp:
                steps[system](Path(tmp))
    fsync = [statistics.median(v) for v in zip(fsync_before, fsync_latency_ms(), strict=True)]
    wrk_version = subprocess.run(
        [wrk, "--version"], check=False, capture_output=True, text=True
    ).stdout
    loads = [r.load for runs in bench.results.runs.values() for r in runs]
    settings = (
        f"{args.duration:g} s per run after {args.warmup:g} s of warm-up, {args.repeats} repeats, "
        f"wrk {wrk_version.split()[1] if wrk_version else '?'} with {args.threads} thread(s); "
        f"Python {platform.python_version()}, {os.cpu_count()} cores; 1-minute load average "
        f"before the runs {min(loads):.1f}–{max(loads):.1f} (median "
        f"{statistics.median(loads):.1f}); {time.strftime('%Y-%m-%d', time.gmtime())}, "
        f"{(time.monotonic() - started) / 60:.0f} min. `fdatasync` of an 8 KiB overwrite on "
        f"the temporary file system (one per durable commit): p10 {fsync[0]:.1f}, p50 "
        f"{fsync[1]:.1f}, p90 {fsync[2]:.1f} ms (before and after the runs, averaged)."
    )
    body = markdown(command, settings, bench.results, args.connections)
    print()
    print(body)
    if not args.no_write:
        write_section(args.output, body)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
