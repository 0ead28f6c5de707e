"""The ``store`` fixture: every storage contract test runs on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from oo_ml.store.base import Store
from oo_ml.store.memory import MemoryStore
from oo_ml.store.migrate import upgrade
from oo_ml.store.sql import SqlStore


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        made: Store = MemoryStore()
    else:
        fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
        url = request.getfixturevalue(fixture)
        upgrade(url)
        made = SqlStore(url)
    yield made
    made.close()
