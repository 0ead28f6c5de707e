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
import time
from types import FrameType

import uvicorn

from oo_ml.logs import logging_config

__all__ = ["listen_socket", "run_server"]


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


def _worker(host: str, port: int, log_level: str) -> None:
    sock = listen_socket(host, port, reuse_port=True)
    config = uvicorn.Config(
        "oo_ml.api:create_app",
        factory=True,
        log_config=logging_config(log_level),
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=30,
    )
    uvicorn.Server(config).run(sockets=[sock])


def run_server(host: str, port: int, workers: int, log_level: str) -> None:
    """Serve until SIGINT/SIGTERM. Settings reach workers through the environment."""
    if workers == 1:
        _worker(host, port, log_level)
        return
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_worker, args=(host, port, log_level), daemon=False)
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
