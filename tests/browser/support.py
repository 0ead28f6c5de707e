"""What the browser tests share: how Chromium is launched, viewport sizes, signing in."""

from __future__ import annotations

from typing import Any

from tests.api.support import ADMIN_TOKEN

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
USER = "alice@example.com"
WAIT_MS = 120_000
"""The longest any step waits for the page (a deadline, not an expectation)."""


def sign_in(page: Any, base_url: str, token: str = ADMIN_TOKEN) -> None:
    """Open the console and sign in through the login form."""
    page.goto(f"{base_url}/admin")
    page.get_by_label("Admin token").fill(token)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
