"""Console sign-in: a signed session cookie, its CSRF token, and the login form's own token.

A session is ``<payload>.<signature>``: the payload is base64url JSON holding the expiry and the
session's CSRF token; the signature is HMAC-SHA256 over the payload with a key derived from the
admin token. Nothing is stored on the server, so any worker process can check any session, and
changing ``OO_ML_ADMIN_TOKEN`` signs everyone out.

The cookie is ``HttpOnly`` (scripts cannot read it), ``SameSite=Strict`` (no other site's page
can make the browser send it) and scoped to the console's path. It is ``Secure`` when the request
came over HTTPS — directly, or through a proxy that uvicorn trusts to say so
(``--forwarded-allow-ips``), so behind TLS the cookie is never sent in clear. Over plain HTTP it
cannot be ``Secure``: browsers would not send it back to an ``http://`` address other than
localhost, and the console would be unusable on a LAN address; the login page warns when the
admin token is about to cross a network unencrypted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "SESSION_SECONDS",
    "Session",
    "clear_session",
    "decode_session",
    "encode_session",
    "is_https",
    "new_session",
    "read_session",
    "set_login_cookie",
    "set_session_cookie",
]

SESSION_COOKIE = "oo_ml_session"
LOGIN_COOKIE = "oo_ml_login"
SESSION_SECONDS = 8 * 3600
LOGIN_SECONDS = 3600
_KEY_PURPOSE = b"oo-ml console session v1"


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: when it expires (seconds since the epoch) and its CSRF token."""

    expires: int
    csrf: str


def _key(admin_token: str) -> bytes:
    return hmac.new(admin_token.encode(), _KEY_PURPOSE, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(admin_token: str, payload: str) -> str:
    return _b64(hmac.new(_key(admin_token), payload.encode("ascii"), hashlib.sha256).digest())


def new_session(now: float | None = None) -> Session:
    now = time.time() if now is None else now
    return Session(expires=int(now) + SESSION_SECONDS, csrf=secrets.token_urlsafe(32))


def encode_session(session: Session, admin_token: str) -> str:
    payload = _b64(json.dumps({"exp": session.expires, "csrf": session.csrf}).encode())
    return f"{payload}.{_sign(admin_token, payload)}"


def decode_session(value: str, admin_token: str, now: float | None = None) -> Session | None:
    """The session in a cookie value, or ``None`` if it is forged, malformed or expired."""
    payload, _, signature = value.partition(".")
    if not payload or not signature or not payload.isascii():
        return None
    expected = _sign(admin_token, payload)
    if not hmac.compare_digest(signature.encode("ascii", "replace"), expected.encode()):
        return None
    try:
        data = json.loads(_unb64(payload))
        session = Session(expires=int(data["exp"]), csrf=str(data["csrf"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    now = time.time() if now is None else now
    return session if session.expires > now and session.csrf else None


def read_session(request: Request, admin_token: str) -> Session | None:
    value = request.cookies.get(SESSION_COOKIE)
    return None if value is None else decode_session(value, admin_token)


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def _cookie_path(request: Request) -> str:
    return str(request.scope.get("root_path", "")) + "/admin"


def set_session_cookie(
    response: Response, request: Request, session: Session, admin_token: str
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        encode_session(session, admin_token),
        max_age=max(0, session.expires - int(time.time())),
        path=_cookie_path(request),
        secure=is_https(request),
        httponly=True,
        samesite="strict",
    )


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path=_cookie_path(request),
        secure=is_https(request),
        httponly=True,
        samesite="strict",
    )


def set_login_cookie(response: Response, request: Request, token: str) -> None:
    """The login form's CSRF token (double submit: cookie and hidden field must match)."""
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=LOGIN_SECONDS,
        path=_cookie_path(request),
        secure=is_https(request),
        httponly=True,
        samesite="strict",
    )
