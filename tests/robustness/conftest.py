"""Fixtures: a database on SQLite or PostgreSQL, and servers that are always killed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.robustness.servers import Server, start_server

StartServer = Callable[..., Server]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh database: a SQLite file, or an empty PostgreSQL schema."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[StartServer]:
    """``serve(url, workers=N, port=P)`` starts ``oo-ml serve``; all are killed at teardown.

    Request it after the database fixture so that servers go before their database does.
    """
    started: list[Server] = []

    def start(database_url: str, workers: int = 1, port: int = 0) -> Server:
        server = start_server(database_url, workers, tmp_path / f"server-{len(started)}", port)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.kill()
