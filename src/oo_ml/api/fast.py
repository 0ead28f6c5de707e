"""The service's ASGI app: FastAPI, with a direct path for the hot POST endpoints.

Under load (wrk, 8 keep-alive connections, one worker) FastAPI's middleware stack, router,
send wrappers and per-request dependency resolution around ``POST /v1/rank`` cost more of the
event loop's CPU than parsing, deciding and logging the decision together, and the event loop
is what limits throughput. :class:`ServiceApp` answers the common request of each direct
route itself: ``Content-Type: application/json``, a ``Content-Length`` within the body limit,
a passing API token and a body that the route's model accepts (read by the route's msgspec
reader in :mod:`oo_ml.api.readers` or :mod:`oo_ml.api.rank_request`, which accepts no body the
model refuses and declines any it doubts, else by ``model_validate_json``, the same strict
model FastAPI uses). It then calls the same function as the FastAPI endpoint, records the same
latency metric, and sends the same JSON: for the ``/v1`` routes by orjson (a float may be
spelled differently, never valued differently), for the existing contract's ``/score`` and
``/reward`` routes byte for byte as the route's ``JSONResponse`` (:func:`exact_json`).

Anything else goes to FastAPI unchanged, with the body handed on if it was already read:
another content type, a missing or oversized length, a failed token check, a body the model
refuses, dependency overrides (tests), a ``root_path``. So every refusal (401, 413, 422) is
FastAPI's own by construction, and a refused request reaches the engine no more than it did.
Errors raised by the engine are answered by the app's exception handlers, as FastAPI's
``ExceptionMiddleware`` would answer them. The FastAPI routes stay, unchanged, as the
OpenAPI schema and the path for everything that is not the common case.
"""

from __future__ import annotations

import json
import time
import typing
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NamedTuple

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute
from prometheus_client.metrics import Histogram
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from starlette.types import Message, Receive, Scope, Send

from oo_ml.api.deps import api_token_ok, require_api
from oo_ml.api.metrics import Metrics
from oo_ml.engine import Engine

__all__ = ["DirectRoute", "ServiceApp", "exact_json", "quick_json"]

_JSON = b"application/json"


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` with ``body`` (already read) as its first message."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def _read(body: bytes, model: type[BaseModel], parse: Callable[[bytes], Any] | None) -> Any:
    """What the route's function takes for ``body``: the quick reader's value, else the
    model's instance; ``None`` when the model refuses the body."""
    value = None if parse is None else parse(body)
    if value is None:
        try:
            value = model.model_validate_json(body)
        except PydanticValidationError:
            return None
    return value


_exact_encoder = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
).encode


def exact_json(content: Any) -> bytes:
    """``content`` exactly as starlette's ``JSONResponse`` renders it (``json.dumps`` with
    these arguments makes this very encoder for each call)."""
    return _exact_encoder(content).encode("utf-8")


def quick_json(content: Any) -> bytes:
    """Compact UTF-8 JSON, as starlette's ``JSONResponse`` renders it but ~25 µs sooner for a
    ranking of ten; a float may be spelled differently (``1e-7`` for ``1e-07``), never valued
    differently. orjson writes ``null`` for ``None`` but also for a NaN or an infinity, which
    the route refuses; so any output containing ``null`` is made again by the standard encoder
    (rare: these answers hold no ``None``). Searched with ``find``: ``b"null" in encoded``
    first tries the needle as an integer, raising and clearing a ``TypeError`` every time."""
    try:
        encoded = orjson.dumps(content)
    except orjson.JSONEncodeError:
        pass
    else:
        if encoded.find(b"null") < 0:
            return encoded
    return exact_json(content)


class DirectRoute(NamedTuple):
    """How the direct path answers one route."""

    model: type[BaseModel]
    """The route's body model."""
    answer: Callable[[Engine, Metrics, Any], Awaitable[dict[str, Any]]]
    """The function that answers a valid body: (engine, metrics, body) → the JSON content
    that the route's endpoint sends in its ``JSONResponse``."""
    parse: Callable[[bytes], Any] | None = None
    """A quicker reader of the common body: it returns what ``answer`` also takes in place of
    the model's instance, or ``None`` to leave the body to the model."""
    encode: Callable[[Any], bytes] = quick_json
    """How the content becomes the body: :func:`exact_json` where the answer must be the
    route's byte for byte."""


class ServiceApp(FastAPI):
    """FastAPI whose :meth:`direct` routes' common requests skip the framework."""

    _direct: dict[str, DirectRoute]
    _timers: dict[tuple[str, int], Any]

    def direct(self, router: APIRouter, routes: dict[str, DirectRoute]) -> None:
        """Answer ``POST`` to these paths directly (as well as those of earlier calls). Each
        must also be a route of ``router`` (included in this app) with the same body model, the
        API token check as its only dependency, no path, query, header or cookie parameter,
        and an endpoint declared to return a ``Response`` (so that no response model reshapes
        what it sends)."""
        for path, route in routes.items():
            served = [
                r
                for r in router.routes
                if isinstance(r, APIRoute) and r.path == path and "POST" in (r.methods or ())
            ]
            dependant = served[0].dependant if len(served) == 1 else None
            returns = typing.get_type_hints(served[0].endpoint).get("return") if served else None
            if (
                dependant is None
                or [p.field_info.annotation for p in dependant.body_params] != [route.model]
                or [d.call for d in dependant.dependencies] != [require_api]
                or dependant.path_params
                or dependant.query_params
                or dependant.header_params
                or dependant.cookie_params
                or not (isinstance(returns, type) and issubclass(returns, Response))
            ):
                raise ValueError(
                    f"{path}: no POST route with the body model {route.model.__name__}, the API "
                    "token check as its only dependency, no other parameter, and a Response "
                    "returned"
                )
        self._direct = {**getattr(self, "_direct", {}), **routes}
        self._timers = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = self.direct_route(scope["path"], scope["headers"], scope.get("root_path"))
            if route is not None:
                await self._answer(scope, receive, send, route)
                return
        await super().__call__(scope, receive, send)

    def direct_route(
        self, path: str, headers: Iterable[tuple[bytes, bytes]], root_path: str | None
    ) -> DirectRoute | None:
        """The direct route that answers a ``POST`` to ``path`` with these (lower-case)
        headers once its body is read; ``None`` leaves the request to FastAPI: not a direct
        route, another content type, a missing or oversized length, a transfer encoding, a
        failed token check, dependency overrides (tests), a root path, no engine yet."""
        route: DirectRoute | None = getattr(self, "_direct", {}).get(path)
        if route is None or self.dependency_overrides or self.root_path or root_path:
            return None
        content_type = length = authorization = None
        for name, value in headers:
            if name == b"content-type":
                content_type = value if content_type is None else content_type
            elif name == b"content-length":
                length = value if length is None else length
            elif name == b"authorization":
                authorization = value if authorization is None else authorization
            elif name == b"transfer-encoding":  # with a length too: let the server sort it out
                return None
        # The app state's dict, read directly: an attribute of starlette's ``State`` is found
        # by its ``__getattr__`` only after the normal lookup has raised and cleared an
        # ``AttributeError`` (~1 µs each, three a request).
        state: dict[str, Any] = self.state._state
        limit = self.max_body_size
        if (
            state.get("engine") is None
            or content_type is None
            or (  # the common spelling, else its parameters and case stripped
                content_type != _JSON and content_type.partition(b";")[0].strip().lower() != _JSON
            )
            or length is None
            or not length.isdigit()
            or not 0 < int(length) <= (limit if limit is not None else int(length))
            or not api_token_ok(state["settings"], (authorization or b"").decode("latin-1"))
        ):
            return None
        return route

    def direct_value(self, route: DirectRoute, body: bytes) -> Any:
        """What the route's function takes for ``body``; ``None`` when the model refuses it
        (then FastAPI answers the request, with the body handed on)."""
        return _read(body, route.model, route.parse)

    async def direct_answer(self, route: DirectRoute, value: Any) -> bytes:
        """The route's ``200`` body for a valid value; raises what the engine raises."""
        state: dict[str, Any] = self.state._state
        content = await route.answer(state["engine"], state["metrics"], value)
        return route.encode(content)

    async def direct_error(self, exc: Exception, scope: Scope, receive: Receive) -> Response:
        """The app's answer to an error of :meth:`direct_answer`, as its exception handlers
        give it (``scope`` is the request's); re-raises an error they do not handle."""
        handler = self._handler(exc)
        if handler is None:
            raise exc
        scope["app"] = self
        response: Response = await handler(Request(scope, receive), exc)
        return response

    def direct_timer(self, path: str, status: int) -> Any:
        """The latency histogram's child for a direct route's answers of this status class."""
        key = (path, status // 100)
        timer = self._timers.get(key)
        if timer is None:
            metrics: Metrics = self.state._state["metrics"]
            latency: Histogram = metrics.latency
            timer = self._timers[key] = latency.labels("POST", path, f"{status // 100}xx")
        return timer

    async def _answer(self, scope: Scope, receive: Receive, send: Send, route: DirectRoute) -> None:
        start = time.perf_counter()
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending its body: nobody to answer
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        value = self.direct_value(route, body)
        if value is None:  # refused by the model: FastAPI answers, as it would have
            await super().__call__(scope, _replay(body, receive), send)
            return
        status = 500
        try:
            try:
                encoded = await self.direct_answer(route, value)
            except Exception as exc:
                response = await self.direct_error(exc, scope, receive)
                status = response.status_code
                await response(scope, receive, send)
                return
            status = 200
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-length", str(len(encoded)).encode()),
                        (b"content-type", _JSON),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": encoded})
        finally:
            self.direct_timer(scope["path"], status).observe(time.perf_counter() - start)

    def _handler(self, exc: Exception) -> Any:
        """The app's handler for ``exc``, looked up as Starlette's ExceptionMiddleware does
        (by class, most specific first); ``None`` for a bare ``Exception`` handler, which
        belongs to the server-error path."""
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            handler = self.exception_handlers.get(cls)
            if handler is not None:
                return handler
        return None
