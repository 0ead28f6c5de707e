"""The estimators equal their textbook formulas, written here independently as plain loops."""

from __future__ import annotations

import doctest
import importlib
import math
import statistics
from dataclasses import FrozenInstanceError

import numpy as np
import pytest

from oo_ml.ope import Estimate, dm, dr, ips, normal_quantile, replay, sample_actions, snips

Z95 = 1.959963984540054


def random_logs(seed: int, n: int = 500, k: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    target_dist = rng.dirichlet(np.ones(k), size=n)
    target_dist[: n // 4, -1] = 0.0  # pad a quarter of the rounds to k - 1 candidates
    target_dist /= target_dist.sum(axis=1, keepdims=True)
    action = rng.integers(0, k - 1, size=n)
    return {
        "reward": rng.normal(0.3, 1.0, size=n),
        "pscore": rng.uniform(0.02, 1.0, size=n),
        "target_pscore": target_dist[np.arange(n), action],
        "target_dist": target_dist,
        "q_hat": rng.normal(0.3, 0.5, size=(n, k)),
        "action": action,
    }


def textbook_std_err(terms: list[float]) -> float:
    return statistics.stdev(terms) / math.sqrt(len(terms))


@pytest.mark.parametrize("seed", range(5))
def test_ips_is_the_mean_of_weighted_rewards(seed: int) -> None:
    logs = random_logs(seed)
    terms = [
        r * p / mu
        for r, mu, p in zip(logs["reward"], logs["pscore"], logs["target_pscore"], strict=True)
    ]
    estimate = ips(logs["reward"], logs["pscore"], logs["target_pscore"])
    assert estimate.value == pytest.approx(math.fsum(terms) / len(terms), rel=1e-12, abs=1e-12)
    assert estimate.std_err == pytest.approx(textbook_std_err(terms), rel=1e-12)
    assert estimate.lower == pytest.approx(estimate.value - Z95 * estimate.std_err, rel=1e-12)
    assert estimate.upper == pytest.approx(estimate.value + Z95 * estimate.std_err, rel=1e-12)
    weights = [p / mu for mu, p in zip(logs["pscore"], logs["target_pscore"], strict=True)]
    assert estimate.max_weight == pytest.approx(max(weights), rel=1e-12)
    ess = math.fsum(weights) ** 2 / math.fsum(w * w for w in weights)
    assert estimate.ess == pytest.approx(ess, rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_clipped_ips_caps_each_weight(seed: int) -> None:
    logs = random_logs(seed)
    clip = 3.0
    weights = [p / mu for mu, p in zip(logs["pscore"], logs["target_pscore"], strict=True)]
    terms = [r * min(w, clip) for r, w in zip(logs["reward"], weights, strict=True)]
    estimate = ips(logs["reward"], logs["pscore"], logs["target_pscore"], clip=clip)
    assert estimate.value == pytest.approx(math.fsum(terms) / len(terms), rel=1e-12, abs=1e-12)
    assert estimate.n_clipped == sum(w > clip for w in weights) > 0
    assert estimate.max_weight == clip


@pytest.mark.parametrize("seed", range(5))
def test_snips_is_the_weighted_reward_over_the_weight_sum(seed: int) -> None:
    logs = random_logs(seed)
    weights = [p / mu for mu, p in zip(logs["pscore"], logs["target_pscore"], strict=True)]
    weighted = [r * w for r, w in zip(logs["reward"], weights, strict=True)]
    value = math.fsum(weighted) / math.fsum(weights)
    estimate = snips(logs["reward"], logs["pscore"], logs["target_pscore"])
    assert estimate.value == pytest.approx(value, rel=1e-12, abs=1e-12)
    # Delta method for a ratio of means A/B: var ≈ (var a − 2R cov(a, b) + R² var b) / (b̄² n).
    cov = np.cov(np.array(weighted), np.array(weights), ddof=1)
    n = len(weights)
    variance = (cov[0, 0] - 2 * value * cov[0, 1] + value**2 * cov[1, 1]) / (
        (math.fsum(weights) / n) ** 2 * n
    )
    assert estimate.std_err == pytest.approx(math.sqrt(variance), rel=1e-9)
    assert estimate.method == "delta"


@pytest.mark.parametrize("seed", range(5))
def test_dm_is_the_mean_model_value_under_the_target(seed: int) -> None:
    logs = random_logs(seed)
    terms = [
        math.fsum(p * q for p, q in zip(dist, preds, strict=True))
        for dist, preds in zip(logs["target_dist"], logs["q_hat"], strict=True)
    ]
    estimate = dm(logs["target_dist"], logs["q_hat"])
    assert estimate.value == pytest.approx(math.fsum(terms) / len(terms), rel=1e-12, abs=1e-12)
    assert estimate.std_err == pytest.approx(textbook_std_err(terms), rel=1e-12)
    assert estimate.ess is None


@pytest.mark.parametrize("clip", [None, 2.0])
@pytest.mark.parametrize("seed", range(5))
def test_dr_is_dm_plus_the_weighted_residual(seed: int, clip: float | None) -> None:
    logs = random_logs(seed)
    terms = []
    for i in range(len(logs["reward"])):
        a = logs["action"][i]
        direct = math.fsum(
            p * q for p, q in zip(logs["target_dist"][i], logs["q_hat"][i], strict=True)
        )
        w = logs["target_dist"][i][a] / logs["pscore"][i]
        w = w if clip is None else min(w, clip)
        terms.append(direct + w * (logs["reward"][i] - logs["q_hat"][i][a]))
    estimate = dr(
        logs["reward"],
        logs["pscore"],
        logs["target_dist"],
        logs["q_hat"],
        logs["action"],
        clip=clip,
    )
    assert estimate.value == pytest.approx(math.fsum(terms) / len(terms), rel=1e-12, abs=1e-12)
    assert estimate.std_err == pytest.approx(textbook_std_err(terms), rel=1e-12)
    assert (estimate.n_clipped is None) == (clip is None)


def test_replay_averages_the_matched_rounds() -> None:
    rng = np.random.default_rng(3)
    reward = rng.normal(size=300)
    action = rng.integers(0, 4, size=300)
    target_action = rng.integers(0, 4, size=300)
    kept = [r for r, a, t in zip(reward, action, target_action, strict=True) if a == t]
    estimate = replay(reward, action, target_action)
    assert estimate.n_matched == len(kept)
    assert estimate.n == 300
    assert estimate.value == pytest.approx(math.fsum(kept) / len(kept), rel=1e-12)
    assert estimate.std_err == pytest.approx(textbook_std_err(kept), rel=1e-12)


def test_level_sets_the_normal_quantile() -> None:
    logs = random_logs(0)
    wide = ips(logs["reward"], logs["pscore"], logs["target_pscore"])
    narrow = ips(logs["reward"], logs["pscore"], logs["target_pscore"], level=0.9)
    assert normal_quantile(0.95) == pytest.approx(Z95, rel=1e-12)
    assert narrow.width / wide.width == pytest.approx(1.6448536269514722 / Z95, rel=1e-12)
    assert narrow.level == 0.9


def test_a_single_round_has_an_unbounded_interval() -> None:
    estimate = ips([1.0], [0.5], [0.5])
    assert estimate.value == 1.0
    assert estimate.std_err == math.inf
    assert (estimate.lower, estimate.upper) == (-math.inf, math.inf)


def test_estimates_are_frozen() -> None:
    estimate = dm([[1.0]], [[0.5]])
    with pytest.raises(FrozenInstanceError):
        estimate.value = 2.0  # type: ignore[misc]
    assert isinstance(estimate, Estimate)


def test_inputs_are_not_mutated_and_lists_equal_arrays() -> None:
    logs = random_logs(1, n=50)
    before = {name: array.copy() for name, array in logs.items()}
    from_arrays = dr(
        logs["reward"], logs["pscore"], logs["target_dist"], logs["q_hat"], logs["action"]
    )
    from_lists = dr(
        *(logs[name].tolist() for name in ("reward", "pscore", "target_dist", "q_hat", "action"))
    )
    assert from_arrays == from_lists
    for name, array in logs.items():
        np.testing.assert_array_equal(array, before[name])


def test_float32_and_integer_inputs_are_accepted() -> None:
    estimate = ips(np.array([1, 0, 1], dtype=np.int8), np.float32([0.5, 0.5, 0.5]), [1, 1, 0])
    assert estimate.value == pytest.approx(2 / 3)
    reward = np.array([True, False])
    assert replay(reward, np.uint8([1, 2]), [1, 2]).value == 0.5


def test_sample_actions_follows_the_distribution_and_never_draws_padding() -> None:
    dist = np.tile([0.1, 0.0, 0.6, 0.3, 0.0], (20_000, 1))
    drawn = sample_actions(dist, seed=11)
    counts = np.bincount(drawn, minlength=5) / 20_000
    assert counts[1] == counts[4] == 0.0
    np.testing.assert_allclose(counts, dist[0], atol=0.015)
    np.testing.assert_array_equal(drawn, sample_actions(dist, seed=11))
    assert not np.array_equal(drawn, sample_actions(dist, seed=12))


@pytest.mark.parametrize("module", ["oo_ml.ope", "oo_ml.ope.estimators", "oo_ml.ope.resampling"])
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_open_bandit_pipelines_one_slot_layout_is_the_same_matrix() -> None:
    """OBP's action_dist and reward-model arrays are rounds × K × slots; one slot gives the
    same estimates as the rounds × K matrix."""
    logs = random_logs(3)
    pi, q = logs["target_dist"], logs["q_hat"]
    assert dm(pi[:, :, None], q[:, :, None]) == dm(pi, q)
    three = dr(logs["reward"], logs["pscore"], pi[:, :, None], q[:, :, None], logs["action"])
    assert three == dr(logs["reward"], logs["pscore"], pi, q, logs["action"])
    drawn = sample_actions(pi[:, :, None], seed=5)
    assert np.array_equal(drawn, sample_actions(pi, seed=5))
