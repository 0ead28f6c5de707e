"""The compiled kernels against the numpy expressions they replace.

The kernels add some sums up in another order than BLAS, so they are held to the numpy
results within a few ulps (relative 1e-12), and exactly where no sum is involved: the entries
of ``A`` and ``b``, the tie split, and θ between a live state and one rebuilt from its arrays.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oo_ml.policies.exploration import TIE_TOLERANCE, tie_split
from oo_ml.policies.kernels import (
    mixture_prior,
    posterior_mean,
    sherman_morrison,
    ucb_distribution,
)
from oo_ml.types import FloatArray


def random_inverse(rng: np.random.Generator, d: int) -> FloatArray:
    m = rng.standard_normal((d, d))
    a = m @ m.T + d * np.eye(d)
    inv: FloatArray = np.linalg.inv(a)
    return (inv + inv.T) / 2


def sparse_rows(rng: np.random.Generator, k: int, d: int) -> FloatArray:
    """Rows with zeros in them, as the interaction encoders produce."""
    x = rng.uniform(-1, 1, (k, d))
    x[rng.random((k, d)) < 0.5] = 0.0
    return x


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 25),
    d=st.integers(1, 70),
    alpha=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
)
def test_ucb_distribution_matches_the_numpy_expression(
    seed: int, k: int, d: int, alpha: float
) -> None:
    rng = np.random.default_rng(seed)
    a_inv, x = random_inverse(rng, d), sparse_rows(rng, k, d)
    means = rng.uniform(-1, 1, k)
    both = ucb_distribution(x, a_inv, means, alpha, TIE_TOLERANCE)
    quad = np.einsum("ij,jk,ik->i", x, a_inv, x)
    expected = means + alpha * np.sqrt(np.maximum(quad, 0.0))
    np.testing.assert_allclose(both[0], expected, rtol=1e-12, atol=1e-14)
    # The split is the one tie_split gives for the kernel's own scores, bit for bit.
    np.testing.assert_array_equal(both[1], tie_split(both[0]))
    assert both[1].sum() == pytest.approx(1.0)


def test_identical_candidates_split_the_probability_evenly() -> None:
    rng = np.random.default_rng(3)
    a_inv = random_inverse(rng, 9)
    row = sparse_rows(rng, 1, 9)[0]
    other = row * -1.0
    x = np.array([row, other, row, row])
    means = np.array([1.0, -5.0, 1.0, 1.0])  # the copies of ``row`` win
    both = ucb_distribution(x, a_inv, means, 1.0, TIE_TOLERANCE)
    assert both[0, 0] == both[0, 2] == both[0, 3] > both[0, 1]
    assert both[1].tolist() == [1 / 3, 0.0, 1 / 3, 1 / 3]


def test_a_negative_quadratic_form_reads_as_zero() -> None:
    # An indefinite "inverse" stands in for one that rounding made slightly negative.
    a_inv = np.array([[-1.0, 0.0], [0.0, 1.0]])
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    both = ucb_distribution(x, a_inv, np.array([0.25, 0.0]), 2.0, TIE_TOLERANCE)
    assert both[0].tolist() == [0.25, 2.0]
    assert both[1].tolist() == [0.0, 1.0]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    d=st.integers(1, 70),
    weight=st.sampled_from([1.0, 0.25, 3.0]),
)
def test_sherman_morrison_matches_the_numpy_update(seed: int, d: int, weight: float) -> None:
    rng = np.random.default_rng(seed)
    a_inv = random_inverse(rng, d)
    a = np.linalg.inv(a_inv)
    b = rng.standard_normal(d)
    theta = posterior_mean(a_inv, b)
    x = sparse_rows(rng, 1, d)[0]
    x.setflags(write=False)  # decisions hand their rows out read-only
    reward = float(rng.uniform(-1, 1))
    before = (a.copy(), a_inv.copy(), b.copy())

    sherman_morrison(a, a_inv, b, theta, x, reward, weight)

    u = before[1] @ x
    expected_inv = before[1] - np.outer(u, u) * (weight / (1 + weight * (x @ u)))
    np.testing.assert_array_equal(a, before[0] + x[:, None] * (weight * x)[None, :])
    np.testing.assert_array_equal(b, before[2] + (weight * reward) * x)
    np.testing.assert_allclose(a_inv, expected_inv, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(a_inv, np.linalg.inv(a), rtol=1e-8, atol=1e-11)
    # θ is exactly what posterior_mean computes from the new arrays.
    np.testing.assert_array_equal(theta, posterior_mean(a_inv, b))
    np.testing.assert_allclose(theta, a_inv @ b, rtol=1e-12, atol=1e-13)


def test_posterior_mean_accepts_non_contiguous_arrays() -> None:
    rng = np.random.default_rng(5)
    a_inv = random_inverse(rng, 6)
    b = rng.standard_normal(12)[::2]
    np.testing.assert_allclose(posterior_mean(a_inv.T, b), a_inv @ b, rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 8),
    d=st.integers(1, 70),
    lam=st.sampled_from([0.5, 4.0, 32.0]),
    noise=st.sampled_from([0.05, 0.25, 1.0]),
)
def test_mixture_prior_matches_the_numpy_expression(
    seed: int, k: int, d: int, lam: float, noise: float
) -> None:
    rng = np.random.default_rng(seed)
    x = sparse_rows(rng, 3 * d, d)
    data = x.T @ x  # a user's D; the state keeps A = λI + D and b = λμ₀ + c
    a = data + lam * np.eye(d)
    a_inv = np.linalg.inv(a)
    a_inv = (a_inv + a_inv.T) / 2
    c, prior = rng.uniform(-1, 1, d), rng.uniform(-0.5, 0.5, d)
    b = lam * prior + c
    means = rng.uniform(-1, 1, (k, d))
    shares = rng.dirichlet(np.ones(k))
    mixed = mixture_prior(a, lam, b, prior, a_inv, means, np.log(shares), noise)
    # The module docstring's formula in numpy, from D and c directly.
    dm = means @ data
    g = c - dm
    costs = (means * dm).sum(axis=1) - 2.0 * (means @ c) - ((g @ a_inv) * g).sum(axis=1)
    logits = np.log(shares) - costs / (2.0 * noise)
    weights = np.exp(logits - logits.max())
    expected = (weights / weights.sum()) @ means
    np.testing.assert_allclose(mixed, expected, rtol=1e-9, atol=1e-12)
    # Statistics already stripped of the prior (shift 0, zero prior) give the same mixture.
    stripped = mixture_prior(data, 0.0, c, np.zeros(d), a_inv, means, np.log(shares), noise)
    np.testing.assert_allclose(stripped, mixed, rtol=1e-9, atol=1e-12)
