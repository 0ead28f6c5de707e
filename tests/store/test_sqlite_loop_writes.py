"""Writes submitted from an event loop (``SqlStore.submit_async``) on SQLite.

They run on the loop's own thread, one batch per turn of the loop; a batch that cannot start
at once goes to the writer thread, which waits for the database. Either way a write is
acknowledged only once it is committed and, at ``synchronous=FULL``, synced. The WAL is
checkpointed by a thread of its own and reused from its start under steady writes.
"""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from oo_ml.errors import StoreError
from oo_ml.store.base import Txn
from oo_ml.store.migrate import upgrade
from oo_ml.store.sql import SqlStore, _WalSyncer


def _database(url: str) -> str:
    path = make_url(url).database
    assert path is not None
    return path


def _setter(key: str, value: str, seen: list[tuple[int, int]] | None = None) -> Any:
    def job(txn: Txn) -> str:
        if seen is not None:
            seen.append((id(txn), threading.get_ident()))
        txn.set_setting(key, value)
        return value

    return job


@pytest.fixture
def store(sqlite_url: str) -> Any:
    upgrade(sqlite_url)
    made = SqlStore(sqlite_url)
    yield made
    made.close()


def test_jobs_of_one_loop_turn_commit_together_on_the_loop_thread(store: SqlStore) -> None:
    seen: list[tuple[int, int]] = []

    async def submit() -> tuple[list[str], int]:
        futures = [store.submit_async(_setter(f"k{i}", f"v{i}", seen)) for i in range(5)]
        return list(await asyncio.gather(*futures)), threading.get_ident()

    values, loop_thread = asyncio.run(submit())
    assert values == [f"v{i}" for i in range(5)]
    assert len({txn for txn, _ in seen}) == 1  # one transaction
    assert {thread for _, thread in seen} == {loop_thread}
    assert store.read(lambda txn: txn.get_setting("k4")) == "v4"


def test_a_loop_write_waits_for_another_connection_without_blocking_the_loop(
    store: SqlStore, sqlite_url: str
) -> None:
    other = sqlite3.connect(_database(sqlite_url), isolation_level=None)
    seen: list[tuple[int, int]] = []

    async def submit() -> tuple[str, int]:
        other.execute("BEGIN IMMEDIATE")  # holds SQLite's write lock
        try:
            future = store.submit_async(_setter("probe", "after-lock", seen))
            for _ in range(20):  # the loop keeps running while the write waits
                await asyncio.sleep(0.005)
            assert not future.done()
        finally:
            other.execute("COMMIT")
        return await future, threading.get_ident()

    try:
        value, loop_thread = asyncio.run(submit())
    finally:
        other.close()
    assert value == "after-lock"
    assert seen[-1][1] != loop_thread  # the writer thread ran it once the lock was free
    assert store.read(lambda txn: txn.get_setting("probe")) == "after-lock"


@pytest.mark.parametrize("quick", [True, False], ids=["synced-in-place", "synced-by-thread"])
def test_a_loop_write_is_acknowledged_only_once_synced(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, quick: bool
) -> None:
    monkeypatch.setattr(_WalSyncer, "quick", lambda self: quick)
    real = os.fdatasync
    failing = [True]

    def fdatasync(fd: int) -> None:
        if failing:
            raise OSError(errno.EIO, "injected I/O error")
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)

    async def submit(value: str) -> str:
        return await store.submit_async(_setter("probe", value))

    with pytest.raises(StoreError, match="sync"):
        asyncio.run(submit("unsynced"))
    failing.clear()
    assert asyncio.run(submit("synced")) == "synced"


def test_the_wal_is_reused_under_steady_writes(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    store = SqlStore(sqlite_url, sqlite_synchronous="NORMAL")
    wal = Path(_database(sqlite_url) + "-wal")
    value = "x" * 3000
    try:
        for i in range(3000):  # ~50 MB of WAL (four pages a commit) if it were never reused
            store.write(_setter(f"key-{i}", value))
        assert wal.stat().st_size < 12 << 20
    finally:
        store.close()


def test_a_cancelled_waiter_does_not_fail_the_others_of_its_batch(store: SqlStore) -> None:
    gate = threading.Event()

    def blocker(txn: Txn) -> str:
        gate.wait(10)
        txn.set_setting("first", "1")
        return "1"

    first = store.submit(blocker)  # holds the writer thread while the others queue up
    second = store.submit(_setter("second", "2"))
    third = store.submit(_setter("third", "3"))
    assert second.cancel()  # its caller stopped waiting: nobody to deliver to
    gate.set()
    assert first.result(timeout=10) == "1"
    assert third.result(timeout=10) == "3"
    # The cancelled job ran anyway, like an asyncio waiter that went away.
    assert store.read(lambda txn: txn.get_setting("second")) == "2"
