"""Fixtures for the console tests: a real server per test on its own SQLite database.

The server fixtures are the API tests' own (imported, so both suites start servers alike);
the console adds a signed-in session.
"""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import (
    ServerFactory,
    _no_service_environment,
    client,
    database_url,
    migrated_sqlite_file,
    server,
    start_server,
)

from .support import login

__all__ = [
    "ServerFactory",
    "_no_service_environment",
    "client",
    "csrf",
    "database_url",
    "migrated_sqlite_file",
    "server",
    "start_server",
]


@pytest.fixture
def csrf(client: httpx.Client) -> str:
    """Signs ``client`` in; the session's CSRF token."""
    return login(client)
