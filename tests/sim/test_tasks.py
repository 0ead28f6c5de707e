"""Task streams: realistic, evolving, seeded."""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oo_ml import Candidate, Context, ValidationError
from oo_ml import types as types_module
from oo_ml.features import source_code
from oo_ml.sim.tasks import (
    TEMPLATES,
    Pools,
    SimTask,
    TaskStream,
    hours_span,
    in_hours,
    round_3,
)


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


def test_candidates_and_columns_follow_the_pool_as_it_changes() -> None:
    """The views kept between changes (candidates, columns, pool fields) always describe the
    pool as it stands: tasks age, arrive and leave."""
    stream = TaskStream(9, "u", pool_size=6)
    versions = [stream.version]
    for step in range(60):
        tasks = stream.tasks
        assert stream.candidates() == [t.candidate() for t in tasks]
        priorities, due_in_days, sources = stream.columns()
        assert priorities.tolist() == [t.priority for t in tasks]
        assert due_in_days.tolist() == [t.due_in_days for t in tasks]
        assert list(sources) == [t.source for t in tasks]
        ids, _, _, _ = stream.pool_fields()
        assert ids == [t.id for t in tasks]
        if step % 3 == 0:
            stream.complete(tasks[step % len(tasks)].id)
            assert stream.version == versions[-1] + 1
        stream.advance()
        versions.append(stream.version)
    assert versions == sorted(versions)
    assert len(set(versions)) > 30  # arrivals and completions both counted


def test_pool_fields_are_kept_until_the_pool_changes() -> None:
    stream = TaskStream(4, "u")
    fields, static = stream.pool_fields(), stream.static_columns()
    version = stream.version
    while stream.version == version:
        assert stream.pool_fields() is fields
        assert stream.static_columns() is static
        stream.advance()
    assert stream.pool_fields() is not fields


def test_candidates_are_what_the_checked_constructor_builds() -> None:
    """The pool's candidates skip Candidate's checks (their values passed them when the task
    arrived): they must be exactly what the checked constructor makes, field for field."""
    assert tuple(f.name for f in dataclasses.fields(Candidate)) == types_module._CANDIDATE_FIELDS
    stream = TaskStream(6, "u")
    for _ in range(80):
        for c in stream.candidates():
            checked = Candidate(c.id, c.is_overdue, c.task_age_days, c.priority, c.source)
            assert c == checked
            assert [type(getattr(c, f)) for f in types_module._CANDIDATE_FIELDS] == [
                type(getattr(checked, f)) for f in types_module._CANDIDATE_FIELDS
            ]
        stream.advance()


def test_a_task_older_than_a_century_is_refused_as_a_candidate() -> None:
    stream = TaskStream(6, "u")
    stream.day = 40_000  # every task now overdue by more than MAX_TASK_AGE_DAYS
    with pytest.raises(ValidationError, match="task_age_days"):
        stream.candidates()


def test_a_user_label_that_makes_bad_task_ids_is_refused() -> None:
    with pytest.raises(ValidationError, match="id"):
        TaskStream(6, "u\x00")


class _Reference:
    """The task stream's specification drawn with numpy one number at a time: what the
    compiled kernels behind :class:`Pools` must reproduce exactly."""

    KEYS = tuple(TEMPLATES)
    KEY_WEIGHTS = (0.3, 0.2, 0.12, 0.08, 0.18, 0.12)
    PRIORITY_WEIGHTS = (0.55, 0.25, 0.13, 0.07)

    def __init__(self, seed: int, label: str, size: int, awake: tuple[int, int] = (7, 22)) -> None:
        self.rng = np.random.default_rng(seed)
        self.label, self.size, self.number = label, size, 0
        self.awake = awake
        # The clock as the day the member last woke up and the hours it has been awake since.
        self.woke_on, self.awake_for = 0, 0
        self.pool: list[SimTask] = []  # due_in_days holds the due date on the clock here
        for _ in range(size):
            self.arrive()

    @staticmethod
    def pick(weights: tuple[float, ...], u: float) -> int:
        cumulative = list(itertools.accumulate(weights))
        return min(bisect.bisect_right(cumulative, u * cumulative[-1]), len(weights) - 1)

    def arrive(self) -> None:
        u_key, u_text, u_priority, u_late, u_due = (float(self.rng.random()) for _ in range(5))
        source, category = self.KEYS[self.pick(self.KEY_WEIGHTS, u_key)]
        texts = TEMPLATES[(source, category)]
        self.number += 1
        due = math.log1p(-u_due) * 6.0 if u_late < 0.35 else u_due * 14.0
        self.pool.append(
            SimTask(
                f"{self.label}-t{self.number}",
                texts[min(int(u_text * len(texts)), len(texts) - 1)],
                category,
                source,
                self.pick(self.PRIORITY_WEIGHTS, u_priority) + 1,
                self.day + self.hour / 24.0 + due,
            )
        )

    @property
    def day(self) -> int:
        return self.woke_on + (self.awake[0] + self.awake_for) // 24

    @property
    def hour(self) -> int:
        return (self.awake[0] + self.awake_for) % 24

    def wake_at(self, awake: tuple[int, int]) -> None:
        """New waking hours: the clock stays where it is, counted from the new waking time."""
        day, hour = self.day, self.hour
        self.awake = awake
        self.awake_for = (hour - awake[0]) % 24
        self.woke_on = day - (awake[0] + self.awake_for) // 24

    def advance(self) -> None:
        first, last = self.awake
        awake_hours = last - first + 1 if first <= last else 24 - first + last + 1
        later = self.awake_for + int(self.rng.integers(3, 9))
        if later < awake_hours:
            self.awake_for = later
        else:
            self.awake_for = int(self.rng.integers(0, 3))
            self.woke_on += 1
        for _ in range(int(self.rng.poisson(0.6)) + max(0, 4 - len(self.pool))):
            if len(self.pool) < 2 * self.size:
                self.arrive()

    def tasks(self) -> list[SimTask]:
        now = self.day + self.hour / 24.0
        return [dataclasses.replace(t, due_in_days=t.due_in_days - now) for t in self.pool]


def test_pools_draw_every_members_stream_as_the_specification_does() -> None:
    """Many members at once, some tasks done at every step: each member's tasks, in order,
    at every moment, are the reference's to the bit, and its candidates are those tasks'."""
    seeds = [3, 99, 2**40 + 7, 12345]
    pools = Pools(seeds, ["a", "b", "c", "d"], pool_size=5)
    references = [_Reference(seed, label, 5) for seed, label in zip(seeds, "abcd", strict=True)]
    done = random.Random(1)
    for _ in range(120):
        for m, reference in enumerate(references):
            expected = reference.tasks()
            assert pools.tasks(m) == expected
            assert pools.candidates(m) == [t.candidate() for t in expected]
            assert pools.context(m) == Context(reference.hour, reference.day % 7)
            if done.random() < 0.4:
                index = done.randrange(len(expected))
                pools.complete(m, index)
                del reference.pool[index]
        pools.advance()
        for reference in references:
            reference.advance()
    assert max(len(r.pool) for r in references) == 10  # full pools stop arrivals
    assert pools.flat()[0].tolist() == [len(r.pool) for r in references]


def test_every_member_asks_within_its_own_waking_hours_as_the_specification_does() -> None:
    """Waking hours across midnight, all day, the shortest allowed, and one member's changed
    halfway (a drift): each member's clock and tasks are the reference's to the bit."""
    windows = [(18, 3), (0, 23), (5, 7), (7, 22), (22, 21)]
    seeds = [11, 12, 13, 14, 15]
    labels = ["a", "b", "c", "d", "e"]
    pools = Pools(seeds, labels, pool_size=6, awake=windows)
    references = [
        _Reference(seed, label, 6, window)
        for seed, label, window in zip(seeds, labels, windows, strict=True)
    ]
    hours: list[set[int]] = [set() for _ in windows]
    for step in range(200):
        if step == 100:  # the night owl turns early bird, the early bird night owl
            for m, window in ((0, (6, 21)), (3, (20, 4))):
                pools.set_awake(m, window)
                references[m].wake_at(window)
        for m, reference in enumerate(references):
            assert pools.context(m) == Context(reference.hour, reference.day % 7)
            assert pools.tasks(m) == reference.tasks()
            hours[m].add(reference.hour)
        pools.advance()
        for reference in references:
            reference.advance()
    assert hours[0] >= {23, 0, 1, 2, 3, 18}  # the night owl is asked after midnight
    assert hours[1] >= {0, 3, 12, 23}
    assert hours[2] == {5, 6, 7}
    assert hours[3] >= {7, 22, 23, 0, 4}  # and the early bird becomes one


def test_waking_hours_are_checked() -> None:
    pools = Pools([1], ["a"])
    for bad in ((3, 4), (10, 10), (-1, 5), (7, 24)):
        with pytest.raises(ValueError, match="waking hours"):
            pools.set_awake(0, bad)
    with pytest.raises(ValueError, match="one waking window per seed"):
        Pools([1, 2], ["a", "b"], awake=[(7, 22)])
    assert hours_span((7, 22)) == 16
    assert hours_span((18, 3)) == 10
    assert hours_span((22, 21)) == 24
    assert [h for h in range(24) if in_hours((22, 2), h)] == [0, 1, 2, 22, 23]


def test_a_member_is_a_task_stream_of_the_same_seed() -> None:
    pools = Pools([5, 6], ["x", "y"])
    alone = TaskStream(6, "y")
    for _ in range(30):
        assert pools.tasks(1) == alone.tasks
        assert pools.pool_fields(1) == alone.pool_fields()
        pools.advance()
        alone.advance()


@settings(max_examples=500, deadline=None, derandomize=True)
@given(
    st.lists(
        st.one_of(
            st.floats(-36500.0, 36500.0, allow_nan=False),
            # Half-way points of the third decimal and their neighbours, where 1000·v rounds
            # onto, or next to, the half.
            st.integers(-(10**7), 10**7).map(lambda n: (n + 0.5) / 1000.0),
            st.tuples(st.integers(-(10**7), 10**7), st.sampled_from([-math.inf, math.inf])).map(
                lambda pair: math.nextafter((pair[0] + 0.5) / 1000.0, pair[1])
            ),
            st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 0.0005, -0.0005, 2.0005, 1e-300]),
        ),
        max_size=40,
    )
)
def test_round_3_is_pythons_round_bit_for_bit(values: list[float]) -> None:
    got = round_3(np.array(values, dtype=np.float64))
    assert got.tobytes() == np.array([round(v, 3) for v in values], dtype=np.float64).tobytes()


def test_candidate_columns_are_every_members_candidates() -> None:
    """The columns the simulator's own decisions encode are each member's candidates as the
    engine gets them (:meth:`Pools.candidates`), field for field, ages to the bit."""
    pools = Pools(
        [11, 12, 13, 14], ["a", "b", "c", "d"], 8, awake=[(7, 22), (18, 3), (0, 23), (5, 9)]
    )
    for step in range(40):
        hours, days, overdue, ages, priorities, sources = pools.candidate_columns()
        start = 0
        for m in range(len(pools)):
            candidates = pools.candidates(m)
            end = start + len(candidates)
            context = pools.context(m)
            assert hours[start:end].tolist() == [context.hour_of_day] * len(candidates)
            assert days[start:end].tolist() == [context.day_of_week] * len(candidates)
            assert overdue[start:end].tolist() == [c.is_overdue for c in candidates]
            assert (
                ages[start:end].tobytes()
                == np.array([c.task_age_days for c in candidates]).tobytes()
            )
            assert priorities[start:end].tolist() == [c.priority for c in candidates]
            assert sources[start:end].tolist() == [source_code(c.source) for c in candidates]
            start = end
        assert start == len(ages)
        if step % 3 == 0:
            pools.complete(step % 4, 0)
        pools.advance()


def test_an_age_out_of_range_is_refused_in_columns_as_in_candidates() -> None:
    pools = Pools([1], ["a"], 4)
    pools.day[0] = 80_000
    pools.moved(0)
    with pytest.raises(ValidationError, match="task_age_days"):
        pools.candidate_columns()
    with pytest.raises(ValidationError, match="task_age_days"):
        pools.candidates(0)


def test_views_of_every_pool_follow_the_pools() -> None:
    """``flat`` and ``due`` are kept until a pool or a clock changes, and no longer."""
    pools = Pools([1, 2], ["a", "b"], 5)
    flat, due = pools.flat(), pools.due()
    assert pools.flat() is flat
    assert pools.due() is due
    assert not due.flags.writeable
    pools.complete(0, 0)
    assert int(pools.flat()[0][0]) == int(flat[0][0]) - 1
    due = pools.due()
    pools.advance()
    assert pools.due() is not due
    assert pools.due().tobytes() != due.tobytes()
    due = pools.due()
    pools.day[1] += 3
    pools.moved(1)
    assert pools.due()[-1] == due[-1] - 3


def test_contexts_are_every_members_context_and_follow_the_clocks() -> None:
    pools = Pools([1, 2, 3], ["a", "b", "c"], 5, awake=[(7, 22), (18, 3), (5, 9)])
    for _ in range(30):
        assert pools.contexts() == [pools.context(m) for m in range(3)]
        pools.advance()
    pools.day[2] += 1
    pools.moved(2)
    assert pools.contexts()[2] == pools.context(2)


def test_completing_several_tasks_at_once_is_completing_them_one_after_another() -> None:
    seeds, labels = [3, 4, 5], ["a", "b", "c"]
    together, alone = Pools(seeds, labels, 6), Pools(seeds, labels, 6)
    for step in range(12):
        members = [m for m in range(3) if (step + m) % 2 == 0] + [1]  # member 1 twice
        indices = [(step * 7 + m) % int(together.count[m] - 1) for m in members]
        expected = [list(zip(*together.pool_fields(m)[:2], strict=True)) for m in range(3)]
        for m, index in zip(members, indices, strict=True):
            del expected[m][index]  # the others keep their order
        together.complete_each(members, indices)
        for m, index in zip(members, indices, strict=True):
            alone.complete(m, index)
        for m in range(3):
            assert list(zip(*together.pool_fields(m)[:2], strict=True)) == expected[m]
        for m in range(3):
            assert together.candidates(m) == alone.candidates(m)
            assert together.pool_fields(m) == alone.pool_fields(m)
        assert together.version.tolist() == alone.version.tolist()
        together.advance()
        alone.advance()


def test_completing_a_task_that_is_not_there_stops_there() -> None:
    pools = Pools([3, 4], ["a", "b"], 4)
    count, first = pools.count.tolist(), pools.pool_fields(0)[0]
    with pytest.raises(IndexError, match="member 1 has no task 99"):
        pools.complete_each([0, 1, 0], [0, 99, 0])
    assert pools.count.tolist() == [count[0] - 1, count[1]]  # the first pair only
    assert pools.pool_fields(0)[0] == first[1:]
    for member in (-1, 2):
        with pytest.raises(IndexError, match=f"no member {member}"):
            pools.complete(member, 0)
    assert pools.count.tolist() == [count[0] - 1, count[1]]
    with pytest.raises(ValueError, match="one index per member"):
        pools.complete_each([0], [])
