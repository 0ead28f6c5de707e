"""Console forms: reading a posted form, and the cross-site request forgery check on it.

Every form a signed-in browser posts carries the session's CSRF token in a hidden field
(``csrf_token``); a POST whose field does not match (constant-time) is refused. Scripts that
authenticate with ``Authorization: Bearer`` need no token: a browser never adds that header to a
request another site makes it send. The login form has no session yet, so it uses a double
submit: a random token in a ``SameSite=Strict`` cookie and the same token in the form.

Forms are parsed here (``application/x-www-form-urlencoded`` only, bounded in size) rather than
with Starlette's parser, which needs the python-multipart package for every form type.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs

from starlette.requests import Request

__all__ = ["FIELD", "MAX_FORM_BYTES", "Form", "FormError", "csrf_matches", "new_token", "read_form"]

FIELD = "csrf_token"
MAX_FORM_BYTES = 64 * 1024


class FormError(Exception):
    """A posted form that cannot be accepted; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Form:
    """A parsed form: every field's values in the order sent."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self._fields = fields

    def get(self, name: str, default: str = "") -> str:
        values = self._fields.get(name)
        return values[0] if values else default

    def getlist(self, name: str) -> list[str]:
        return list(self._fields.get(name, ()))


def new_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; a missing or empty value never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


async def read_form(request: Request, expected_token: str | None) -> Form:
    """The posted form, checked against ``expected_token`` unless that is ``None`` (bearer)."""
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            raise FormError(413, "the form is too large")
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if body and kind != "application/x-www-form-urlencoded":
        raise FormError(415, "the console accepts application/x-www-form-urlencoded forms only")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise FormError(400, "the form could not be read") from None
    form = Form(fields)
    if expected_token is not None and not csrf_matches(form.get(FIELD), expected_token):
        raise FormError(
            403,
            "This form expired or was sent from another site. Reload the page and try again.",
        )
    return form
