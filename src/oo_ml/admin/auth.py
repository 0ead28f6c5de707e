"""Who may use the console, and how every console route answers.

A request is let in with ``Authorization: Bearer <admin token>`` (scripts) or a valid session
cookie (browsers, after the login form). A browser without a session is sent to the login page
and brought back afterwards; a script with a wrong token gets 401.

:class:`ConsoleRoute` wraps each console route: it turns the console's own exceptions into
pages (the login redirect, refused forms, unknown ids) and adds the security headers.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from oo_ml.admin.csrf import FormError
from oo_ml.admin.render import SECURITY_HEADERS, base_path, render
from oo_ml.admin.sessions import Session, read_session
from oo_ml.errors import NotFoundError, ValidationError
from oo_ml.settings import Settings

__all__ = [
    "ConsoleDisabledError",
    "ConsoleRoute",
    "LoginRequiredError",
    "Viewer",
    "ViewerDep",
    "admin_token",
    "safe_next",
]

log = logging.getLogger("oo_ml.admin")


@dataclass(frozen=True, slots=True)
class Viewer:
    """Someone let in: a browser with a ``session``, or a script (``session`` is ``None``)."""

    session: Session | None

    @property
    def csrf(self) -> str:
        return "" if self.session is None else self.session.csrf

    @property
    def expected_csrf(self) -> str | None:
        """What a posted form must carry; ``None``: nothing (bearer requests)."""
        return None if self.session is None else self.session.csrf


class LoginRequiredError(Exception):
    """No valid session: browsers go to the login page, scripts get 401."""


class BadTokenError(Exception):
    """A bearer token that is not the admin token."""


class ConsoleDisabledError(Exception):
    """No admin token is configured, so nobody can sign in."""


def admin_token(request: Request) -> str:
    settings: Settings = request.app.state.settings
    if settings.admin_token is None:
        raise ConsoleDisabledError
    return settings.admin_token.get_secret_value()


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def viewer(request: Request) -> Viewer:
    """The dependency that guards every console page."""
    token = admin_token(request)
    given = _bearer(request)
    if given is not None:
        if given and hmac.compare_digest(given.encode(), token.encode()):
            return Viewer(session=None)
        raise BadTokenError
    session = read_session(request, token)
    if session is None:
        raise LoginRequiredError
    return Viewer(session=session)


ViewerDep = Annotated[Viewer, Depends(viewer)]


def safe_next(request: Request, target: str | None) -> str:
    """``target`` if it is a console path on this site, else the console's start page."""
    base = base_path(request)
    if (
        target
        and target.startswith(base + "/")
        and not target.startswith("//")
        and "\\" not in target
        and all(c.isprintable() and not c.isspace() for c in target)
    ):
        return target
    return base + "/simulations"


def _wants_json(request: Request) -> bool:
    return request.url.path.endswith(".json")


def _login_redirect(request: Request) -> Response:
    here = request.url.path
    if request.url.query:
        here += "?" + request.url.query
    target = here if request.method == "GET" else None
    location = base_path(request) + "/login"
    if target is not None:
        location += "?next=" + quote(safe_next(request, target), safe="/")
    return RedirectResponse(location, status_code=303)


def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": message}, status_code=status)
    settings: Settings = request.app.state.settings
    token = settings.admin_token
    session = None if token is None else read_session(request, token.get_secret_value())
    return render(
        request,
        "error.html",
        status=status,
        title=title,
        message=message,
        signed_in=session is not None,
        csrf="" if session is None else session.csrf,
    )


class ConsoleRoute(APIRoute):
    """A console route: the console's exceptions become pages; security headers on everything."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginRequiredError:
                if _wants_json(request):
                    response = JSONResponse({"detail": "sign in first"}, status_code=401)
                else:
                    response = _login_redirect(request)
            except BadTokenError:
                response = JSONResponse(
                    {"detail": "admin token required"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            except ConsoleDisabledError:
                response = _error_page(
                    request,
                    403,
                    "Console disabled",
                    "No admin token is configured. Set OO_ML_ADMIN_TOKEN and restart the service"
                    " (oo-ml serve generates one when it is unset).",
                )
            except FormError as exc:
                response = _error_page(request, exc.status, "Form refused", exc.message)
            except NotFoundError as exc:
                message = str(exc.args[0]) if exc.args else "not found"
                response = _error_page(request, 404, "Not found", message)
            except ValidationError as exc:
                response = _error_page(request, 422, "Invalid input", exc.message)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return route
