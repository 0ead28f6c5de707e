"""Two processes' write batches that lock the same users in opposite orders do not deadlock.

The writer runs a batch of jobs in one transaction, and on PostgreSQL a job that updates a
model first takes that (user, policy)'s advisory lock. Batch A locking u1 then u2 while batch B
locks u2 then u1 used to deadlock until PostgreSQL's ``deadlock_timeout`` (1 s) broke it: a
stall for every request in both batches. Now a batch that already holds a lock only tries the
next one; if it is taken, the batch is rolled back and its jobs run one transaction each.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from oo_ml.policies import get_policy
from oo_ml.store.base import StateRow
from oo_ml.store.migrate import upgrade
from oo_ml.store.sql import SqlStore, SqlTxn

pytestmark = pytest.mark.postgres

POLICY = "egreedy-v1"
WAIT_S = 20.0  # a bound for a broken choreography, never reached when the test passes


@pytest.fixture
def two_stores(postgres_url: str) -> Iterator[tuple[SqlStore, SqlStore]]:
    """Two stores on one database: two processes' writers, each with its own connection."""
    upgrade(postgres_url)
    first, second = SqlStore(postgres_url), SqlStore(postgres_url)
    yield first, second
    first.close()
    second.close()


def _submit_together(store: SqlStore, jobs: list[Callable[[SqlTxn], Any]]) -> list[Future[Any]]:
    """Submit ``jobs`` so that the writer takes them as one batch: it is first kept busy by a
    job that waits until they are all queued."""
    started, release = threading.Event(), threading.Event()

    def hold(txn: SqlTxn) -> None:
        started.set()
        assert release.wait(WAIT_S)

    store.submit(hold)
    assert started.wait(WAIT_S)
    futures = [store.submit(job) for job in jobs]
    release.set()
    return futures


class _Choreography:
    """Jobs that lock one user's model, after (optionally) waiting for another job to hold
    its lock; every database error that passes through them is recorded."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.holding = {name: threading.Event() for name in users}
        self.errors: list[BaseException] = []
        self.runs: dict[str, int] = dict.fromkeys(users, 0)

    def job(self, name: str, after: str | None = None) -> Callable[[SqlTxn], int]:
        def run(txn: SqlTxn) -> int:
            self.runs[name] += 1
            if after is not None:
                assert self.holding[after].wait(WAIT_S)
            user = self.users[name]
            try:
                row = txn.load_state(user, POLICY, for_update=True)
            except BaseException as exc:
                self.errors.append(exc)
                raise
            self.holding[name].set()
            if row is None:
                row = StateRow(get_policy(POLICY).new_state())
            row.reward_count += 1
            txn.save_state(user, POLICY, row)
            return row.reward_count

        return run


def _deadlocks(errors: list[BaseException]) -> list[BaseException]:
    return [
        e
        for e in errors
        if isinstance(e, DBAPIError) and getattr(e.orig, "sqlstate", None) == "40P01"
    ]


def test_opposite_lock_orders_in_two_batches_do_not_deadlock(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    first, second = two_stores
    plays = _Choreography({"a1": "lock-u1", "a2": "lock-u2", "b1": "lock-u2", "b2": "lock-u1"})
    # A: u1, then u2 once B holds it. B: u2, then u1 once A holds it.
    batch_a = _submit_together(first, [plays.job("a1"), plays.job("a2", after="b1")])
    batch_b = _submit_together(second, [plays.job("b1"), plays.job("b2", after="a1")])
    results = [future.result(timeout=WAIT_S) for future in batch_a + batch_b]

    assert _deadlocks(plays.errors) == []
    # The orders really crossed: some batch found its second lock taken and backed off.
    assert plays.errors, "no batch met the other's lock: the test did not test anything"
    # Every job's update counted exactly once, whatever ran twice.
    assert sorted(results) == [1, 1, 2, 2]

    def counts(txn: SqlTxn) -> list[int]:
        rows = [txn.load_state(user, POLICY) for user in ("lock-u1", "lock-u2")]
        return [row.reward_count for row in rows if row is not None]

    assert first.read(counts) == [2, 2]
