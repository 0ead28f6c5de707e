"""Exploration strategies: from the model's estimates to every candidate's probability.

Each strategy implements one hook, :meth:`Exploration.distribution`, returning the scores it
ranks by and the probability of choosing each candidate. The policy then draws the choice from
exactly that distribution, so the logged probability is the one the choice was made with —
ties included, which are always split evenly and never broken by position.

Probabilities are exact for greedy, ε-greedy, UCB, softmax and SquareCB. Thompson sampling's
are a Monte-Carlo estimate over ``draws`` posterior samples; drawing the choice from that
empirical distribution *is* Thompson sampling (it equals taking the argmax of one of the
samples at random), so the logged propensity is exact given the samples drawn.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from oo_ml.policies.kernels import tie_split_into, ucb_distribution
from oo_ml.policies.model import RidgeState
from oo_ml.types import FloatArray

__all__ = [
    "TIE_TOLERANCE",
    "UCB",
    "EpsilonGreedy",
    "Exploration",
    "Greedy",
    "Softmax",
    "SquareCB",
    "Thompson",
    "tie_split",
]

TIE_TOLERANCE = 1e-12
"""Scores within this relative distance of the best count as tied with it."""


def tie_split(values: FloatArray, mass: float = 1.0, floor: float = 0.0) -> FloatArray:
    """``floor`` everywhere plus ``mass`` split evenly over the entries tied for the maximum
    (within :data:`TIE_TOLERANCE`): one compiled pass, :func:`~oo_ml.policies.kernels.
    tie_split_into`, which LinUCB's kernel also ends with."""
    probs = np.empty(values.shape[0])
    tie_split_into(values, mass, floor, TIE_TOLERANCE, probs)
    return probs


@dataclass(frozen=True, slots=True)
class Exploration(ABC):
    """How a policy turns estimates into a choice distribution. Fields are hyper-parameters."""

    name: ClassVar[str]

    @abstractmethod
    def distribution(
        self,
        features: FloatArray,
        means: FloatArray,
        state: RidgeState,
        rng: np.random.Generator,
    ) -> tuple[FloatArray, FloatArray, int | None]:
        """(scores, probabilities, Monte-Carlo draws or None) for k candidates.

        ``features`` is (k, d), ``means`` the posterior mean θ·x per candidate.
        """

    def params(self) -> dict[str, Any]:
        return {"exploration": self.name, **asdict(self)}


@dataclass(frozen=True, slots=True)
class Greedy(Exploration):
    """Always the best posterior mean (ties split evenly)."""

    name: ClassVar[str] = "greedy"

    def distribution(
        self, features: FloatArray, means: FloatArray, state: RidgeState, rng: np.random.Generator
    ) -> tuple[FloatArray, FloatArray, int | None]:
        return means, tie_split(means), None


@dataclass(frozen=True, slots=True)
class EpsilonGreedy(Exploration):
    """With probability ε a uniformly random candidate, else the best mean."""

    epsilon: float = 0.1
    name: ClassVar[str] = "epsilon-greedy"

    def __post_init__(self) -> None:
        if not 0 <= self.epsilon <= 1:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon}")

    def distribution(
        self, features: FloatArray, means: FloatArray, state: RidgeState, rng: np.random.Generator
    ) -> tuple[FloatArray, FloatArray, int | None]:
        return means, tie_split(means, 1.0 - self.epsilon, self.epsilon / means.shape[0]), None


@dataclass(frozen=True, slots=True)
class UCB(Exploration):
    """LinUCB (Li et al., 2010): the best θ·x + α√(xᵀA⁻¹x)."""

    alpha: float = 1.0
    name: ClassVar[str] = "ucb"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.alpha) and self.alpha >= 0):
            raise ValueError(f"alpha must be finite and >= 0, got {self.alpha}")

    def distribution(
        self, features: FloatArray, means: FloatArray, state: RidgeState, rng: np.random.Generator
    ) -> tuple[FloatArray, FloatArray, int | None]:
        both = ucb_distribution(features, state.A_inv, means, self.alpha, TIE_TOLERANCE)
        return both[0], both[1], None


@dataclass(frozen=True, slots=True)
class Thompson(Exploration):
    """Linear Thompson sampling (Agrawal & Goyal, 2013): θ̃ ~ N(θ, v²A⁻¹), choose argmax θ̃·x.

    Scores are the posterior means; probabilities are estimated from ``draws`` samples.
    """

    v: float = 0.5
    draws: int = 256
    name: ClassVar[str] = "thompson"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.v) and self.v > 0):
            raise ValueError(f"v must be a positive finite number, got {self.v}")
        if self.draws < 1:
            raise ValueError(f"draws must be >= 1, got {self.draws}")

    def distribution(
        self, features: FloatArray, means: FloatArray, state: RidgeState, rng: np.random.Generator
    ) -> tuple[FloatArray, FloatArray, int | None]:
        k, d = features.shape
        if k <= d:
            # Sample the k scores directly: θ̃·x ~ N(θ·x, v² X A⁻¹ Xᵀ).
            cov = features @ state.A_inv @ features.T
            root = _psd_root(cov)  # singular when candidates coincide
            samples = means + self.v * (rng.standard_normal((self.draws, k)) @ root.T)
        else:
            chol = np.linalg.cholesky(state.A_inv)  # A⁻¹ is positive definite (λ > 0)
            thetas = state.theta + self.v * (rng.standard_normal((self.draws, d)) @ chol.T)
            samples = thetas @ features.T
        top = samples.max(axis=1, keepdims=True)
        mask = samples >= top - TIE_TOLERANCE * np.maximum(1.0, np.abs(top))
        probs = (mask / mask.sum(axis=1, keepdims=True)).mean(axis=0)
        return means, probs, self.draws


def _psd_root(cov: FloatArray) -> FloatArray:
    """R with R Rᵀ = cov for a symmetric positive semi-definite ``cov``.

    Eigenvalues below 1e-12 of the largest are rounding noise and set to 0: that keeps the
    samples of identical candidates identical (a Cholesky factor of a singular matrix would
    give them independent noise of order √ε and split their tie unevenly).
    """
    w, v = np.linalg.eigh(cov)
    w[w < 1e-12 * max(float(w[-1]), 0.0)] = 0.0
    root: FloatArray = v * np.sqrt(w)
    return root


@dataclass(frozen=True, slots=True)
class Softmax(Exploration):
    """Boltzmann exploration: p ∝ exp(θ·x / τ)."""

    temperature: float = 0.1
    name: ClassVar[str] = "softmax"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be positive and finite, got {self.temperature}")

    def distribution(
        self, features: FloatArray, means: FloatArray, state: RidgeState, rng: np.random.Generator
    ) -> tuple[FloatArray, FloatArray, int | None]:
        weights = np.exp((means - means.max()) / self.temperature)
        return means, weights / weights.sum(), None


@dataclass(frozen=True, slots=True)
class SquareCB(Exploration):
    """SquareCB (Foster & Rakhlin, 2020) with inverse-gap weighting.

    Every candidate a behind the best by gap Δ_a gets 1/(k + γΔ_a); the best (ties sharing)
    get the rest. γ grows with experience as in Vowpal Wabbit:
    ``γ = gamma_scale · (n_updates + 1) ** gamma_exponent``.
    """

    gamma_scale: float = 10.0
    gamma_exponent: float = 0.5
    name: ClassVar[str] = "squarecb"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gamma_scale) and self.gamma_scale > 0):
            raise ValueError(f"gamma_scale must be positive and finite, got {self.gamma_scale}")
        if not (math.isfinite(self.gamma_exponent) and self.gamma_exponent >= 0):
            raise ValueError(f"gamma_exponent must be finite and >= 0, got {self.gamma_exponent}")

    def gamma(self, n_updates: int) -> float:
        return float(self.gamma_scale * float(n_updates + 1) ** self.gamma_exponent)

    def distribution(
        self, features: FloatArray, means: FloatArray, state: RidgeState, rng: np.random.Generator
    ) -> tuple[FloatArray, FloatArray, int | None]:
        k = means.shape[0]
        best = tie_split(means) > 0
        gaps = means.max() - means
        probs = 1.0 / (k + self.gamma(state.n_updates) * gaps)
        probs[best] = 0.0
        probs[best] = (1.0 - probs.sum()) / np.count_nonzero(best)
        return means, probs, None
