"""uvicorn's httptools protocol, answering the direct routes' requests without an ASGI cycle.

:class:`~oo_ml.api.fast.ServiceApp` already answers the common request of a direct route
(``POST /v1/rank``, ``/v1/feedback``, ``/score`` …) without FastAPI. Under load the next
cost is the ASGI server's own work around it: a scope dict, a ``RequestResponseCycle`` and
its ``asyncio.Event``, the app's ``receive`` and two ``send`` calls (header validation with
two regular expressions a header) and two writes to the socket, one for the head and one for
the body, so two TCP segments and two wake-ups of the client. For a direct route's request
:class:`DirectProtocol` reads the body itself, runs the same
:meth:`~oo_ml.api.fast.ServiceApp.direct_answer` in a task and writes the response in one
``write``; under ``wrk`` at c=8 on one worker that was about 17% more requests a second
(``docs/benchmarks.md``).

It takes a request only when nothing can differ from the normal path: ``POST`` over
HTTP/1.1 to a direct route's exact path (no query, no percent-escape), no upgrade, no
``Expect``, no earlier request of the connection still being answered, no
``limit_concurrency``, and :meth:`~oo_ml.api.fast.ServiceApp.direct_route`'s header checks
passed (which also decline a ``Transfer-Encoding``). A body that the route's model refuses,
and every other request, go through uvicorn's own path unchanged (the body already read is
handed to that cycle), so every refusal is still FastAPI's. Errors of the engine are
answered by the app's exception handlers; an error they do not handle is logged and
answered ``500`` with the connection closed, as uvicorn does.

Keep-alive, pipelining, flow control and shutdown keep uvicorn's logic: while a direct
request is being answered the connection's ``cycle`` is a :class:`_DirectCycle`, which the
protocol's code treats as the request in progress (a pipelined request waits in its
queue, a lost connection marks it ``disconnected``, a shutdown turns off its keep-alive),
and when it is answered the protocol's ``on_response_complete`` runs as for any request.

``oo_ml.serve`` installs it (:func:`install`) for the service's workers; the app itself does
not depend on it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import Message
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.utils import get_client_addr

from oo_ml.api.fast import DirectRoute, ServiceApp

__all__ = ["DirectProtocol", "install"]

log = logging.getLogger("uvicorn.error")

_JSON_HEADER = b"\r\ncontent-type: application/json\r\n"


class _Event:
    """What the protocol calls on a cycle's ``message_event``: nothing waits on it here."""

    __slots__ = ()

    def set(self) -> None:
        pass


_EVENT = _Event()


class _DirectCycle:
    """A direct request in progress, in the place of uvicorn's ``RequestResponseCycle``: the
    attributes the protocol reads and writes on its current cycle, and the request's own."""

    __slots__ = (
        "body",
        "disconnected",
        "keep_alive",
        "path",
        "response_complete",
        "route",
        "scope",
        "start",
    )

    message_event = _EVENT

    def __init__(self, route: DirectRoute, path: str, scope: Any, keep_alive: bool) -> None:
        self.route = route
        self.path = path
        self.scope = scope
        self.keep_alive = keep_alive
        self.body = bytearray()
        self.start = time.perf_counter()
        self.disconnected = False
        self.response_complete = False


class DirectProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that answers a direct route's request itself. Made for one
    app by :func:`install`, which sets :attr:`service`."""

    service: ServiceApp

    _direct: _DirectCycle | None = None
    """The direct request whose body is being read."""

    def on_headers_complete(self) -> None:
        if not self._take_direct():
            super().on_headers_complete()

    def _take_direct(self) -> bool:
        """Start reading a direct request, if this is one (see the module's docstring)."""
        cycle = self.cycle
        url = self.url
        if (
            (cycle is not None and not cycle.response_complete)
            or self.pipeline
            or self.limit_concurrency is not None
            or self.expect_100_continue
            or b"?" in url
            or b"%" in url
            or self.parser.get_method() != b"POST"
            or self.parser.get_http_version() != "1.1"
            or self.parser.should_upgrade()
        ):
            return False
        try:
            path = url.decode("ascii")
        except UnicodeDecodeError:
            return False
        route = self.service.direct_route(path, self.headers, self.root_path)
        if route is None:
            return False
        scope = self.scope  # as uvicorn fills it, for an error handler's Request
        scope["method"] = "POST"
        scope["path"] = path
        scope["raw_path"] = url
        scope["query_string"] = b""
        direct = _DirectCycle(route, path, scope, self.parser.should_keep_alive())
        self.cycle = direct  # type: ignore[assignment]
        self._direct = direct
        return True

    def on_body(self, body: bytes) -> None:
        if self._direct is None:
            super().on_body(body)
        else:
            self._direct.body.extend(body)

    def on_message_complete(self) -> None:
        cycle = self._direct
        if cycle is None:
            super().on_message_complete()
            return
        self._direct = None
        body = bytes(cycle.body)
        value = self.service.direct_value(cycle.route, body)
        if value is None:  # the model refuses it: uvicorn's cycle and FastAPI take it on
            self._hand_on(body)
            return
        task = self.loop.create_task(self._respond(cycle, value))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def _hand_on(self, body: bytes) -> None:
        """Start uvicorn's own cycle for the current request, whose body is read."""
        self.cycle = None  # type: ignore[assignment]
        super().on_headers_complete()
        cycle = self.cycle
        assert cycle is not None
        cycle.body += body
        cycle.more_body = False
        cycle.message_event.set()

    async def _respond(self, cycle: _DirectCycle, value: Any) -> None:
        service = self.service
        scope = cycle.scope
        status = 500
        try:
            try:
                body = await service.direct_answer(cycle.route, value)
            except Exception as exc:
                response = await service.direct_error(exc, scope, self._receive)
                status = response.status_code
                messages: list[Message] = []

                async def collect(message: Message) -> None:
                    messages.append(message)

                await response(scope, self._receive, collect)
                head, *rest = messages
                body = b"".join(m.get("body", b"") for m in rest)
                self._write(cycle, status, head.get("headers", []), body)
                return
            status = 200
            self._write(cycle, 200, None, body)
        except Exception as exc:
            log.error("Exception in ASGI application\n", exc_info=exc)
            cycle.keep_alive = False
            self._write(
                cycle,
                500,
                [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21")],
                b"Internal Server Error",
            )
        finally:
            service.direct_timer(cycle.path, status).observe(time.perf_counter() - cycle.start)

    async def _receive(self) -> Message:
        """An error handler's ``receive``: the body was read, so the client can only leave."""
        return {"type": "http.disconnect"}

    def _write(
        self,
        cycle: _DirectCycle,
        status: int,
        headers: list[tuple[bytes, bytes]] | None,
        body: bytes,
    ) -> None:
        """Send a response in one write (``headers`` None: a JSON body's), then finish the
        request as uvicorn's cycle does."""
        if cycle.disconnected or self.transport.is_closing():
            cycle.response_complete = True
            return
        parts = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            parts += [name, b": ", value, b"\r\n"]
        close = False
        if headers is None:
            parts += [b"content-length: ", str(len(body)).encode(), _JSON_HEADER]
        else:
            for name, value in headers:
                lower = name.lower()
                if lower == b"connection" and b"close" in value.lower():
                    cycle.keep_alive = False
                    close = True
                parts += [lower, b": ", value, b"\r\n"]
        if not cycle.keep_alive and not close:
            parts.append(b"connection: close\r\n")
        parts += [b"\r\n", body]
        if self.access_log:
            self.access_logger.info(  # the arguments of uvicorn's own line (its formatter's)
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(cycle.scope),
                "POST",
                cycle.path,
                "1.1",
                status,
            )
        self.transport.write(b"".join(parts))
        cycle.response_complete = True
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()


def install(config: Config) -> bool:
    """Answer the direct routes of ``config``'s app (loaded) at the protocol level, if it is a
    :class:`ServiceApp` served with httptools; whether it did."""
    if not config.loaded or config.http_protocol_class is not HttpToolsProtocol:
        return False
    app: Any = config.loaded_app
    while not isinstance(app, ServiceApp):
        app = getattr(app, "app", None)
        if app is None:
            return False
    config.http_protocol_class = type(
        "DirectHttpToolsProtocol", (DirectProtocol,), {"service": app}
    )
    return True
