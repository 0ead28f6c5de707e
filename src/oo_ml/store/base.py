"""The storage interface: records, one transaction interface, and the store that runs jobs.

The engine never issues queries. It writes *jobs*: plain functions that take a :class:`Txn`
and use its methods. A :class:`Store` runs a job atomically — all of its writes or none — and
returns only once the writes are durable. How is the store's business: the memory store holds a
lock; the SQL store runs jobs on one writer connection per process, many jobs per commit
(group commit), each inside its own savepoint, with the (user, policy) row locked on
PostgreSQL and the database write-locked on SQLite (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

from oo_ml.policies.model import RidgeState
from oo_ml.types import Candidate, Context, FloatArray

__all__ = [
    "DecisionRecord",
    "FeedbackRecord",
    "RunRecord",
    "ShadowRecord",
    "SimEvent",
    "StateRow",
    "Store",
    "Txn",
    "UserRow",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True, eq=False)
class DecisionRecord:
    """One logged decision: the raw inputs, what the policy saw and what it answered.

    Raw candidates are kept besides the encoded ``features`` so that a later policy with another
    encoder can be evaluated on the same log. ``model_updates`` is how many updates the model
    had seen when it decided. ``origin`` is ``rank`` for a real decision and ``legacy`` for the
    single-candidate record that an old-style ``/reward`` without a matching decision creates.
    ``probabilities`` is ``None`` only for ``legacy`` records. ``content`` holds the task texts
    only when the service is configured to keep them. ``means`` is the model's expected reward
    of each candidate when it decided (:attr:`~oo_ml.types.Decision.means`); ``None`` for
    legacy records and for decisions logged before it was kept.
    """

    event_id: str
    user_id: str
    policy: str
    created_ms: int
    context: Context
    candidates: tuple[Candidate, ...]
    source_ids: tuple[str | None, ...]
    features: FloatArray
    scores: FloatArray
    probabilities: FloatArray | None
    chosen: int
    seed: int
    model_updates: int
    origin: str = "rank"
    content: tuple[str, ...] | None = None
    means: FloatArray | None = None

    @property
    def chosen_id(self) -> str:
        return self.candidates[self.chosen].id

    @property
    def explored(self) -> bool:
        """Whether the policy chose something other than its best-scoring candidate."""
        scores = self.scores.tolist()  # in Python: a numpy max costs a few µs on ten values
        return bool(scores[self.chosen] < max(scores))


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """What happened to a decision. ``origin``: ``client`` (the decision API), ``legacy`` (an
    old-style numeric reward), or ``default`` (no feedback within the wait time).
    ``applied`` is false when the model was not updated (the user was reset since)."""

    event_id: str
    user_id: str
    policy: str
    created_ms: int
    action: str | None
    dwell_ms: int | None
    reward_milli: int
    reward_rule: str
    origin: str
    applied: bool = True

    @property
    def reward(self) -> float:
        return self.reward_milli / 1000.0


@dataclass(frozen=True, slots=True, eq=False)
class ShadowRecord:
    """What a shadow (challenger) policy would have done with a logged decision.

    The shadow scored the same candidates, in the same order, with its own encoder and its own
    model for the user (which had seen ``model_updates`` updates); ``probabilities`` are its
    exact propensities, so the log can be evaluated off-policy later, and ``means`` its model's
    expected rewards (``None`` if logged before they were kept). ``chosen`` is the index it
    drew with its own seeded generator; users never see it.
    """

    event_id: str
    policy: str
    scores: FloatArray
    probabilities: FloatArray
    chosen: int
    model_updates: int
    means: FloatArray | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A simulation run: ``status`` is queued, running, done, failed or cancelled."""

    run_id: str
    created_ms: int
    updated_ms: int
    status: str
    config: dict[str, Any]
    total_steps: int
    done_steps: int = 0
    summary: dict[str, Any] | None = None
    error: str | None = None


class SimEvent(NamedTuple):
    """One simulated step: what the policy chose, what the judge did, and the references.

    ``oracle_reward``/``random_reward``/``chosen_expected`` are expected rewards under the
    persona's own model (the best candidate, the average candidate, the chosen one); ``None``
    for judges that have no model (llm, command).

    A named tuple: a run makes one per simulated step, and as a tuple it is built in one
    call, unpacked at once by the summary and bound as it is by the stores' inserts.
    """

    run_id: str
    policy: str
    user_id: str
    step: int
    persona: str
    hour_of_day: int
    day_of_week: int
    chosen_id: str
    probability: float
    action: str
    dwell_ms: int | None
    reward_milli: int
    oracle_reward: float | None
    random_reward: float | None
    chosen_expected: float | None


@dataclass(slots=True)
class StateRow:
    """A (user, policy) model with the counters kept beside it."""

    state: RidgeState
    reward_count: int = 0
    reward_sum_milli: int = 0
    updated_ms: int = 0


@dataclass(frozen=True, slots=True)
class UserRow:
    user_id: str
    reset_ms: int | None


class Txn(Protocol):
    """The operations a job may use. Reads see the job's own earlier writes."""

    def load_state(self, user_id: str, policy: str, *, for_update: bool = False) -> StateRow | None:
        """The stored model; ``for_update`` locks it until the job ends (serialises updates).

        The row is the caller's: change it with :meth:`~oo_ml.policies.model.RidgeModel.update`
        or by replacing its arrays, never by writing into them, as they may be the store's own
        (the memory store hands them out read-only, without a copy)."""

    def save_state(self, user_id: str, policy: str, row: StateRow) -> None:
        """Store ``row``. Its arrays are the store's from then on: the memory store keeps them,
        read-only, without a copy; change a saved state only by loading it again."""

    def insert_decision(self, record: DecisionRecord) -> None:
        """Raises :class:`~oo_ml.errors.ConflictError` if the event id exists."""

    def get_decision(self, event_id: str) -> DecisionRecord | None: ...

    def latest_decision_for_tip(
        self, user_id: str, policy: str, tip_id: str
    ) -> DecisionRecord | None:
        """The newest decision of ``user_id`` under ``policy`` that chose ``tip_id``."""

    def get_feedback(self, event_id: str) -> FeedbackRecord | None: ...

    def insert_shadows(self, records: Sequence[ShadowRecord]) -> None:
        """Log shadow decisions of already logged decisions. Raises
        :class:`~oo_ml.errors.ConflictError` if an (event id, policy) pair exists or the
        decision does not."""

    def shadows_for(self, event_ids: Sequence[str]) -> dict[str, list[ShadowRecord]]:
        """The shadow decisions of each of ``event_ids`` (every id is a key; its list is ordered
        by policy name and empty when there are none). Meant for pages of up to 1000 ids."""

    def insert_feedback(self, record: FeedbackRecord) -> None: ...

    def get_user(self, user_id: str) -> UserRow | None: ...

    def mark_reset(self, user_id: str, reset_ms: int) -> None:
        """Forget the user's models; older decisions stay in the log but stop teaching."""

    def delete_user(self, user_id: str) -> int:
        """Erase everything about the user; returns how many rows went."""

    def get_setting(self, key: str) -> str | None: ...

    def set_setting(self, key: str, value: str) -> None: ...

    def unanswered_decisions(
        self, since_ms: int, before_ms: int, limit: int
    ) -> Sequence[DecisionRecord]:
        """Decisions made in ``[since_ms, before_ms)`` that have no feedback, oldest first."""

    def logged_rounds(
        self,
        since_ms: int,
        until_ms: int,
        *,
        after: tuple[int, str] | None = None,
        limit: int = 1000,
        policies: Sequence[str] | None = None,
    ) -> Sequence[tuple[DecisionRecord, FeedbackRecord | None]]:
        """The log for evaluation and export: decisions made in ``[since_ms, until_ms)`` with
        their feedback, oldest first by ``(created_ms, event_id)``; ``after`` continues a page
        after that key (keyset paging, stable while decisions are being added)."""

    def recent_decisions(
        self,
        user_id: str,
        limit: int,
        policies: Sequence[str] | None = None,
        since_ms: int | None = None,
        origin: str | None = None,
    ) -> Sequence[DecisionRecord]:
        """The user's newest decisions first; ``since_ms``: made at or after that time;
        ``origin``: only decisions of that origin (``rank`` or ``legacy``)."""

    def count_decisions(
        self, user_id: str, policy: str, since_ms: int | None = None
    ) -> tuple[int, int, int | None]:
        """(ranked decisions, how many explored, newest ``created_ms``) of the user under
        ``policy``; ``legacy`` records are not counted."""

    def list_states(self, user_id: str) -> Sequence[tuple[str, StateRow]]:
        """Every (policy, model) of the user."""

    def states_of_policy(self, policy: str, limit: int) -> Sequence[StateRow]:
        """Users' models under ``policy``, the ``limit`` most recently updated (for the
        population prior)."""

    def insert_run(self, run: RunRecord) -> None:
        """Raises :class:`~oo_ml.errors.ConflictError` if the run id exists."""

    def update_run(
        self,
        run_id: str,
        updated_ms: int,
        *,
        status: str | None = None,
        done_steps: int | None = None,
        summary: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None: ...

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def list_runs(self, limit: int) -> Sequence[RunRecord]:
        """Newest first."""

    def insert_sim_events(self, events: Sequence[SimEvent]) -> None: ...

    def sim_events(self, run_id: str) -> Sequence[SimEvent]:
        """Ordered by policy, user, step."""


class Store(Protocol):
    """Runs jobs: ``write`` atomically and durably, ``read`` without blocking writers."""

    def write(self, job: Callable[[Txn], T]) -> T: ...

    def submit(self, job: Callable[[Txn], T]) -> Future[T]:
        """Queue ``job`` for writing; the future resolves once its writes are durable."""

    def read(self, job: Callable[[Txn], T]) -> T: ...

    def close(self) -> None: ...
