"""``oo-ml serve``: one or several worker processes behind one port.

Each worker binds its own listening socket with ``SO_REUSEPORT`` and the kernel spreads new
connections across them. The sockets are created with ``proto=IPPROTO_TCP``: asyncio turns on
``TCP_NODELAY`` for accepted connections only when the listener says so, and uvicorn's own
``--workers`` passes down a listener created without it, which costs every keep-alive request
~40 ms of Nagle delay (uvicorn issue #3149). A supervisor restarts a worker that dies.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from types import FrameType

import uvicorn

from oo_ml.api.protocol import install as install_direct_protocol
from oo_ml.logs import logging_config
from oo_ml.runtime import freeze_startup_heap

__all__ = ["listen_socket", "run_server"]

SWITCH_INTERVAL_S = 0.0005


def listen_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A listening TCP socket whose accepted connections get ``TCP_NODELAY`` from asyncio."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker(host: str, port: int, log_level: str, app: str, factory: bool) -> None:
    # The store's writer thread takes the GIL back after every database call; while the event
    # loop is busy, each take waits out the switch interval (5 ms by default), which multiplied
    # a batch's time many times over under load. 0.5 ms bounds that wait.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    sock = listen_socket(host, port, reuse_port=True)
    config = uvicorn.Config(
        app,
        factory=factory,
        log_config=logging_config(log_level),
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    supervisor = os.getppid()

    def follow_supervisor() -> None:
        # A worker whose supervisor died (kill -9, OOM) must not go on serving the port: a
        # restarted service would share it with orphans running old code.
        while not server.should_exit:
            if os.getppid() != supervisor:
                server.should_exit = True
            time.sleep(0.5)

    if multiprocessing.parent_process() is not None:
        threading.Thread(target=follow_supervisor, name="oo-ml-supervisor", daemon=True).start()
    # Build the app before serving and freeze it: under load, a full collection walking the
    # startup objects was the 99th percentile of rank's latency (see freeze_startup_heap).
    config.load()
    install_direct_protocol(config)
    freeze_startup_heap()
    server.run(sockets=[sock])


def run_server(
    host: str,
    port: int,
    workers: int,
    log_level: str,
    *,
    app: str = "oo_ml.api:create_app",
    factory: bool = True,
) -> None:
    """Serve until SIGINT/SIGTERM. Settings reach workers through the environment.

    ``app`` is an import string (a factory when ``factory``); another app than the service's
    is for comparisons, e.g. ``benchmarks/http`` serving a bare app the same way.
    """
    if workers == 1:
        _worker(host, port, log_level, app, factory)
        return
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(
            target=_worker, args=(host, port, log_level, app, factory), daemon=False
        )
        process.start()
        return process

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    processes = [start() for _ in range(workers)]
    while not stopping:
        time.sleep(0.2)
        for i, process in enumerate(processes):
            if not process.is_alive() and not stopping:
                print(
                    f"worker {process.pid} exited with {process.exitcode}; restarting", flush=True
                )
                processes[i] = start()
    for process in processes:
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    for process in processes:
        process.join(timeout=15)
        if process.is_alive():
            process.kill()
