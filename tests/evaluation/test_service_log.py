"""Off-policy evaluation on the engine's own log, against values known from the world."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from oo_ml import Candidate, Context, get_policy
from oo_ml.engine import Engine, EngineConfig
from oo_ml.ope.evaluation import collect, estimate_all, evaluate, evaluate_many
from oo_ml.ope.log import Round, iter_rounds
from oo_ml.store.base import ShadowRecord
from oo_ml.store.memory import MemoryStore
from oo_ml.types import Action, Outcome

from .world import expected_reward, outcome_for, play_engine, round_inputs, seeded_engine


def logged_engine(
    policy: str,
    *,
    users: int = 20,
    rounds: int = 30,
    seed: int = 1,
    shadows: tuple[str, ...] = (),
) -> Engine:
    """An engine whose log holds ``users`` × ``rounds`` decisions of ``policy`` with feedback."""
    engine = seeded_engine(
        MemoryStore(), policy, start=1_700_000_000, tick=0.001, seed=seed + 1000, shadows=shadows
    )
    play_engine(engine, users=users, rounds=rounds, seed=seed)
    return engine


@pytest.fixture(scope="module")
def egreedy_log() -> Engine:
    return logged_engine("egreedy-v1")


def test_the_logging_policy_is_evaluated_with_its_logged_probabilities(
    egreedy_log: Engine,
) -> None:
    result = evaluate(egreedy_log.store, "egreedy-v1")
    assert result.n == 600
    assert result.sources == {"logged": 600}
    assert result.logged is not None
    # Target = logging: every weight is 1, so IPS and SNIPS are the logged mean exactly.
    assert result.estimates["ips"].value == pytest.approx(result.logged.value, abs=1e-12)
    assert result.estimates["snips"].value == pytest.approx(result.logged.value, abs=1e-12)
    assert result.logged_by_policy == {"egreedy-v1": (600, pytest.approx(result.logged.value))}


def test_a_replayed_policy_is_estimated_within_its_interval_of_the_true_value(
    egreedy_log: Engine,
) -> None:
    """The replayed policy's true value is known exactly: Σₖ π(k)·μₖ per logged round."""
    policy = get_policy("ucb-ix1")
    rounds = list(iter_rounds(egreedy_log.store))
    data = collect(rounds, policy)
    assert data.sources == {"replayed": 600}
    truth = np.mean(
        [
            sum(
                p * expected_reward(c)
                for p, c in zip(data.target_dist[i], decision.candidates, strict=False)
            )
            for i, (decision, _) in enumerate(rounds)
        ]
    )
    estimates = estimate_all(data)
    for name in ("ips", "snips", "dr"):
        est = estimates[name]
        assert est.lower <= truth <= est.upper, (name, est, truth)
    # The source is invisible to egreedy-v1's features and visible to ucb-ix1's: the
    # estimate must say ucb-ix1 is better, by more than its interval.
    logged_mean = float(data.reward.mean())
    assert truth > logged_mean + 0.3
    assert estimates["dr"].lower > logged_mean


def test_unusable_rounds_are_counted_by_reason(egreedy_log: Engine) -> None:
    store = MemoryStore()
    engine = Engine(store, EngineConfig(default_policy="egreedy-v1"), seed_source=lambda: 5)
    candidates = [Candidate("a", False, 1.0, 2, "calendar"), Candidate("b", True, 3.0, 1, "email")]
    answered = engine.rank("u", Context(9, 1), candidates)
    engine.feedback(answered.event_id, Outcome(Action.DONE, 30_000))
    engine.rank("u", Context(9, 1), candidates)  # no feedback yet
    engine.store.write(
        engine.legacy_reward_job(
            "u",
            "egreedy-v1",
            "never-ranked",
            0.5,
            client_candidate=Candidate("never-ranked", False, 0.0, 1, "todoist"),
            client_context=Context(9, 1),
        )
    )
    for policy in ("ucb-ix1", "egreedy-v1"):  # whether or not it takes the logged action
        result = evaluate(store, policy)
        assert result.n == 1
        assert result.skipped == {"no feedback yet": 1, "legacy record, no probabilities": 1}
        assert {"ips", "dm", "dr"} <= set(result.estimates)


def test_the_window_and_the_logging_policy_select_rounds(egreedy_log: Engine) -> None:
    rounds = list(iter_rounds(egreedy_log.store))
    cut = rounds[100][0].created_ms
    assert evaluate(egreedy_log.store, "ucb-ix1", until_ms=cut).n == 100
    assert evaluate(egreedy_log.store, "ucb-ix1", since_ms=cut).n == 500
    assert evaluate(egreedy_log.store, "ucb-ix1", logged_policies=["linucb-v1"]).n == 0
    assert evaluate(egreedy_log.store, "ucb-ix1", max_rounds=50).n == 50


def test_replay_is_deterministic(egreedy_log: Engine) -> None:
    a = evaluate(egreedy_log.store, "ucb-pop1")
    b = evaluate(egreedy_log.store, "ucb-pop1")
    assert a.to_dict() == b.to_dict()
    assert a.sources == {"replayed": 600}


def test_a_shadow_is_evaluated_with_its_logged_probabilities() -> None:
    engine = logged_engine("egreedy-v1", users=10, rounds=20, shadows=("ucb-ix1",))
    shadowed = evaluate(engine.store, "ucb-ix1")
    assert shadowed.sources == {"shadow": 200}
    # The replay's approximation is exactly what a shadow learns: the same logged actions in
    # the same order, so without a population prior the replayed probabilities are the shadow's.
    logged = list(iter_rounds(engine.store))
    replayed = collect(logged, get_policy("ucb-ix1"))
    shadows = engine.store.read(lambda t: t.shadows_for([d.event_id for d, _ in logged]))
    for i, (decision, _) in enumerate(logged):
        (record,) = shadows[decision.event_id]
        k = len(decision.candidates)
        np.testing.assert_allclose(replayed.target_dist[i, :k], record.probabilities, atol=1e-9)


def _without_means(rounds: list[Round], since: int = 0) -> list[Round]:
    """``rounds`` as if those from index ``since`` on were logged before means were kept."""
    return [
        (dataclasses.replace(d, means=None) if i >= since else d, f)
        for i, (d, f) in enumerate(rounds)
    ]


def _shadow_lookup(engine: Engine, policy: str, *, since: int = 0) -> Callable[..., Any]:
    """The shadow records of ``policy``, without their means from the ``since``-th round on."""
    order = {d.event_id: i for i, (d, _) in enumerate(iter_rounds(engine.store))}

    def lookup(event_ids: Sequence[str]) -> dict[str, ShadowRecord]:
        found = engine.store.read(lambda t: t.shadows_for(event_ids))
        return {
            e: dataclasses.replace(r, means=None) if order[e] >= since else r
            for e, records in found.items()
            for r in records
            if r.policy == policy
        }

    return lookup


@pytest.mark.parametrize("policy", ["egreedy-v1", "ucb-ix1", "ts-ix1"])
def test_logged_means_are_the_reward_model_a_replay_would_learn(policy: str) -> None:
    """Served (``egreedy-v1``) or shadowed, a policy's logged means are its model's θ·x before
    each round, which a replay of the log learns again: the same numbers, bit for bit, with no
    replay at all."""
    engine = logged_engine("egreedy-v1", users=8, rounds=25, shadows=("ucb-ix1", "ts-ix1"))
    rounds = list(iter_rounds(engine.store))
    target = get_policy(policy)
    logged = collect(rounds, target, shadows=_shadow_lookup(engine, policy, since=10**9))
    replayed = collect(_without_means(rounds), target, shadows=_shadow_lookup(engine, policy))
    assert logged.q_sources == {"logged": 200}
    assert replayed.q_sources == {"replayed": 200}
    assert logged.q_hat.tobytes() == replayed.q_hat.tobytes()
    assert logged.target_dist.tobytes() == replayed.target_dist.tobytes()
    evaluated = evaluate(engine.store, policy)
    assert evaluated.reward_model == {"logged": 200}
    assert evaluated.to_dict()["reward_model"] == {"logged": 200}


@pytest.mark.parametrize("policy", ["ucb-ix1", "ucb-pop1"])
def test_rounds_without_means_after_rounds_with_them_are_replayed_exactly(policy: str) -> None:
    """A shadow dropped half-way (or a log that stops keeping means): the replay, idle while
    the logged means served, learns everything before the first round that needs it and then
    gives that round exactly what a replay from the start gives — population refits
    included."""
    engine = logged_engine("egreedy-v1", users=8, rounds=25, shadows=(policy,))
    rounds = list(iter_rounds(engine.store))
    target = get_policy(policy)
    half = collect(
        _without_means(rounds, since=100),
        target,
        shadows=_shadow_lookup(engine, policy, since=100),
    )
    whole = collect(_without_means(rounds), target, shadows=_shadow_lookup(engine, policy))
    assert half.q_sources == {"logged": 100, "replayed": 100}
    assert half.q_hat[100:].tobytes() == whole.q_hat[100:].tobytes()
    assert half.target_dist.tobytes() == whole.target_dist.tobytes()  # the shadow's, logged


def test_a_population_shadow_is_evaluated_from_the_log_alone() -> None:
    engine = logged_engine("egreedy-v1", users=8, rounds=25, shadows=("ucb-pop5",))
    result = evaluate(engine.store, "ucb-pop5")
    assert (result.sources, result.reward_model) == ({"shadow": 200}, {"logged": 200})
    shadows = engine.store.read(
        lambda t: t.shadows_for([d.event_id for d, _ in iter_rounds(engine.store)])
    )
    data = collect(
        iter_rounds(engine.store),
        get_policy("ucb-pop5"),
        shadows=_shadow_lookup(engine, "ucb-pop5", since=10**9),
    )
    for i, (record,) in enumerate(shadows.values()):
        assert record.means is not None
        k = len(record.means)
        assert data.q_hat[i, :k].tobytes() == np.clip(record.means, -1.0, 1.0).tobytes()


def test_several_policies_read_from_one_pass_are_each_evaluated_as_alone() -> None:
    engine = logged_engine("egreedy-v1", users=6, rounds=20, shadows=("ucb-pop1", "ts-ix1"))
    names = ["ucb-pop1", "egreedy-v1", "ts-ix1", "linucb-v1", "ucb-pop1"]
    together = evaluate_many(engine.store, names, max_rounds=100)
    alone = [evaluate(engine.store, name, max_rounds=100) for name in names]
    assert [r.to_dict() for r in together] == [r.to_dict() for r in alone]
    assert [r.sources for r in together] == [
        {"shadow": 100},
        {"logged": 100},
        {"shadow": 100},
        {"replayed": 100},
        {"shadow": 100},
    ]


def test_a_round_that_taught_nothing_still_starts_its_users_model_where_a_replay_would() -> None:
    """A user's first answer came after a reset (not applied): an eager replay makes their
    model at that round, with the population of then, and the lazy one must too, not later
    with the population of when it is first needed."""
    engine = seeded_engine(
        MemoryStore(), "egreedy-v1", start=1_700_000_000, tick=0.001, seed=5, shadows=("ucb-pop1",)
    )
    rng = np.random.default_rng(3)
    context, candidates = round_inputs(rng)
    early = engine.rank("late-joiner", context, candidates)
    engine.reset_user("late-joiner")
    engine.feedback(early.event_id, outcome_for(candidates[early.chosen], rng))
    play_engine(engine, users=8, rounds=25, seed=4)
    for _ in range(3):
        context, candidates = round_inputs(rng)
        later = engine.rank("late-joiner", context, candidates)
        engine.feedback(later.event_id, outcome_for(candidates[later.chosen], rng))
    rounds = list(iter_rounds(engine.store))
    assert rounds[0][1] is not None
    assert not rounds[0][1].applied
    policy, since = get_policy("ucb-pop1"), len(rounds) - 3
    half = collect(
        _without_means(rounds, since=since),
        policy,
        shadows=_shadow_lookup(engine, "ucb-pop1", since=since),
    )
    whole = collect(_without_means(rounds), policy, shadows=_shadow_lookup(engine, "ucb-pop1"))
    assert half.q_sources == {"logged": since, "replayed": 3}
    assert half.q_hat[since:].tobytes() == whole.q_hat[since:].tobytes()
