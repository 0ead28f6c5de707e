"""Migrating at start is safe when several processes start at once on a fresh database."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier

import pytest
import sqlalchemy
from sqlalchemy.pool import NullPool

from oo_ml.store.migrate import head_revision, schema_status, upgrade
from oo_ml.store.schema import metadata

PROCESSES = 4
JOIN_SECONDS = 120


def upgrade_when_all_are_ready(url: str, barrier: Barrier) -> None:
    barrier.wait(timeout=JOIN_SECONDS)
    upgrade(url)


@pytest.mark.slow
def test_four_processes_migrating_a_fresh_database_at_once_all_succeed(database_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    processes = [
        context.Process(target=upgrade_when_all_are_ready, args=(database_url, barrier))
        for _ in range(PROCESSES)
    ]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=JOIN_SECONDS)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    assert [p.exitcode for p in processes] == [0] * PROCESSES

    engine = sqlalchemy.create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            assert schema_status(conn) == (head_revision(), head_revision())
            versions = conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version"))
            assert versions.scalars().all() == [head_revision()]
            tables = set(sqlalchemy.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert tables == set(metadata.tables) | {"alembic_version"}
