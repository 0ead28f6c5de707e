"""The SQL store: SQLite by default, PostgreSQL at scale, one schema (see :mod:`.schema`).

Writes go through one connection per process, in batches: every job waiting (up to
``batch_limit``) runs in one transaction — and if one of them fails, the batch runs again
with each job inside its own savepoint, so that one job's failure undoes only that job — with
one commit, and only then are the jobs' results delivered: an acknowledged write is a
committed write, and concurrent requests share the cost of the commit (group commit). A
writer thread runs the batches of :meth:`SqlStore.submit` and :meth:`SqlStore.write`; on
SQLite the batches that an event loop submits (:meth:`SqlStore.submit_async`) run on the
loop's own thread, one per turn of the loop, unless the writer thread or another process has
the database (see :class:`_Writer`).

SQLite with ``synchronous=FULL`` in WAL mode syncs the WAL file at every commit, while the
writer holds the database's write lock and waits. The store gets the same guarantee without
that wait: the writer's connection runs at ``NORMAL`` (which in WAL mode differs from ``FULL``
only by that per-commit sync) and the WAL is synced (``fdatasync``) after each commit, before
the batch's results are delivered: by the committing thread when syncs are quick, else by a
syncer thread while the writer already runs the next batch (:class:`_WalSyncer`). Every
acknowledged write is still on disk before it is acknowledged; one sync often covers several
batches. (Another connection may read a committed batch a few milliseconds before it is on
disk, as a reader may see data that a power loss would then take back.) The WAL is
checkpointed by a thread of its own (:class:`_Checkpointer`), not inside a commit.

Serialising model updates per (user, policy):

- SQLite: every write transaction starts with ``BEGIN IMMEDIATE``, which takes the database's
  write lock up front; other processes wait for it (``busy_timeout``), so a read-modify-write
  never interleaves with another. WAL mode lets readers go on meanwhile.
- PostgreSQL: ``load_state(..., for_update=True)`` takes a transaction-scoped advisory lock on
  the (user, policy) pair, which works for a user who has no row yet (a ``SELECT … FOR UPDATE``
  cannot lock a row that does not exist). A batch of jobs holding one such lock only *tries*
  the next, and when it is taken runs its jobs again one transaction each: two processes'
  batches locking the same models in opposite orders never wait for each other (they used to
  deadlock until PostgreSQL's check broke it a second later). Any deadlock left (one job's
  own locks) is detected by PostgreSQL and the losing transaction is run again.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections import deque, namedtuple
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import suppress
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    case,
    create_engine,
    delete,
    event,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.pool import StaticPool

from oo_ml.errors import ConflictError, StoreError
from oo_ml.store.base import (
    DecisionRecord,
    FeedbackRecord,
    RunRecord,
    ShadowRecord,
    SimEvent,
    StateRow,
    UserRow,
)
from oo_ml.store.codec import array_from_bytes, array_to_bytes, state_from_bytes, state_to_bytes
from oo_ml.store.schema import (
    decisions,
    policy_state,
    service_settings,
    shadow_decisions,
    sim_events,
    sim_runs,
    tip_feedback,
    users,
)
from oo_ml.types import Context, stored_candidate

__all__ = ["SqlStore", "SqlTxn"]

T = TypeVar("T")
log = logging.getLogger(__name__)

_RETRY_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure


def _retryable(exc: DBAPIError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate in _RETRY_SQLSTATES or "database is locked" in str(exc.orig)


class _LockBusyError(Exception):
    """A batch that already holds a model's lock found the next one taken: waiting for it could
    deadlock with the holder, so the batch backs off (see :meth:`SqlTxn.load_state`)."""


def _lock_key(user_id: str, policy: str) -> int:
    digest = hashlib.blake2b(f"{user_id}\x00{policy}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _candidates_json(record: DecisionRecord) -> str:
    rows = [
        [c.id, c.is_overdue, c.task_age_days, c.priority, c.source, source_id]
        for c, source_id in zip(record.candidates, record.source_ids, strict=True)
    ]
    try:
        # ~4× faster than json.dumps, which stays for what orjson refuses (a lone surrogate,
        # which the standard encoder escapes).
        return orjson.dumps(rows).decode()
    except orjson.JSONEncodeError:
        return json.dumps(rows, separators=(",", ":"))


def _loads(text: str) -> Any:
    """``json.loads``, sooner: feedback reads a decision's candidates on every request. What
    orjson refuses (an escaped lone surrogate that ``json.dumps`` wrote) goes to json."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _decision_from_row(row: Any) -> DecisionRecord:
    parsed = _loads(row.candidates)
    candidates = tuple([stored_candidate(c[0], bool(c[1]), c[2], c[3], c[4]) for c in parsed])
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
        content=None if row.content is None else tuple(_loads(row.content)),
        means=None if row.means is None else array_from_bytes(row.means, (k,)),
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


def _run_from_row(row: Any) -> RunRecord:
    return RunRecord(
        run_id=row.run_id,
        created_ms=row.created_ms,
        updated_ms=row.updated_ms,
        status=row.status,
        config=json.loads(row.config),
        total_steps=row.total_steps,
        done_steps=row.done_steps,
        summary=None if row.summary is None else json.loads(row.summary),
        error=row.error,
    )


def _state_from_row(row: Any) -> StateRow:
    return StateRow(
        state_from_bytes(row.state), row.reward_count, row.reward_sum_milli, row.updated_ms
    )


# The statements of the rank and feedback path, run on the DBAPI cursor (``SqlTxn._execute``).
# Each is (SQLite text, PostgreSQL text): the same SQL with ``?`` or ``%s`` placeholders.
_Sql = tuple[str, str]


def _sql(statement: str) -> _Sql:
    return statement, statement.replace("?", "%s")


def _columns(table: Table) -> tuple[str, ...]:
    return tuple(column.name for column in table.columns)


def _insert_sql(table: Table, names: Sequence[str] | None = None) -> _Sql:
    """The insert of a row of ``table``: of every column, else of ``names``."""
    names = _columns(table) if names is None else names
    marks = ", ".join("?" for _ in names)
    return _sql(f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})")


def _select_sql(table: Table, where: str) -> _Sql:
    return _sql(f"SELECT {', '.join(_columns(table))} FROM {table.name} WHERE {where}")


_DECISION_COLUMNS = _columns(decisions)
_FEEDBACK_COLUMNS = _columns(tip_feedback)
_DecisionRow = namedtuple("_DecisionRow", _DECISION_COLUMNS)  # type: ignore[misc]
_FeedbackRow = namedtuple("_FeedbackRow", _FEEDBACK_COLUMNS)  # type: ignore[misc]
_StateRow = namedtuple("_StateRow", ["state", "reward_count", "reward_sum_milli", "updated_ms"])

_LOCK_STATE = _sql("SELECT pg_advisory_xact_lock(?)")
_TRY_LOCK_STATE = _sql("SELECT pg_try_advisory_xact_lock(?)")
_LOAD_STATE = _sql(
    "SELECT state, reward_count, reward_sum_milli, updated_ms FROM policy_state"
    " WHERE user_id = ? AND policy = ?"
)
_SAVE_STATE = _sql(
    "INSERT INTO policy_state"
    " (user_id, policy, state, n_updates, reward_count, reward_sum_milli, updated_ms)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, policy) DO UPDATE SET"
    " state = excluded.state, n_updates = excluded.n_updates,"
    " reward_count = excluded.reward_count, reward_sum_milli = excluded.reward_sum_milli,"
    " updated_ms = excluded.updated_ms"
)
_INSERT_DECISION = _insert_sql(decisions)
_INSERT_DECISION_NO_CONTENT = _insert_sql(decisions, _DECISION_COLUMNS[:-1])
"""The decision insert without its last column, ``content``, left NULL: sqlite3 offers a
``None`` parameter — like a ``bool`` or a ``bytes`` — to its adapters first, where a failed
attribute lookup raises and clears an exception (~1 µs a parameter; see
:mod:`oo_ml.store.codec`). For the same reason hot statements pass a ``bool`` as an ``int`` on
SQLite (a boolean parameter must stay ``bool`` on PostgreSQL)."""
if _DECISION_COLUMNS != (
    "event_id",
    "user_id",
    "policy",
    "created_ms",
    "hour_of_day",
    "day_of_week",
    "n_candidates",
    "dim",
    "candidates",
    "features",
    "scores",
    "probabilities",
    "chosen",
    "chosen_id",
    "explored",
    "seed",
    "model_updates",
    "origin",
    "means",
    "content",
):  # SqlTxn.insert_decision passes its parameters in this order
    raise ImportError("decisions' columns changed: update SqlTxn.insert_decision")
_GET_DECISION = _select_sql(decisions, "event_id = ?")
_INSERT_FEEDBACK = _insert_sql(tip_feedback)
_GET_FEEDBACK = _select_sql(tip_feedback, "event_id = ?")
_GET_USER = _sql("SELECT user_id, reset_ms FROM users WHERE user_id = ?")
_INSERT_SHADOW = _insert_sql(shadow_decisions)
_RUN_COLUMNS = _columns(sim_runs)
_RunRow = namedtuple("_RunRow", _RUN_COLUMNS)  # type: ignore[misc]
_INSERT_RUN = _insert_sql(sim_runs)
_GET_RUN = _select_sql(sim_runs, "run_id = ?")


@functools.lru_cache(maxsize=32)
def _update_run_sql(names: tuple[str, ...]) -> _Sql:
    """The update of a run's ``names`` columns (a simulation writes one at every batch)."""
    return _sql(f"UPDATE sim_runs SET {', '.join(f'{n} = ?' for n in names)} WHERE run_id = ?")


_SHADOW_COLUMNS = _columns(shadow_decisions)
_SHADOW_CHUNK = 500  # ids per IN (…): far below SQLite's and PostgreSQL's parameter limits


@functools.lru_cache(maxsize=64)
def _logged_rounds_sql(after: bool, policies: int) -> _Sql:
    """A page of the log, oldest first: every decision column, then every feedback column
    (NULL without feedback); ``after`` a (created_ms, event_id) mark, ``policies`` names."""
    where = ["d.created_ms >= ?", "d.created_ms < ?"]
    if after:
        where.append("(d.created_ms, d.event_id) > (?, ?)")
    if policies:
        where.append(f"d.policy IN ({', '.join('?' * policies)})")
    chosen = [f"d.{c}" for c in _DECISION_COLUMNS] + [f"f.{c}" for c in _FEEDBACK_COLUMNS]
    return _sql(
        f"SELECT {', '.join(chosen)} FROM decisions d"
        " LEFT OUTER JOIN tip_feedback f ON f.event_id = d.event_id"
        f" WHERE {' AND '.join(where)} ORDER BY d.created_ms, d.event_id LIMIT ?"
    )


def _shadows_sql(count: int) -> _Sql:
    marks = ", ".join("?" for _ in range(count))
    return _select_sql(shadow_decisions, f"event_id IN ({marks})")


def _shadow_from_row(row: Sequence[Any]) -> ShadowRecord:
    event_id, policy, scores, probabilities, chosen, model_updates, means = row
    return ShadowRecord(
        event_id=event_id,
        policy=policy,
        scores=array_from_bytes(scores, (-1,)),
        probabilities=array_from_bytes(probabilities, (-1,)),
        chosen=chosen,
        model_updates=model_updates,
        means=None if means is None else array_from_bytes(means, (-1,)),
    )


class SqlTxn:
    """The :class:`~oo_ml.store.base.Txn` operations on one SQLAlchemy connection."""

    def __init__(self, conn: Connection, dialect: str, *, batched: bool = False) -> None:
        self._conn = conn
        self._dialect = dialect
        self._style = 1 if dialect == "postgresql" else 0
        self._dbapi_conn: Any = None
        self._batched = batched
        """Whether this transaction runs several jobs (see :meth:`load_state`)."""
        self._locked = False

    def _execute(self, statement: _Sql, params: Sequence[Any]) -> Any:
        """Run a hot statement on the DBAPI cursor; returns the cursor.

        SQLAlchemy's per-call work (statement cache keys, execution context, result wrapping)
        costs 60–230 µs a statement against ~2 µs here. Errors are raised as SQLAlchemy's
        exception types, so conflicts, retries and lost connections are handled as before.
        """
        sql = statement[self._style]
        if self._dbapi_conn is None:
            self._dbapi_conn = self._conn.connection.dbapi_connection
        cursor = self._dbapi_conn.cursor()
        dialect = self._conn.dialect
        error = dialect.loaded_dbapi.Error
        try:
            cursor.execute(sql, params)
        except error as exc:
            cursor.close()
            lost = dialect.is_disconnect(exc, self._dbapi_conn, cursor)
            if lost:
                self._conn.invalidate(exc)
            raise DBAPIError.instance(
                sql, params, exc, error, connection_invalidated=lost, dialect=dialect
            ) from exc
        return cursor

    def _fetchone(self, statement: _Sql, params: Sequence[Any]) -> Any:
        cursor = self._execute(statement, params)
        try:
            return cursor.fetchone()
        finally:
            cursor.close()

    def _upsert(self, table: Any, values: dict[str, Any], keys: list[str]) -> None:
        module = postgresql if self._dialect == "postgresql" else sqlite
        stmt = module.insert(table).values(**values)
        updates = {k: stmt.excluded[k] for k in values if k not in keys}
        self._conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates))

    def load_state(self, user_id: str, policy: str, *, for_update: bool = False) -> StateRow | None:
        """The (user, policy)'s model; ``for_update`` locks it until the transaction ends.

        On PostgreSQL the lock is an advisory lock. A transaction of several jobs that already
        holds one only *tries* the next: two batches taking the same locks in opposite orders
        would otherwise wait for each other until PostgreSQL's deadlock check (1 s). If the lock
        is taken, :class:`_LockBusyError` makes the writer roll the batch back and run its jobs one
        transaction each, where waiting for a lock is safe.
        """
        if for_update and self._dialect == "postgresql":
            key = (_lock_key(user_id, policy),)
            if self._batched and self._locked:
                if not self._fetchone(_TRY_LOCK_STATE, key)[0]:
                    raise _LockBusyError(
                        f"{policy} model of {user_id!r} is locked by another batch"
                    )
            else:
                self._fetchone(_LOCK_STATE, key)
            self._locked = True
        row = self._fetchone(_LOAD_STATE, (user_id, policy))
        return None if row is None else _state_from_row(_StateRow._make(row))

    def save_state(self, user_id: str, policy: str, row: StateRow) -> None:
        params = (
            user_id,
            policy,
            state_to_bytes(row.state),
            row.state.n_updates,
            row.reward_count,
            row.reward_sum_milli,
            row.updated_ms,
        )
        self._execute(_SAVE_STATE, params).close()

    def insert_decision(self, record: DecisionRecord) -> None:
        # The parameters in the statement's column order (_INSERT_DECISION); bools as ints on
        # SQLite and no content column when there is none: see _INSERT_DECISION_NO_CONTENT.
        k, d = record.features.shape
        probabilities = record.probabilities
        means = record.means
        content = record.content
        params = [
            record.event_id,
            record.user_id,
            record.policy,
            record.created_ms,
            record.context.hour_of_day,
            record.context.day_of_week,
            k,
            d,
            _candidates_json(record),
            array_to_bytes(record.features),
            array_to_bytes(record.scores),
            None if probabilities is None else array_to_bytes(probabilities),
            record.chosen,
            record.chosen_id,
            record.explored if self._style else int(record.explored),
            record.seed,
            record.model_updates,
            record.origin,
            None if means is None else array_to_bytes(means),
        ]
        if content is None:
            self._execute(_INSERT_DECISION_NO_CONTENT, params).close()
        else:
            params.append(json.dumps(content))
            self._execute(_INSERT_DECISION, params).close()

    def get_decision(self, event_id: str) -> DecisionRecord | None:
        row = self._fetchone(_GET_DECISION, (event_id,))
        return None if row is None else _decision_from_row(_DecisionRow._make(row))

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
        row = self._fetchone(_GET_FEEDBACK, (event_id,))
        return None if row is None else _feedback_from_row(_FeedbackRow._make(row))

    def insert_feedback(self, record: FeedbackRecord) -> None:
        values = {
            "event_id": record.event_id,
            "user_id": record.user_id,
            "policy": record.policy,
            "created_ms": record.created_ms,
            "action": record.action,
            "dwell_ms": record.dwell_ms,
            "reward_milli": record.reward_milli,
            "reward_rule": record.reward_rule,
            "origin": record.origin,
            # An int on SQLite: see _INSERT_DECISION_NO_CONTENT.
            "applied": record.applied if self._style else int(record.applied),
        }
        self._execute(_INSERT_FEEDBACK, [values[c] for c in _FEEDBACK_COLUMNS]).close()

    def insert_shadows(self, records: Sequence[ShadowRecord]) -> None:
        for record in records:
            values = {
                "event_id": record.event_id,
                "policy": record.policy,
                "scores": array_to_bytes(record.scores),
                "probabilities": array_to_bytes(record.probabilities),
                "chosen": record.chosen,
                "model_updates": record.model_updates,
                "means": None if record.means is None else array_to_bytes(record.means),
            }
            self._execute(_INSERT_SHADOW, [values[c] for c in _SHADOW_COLUMNS]).close()

    def shadows_for(self, event_ids: Sequence[str]) -> dict[str, list[ShadowRecord]]:
        found: dict[str, list[ShadowRecord]] = {e: [] for e in event_ids}
        ids = list(found)
        for start in range(0, len(ids), _SHADOW_CHUNK):
            chunk = ids[start : start + _SHADOW_CHUNK]
            cursor = self._execute(_shadows_sql(len(chunk)), chunk)
            try:
                rows = cursor.fetchall()
            finally:
                cursor.close()
            for row in rows:
                found[row[0]].append(_shadow_from_row(row))
        for records in found.values():
            records.sort(key=lambda r: r.policy)  # in Python: database collations differ
        return found

    def get_user(self, user_id: str) -> UserRow | None:
        row = self._fetchone(_GET_USER, (user_id,))
        return None if row is None else UserRow(row[0], row[1])

    def mark_reset(self, user_id: str, reset_ms: int) -> None:
        self._conn.execute(delete(policy_state).where(policy_state.c.user_id == user_id))
        self._upsert(users, {"user_id": user_id, "reset_ms": reset_ms}, ["user_id"])

    def delete_user(self, user_id: str) -> int:
        # Explicitly rather than by the foreign key's cascade, so the rows are counted.
        of_user = select(decisions.c.event_id).where(decisions.c.user_id == user_id)
        shadows = delete(shadow_decisions).where(shadow_decisions.c.event_id.in_(of_user))
        removed: int = self._conn.execute(shadows).rowcount
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

    def logged_rounds(
        self,
        since_ms: int,
        until_ms: int,
        *,
        after: tuple[int, str] | None = None,
        limit: int = 1000,
        policies: Sequence[str] | None = None,
    ) -> Sequence[tuple[DecisionRecord, FeedbackRecord | None]]:
        # On the DBAPI cursor, like the hot statements: evaluation and export read the log a
        # thousand rounds at a time, and SQLAlchemy's rows cost a third of such a read.
        if policies is not None and not policies:
            return []
        params: list[Any] = [since_ms, until_ms]
        if after is not None:
            params += after
        if policies is not None:
            params += policies
        params.append(limit)
        cursor = self._execute(
            _logged_rounds_sql(after is not None, 0 if policies is None else len(policies)),
            params,
        )
        try:
            rows = cursor.fetchall()
        finally:
            cursor.close()
        width = len(_DECISION_COLUMNS)
        return [
            (
                _decision_from_row(_DecisionRow._make(row[:width])),
                None if row[width] is None else _feedback_from_row(_FeedbackRow._make(row[width:])),
            )
            for row in rows
        ]

    def recent_decisions(
        self,
        user_id: str,
        limit: int,
        policies: Sequence[str] | None = None,
        since_ms: int | None = None,
        origin: str | None = None,
    ) -> Sequence[DecisionRecord]:
        conditions = [decisions.c.user_id == user_id]
        if policies is not None:
            conditions.append(decisions.c.policy.in_(list(policies)))
        if since_ms is not None:
            conditions.append(decisions.c.created_ms >= since_ms)
        if origin is not None:
            conditions.append(decisions.c.origin == origin)
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
            conditions.append(decisions.c.created_ms >= since_ms)
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

    def states_of_policy(self, policy: str, limit: int) -> Sequence[StateRow]:
        rows = self._conn.execute(
            select(policy_state)
            .where(policy_state.c.policy == policy)
            .order_by(policy_state.c.updated_ms.desc(), policy_state.c.user_id)
            .limit(limit)
        ).all()
        return [_state_from_row(r) for r in rows]

    # A simulation writes its run's record at the start, at every batch of events and at the
    # end: on the DBAPI cursor, like the hot statements (SQLAlchemy's update cost 0.4 ms).
    def insert_run(self, run: RunRecord) -> None:
        summary = None if run.summary is None else json.dumps(run.summary)
        values = {
            "run_id": run.run_id,
            "created_ms": run.created_ms,
            "updated_ms": run.updated_ms,
            "status": run.status,
            "config": json.dumps(run.config),
            "total_steps": run.total_steps,
            "done_steps": run.done_steps,
            "summary": summary,
            "error": run.error,
        }
        self._execute(_INSERT_RUN, [values[name] for name in _RUN_COLUMNS]).close()

    def update_run(
        self,
        run_id: str,
        updated_ms: int,
        *,
        status: str | None = None,
        done_steps: int | None = None,
        summary: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        values: dict[str, Any] = {"updated_ms": updated_ms}
        if status is not None:
            values["status"] = status
        if done_steps is not None:
            values["done_steps"] = done_steps
        if summary is not None:
            values["summary"] = json.dumps(summary)
        if error is not None:
            values["error"] = error
        self._execute(_update_run_sql(tuple(values)), [*values.values(), run_id]).close()

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self._fetchone(_GET_RUN, (run_id,))
        return None if row is None else _run_from_row(_RunRow._make(row))

    def list_runs(self, limit: int) -> Sequence[RunRecord]:
        rows = self._conn.execute(
            select(sim_runs)
            .order_by(sim_runs.c.created_ms.desc(), sim_runs.c.run_id.desc())
            .limit(limit)
        ).all()
        return [_run_from_row(r) for r in rows]

    def insert_sim_events(self, events: Sequence[SimEvent]) -> None:
        # A run writes thousands of events at a time: one executemany straight to the driver,
        # the events being tuples already (23 µs an event through Core with asdict). 119 users
        # × 150 steps on SQLite, 500 a batch: 21 µs an event keyed user first with a generator
        # per row, 10 with the step-first key (migration 0003) (measured 2026-11-27).
        if events:
            statement = _SIM_EVENT_INSERT[self._conn.dialect.paramstyle]
            self._conn.exec_driver_sql(statement, list(events))

    def sim_events(self, run_id: str) -> Sequence[SimEvent]:
        rows = self._conn.execute(
            select(sim_events)
            .where(sim_events.c.run_id == run_id)
            .order_by(sim_events.c.policy, sim_events.c.user_id, sim_events.c.step)
        ).all()
        return [SimEvent(**row._asdict()) for row in rows]


_SIM_EVENT_FIELDS = SimEvent._fields
_SIM_EVENT_INSERT = {
    style: f"INSERT INTO {sim_events.name} ({', '.join(_SIM_EVENT_FIELDS)}) "
    f"VALUES ({', '.join(mark for _ in _SIM_EVENT_FIELDS)})"
    for style, mark in (("qmark", "?"), ("format", "%s"), ("pyformat", "%s"))
}
"""The sim_events insert in each placeholder style of the drivers we run on (sqlite3: qmark,
psycopg: pyformat); the columns are named as SimEvent's fields."""

_STOP = object()
_Job = Callable[["SqlTxn"], Any]
_Result = tuple[Any, bool, Any]
"""A job's future (``concurrent.futures`` or ``asyncio``), whether it succeeded, and its value
or its exception."""
_Deliver = Callable[[list[_Result]], None]
"""Resolves a group of results; called from any thread."""
_Item = tuple[_Job, Any, _Deliver]
# In a connection's info: the path of its database file when its commits need the syncer, and
# the busy timeout the connection is set to.
_WAL_SYNC = "oo_ml_wal_sync"
_DATABASE = "oo_ml_database"  # the file of a connection in WAL mode that is not checkpointed
_BUSY_MS = "oo_ml_busy_timeout_ms"
_PATIENT_MS = 30_000
QUICK_SYNC_S = 0.0005
"""A WAL sync quicker than this (a moving average) is done by the thread that committed, without
waking a syncer thread: the wake-up, the GIL hand-offs and the way back cost about as much."""


def _settle(results: list[_Result]) -> None:
    """Resolve futures: ``concurrent.futures`` ones from any thread, ``asyncio`` ones on their
    loop's thread. A cancelled waiter is skipped (its job ran anyway): setting its result would
    raise in the thread that delivers, and fail the rest of the group."""
    for future, ok, value in results:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _deliver(entries: list[tuple[_Deliver, _Result]]) -> None:
    """Hand each result to its deliverer, one call per deliverer."""
    groups: dict[_Deliver, list[_Result]] = {}
    for deliver, result in entries:
        groups.setdefault(deliver, []).append(result)
    for deliver, results in groups.items():
        deliver(results)


class _LoopQueue:
    """What one event loop has submitted and not yet run, and the results on their way to it.

    Results come from other threads (the syncer, the writer thread) through :meth:`post`, with
    one wake-up of the loop per group (``call_soon_threadsafe`` writes to the loop's self-pipe,
    and each write costs the posting thread a GIL hand-off to a busy loop).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # the writer's map of queues is weak on loops
        self.jobs: list[tuple[_Job, asyncio.Future[Any]]] = []
        self._lock = threading.Lock()
        self._ready: list[_Result] = []

    def post(self, results: list[_Result]) -> None:
        with self._lock:
            first = not self._ready
            self._ready.extend(results)
        loop = self._loop()
        if first and loop is not None:
            with suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        _settle(ready)


class _Writer:
    """Runs write jobs on the one connection per process that writes, many per commit.

    Jobs come two ways. :meth:`submit` (any thread) queues a job for the writer thread, which
    takes every job waiting (up to ``batch_limit``) and commits them together. On SQLite,
    :meth:`submit_async` (an event loop's thread) collects the jobs submitted during one turn
    of the loop and runs them at its end, on the loop's thread, as one batch: no thread
    hand-off before the commit, whose cost the batch shares. A batch that cannot start there
    at once — the writer thread holds the connection or has jobs queued, or another process
    holds SQLite's write lock (the loop's attempt does not wait: its busy timeout is 0) — goes
    to the writer thread, which waits for the lock as long as it takes. Either way a job's
    result is delivered only after the commit and, at ``synchronous=FULL``, after the
    :class:`_WalSyncer` has synced it.

    The thread sleeps in a read on a pipe, not on a lock, and a submitter wakes it by writing
    to the pipe, which it does without holding the GIL. Releasing a lock with the GIL held
    invites the scheduler to run the woken writer at once, only for it to wait for the GIL
    that the preempted event loop still holds: on a busy machine that cost milliseconds per
    request.
    """

    def __init__(
        self,
        engine: Engine,
        dialect: str,
        batch_limit: int,
        syncer: _WalSyncer | None = None,
    ) -> None:
        self._engine = engine
        self._dialect = dialect
        self._batch_limit = batch_limit
        self._syncer = syncer
        self._pending: deque[Any] = deque()
        self._lock = threading.Lock()
        self._idle = False
        self._wake_read, self._wake_write = os.pipe()
        self._conn: Connection | None = None
        self._conn_lock = threading.Lock()  # held by whoever runs a batch on _conn
        self._checkpointer = _Checkpointer(self._conn_lock) if dialect == "sqlite" else None
        # PostgreSQL's driver waits on the network and on row locks: never on a loop's thread.
        self._in_loop = dialect == "sqlite"
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopQueue] = (
            weakref.WeakKeyDictionary()
        )
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="oo-ml-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[SqlTxn], T]) -> Future[T]:
        future: Future[T] = Future()
        self._put((job, future, _settle))
        return future

    def submit_async(self, job: Callable[[SqlTxn], T]) -> asyncio.Future[T]:
        """Queue ``job`` from the running event loop; the future resolves on that loop."""
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            with self._lock:
                queue = self._queues.setdefault(loop, _LoopQueue(loop))
        future: asyncio.Future[T] = loop.create_future()
        if not self._in_loop:
            # At once, as submit does: holding back a turn's jobs to send them together makes
            # bigger batches, and two workers' big batches that take the same (user, policy)
            # locks in another order deadlock (PostgreSQL tells after deadlock_timeout, 1 s).
            self._put((job, future, queue.post))
            return future
        queue.jobs.append((job, future))
        if len(queue.jobs) == 1:
            # At the end of the next turn rather than this one: the loop polls its sockets in
            # between, and requests that arrived meanwhile join the batch (about twice as many
            # per commit and per sync under load, for one more turn of latency).
            loop.call_soon(loop.call_soon, self._flush, queue)
        return future

    def _put(self, item: Any) -> None:
        with self._lock:
            self._pending.append(item)
            wake, self._idle = self._idle, False
        if wake:
            os.write(self._wake_write, b"\0")

    def stop(self) -> None:
        self._closed = True
        self._put(_STOP)
        self._thread.join()
        if self._syncer is not None:
            self._syncer.stop()
        if self._checkpointer is not None:
            self._checkpointer.stop()
        os.close(self._wake_read)
        os.close(self._wake_write)
        if self._conn is not None:
            self._conn.close()

    # -- on an event loop's thread ------------------------------------------------------------

    def _flush(self, queue: _LoopQueue) -> None:
        """Run what ``queue``'s loop submitted during this turn (the end of the turn)."""
        batch, queue.jobs = queue.jobs, []
        if self._closed:
            error = StoreError("the store is closed")
            _settle([(future, False, error) for _, future in batch])
            return
        for start in range(0, len(batch), self._batch_limit):
            part = batch[start : start + self._batch_limit]
            try:
                self._run_here(queue, part)
            except Exception as exc:  # never leave a request waiting on a dead batch
                log.exception("write batch of %d jobs failed", len(part))
                error = StoreError(f"database write failed: {exc}")
                _settle([(future, False, error) for _, future in part if not future.done()])

    def _run_here(self, queue: _LoopQueue, batch: list[tuple[_Job, asyncio.Future[Any]]]) -> None:
        jobs = [job for job, _ in batch]
        outcomes = database = None
        if not self._pending and self._conn_lock.acquire(blocking=False):
            try:
                outcomes = self._try(jobs, patient=False)
                database = self._committed(outcomes)
            finally:
                self._conn_lock.release()
        if outcomes is None:  # the writer thread takes it from here, and waits if need be
            for job, future in batch:
                self._put((job, future, queue.post))
            return
        entries: list[tuple[_Deliver, _Result]] = [
            (queue.post, (future, ok, value))
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True)
        ]
        ready = self._durable(database, entries)
        if ready is not None:  # resolved here, on the loop's own thread: no post needed
            _settle([result for _, result in ready])

    # -- on the writer thread -----------------------------------------------------------------

    def _take(self) -> list[Any]:
        """The next items, up to ``batch_limit``; sleeps until there is one."""
        while True:
            with self._lock:
                if self._pending:
                    count = min(len(self._pending), self._batch_limit)
                    return [self._pending.popleft() for _ in range(count)]
                self._idle = True
            os.read(self._wake_read, 512)  # a stale wake-up only costs one more look

    def _loop(self) -> None:
        while True:
            items = self._take()
            stop = next((i for i, item in enumerate(items) if item is _STOP), None)
            batch = items if stop is None else items[:stop]
            if batch:
                self._run(batch)
            if stop is not None:
                return

    def _run(self, batch: list[_Item]) -> None:
        jobs = [job for job, _, _ in batch]
        try:
            outcomes, database = self._patiently(jobs)
        except _LockBusyError:
            # Rolled back; alone in its transaction a job may wait for its lock.
            outcomes = []
            for job in jobs:
                single, database = self._patiently([job])
                outcomes += single
        entries = [
            (deliver, (future, ok, value))
            for (_, future, deliver), (ok, value) in zip(batch, outcomes, strict=True)
        ]
        ready = self._durable(database, entries)
        if ready is not None:
            _deliver(ready)

    def _patiently(self, jobs: list[_Job]) -> tuple[list[tuple[bool, Any]], str | None]:
        """Run ``jobs`` as one transaction, again after a retryable error (a deadlock, a busy
        database), up to eight tries with back-off; its outcomes and :meth:`_committed`."""
        for attempt in range(8):
            with self._conn_lock:
                outcomes = self._try(jobs, patient=True, last=attempt == 7)
                database = self._committed(outcomes)
            if outcomes is not None:
                return outcomes, database
            time.sleep(0.005 * 2**attempt)
        raise AssertionError("the last try always has outcomes")  # pragma: no cover

    # -- either -------------------------------------------------------------------------------

    def _durable(
        self, database: str | None, entries: list[tuple[_Deliver, _Result]]
    ) -> list[tuple[_Deliver, _Result]] | None:
        """A committed batch's results, to deliver now: at once when there is no WAL to sync
        (``database`` from :meth:`_committed`), after syncing it here when syncs are quick;
        ``None`` when a syncer thread took them, to deliver once the WAL is on disk."""
        if database is None:
            return entries
        assert self._syncer is not None
        if not self._syncer.quick():
            self._syncer.put(database, entries)
            return None
        return self._syncer.synced(database, entries)

    def _committed(self, outcomes: list[tuple[bool, Any]] | None) -> str | None:
        """After a try at a batch: count a commit for the checkpointer, and return the database
        file whose WAL must be synced before the results are delivered (``None``: no sync)."""
        conn = self._conn
        if outcomes is None or conn is None:  # nothing was committed
            return None
        if self._checkpointer is not None:
            self._checkpointer.committed(conn.info.get(_DATABASE))
        database: str | None = conn.info.get(_WAL_SYNC) if self._syncer is not None else None
        return database

    def _try(
        self, jobs: list[_Job], *, patient: bool, last: bool = True
    ) -> list[tuple[bool, Any]] | None:
        """One attempt at the batch: its outcomes, or ``None`` if it is worth another try (a
        retryable error, unless ``last``; never when ``patient`` is false)."""
        try:
            return self._attempt(jobs, patient)
        except _LockBusyError:
            raise  # rolled back: the batch's jobs are to run one transaction each
        except DBAPIError as exc:
            if exc.connection_invalidated:
                self._conn = None
            if _retryable(exc) and (not patient or not last):
                return None
            return self._fail(len(jobs), StoreError(f"database write failed: {exc.orig}"))
        except Exception as exc:  # never leave a caller waiting on a dead batch
            return self._fail(len(jobs), StoreError(f"database write failed: {exc}"))

    def _fail(self, count: int, error: StoreError) -> list[tuple[bool, Any]]:
        log.error("write batch of %d jobs failed: %s", count, error)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        return [(False, error)] * count

    def _attempt(self, jobs: list[_Job], patient: bool) -> list[tuple[bool, Any]]:
        """Run the batch in one transaction; a retryable database error propagates."""
        if self._conn is None or self._conn.closed:
            self._conn = self._engine.connect()
        conn = self._conn
        if self._in_loop:
            _busy_timeout(conn, _PATIENT_MS if patient else 0)
        txn = SqlTxn(conn, self._dialect, batched=len(jobs) > 1)
        # Jobs rarely fail, so first run them all without savepoints (two statements less per
        # job). If one fails, that try is rolled back and the batch runs again with a savepoint
        # per job; running a job twice is safe, as for a retried batch.
        with conn.begin() as transaction:
            outcomes: list[tuple[bool, Any]] = []
            for job in jobs:
                try:
                    outcomes.append((True, job(txn)))
                except Exception as exc:
                    if isinstance(exc, _LockBusyError) or (
                        isinstance(exc, DBAPIError) and _retryable(exc)
                    ):
                        raise
                    transaction.rollback()
                    if len(jobs) == 1:
                        return [(False, _job_error(exc))]
                    break
            else:
                return outcomes
        return self._attempt_isolated(conn, jobs)

    def _attempt_isolated(self, conn: Connection, jobs: list[_Job]) -> list[tuple[bool, Any]]:
        """Run the batch in one transaction, each job in a savepoint so it can fail alone."""
        outcomes: list[tuple[bool, Any]] = []
        txn = SqlTxn(conn, self._dialect, batched=True)
        with conn.begin():
            for job in jobs:
                savepoint = conn.begin_nested()
                try:
                    value = job(txn)
                except Exception as exc:
                    if isinstance(exc, _LockBusyError) or (
                        isinstance(exc, DBAPIError) and _retryable(exc)
                    ):
                        raise
                    savepoint.rollback()
                    outcomes.append((False, _job_error(exc)))
                else:
                    savepoint.commit()
                    outcomes.append((True, value))
        return outcomes


def _busy_timeout(conn: Connection, ms: int) -> None:
    """Set SQLite's busy timeout on ``conn`` (a no-op when it is already ``ms``)."""
    if conn.info.get(_BUSY_MS) != ms:
        conn.connection.dbapi_connection.execute(f"PRAGMA busy_timeout={ms}")  # type: ignore[union-attr]
        conn.info[_BUSY_MS] = ms


class _Checkpointer:
    """Checkpoints a SQLite WAL from a thread of its own, in place of the writer connection.

    A checkpoint copies the WAL's pages into the database file and syncs it: milliseconds
    that SQLite's automatic checkpoint (every 1000 pages) spent inside a commit, which now
    runs on the event loop's thread. The writer's connection has ``wal_autocheckpoint=0``
    and asks for a checkpoint after every ``every`` commits; this thread runs a ``PASSIVE``
    one on its own connection, which waits for neither readers nor the writer, with the GIL
    released while SQLite works.

    SQLite reuses the WAL from its start only when a write begins after a checkpoint that
    copied every frame, which never happens while the writer commits every millisecond
    during a checkpoint of several: the WAL would grow without end. So a second, short
    checkpoint copies what was committed during the first while holding ``writer_lock``
    (the writer's connection lock: meanwhile the loop's batches go to the writer thread,
    which waits). SQLite still checkpoints (and removes the WAL) when the last connection
    closes.
    """

    def __init__(self, writer_lock: threading.Lock, every: int = 50) -> None:
        self._writer_lock = writer_lock
        self._every = every
        self._commits = 0
        self._database: str | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="oo-ml-checkpoint", daemon=True)
        self._thread.start()

    def committed(self, database: str | None) -> None:
        """Count a commit to ``database`` (the writer's file; ``None`` when not in WAL mode)."""
        if database is None:
            return
        self._database = database
        self._commits += 1
        if self._commits >= self._every:
            self._commits = 0
            self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()

    def _loop(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                try:
                    if conn is None and self._database is not None:
                        conn = sqlite3.connect(
                            self._database, isolation_level=None, check_same_thread=False
                        )
                    if conn is not None:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        with self._writer_lock:
                            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # the next commits ask again
                    log.warning("checkpointing the SQLite WAL failed: %s", exc)
        finally:
            if conn is not None:
                conn.close()


class _WalSyncer:
    """The threads that make committed SQLite batches durable before they are acknowledged.

    A thread takes every batch committed and not yet taken, syncs (``fdatasync``) the WAL file
    (which holds their commit frames, written before the batches were handed over), then
    delivers their results; a failed sync fails them with a :class:`StoreError`. There are a
    few threads so that a batch committed while a sync is under way need not wait for it to
    end and then for a sync of its own: another thread starts that sync at once, and the
    kernel serves overlapping syncs of one file much sooner than one after the other (on this
    project's shared disks, ~4 ms each in a row against well under 1 ms overlapped).

    The WAL is opened for each sync, so a WAL that SQLite deleted and created again is never
    missed; one that is gone was checkpointed into the database file, which is synced
    instead. Threads sleep in a read on a pipe, like :class:`_Writer`'s; each byte written
    wakes one of them.
    """

    def __init__(self, threads: int = 3) -> None:
        self._typical = 0.0  # a moving average of how long a sync takes, in seconds
        self._database = ""
        self._pending: list[tuple[_Deliver, _Result]] = []
        self._lock = threading.Lock()
        self._sleeping = 0  # threads asleep on the pipe …
        self._waking = 0  # … of which this many have a byte on its way
        self._stopping = False
        self._wake_read, self._wake_write = os.pipe()
        self._threads = [
            threading.Thread(target=self._loop, name="oo-ml-wal-sync", daemon=True)
            for _ in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def put(self, database: str, entries: list[tuple[_Deliver, _Result]]) -> None:
        """Deliver ``entries`` once ``database``'s WAL (where they were committed) is synced."""
        with self._lock:
            self._database = database
            self._pending.extend(entries)
            wake = self._sleeping > self._waking
            self._waking += wake
        if wake:
            os.write(self._wake_write, b"\0")

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            wake = self._sleeping - self._waking
            self._waking += wake
        os.write(self._wake_write, b"\0" * wake)
        for thread in self._threads:
            thread.join()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _take(self) -> tuple[str, list[tuple[_Deliver, _Result]]] | None:
        """The database and everything committed and not yet taken; ``None`` once stopped and
        drained."""
        while True:
            with self._lock:
                if self._pending:
                    taken, self._pending = self._pending, []
                    return self._database, taken
                if self._stopping:
                    return None
                self._sleeping += 1
            os.read(self._wake_read, 1)
            with self._lock:
                self._sleeping -= 1
                self._waking -= 1

    def quick(self) -> bool:
        """Whether syncs lately took less than handing one to a thread costs: then the
        committing thread does better to sync itself (:meth:`sync`)."""
        return self._typical < QUICK_SYNC_S

    def sync(self, database: str) -> StoreError | None:
        """Sync ``database``'s WAL in this thread; the error to fail the batch with, if any."""
        start = time.perf_counter()
        try:
            try:
                fd = os.open(database + "-wal", os.O_RDONLY)
            except FileNotFoundError:
                fd = os.open(database, os.O_RDONLY)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("syncing the SQLite WAL failed: %s", exc)
            return StoreError(f"database write failed: could not sync to disk: {exc}")
        finally:
            self._typical += (time.perf_counter() - start - self._typical) / 8
        return None

    def synced(
        self, database: str, entries: list[tuple[_Deliver, _Result]]
    ) -> list[tuple[_Deliver, _Result]]:
        """``entries`` after syncing ``database``'s WAL in this thread: as they are, or failed
        with the sync's error."""
        error = self.sync(database)
        if error is None:
            return entries
        return [(deliver, (result[0], False, error)) for deliver, result in entries]

    def _loop(self) -> None:
        while (taken := self._take()) is not None:
            _deliver(self.synced(*taken))


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
            own_sync = sqlite_synchronous.upper() == "FULL"
            self._write_engine = self._sqlite_engine(
                url, "IMMEDIATE", sqlite_synchronous, own_sync=own_sync
            )
            self._read_engine = self._sqlite_engine(url, "DEFERRED", sqlite_synchronous)
            syncer = _WalSyncer() if own_sync else None
        else:
            self._write_engine = create_engine(url, poolclass=StaticPool, pool_pre_ping=True)
            self._read_engine = create_engine(url, pool_size=8, pool_pre_ping=True)
            syncer = None
        self._writer = _Writer(self._write_engine, self.dialect, batch_limit, syncer)

    @staticmethod
    def _sqlite_engine(url: str, begin: str, synchronous: str, *, own_sync: bool = False) -> Engine:
        """``own_sync``: ``FULL``'s per-commit sync of the WAL is left to the :class:`_WalSyncer`
        (the connection runs at ``NORMAL``), if the database is in WAL mode."""
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            # The writer keeps its one connection; readers share a small pool.
            **({"poolclass": StaticPool} if begin == "IMMEDIATE" else {"pool_size": 8}),
        )

        @event.listens_for(engine, "connect")
        def _configure(dbapi_conn: Any, record: Any) -> None:
            dbapi_conn.isolation_level = None  # transactions are begun explicitly below
            cursor = dbapi_conn.cursor()
            wal = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() == "wal"
            # The file SQLite opened (whatever form the URL gave it), for the syncer.
            database = cursor.execute("PRAGMA database_list").fetchone()[2]
            if own_sync and wal and database:
                cursor.execute("PRAGMA synchronous=NORMAL")
                record.info[_WAL_SYNC] = database
            else:
                cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
            if begin == "IMMEDIATE" and wal and database:  # the writer: see _Checkpointer
                cursor.execute("PRAGMA wal_autocheckpoint=0")
                record.info[_DATABASE] = database
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={_PATIENT_MS}")
            record.info[_BUSY_MS] = _PATIENT_MS
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # On the DBAPI connection: ``exec_driver_sql`` costs ~60 µs a transaction.
            statement = f"BEGIN {begin}"
            try:
                conn.connection.dbapi_connection.execute(statement)  # type: ignore[union-attr]
            except sqlite3.Error as exc:
                raise DBAPIError.instance(
                    statement, (), exc, sqlite3.Error, dialect=conn.dialect
                ) from exc

        return engine

    @property
    def engine(self) -> Engine:
        """An engine for maintenance (migrations, readiness checks)."""
        return self._read_engine

    def submit(self, job: Callable[[SqlTxn], T]) -> Future[T]:
        return self._writer.submit(job)

    def submit_async(self, job: Callable[[SqlTxn], T]) -> asyncio.Future[T]:
        """:meth:`submit` from a running event loop: the future is that loop's, and on SQLite
        the job runs on the loop's thread with the others of its turn (see :class:`_Writer`)."""
        return self._writer.submit_async(job)

    def write(self, job: Callable[[SqlTxn], T]) -> T:
        return self._writer.submit(job).result()

    def read(self, job: Callable[[SqlTxn], T]) -> T:
        try:
            with self._read_engine.connect() as conn, conn.begin():
                return job(SqlTxn(conn, self.dialect))
        except DBAPIError as exc:
            raise _job_error(exc) from exc

    def close(self) -> None:
        self._writer.stop()
        self._write_engine.dispose()
        self._read_engine.dispose()
