"""Real ``oo-ml serve`` processes: start one on a free port, wait until every worker is up,
kill its whole process group, and ask a chosen worker for its own metrics.

Linux only, like ``SO_REUSEPORT``: which worker owns a connection is read from ``/proc``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import httpx

ADMIN_TOKEN = "robustness-admin-0123456789"
STARTUP_SECONDS = 60.0
EXIT_SECONDS = 15.0


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def wait_until_gone(pgid: int, seconds: float = EXIT_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while group_members(pgid):
        if time.monotonic() > deadline:
            raise AssertionError(f"process group {pgid} still has {group_members(pgid)}")
        time.sleep(0.02)


@dataclass
class Server:
    """One ``oo-ml serve`` process group; its stdout and stderr go to ``log_path``."""

    process: subprocess.Popen[bytes]
    port: int
    workers: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_entries(self) -> list[dict[str, Any]]:
        """The JSON log lines (the banner lines of ``oo-ml serve`` are not JSON)."""
        entries = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    entries.append(entry)
        return entries

    def log_messages(self, message: str) -> list[str]:
        return [e["msg"] for e in self.log_entries() if str(e.get("msg", "")).startswith(message)]

    def worker_pids(self) -> list[int]:
        """Process ids from uvicorn's ``Started server process [pid]`` lines."""
        return [int(m.rsplit("[", 1)[1].rstrip("]")) for m in self.log_messages("Started server")]

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """``kill -9`` of the supervisor and every worker at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=EXIT_SECONDS)
        wait_until_gone(self.process.pid)

    def wait_ready(self) -> None:
        """Until ``/ready`` answers 200 and every worker has finished starting up."""
        deadline = time.monotonic() + STARTUP_SECONDS
        with httpx.Client(trust_env=False, timeout=5.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"server exited early:\n{self.log_tail()}")
                started = len(self.log_messages("Application startup complete"))
                if started >= self.workers:
                    with contextlib.suppress(httpx.TransportError):
                        if client.get(f"{self.base_url}/ready").status_code == 200:
                            return
                if time.monotonic() > deadline:
                    raise AssertionError(f"server not ready in time:\n{self.log_tail()}")
                time.sleep(0.05)


def start_server(database_url: str, workers: int, directory: Path, port: int = 0) -> Server:
    """``oo-ml serve --workers N`` in its own session on ``port`` (0: a free one); returns
    once it is ready.

    It runs in ``directory`` so that no stray ``.env`` or ``./oo-ml.db`` is picked up.
    """
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OO_ML_")}
    env |= {
        "OO_ML_DATABASE_URL": database_url,
        "OO_ML_ADMIN_TOKEN": ADMIN_TOKEN,
        "OO_ML_DEFAULT_REWARD_ENABLED": "false",
        "OO_ML_LOG_LEVEL": "info",
    }
    log_path = directory / f"server-{port}.log"
    command = [sys.executable, "-m", "oo_ml.cli", "serve"]
    command += ["--port", str(port), "--workers", str(workers)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, port, workers, log_path)
    try:
        server.wait_ready()
    except BaseException:
        server.kill()
        raise
    return server


def _socket_inode(local_port: int, remote_port: int) -> int | None:
    """The inode of the server-side socket of the 127.0.0.1 connection between two ports."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], int(fields[9])
        if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == (
            remote_port
        ):
            return inode
    return None


def _owner(inode: int, pids: list[int]) -> int | None:
    target = f"socket:[{inode}]"
    for pid in pids:
        with contextlib.suppress(OSError):
            fds = Path(f"/proc/{pid}/fd")
            if any(os.readlink(fd) == target for fd in fds.iterdir()):
                return pid
    return None


def connections_by_worker(server: Server, attempts: int = 64) -> dict[int, HTTPConnection]:
    """One open keep-alive connection to each worker, keyed by the worker's pid.

    Each attempt opens a new connection (the kernel picks the worker from the connection's
    ports), makes a request so that the worker has surely accepted it, then finds the process
    that holds its server side. Missing a worker in 64 tries has probability ~2⁻⁶³.
    """
    pids = [pid for pid in server.worker_pids() if Path(f"/proc/{pid}").exists()]
    found: dict[int, HTTPConnection] = {}
    try:
        for _ in range(attempts):
            if set(found) == set(pids):
                break
            conn = HTTPConnection("127.0.0.1", server.port, timeout=60)
            owner = None
            try:
                conn.request("GET", "/health")
                response = conn.getresponse()
                response.read()
                assert response.status == 200
                assert conn.sock is not None
                inode = _socket_inode(server.port, conn.sock.getsockname()[1])
                owner = None if inode is None else _owner(inode, pids)
            finally:
                if owner is None or owner in found:
                    conn.close()
                else:
                    found[owner] = conn
    except BaseException:
        for conn in found.values():
            conn.close()
        raise
    return found


def metrics_by_worker(server: Server) -> dict[int, str]:
    """Every worker's own ``/metrics`` text, keyed by its pid."""
    texts = {}
    connections = connections_by_worker(server)
    try:
        for pid, conn in connections.items():
            conn.request("GET", "/metrics")
            response = conn.getresponse()
            texts[pid] = response.read().decode()
            assert response.status == 200, texts[pid]
    finally:
        for conn in connections.values():
            conn.close()
    return texts


def metric_total(text: str, name: str) -> float:
    """The sum of a metric's samples over all label values, in Prometheus text format."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith((f"{name}{{", f"{name} ")):
            total += float(line.rsplit(" ", 1)[1])
    return total
