"""Synthetic task streams: a realistic, evolving pool of tasks per simulated user.

Each user starts with a pool drawn from per-category templates. Priorities follow Todoist's
skew (most tasks are p1); due dates spread from far in the future to well overdue; tasks come
from several sources. Between two tips the clock moves on, so tasks age and become overdue;
a task marked done leaves the pool, and new ones arrive at random.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba.typed import List as TypedList

from oo_ml.compiling import compiled
from oo_ml.errors import ValidationError
from oo_ml.features import source_code
from oo_ml.types import (
    MAX_TASK_AGE_DAYS,
    BoolArray,
    Candidate,
    Context,
    FloatArray,
    IntArray,
    checked_candidate,
    shared_context,
)

__all__ = [
    "AWAKE",
    "MIN_AWAKE_HOURS",
    "TEMPLATES",
    "TEMPLATE_SOURCES",
    "Pools",
    "SimTask",
    "TaskStream",
    "awake_problem",
    "hours_span",
    "in_hours",
]

AWAKE = (7, 22)
"""The hours a simulated user asks for tips when its persona does not say: 07:00 to 22:59."""
MIN_AWAKE_HOURS = 3
"""The fewest waking hours a simulated user may have: its first request of a day comes 0 to 2
hours after it wakes up."""

# (source, category) → task texts. Sources match the v3 encoder's one-hot.
TEMPLATES: dict[tuple[str, str], tuple[str, ...]] = {
    ("todoist", "work"): (
        "Draft the quarterly report",
        "Review Sam's pull request",
        "Prepare slides for Monday's sync",
        "Update the project roadmap",
        "Write the onboarding checklist",
    ),
    ("todoist", "home"): (
        "Clean out the fridge",
        "Fix the leaking tap",
        "Sort the laundry",
        "Water the plants",
        "Plan meals for the week",
    ),
    ("todoist", "errand"): (
        "Buy birthday present for Alex",
        "Pick up dry cleaning",
        "Return the library books",
        "Renew the passport",
    ),
    ("todoist", "health"): (
        "Book a dentist appointment",
        "Go for a 30-minute run",
        "Refill the prescription",
    ),
    ("email", "admin"): (
        "Reply to the landlord about the lease",
        "Answer the accountant's questions",
        "Send the invoice to the client",
        "Follow up with the recruiter",
    ),
    ("calendar", "prep"): (
        "Prepare for the 1:1 with your manager",
        "Read the agenda before the board meeting",
        "Confirm the dinner reservation",
    ),
}
_KEYS = tuple(TEMPLATES)
TEMPLATE_SOURCES = tuple(source for source, _ in _KEYS)
"""The source of each template, by its number in :data:`TEMPLATES`' order."""
_TEMPLATE_SOURCE_CODES = np.array([source_code(s) for s in TEMPLATE_SOURCES], dtype=np.int64)
"""Each template's source as the encoders' columns take it (:func:`source_code`)."""
_CATEGORIES = tuple(category for _, category in _KEYS)
# As the kernels read them (numba freezes global arrays into the code).
_KEY_CUMULATIVE = np.array(list(itertools.accumulate((0.3, 0.2, 0.12, 0.08, 0.18, 0.12))))
_PRIORITY_CUMULATIVE = np.array(list(itertools.accumulate((0.55, 0.25, 0.13, 0.07))))  # Todoist's
_TEXT_COUNTS = np.array([len(TEMPLATES[key]) for key in _KEYS], dtype=np.int64)


@dataclass(frozen=True, slots=True)
class SimTask:
    """A task in a simulated user's pool, as seen at one moment.

    ``due_in_days`` < 0 means overdue by that much.
    """

    id: str
    content: str
    category: str
    source: str
    priority: int
    due_in_days: float

    @property
    def is_overdue(self) -> bool:
        return self.due_in_days < 0

    @property
    def age_days(self) -> float:
        """Days since the due date (the service's ``task_age_days``)."""
        return -self.due_in_days

    def candidate(self) -> Candidate:
        return Candidate(
            self.id, self.is_overdue, round(self.age_days, 3), self.priority, self.source
        )


@compiled
def _pick(cumulative: FloatArray, u: float) -> int:
    """The index ``u`` (in [0, 1)) falls on in a cumulative table of weights: how many of its
    entries are at most ``u`` times the total (bisection's right insertion point), at most
    the last index."""
    x = u * cumulative[-1]
    n = cumulative.shape[0]
    i = 0
    while i < n and cumulative[i] <= x:
        i += 1
    return int(min(i, n - 1))


@compiled
def _arrive(  # noqa: PLR0917 (a kernel takes arrays, not an object)
    rng: Any, m: int, now: float, next_id: Any, count: Any, pool: Any, due_at: Any
) -> None:
    """A new task at the end of member ``m``'s pool, drawn from its generator: five uniforms
    for the template, its text, the priority, whether it is already overdue, and the due date
    (a third overdue, exponential with a mean of 6 days; the rest due within two weeks)."""
    u_key, u_text, u_priority, u_late, u_due = (
        rng.random(), rng.random(), rng.random(), rng.random(), rng.random()
    )  # fmt: skip
    key = _pick(_KEY_CUMULATIVE, u_key)
    texts = _TEXT_COUNTS[key]
    next_id[m] += 1
    due = math.log1p(-u_due) * 6.0 if u_late < 0.35 else u_due * 14.0
    slot = count[m]
    pool[m, slot, 0] = next_id[m]
    pool[m, slot, 1] = key
    pool[m, slot, 2] = min(int(u_text * texts), texts - 1)
    pool[m, slot, 3] = _pick(_PRIORITY_CUMULATIVE, u_priority) + 1
    due_at[m, slot] = now + due
    count[m] = slot + 1


@compiled
def _fill(  # noqa: PLR0917 (a kernel takes arrays, not an object)
    rngs: Any, size: int, day: Any, hour: Any, next_id: Any, count: Any, pool: Any, due_at: Any
) -> None:
    """Every member's first ``size`` tasks."""
    for m in range(len(rngs)):
        now = day[m] + hour[m] / 24.0
        for _ in range(size):
            _arrive(rngs[m], m, now, next_id, count, pool, due_at)


@compiled
def _complete_each(  # noqa: PLR0917 (a kernel takes arrays, not an object)
    count: Any, pool: Any, due_at: FloatArray, version: Any, members: Any, indices: Any
) -> int:
    """Task ``indices[k]`` of member ``members[k]`` leaves its pool, for each ``k`` in turn,
    the others keeping their order; returns how many left before the first pair naming no
    task (all of them, if none does)."""
    for k in range(members.shape[0]):
        m, index = members[k], indices[k]
        if not 0 <= m < count.shape[0] or not 0 <= index < count[m]:
            return k
        n = count[m]
        for i in range(index, n - 1):
            pool[m, i] = pool[m, i + 1]
            due_at[m, i] = due_at[m, i + 1]
        count[m] = n - 1
        version[m] += 1
    return int(members.shape[0])


@compiled
def _advance(  # noqa: PLR0917 (a kernel takes arrays, not an object)
    rngs: Any,
    target: int,
    day: Any,
    hour: Any,
    wake: Any,
    span: Any,
    next_id: Any,
    count: Any,
    pool: Any,
    due_at: Any,
    version: Any,
) -> None:
    """Every member's clock to its next tip request: 3 to 8 hours later if that is still
    within its waking hours (``span`` hours from ``wake``, perhaps past midnight), else 0 to 2
    hours after it wakes up next. Then the arrivals: Poisson(0.6), plus enough to bring a
    pool back to 4 tasks, none beyond twice the target size."""
    for m in range(len(rngs)):
        rng = rngs[m]
        awake_for = (hour[m] - wake[m]) % 24  # hours since it woke up
        woke_on = day[m] - (wake[m] + awake_for) // 24  # the day it woke up
        later = awake_for + rng.integers(3, 9)
        if later < span[m]:
            awake_for = later
        else:  # the next request comes after a night's sleep
            awake_for = rng.integers(0, 3)
            woke_on += 1
        day[m] = woke_on + (wake[m] + awake_for) // 24
        hour[m] = (wake[m] + awake_for) % 24
        arrivals = rng.poisson(0.6) + max(0, 4 - count[m])
        now = day[m] + hour[m] / 24.0
        for _ in range(arrivals):
            if count[m] < 2 * target:
                _arrive(rng, m, now, next_id, count, pool, due_at)
        if arrivals > 0:
            version[m] += 1


def hours_span(hours: tuple[int, int]) -> int:
    """How many hours ``(first, last)`` covers, both included (``(18, 3)`` spans midnight:
    10 hours)."""
    return (hours[1] - hours[0]) % 24 + 1


def in_hours(hours: tuple[int, int], hour: int) -> bool:
    """Whether ``hour`` is one of ``(first, last)``'s, both included (``(22, 2)``: 22, 23,
    0, 1 and 2)."""
    return (hour - hours[0]) % 24 < hours_span(hours)


def awake_problem(awake: tuple[int, int]) -> str | None:
    """What is wrong with ``awake`` as a simulated user's waking hours, or ``None``."""
    first, last = awake
    if not (0 <= first <= 23 and 0 <= last <= 23):
        return f"{list(awake)} must be two hours of 0 … 23"
    if hours_span(awake) < MIN_AWAKE_HOURS:
        return (
            f"{list(awake)} covers {hours_span(awake)} hour(s); at least {MIN_AWAKE_HOURS} are"
            " needed (the first tip of a day comes up to 2 hours after waking)"
        )
    return None


@compiled
def _round_3_into(values: FloatArray, out: FloatArray, unsure: Any) -> int:
    """``rint(1000·v) / 1000`` of every value into ``out``. The indices of the values for which
    that may not be Python's ``round(v, 3)`` go to the start of ``unsure``, and their number is
    returned: 1000·v, rounded to a double, lies within a few units in the last place of a
    half-way point, so that its rounding may have moved it across one."""
    count = 0
    for i in range(values.shape[0]):
        scaled = values[i] * 1000.0
        whole = np.rint(scaled)
        out[i] = whole / 1000.0
        ulp = math.ldexp(1.0, math.frexp(scaled)[1] - 53)
        if abs(abs(scaled - whole) - 0.5) <= 4.0 * ulp:
            unsure[count] = i
            count += 1
    return count


def round_3(values: FloatArray) -> FloatArray:
    """Python's ``round(v, 3)`` of every value, bit for bit (numpy's ``round`` differs in the
    last bit): ``rint(1000·v) / 1000``, the division rounding once to the nearest double as
    Python's does, wherever 1000·v, rounded to a double, is far enough from a half-way point
    that its rounding cannot have moved it across one; Python's own ``round`` for the rest."""
    rounded = np.empty(values.shape[0])
    unsure = np.empty(values.shape[0], dtype=np.int64)
    _round_3_unsure(values, rounded, unsure, _round_3_into(values, rounded, unsure))
    return rounded


def _round_3_unsure(values: FloatArray, rounded: FloatArray, unsure: Any, count: int) -> None:
    """Python's own ``round(v, 3)`` into ``rounded`` for the first ``count`` indices of
    ``unsure`` (those :func:`_round_3_into` is unsure of)."""
    for i in unsure[:count].tolist():
        rounded[i] = round(float(values[i]), 3)


@compiled
def _flatten(  # noqa: PLR0917 (a kernel takes arrays, not an object)
    count: Any,
    pool: Any,
    due_dates: FloatArray,
    day: Any,
    hour: Any,
    source_codes: Any,
    ints: Any,
    floats: FloatArray,
    clocks: FloatArray,
    unsure: Any,
) -> int:
    """Every member's pool and clock laid out for :meth:`Pools.flat`, :meth:`Pools.due` and
    :meth:`Pools.candidate_columns`, member after member, tasks in order, in one pass: into
    ``ints`` (rows: priority, template, hour, day of week, overdue, source code), ``floats``
    (rows: due date, days until due, age as ``-due``, the age rounded as :func:`round_3`
    rounds it) and ``clocks``; the ages :func:`_round_3_into` is unsure of go to ``unsure``,
    and their number is returned. Clocks and days until due are numpy's ``day + hour / 24``
    and ``due_at - clock``, term for term."""
    t = 0
    for m in range(count.shape[0]):
        clock = day[m] + hour[m] / 24.0
        clocks[m] = clock
        for i in range(count[m]):
            template = pool[m, i, 1]
            due = due_dates[m, i] - clock
            ints[0, t] = pool[m, i, 3]
            ints[1, t] = template
            ints[2, t] = hour[m]
            ints[3, t] = day[m] % 7
            ints[4, t] = 1 if due < 0.0 else 0
            ints[5, t] = source_codes[template]
            floats[0, t] = due_dates[m, i]
            floats[1, t] = due
            floats[2, t] = -due
            t += 1
    return _round_3_into(floats[2], floats[3], unsure)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Every member's pool and clock laid out at once (:meth:`Pools._laid_out`): read-only
    arrays, member after member, tasks in order."""

    flat: tuple[Any, Any, Any, FloatArray, FloatArray]
    """:meth:`Pools.flat`."""
    due: FloatArray
    """:meth:`Pools.due`."""
    columns: IntArray
    """Rows: hour of day, day of week, overdue (0 or 1), source code."""
    overdue: BoolArray
    ages: FloatArray
    """Ages in days rounded to 3 decimals, as a candidate has them."""
    starts: list[int]
    """Where each member's tasks start."""


class Pools:
    """The task pools and clocks of many simulated users (*members*) at once, as arrays.

    Member ``m``'s tasks are drawn from its own generator, seeded ``seeds[m]``, so they do not
    depend on which other members share the pools: a :class:`TaskStream` is a pool of one.
    Moving every clock on, with the arrivals, is one compiled call (:meth:`advance`, numba
    drawing from numpy's own generators, so the numbers are numpy's); what the service and the
    judge see of a member (its context, candidates and tasks) is built for that member on
    demand and kept until its pool or clock changes.
    """

    def __init__(
        self,
        seeds: Sequence[int],
        labels: Sequence[str],
        pool_size: int = 10,
        start_day: int = 0,
        awake: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        if len(seeds) != len(labels):
            raise ValueError("one label per seed")
        windows = [AWAKE] * len(seeds) if awake is None else list(awake)
        if len(windows) != len(seeds):
            raise ValueError("one waking window per seed")
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        for label in set(labels):  # a label that makes a bad task id is refused here
            Candidate(f"{label}-t{10**9}", False, 0.0, 1, "todoist")
        members = len(seeds)
        self.labels = tuple(labels)
        self.target = pool_size
        # The generators are kept here as well: the typed list holds their states, not them.
        self._generators = [np.random.default_rng(seed) for seed in seeds]
        self._rngs = TypedList(self._generators)
        self.day = np.full(members, start_day, dtype=np.int64)
        self.wake = np.zeros(members, dtype=np.int64)
        self.span = np.zeros(members, dtype=np.int64)
        """Member ``m`` asks for tips from ``wake[m]`` o'clock for ``span[m]`` hours."""
        for m, window in enumerate(windows):
            self.set_awake(m, window)
        self.hour = self.wake.copy()  # every stream starts as its member wakes up
        self.version = np.zeros(members, dtype=np.int64)
        """Goes up by one each time a member's task arrives or leaves: views of a pool that do
        not depend on the clock (:meth:`pool_fields`) are kept until it changes."""
        self._next_id = np.zeros(members, dtype=np.int64)
        self.count = np.zeros(members, dtype=np.int64)
        self._pool = np.zeros((members, 2 * pool_size, 4), dtype=np.int64)
        """Per member and slot: (task number, template, text, priority)."""
        self._due_at = np.zeros((members, 2 * pool_size))
        """Due dates on the member's clock (days since the start)."""
        if members:
            _fill(
                self._rngs, pool_size, self.day, self.hour, self._next_id, self.count, self._pool,
                self._due_at,
            )  # fmt: skip
        # Per member: (pool version, the view of the pool then), for the two views kept until
        # the pool changes (pool_fields, static_columns).
        self._fields: list[tuple[int, tuple[list[str], list[float], list[int], list[str]]] | None]
        self._fields = [None] * members
        self._static: list[tuple[int, tuple[FloatArray, FloatArray, tuple[str, ...]]] | None]
        self._static = [None] * members
        self._moments: list[tuple[int, int, int, Context, list[Candidate] | None] | None]
        self._moments = [None] * members
        """Per member: (day, hour, pool version, context, candidates or None until asked)."""
        self._layout: _Layout | None = None
        self._contexts: list[Context] | None = None
        self._lists: tuple[list[int], list[bool], list[float]] | None = None
        """:meth:`_laid_out`, :meth:`contexts` and :meth:`_clock_lists` until a pool or a clock
        changes."""

    def __len__(self) -> int:
        return len(self.labels)

    def set_awake(self, m: int, awake: tuple[int, int]) -> None:
        """Member ``m`` asks for tips from hour ``awake[0]`` to hour ``awake[1]`` (both
        included; ``(18, 3)`` spans midnight) from its next request on."""
        problem = awake_problem(awake)
        if problem is not None:
            raise ValueError(f"waking hours {problem}")
        self.wake[m], self.span[m] = awake[0], hours_span(awake)

    def now_days(self, m: int) -> float:
        """Member ``m``'s clock, in days since its stream started."""
        return int(self.day[m]) + int(self.hour[m]) / 24.0

    def moved(self, m: int) -> None:
        """Forget member ``m``'s views of its clock (after its day or hour was set directly)."""
        self._moments[m] = None
        self._changed()

    def _changed(self) -> None:
        """A pool or a clock changed: the views of every pool at once are out of date."""
        self._layout = None
        self._contexts = None
        self._lists = None

    def _moment(self, m: int) -> tuple[int, int, int, Context, list[Candidate] | None]:
        day, hour, version = int(self.day[m]), int(self.hour[m]), int(self.version[m])
        moment = self._moments[m]
        if moment is None or moment[:3] != (day, hour, version):
            context = shared_context(hour, day % 7)
            moment = self._moments[m] = (day, hour, version, context, None)
        return moment

    def context(self, m: int) -> Context:
        return self._moment(m)[3]

    def pool_fields(self, m: int) -> tuple[list[str], list[float], list[int], list[str]]:
        """(ids, due dates on the clock, priorities, sources) of member ``m``'s pool: the same
        lists until its :attr:`version` changes. Read-only."""
        version = int(self.version[m])
        kept = self._fields[m]
        if kept is not None and kept[0] == version:
            return kept[1]
        n = int(self.count[m])
        numbers, keys, _, priorities = self._pool[m, :n].T.tolist()
        label = self.labels[m]
        fields = (
            [f"{label}-t{number}" for number in numbers],
            self._due_at[m, :n].tolist(),
            priorities,
            [TEMPLATE_SOURCES[key] for key in keys],
        )
        self._fields[m] = (version, fields)
        return fields

    def static_columns(self, m: int) -> tuple[FloatArray, FloatArray, tuple[str, ...]]:
        """(priorities, due dates on the clock, sources) of member ``m``'s pool, as arrays: the
        same objects until its :attr:`version` changes. Read-only."""
        version = int(self.version[m])
        kept = self._static[m]
        if kept is not None and kept[0] == version:
            return kept[1]
        _, due_dates, priority_list, source_list = self.pool_fields(m)
        priorities = np.array(priority_list, dtype=np.float64)
        due_at = np.array(due_dates, dtype=np.float64)
        priorities.setflags(write=False)
        due_at.setflags(write=False)
        static = (priorities, due_at, tuple(source_list))
        self._static[m] = (version, static)
        return static

    def candidates(self, m: int) -> list[Candidate]:
        """Member ``m``'s pool as the service sees it (``SimTask.candidate`` of each task)."""
        day, hour, version, context, found = self._moment(m)
        if found is not None:
            return found
        ids, _, priorities, sources = self.pool_fields(m)
        starts, overdue, all_ages = self._clock_lists()
        start = starts[m]
        ages = all_ages[start : start + len(ids)]
        # A task's id, priority and source are valid by construction (the label was checked
        # when the pools were made); only the age moves, checked here against its bound.
        build = (
            checked_candidate
            if ages and min(ages) >= -MAX_TASK_AGE_DAYS and max(ages) <= MAX_TASK_AGE_DAYS
            else Candidate  # out of range: Candidate refuses it, as it should
        )
        found = list(map(build, ids, overdue[start : start + len(ids)], ages, priorities, sources))
        self._moments[m] = (day, hour, version, context, found)
        return found

    def _clock_lists(self) -> tuple[list[int], list[bool], list[float]]:
        """Where each member's tasks start in :meth:`flat`, and every task's overdue flag and
        age (rounded to 3 decimals, as a candidate has it) now, as lists; kept as :meth:`flat`
        is."""
        found = self._lists
        if found is None:
            layout = self._laid_out()
            found = self._lists = (layout.starts, layout.overdue.tolist(), layout.ages.tolist())
        return found

    def flat(self) -> tuple[Any, Any, Any, FloatArray, FloatArray]:
        """Every member's pool, member after member, tasks in order: (tasks per member, their
        priorities, their templates' numbers in :data:`TEMPLATES`, their due dates, each
        member's clock). Read-only arrays, the same until a pool or a clock changes."""
        return self._laid_out().flat

    def starts(self) -> list[int]:
        """Where each member's tasks start in :meth:`flat`; kept as it is. Read-only."""
        return self._laid_out().starts

    def _laid_out(self) -> _Layout:
        """Every member's pool and clock laid out, from one compiled pass (:func:`_flatten`);
        kept until a pool or a clock changes."""
        found = self._layout
        if found is None:
            count = self.count.copy()
            total = int(count.sum())
            ints = np.empty((6, total), dtype=np.int64)
            floats = np.empty((4, total))
            clocks = np.empty(len(count))
            unsure = np.empty(total, dtype=np.int64)
            n = _flatten(
                count, self._pool, self._due_at, self.day, self.hour, _TEMPLATE_SOURCE_CODES,
                ints, floats, clocks, unsure,
            )  # fmt: skip
            _round_3_unsure(floats[2], floats[3], unsure, n)  # as round_3 does
            overdue = ints[4].astype(np.bool_)
            for array in (ints, floats, count, clocks, overdue):
                array.setflags(write=False)
            counts = count.tolist()
            found = self._layout = _Layout(
                flat=(count, ints[0], ints[1], floats[0], clocks),
                due=floats[1],
                columns=ints[2:],
                overdue=overdue,
                ages=floats[3],
                starts=[0, *itertools.accumulate(counts[:-1])] if counts else [],
            )
        return found

    def candidate_columns(
        self,
    ) -> tuple[IntArray, IntArray, BoolArray, FloatArray, IntArray, IntArray]:
        """Every member's candidates now, member after member, as
        :meth:`~oo_ml.features.Encoder.encode_columns` takes them: (hour of day, day of week,
        overdue, age in days rounded as :meth:`candidates` rounds it, priority, source code).
        Refused as :meth:`candidates` refuses them if an age is out of range."""
        layout = self._laid_out()
        columns, ages = layout.columns, layout.ages
        if ages.size and not (ages.min() >= -MAX_TASK_AGE_DAYS and ages.max() <= MAX_TASK_AGE_DAYS):
            raise ValidationError("task_age_days", f"must be within ±{MAX_TASK_AGE_DAYS:g}")
        return columns[0], columns[1], layout.overdue, ages, layout.flat[1], columns[3]

    def contexts(self) -> list[Context]:
        """Every member's :meth:`context`, kept as :meth:`flat` is."""
        found = self._contexts
        if found is None:
            found = self._contexts = list(
                map(shared_context, self.hour.tolist(), (self.day % 7).tolist())
            )
        return found

    def due(self) -> FloatArray:
        """Days until each task of :meth:`flat` is due (negative: overdue), now. Read-only,
        kept as :meth:`flat` is."""
        return self._laid_out().due

    def task_id(self, m: int, index: int) -> str:
        """The id of task ``index`` of member ``m``'s pool."""
        return f"{self.labels[m]}-t{int(self._pool[m, index, 0])}"

    def task_at(self, m: int, index: int) -> SimTask:
        """Task ``index`` of member ``m``'s pool as it stands now."""
        _, key, text, priority = self._pool[m, index].tolist()
        return SimTask(
            self.task_id(m, index), TEMPLATES[_KEYS[key]][text], _CATEGORIES[key],
            TEMPLATE_SOURCES[key], priority, float(self._due_at[m, index]) - self.now_days(m),
        )  # fmt: skip

    def tasks(self, m: int) -> list[SimTask]:
        return [self.task_at(m, i) for i in range(int(self.count[m]))]

    def complete(self, m: int, index: int) -> None:
        """Task ``index`` of member ``m`` is done: it leaves the pool, the others keep their
        order."""
        self.complete_each([m], [index])

    def complete_each(self, members: Sequence[int], indices: Sequence[int]) -> None:
        """:meth:`complete` of task ``indices[k]`` of member ``members[k]``, for each ``k`` in
        turn, in one compiled call."""
        if len(members) != len(indices):
            raise ValueError("one index per member")
        if not members:
            return
        chosen = np.array(members, dtype=np.int64)
        done = _complete_each(
            self.count, self._pool, self._due_at, self.version, chosen,
            np.array(indices, dtype=np.int64),
        )  # fmt: skip
        if done:
            self._changed()
        if done < len(members):
            m = members[done]
            if not 0 <= m < len(self.labels):
                raise IndexError(f"no member {m}")
            raise IndexError(f"member {m} has no task {indices[done]}")

    def advance(self) -> None:
        """Move every member's clock to its next tip request; let new tasks arrive."""
        _advance(
            self._rngs, self.target, self.day, self.hour, self.wake, self.span, self._next_id,
            self.count, self._pool, self._due_at, self.version,
        )  # fmt: skip
        self._changed()


class TaskStream:
    """One user's tasks and clock (a :class:`Pools` of one). ``advance`` moves time to the
    next tip request.

    Tip requests happen during waking hours (``awake``, by default 07:00–22:59): the first 0
    to 2 hours after waking, the next 3 to 8 hours after the last while still awake, so one
    simulated step is on average about a third of a day.
    """

    def __init__(
        self,
        seed: int,
        user: str,
        pool_size: int = 10,
        start_day: int = 0,
        awake: tuple[int, int] = AWAKE,
    ) -> None:
        self._pools = Pools([seed], [user], pool_size, start_day, [awake])

    @property
    def day(self) -> int:
        return int(self._pools.day[0])

    @day.setter
    def day(self, value: int) -> None:
        self._pools.day[0] = value
        self._pools.moved(0)

    @property
    def hour(self) -> int:
        return int(self._pools.hour[0])

    @property
    def version(self) -> int:
        """Goes up by one each time a task arrives or leaves."""
        return int(self._pools.version[0])

    @property
    def now_days(self) -> float:
        """The clock, in days since the stream started."""
        return self._pools.now_days(0)

    @property
    def context(self) -> Context:
        return self._pools.context(0)

    @property
    def tasks(self) -> list[SimTask]:
        """The pool as it stands now."""
        return self._pools.tasks(0)

    def task_at(self, index: int) -> SimTask:
        return self._pools.task_at(0, index)

    def task(self, task_id: str) -> SimTask:
        return next(t for t in self.tasks if t.id == task_id)

    def candidates(self) -> list[Candidate]:
        """The pool as the service sees it (``SimTask.candidate`` of each task)."""
        return self._pools.candidates(0)

    def pool_fields(self) -> tuple[list[str], list[float], list[int], list[str]]:
        """(ids, due dates on the stream's clock, priorities, sources) of the pool: the same
        lists until :attr:`version` changes. Read-only."""
        return self._pools.pool_fields(0)

    def static_columns(self) -> tuple[FloatArray, FloatArray, tuple[str, ...]]:
        """(priorities, due dates in days on the stream's clock, sources) of the pool: the
        same objects until :attr:`version` changes. Read-only."""
        return self._pools.static_columns(0)

    def columns(self) -> tuple[FloatArray, FloatArray, tuple[str, ...]]:
        """(priorities, due_in_days, sources) of the pool as it stands now, as arrays."""
        priorities, due_at, sources = self.static_columns()
        return priorities, due_at - self.now_days, sources

    def complete(self, task_id: str) -> None:
        ids = self.pool_fields()[0]
        if task_id in ids:
            self._pools.complete(0, ids.index(task_id))

    def advance(self) -> None:
        """Move the clock to the next tip request; let new tasks arrive."""
        self._pools.advance()
