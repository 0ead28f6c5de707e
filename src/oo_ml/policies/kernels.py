"""Compiled inner loops of a round: LinUCB's scores and tie split, the Sherman–Morrison
update, θ = A⁻¹b, and the population prior's re-centring.

A decision and its update at d=44 are some 30 numpy calls of 0.3–2 µs each; the arithmetic
behind them takes a fraction of that. These kernels do it in one compiled call each (numba,
no Python objects inside), which is what lets a round run several times faster than the
existing service's inverse-per-decision path at the dimensions our interaction encoders use
(``benchmarks/core_rounds.py``).

All follow the numpy formulas they replace term for term — the same products, one rounding
each — and differ from them only in the order some sums are added up, i.e. in the last bits:
``tests/core/test_kernels.py`` holds them to the numpy expressions. How they are compiled:
:func:`oo_ml.compiling.compiled`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from oo_ml.compiling import compiled
from oo_ml.types import FloatArray

__all__ = [
    "compiled",
    "mixture_prior",
    "posterior_mean",
    "sherman_morrison",
    "tie_split_into",
    "ucb_distribution",
    "warm_up",
]


@compiled
def tie_split_into(
    values: FloatArray, mass: float, floor: float, tolerance: float, out: FloatArray
) -> None:
    """``out[:] = floor``, plus ``mass`` split evenly over the values within
    ``tolerance·max(1, |top|)`` of the top one (``floor + mass/ties`` each)."""
    k = values.shape[0]
    top = values[0]
    for r in range(1, k):
        top = max(top, values[r])
    cut = top - tolerance * max(1.0, abs(top))
    tied = 0
    for r in range(k):
        if values[r] >= cut:
            tied += 1
    share = mass / tied
    for r in range(k):
        out[r] = floor + share if values[r] >= cut else floor


@compiled
def ucb_distribution(
    features: FloatArray, a_inv: FloatArray, means: FloatArray, alpha: float, tolerance: float
) -> Any:
    """LinUCB's scores and choice probabilities, as rows 0 and 1 of one (2, k) array.

    Scores are ``means + alpha·√(xᵀA⁻¹x)`` for every row x of ``features`` (a negative form,
    which only rounding can make, reads as 0); probabilities are their :func:`tie_split_into`.
    A⁻¹ is symmetric, so ``xᵀA⁻¹ = Σ_j x_j·A⁻¹[j, :]``: the inner loop runs along contiguous
    rows and skips the zero entries the interaction encoders are full of.
    """
    k, d = features.shape
    out = np.empty((2, k))
    row = np.empty(d)
    for r in range(k):
        row[:] = 0.0
        for j in range(d):
            x_j = features[r, j]
            if x_j != 0.0:
                for i in range(d):
                    row[i] += x_j * a_inv[j, i]
        quad = 0.0
        for i in range(d):
            quad += row[i] * features[r, i]
        out[0, r] = means[r] + alpha * math.sqrt(quad if quad > 0.0 else 0.0)
    tie_split_into(out[0], 1.0, 0.0, tolerance, out[1])
    return out


@compiled
def _mean_into(a_inv: FloatArray, b: FloatArray, theta: FloatArray) -> None:
    """``theta[:] = A⁻¹b``, each entry summed in index order."""
    d = b.shape[0]
    for i in range(d):
        total = 0.0
        for j in range(d):
            total += a_inv[i, j] * b[j]
        theta[i] = total


def posterior_mean(a_inv: FloatArray, b: FloatArray) -> FloatArray:
    """θ = A⁻¹b, computed exactly as every update computes it, so that a state rebuilt from
    (A⁻¹, b) — restored from JSON or storage, refactored, re-centred — has the same θ, bit for
    bit, as the live state it came from."""
    theta = np.empty(b.shape[0])
    _mean_into(np.ascontiguousarray(a_inv), np.ascontiguousarray(b), theta)
    return theta


@compiled
def sherman_morrison(  # noqa: PLR0917 (a kernel takes arrays, not an object)
    a: FloatArray,
    a_inv: FloatArray,
    b: FloatArray,
    theta: FloatArray,
    x: FloatArray,
    reward: float,
    weight: float,
) -> None:
    """Add the observation (x, reward, weight) to a ridge state, in place.

    ``A += w·xxᵀ``, ``b += w·r·x``, ``A⁻¹ -= u·vᵀ`` with ``u = A⁻¹x`` and
    ``v = u·w/(1 + w·xᵀu)`` (Sherman–Morrison), then ``θ = A⁻¹b``.
    """
    d = x.shape[0]
    u = np.zeros(d)
    for j in range(d):
        x_j = x[j]
        if x_j != 0.0:
            for i in range(d):
                u[i] += x_j * a_inv[j, i]
    xu = 0.0
    for i in range(d):
        xu += x[i] * u[i]
    c = weight / (1.0 + weight * xu)
    wr = weight * reward
    v = u * c
    wx = x * weight
    for i in range(d):
        u_i = u[i]
        x_i = x[i]
        for j in range(d):
            a_inv[i, j] -= u_i * v[j]
            a[i, j] += x_i * wx[j]
        b[i] += wr * x_i
    _mean_into(a_inv, b, theta)


@compiled
def _times_symmetric(m: FloatArray, x: FloatArray, shift: float, out: FloatArray) -> None:
    """``out = M·(X − shift·I)`` for a symmetric X, summed as ``Σ_j M[:, j]·X[j, :]``: along
    contiguous rows, one independent sum per entry, each added in index order."""
    k, d = m.shape
    row = np.empty(d)
    out[:] = 0.0
    for j in range(d):
        for i in range(d):
            row[i] = x[j, i]
        row[j] -= shift
        for q in range(k):
            m_j = m[q, j]
            if m_j != 0.0:
                for i in range(d):
                    out[q, i] += m_j * row[i]


@compiled
def _mixture_prior_into(  # noqa: PLR0917 (a kernel takes arrays, not an object)
    a: FloatArray,
    shift: float,
    c: FloatArray,
    a_inv: FloatArray,
    means: FloatArray,
    log_shares: FloatArray,
    noise: float,
    out: FloatArray,
) -> None:
    """:func:`mixture_prior` into ``out``, given ``c``."""
    k, d = means.shape
    dm = np.empty((k, d))
    _times_symmetric(means, a, shift, dm)
    g = np.empty((k, d))
    for q in range(k):
        for i in range(d):
            g[q, i] = c[i] - dm[q, i]
    ga = np.empty((k, d))
    _times_symmetric(g, a_inv, 0.0, ga)
    weights = np.empty(k)
    for q in range(k):
        fit = 0.0
        pull = 0.0
        quad = 0.0
        for i in range(d):
            fit += means[q, i] * dm[q, i]
            pull += means[q, i] * c[i]
            quad += ga[q, i] * g[q, i]
        weights[q] = log_shares[q] - (fit - 2.0 * pull - quad) / (2.0 * noise)
    weights -= weights.max()
    weights = np.exp(weights)
    weights /= weights.sum()
    out[:] = 0.0
    for q in range(k):
        for i in range(d):
            out[i] += weights[q] * means[q, i]


def mixture_prior(  # noqa: PLR0917 (the statistics and the mixture, as arrays)
    a: FloatArray,
    shift: float,
    b: FloatArray,
    prior_mean: FloatArray,
    a_inv: FloatArray,
    means: FloatArray,
    log_shares: FloatArray,
    noise: float,
) -> FloatArray:
    """The prior mean a cluster mixture gives one user (:mod:`oo_ml.policies.population`):
    ``Σ_k w_k μ_k``, ``w ∝ exp(log n_k − Q_k / 2σ²)``, where
    ``Q_k = μ_kᵀDμ_k − 2μ_kᵀc − g_kᵀA⁻¹g_k`` and ``g_k = c − Dμ_k``, for the user's data
    statistics ``D = a − shift·I`` (symmetric) and ``c = b − shift·prior_mean``. A ridge state
    passes its own ``A``, ``b``, ``μ₀`` and λ; statistics already stripped of the prior pass
    ``shift = 0`` and a zero ``prior_mean``. ``means`` are the cluster means (K, d),
    ``log_shares`` the logarithms of their shares and ``noise`` σ²."""
    out = np.empty(b.shape[0])
    _mixture_prior_into(
        np.ascontiguousarray(a),
        shift,
        b - shift * prior_mean,
        np.ascontiguousarray(a_inv),
        np.ascontiguousarray(means),
        np.ascontiguousarray(log_shares),
        noise,
        out,
    )
    return out


def warm_up() -> None:
    """Compile (or load from the cache) every kernel for the argument types serving passes:
    states and features writable or read-only (stores hand read-only arrays out). A service
    calls this at start so that no request waits for a compilation."""
    # These modules import this one.
    from oo_ml.policies.base import _draw  # noqa: PLC0415
    from oo_ml.policies.pcg import MAX_SEED, first_random  # noqa: PLC0415

    first_random(0)
    first_random(MAX_SEED)
    _draw(np.array([0.0, 1.0]), np.random.default_rng(0))
    _draw(np.array([0.5, 0.5]), np.random.default_rng(0))
    for writable in (True, False):
        a_inv, x = np.eye(2), np.ones((1, 2))
        a_inv.setflags(write=writable)
        x.setflags(write=writable)
        ucb_distribution(x, a_inv, np.zeros(1), 1.0, 1e-12)
        tie_split_into(x[0], 1.0, 0.0, 1e-12, np.empty(2))
        sherman_morrison(np.eye(2), np.eye(2), np.zeros(2), np.zeros(2), x[0], 0.0, 1.0)
        posterior_mean(a_inv, np.zeros(2))
        mixture_prior(a_inv, 1.0, x[0], x[0], a_inv, x, np.zeros(1), 1.0)
