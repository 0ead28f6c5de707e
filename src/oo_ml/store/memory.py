"""An in-memory :class:`~oo_ml.store.base.Store` for unit tests and in-process simulation.

Jobs run one at a time under a lock; a job that raises is rolled back through an undo log, so
the memory store keeps the same all-or-nothing promise as the SQL one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

from oo_ml.errors import ConflictError
from oo_ml.policies.model import RidgeState
from oo_ml.store.base import (
    DecisionRecord,
    FeedbackRecord,
    RunRecord,
    ShadowRecord,
    SimEvent,
    StateRow,
    UserRow,
)

__all__ = ["MemoryStore"]

T = TypeVar("T")


def _stored_row(row: StateRow) -> StateRow:
    """What the store keeps of a saved row: new objects over the row's own arrays, made
    read-only in place (saving hands them over; see :meth:`~oo_ml.store.base.Txn.save_state`).
    So they can be handed out for reading without a copy (:func:`_read_row`), and whoever tries
    to change one in place gets an error instead of changing the stored model."""
    row.state.freeze()
    return _read_row(row)


def _read_row(row: StateRow) -> StateRow:
    """A row for reading: new objects over the stored, read-only, arrays. Replacing a field of
    it is the caller's business; writing into an array raises."""
    s = row.state
    state = RidgeState(
        s.encoder, s.A, s.b, s.A_inv, s.theta, s.prior_mean, s.n_updates, s.since_refactor
    )
    return StateRow(state, row.reward_count, row.reward_sum_milli, row.updated_ms)


@dataclass
class _Data:
    states: dict[tuple[str, str], StateRow] = field(default_factory=dict)
    decisions: dict[str, DecisionRecord] = field(default_factory=dict)
    by_user: dict[str, list[str]] = field(default_factory=dict)
    feedback: dict[str, FeedbackRecord] = field(default_factory=dict)
    shadows: dict[tuple[str, str], ShadowRecord] = field(default_factory=dict)
    shadow_keys: dict[str, list[str]] = field(default_factory=dict)
    """The policies that shadowed each event id (an index into ``shadows``)."""
    users: dict[str, UserRow] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    runs: dict[str, RunRecord] = field(default_factory=dict)
    events: dict[str, dict[tuple[str, str, int], SimEvent]] = field(default_factory=dict)
    """Per run, by (policy, user, step): the key of the SQL table."""


class _MemoryTxn:
    def __init__(self, data: _Data) -> None:
        self._data = data
        self._undo: list[Callable[[], None]] = []

    def _remember(self, mapping: dict, key: object) -> None:  # type: ignore[type-arg]
        if key in mapping:
            old = mapping[key]
            self._undo.append(lambda: mapping.__setitem__(key, old))
        else:
            self._undo.append(lambda: mapping.pop(key, None))

    def rollback(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def load_state(self, user_id: str, policy: str, *, for_update: bool = False) -> StateRow | None:
        row = self._data.states.get((user_id, policy))
        if row is None:
            return None
        # Read-only arrays either way: an update replaces them (a discounted one) or copies
        # them first (RidgeModel.update), so nothing is copied that is not about to change.
        return _read_row(row)

    def save_state(self, user_id: str, policy: str, row: StateRow) -> None:
        self._remember(self._data.states, (user_id, policy))
        self._data.states[(user_id, policy)] = _stored_row(row)

    def insert_decision(self, record: DecisionRecord) -> None:
        if record.event_id in self._data.decisions:
            raise ConflictError(f"event id {record.event_id!r} already exists")
        self._remember(self._data.decisions, record.event_id)
        self._data.decisions[record.event_id] = record
        ids = self._data.by_user.setdefault(record.user_id, [])
        ids.append(record.event_id)
        self._undo.append(lambda: ids.remove(record.event_id))

    def get_decision(self, event_id: str) -> DecisionRecord | None:
        return self._data.decisions.get(event_id)

    def _user_decisions(self, user_id: str) -> list[DecisionRecord]:
        """Newest first, by (created_ms, event_id) as the SQL store orders them."""
        decisions = self._data.decisions
        found = [decisions[e] for e in self._data.by_user.get(user_id, [])]
        found.sort(key=lambda d: (d.created_ms, d.event_id), reverse=True)
        return found

    def latest_decision_for_tip(
        self, user_id: str, policy: str, tip_id: str
    ) -> DecisionRecord | None:
        for record in self._user_decisions(user_id):
            if record.policy == policy and record.chosen_id == tip_id:
                return record
        return None

    def get_feedback(self, event_id: str) -> FeedbackRecord | None:
        return self._data.feedback.get(event_id)

    def insert_feedback(self, record: FeedbackRecord) -> None:
        if record.event_id in self._data.feedback:
            raise ConflictError(f"feedback for {record.event_id!r} already exists")
        self._remember(self._data.feedback, record.event_id)
        self._data.feedback[record.event_id] = record

    def insert_shadows(self, records: Sequence[ShadowRecord]) -> None:
        for record in records:
            key = (record.event_id, record.policy)
            if record.event_id not in self._data.decisions:
                raise ConflictError(f"no decision {record.event_id!r} to shadow")
            if key in self._data.shadows:
                raise ConflictError(f"shadow {key!r} already exists")
            self._remember(self._data.shadows, key)
            self._data.shadows[key] = record
            self._remember(self._data.shadow_keys, record.event_id)
            known = self._data.shadow_keys.get(record.event_id, [])
            self._data.shadow_keys[record.event_id] = sorted([*known, record.policy])

    def shadows_for(self, event_ids: Sequence[str]) -> dict[str, list[ShadowRecord]]:
        shadows, keys = self._data.shadows, self._data.shadow_keys
        return {e: [shadows[(e, p)] for p in keys.get(e, [])] for e in event_ids}

    def get_user(self, user_id: str) -> UserRow | None:
        return self._data.users.get(user_id)

    def mark_reset(self, user_id: str, reset_ms: int) -> None:
        for key in [k for k in self._data.states if k[0] == user_id]:
            self._remember(self._data.states, key)
            del self._data.states[key]
        self._remember(self._data.users, user_id)
        self._data.users[user_id] = UserRow(user_id, reset_ms)

    def delete_user(self, user_id: str) -> int:
        removed = 0
        for key in [k for k in self._data.states if k[0] == user_id]:
            self._remember(self._data.states, key)
            del self._data.states[key]
            removed += 1
        for event_id in self._data.by_user.get(user_id, []):
            for mapping in (self._data.decisions, self._data.feedback):
                if event_id in mapping:
                    self._remember(mapping, event_id)
                    del mapping[event_id]
                    removed += 1
            for policy in self._data.shadow_keys.get(event_id, []):
                self._remember(self._data.shadows, (event_id, policy))
                del self._data.shadows[(event_id, policy)]
                removed += 1
            if event_id in self._data.shadow_keys:
                self._remember(self._data.shadow_keys, event_id)
                del self._data.shadow_keys[event_id]
        self._remember(self._data.by_user, user_id)
        self._data.by_user.pop(user_id, None)
        self._remember(self._data.users, user_id)
        self._data.users.pop(user_id, None)
        return removed

    def get_setting(self, key: str) -> str | None:
        return self._data.settings.get(key)

    def set_setting(self, key: str, value: str) -> None:
        self._remember(self._data.settings, key)
        self._data.settings[key] = value

    def unanswered_decisions(
        self, since_ms: int, before_ms: int, limit: int
    ) -> Sequence[DecisionRecord]:
        feedback = self._data.feedback
        waiting = [
            d
            for d in self._data.decisions.values()
            if since_ms <= d.created_ms < before_ms and d.event_id not in feedback
        ]
        waiting.sort(key=lambda d: (d.created_ms, d.event_id))
        return waiting[:limit]

    def logged_rounds(
        self,
        since_ms: int,
        until_ms: int,
        *,
        after: tuple[int, str] | None = None,
        limit: int = 1000,
        policies: Sequence[str] | None = None,
    ) -> Sequence[tuple[DecisionRecord, FeedbackRecord | None]]:
        found = [
            d
            for d in self._data.decisions.values()
            if since_ms <= d.created_ms < until_ms
            and (after is None or (d.created_ms, d.event_id) > after)
            and (policies is None or d.policy in policies)
        ]
        found.sort(key=lambda d: (d.created_ms, d.event_id))
        feedback = self._data.feedback
        return [(d, feedback.get(d.event_id)) for d in found[:limit]]

    def recent_decisions(
        self,
        user_id: str,
        limit: int,
        policies: Sequence[str] | None = None,
        since_ms: int | None = None,
        origin: str | None = None,
    ) -> Sequence[DecisionRecord]:
        found = []
        for record in self._user_decisions(user_id):
            if since_ms is not None and record.created_ms < since_ms:
                continue
            if policies is not None and record.policy not in policies:
                continue
            if origin is not None and record.origin != origin:
                continue
            found.append(record)
            if len(found) == limit:
                break
        return found

    def count_decisions(
        self, user_id: str, policy: str, since_ms: int | None = None
    ) -> tuple[int, int, int | None]:
        found = [
            record
            for record in self._user_decisions(user_id)
            if record.policy == policy
            and record.origin == "rank"
            and (since_ms is None or record.created_ms >= since_ms)
        ]
        newest = max((r.created_ms for r in found), default=None)
        return len(found), sum(r.explored for r in found), newest

    def list_states(self, user_id: str) -> Sequence[tuple[str, StateRow]]:
        return [
            (policy, _read_row(row))
            for (user, policy), row in sorted(self._data.states.items())
            if user == user_id
        ]

    def states_of_policy(self, policy: str, limit: int) -> Sequence[StateRow]:
        rows = [(key, row) for key, row in self._data.states.items() if key[1] == policy]
        rows.sort(key=lambda item: (-item[1].updated_ms, item[0]))
        return [_read_row(row) for _, row in rows[:limit]]

    def insert_run(self, run: RunRecord) -> None:
        if run.run_id in self._data.runs:
            raise ConflictError(f"run {run.run_id!r} already exists")
        self._remember(self._data.runs, run.run_id)
        self._data.runs[run.run_id] = run

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
        run = self._data.runs.get(run_id)
        if run is None:
            return
        self._remember(self._data.runs, run_id)
        self._data.runs[run_id] = replace(
            run,
            updated_ms=updated_ms,
            status=run.status if status is None else status,
            done_steps=run.done_steps if done_steps is None else done_steps,
            summary=run.summary if summary is None else summary,
            error=run.error if error is None else error,
        )

    def get_run(self, run_id: str) -> RunRecord | None:
        return self._data.runs.get(run_id)

    def list_runs(self, limit: int) -> Sequence[RunRecord]:
        runs = sorted(self._data.runs.values(), key=lambda r: (r.created_ms, r.run_id))
        return runs[::-1][:limit]

    def insert_sim_events(self, events: Sequence[SimEvent]) -> None:
        for event in events:  # each one undone if a later one conflicts
            bucket = self._data.events.setdefault(event.run_id, {})
            key = (event.policy, event.user_id, event.step)
            if key in bucket:
                raise ConflictError(f"run {event.run_id!r} already has step {key}")
            bucket[key] = event
            self._undo.append(partial(bucket.__delitem__, key))

    def sim_events(self, run_id: str) -> Sequence[SimEvent]:
        found = self._data.events.get(run_id, {})
        return [found[key] for key in sorted(found)]


class MemoryStore:
    """Everything in dictionaries; jobs serialised by one lock.

    ``decision_limit`` bounds the decision log: before each job, the decisions kept longest
    beyond that many are forgotten, with their feedback and shadows (the models, settings and
    runs stay). For an in-process simulation, which never reads a decision again once its
    feedback is in: without a bound, its memory grows by a decision's features (k × d floats)
    every step.
    """

    def __init__(self, decision_limit: int | None = None) -> None:
        if decision_limit is not None and decision_limit < 1:
            raise ValueError(f"decision_limit must be at least 1, got {decision_limit}")
        self._data = _Data()
        self._lock = threading.RLock()
        self._decision_limit = decision_limit

    def _forget_oldest(self) -> None:
        data, limit = self._data, self._decision_limit
        if limit is None:
            return
        decisions = data.decisions
        while len(decisions) > limit:
            event_id = next(iter(decisions))  # dicts keep insertion order
            record = decisions.pop(event_id)
            data.feedback.pop(event_id, None)
            ids = data.by_user[record.user_id]
            ids.remove(event_id)
            if not ids:
                del data.by_user[record.user_id]
            for policy in data.shadow_keys.pop(event_id, []):
                del data.shadows[(event_id, policy)]

    def write(self, job: Callable[[_MemoryTxn], T]) -> T:
        with self._lock:
            self._forget_oldest()  # not part of the job: its rollback does not undo this
            txn = _MemoryTxn(self._data)
            try:
                return job(txn)
            except BaseException:
                txn.rollback()
                raise

    def read(self, job: Callable[[_MemoryTxn], T]) -> T:
        return self.write(job)

    def submit(self, job: Callable[[_MemoryTxn], T]) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(self.write(job))
        except Exception as exc:  # handed to the waiter, like the SQL store's writer thread
            future.set_exception(exc)
        return future

    def close(self) -> None:
        """Nothing to release."""
