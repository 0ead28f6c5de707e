"""Properties every estimator must keep, whatever the logged data (Hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oo_ml.ope import Estimate, dm, dr, ips, replay, snips

seeds = st.integers(0, 2**32 - 1)
sizes = st.integers(1, 40)
widths = st.integers(1, 6)
PROPERTY_SETTINGS = settings(max_examples=60)


def logs(seed: int, n: int, k: int) -> dict[str, np.ndarray]:
    """n rounds over k slots; a random suffix of each row is padding."""
    rng = np.random.default_rng(seed)
    offered = rng.integers(1, k + 1, size=n)
    target_dist = rng.dirichlet(np.ones(k), size=n) * (np.arange(k) < offered[:, None])
    target_dist /= target_dist.sum(axis=1, keepdims=True)
    action = np.floor(rng.random(n) * offered).astype(np.int64)
    return {
        "reward": rng.normal(0.0, 2.0, size=n),
        "pscore": rng.uniform(0.01, 1.0, size=n),
        "target_dist": target_dist,
        "target_pscore": target_dist[np.arange(n), action],
        "q_hat": rng.normal(0.0, 1.0, size=(n, k)),
        "action": action,
    }


def close(a: float, b: float) -> bool:
    return bool(np.isclose(a, b, rtol=1e-9, atol=1e-9))


def all_estimates(data: dict[str, np.ndarray]) -> list[Estimate]:
    r, mu, pi, a = data["reward"], data["pscore"], data["target_pscore"], data["action"]
    estimates = [
        ips(r, mu, pi),
        ips(r, mu, pi, clip=1.5),
        dm(data["target_dist"], data["q_hat"]),
        dr(r, mu, data["target_dist"], data["q_hat"], a),
        replay(r, a, a),
    ]
    if pi.sum() > 0:
        estimates.append(snips(r, mu, pi))
    return estimates


@PROPERTY_SETTINGS
@given(seed=seeds, n=sizes, k=widths)
def test_interval_is_symmetric_around_the_value(seed: int, n: int, k: int) -> None:
    for estimate in all_estimates(logs(seed, n, k)):
        assert estimate.lower <= estimate.value <= estimate.upper
        if n > 1:
            assert close(estimate.upper - estimate.value, estimate.value - estimate.lower)
            assert close(estimate.width, 2 * 1.959963984540054 * estimate.std_err)


@PROPERTY_SETTINGS
@given(seed=seeds, n=sizes, scale=st.floats(0.01, 1.0))
def test_snips_ignores_a_common_scale_of_the_weights(seed: int, n: int, scale: float) -> None:
    data = logs(seed, n, 3)
    r, mu, pi = data["reward"], data["pscore"], data["target_pscore"]
    base = snips(r, mu, pi)
    for scaled in (snips(r, mu, pi * scale), snips(r, mu * scale, pi)):
        assert close(scaled.value, base.value)
        assert close(scaled.std_err, base.std_err)


@PROPERTY_SETTINGS
@given(seed=seeds, n=sizes)
def test_on_policy_estimates_are_the_mean_reward(seed: int, n: int) -> None:
    data = logs(seed, n, 4)
    r, mu, a = data["reward"], data["pscore"], data["action"]
    for estimate in (ips(r, mu, mu), snips(r, mu, mu), replay(r, a, a)):
        assert close(estimate.value, float(np.mean(r)))
    assert ips(r, mu, mu).ess == pytest.approx(n)


@PROPERTY_SETTINGS
@given(seed=seeds, n=sizes, k=widths, clip=st.none() | st.floats(0.1, 50.0))
def test_dr_with_a_zero_model_is_ips(seed: int, n: int, k: int, clip: float | None) -> None:
    data = logs(seed, n, k)
    zero = np.zeros_like(data["q_hat"])
    doubly = dr(
        data["reward"], data["pscore"], data["target_dist"], zero, data["action"], clip=clip
    )
    plain = ips(data["reward"], data["pscore"], data["target_pscore"], clip=clip)
    assert close(doubly.value, plain.value)
    assert close(doubly.std_err, plain.std_err)
    assert doubly.n_clipped == plain.n_clipped


@PROPERTY_SETTINGS
@given(seed=seeds, n=sizes, k=widths)
def test_dr_is_dm_when_the_model_predicts_the_logged_rewards(seed: int, n: int, k: int) -> None:
    data = logs(seed, n, k)
    q_hat = data["q_hat"].copy()
    q_hat[np.arange(n), data["action"]] = data["reward"]
    doubly = dr(data["reward"], data["pscore"], data["target_dist"], q_hat, data["action"])
    assert close(doubly.value, dm(data["target_dist"], q_hat).value)


@PROPERTY_SETTINGS
@given(seed=seeds, n=sizes, k=widths)
def test_padding_in_the_model_is_never_read(seed: int, n: int, k: int) -> None:
    data = logs(seed, n, k)
    junk = np.where(data["target_dist"] > 0, data["q_hat"], 1e9)
    args = (data["reward"], data["pscore"], data["target_dist"])
    assert close(
        dr(*args, junk, data["action"]).value, dr(*args, data["q_hat"], data["action"]).value
    )
    assert close(dm(data["target_dist"], junk).value, dm(data["target_dist"], data["q_hat"]).value)


@PROPERTY_SETTINGS
@given(seed=seeds, n=sizes)
def test_a_clip_above_every_weight_changes_nothing(seed: int, n: int) -> None:
    data = logs(seed, n, 3)
    r, mu, pi = data["reward"], data["pscore"], data["target_pscore"]
    plain = ips(r, mu, pi)
    assert plain.max_weight is not None
    capped = ips(r, mu, pi, clip=plain.max_weight)
    assert capped.value == plain.value
    assert capped.n_clipped == 0


@PROPERTY_SETTINGS
@given(seed=seeds, n=sizes, k=widths)
def test_round_order_does_not_matter(seed: int, n: int, k: int) -> None:
    data = logs(seed, n, k)
    order = np.random.default_rng(seed).permutation(n)
    shuffled = {name: array[order] for name, array in data.items()}
    for original, permuted in zip(all_estimates(data), all_estimates(shuffled), strict=True):
        assert close(original.value, permuted.value)
        assert original.n == permuted.n
