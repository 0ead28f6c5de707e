"""Rendering console pages: the Jinja2 environment, its number filters and the page headers."""

from __future__ import annotations

import math
import time
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from oo_ml import __version__

__all__ = ["SECURITY_HEADERS", "base_path", "render", "templates"]

SECURITY_HEADERS = {
    # Everything the console loads comes from the service itself; nothing runs inline.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _num(value: Any, fmt: str = ".3f") -> str:
    """A number in ``fmt``, or an em dash for a missing or non-finite one."""
    if value is None or isinstance(value, bool):
        return "—"
    number = float(value)
    return format(number, fmt) if math.isfinite(number) else "—"


def _pct(value: Any, digits: int = 0) -> str:
    text = _num(None if value is None else float(value) * 100, f".{digits}f")
    return text if text == "—" else f"{text}%"


def _when(ms: Any) -> str:
    """UTC time of a millisecond timestamp, ``2026-11-26 20:43:00 UTC``."""
    if ms is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(ms) / 1000))


def _iso(ms: Any) -> str:
    return "" if ms is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ms) / 1000))


def _percent_done(done: int, total: int) -> int:
    return 100 if total <= 0 else min(100, math.floor(100 * done / total))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("oo_ml.admin", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=_num, pct=_pct, when=_when, iso=_iso)
    env.globals.update(percent_done=_percent_done, version=__version__)
    # Compile every template now, at import, rather than on a first request in a worker thread:
    # pages render faster from the start, and no request thread ever calls compile().
    for name in env.list_templates(extensions=["html"]):
        env.get_template(name)
    return env


templates = _environment()


def base_path(request: Request) -> str:
    """Where the console lives, honouring a proxy's path prefix (``root_path``)."""
    return str(request.scope.get("root_path", "")) + "/admin"


def render(
    request: Request,
    name: str,
    *,
    status: int = 200,
    csrf: str = "",
    signed_in: bool = True,
    section: str = "",
    **context: Any,
) -> HTMLResponse:
    """The template ``name`` as a page, with what every page needs in its context."""
    html = templates.get_template(name).render(
        base=base_path(request),
        csrf=csrf,
        signed_in=signed_in,
        section=section,
        **context,
    )
    return HTMLResponse(html, status_code=status)
