"""Task streams: realistic, evolving, seeded."""

from __future__ import annotations

import numpy as np

from oo_ml.sim.tasks import TEMPLATES, TaskStream


def test_same_seed_same_stream() -> None:
    a, b = TaskStream(7, "u"), TaskStream(7, "u")
    for _ in range(30):
        assert a.tasks == b.tasks
        assert a.context == b.context
        a.advance()
        b.advance()


def test_priorities_are_skewed_towards_p1_and_sources_vary() -> None:
    stream = TaskStream(1, "u", pool_size=2000)
    priorities = np.bincount([t.priority for t in stream.tasks], minlength=5)[1:]
    assert priorities[0] > priorities[1] > priorities[2] > priorities[3] > 0
    assert {t.source for t in stream.tasks} == {s for s, _ in TEMPLATES}
    assert 0.2 < np.mean([t.is_overdue for t in stream.tasks]) < 0.5


def test_time_moves_forward_in_waking_hours_and_tasks_age() -> None:
    stream = TaskStream(3, "u")
    first = stream.tasks[0]
    days = []
    for _ in range(40):
        before = (stream.day, stream.hour)
        stream.advance()
        assert (stream.day, stream.hour) > before
        assert 7 <= stream.hour <= 22
        days.append(stream.day)
    aged = next(t for t in stream.tasks if t.id == first.id)
    assert aged.due_in_days < first.due_in_days
    assert days[-1] >= 8  # 40 requests cover more than a week


def test_done_tasks_leave_and_new_ones_arrive() -> None:
    stream = TaskStream(5, "u", pool_size=6)
    gone = stream.tasks[0].id
    stream.complete(gone)
    assert gone not in {t.id for t in stream.tasks}
    ids = {t.id for t in stream.tasks}
    for _ in range(10):
        stream.advance()
    assert {t.id for t in stream.tasks} - ids
    assert len(stream.tasks) >= 4


def test_candidates_carry_the_task_features() -> None:
    stream = TaskStream(2, "u")
    for task, candidate in zip(stream.tasks, stream.candidates(), strict=True):
        assert candidate.id == task.id
        assert candidate.is_overdue == (task.due_in_days < 0)
        assert candidate.priority == task.priority
        assert candidate.source == task.source
