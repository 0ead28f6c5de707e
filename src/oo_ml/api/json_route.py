"""A FastAPI route that validates a JSON body straight from its bytes, for the hot endpoints.

FastAPI decodes a body with ``json.loads``, then resolves the route's parameters through its
generic dependency machinery and validates the decoded dict. For ``/v1/rank`` that is about a
fifth of the request's time. :class:`JsonBodyRoute` serves the common request —
``Content-Type: application/json``, a ``Content-Length`` within the body limit, a body the
model accepts — by running the route's request-only dependencies (the token check), then
``model_validate_json`` on the bytes and the endpoint. Every other request, and every body the
model refuses, goes through FastAPI's own handler, so errors keep FastAPI's exact shape and a
body is never accepted that FastAPI would refuse. The OpenAPI schema is FastAPI's, unchanged.

Only routes whose endpoint takes exactly one body model and optionally the ``Request``, whose
dependencies take only the ``Request``, and whose endpoint is declared to return a
``Response`` use the fast path, and only while the app overrides no dependency; any other
route behaves exactly as a plain :class:`~fastapi.routing.APIRoute`.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY

__all__ = ["JsonBodyRoute"]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _request_only(dependant: Dependant) -> bool:
    """Whether ``dependant`` needs nothing but the request (no parameters, no sub-dependencies)."""
    return (
        not dependant.dependencies
        and not dependant.path_params
        and not dependant.query_params
        and not dependant.header_params
        and not dependant.cookie_params
        and not dependant.body_params
        and dependant.websocket_param_name is None
        and dependant.http_connection_param_name is None
        and dependant.response_param_name is None
        and dependant.background_tasks_param_name is None
        and dependant.security_scopes_param_name is None
        and dependant.use_cache
    )


def _json_content(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.partition(";")[0].strip().lower() == "application/json"


def _length_within_limit(request: Request) -> bool:
    """A declared body length that the body-size limit lets through, so reading cannot fail
    on the limit (FastAPI's own handler turns that failure into a 413)."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        return False
    length = int(declared)
    limit = request.scope.get(MAX_BODY_SIZE_SCOPE_KEY)
    return length > 0 and (limit is None or length <= limit)


class JsonBodyRoute(APIRoute):
    """An :class:`~fastapi.routing.APIRoute` with a direct path for well-formed JSON bodies."""

    def get_route_handler(self) -> Handler:
        standard = super().get_route_handler()
        dependant = self.dependant
        if len(dependant.body_params) != 1 or not inspect.iscoroutinefunction(self.endpoint):
            return standard
        field = dependant.body_params[0]
        model = field.field_info.annotation
        request_name = dependant.request_param_name
        expected = {field.name} | ({request_name} if request_name else set())
        checks = [
            (d.call, d.request_param_name)
            for d in dependant.dependencies
            if d.call is not None and inspect.iscoroutinefunction(d.call) and _request_only(d)
        ]
        returns = typing.get_type_hints(self.endpoint).get("return")
        if (
            not (isinstance(model, type) and issubclass(model, BaseModel))
            or set(inspect.signature(self.endpoint).parameters) != expected
            or len(checks) != len(dependant.dependencies)
            or not (isinstance(returns, type) and issubclass(returns, Response))
        ):
            return standard
        body_name = field.name
        endpoint: Callable[..., Awaitable[Any]] = self.endpoint

        async def handler(request: Request) -> Response:
            if (
                not (_json_content(request) and _length_within_limit(request))
                or request.app.dependency_overrides  # only FastAPI's handler applies them
            ):
                return await standard(request)
            try:
                body = await request.body()
            except HTTPException:
                raise
            except Exception as exc:  # as FastAPI's handler answers a body it cannot read
                raise HTTPException(400, "There was an error parsing the body") from exc
            try:
                value = model.model_validate_json(body)
            except PydanticValidationError:
                return await standard(request)  # FastAPI's error, or a body only it accepts
            # FastAPI resolves these before it validates the body; a failing check raises.
            for call, name in checks:
                await call(**({name: request} if name else {}))
            kwargs: dict[str, Any] = {body_name: value}
            if request_name is not None:
                kwargs[request_name] = request
            response = await endpoint(**kwargs)
            if not isinstance(response, Response):
                raise TypeError(f"{self.path}: a JsonBodyRoute endpoint must return a Response")
            return response

        return handler
