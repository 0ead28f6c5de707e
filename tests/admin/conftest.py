"""Fixtures for the console tests: a real server per test on its own SQLite database."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from oo_ml.api.app import create_app
from oo_ml.settings import Settings
from oo_ml.store.migrate import upgrade
from tests.api.support import LiveServer, make_settings

from .support import login

ServerFactory = Callable[..., LiveServer]


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the newest schema, copied for each test: migrating costs ~0.2 s."""
    path = tmp_path_factory.mktemp("console-template") / "oo-ml.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def database_url(tmp_path: Path, migrated_sqlite_file: Path) -> str:
    path = tmp_path / "oo-ml.db"
    shutil.copyfile(migrated_sqlite_file, path)
    return f"sqlite:///{path}"


@pytest.fixture
def start_server(database_url: str) -> Iterator[ServerFactory]:
    """Start servers on ``database_url``; all are stopped after the test."""
    running: list[LiveServer] = []

    def start(settings: Settings | None = None, **overrides: Any) -> LiveServer:
        chosen = settings if settings is not None else make_settings(database_url, **overrides)
        server = LiveServer(create_app(chosen))
        running.append(server)
        return server.start()

    yield start
    for server in reversed(running):
        server.stop()


@pytest.fixture
def server(start_server: ServerFactory) -> LiveServer:
    return start_server()


@pytest.fixture
def client(server: LiveServer) -> httpx.Client:
    """A client that is not signed in (httpx does not follow redirects by default)."""
    return server.client


@pytest.fixture
def csrf(client: httpx.Client) -> str:
    """Signs ``client`` in; the session's CSRF token."""
    return login(client)
