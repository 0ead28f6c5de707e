"""Fixtures for the HTTP API tests: a real uvicorn server per test on its own database.

``database_url`` is SQLite unless a module parametrizes it indirectly (the contract and
decision API tests also run on PostgreSQL).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from oo_ml.api.app import create_app
from oo_ml.settings import Settings
from oo_ml.store.base import Store
from oo_ml.store.migrate import upgrade

from .support import LiveServer, live_server, make_settings

BOTH_DATABASES = pytest.mark.parametrize(
    "database_url",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
    indirect=True,
)


@pytest.fixture(scope="session", autouse=True)
def _no_service_environment() -> Iterator[None]:
    """Settings come from the test alone, never from the shell that runs it."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("OO_ML_") and name != "OO_ML_TEST_POSTGRES_URL":
                patch.delenv(name)
        yield


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the newest schema, copied for each test: migrating costs ~0.2 s."""
    path = tmp_path_factory.mktemp("template") / "oo-ml.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def database_url(request: pytest.FixtureRequest, migrated_sqlite_file: Path) -> str:
    """A fresh database: SQLite unless parametrized indirectly with ``postgresql``."""
    kind = getattr(request, "param", "sqlite")
    fixture = {"sqlite": "sqlite_url", "postgresql": "postgres_url"}[kind]
    url: str = request.getfixturevalue(fixture)
    if kind == "sqlite":
        shutil.copyfile(migrated_sqlite_file, make_url(url).database)
    return url


ServerFactory = Callable[..., LiveServer]


@pytest.fixture
def start_server(database_url: str) -> Iterator[ServerFactory]:
    """Start servers on ``database_url`` (or ``settings``); all are stopped after the test."""
    running: list[LiveServer] = []

    def start(
        settings: Settings | None = None, *, store: Store | None = None, **overrides: Any
    ) -> LiveServer:
        chosen = settings if settings is not None else make_settings(database_url, **overrides)
        server = LiveServer(create_app(chosen, store=store))
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
    return server.client


@pytest.fixture(scope="module")
def module_server(
    tmp_path_factory: pytest.TempPathFactory, migrated_sqlite_file: Path
) -> Iterator[LiveServer]:
    """One server for a whole module, on SQLite: for tests that each use their own user ids."""
    path = tmp_path_factory.mktemp("module") / "oo-ml.db"
    shutil.copyfile(migrated_sqlite_file, path)
    with live_server(make_settings(f"sqlite:///{path}")) as running:
        yield running
