"""Synthetic task streams: a realistic, evolving pool of tasks per simulated user.

Each user starts with a pool drawn from per-category templates. Priorities follow Todoist's
skew (most tasks are p1); due dates spread from far in the future to well overdue; tasks come
from several sources. Between two tips the clock moves on, so tasks age and become overdue;
a task marked done leaves the pool, and new ones arrive at random.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass

import numpy as np

from oo_ml.types import (
    MAX_TASK_AGE_DAYS,
    Candidate,
    Context,
    FloatArray,
    checked_candidate,
    shared_context,
)

__all__ = ["TEMPLATES", "SimTask", "TaskStream"]

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
_KEY_CUMULATIVE = tuple(itertools.accumulate((0.3, 0.2, 0.12, 0.08, 0.18, 0.12)))
_PRIORITY_CUMULATIVE = tuple(itertools.accumulate((0.55, 0.25, 0.13, 0.07)))  # Todoist's skew


def _pick(cumulative: tuple[float, ...], u: float) -> int:
    return min(bisect.bisect_right(cumulative, u * cumulative[-1]), len(cumulative) - 1)


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


@dataclass(frozen=True, slots=True)
class _Entry:
    """A task in the pool with its due date on the stream's clock (days since the start)."""

    id: str
    content: str
    category: str
    source: str
    priority: int
    due_at: float


class TaskStream:
    """One user's tasks and clock. ``advance`` moves time to the next tip request.

    Tip requests happen during waking hours (07:00–22:59), 1 to 4 per day, so one simulated
    step is on average about a third of a day.
    """

    def __init__(self, seed: int, user: str, pool_size: int = 10, start_day: int = 0) -> None:
        self._rng = np.random.default_rng(seed)
        self._user = user
        self._next_id = 0
        self.day = start_day
        self.hour = 7
        self._pool: list[_Entry] = []
        self._target = pool_size
        for _ in range(pool_size):
            self._pool.append(self._new_task())
        self.version = 0
        """Goes up by one each time a task arrives or leaves: views of the pool that do not
        depend on the clock (:meth:`static_columns`) can be kept until it changes."""
        # Views of the pool as it stands now, each built on first use after a change: a
        # simulated step needs the candidates, the columns and one task, not the whole list.
        self._tasks: list[SimTask] | None = None
        self._candidates: list[Candidate] | None = None
        self._columns: tuple[FloatArray, FloatArray, tuple[str, ...]] | None = None
        self._context: Context | None = None
        self._static: tuple[FloatArray, FloatArray, tuple[str, ...]] | None = None
        self._fields: tuple[list[str], list[float], list[int], list[str]] | None = None

    @property
    def now_days(self) -> float:
        """The clock, in days since the stream started."""
        return self.day + self.hour / 24.0

    def _new_task(self) -> _Entry:
        u_key, u_text, u_priority, u_late, u_due = self._rng.random(5).tolist()
        source, category = _KEYS[_pick(_KEY_CUMULATIVE, u_key)]
        texts = TEMPLATES[(source, category)]
        self._next_id += 1
        # Due dates: a third overdue (exponential, mean 6 days), the rest due within two weeks.
        due = math.log1p(-u_due) * 6.0 if u_late < 0.35 else u_due * 14.0
        entry = _Entry(
            id=f"{self._user}-t{self._next_id}",
            content=texts[min(int(u_text * len(texts)), len(texts) - 1)],
            category=category,
            source=source,
            priority=_pick(_PRIORITY_CUMULATIVE, u_priority) + 1,
            due_at=self.now_days + due,
        )
        Candidate(entry.id, False, 0.0, entry.priority, entry.source)  # refuses a bad id here
        return entry

    def _moved(self, pool_changed: bool) -> None:
        self._tasks = self._candidates = self._columns = None
        self._context = None
        if pool_changed:
            self._static = self._fields = None
            self.version += 1

    def pool_fields(self) -> tuple[list[str], list[float], list[int], list[str]]:
        """(ids, due dates on the stream's clock, priorities, sources) of the pool: the same
        lists until :attr:`version` changes. Read-only."""
        if self._fields is None:
            pool = self._pool
            self._fields = (
                [e.id for e in pool],
                [e.due_at for e in pool],
                [e.priority for e in pool],
                [e.source for e in pool],
            )
        return self._fields

    def _task(self, entry: _Entry, now: float) -> SimTask:
        return SimTask(
            entry.id, entry.content, entry.category, entry.source, entry.priority,
            entry.due_at - now,
        )  # fmt: skip

    @property
    def tasks(self) -> list[SimTask]:
        """The pool as it stands now."""
        if self._tasks is None:
            now = self.now_days
            self._tasks = [self._task(e, now) for e in self._pool]
        return self._tasks

    def task_at(self, index: int) -> SimTask:
        """``tasks[index]`` without building the others."""
        if self._tasks is not None:
            return self._tasks[index]
        return self._task(self._pool[index], self.now_days)

    @property
    def context(self) -> Context:
        if self._context is None:
            self._context = shared_context(self.hour, self.day % 7)
        return self._context

    def candidates(self) -> list[Candidate]:
        """The pool as the service sees it (``SimTask.candidate`` of each task)."""
        if self._candidates is None:
            now = self.now_days
            ids, due_at, priorities, sources = self.pool_fields()
            due = [d - now for d in due_at]
            ages = [round(-d, 3) for d in due]
            # A task's id, priority and source passed Candidate's checks when it arrived
            # (_new_task); only the age moves, and it is checked here against the same bound.
            build = (
                checked_candidate
                if ages and min(ages) >= -MAX_TASK_AGE_DAYS and max(ages) <= MAX_TASK_AGE_DAYS
                else Candidate  # out of range: Candidate refuses it, as it should
            )
            self._candidates = list(
                map(build, ids, [d < 0 for d in due], ages, priorities, sources)
            )
        return self._candidates

    def columns(self) -> tuple[FloatArray, FloatArray, tuple[str, ...]]:
        """(priorities, due_in_days, sources) of the pool as it stands now, as arrays."""
        if self._columns is None:
            priorities, due_at, sources = self.static_columns()
            self._columns = (priorities, due_at - self.now_days, sources)
        return self._columns

    def static_columns(self) -> tuple[FloatArray, FloatArray, tuple[str, ...]]:
        """(priorities, due dates in days on the stream's clock, sources) of the pool: the
        same objects until :attr:`version` changes. Read-only."""
        if self._static is None:
            _, due_dates, priority_list, source_list = self.pool_fields()
            priorities = np.array(priority_list, dtype=np.float64)
            due_at = np.array(due_dates, dtype=np.float64)
            priorities.setflags(write=False)
            due_at.setflags(write=False)
            self._static = (priorities, due_at, tuple(source_list))
        return self._static

    def task(self, task_id: str) -> SimTask:
        return next(t for t in self.tasks if t.id == task_id)

    def complete(self, task_id: str) -> None:
        self._pool = [e for e in self._pool if e.id != task_id]
        self._moved(pool_changed=True)

    def advance(self) -> None:
        """Move the clock to the next tip request; let new tasks arrive."""
        rng = self._rng
        later = self.hour + int(rng.integers(3, 9))
        if later <= 22:
            self.hour = later
        else:  # the next request comes after a night's sleep
            self.hour = 7 + int(rng.integers(0, 3))
            self.day += 1
        arrivals = int(rng.poisson(0.6)) + max(0, 4 - len(self._pool))
        for _ in range(arrivals):
            if len(self._pool) < 2 * self._target:
                self._pool.append(self._new_task())
        self._moved(pool_changed=arrivals > 0)
