"""Simulation runs started from the console: executed in the background, tracked in the database.

A run's state lives in ``sim_runs`` (the app's own store), so a page reload, another worker
process or the command line sees it. The simulated users' decisions go to the in-process memory
engine that :class:`~oo_ml.sim.runner.SimRunner` builds by default, never to the serving tables.

Runs execute on a few daemon threads of the app process. Each run records which process owns
it (host, boot, pid and the process's start time) under ``config["console"]``. When a server
starts, runs that a dead process on this machine left ``queued`` or ``running`` are marked
failed with the reason; runs owned by another machine, or started from the command line (no
owner), are left alone, since nothing here can tell whether they still run.

Cancelling works across worker processes: the request is written to the settings table
(``console.cancel.<run id>``) and the owning process checks it after every batch of events, as
well as setting its own :class:`threading.Event` at once when it owns the run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request

from oo_ml.errors import ConfigurationError
from oo_ml.settings import Settings
from oo_ml.sim.judges import Judge, make_judge
from oo_ml.sim.runner import SimConfig, SimRunner, new_run_id
from oo_ml.store.base import RunRecord, Store, Txn

__all__ = [
    "ACTIVE",
    "MAX_TOTAL_STEPS",
    "WORKERS",
    "ProcessIdentity",
    "RunManager",
    "console_runs",
    "on_server",
    "settings_of",
]

log = logging.getLogger("oo_ml.admin")

ACTIVE = ("queued", "running")
WORKERS = 2
"""Runs executing at once per process; more wait queued."""
MAX_TOTAL_STEPS = 5_000_000
"""The largest run (policies × users × steps) the console starts."""
SHUTDOWN_WAIT_S = 10.0
RECOVER_LIMIT = 1000
"""How many of the newest runs a starting server checks for stale ones."""
_CANCEL_PREFIX = "console.cancel."
_OWNER = "console"
"""The key of a run's config under which the server process that runs it is recorded."""


def _proc_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), or ``None``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """A process, told apart from a later one that reuses its pid or runs after a reboot."""

    host: str
    boot: str
    pid: int
    start: int | None

    @classmethod
    def current(cls) -> ProcessIdentity:
        pid = os.getpid()
        return cls(socket.gethostname(), _boot_id(), pid, _proc_start(pid))

    @classmethod
    def from_dict(cls, data: Any) -> ProcessIdentity | None:
        if not isinstance(data, dict):
            return None
        try:
            start = data.get("start")
            return cls(
                str(data["host"]),
                str(data.get("boot", "")),
                int(data["pid"]),
                None if start is None else int(start),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "boot": self.boot, "pid": self.pid, "start": self.start}

    def alive(self) -> bool | None:
        """Whether the process still runs; ``None`` when it is on another machine."""
        here = ProcessIdentity.current()
        if self.host != here.host:
            return None
        if self.boot and here.boot and self.boot != here.boot:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # it exists, under another user
        if self.start is not None:
            start = _proc_start(self.pid)
            if start is not None and start != self.start:
                return False
        return True


def owner_of(run: RunRecord) -> ProcessIdentity | None:
    """The console process that runs ``run``; ``None`` for runs started elsewhere."""
    return ProcessIdentity.from_dict(run.config.get(_OWNER))


def on_server(run: RunRecord) -> bool:
    """Whether a server process runs ``run`` (started from the console or the API), not a
    command line."""
    return _OWNER in run.config


def settings_of(run: RunRecord) -> dict[str, Any]:
    """``run``'s settings as stored, without which server process runs it."""
    return {key: value for key, value in run.config.items() if key != _OWNER}


@dataclass
class _Job:
    run_id: str
    config: SimConfig
    judge: Judge
    cancel: threading.Event


class RunManager:
    """Starts, executes, cancels and recovers the console's simulation runs for one app."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        workers: int = WORKERS,
        judge_factory: Callable[[str, Settings], Judge] = make_judge,
    ) -> None:
        self.store = store
        self.settings = settings
        self.identity = ProcessIdentity.current()
        self.judge_factory = judge_factory
        self._workers = workers
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Mark failed the runs that a dead process on this machine left unfinished."""
        runs = self.store.read(lambda txn: txn.list_runs(RECOVER_LIMIT))
        stale: list[tuple[str, str]] = []
        for run in runs:
            owner = owner_of(run)
            if run.status not in ACTIVE or owner is None or owner.alive() is not False:
                continue
            stale.append(
                (
                    run.run_id,
                    f"the server process that ran it (pid {owner.pid} on {owner.host}) stopped "
                    f"before it finished, with the run {run.status}",
                )
            )
        now = _now_ms()

        def job(txn: Txn) -> None:
            for run_id, reason in stale:
                _finish_if(txn, run_id, now, reason)

        if stale:
            self.store.write(job)
        for run_id, reason in stale:
            log.warning("run %s marked failed: %s", run_id, reason)
        return [run_id for run_id, _ in stale]

    def shutdown(self, wait_s: float = SHUTDOWN_WAIT_S) -> None:
        """Stop the runs of this process: each ends at its next batch, marked failed."""
        self._stopping.set()
        with self._lock:
            jobs = list(self._jobs.values())
            threads = list(self._threads)
        for job in jobs:
            job.cancel.set()
        for _ in threads:
            self._queue.put(None)
        deadline = time.monotonic() + wait_s
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = list(self._jobs)
        for run_id in left:
            self._fail(run_id, "the server stopped before the run finished")

    # -- starting and cancelling -----------------------------------------------------------

    def start(self, config: SimConfig) -> RunRecord:
        """Record a queued run and hand it to a worker thread.

        Raises :class:`~oo_ml.errors.ConfigurationError` (an unconfigured judge, a run too
        large) before anything is stored.
        """
        if self._stopping.is_set():
            raise RuntimeError("the server is stopping")
        if config.total_steps > MAX_TOTAL_STEPS:
            raise ConfigurationError(
                f"policies × users × steps is {config.total_steps:,}; a run on the server does "
                f"at most {MAX_TOTAL_STEPS:,} (use `oo-ml sim compare` for larger runs)"
            )
        judge = self.judge_factory(config.judge, self.settings)
        now = _now_ms()
        run = RunRecord(
            run_id=new_run_id(),
            created_ms=now,
            updated_ms=now,
            status="queued",
            config={
                **config.to_dict(),
                "judge": judge.name,
                _OWNER: self.identity.to_dict(),
            },
            total_steps=config.total_steps,
        )
        self.store.write(lambda txn: txn.insert_run(run))
        job = _Job(run.run_id, config, judge, threading.Event())
        with self._lock:
            self._jobs[run.run_id] = job
            self._ensure_threads()
        self._queue.put(job)
        return run

    def cancel(self, run_id: str) -> str:
        """Ask a queued or running run to stop. Returns what happened: ``missing``,
        ``finished``, ``foreign`` (not a console run), ``cancelling`` (this process stops it),
        ``remote`` (another worker process stops it) or ``cancelled`` (its process was gone)."""
        run = self.store.read(lambda txn: txn.get_run(run_id))
        if run is None:
            return "missing"
        owner = owner_of(run)
        if run.status not in ACTIVE or owner is None:
            return "finished" if run.status not in ACTIVE else "foreign"
        self.store.write(lambda txn: txn.set_setting(_CANCEL_PREFIX + run_id, "1"))
        with self._lock:
            job = self._jobs.get(run_id)
        if job is not None:
            job.cancel.set()
            return "cancelling"
        if owner.alive() is False:
            reason = "cancelled after its server process had stopped"
            now = _now_ms()
            self.store.write(lambda txn: _finish_if(txn, run_id, now, reason, status="cancelled"))
            return "cancelled"
        return "remote"

    # -- execution ------------------------------------------------------------------------

    def _ensure_threads(self) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        while len(self._threads) < self._workers:
            thread = threading.Thread(
                target=self._work, name=f"oo-ml-console-run-{len(self._threads)}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._execute(job)
            except Exception:
                log.exception("run %s could not be recorded", job.run_id)
            finally:
                with self._lock:
                    self._jobs.pop(job.run_id, None)
                close = getattr(job.judge, "close", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        close()

    def _execute(self, job: _Job) -> None:
        if self._stopping.is_set():
            return  # shutdown() marks it failed
        if job.cancel.is_set() or self._cancel_requested(job.run_id):
            self._set_status(job.run_id, "cancelled")
            return
        runner = SimRunner(
            self.store,
            judge=job.judge,
            progress=lambda _done, _total: self._check_cancel(job),
            cancel=job.cancel,
            judge_concurrency=self.settings.judge_concurrency,
            live_every_s=self.settings.sim_live_seconds,
        )
        run = runner.execute(job.run_id, job.config)
        if (
            run.status == "cancelled"
            and self._stopping.is_set()
            and not self._cancel_requested(job.run_id)
        ):
            self._fail(job.run_id, "the server stopped before the run finished", ("cancelled",))
        elif run.status == "failed":
            log.warning("run %s failed: %s", job.run_id, run.error)

    def _check_cancel(self, job: _Job) -> None:
        if not job.cancel.is_set() and self._cancel_requested(job.run_id):
            job.cancel.set()

    def _cancel_requested(self, run_id: str) -> bool:
        return bool(self.store.read(lambda txn: txn.get_setting(_CANCEL_PREFIX + run_id)))

    def _set_status(self, run_id: str, status: str) -> None:
        now = _now_ms()
        self.store.write(lambda txn: txn.update_run(run_id, now, status=status))

    def _fail(self, run_id: str, reason: str, only: tuple[str, ...] = ACTIVE) -> None:
        now = _now_ms()
        try:
            self.store.write(lambda txn: _finish_if(txn, run_id, now, reason, only=only))
        except Exception:
            log.exception("could not mark run %s failed", run_id)


def _finish_if(
    txn: Txn,
    run_id: str,
    now_ms: int,
    reason: str,
    *,
    status: str = "failed",
    only: tuple[str, ...] = ACTIVE,
) -> None:
    """End the run with ``status`` and ``reason`` if its status is still one of ``only``."""
    run = txn.get_run(run_id)
    if run is not None and run.status in only:
        txn.update_run(run_id, now_ms, status=status, error=reason)


def _now_ms() -> int:
    return int(time.time() * 1000)


def console_runs(request: Request) -> RunManager:
    """The app's run manager (set up by the console's lifespan), for the console's routes and
    the API's ``/v1/sim/runs``."""
    manager: RunManager = request.app.state.console_runs
    return manager
