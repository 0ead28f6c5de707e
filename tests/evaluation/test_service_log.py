"""Off-policy evaluation on the engine's own log, against values known from the world."""

from __future__ import annotations

import numpy as np
import pytest

from oo_ml import Candidate, Context, get_policy
from oo_ml.engine import Engine, EngineConfig
from oo_ml.ope.evaluation import collect, estimate_all, evaluate
from oo_ml.ope.log import iter_rounds
from oo_ml.store.memory import MemoryStore
from oo_ml.types import Action, Outcome

from .world import expected_reward, play_engine, seeded_engine


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
