"""Learning smoke tests: every exploration family beats random choice on a simple problem, and
only the interaction encoder can learn a preference that depends on the time of day."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from oo_ml import Candidate, Context, Policy, get_encoder, get_policy
from oo_ml.policies import UCB, EpsilonGreedy, Greedy, Softmax, SquareCB, Thompson

Truth = Callable[[Context, Candidate], float]


def simple_truth(context: Context, c: Candidate) -> float:
    """High priority good, overdue bad, whatever the time."""
    return 0.8 * (c.priority - 1) / 3 - 0.6 * c.is_overdue - 0.1


def time_of_day_truth(context: Context, c: Candidate) -> float:
    """Mornings favour high priority; evenings favour overdue chores."""
    if context.hour_of_day < 12:
        return 0.9 * (c.priority - 1) / 3 - 0.4 * c.is_overdue
    return 0.8 * c.is_overdue - 0.3 * (c.priority - 1) / 3


def normalized_score(policy: Policy, truth: Truth, rounds: int = 600, seed: int = 0) -> float:
    """(policy − random) / (oracle − random) in expected reward over the second half."""
    rng = np.random.default_rng(seed)
    state = policy.new_state()
    got = rand = best = 0.0
    for t in range(rounds):
        context = Context(int(rng.choice([8, 9, 10, 19, 20, 21])), int(rng.integers(0, 7)))
        candidates = [
            Candidate(
                f"c{i}",
                is_overdue=bool(rng.random() < 0.4),
                task_age_days=float(rng.uniform(0, 20)),
                priority=int(rng.integers(1, 5)),
            )
            for i in range(5)
        ]
        means = np.array([truth(context, c) for c in candidates])
        decision = policy.rank(state, context, candidates, rng)
        reward = float(means[decision.chosen] + rng.normal(0, 0.3))
        policy.learn(state, decision.chosen_features, reward)
        if t >= rounds // 2:
            got += means[decision.chosen]
            rand += means.mean()
            best += means.max()
    return (got - rand) / (best - rand)


FAMILIES = [
    Greedy(),
    EpsilonGreedy(0.1),
    UCB(1.0),
    Thompson(0.3, draws=64),
    Softmax(0.05),
    SquareCB(10.0, 0.5),
]


@pytest.mark.parametrize("exploration", FAMILIES, ids=lambda e: e.name)
def test_every_family_beats_random_on_a_simple_problem(exploration) -> None:  # type: ignore[no-untyped-def]
    policy = Policy(f"smoke-{exploration.name}", get_encoder("v2"), exploration, description="t")
    assert normalized_score(policy, simple_truth) > 0.6


@pytest.mark.parametrize("name", ["ucb-ix1", "squarecb-ix1", "ts-ix1"])
def test_interaction_policies_learn_a_time_of_day_preference(name: str) -> None:
    assert normalized_score(get_policy(name), time_of_day_truth) > 0.7


@pytest.mark.parametrize("name", ["linucb-v1", "egreedy-v1"])
def test_existing_policies_cannot_learn_a_time_of_day_preference(name: str) -> None:
    """Their hour and day features shift every score equally, so the winner ignores the time."""
    assert normalized_score(get_policy(name), time_of_day_truth) < 0.5
