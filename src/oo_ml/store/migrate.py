"""Schema migrations: ``upgrade`` brings a database to the newest revision, safely when
several processes start at once (a file lock next to a SQLite database, an advisory lock on
PostgreSQL), and ``schema_status`` tells whether a database is current."""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

__all__ = ["downgrade", "head_revision", "schema_status", "upgrade"]

_MIGRATIONS = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 0x6F6F6D6C  # "ooml": one key for every oo-ml process sharing a database


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config("sqlite://")).get_current_head()
    assert head is not None
    return head


@contextmanager
def _exclusive(url: str) -> Iterator[Connection]:
    """A connection held under a lock that only one migrating process can have."""
    parsed = make_url(url)
    engine = create_engine(url, poolclass=NullPool)
    try:
        if parsed.get_backend_name() == "sqlite":
            lock_path = Path(f"{parsed.database}.migrate-lock")
            with lock_path.open("a") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                with engine.connect() as conn:
                    yield conn
        else:
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
                try:
                    yield conn
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                    conn.commit()
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision``."""
    _migrate(url, command.upgrade, revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` back to ``revision`` (``base``: no tables)."""
    _migrate(url, command.downgrade, revision)


def _migrate(url: str, step: Callable[[Config, str], None], revision: str) -> None:
    config = _config(url)
    with _exclusive(url) as conn:
        config.attributes["connection"] = conn
        step(config, revision)
        conn.commit()


def schema_status(conn: Connection) -> tuple[str | None, str]:
    """(the database's revision, the code's head revision)."""
    current = MigrationContext.configure(conn).get_current_revision()
    return current, head_revision()
