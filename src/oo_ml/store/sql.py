"""The SQL store: SQLite by default, PostgreSQL at scale, one schema (see :mod:`.schema`).

Writes go through one writer thread per process that owns one connection. It takes every job
waiting in its queue (up to ``batch_limit``), runs them in one transaction — each job inside
its own savepoint, so one job's failure undoes only that job — commits once, and only then
resolves the jobs' futures: an acknowledged write is a committed write, and concurrent
requests share the cost of the commit (group commit).

Serialising model updates per (user, policy):

- SQLite: every write transaction starts with ``BEGIN IMMEDIATE``, which takes the database's
  write lock up front; other processes wait for it (``busy_timeout``), so a read-modify-write
  never interleaves with another. WAL mode lets readers go on meanwhile.
- PostgreSQL: ``load_state(..., for_update=True)`` takes a transaction-scoped advisory lock on
  the (user, policy) pair, which works for a user who has no row yet (a ``SELECT … FOR UPDATE``
  cannot lock a row that does not exist). A deadlock between two processes' batches is
  detected by PostgreSQL; the losing batch is run again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.pool import StaticPool

from oo_ml.errors import ConflictError, StoreError
from oo_ml.store.base import DecisionRecord, FeedbackRecord, StateRow, UserRow
from oo_ml.store.codec import array_from_bytes, array_to_bytes, state_from_bytes, state_to_bytes
from oo_ml.store.schema import decisions, policy_state, service_settings, tip_feedback, users
from oo_ml.types import Candidate, Context

__all__ = ["SqlStore", "SqlTxn"]

T = TypeVar("T")
log = logging.getLogger(__name__)

_RETRY_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure


def _retryable(exc: DBAPIError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate in _RETRY_SQLSTATES or "database is locked" in str(exc.orig)


def _lock_key(user_id: str, policy: str) -> int:
    digest = hashlib.blake2b(f"{user_id}\x00{policy}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _candidates_json(record: DecisionRecord) -> str:
    rows = [
        [c.id, c.is_overdue, c.task_age_days, c.priority, c.source, source_id]
        for c, source_id in zip(record.candidates, record.source_ids, strict=True)
    ]
    return json.dumps(rows, separators=(",", ":"))


def _decision_from_row(row: Any) -> DecisionRecord:
    parsed = json.loads(row.candidates)
    candidates = tuple(Candidate(c[0], bool(c[1]), c[2], c[3], c[4]) for c in parsed)
    k, d = row.n_candidates, row.dim
    return DecisionRecord(
        event_id=row.event_id,
        user_id=row.user_id,
        policy=row.policy,
        created_ms=row.created_ms,
        context=Context(row.hour_of_day, row.day_of_week),
        candidates=candidates,
        source_ids=tuple(c[5] for c in parsed),
        features=array_from_bytes(row.features, (k, d)),
        scores=array_from_bytes(row.scores, (k,)),
        probabilities=None
        if row.probabilities is None
        else array_from_bytes(row.probabilities, (k,)),
        chosen=row.chosen,
        seed=row.seed,
        model_updates=row.model_updates,
        origin=row.origin,
        content=None if row.content is None else tuple(json.loads(row.content)),
    )


def _feedback_from_row(row: Any) -> FeedbackRecord:
    return FeedbackRecord(
        event_id=row.event_id,
        user_id=row.user_id,
        policy=row.policy,
        created_ms=row.created_ms,
        action=row.action,
        dwell_ms=row.dwell_ms,
        reward_milli=row.reward_milli,
        reward_rule=row.reward_rule,
        origin=row.origin,
        applied=bool(row.applied),
    )


def _state_from_row(row: Any) -> StateRow:
    return StateRow(
        state_from_bytes(row.state), row.reward_count, row.reward_sum_milli, row.updated_ms
    )


class SqlTxn:
    """The :class:`~oo_ml.store.base.Txn` operations on one SQLAlchemy connection."""

    def __init__(self, conn: Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect

    def _upsert(self, table: Any, values: dict[str, Any], keys: list[str]) -> None:
        module = postgresql if self._dialect == "postgresql" else sqlite
        stmt = module.insert(table).values(**values)
        updates = {k: stmt.excluded[k] for k in values if k not in keys}
        self._conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates))

    def load_state(self, user_id: str, policy: str, *, for_update: bool = False) -> StateRow | None:
        if for_update and self._dialect == "postgresql":
            self._conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(user_id, policy)}
            )
        row = self._conn.execute(
            select(
                policy_state.c.state,
                policy_state.c.reward_count,
                policy_state.c.reward_sum_milli,
                policy_state.c.updated_ms,
            ).where(policy_state.c.user_id == user_id, policy_state.c.policy == policy)
        ).first()
        return None if row is None else _state_from_row(row)

    def save_state(self, user_id: str, policy: str, row: StateRow) -> None:
        self._upsert(
            policy_state,
            {
                "user_id": user_id,
                "policy": policy,
                "state": state_to_bytes(row.state),
                "n_updates": row.state.n_updates,
                "reward_count": row.reward_count,
                "reward_sum_milli": row.reward_sum_milli,
                "updated_ms": row.updated_ms,
            },
            ["user_id", "policy"],
        )

    def insert_decision(self, record: DecisionRecord) -> None:
        k, d = record.features.shape
        values = {
            "event_id": record.event_id,
            "user_id": record.user_id,
            "policy": record.policy,
            "created_ms": record.created_ms,
            "hour_of_day": record.context.hour_of_day,
            "day_of_week": record.context.day_of_week,
            "n_candidates": k,
            "dim": d,
            "candidates": _candidates_json(record),
            "features": array_to_bytes(record.features),
            "scores": array_to_bytes(record.scores),
            "probabilities": None
            if record.probabilities is None
            else array_to_bytes(record.probabilities),
            "chosen": record.chosen,
            "chosen_id": record.chosen_id,
            "explored": record.explored,
            "seed": record.seed,
            "model_updates": record.model_updates,
            "origin": record.origin,
            "content": None if record.content is None else json.dumps(record.content),
        }
        self._conn.execute(insert(decisions), values)

    def get_decision(self, event_id: str) -> DecisionRecord | None:
        row = self._conn.execute(select(decisions).where(decisions.c.event_id == event_id)).first()
        return None if row is None else _decision_from_row(row)

    def latest_decision_for_tip(
        self, user_id: str, policy: str, tip_id: str
    ) -> DecisionRecord | None:
        row = self._conn.execute(
            select(decisions)
            .where(
                decisions.c.user_id == user_id,
                decisions.c.policy == policy,
                decisions.c.chosen_id == tip_id,
            )
            .order_by(decisions.c.created_ms.desc())
            .limit(1)
        ).first()
        return None if row is None else _decision_from_row(row)

    def get_feedback(self, event_id: str) -> FeedbackRecord | None:
        row = self._conn.execute(
            select(tip_feedback).where(tip_feedback.c.event_id == event_id)
        ).first()
        return None if row is None else _feedback_from_row(row)

    def insert_feedback(self, record: FeedbackRecord) -> None:
        self._conn.execute(
            insert(tip_feedback),
            {
                "event_id": record.event_id,
                "user_id": record.user_id,
                "policy": record.policy,
                "created_ms": record.created_ms,
                "action": record.action,
                "dwell_ms": record.dwell_ms,
                "reward_milli": record.reward_milli,
                "reward_rule": record.reward_rule,
                "origin": record.origin,
                "applied": record.applied,
            },
        )

    def get_user(self, user_id: str) -> UserRow | None:
        row = self._conn.execute(select(users).where(users.c.user_id == user_id)).first()
        return None if row is None else UserRow(row.user_id, row.reset_ms)

    def mark_reset(self, user_id: str, reset_ms: int) -> None:
        self._conn.execute(delete(policy_state).where(policy_state.c.user_id == user_id))
        self._upsert(users, {"user_id": user_id, "reset_ms": reset_ms}, ["user_id"])

    def delete_user(self, user_id: str) -> int:
        removed = 0
        for table in (tip_feedback, decisions, policy_state, users):
            result = self._conn.execute(delete(table).where(table.c.user_id == user_id))
            removed += result.rowcount if table is not users else 0
        return removed

    def get_setting(self, key: str) -> str | None:
        value = self._conn.execute(
            select(service_settings.c.value).where(service_settings.c.key == key)
        ).scalar()
        return None if value is None else str(value)

    def set_setting(self, key: str, value: str) -> None:
        self._upsert(service_settings, {"key": key, "value": value}, ["key"])

    def unanswered_decisions(
        self, since_ms: int, before_ms: int, limit: int
    ) -> Sequence[DecisionRecord]:
        rows = self._conn.execute(
            select(decisions)
            .outerjoin(tip_feedback, tip_feedback.c.event_id == decisions.c.event_id)
            .where(
                decisions.c.created_ms >= since_ms,
                decisions.c.created_ms < before_ms,
                tip_feedback.c.event_id.is_(None),
            )
            .order_by(decisions.c.created_ms, decisions.c.event_id)
            .limit(limit)
        ).all()
        return [_decision_from_row(r) for r in rows]

    def recent_decisions(
        self,
        user_id: str,
        limit: int,
        policies: Sequence[str] | None = None,
        since_ms: int | None = None,
    ) -> Sequence[DecisionRecord]:
        conditions = [decisions.c.user_id == user_id]
        if policies is not None:
            conditions.append(decisions.c.policy.in_(list(policies)))
        if since_ms is not None:
            conditions.append(decisions.c.created_ms > since_ms)
        rows = self._conn.execute(
            select(decisions)
            .where(and_(*conditions))
            .order_by(decisions.c.created_ms.desc(), decisions.c.event_id.desc())
            .limit(limit)
        ).all()
        return [_decision_from_row(r) for r in rows]

    def count_decisions(
        self, user_id: str, policy: str, since_ms: int | None = None
    ) -> tuple[int, int, int | None]:
        conditions = [
            decisions.c.user_id == user_id,
            decisions.c.policy == policy,
            decisions.c.origin == "rank",
        ]
        if since_ms is not None:
            conditions.append(decisions.c.created_ms > since_ms)
        explored = case((decisions.c.explored, 1), else_=0)
        row = self._conn.execute(
            select(func.count(), func.sum(explored), func.max(decisions.c.created_ms))
            .select_from(decisions)
            .where(*conditions)
        ).one()
        return int(row[0]), int(row[1] or 0), None if row[2] is None else int(row[2])

    def list_states(self, user_id: str) -> Sequence[tuple[str, StateRow]]:
        rows = self._conn.execute(
            select(policy_state)
            .where(policy_state.c.user_id == user_id)
            .order_by(policy_state.c.policy)
        ).all()
        return [(r.policy, _state_from_row(r)) for r in rows]


_STOP = object()


class _Writer:
    """The one thread per process that writes: batches jobs, commits once per batch."""

    def __init__(self, engine: Engine, dialect: str, batch_limit: int) -> None:
        self._engine = engine
        self._dialect = dialect
        self._batch_limit = batch_limit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._conn: Connection | None = None
        self._thread = threading.Thread(target=self._loop, name="oo-ml-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[SqlTxn], T]) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((job, future))
        return future

    def stop(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()
        if self._conn is not None:
            self._conn.close()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                break
            batch = [item]
            while len(batch) < self._batch_limit:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._run(batch)

    def _run(self, batch: list[tuple[Callable[[SqlTxn], Any], Future[Any]]]) -> None:
        for attempt in range(8):
            try:
                outcomes = self._attempt(batch)
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    self._conn = None
                if _retryable(exc) and attempt < 7:
                    time.sleep(0.005 * 2**attempt)
                    continue
                self._fail(batch, StoreError(f"database write failed: {exc.orig}"))
                return
            except Exception as exc:  # never leave a caller waiting on a dead batch
                self._fail(batch, StoreError(f"database write failed: {exc}"))
                return
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            return

    def _fail(self, batch: list[tuple[Any, Future[Any]]], error: StoreError) -> None:
        log.error("write batch of %d jobs failed: %s", len(batch), error)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        for _, future in batch:
            future.set_exception(error)

    def _attempt(
        self, batch: list[tuple[Callable[[SqlTxn], Any], Future[Any]]]
    ) -> list[tuple[bool, Any]]:
        """Run the batch in one transaction; a retryable database error propagates."""
        if self._conn is None or self._conn.closed:
            self._conn = self._engine.connect()
        conn = self._conn
        txn = SqlTxn(conn, self._dialect)
        outcomes: list[tuple[bool, Any]] = []
        with conn.begin() as transaction:
            for job, _ in batch:
                # A savepoint per job lets one job fail alone; a lone job needs none.
                savepoint = conn.begin_nested() if len(batch) > 1 else None
                try:
                    value = job(txn)
                except Exception as exc:
                    if isinstance(exc, DBAPIError) and _retryable(exc):
                        raise
                    if savepoint is None:
                        transaction.rollback()
                        return [(False, _job_error(exc))]
                    savepoint.rollback()
                    outcomes.append((False, _job_error(exc)))
                else:
                    if savepoint is not None:
                        savepoint.commit()
                    outcomes.append((True, value))
        return outcomes


def _job_error(exc: Exception) -> Exception:
    """What a job's caller sees: database errors translated into the oo_ml tree."""
    if isinstance(exc, IntegrityError):
        return ConflictError("a record with that id already exists")
    if isinstance(exc, DBAPIError):
        return StoreError(f"database error: {exc.orig}")
    return exc


class SqlStore:
    """A :class:`~oo_ml.store.base.Store` on SQLAlchemy: ``sqlite:///path`` or
    ``postgresql+psycopg://user@host/db``.

    ``sqlite_synchronous`` is SQLite's ``PRAGMA synchronous``: ``FULL`` (default) makes each
    commit survive power loss; ``NORMAL`` survives a crash of the process but not of the machine.
    """

    def __init__(
        self, url: str, *, batch_limit: int = 128, sqlite_synchronous: str = "FULL"
    ) -> None:
        parsed = make_url(url)
        self.url = url
        self.dialect = parsed.get_backend_name()
        if self.dialect not in {"sqlite", "postgresql"}:
            raise StoreError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")
        if sqlite_synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise StoreError(f"unknown SQLite synchronous mode {sqlite_synchronous!r}")
        if self.dialect == "sqlite":
            if parsed.database in (None, "", ":memory:"):
                raise StoreError("SQLite needs a file path: sqlite:///path/to/oo-ml.db")
            self._write_engine = self._sqlite_engine(url, "IMMEDIATE", sqlite_synchronous)
            self._read_engine = self._sqlite_engine(url, "DEFERRED", sqlite_synchronous)
        else:
            self._write_engine = create_engine(url, poolclass=StaticPool, pool_pre_ping=True)
            self._read_engine = create_engine(url, pool_size=8, pool_pre_ping=True)
        self._writer = _Writer(self._write_engine, self.dialect, batch_limit)

    @staticmethod
    def _sqlite_engine(url: str, begin: str, synchronous: str) -> Engine:
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            # The writer keeps its one connection; readers share a small pool.
            **({"poolclass": StaticPool} if begin == "IMMEDIATE" else {"pool_size": 8}),
        )

        @event.listens_for(engine, "connect")
        def _configure(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # transactions are begun explicitly below
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql(f"BEGIN {begin}")

        return engine

    @property
    def engine(self) -> Engine:
        """An engine for maintenance (migrations, readiness checks)."""
        return self._read_engine

    def submit(self, job: Callable[[SqlTxn], T]) -> Future[T]:
        return self._writer.submit(job)

    def write(self, job: Callable[[SqlTxn], T]) -> T:
        return self._writer.submit(job).result()

    def read(self, job: Callable[[SqlTxn], T]) -> T:
        with self._read_engine.connect() as conn, conn.begin():
            return job(SqlTxn(conn, self.dialect))

    def close(self) -> None:
        self._writer.stop()
        self._write_engine.dispose()
        self._read_engine.dispose()
