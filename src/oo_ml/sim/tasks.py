"""Synthetic task streams: a realistic, evolving pool of tasks per simulated user.

Each user starts with a pool drawn from per-category templates. Priorities follow Todoist's
skew (most tasks are p1); due dates spread from far in the future to well overdue; tasks come
from several sources. Between two tips the clock moves on, so tasks age and become overdue;
a task marked done leaves the pool, and new ones arrive at random.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from oo_ml.types import Candidate, Context

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
_KEY_WEIGHTS = np.array([0.3, 0.2, 0.12, 0.08, 0.18, 0.12])
_PRIORITY_WEIGHTS = np.array([0.55, 0.25, 0.13, 0.07])  # p1 … p4, Todoist's usual skew


@dataclass(frozen=True, slots=True)
class SimTask:
    """A task in a simulated user's pool. ``due_in_days`` < 0 means overdue by that much."""

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
        self.tasks: list[SimTask] = []
        self._target = pool_size
        for _ in range(pool_size):
            self.tasks.append(self._new_task())

    def _new_task(self) -> SimTask:
        rng = self._rng
        source, category = _KEYS[int(rng.choice(len(_KEYS), p=_KEY_WEIGHTS))]
        texts = TEMPLATES[(source, category)]
        self._next_id += 1
        # Due dates: a third overdue (up to a month), the rest due within the next two weeks.
        due = -rng.exponential(6.0) if rng.random() < 0.35 else rng.uniform(0.0, 14.0)
        return SimTask(
            id=f"{self._user}-t{self._next_id}",
            content=str(texts[int(rng.integers(len(texts)))]),
            category=category,
            source=source,
            priority=int(rng.choice(4, p=_PRIORITY_WEIGHTS)) + 1,
            due_in_days=float(min(due, 14.0)),
        )

    @property
    def context(self) -> Context:
        return Context(self.hour, self.day % 7)

    def candidates(self) -> list[Candidate]:
        return [t.candidate() for t in self.tasks]

    def task(self, task_id: str) -> SimTask:
        return next(t for t in self.tasks if t.id == task_id)

    def complete(self, task_id: str) -> None:
        self.tasks = [t for t in self.tasks if t.id != task_id]

    def advance(self) -> None:
        """Move the clock to the next tip request; age tasks; let new tasks arrive."""
        rng = self._rng
        later = self.hour + int(rng.integers(3, 9))
        if later <= 22:
            elapsed_hours = later - self.hour
            self.hour = later
        else:  # the next request comes after a night's sleep
            wake = 7 + int(rng.integers(0, 3))
            elapsed_hours = 24 - self.hour + wake
            self.hour = wake
            self.day += 1
        elapsed_days = elapsed_hours / 24.0
        self.tasks = [replace(t, due_in_days=t.due_in_days - elapsed_days) for t in self.tasks]
        arrivals = int(rng.poisson(0.6)) + max(0, 4 - len(self.tasks))
        for _ in range(arrivals):
            if len(self.tasks) < 2 * self._target:
                self.tasks.append(self._new_task())
