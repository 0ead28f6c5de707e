"""Shadow policies in the engine: challengers decide beside the served policy on every
decision, are logged with their exact propensities, learn from the logged action's feedback,
and never change what the user sees."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from oo_ml import Candidate, Context, ValidationError, get_policy
from oo_ml.engine import MAX_SHADOW_POLICIES, Engine, EngineConfig
from oo_ml.policies import POLICIES
from oo_ml.store.base import DecisionRecord, ShadowRecord, Store, Txn
from oo_ml.store.memory import MemoryStore
from oo_ml.store.migrate import upgrade
from oo_ml.store.sql import SqlStore
from oo_ml.types import Outcome

SHADOWS = ("ucb-ix1", "ts-ix1", "linucb-v1")


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def make_store(request: pytest.FixtureRequest) -> Iterator[Callable[[], Store]]:
    """Makes the test's store (once) on memory, SQLite or PostgreSQL."""
    opened: list[Store] = []

    def make() -> Store:
        assert not opened, "one store per test"
        if request.param == "memory":
            made: Store = MemoryStore()
        else:
            url = request.getfixturevalue(f"{request.param}_url".replace("postgresql", "postgres"))
            upgrade(url)
            made = SqlStore(url)
        opened.append(made)
        return made

    yield make
    for store in opened:
        store.close()


class Clock:
    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def __call__(self) -> float:
        return self.ms / 1000

    def tick(self, ms: int = 1_000) -> None:
        self.ms += ms


def make_engine(store: Store, shadows: tuple[str, ...] = (), **config: Any) -> Engine:
    seeds = np.random.default_rng(2026)
    return Engine(
        store,
        EngineConfig(shadow_policies=shadows, **config),
        clock=Clock(),
        seed_source=lambda: int(seeds.integers(0, 2**63)),
    )


def tick(engine: Engine) -> None:
    clock = engine.clock
    assert isinstance(clock, Clock)
    clock.tick()


def candidates(rng: np.random.Generator, k: int = 4) -> list[Candidate]:
    return [
        Candidate(
            f"tip-{i}",
            is_overdue=bool(rng.random() < 0.4),
            task_age_days=float(rng.uniform(-3, 20)),
            priority=int(rng.integers(1, 5)),
        )
        for i in range(k)
    ]


ACTIONS = [Outcome("done", 45_000), Outcome("snooze"), Outcome("dismiss"), Outcome("done", 900)]


def traffic(
    engine: Engine, steps: int = 24, users: int = 3, *, name_a_shadow: bool = False
) -> list[DecisionRecord]:
    """Ranks and feedback for a few users; every fourth decision gets no feedback. With
    ``name_a_shadow`` every fifth request names ``ucb-ix1``, which then serves."""
    rng = np.random.default_rng(7)
    made = []
    for step in range(steps):
        context = Context(int(rng.integers(0, 24)), int(rng.integers(0, 7)))
        policy = "ucb-ix1" if name_a_shadow and step % 5 == 4 else None
        record = engine.rank(f"user-{step % users}", context, candidates(rng), policy=policy)
        made.append(record)
        tick(engine)
        if step % 4 != 3:
            engine.feedback(record.event_id, ACTIONS[step % len(ACTIONS)])
            tick(engine)
    return made


def served_view(engine: Engine, records: list[DecisionRecord]) -> list[Any]:
    """Everything the user and the served policy's model can be told apart by."""
    view: list[Any] = []
    for record in records:  # event ids are random: the one thing that may differ
        view.append(
            (
                record.policy,
                record.chosen,
                record.seed,
                record.model_updates,
                record.scores.tobytes(),
                None if record.probabilities is None else record.probabilities.tobytes(),
            )
        )
    for user in sorted({r.user_id for r in records}):
        row = engine.store.read(lambda t, u=user: t.load_state(u, "egreedy-v1"))
        assert row is not None
        view.append((user, row.state.A.tobytes(), row.state.b.tobytes(), row.state.n_updates))
        view.append((row.reward_count, row.reward_sum_milli, row.updated_ms))
    return view


def shadows_of(engine: Engine, event_id: str) -> list[ShadowRecord]:
    return engine.store.read(lambda t: t.shadows_for([event_id]))[event_id]


def test_the_user_sees_exactly_the_same_with_or_without_shadows(
    make_store: Callable[[], Store],
) -> None:
    plain = make_engine(MemoryStore())  # the database must not matter either
    shadowed = make_engine(make_store(), SHADOWS)
    without = traffic(plain)
    with_shadows = traffic(shadowed)
    assert served_view(plain, without) == served_view(shadowed, with_shadows)
    assert all(shadows_of(plain, r.event_id) == [] for r in without)
    for record in with_shadows:
        logged = shadows_of(shadowed, record.event_id)
        assert [s.policy for s in logged] == sorted(SHADOWS)
        for s in logged:
            assert s.probabilities.shape == (len(record.candidates),)
            assert s.probabilities.sum() == pytest.approx(1.0)
            assert 0 <= s.chosen < len(record.candidates)


def test_a_shadow_that_serves_a_request_is_skipped_for_it(
    make_store: Callable[[], Store],
) -> None:
    engine = make_engine(make_store(), SHADOWS)
    records = traffic(engine, steps=10, name_a_shadow=True)
    assert [r.policy for r in records].count("ucb-ix1") == 2
    for record in records:
        expected = sorted(name for name in SHADOWS if name != record.policy)
        assert [s.policy for s in shadows_of(engine, record.event_id)] == expected


def test_shadow_decisions_are_reproducible(make_store: Callable[[], Store]) -> None:
    first = make_engine(MemoryStore(), SHADOWS)
    second = make_engine(make_store(), SHADOWS)
    for a, b in zip(traffic(first), traffic(second), strict=True):
        for x, y in zip(shadows_of(first, a.event_id), shadows_of(second, b.event_id), strict=True):
            assert (x.policy, x.chosen, x.model_updates) == (y.policy, y.chosen, y.model_updates)
            assert x.scores.tobytes() == y.scores.tobytes()
            assert x.probabilities.tobytes() == y.probabilities.tobytes()


def test_a_shadow_learns_the_logged_actions_as_if_taught_directly(
    make_store: Callable[[], Store],
) -> None:
    engine = make_engine(make_store(), SHADOWS)
    records = traffic(engine)
    for name in ("ts-ix1", "linucb-v1"):
        policy = get_policy(name)
        for user in ("user-0", "user-1", "user-2"):
            state = policy.new_state()
            last_ms = 0
            for record in records:
                feedback = engine.store.read(lambda t, r=record: t.get_feedback(r.event_id))
                if record.user_id != user or feedback is None:
                    continue
                x = policy.encoder.encode(record.context, record.candidates)[record.chosen]
                policy.learn(state, x, feedback.reward)
                last_ms = feedback.created_ms
            row = engine.store.read(lambda t, u=user, p=name: t.load_state(u, p))
            assert row is not None
            assert row.state.n_updates == state.n_updates > 0
            np.testing.assert_array_equal(row.state.A, state.A)
            np.testing.assert_array_equal(row.state.b, state.b)
            # Rewards it earned serving: none; when it last learned: the last feedback.
            assert (row.reward_count, row.reward_sum_milli) == (0, 0)
            assert row.updated_ms == last_ms


def test_each_shadow_decides_with_the_model_it_had_then(make_store: Callable[[], Store]) -> None:
    engine = make_engine(make_store(), ("linucb-v1",))
    records = traffic(engine, steps=12, users=1)
    seen = 0
    for record in records:
        (logged,) = shadows_of(engine, record.event_id)
        assert logged.model_updates == seen
        seen += engine.store.read(lambda t, r=record: t.get_feedback(r.event_id)) is not None


def test_decisions_and_shadows_log_what_their_model_expected_of_each_candidate(
    make_store: Callable[[], Store],
) -> None:
    """``means`` is θ·x of the model each policy decided with: what off-policy evaluation's
    reward model would otherwise learn again by replaying the whole log."""
    engine = make_engine(make_store(), SHADOWS)
    rng = np.random.default_rng(11)
    bonus_seen = False
    for step in range(16):
        user, context, shown = f"user-{step % 2}", Context(step % 24, step % 7), candidates(rng)
        expected = {}
        for name in ("egreedy-v1", *SHADOWS):
            policy = get_policy(name)
            row = engine.store.read(lambda t, u=user, n=name: t.load_state(u, n))
            theta = policy.new_state().theta if row is None else row.state.theta
            expected[name] = policy.encoder.encode(context, shown) @ theta
        record = engine.rank(user, context, shown)
        tick(engine)
        shadows = shadows_of(engine, record.event_id)
        logged = {record.policy: record} | {shadow.policy: shadow for shadow in shadows}
        assert set(logged) == set(expected)
        for name, means in expected.items():
            found = logged[name].means
            assert found is not None
            assert found.tobytes() == means.tobytes(), name
        # UCB ranks by the means plus a bonus; the others by the means themselves.
        ucb = logged["ucb-ix1"]
        bonus_seen |= not np.array_equal(ucb.scores, ucb.means)
        assert np.array_equal(record.scores, record.means)
        engine.feedback(record.event_id, ACTIONS[step % len(ACTIONS)])
        tick(engine)
    assert bonus_seen


def test_a_shadow_learns_from_default_and_legacy_rewards(make_store: Callable[[], Store]) -> None:
    engine = make_engine(make_store(), ("linucb-v1",), reward_wait_ms=60_000, default_reward=-0.2)
    rng = np.random.default_rng(3)
    shown = engine.rank("u", Context(9, 1), candidates(rng))
    waiting = engine.rank("u", Context(10, 1), candidates(rng))
    tick(engine)
    job = engine.legacy_reward_job(
        "u",
        "egreedy-v1",
        shown.chosen_id,
        0.5,
        client_candidate=Candidate(shown.chosen_id),
        client_context=Context(9, 1),
    )
    engine.store.write(job)
    engine.clock.tick(120_000)  # type: ignore[attr-defined]
    assert engine.settle() == 1
    policy = get_policy("linucb-v1")
    state = policy.new_state()
    for record, reward in ((shown, 0.5), (waiting, -0.2)):
        policy.learn(
            state, policy.encoder.encode(record.context, record.candidates)[record.chosen], reward
        )
    row = engine.store.read(lambda t: t.load_state("u", "linucb-v1"))
    assert row is not None
    np.testing.assert_array_equal(row.state.b, state.b)
    assert row.state.n_updates == 2


def test_duplicate_feedback_teaches_a_shadow_once(make_store: Callable[[], Store]) -> None:
    engine = make_engine(make_store(), ("linucb-v1",))
    record = engine.rank("u", Context(9, 1), candidates(np.random.default_rng(1)))
    assert not engine.feedback(record.event_id, Outcome("done", 30_000)).duplicate
    assert engine.feedback(record.event_id, Outcome("dismiss")).duplicate
    row = engine.store.read(lambda t: t.load_state("u", "linucb-v1"))
    assert row is not None
    assert row.state.n_updates == 1


def test_reset_stops_older_decisions_teaching_shadows(make_store: Callable[[], Store]) -> None:
    engine = make_engine(make_store(), ("linucb-v1",))
    rng = np.random.default_rng(2)
    before = engine.rank("u", Context(9, 1), candidates(rng))
    tick(engine)
    engine.reset_user("u")
    tick(engine)
    after = engine.rank("u", Context(9, 1), candidates(rng))
    assert not engine.feedback(before.event_id, Outcome("done", 30_000)).feedback.applied
    assert engine.store.read(lambda t: t.load_state("u", "linucb-v1")) is None
    assert engine.feedback(after.event_id, Outcome("done", 30_000)).feedback.applied
    row = engine.store.read(lambda t: t.load_state("u", "linucb-v1"))
    assert row is not None
    assert row.state.n_updates == 1


def test_forget_erases_shadow_decisions_and_models(make_store: Callable[[], Store]) -> None:
    engine = make_engine(make_store(), SHADOWS)
    rng = np.random.default_rng(4)
    record = engine.rank("u", Context(9, 1), candidates(rng))
    other = engine.rank("v", Context(9, 1), candidates(rng))
    engine.feedback(record.event_id, Outcome("done", 30_000))
    assert len(shadows_of(engine, record.event_id)) == 3
    # 1 decision, 1 feedback, 3 shadow decisions, 1 served and 3 shadow models.
    assert engine.forget_user("u") == 9
    assert shadows_of(engine, record.event_id) == []
    assert engine.store.read(lambda t: t.list_states("u")) == []
    assert len(shadows_of(engine, other.event_id)) == 3


def test_a_population_policy_shadows_and_learns(make_store: Callable[[], Store]) -> None:
    engine = make_engine(make_store(), ("ucb-pop1",))
    records = traffic(engine, steps=8, users=2)
    assert all(len(shadows_of(engine, r.event_id)) == 1 for r in records)
    row = engine.store.read(lambda t: t.load_state("user-0", "ucb-pop1"))
    taught = [r for r in records if r.user_id == "user-0"]
    assert all(engine.store.read(lambda t, r=r: t.get_feedback(r.event_id)) for r in taught)
    assert row is not None
    assert row.state.n_updates == len(taught) == 4


# -- configuration ------------------------------------------------------------------------


def test_the_database_override_replaces_the_configured_shadows() -> None:
    engine = make_engine(MemoryStore(), ("linucb-v1",))
    assert [p.name for p in engine.shadow_policies()] == ["linucb-v1"]
    assert [p.name for p in engine.set_shadow_policies(["ts-ix1", "ucb-ix1"])] == [
        "ts-ix1",
        "ucb-ix1",
    ]
    other = Engine(engine.store, engine.config)  # another process reads it from the database
    assert [p.name for p in other.shadow_policies()] == ["ts-ix1", "ucb-ix1"]
    engine.set_shadow_policies([])
    assert Engine(engine.store, engine.config).shadow_policies() == ()
    record = engine.rank("u", Context(9, 1), candidates(np.random.default_rng(0)))
    assert shadows_of(engine, record.event_id) == []


@pytest.mark.parametrize(
    ("names", "field", "message"),
    [
        (["nope-v9"], "policies[0]", "nope-v9"),
        (["linucb-v1", "ts-ix1", "linucb-v1"], "policies[2]", "twice"),
        (list(POLICIES)[: MAX_SHADOW_POLICIES + 1], "policies", "at most"),
        ("linucb-v1", "policies", "list"),
        ([3], "policies[0]", "policy name"),
    ],
)
def test_bad_shadow_lists_are_refused_and_change_nothing(
    names: Any, field: str, message: str
) -> None:
    engine = make_engine(MemoryStore(), ("linucb-v1",))
    with pytest.raises(ValidationError, match=message) as caught:
        engine.set_shadow_policies(names)
    assert caught.value.field == field
    assert [p.name for p in Engine(engine.store, engine.config).shadow_policies()] == ["linucb-v1"]


def test_engine_config_checks_its_shadows() -> None:
    with pytest.raises(ValidationError, match="shadow_policies\\[1\\]"):
        EngineConfig(shadow_policies=("linucb-v1", "nope"))


class CountingStore:
    """A real store whose jobs see a transaction that counts the operations they call."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def _wrap(self, job: Callable[[Txn], Any]) -> Callable[[Txn], Any]:
        calls = self.calls

        class Counting:
            def __init__(self, txn: Txn) -> None:
                self._txn = txn

            def __getattr__(self, name: str) -> Any:
                calls.append(name)
                return getattr(self._txn, name)

        return lambda txn: job(Counting(txn))  # type: ignore[arg-type]

    def write(self, job: Callable[[Txn], Any]) -> Any:
        return self.inner.write(self._wrap(job))

    def read(self, job: Callable[[Txn], Any]) -> Any:
        return self.inner.read(self._wrap(job))

    def submit(self, job: Callable[[Txn], Any]) -> Any:
        return self.inner.submit(self._wrap(job))

    def close(self) -> None:
        self.inner.close()


def test_without_shadows_rank_and_feedback_make_no_extra_store_calls() -> None:
    store = CountingStore(MemoryStore())
    engine = make_engine(store)  # type: ignore[arg-type]
    engine.active_policy()  # the cached settings are read once a second at most
    engine.shadow_policies()
    store.calls.clear()
    record = engine.rank("u", Context(9, 1), candidates(np.random.default_rng(0)))
    assert store.calls == ["load_state", "insert_decision"]
    store.calls.clear()
    engine.feedback(record.event_id, Outcome("done", 30_000))
    assert store.calls == [
        "get_decision",
        "load_state",
        "get_feedback",
        "get_user",
        "save_state",
        "insert_feedback",
    ]
