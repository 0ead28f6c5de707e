"""``linucb-v1`` and ``egreedy-v1`` choose what the existing service chooses from the same A, b
and candidates. The old arithmetic is re-stated here independently of oo_ml's code."""

from __future__ import annotations

import math

import numpy as np
import pytest

from oo_ml import Candidate, Context, RidgeState, get_policy
from oo_ml.policies.model import STATE_SCHEMA


def old_features(context: Context, c: Candidate, with_dow: bool) -> np.ndarray:
    h = context.hour_of_day
    row = [
        math.sin(2 * math.pi * h / 24),
        math.cos(2 * math.pi * h / 24),
        float(c.is_overdue),
        min(float(c.task_age_days), 30.0) / 30.0,
        (float(c.priority) - 1.0) / 3.0,
    ]
    if with_dow:
        d = context.day_of_week
        row += [math.sin(2 * math.pi * d / 7), math.cos(2 * math.pi * d / 7)]
    return np.array(row)


def old_linucb_choice(
    a: np.ndarray, b: np.ndarray, context: Context, cands: list[Candidate]
) -> str:
    a_inv = np.linalg.inv(a)
    theta = a_inv @ b
    best_id, best = "", -float("inf")
    for c in cands:
        x = old_features(context, c, with_dow=False)
        ucb = float(theta @ x) + 1.0 * math.sqrt(float(x @ a_inv @ x))
        if ucb > best:
            best_id, best = c.id, ucb
    return best_id


def old_greedy_scores(a: np.ndarray, b: np.ndarray, context: Context, cands: list[Candidate]):
    theta = np.linalg.inv(a) @ b
    return np.array([float(theta @ old_features(context, c, with_dow=True)) for c in cands])


def state_from(encoder: str, a: np.ndarray, b: np.ndarray) -> RidgeState:
    d = b.shape[0]
    return RidgeState.from_dict(
        {
            "schema": STATE_SCHEMA,
            "encoder": encoder,
            "dim": d,
            "A": a.tolist(),
            "b": b.tolist(),
            "A_inv": np.linalg.inv(a).tolist(),
            "prior_mean": [0.0] * d,
            "n_updates": 0,
            "since_refactor": 0,
        }
    )


def random_problem(rng: np.random.Generator, d: int, k: int):
    xs = rng.normal(0, 1, size=(int(rng.integers(0, 50)), d))
    a = np.eye(d) + xs.T @ xs
    b = xs.T @ rng.uniform(-1, 1, size=xs.shape[0])
    context = Context(int(rng.integers(0, 24)), int(rng.integers(0, 7)))
    cands = [
        Candidate(
            f"t{i}",
            is_overdue=bool(rng.random() < 0.4),
            task_age_days=float(rng.choice([rng.uniform(0, 30), 45.0])),
            priority=int(rng.integers(1, 5)),
        )
        for i in range(k)
    ]
    return a, b, context, cands


@pytest.mark.parametrize("seed", range(200))
def test_linucb_v1_picks_what_the_existing_service_picks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b, context, cands = random_problem(rng, 5, int(rng.integers(2, 12)))
    decision = get_policy("linucb-v1").rank(state_from("v1", a, b), context, cands, rng)
    old = old_linucb_choice(a, b, context, cands)
    if decision.probability == 1.0:
        assert decision.chosen_id == old
    else:  # a tie (e.g. two ages past the 30-day clip): the old pick is one of the tied
        tied = {c.id for c, p in zip(cands, decision.probabilities, strict=True) if p > 0}
        assert old in tied
        assert decision.chosen_id in tied


@pytest.mark.parametrize("seed", range(200))
def test_egreedy_v1_exploits_what_the_existing_service_exploits(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 12))
    a, b, context, cands = random_problem(rng, 7, k)
    decision = get_policy("egreedy-v1").rank(state_from("v2", a, b), context, cands, rng)
    scores = old_greedy_scores(a, b, context, cands)
    # The existing service explores uniformly with probability 0.1 and exploits otherwise; it
    # broke exact ties (identical features) by position, we split them evenly.
    best = np.isclose(scores, scores.max(), rtol=1e-12, atol=1e-12)
    expected = np.full(k, 0.1 / k)
    expected[best] += 0.9 / best.sum()
    np.testing.assert_allclose(decision.probabilities, expected, rtol=0, atol=1e-15)


def test_linucb_v1_learns_the_existing_service_statistics() -> None:
    """The same feedback gives the same A and b as the old ``A += xxᵀ, b += r x``."""
    rng = np.random.default_rng(1)
    policy = get_policy("linucb-v1")
    state = policy.new_state()
    a, b = np.identity(5), np.zeros(5)
    for _ in range(100):
        _, _, context, cands = random_problem(rng, 5, 1)
        reward = float(rng.choice([-1.0, 0.1, -0.3, 1.0, 0.6, 0.3]))
        x = old_features(context, cands[0], with_dow=False)
        a += np.outer(x, x)
        b += reward * x
        policy.learn(state, policy.encoder.encode(context, cands)[0], reward)
    np.testing.assert_allclose(state.A, a, rtol=1e-14)
    np.testing.assert_allclose(state.b, b, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(state.theta, np.linalg.inv(a) @ b, atol=1e-10)
