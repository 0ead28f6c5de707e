"""Several workers must not cost latency: connections accepted on ``listen_socket()`` get
``TCP_NODELAY``, so a keep-alive response is not held back by Nagle's algorithm.

asyncio sets ``TCP_NODELAY`` on an accepted connection only when its listener was created with
``proto=IPPROTO_TCP``; uvicorn's own ``bind_socket`` (used by its ``--workers``) passes 0. The
latency itself is measured by the benchmarks, not here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket

import uvicorn

from oo_ml.serve import listen_socket


def nodelay_of_accepted_connection(listener: socket.socket) -> int:
    """``TCP_NODELAY`` of a connection accepted by an asyncio server on ``listener``."""

    async def accept_one() -> int:
        loop = asyncio.get_running_loop()
        accepted: asyncio.Future[int] = loop.create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                if not accepted.done():
                    accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await loop.create_server(Probe, sock=listener)
        async with server:
            host, port = listener.getsockname()[:2]
            _, writer = await asyncio.open_connection(host, port)
            try:
                return await asyncio.wait_for(accepted, timeout=30)
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()

    # A fresh thread: another test's tool (e.g. Playwright's sync API) may have left an event
    # loop running in this one, and asyncio.run() refuses to nest.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, accept_one()).result()


def test_listen_socket_is_created_as_tcp() -> None:
    with listen_socket("127.0.0.1", 0, reuse_port=True) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1


def test_connections_accepted_on_listen_socket_have_tcp_nodelay() -> None:
    listener = listen_socket("127.0.0.1", 0, reuse_port=True)
    assert nodelay_of_accepted_connection(listener) != 0


def test_connections_accepted_on_uvicorns_own_socket_lack_tcp_nodelay() -> None:
    """The control: without ``proto=IPPROTO_TCP`` the check above would fail."""
    listener = uvicorn.Config("oo_ml.api:create_app", host="127.0.0.1", port=0).bind_socket()
    assert listener.proto == 0
    assert nodelay_of_accepted_connection(listener) == 0
