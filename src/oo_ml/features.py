"""Versioned feature encoders: one function turns (context, candidates) into the (k, d) matrix
that ranking, learning, logging and off-policy evaluation all use.

``v1`` (d=5) and ``v2`` (d=7) reproduce the existing service's encodings::

    v1 = [sin(2πh/24), cos(2πh/24), is_overdue, clip(age, 0, 30)/30, (priority-1)/3]
    v2 = v1 + [sin(2πd/7), cos(2πd/7)]

with h the hour of day and d the day of week (Monday = 0). A negative ``task_age_days``
means the task is not yet due; its age feature is 0, as the existing service documented
("clipped 0–30") though its code let negative ages through.

In ``v1``/``v2`` the hour and day features are the same for every candidate of a request, so
they add the same amount to every score and can never change which tip wins. ``v3`` fixes this
with context × candidate interactions (d=44)::

    candidate block c = [1, overdue, age, priority, upcoming]                 (5)
    context block   z = [1, hour_sin, hour_cos, dow_sin, dow_cos,
                         weekend, morning, evening]                            (8)
    x = vec(c ⊗ z)  (c-major: all z for c=1, then all z for overdue, …)      (40)
        + one-hot(source ∈ todoist, calendar, email, other)                    (4)

where ``age`` and ``priority`` are scaled as in ``v1``, ``upcoming = clip(-age, 0, 30)/30``
(how far away a not-yet-due task's due date is), ``weekend`` is Saturday or Sunday,
``morning`` is 05:00–11:59 and ``evening`` 18:00–23:59. Sources are matched case-insensitively;
any other source counts as ``other``. The c=1 row carries the context alone: it cannot change
the ranking but lets the model explain how reward varies with time, which sharpens the rest.

``v4`` (d=64) moves the source into the candidate block — c = [1, overdue, age, priority,
upcoming, source=todoist, source=calendar, source=email] — so that it, too, interacts with the
time of day and the weekend.

>>> from oo_ml.types import Candidate, Context
>>> get_encoder("v2").encode(Context(6, 0), [Candidate("t", priority=4)]).round(3).tolist()
[[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0]]
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np

from oo_ml.compiling import compiled
from oo_ml.errors import NotFoundError, RegistryError
from oo_ml.types import BoolArray, Candidate, Context, FloatArray, IntArray

__all__ = [
    "ENCODERS",
    "SOURCES",
    "Encoder",
    "InteractionEncoder",
    "SourceInteractionEncoder",
    "V1Encoder",
    "V2Encoder",
    "get_encoder",
    "register_encoder",
    "source_code",
]

# The expressions below are written exactly as the existing service computes them so that
# v1/v2 are bit-for-bit identical to it; tables avoid recomputing them per request.
_HOUR_SIN = tuple(math.sin(2 * math.pi * h / 24) for h in range(24))
_HOUR_COS = tuple(math.cos(2 * math.pi * h / 24) for h in range(24))
_DOW_SIN = tuple(math.sin(2 * math.pi * d / 7) for d in range(7))
_DOW_COS = tuple(math.cos(2 * math.pi * d / 7) for d in range(7))


_ColumnForm = Callable[
    [IntArray, IntArray, BoolArray, FloatArray, IntArray, IntArray, int], FloatArray
]
"""An encoder's rows from columns (:meth:`Encoder.encode_columns`' and the dimension)."""


class Encoder(ABC):
    """Turns a context and k candidates into a (k, d) float64 matrix; stateless and pure."""

    name: ClassVar[str]
    labels: ClassVar[tuple[str, ...]]

    @property
    def dim(self) -> int:
        return len(self.labels)

    @abstractmethod
    def encode(self, context: Context, candidates: Sequence[Candidate]) -> FloatArray:
        """The (k, d) feature matrix, one row per candidate in the given order."""

    def encode_columns(  # noqa: PLR0917 (one array per field)
        self,
        hours: IntArray,
        days: IntArray,
        overdue: BoolArray,
        ages: FloatArray,
        priorities: IntArray,
        sources: IntArray,
    ) -> FloatArray:
        """The rows :meth:`encode` gives, bit for bit, for n candidates given as columns, each
        row with its own context: hour of day, day of week, ``is_overdue``,
        ``task_age_days``, priority (1–4) and :func:`source_code` (the source named by it).
        For many requests at once (a simulated step of every user). The published encoders
        compute it in one compiled pass (their ``_column_form``); an encoder without one encodes
        one candidate at a time."""
        columns = self._column_form()
        if columns is not None:
            return columns(hours, days, overdue, ages, priorities, sources, self.dim)
        rows = [
            self.encode(
                Context(hour, day),
                [Candidate("c", is_overdue, age, priority, SOURCES[source])],
            )
            for hour, day, is_overdue, age, priority, source in zip(
                hours.tolist(), days.tolist(), overdue.tolist(), ages.tolist(),
                priorities.tolist(), sources.tolist(), strict=True,
            )
        ]  # fmt: skip
        return np.concatenate(rows) if rows else np.zeros((0, self.dim))

    def _column_form(self) -> _ColumnForm | None:
        """The compiled column form of :meth:`encode_columns`, if the encoder has one."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


# Encoders build rows in plain floats and convert once: for the k ≤ 200 candidates of a request
# that beats column-wise numpy, whose per-call overhead dominates at this size.

_PRIORITY = tuple((p - 1.0) / 3.0 for p in range(5))  # by priority 1–4; index 0 is unused
# The same numbers as arrays, for the column encoders' kernels.
_PRIORITY_COLUMN = np.array(_PRIORITY)


@compiled
def _task_rows_into(  # noqa: PLR0917 (a kernel takes arrays, not an object)
    hours: IntArray,
    days: IntArray,
    overdue: BoolArray,
    ages: FloatArray,
    priorities: IntArray,
    tables: FloatArray,
    priority_table: FloatArray,
    out: FloatArray,
) -> None:
    """:func:`_task_rows` of each row's own context, from columns, into ``out`` (n, 5) or
    (n, 7): the day of week's sin/cos trail the row when it has room. ``tables`` are the hour
    sin and cos (rows 0 and 1, by hour) and the day sin and cos (rows 2 and 3, by day)."""
    with_days = out.shape[1] == 7
    for r in range(ages.shape[0]):
        age = ages[r]
        out[r, 0] = tables[0, hours[r]]
        out[r, 1] = tables[1, hours[r]]
        out[r, 2] = 1.0 if overdue[r] else 0.0
        if 0.0 <= age <= 30.0:
            out[r, 3] = age / 30.0
        else:
            out[r, 3] = 1.0 if age > 30.0 else 0.0
        out[r, 4] = priority_table[priorities[r]]
        if with_days:
            out[r, 5] = tables[2, days[r]]
            out[r, 6] = tables[3, days[r]]


_TABLES = np.zeros((4, 24))
_TABLES[0], _TABLES[1], _TABLES[2, :7], _TABLES[3, :7] = _HOUR_SIN, _HOUR_COS, _DOW_SIN, _DOW_COS


def _task_columns(  # noqa: PLR0917 (one array per field)
    hours: IntArray,
    days: IntArray,
    overdue: BoolArray,
    ages: FloatArray,
    priorities: IntArray,
    sources: IntArray,
    dim: int,
) -> FloatArray:
    """``v1`` (``dim`` 5) or ``v2`` (7) rows from columns (which do not see the source)."""
    out = np.empty((ages.shape[0], dim))
    _task_rows_into(hours, days, overdue, ages, priorities, _TABLES, _PRIORITY_COLUMN, out)
    return out


def _task_rows(
    candidates: Sequence[Candidate], lead: tuple[float, ...], trail: tuple[float, ...]
) -> list[float]:
    """The rows ``[*lead, is_overdue, clip(age, 0, 30)/30, (priority-1)/3, *trail]``, flat.

    The clip is written out to save two calls per candidate; it equals the service's
    ``min(max(age, 0.0), 30.0) / 30.0`` bit for bit, -0.0 included.
    """
    values: list[float] = []
    for c in candidates:
        age = c.task_age_days
        values += (
            *lead,
            1.0 if c.is_overdue else 0.0,
            age / 30.0 if 0.0 <= age <= 30.0 else float(age > 30.0),
            _PRIORITY[c.priority],
            *trail,
        )
    return values


def _matrix(values: list[float], dim: int) -> FloatArray:
    """Flat row-major values as a (k, dim) matrix."""
    return np.fromiter(values, np.float64, len(values)).reshape(-1, dim)


class V1Encoder(Encoder):
    """The existing service's d=5 encoding (policy ``linucb-v1``)."""

    name = "v1"
    labels = ("hour_sin", "hour_cos", "is_overdue", "task_age", "priority")

    def encode(self, context: Context, candidates: Sequence[Candidate]) -> FloatArray:
        hour = context.hour_of_day
        lead = (_HOUR_SIN[hour], _HOUR_COS[hour])
        return _matrix(_task_rows(candidates, lead, ()), len(self.labels))

    def _column_form(self) -> _ColumnForm:
        return _task_columns


class V2Encoder(Encoder):
    """``v1`` plus the day of week as sin/cos, d=7 (policy ``egreedy-v1``)."""

    name = "v2"
    labels = (*V1Encoder.labels, "dow_sin", "dow_cos")

    def encode(self, context: Context, candidates: Sequence[Candidate]) -> FloatArray:
        hour, dow = context.hour_of_day, context.day_of_week
        lead, trail = (_HOUR_SIN[hour], _HOUR_COS[hour]), (_DOW_SIN[dow], _DOW_COS[dow])
        return _matrix(_task_rows(candidates, lead, trail), len(self.labels))

    def _column_form(self) -> _ColumnForm:
        return _task_columns


SOURCES = ("todoist", "calendar", "email", "other")
"""The sources the encoders tell apart; any other source counts as ``other``."""
_SOURCE_CODES = {s: code for code, s in enumerate(SOURCES)}


def source_code(source: str) -> int:
    """A candidate's source as :meth:`Encoder.encode_columns` takes it: its place in
    :data:`SOURCES`, matched case-insensitively, ``other`` for any other."""
    code = _SOURCE_CODES.get(source)
    if code is None:
        code = _SOURCE_CODES.get(source.lower(), len(SOURCES) - 1)
    return code


def _interaction_terms(
    candidates: Sequence[Candidate],
    source_terms: dict[str, tuple[float, ...]],
    default: tuple[float, ...],
) -> list[float]:
    """The rows ``[1, overdue, age, priority, upcoming, *source_terms[source]]``, flat.

    ``age`` and ``upcoming`` equal ``min(max(±age, 0.0), 30.0) / 30.0`` bit for bit, -0.0 for
    age 0 included, with one comparison per clip; sources are looked up as given first, since
    they usually come in lower case already.
    """
    values: list[float] = []
    for c in candidates:
        age = c.task_age_days
        source = c.source
        if age >= 0.0:
            values += (
                1.0,
                1.0 if c.is_overdue else 0.0,
                age / 30.0 if age <= 30.0 else 1.0,
                _PRIORITY[c.priority],
                -age / 30.0 if age == 0.0 else 0.0,
            )
        else:
            values += (
                1.0,
                1.0 if c.is_overdue else 0.0,
                0.0,
                _PRIORITY[c.priority],
                -age / 30.0 if age >= -30.0 else 1.0,
            )
        values += source_terms.get(source) or source_terms.get(source.lower(), default)
    return values


_CONTEXT_LABELS = (
    "1", "hour_sin", "hour_cos", "dow_sin", "dow_cos", "weekend", "morning", "evening",
)  # fmt: skip
_CANDIDATE_LABELS = ("1", "overdue", "age", "priority", "upcoming")


@compiled
def _interactions_into(  # noqa: PLR0917 (a kernel takes arrays, not an object)
    hours: IntArray,
    days: IntArray,
    overdue: BoolArray,
    ages: FloatArray,
    priorities: IntArray,
    sources: IntArray,
    contexts: FloatArray,
    priority_table: FloatArray,
    out: FloatArray,
) -> None:
    """``v3`` (``out`` (n, 44)) or ``v4`` ((n, 64)) rows from columns, each row in its own
    context (``contexts``: every context block, by ``hour * 7 + day``).

    The candidate block c is :func:`_interaction_terms`' (``v4``: the three source terms in
    it) and ``x = vec(c ⊗ z)`` is each product ``c_a·z_b`` plus an exact +0.0, which is what
    the encoders' matrix product gives (every other term of its sums is an exact zero, and
    the bias term's +0.0 turns a -0.0 product into 0.0); ``v3``'s source one-hot follows."""
    n_z = contexts.shape[1]
    source_terms = out.shape[1] == 8 * n_z
    n_c = 8 if source_terms else 5
    c = np.empty(8)
    for r in range(ages.shape[0]):
        age = ages[r]
        c[0] = 1.0
        c[1] = 1.0 if overdue[r] else 0.0
        if age >= 0.0:
            c[2] = age / 30.0 if age <= 30.0 else 1.0
            c[4] = -age / 30.0 if age == 0.0 else 0.0
        else:
            c[2] = 0.0
            c[4] = -age / 30.0 if age >= -30.0 else 1.0
        c[3] = priority_table[priorities[r]]
        source = sources[r]
        for s in range(3):
            c[5 + s] = 1.0 if source == s else 0.0
        z = contexts[hours[r] * 7 + days[r]]
        for a in range(n_c):
            for b in range(n_z):
                out[r, a * n_z + b] = c[a] * z[b] + 0.0
        if not source_terms:
            for s in range(4):
                out[r, n_c * n_z + s] = 1.0 if source == s else 0.0


def _interaction_columns(  # noqa: PLR0917 (one array per field)
    hours: IntArray,
    days: IntArray,
    overdue: BoolArray,
    ages: FloatArray,
    priorities: IntArray,
    sources: IntArray,
    dim: int,
) -> FloatArray:
    out = np.empty((ages.shape[0], dim))
    _interactions_into(
        hours, days, overdue, ages, priorities, sources, _CONTEXT_BLOCKS, _PRIORITY_COLUMN, out
    )
    return out


def _interaction_label(c: str, z: str) -> str:
    if c == "1":
        return "bias" if z == "1" else z
    return c if z == "1" else f"{c}*{z}"


def _context_block(hour: int, dow: int) -> FloatArray:
    return np.array(
        [
            1.0,
            _HOUR_SIN[hour],
            _HOUR_COS[hour],
            _DOW_SIN[dow],
            _DOW_COS[dow],
            float(dow >= 5),
            float(5 <= hour < 12),
            float(hour >= 18),
        ]
    )


_CONTEXT_BLOCKS = np.stack([_context_block(h, d) for h in range(24) for d in range(7)])
"""Every (hour, day of week)'s context block, by ``hour * 7 + day``."""


def _expansion(z: FloatArray) -> FloatArray:
    """The (9, 44) matrix E with [c, one-hot(source)] @ E = x for the context block ``z``."""
    n_c, n_z, n_s = len(_CANDIDATE_LABELS), len(_CONTEXT_LABELS), len(SOURCES)
    e = np.zeros((n_c + n_s, n_c * n_z + n_s))
    for a in range(n_c):
        e[a, a * n_z : (a + 1) * n_z] = z
    e[n_c:, n_c * n_z :] = np.eye(n_s)
    return e


class InteractionEncoder(Encoder):
    """``v3``: context × candidate interactions plus the source one-hot, d=44 (see module doc)."""

    name = "v3"
    labels = (
        *(_interaction_label(c, z) for c in _CANDIDATE_LABELS for z in _CONTEXT_LABELS),
        *(f"source={s}" for s in SOURCES),
    )
    _ONE_HOT: ClassVar[dict[str, tuple[float, ...]]] = {
        s: tuple(float(s == t) for t in SOURCES) for s in SOURCES
    }
    # One expansion matrix per (hour, day of week), computed once. Each entry of the product is
    # one c_a·z_b (or a one-hot 1) plus exact zeros, hence that product rounded once, just as an
    # elementwise multiply gives it; the bias term adds an exact +0.0 to every column outside
    # its own block, so a -0.0 product comes out as 0.0, which logs and exports read better.
    _EXPANSIONS: ClassVar[FloatArray] = np.stack(
        [_expansion(_context_block(h, d)) for h in range(24) for d in range(7)]
    )

    def encode(self, context: Context, candidates: Sequence[Candidate]) -> FloatArray:
        values = _interaction_terms(candidates, self._ONE_HOT, self._ONE_HOT["other"])
        terms = _matrix(values, len(_CANDIDATE_LABELS) + len(SOURCES))
        x: FloatArray = terms.dot(self._EXPANSIONS[context.hour_of_day * 7 + context.day_of_week])
        return x

    def _column_form(self) -> _ColumnForm:
        return _interaction_columns


_SOURCE_TERMS = ("todoist", "calendar", "email")  # "other" is the baseline of the 1 row
_CANDIDATE_LABELS_V4 = (*_CANDIDATE_LABELS, *(f"source={s}" for s in _SOURCE_TERMS))


def _kron_expansion(z: FloatArray, n_c: int) -> FloatArray:
    """The (n_c, n_c·len(z)) matrix E with c @ E = vec(c ⊗ z), c-major."""
    e = np.zeros((n_c, n_c * z.shape[0]))
    for a in range(n_c):
        e[a, a * z.shape[0] : (a + 1) * z.shape[0]] = z
    return e


class SourceInteractionEncoder(Encoder):
    """``v4``: ``v3`` with the source inside the interactions, d=64.

    candidate block c = [1, overdue, age, priority, upcoming, source=todoist, source=calendar,
    source=email] (any other source is the baseline) times the same context block z as ``v3``,
    x = vec(c ⊗ z). What ``v3`` cannot say and people do: "email on weekdays, never at the
    weekend", "calendar prep in the morning".
    """

    name = "v4"
    labels = tuple(_interaction_label(c, z) for c in _CANDIDATE_LABELS_V4 for z in _CONTEXT_LABELS)
    _SOURCE_ROWS: ClassVar[dict[str, tuple[float, ...]]] = {
        s: tuple(float(s == t) for t in _SOURCE_TERMS) for s in _SOURCE_TERMS
    }
    _NO_SOURCE = (0.0,) * len(_SOURCE_TERMS)
    # As in v3, each entry of the product is a single c_a·z_b plus exact zeros (so -0.0 → 0.0).
    _EXPANSIONS: ClassVar[FloatArray] = np.stack(
        [
            _kron_expansion(_context_block(h, d), len(_CANDIDATE_LABELS_V4))
            for h in range(24)
            for d in range(7)
        ]
    )

    def encode(self, context: Context, candidates: Sequence[Candidate]) -> FloatArray:
        values = _interaction_terms(candidates, self._SOURCE_ROWS, self._NO_SOURCE)
        terms = _matrix(values, len(_CANDIDATE_LABELS_V4))
        x: FloatArray = terms.dot(self._EXPANSIONS[context.hour_of_day * 7 + context.day_of_week])
        return x

    def _column_form(self) -> _ColumnForm:
        return _interaction_columns


ENCODERS: dict[str, Encoder] = {}
"""Every published encoder by name. Names are never reused for a different layout."""


def register_encoder(encoder: Encoder) -> Encoder:
    """Publish ``encoder`` under its name; refuses a name that is taken."""
    if encoder.name in ENCODERS:
        raise RegistryError(f"encoder {encoder.name!r} is already registered")
    ENCODERS[encoder.name] = encoder
    return encoder


def get_encoder(name: str) -> Encoder:
    """The encoder published as ``name``."""
    try:
        return ENCODERS[name]
    except KeyError:
        known = ", ".join(sorted(ENCODERS))
        raise NotFoundError(f"unknown encoder {name!r}; known: {known}") from None


for _encoder in (V1Encoder(), V2Encoder(), InteractionEncoder(), SourceInteractionEncoder()):
    register_encoder(_encoder)
