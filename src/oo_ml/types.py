"""Frozen value types shared by every layer: what a decision is made from and what it returns.

Each type validates itself on construction, so a value that exists is a valid value; errors
name the offending field (see :class:`oo_ml.errors.ValidationError`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from oo_ml.errors import ValidationError

__all__ = [
    "MAX_DWELL_MS",
    "MAX_ID_LENGTH",
    "MAX_TASK_AGE_DAYS",
    "Action",
    "Candidate",
    "Context",
    "Decision",
    "Outcome",
    "Reward",
    "check_candidates",
    "checked_candidate",
    "shared_context",
    "stored_candidate",
]

MAX_ID_LENGTH = 256
"""Longest candidate id accepted, in characters."""

MAX_TASK_AGE_DAYS = 36_500.0
"""Largest |task_age_days| accepted: a century. Anything beyond is a client bug, not a task."""

MAX_DWELL_MS = 30 * 24 * 3600 * 1000
"""Longest dwell accepted: 30 days in milliseconds."""


def _strict_int(field: str, value: object, lo: int, hi: int) -> int:
    # bool is an int subclass; True as an hour is always a client bug.
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValidationError(field, f"must be an integer, got {type(value).__name__}")
    number = int(value)
    if not lo <= number <= hi:
        raise ValidationError(field, f"must be between {lo} and {hi}, got {number}")
    return number


def _finite(field: str, value: object, bound: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValidationError(field, f"must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range, e.g. 10**400 from a JSON body
        raise ValidationError(field, f"must be within ±{bound:g}") from None
    if not math.isfinite(number):
        raise ValidationError(field, f"must be finite, got {number}")
    if abs(number) > bound:
        raise ValidationError(field, f"must be within ±{bound:g}, got {number:g}")
    return number


def _text(field: str, value: object, max_length: int) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {type(value).__name__}")
    if not 1 <= len(value) <= max_length:
        raise ValidationError(field, f"must be 1 to {max_length} characters, got {len(value)}")
    if "\x00" in value:  # PostgreSQL text cannot hold NUL; refuse it everywhere alike
        raise ValidationError(field, "must not contain the NUL character")
    return value


@dataclass(frozen=True, slots=True)
class Context:
    """When a tip is asked for.

    ``day_of_week`` counts from Monday = 0 to Sunday = 6 (Python's ``date.weekday()``);
    the ``v1``/``v2`` encoders only use it through sin/cos, ``v3`` also derives a weekend flag.
    """

    hour_of_day: int
    day_of_week: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "hour_of_day", _strict_int("hour_of_day", self.hour_of_day, 0, 23))
        object.__setattr__(self, "day_of_week", _strict_int("day_of_week", self.day_of_week, 0, 6))


@functools.cache
def shared_context(hour_of_day: int, day_of_week: int) -> Context:
    """``Context(hour_of_day, day_of_week)``, built (and checked) once per value and shared
    after: contexts are frozen values, and readers that need one per request or per simulated
    step need not build it again. For callers whose values are already ints."""
    return Context(hour_of_day, day_of_week)


def _plain_candidate(
    tip_id: object, is_overdue: object, task_age_days: object, priority: object, source: object
) -> bool:
    """Whether these are a valid candidate's fields exactly as :class:`Candidate` keeps them:
    ``str``, ``bool``, ``float``, ``int`` and ``str``, in range, no NUL, nothing to convert."""
    return (
        type(tip_id) is str
        and 0 < len(tip_id) <= MAX_ID_LENGTH
        and "\x00" not in tip_id
        and type(is_overdue) is bool
        and type(task_age_days) is float
        and -MAX_TASK_AGE_DAYS <= task_age_days <= MAX_TASK_AGE_DAYS
        and type(priority) is int
        and 1 <= priority <= 4
        and type(source) is str
        and len(source) <= MAX_ID_LENGTH
        and "\x00" not in source
    )


@dataclass(frozen=True, slots=True)
class Candidate:
    """One task that could be shown.

    ``task_age_days`` is days since the due date: positive when overdue, negative when the task
    is not yet due (``-2`` = due in two days), ``0`` when due today or undated.
    ``priority`` is Todoist's 1 (lowest) to 4 (highest).
    """

    id: str
    is_overdue: bool = False
    task_age_days: float = 0.0
    priority: int = 1
    source: str = "other"

    def __post_init__(self) -> None:
        # The common case — exact built-in types, in range — is checked without conversions.
        if _plain_candidate(
            self.id, self.is_overdue, self.task_age_days, self.priority, self.source
        ):
            return
        _text("id", self.id, MAX_ID_LENGTH)
        if not isinstance(self.is_overdue, bool | np.bool_):
            raise ValidationError(
                "is_overdue", f"must be a boolean, got {type(self.is_overdue).__name__}"
            )
        object.__setattr__(self, "is_overdue", bool(self.is_overdue))
        object.__setattr__(
            self, "task_age_days", _finite("task_age_days", self.task_age_days, MAX_TASK_AGE_DAYS)
        )
        object.__setattr__(self, "priority", _strict_int("priority", self.priority, 1, 4))
        if (
            not isinstance(self.source, str)
            or len(self.source) > MAX_ID_LENGTH
            or "\x00" in self.source
        ):
            raise ValidationError(
                "source", f"must be a string of at most {MAX_ID_LENGTH} characters"
            )


_new_object = object.__new__
_CANDIDATE_FIELDS = ("id", "is_overdue", "task_age_days", "priority", "source")
"""Candidate's fields in the order :func:`checked_candidate` takes them (tested)."""
_SET_CANDIDATE = tuple(Candidate.__dict__[name].__set__ for name in _CANDIDATE_FIELDS)


def checked_candidate(
    tip_id: str, is_overdue: bool, task_age_days: float, priority: int, source: str
) -> Candidate:
    """``Candidate(tip_id, is_overdue, task_age_days, priority, source)`` without its
    ``__post_init__``, for a reader that has already made sure of everything its first check
    asks: exactly ``str``, ``bool``, ``float``, ``int`` and ``str``, in range, an id of 1 to
    :data:`MAX_ID_LENGTH` characters, a source of at most that many, neither holding NUL.
    A third of the time of the constructor (about 0.3 µs against 0.9)."""
    candidate: Candidate = _new_object(Candidate)
    set_id, set_overdue, set_age, set_priority, set_source = _SET_CANDIDATE
    set_id(candidate, tip_id)
    set_overdue(candidate, is_overdue)
    set_age(candidate, task_age_days)
    set_priority(candidate, priority)
    set_source(candidate, source)
    return candidate


def stored_candidate(
    tip_id: str, is_overdue: bool, task_age_days: float, priority: int, source: str
) -> Candidate:
    """``Candidate(tip_id, is_overdue, task_age_days, priority, source)``, built by
    :func:`checked_candidate` when the values are exactly what a candidate keeps — as when read
    back from the decision log — and by the checking constructor otherwise."""
    if _plain_candidate(tip_id, is_overdue, task_age_days, priority, source):
        return checked_candidate(tip_id, is_overdue, task_age_days, priority, source)
    return Candidate(tip_id, is_overdue, task_age_days, priority, source)


def check_candidates(candidates: Sequence[Candidate], max_candidates: int | None = None) -> None:
    """Refuse an empty list, a list that is too long, non-candidates and duplicate ids."""
    if not isinstance(candidates, Sequence):
        raise ValidationError("candidates", "must be a list of candidates")
    if len(candidates) == 0:
        raise ValidationError("candidates", "must not be empty")
    if max_candidates is not None and len(candidates) > max_candidates:
        raise ValidationError(
            "candidates", f"at most {max_candidates} allowed, got {len(candidates)}"
        )
    for i, c in enumerate(candidates):
        if not isinstance(c, Candidate):
            raise ValidationError(
                f"candidates[{i}]", f"must be a Candidate, got {type(c).__name__}"
            )
    ids = {c.id for c in candidates}
    if len(ids) != len(candidates):
        seen: set[str] = set()
        for i, c in enumerate(candidates):
            if c.id in seen:
                raise ValidationError(f"candidates[{i}].id", f"duplicate candidate id {c.id!r}")
            seen.add(c.id)


class Action(StrEnum):
    """What a person did with a tip."""

    DONE = "done"
    SNOOZE = "snooze"
    DISMISS = "dismiss"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The raw feedback on a decision, kept apart from any reward so it can be re-scored.

    ``dwell_ms`` is how long the person spent on the task, in milliseconds; ``None`` when the
    client did not measure it.
    """

    action: Action
    dwell_ms: int | None = None

    def __post_init__(self) -> None:
        try:
            action = Action(self.action)
        except ValueError:
            allowed = ", ".join(a.value for a in Action)
            raise ValidationError(
                "action", f"must be one of {allowed}, got {self.action!r}"
            ) from None
        object.__setattr__(self, "action", action)
        if self.dwell_ms is not None:
            object.__setattr__(
                self, "dwell_ms", _strict_int("dwell_ms", self.dwell_ms, 0, MAX_DWELL_MS)
            )


@dataclass(frozen=True, slots=True)
class Reward:
    """A reward as a rule scored it: ``milli`` (integer thousandths) is exact, ``value`` derived."""

    milli: int
    rule: str

    @property
    def value(self) -> float:
        return self.milli / 1000.0


FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True, slots=True, eq=False)
class Decision:
    """What a policy chose among k candidates, with everything off-policy evaluation needs.

    ``scores`` are the values the policy ranks by (the UCB value for UCB, θ·x otherwise),
    ``probabilities`` the probability that each candidate was the one chosen, ``features``
    the (k, d) matrix the policy saw. Arrays are read-only. ``draws`` is the number of
    posterior samples behind Monte-Carlo probabilities (Thompson sampling), else ``None``.
    ``means`` is the model's expected reward θ·x of each candidate when it decided (the same
    array as ``scores`` unless an exploration bonus was added): logged, it is the reward
    model of off-policy evaluation, with no need to replay the policy to learn it again.
    """

    policy: str
    chosen: int
    candidate_ids: tuple[str, ...]
    scores: FloatArray
    probabilities: FloatArray
    features: FloatArray = field(repr=False)
    draws: int | None = None
    means: FloatArray | None = field(default=None, repr=False)

    @property
    def chosen_id(self) -> str:
        return self.candidate_ids[self.chosen]

    @property
    def score(self) -> float:
        return float(self.scores[self.chosen])

    @property
    def probability(self) -> float:
        return float(self.probabilities[self.chosen])

    @property
    def chosen_features(self) -> FloatArray:
        row: FloatArray = self.features[self.chosen]
        return row

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe data, e.g. for a decision log."""
        return {
            "policy": self.policy,
            "chosen": self.chosen,
            "candidate_ids": list(self.candidate_ids),
            "scores": self.scores.tolist(),
            "probabilities": self.probabilities.tolist(),
            "features": self.features.tolist(),
            "draws": self.draws,
            "means": None if self.means is None else self.means.tolist(),
        }
