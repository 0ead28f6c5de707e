"""Request-scoped helpers: the engine, the settings, and the two token checks.

Tokens are compared in constant time (``hmac.compare_digest``). Admin endpoints need
``Authorization: Bearer <admin token>``; when no admin token is configured they are disabled
(``oo-ml serve`` always configures one). Decision endpoints need the API token only if one is set.
"""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import unquote

from fastapi import Depends, HTTPException, Path, Request

from oo_ml.api.metrics import Metrics
from oo_ml.engine import Engine
from oo_ml.settings import Settings

__all__ = [
    "AdminDep",
    "ApiDep",
    "EngineDep",
    "EventIdPath",
    "MetricsDep",
    "SettingsDep",
    "UserIdPath",
    "api_token_ok",
    "decode_segment",
    "path_tail",
    "require_admin",
    "require_api",
]


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def _bearer(request: Request) -> str | None:
    return _bearer_token(request.headers.get("authorization", ""))


def _bearer_token(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


# The two checks are ``async`` although they never wait: FastAPI runs a plain ``def`` dependency
# in its thread pool, which costs every request two thread hand-offs.


async def require_admin(request: Request) -> None:
    settings = get_settings(request)
    if settings.admin_token is None:
        raise HTTPException(403, "admin endpoints are disabled: set OO_ML_ADMIN_TOKEN")
    if not _matches(_bearer(request), settings.admin_token.get_secret_value()):
        raise _unauthorized("admin token required")


async def require_api(request: Request) -> None:
    if not api_token_ok(get_settings(request), request.headers.get("authorization", "")):
        raise _unauthorized("API token required")


def api_token_ok(settings: Settings, authorization: str) -> bool:
    """Whether an ``Authorization`` header value passes the API token check (the API token, or
    the admin token; anything when no API token is configured)."""
    if settings.api_token is None:
        return True
    given = _bearer_token(authorization)
    admin = settings.admin_token
    return _matches(given, settings.api_token.get_secret_value()) or (
        admin is not None and _matches(given, admin.get_secret_value())
    )


def path_tail(request: Request, prefix: str, suffix: str = "") -> str:
    """The percent-decoded path segment between ``prefix`` and ``suffix``.

    Read from the raw path, so that a user id containing ``/`` (sent as ``%2F``) stays one id
    and never reaches another route's id.
    """
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    middle = path[len(prefix) : len(path) - len(suffix)] if suffix else path[len(prefix) :]
    if "/" in middle:
        raise HTTPException(404, "not found")
    return decode_segment(middle)


def decode_segment(raw: str) -> str:
    """A percent-encoded path segment as text; 422 when its bytes are not UTF-8 (two invalid
    encodings must not decode to the same replacement character, i.e. the same id)."""
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise HTTPException(
            422, "the path's id is not valid UTF-8 after percent-decoding"
        ) from None


# Path parameters as documented in OpenAPI. Handlers read the ids from the raw path with
# path_tail/decode_segment (so that "%2F" stays inside one id); these only describe them.
UserIdPath = Annotated[str, Path(description="The user id, percent-encoded (1–256 characters).")]
EventIdPath = Annotated[str, Path(description="The decision's event id.")]
EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
AdminDep = Depends(require_admin)
ApiDep = Depends(require_api)
