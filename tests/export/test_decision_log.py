"""``iter_rounds`` pages through the log by (created_ms, event_id): across page boundaries
that fall inside a millisecond shared by many decisions, nothing is skipped or repeated."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pytest

from oo_ml.errors import ValidationError
from oo_ml.ope.log import Round, iter_rounds
from oo_ml.store.base import DecisionRecord, FeedbackRecord, Store, Txn
from oo_ml.store.memory import MemoryStore
from oo_ml.store.migrate import upgrade
from oo_ml.store.sql import SqlStore
from oo_ml.types import Candidate, Context

# 23 decisions share one millisecond; a few come before and after it
TIMES = [1_000, 1_000, 2_000, *([5_000] * 23), 5_001, 9_000, 9_000]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        made: Store = MemoryStore()
    else:
        url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
        upgrade(url)
        made = SqlStore(url)
    yield made
    made.close()


def decision(event_id: str, created_ms: int, policy: str) -> DecisionRecord:
    candidates = (Candidate("a"), Candidate("b", priority=3))
    return DecisionRecord(
        event_id=event_id,
        user_id=f"user-{created_ms % 3}",
        policy=policy,
        created_ms=created_ms,
        context=Context(9, 2),
        candidates=candidates,
        source_ids=(None, None),
        features=np.zeros((2, 7)),
        scores=np.array([0.5, 0.25]),
        probabilities=np.array([0.75, 0.25]),
        chosen=0,
        seed=1,
        model_updates=0,
    )


@pytest.fixture
def logged(store: Store) -> list[Round]:
    rng = np.random.default_rng(3)
    # event ids in random order, so neither insertion order nor ids alone give the time order
    ids = [f"e{n:03d}" for n in rng.permutation(len(TIMES))]
    rounds: list[Round] = []
    for i, (event_id, created_ms) in enumerate(zip(ids, TIMES, strict=True)):
        record = decision(event_id, created_ms, "egreedy-v1" if i % 4 else "linucb-v1")
        answer = None
        if i % 3:
            answer = FeedbackRecord(
                event_id, record.user_id, record.policy, created_ms + 10, "done", 30_000, 1000,
                "dwell-v1", "client",
            )  # fmt: skip

        def job(txn: Txn, r: DecisionRecord = record, f: FeedbackRecord | None = answer) -> None:
            txn.insert_decision(r)
            if f is not None:
                txn.insert_feedback(f)

        store.write(job)
        rounds.append((record, answer))
    rounds.sort(key=lambda r: (r[0].created_ms, r[0].event_id))
    return rounds


def keys(rounds: Iterable[Round]) -> list[tuple[str, str | None]]:
    return [(d.event_id, f and f.event_id) for d, f in rounds]


@pytest.mark.parametrize("page", [1, 2, 3, 7, 22, 23, 24, 1000])
def test_every_decision_comes_once_in_time_order_whatever_the_page_size(
    store: Store, logged: list[Round], page: int
) -> None:
    assert keys(iter_rounds(store, page=page)) == keys(logged)


def test_a_window_and_a_policy_filter_page_the_same_way(store: Store, logged: list[Round]) -> None:
    wanted = [
        (d, f) for d, f in logged if 2_000 <= d.created_ms < 9_000 and d.policy == "egreedy-v1"
    ]
    got = iter_rounds(store, since_ms=2_000, until_ms=9_000, policies=["egreedy-v1"], page=4)
    assert keys(got) == keys(wanted)
    assert len(wanted) > 8


def test_a_window_ending_inside_the_shared_millisecond_excludes_it(
    store: Store, logged: list[Round]
) -> None:
    assert keys(iter_rounds(store, until_ms=5_000, page=2)) == keys(logged[:3])
    assert keys(iter_rounds(store, since_ms=5_000, until_ms=5_001, page=5)) == keys(logged[3:26])


def test_a_decision_added_between_pages_is_picked_up_once(
    store: Store, logged: list[Round]
) -> None:
    rounds = iter_rounds(store, page=5)
    seen = [next(rounds) for _ in range(6)]
    late = decision("zzz", 9_500, "egreedy-v1")
    store.write(lambda txn: txn.insert_decision(late))
    seen += list(rounds)
    assert keys(seen) == [*keys(logged), ("zzz", None)]


@pytest.mark.parametrize(("since", "until", "page"), [(-1, 10, 10), (10, 9, 10), (0, 10, 0)])
def test_bad_arguments_are_refused(store: Store, since: int, until: int, page: int) -> None:
    with pytest.raises(ValidationError):
        next(iter_rounds(store, since_ms=since, until_ms=until, page=page))
