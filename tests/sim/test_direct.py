"""The simulator's own decisions (``DirectDecisions``) make the very events the serving engine
makes: same choices, probabilities, rewards and learned states, step for step."""

from __future__ import annotations

from typing import Any

import pytest

from oo_ml import Action, ValidationError
from oo_ml.policies import POLICIES, get_policy
from oo_ml.policies.model import RidgeModel
from oo_ml.rewards import get_reward_rule
from oo_ml.sim.direct import DirectDecisions, takes
from oo_ml.sim.persona import load_personas, shipped_personas
from oo_ml.sim.runner import (
    Cohort,
    InProcessClient,
    Member,
    SimConfig,
    SimRunner,
    _seed_streams,
)
from oo_ml.store.memory import MemoryStore
from oo_ml.store.migrate import upgrade
from oo_ml.store.sql import SqlStore

TAKEN = tuple(name for name, policy in POLICIES.items() if takes(policy))
"""Every published policy the direct path decides for."""


def _events(store: Any, run_id: str) -> list[Any]:
    """A run's events without the run id: (policy, user, step, persona, hour, day, chosen,
    probability, action, dwell, reward, and the oracle's three numbers)."""
    return [tuple(e)[1:] for e in store.read(lambda t: t.sim_events(run_id))]


def test_the_direct_path_takes_every_policy_without_a_population_prior() -> None:
    assert set(TAKEN) == {n for n, p in POLICIES.items() if p.population is None}
    assert {"egreedy-v1", "linucb-v1", "ucb-ix1", "squarecb-ix1", "ts-ix1"} <= set(TAKEN)
    assert not takes(get_policy("ucb-pop5"))


@pytest.mark.parametrize("pool_size", [2, 10, 30])
def test_a_run_makes_the_same_events_with_or_without_the_engine(pool_size: int) -> None:
    """Every taken policy, and a population policy beside them (which goes through the
    engine either way), on every shipped persona, drifts included, past step 75."""
    config = SimConfig(
        (*TAKEN, "ucb-pop5"), tuple(shipped_personas()), users=9, steps=90, seed=5,
        pool_size=pool_size,
    )  # fmt: skip
    runs = {}
    for direct in (False, True):
        store = MemoryStore()
        run = SimRunner(store, direct=direct).run(config)
        assert run.status == "done", run.error
        runs[direct] = (run.summary, _events(store, run.run_id))
    assert len(runs[True][1]) == config.total_steps
    assert runs[True] == runs[False]
    # Not a run of ties: the policies chose differently, and every action came up.
    events = runs[True][1]
    by_policy = {p: [e[6] for e in events if e[0] == p] for p in config.policies}
    assert len({tuple(chosen) for chosen in by_policy.values()}) == len(config.policies)
    assert {e[8] for e in events} == {"done", "snooze", "dismiss"}


def test_learned_states_are_the_engines_bit_for_bit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A cohort played step by step through both: every member's A, b and θ are the engine's
    stored state's, to the last bit, at the end; a night owl's own waking hours and its
    drift included."""
    (tmp_path / "owl.toml").write_text(
        'name = "owl"\ndescription = "Late."\nawake = [18, 3]\n'
        "[[when]]\nhours = [22, 2]\npriority = 1.0\n"
        '[drift]\nat_step = 30\npersona = "quick-wins"\n'
    )
    personas = load_personas([str(tmp_path / "owl.toml"), "deadline-driven", "weekday-weekend"])
    members = [
        Member(policy, f"{policy}/u{u}", u, personas[u % 3]) for policy in TAKEN for u in range(4)
    ]
    rule = get_reward_rule("dwell-v1")
    through_engine, direct_cohort = Cohort(members, seed=2), Cohort(members, seed=2)
    client = InProcessClient("dwell-v1", 2)
    direct = DirectDecisions([m.policy for m in members], rule, _seed_streams(2))
    unused = InProcessClient("dwell-v1", 2)
    for step in range(60):
        engine_events = through_engine.play(client, rule, step)
        direct_events = direct_cohort.play(unused, rule, step, direct)
        assert direct_events == engine_events
    assert len(direct) == len(members)
    for m, member in enumerate(members):
        row = client.engine.store.read(
            lambda t, u=member.user_id, p=member.policy: t.load_state(u, p)
        )
        assert row is not None
        mine = direct.state(m)
        for name in ("A", "b", "A_inv", "theta"):
            assert getattr(mine, name).tobytes() == getattr(row.state, name).tobytes(), name
        assert mine.n_updates == row.state.n_updates == 60
    # The engine that the direct path was handed decided nothing.
    assert unused.engine.store.read(lambda t: list(t.logged_rounds(0, 2**62))) == []


def test_the_direct_path_decides_only_for_the_policies_it_takes() -> None:
    members = [
        Member(policy, f"{policy}/u0", 0, shipped_personas()["quick-wins"])
        for policy in ("ucb-pop5", "ucb-ix1")
    ]
    direct = DirectDecisions(
        [m.policy for m in members], get_reward_rule("dwell-v1"), _seed_streams(0)
    )
    cohort = Cohort(members, seed=0)
    rows = direct.see(cohort.pools)
    assert rows[0] is None
    assert rows[1] is not None
    assert rows[1].shape == (int(cohort.pools.count[1]), 44)
    assert len(direct) == 1
    with pytest.raises(KeyError, match="member 0"):
        direct.state(0)


def test_an_age_out_of_range_is_refused_as_the_engine_refuses_it() -> None:
    members = [Member("egreedy-v1", "u0", 0, shipped_personas()["quick-wins"])]
    cohort = Cohort(members, seed=0)
    cohort.pools.day[0] = 80_000  # every task a couple of centuries overdue
    cohort.pools.moved(0)
    direct = DirectDecisions(["egreedy-v1"], get_reward_rule("dwell-v1"), _seed_streams(0))
    with pytest.raises(ValidationError, match="task_age_days"):
        direct.see(cohort.pools)
    with pytest.raises(ValidationError, match="task_age_days"):
        cohort.pools.candidates(0)


def test_runs_on_sqlite_store_the_same_events_either_way(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    store = SqlStore(sqlite_url)
    try:
        config = SimConfig(
            ("egreedy-v1", "ucb-ix1"), ("morning-focused", "shift-change"), 5, 40, seed=3
        )
        engine_run = SimRunner(store, direct=False).run(config)
        direct_run = SimRunner(store).run(config)
        assert direct_run.summary == engine_run.summary
        assert _events(store, direct_run.run_id) == _events(store, engine_run.run_id)
    finally:
        store.close()


def test_rows_are_each_members_candidates_encoded() -> None:
    """What ``see`` hands each member: its candidates as the engine sees them, through its
    policy's encoder, for members of different encoders side by side."""
    personas = list(shipped_personas().values())
    members = [
        Member(policy, f"{policy}/u{u}", u, personas[u])
        for policy in ("linucb-v1", "egreedy-v1", "ucb-ix1", "ucb-ix2")
        for u in range(3)
    ]
    cohort = Cohort(members, seed=7, pool_size=6)
    direct = DirectDecisions(
        [m.policy for m in members], get_reward_rule("dwell-v1"), _seed_streams(7)
    )
    for _ in range(5):
        rows = direct.see(cohort.pools)
        for m, member in enumerate(members):
            encoder = get_policy(member.policy).encoder
            expected = encoder.encode(cohort.pools.context(m), cohort.pools.candidates(m))
            x = rows[m]
            assert x is not None
            assert x.tobytes() == expected.tobytes()
        cohort.pools.advance()


def test_a_discounted_policy_without_a_prior_is_decided_one_user_at_a_time_as_the_engine_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No published policy is discounted without a population prior; one of one's own is
    taken, but not grouped (a discounted update is not rank one), and plays the same."""
    policy = get_policy("ucb-ix1").clone(
        name="test-ucb-discounted", model=RidgeModel(lam=2.0, discount=0.95), description="t"
    )
    monkeypatch.setitem(POLICIES, policy.name, policy)
    config = SimConfig((policy.name, "egreedy-v1"), ("shift-change", "quick-wins"), 4, 40, seed=2)
    runs = []
    for direct in (False, True):
        store = MemoryStore()
        run = SimRunner(store, direct=direct).run(config)
        assert run.status == "done", run.error
        runs.append(_events(store, run.run_id))
    assert runs[0] == runs[1]
    decisions = DirectDecisions(
        [policy.name, "egreedy-v1"], get_reward_rule("dwell-v1"), _seed_streams(0)
    )
    assert decisions._in_group[0] is None  # one at a time
    assert decisions._in_group[1] is not None  # ε-greedy, undiscounted: grouped


def test_groups_refactor_when_the_engine_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy whose A⁻¹ is recomputed every 7 updates: the simulator's stacked states are
    refactored at the same updates as the engine's, and stay equal to them to the bit."""
    for base, name in (("ucb-ix1", "test-ucb-refactor-7"), ("egreedy-v1", "test-eg-refactor-7")):
        policy = get_policy(base).clone(
            name=name, model=RidgeModel(lam=1.0, refactor_every=7), description="test"
        )
        monkeypatch.setitem(POLICIES, name, policy)
    members = [
        Member(policy, f"{policy}/u{u}", u, list(shipped_personas().values())[u])
        for policy in ("test-ucb-refactor-7", "test-eg-refactor-7")
        for u in range(3)
    ]
    rule = get_reward_rule("dwell-v1")
    through_engine, direct_cohort = Cohort(members, seed=9), Cohort(members, seed=9)
    client = InProcessClient("dwell-v1", 9)
    direct = DirectDecisions([m.policy for m in members], rule, _seed_streams(9))
    for step in range(23):
        assert direct_cohort.play(client, rule, step, direct) == through_engine.play(
            client, rule, step
        )
    for m, member in enumerate(members):
        row = client.engine.store.read(
            lambda t, u=member.user_id, p=member.policy: t.load_state(u, p)
        )
        assert row is not None
        mine = direct.state(m)
        assert (mine.n_updates, mine.since_refactor) == (23, 2)
        assert (row.state.n_updates, row.state.since_refactor) == (23, 2)
        for field in ("A", "b", "A_inv", "theta"):
            assert getattr(mine, field).tobytes() == getattr(row.state, field).tobytes(), field


def test_a_group_refuses_to_learn_a_step_some_member_was_not_given_feedback_for() -> None:
    members = [Member("egreedy-v1", f"u{u}", u, shipped_personas()["quick-wins"]) for u in range(3)]
    direct = DirectDecisions(
        [m.policy for m in members], get_reward_rule("dwell-v1"), _seed_streams(0)
    )
    rows = direct.see(Cohort(members, seed=0).pools)
    ranked = direct.rank_all()
    for m in (0, 1):
        index, _ = ranked[m]  # type: ignore[misc]
        direct.feedback(m, rows[m][index], Action.SNOOZE, None)  # type: ignore[index]
    with pytest.raises(RuntimeError, match="2 of 3 members"):
        direct.learned()
