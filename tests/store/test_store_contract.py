"""The storage contract: memory, SQLite and PostgreSQL behave the same."""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest

from oo_ml import Candidate, ConflictError, Context, get_policy
from oo_ml.store.base import DecisionRecord, FeedbackRecord, StateRow, Store, Txn


def decision(
    event_id: str,
    *,
    user_id: str = "u1",
    policy: str = "egreedy-v1",
    created_ms: int = 1_000,
    chosen: int = 0,
    k: int = 3,
    origin: str = "rank",
    scores: list[float] | None = None,
    means: bool = True,
) -> DecisionRecord:
    candidates = tuple(
        Candidate(f"tip-{i}", i % 2 == 0, 3.5 * i - 2, 1 + i % 4, "todoist") for i in range(k)
    )
    features = get_policy(policy).encoder.encode(Context(9, 2), candidates)
    return DecisionRecord(
        event_id=event_id,
        user_id=user_id,
        policy=policy,
        created_ms=created_ms,
        context=Context(9, 2),
        candidates=candidates,
        source_ids=tuple(f"src-{i}" if i else None for i in range(k)),
        features=features,
        scores=np.array(scores if scores is not None else [0.5 - i for i in range(k)]),
        probabilities=None if origin == "legacy" else np.full(k, 1.0 / k),
        chosen=chosen,
        seed=2**62 + 12345,
        model_updates=7,
        origin=origin,
        content=("buy milk", "call mum", "file taxes")[:k] if k <= 3 else None,
        # Arbitrary float64s (must come back bit for bit); none on legacy or older records.
        means=np.arange(k) / 7.0 - 0.3 if means and origin == "rank" else None,
    )


def feedback(event_id: str, user_id: str = "u1", milli: int = 1000) -> FeedbackRecord:
    return FeedbackRecord(
        event_id, user_id, "egreedy-v1", 2_000, "done", 30_000, milli, "dwell-v1", "client"
    )


def trained_row(seed: int = 0) -> StateRow:
    policy = get_policy("ucb-ix1")
    state = policy.new_state()
    rng = np.random.default_rng(seed)
    for _ in range(5):
        policy.learn(state, rng.uniform(-1, 1, policy.dim), float(rng.uniform(-1, 1)))
    return StateRow(state, reward_count=5, reward_sum_milli=-1234, updated_ms=99)


def assert_same_decision(a: DecisionRecord, b: DecisionRecord) -> None:
    for name in (
        "event_id",
        "user_id",
        "policy",
        "created_ms",
        "context",
        "candidates",
        "source_ids",
        "chosen",
        "seed",
        "model_updates",
        "origin",
        "content",
    ):
        assert getattr(a, name) == getattr(b, name), name
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.scores, b.scores)
    for name in ("probabilities", "means"):
        if getattr(a, name) is None:
            assert getattr(b, name) is None, name
        else:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_missing_state_is_none(store: Store) -> None:
    assert store.read(lambda t: t.load_state("nobody", "ucb-ix1")) is None


def test_state_round_trips_exactly(store: Store) -> None:
    row = trained_row()
    store.write(lambda t: t.save_state("u1", "ucb-ix1", row))
    loaded = store.read(lambda t: t.load_state("u1", "ucb-ix1"))
    assert loaded is not None
    assert (loaded.reward_count, loaded.reward_sum_milli, loaded.updated_ms) == (5, -1234, 99)
    for name in ("A", "b", "A_inv", "theta", "prior_mean"):
        np.testing.assert_array_equal(getattr(loaded.state, name), getattr(row.state, name))
    assert loaded.state.n_updates == row.state.n_updates


def test_saving_state_again_overwrites_it(store: Store) -> None:
    store.write(lambda t: t.save_state("u1", "ucb-ix1", trained_row(0)))
    second = trained_row(1)
    store.write(lambda t: t.save_state("u1", "ucb-ix1", second))
    loaded = store.read(lambda t: t.load_state("u1", "ucb-ix1", for_update=False))
    assert loaded is not None
    np.testing.assert_array_equal(loaded.state.b, second.state.b)


def test_decision_round_trips_exactly(store: Store) -> None:
    record = decision("e1")
    store.write(lambda t: t.insert_decision(record))
    assert_same_decision(record, store.read(lambda t: t.get_decision("e1")))
    legacy = decision("e2", origin="legacy", k=1)
    store.write(lambda t: t.insert_decision(legacy))
    assert_same_decision(legacy, store.read(lambda t: t.get_decision("e2")))
    older = decision("e3", means=False)  # as logged before decisions kept their means
    store.write(lambda t: t.insert_decision(older))
    assert_same_decision(older, store.read(lambda t: t.get_decision("e3")))
    assert record.means is not None
    assert legacy.means is None
    assert older.means is None


def test_unknown_decision_is_none(store: Store) -> None:
    assert store.read(lambda t: t.get_decision("nope")) is None


def test_duplicate_event_id_is_a_conflict_and_changes_nothing(store: Store) -> None:
    store.write(lambda t: t.insert_decision(decision("e1", chosen=0)))

    def job(t: Txn) -> None:
        t.set_setting("touched", "yes")
        t.insert_decision(decision("e1", chosen=2))

    with pytest.raises(ConflictError):
        store.write(job)
    assert store.read(lambda t: t.get_decision("e1")).chosen == 0
    assert store.read(lambda t: t.get_setting("touched")) is None


def test_a_failing_job_is_rolled_back_whole(store: Store) -> None:
    def job(t: Txn) -> None:
        t.save_state("u1", "ucb-ix1", trained_row())
        t.insert_decision(decision("e9"))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        store.write(job)
    assert store.read(lambda t: t.load_state("u1", "ucb-ix1")) is None
    assert store.read(lambda t: t.get_decision("e9")) is None


def test_feedback_round_trips_and_is_unique(store: Store) -> None:
    store.write(lambda t: t.insert_decision(decision("e1")))
    store.write(lambda t: t.insert_feedback(feedback("e1")))
    assert store.read(lambda t: t.get_feedback("e1")) == feedback("e1")
    with pytest.raises(ConflictError):
        store.write(lambda t: t.insert_feedback(feedback("e1", milli=-1000)))
    assert store.read(lambda t: t.get_feedback("e1")).reward_milli == 1000
    assert store.read(lambda t: t.get_feedback("e2")) is None


def test_latest_decision_for_tip_is_the_newest_that_chose_it(store: Store) -> None:
    for i, (created, chosen) in enumerate([(100, 1), (300, 1), (200, 1), (400, 2)]):
        store.write(
            lambda t, i=i, c=created, ch=chosen: t.insert_decision(
                decision(f"e{i}", created_ms=c, chosen=ch)
            )
        )
    found = store.read(lambda t: t.latest_decision_for_tip("u1", "egreedy-v1", "tip-1"))
    assert found.event_id == "e1"
    assert store.read(lambda t: t.latest_decision_for_tip("u1", "linucb-v1", "tip-1")) is None
    assert store.read(lambda t: t.latest_decision_for_tip("u2", "egreedy-v1", "tip-1")) is None


def test_unanswered_decisions_in_a_window_oldest_first(store: Store) -> None:
    for i, created in enumerate([500, 100, 300, 200, 900]):
        store.write(lambda t, i=i, c=created: t.insert_decision(decision(f"e{i}", created_ms=c)))
    store.write(lambda t: t.insert_feedback(feedback("e3")))  # created at 200
    waiting = store.read(lambda t: t.unanswered_decisions(100, 600, 10))
    assert [d.event_id for d in waiting] == ["e1", "e2", "e0"]
    assert [d.event_id for d in store.read(lambda t: t.unanswered_decisions(0, 600, 2))] == [
        "e1",
        "e2",
    ]


def test_logged_rounds_pages_oldest_first_with_feedback(store: Store) -> None:
    # Two decisions share a millisecond: the event id orders them, and paging must not skip one.
    created = {"e0": 500, "e1": 100, "e2": 300, "e3": 300, "e4": 900, "e5": 50}
    for event_id, ms in created.items():
        policy = "linucb-v1" if event_id == "e2" else "egreedy-v1"
        store.write(
            lambda t, e=event_id, c=ms, p=policy: t.insert_decision(
                decision(e, created_ms=c, policy=p)
            )
        )
    store.write(lambda t: t.insert_feedback(feedback("e3", milli=-300)))
    rounds = store.read(lambda t: t.logged_rounds(100, 900))
    assert [d.event_id for d, _ in rounds] == ["e1", "e2", "e3", "e0"]
    by_id = {d.event_id: fb for d, fb in rounds}
    assert by_id["e3"] == feedback("e3", milli=-300)
    assert by_id["e1"] is None
    assert_same_decision(rounds[2][0], decision("e3", created_ms=300))

    pages: list[str] = []
    after: tuple[int, str] | None = None
    while True:
        page = store.read(lambda t, a=after: t.logged_rounds(0, 10_000, after=a, limit=2))
        if not page:
            break
        pages.extend(d.event_id for d, _ in page)
        after = (page[-1][0].created_ms, page[-1][0].event_id)
    assert pages == ["e5", "e1", "e2", "e3", "e0", "e4"]
    only = store.read(lambda t: t.logged_rounds(0, 10_000, policies=["linucb-v1"]))
    assert [d.event_id for d, _ in only] == ["e2"]
    both = store.read(
        lambda t: t.logged_rounds(0, 10_000, after=(300, "e2"), policies=["egreedy-v1", "x"])
    )
    assert [d.event_id for d, _ in both] == ["e3", "e0", "e4"]
    assert store.read(lambda t: t.logged_rounds(0, 10_000, policies=[])) == []


def test_recent_decisions_newest_first_with_filters(store: Store) -> None:
    for i in range(6):
        policy = "egreedy-v1" if i % 2 else "linucb-v1"
        store.write(
            lambda t, i=i, p=policy: t.insert_decision(
                decision(f"e{i}", policy=p, created_ms=100 * i)
            )
        )
    store.write(lambda t: t.insert_decision(decision("other", user_id="u2", created_ms=50)))
    assert [d.event_id for d in store.read(lambda t: t.recent_decisions("u1", 3))] == [
        "e5",
        "e4",
        "e3",
    ]
    only = store.read(lambda t: t.recent_decisions("u1", 10, policies=["egreedy-v1"]))
    assert [d.event_id for d in only] == ["e5", "e3", "e1"]
    since = store.read(lambda t: t.recent_decisions("u1", 10, since_ms=300))
    assert [d.event_id for d in since] == ["e5", "e4", "e3"]  # at or after
    store.write(lambda t: t.insert_decision(decision("old", origin="legacy", k=1, created_ms=999)))
    ranked = store.read(lambda t: t.recent_decisions("u1", 2, origin="rank"))
    assert [d.event_id for d in ranked] == ["e5", "e4"]


def test_count_decisions_counts_ranked_explored_and_newest(store: Store) -> None:
    store.write(lambda t: t.insert_decision(decision("a", created_ms=10, chosen=0)))  # best
    store.write(lambda t: t.insert_decision(decision("b", created_ms=20, chosen=2)))  # explored
    store.write(lambda t: t.insert_decision(decision("c", created_ms=30, origin="legacy", k=1)))
    store.write(lambda t: t.insert_decision(decision("d", created_ms=40, policy="linucb-v1")))
    assert store.read(lambda t: t.count_decisions("u1", "egreedy-v1")) == (2, 1, 20)
    assert store.read(lambda t: t.count_decisions("u1", "egreedy-v1", since_ms=11)) == (1, 1, 20)
    assert store.read(lambda t: t.count_decisions("u1", "egreedy-v1", since_ms=10)) == (2, 1, 20)
    assert store.read(lambda t: t.count_decisions("u9", "egreedy-v1")) == (0, 0, None)


def test_reset_forgets_models_and_remembers_when(store: Store) -> None:
    store.write(lambda t: t.save_state("u1", "ucb-ix1", trained_row()))
    store.write(
        lambda t: t.save_state("u1", "egreedy-v1", StateRow(get_policy("egreedy-v1").new_state()))
    )
    store.write(lambda t: t.save_state("u2", "ucb-ix1", trained_row()))
    store.write(lambda t: t.insert_decision(decision("e1")))
    store.write(lambda t: t.mark_reset("u1", 5_000))
    assert store.read(lambda t: t.list_states("u1")) == []
    assert [p for p, _ in store.read(lambda t: t.list_states("u2"))] == ["ucb-ix1"]
    assert store.read(lambda t: t.get_user("u1")).reset_ms == 5_000
    assert store.read(lambda t: t.get_decision("e1")) is not None


def test_delete_user_erases_everything_of_that_user_only(store: Store) -> None:
    store.write(lambda t: t.save_state("u1", "ucb-ix1", trained_row()))
    store.write(lambda t: t.insert_decision(decision("e1")))
    store.write(lambda t: t.insert_feedback(feedback("e1")))
    store.write(lambda t: t.insert_decision(decision("e2", user_id="u2")))
    store.write(lambda t: t.mark_reset("u1", 1))
    store.write(lambda t: t.save_state("u1", "ucb-ix1", trained_row()))
    assert store.write(lambda t: t.delete_user("u1")) == 3
    assert store.read(lambda t: t.get_decision("e1")) is None
    assert store.read(lambda t: t.get_feedback("e1")) is None
    assert store.read(lambda t: t.list_states("u1")) == []
    assert store.read(lambda t: t.get_user("u1")) is None
    assert store.read(lambda t: t.get_decision("e2")) is not None


def test_settings_are_kept_and_overwritten(store: Store) -> None:
    assert store.read(lambda t: t.get_setting("active_policy")) is None
    store.write(lambda t: t.set_setting("active_policy", "ucb-ix1"))
    store.write(lambda t: t.set_setting("active_policy", "ts-ix1"))
    assert store.read(lambda t: t.get_setting("active_policy")) == "ts-ix1"


@pytest.mark.parametrize(
    "pair", [("a.b", "a_b"), ("a/b", "a b"), ("Ünïcødé", "Unicode"), ("x" * 256, "x" * 255)]
)
def test_distinct_user_ids_never_share_state(store: Store, pair: tuple[str, str]) -> None:
    first, second = pair
    store.write(lambda t: t.save_state(first, "ucb-ix1", trained_row(1)))
    assert store.read(lambda t: t.load_state(second, "ucb-ix1")) is None
    assert store.read(lambda t: t.load_state(first, "ucb-ix1")) is not None


def test_concurrent_read_modify_write_jobs_lose_no_update(store: Store) -> None:
    policy = get_policy("egreedy-v1")
    x = np.full(policy.dim, 0.5)

    def bump(t: Txn) -> None:
        row = t.load_state("u1", policy.name, for_update=True) or StateRow(policy.new_state())
        policy.learn(row.state, x, 1.0)
        row.reward_count += 1
        t.save_state("u1", policy.name, row)

    def worker() -> None:
        futures = [store.submit(bump) for _ in range(25)]
        for future in futures:
            future.result()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    row = store.read(lambda t: t.load_state("u1", policy.name))
    assert row.reward_count == 200
    assert row.state.n_updates == 200


def test_failing_job_in_a_batch_does_not_undo_its_neighbours(store: Store) -> None:
    def good(i: int):
        return lambda t: t.set_setting(f"k{i}", "v")

    def bad(t: Txn) -> None:
        t.set_setting("bad", "v")
        raise ValueError("refused")

    futures = [store.submit(good(0)), store.submit(bad), store.submit(good(1))]
    futures[0].result()
    futures[2].result()
    with pytest.raises(ValueError, match="refused"):
        futures[1].result()
    assert store.read(lambda t: t.get_setting("k0")) == "v"
    assert store.read(lambda t: t.get_setting("k1")) == "v"
    assert store.read(lambda t: t.get_setting("bad")) is None


def test_a_saved_row_is_the_stores(store: Store) -> None:
    """Saving hands the row's arrays over: the memory store keeps them without a copy and
    read-only, so the caller cannot change the stored model through them either."""
    row = trained_row()
    store.write(lambda t: t.save_state("u1", "ucb-ix1", row))
    kept = row.state.A.copy()
    with contextlib.suppress(ValueError):
        row.state.A[0, 0] += 1.0
    loaded = store.read(lambda t: t.load_state("u1", "ucb-ix1"))
    assert loaded is not None
    np.testing.assert_array_equal(loaded.state.A, kept)


def test_changing_a_loaded_row_does_not_change_the_stored_model(store: Store) -> None:
    row = trained_row()
    store.write(lambda t: t.save_state("u1", "ucb-ix1", row))
    kept = row.state.A[0, 0]
    read = store.read(lambda t: t.load_state("u1", "ucb-ix1"))
    assert read is not None
    # The memory store hands out its own arrays, read-only, for reading.
    with contextlib.suppress(ValueError):
        read.state.A[0, 0] += 1.0
    locked = store.write(lambda t: t.load_state("u1", "ucb-ix1", for_update=True))
    assert locked is not None
    assert locked.state.A[0, 0] == kept
    # A row loaded for update is the caller's to change through the model, which copies
    # whatever array the store handed out read-only before writing into it.
    policy = get_policy("ucb-ix1")
    policy.learn(locked.state, np.ones(policy.dim), 1.0)
    assert locked.state.A[0, 0] == kept + 1.0
    again = store.read(lambda t: t.load_state("u1", "ucb-ix1"))
    assert again is not None
    assert again.state.A[0, 0] == kept
    assert again.state.n_updates == row.state.n_updates
