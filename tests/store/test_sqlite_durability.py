"""SQLite ``synchronous=FULL``: a write is acknowledged only after the WAL is synced to disk.

The store leaves FULL's per-commit sync to its own syncer thread (see :mod:`oo_ml.store.sql`);
these tests make that sync fail (``os.fdatasync`` raising, as on a disk error) and check that
no write is acknowledged without it, and that NORMAL, which promises no such sync, does not
wait for it.
"""

from __future__ import annotations

import errno
import os

import pytest
from sqlalchemy import text

from oo_ml.errors import StoreError
from oo_ml.store.base import Txn
from oo_ml.store.migrate import upgrade
from oo_ml.store.sql import SqlStore


def _set(value: str):  # type: ignore[no-untyped-def]
    def job(txn: Txn) -> None:
        txn.set_setting("probe", value)

    return job


def _get(txn: Txn) -> str | None:
    return txn.get_setting("probe")


@pytest.fixture
def failing_sync(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ``fdatasync`` fails while the list is non-empty (append to arm it)."""
    armed: list[str] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        if armed:
            raise OSError(errno.EIO, "injected I/O error")
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    return armed


def test_full_acknowledges_only_synced_writes(sqlite_url: str, failing_sync: list[str]) -> None:
    upgrade(sqlite_url)
    store = SqlStore(sqlite_url, sqlite_synchronous="FULL")
    try:
        store.write(_set("before"))
        failing_sync.append("on")
        with pytest.raises(StoreError, match="sync"):
            store.write(_set("unsynced"))
        failing_sync.clear()
        store.write(_set("after"))
        assert store.read(_get) == "after"
    finally:
        store.close()


def test_full_writer_syncs_the_wal_itself(sqlite_url: str) -> None:
    """The writer's connection runs at NORMAL (1) and leaves the per-commit sync to the store;
    readers keep FULL (2)."""
    upgrade(sqlite_url)
    store = SqlStore(sqlite_url, sqlite_synchronous="FULL")
    try:
        writer = store.write(lambda txn: txn._conn.execute(text("PRAGMA synchronous")).scalar())  # type: ignore[attr-defined]
        reader = store.read(lambda txn: txn._conn.execute(text("PRAGMA synchronous")).scalar())  # type: ignore[attr-defined]
        assert (writer, reader) == (1, 2)
    finally:
        store.close()


def test_normal_does_not_wait_for_a_sync(sqlite_url: str, failing_sync: list[str]) -> None:
    upgrade(sqlite_url)
    store = SqlStore(sqlite_url, sqlite_synchronous="NORMAL")
    try:
        failing_sync.append("on")
        store.write(_set("unsynced"))
        assert store.read(_get) == "unsynced"
    finally:
        store.close()
