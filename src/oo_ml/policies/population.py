"""Population priors: what every user taught the service, as the prior of each user.

People fall into habits (morning people, deadline people, quick-win people…). A
:class:`PopulationModel` fits ``clusters`` ridge models to all users' feedback pooled by cluster,
and gives each user, at every decision, a prior mean that is the Bayesian model average of the
cluster means weighted by how well each explains *that user's* data so far:

    w_k ∝ n_k · exp(−Q_k / 2σ²),   Q_k = μ_kᵀ D μ_k − 2 μ_kᵀ c − g_kᵀ A⁻¹ g_k,   g_k = c − D μ_k

where D = Σ x xᵀ and c = Σ r x are the user's own data statistics, A = λI + D, n_k the cluster's
size and σ² the reward noise. Q_k is the part of −2σ² log p(rewards | prior mean μ_k) that
depends on μ_k (the marginal likelihood of Bayesian linear regression, via Woodbury). A new
user with no data gets the size-weighted average of the clusters; after a few tips the prior
settles on the cluster that behaves like them. With ``clusters = 1`` it is the plain population
mean. Latent-cluster bandits in this spirit: Gentile et al., "Online Clustering of Bandits"
(ICML 2014); Hong et al., "Latent Bandits Revisited" (NeurIPS 2020).

Clusters are fitted by hard EM: k-means++ seeding on users' own ridge estimates, then
alternately assigning each user to the cluster of highest marginal likelihood and refitting each
cluster's pooled ridge model, until assignments stop changing. The number of clusters is fixed,
or (``Population.min_clusters``) chosen at each refit by Akaike's criterion on that same
likelihood, so that a user base with more habits gets more clusters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from oo_ml.errors import ConfigurationError
from oo_ml.policies.kernels import mixture_prior, posterior_mean
from oo_ml.policies.model import RidgeState
from oo_ml.types import FloatArray

__all__ = [
    "Population",
    "PopulationModel",
    "UserData",
    "information_criterion",
    "recenter",
    "refit_after",
    "user_data",
]


@dataclass(frozen=True, slots=True)
class Population:
    """Hyper-parameters of a policy's population prior."""

    clusters: int = 1
    noise: float = 0.5
    """σ², the variance of a reward around its expectation (dwell-v1 rewards: about 0.5)."""
    restarts: int = 1
    """Hard EM runs from this many k-means++ starts; the fit that explains the users' data best
    (lowest total misfit) wins. One start can settle with two habits in one cluster."""
    cluster_lam: float | None = None
    """Ridge precision λ_c of each cluster's pooled fit, (λ_c I + Σ D)⁻¹ Σ c; ``None``: the
    policy's own λ. The policy's λ says how far one user strays from their cluster; a
    cluster's mean is pooled from many users' data and needs much less pull towards zero."""

    min_clusters: int | None = None
    """With a value, the number of clusters comes from the data: each refit fits every count
    from ``min_clusters`` to ``clusters`` and keeps the one with the lowest AIC (see
    :func:`information_criterion`). ``None``: always ``clusters``."""

    effective_parameters: bool = False
    """With ``min_clusters``: count each cluster's parameters as the effective degrees of
    freedom of its pooled ridge fit, tr(S (λ_c I + S)⁻¹) for its members' pooled data S, not as
    d (see :func:`information_criterion`). A cluster's fit regularised by λ_c spends fewer
    than d numbers on its data, most of all where its users are few (docs/adr/0011)."""

    def __post_init__(self) -> None:
        if self.min_clusters is not None and not 1 <= self.min_clusters <= self.clusters:
            raise ConfigurationError(
                f"min_clusters must be between 1 and clusters ({self.clusters}), "
                f"got {self.min_clusters}"
            )
        if not 1 <= self.clusters <= 64:
            raise ConfigurationError(f"clusters must be between 1 and 64, got {self.clusters}")
        if not (math.isfinite(self.noise) and self.noise > 0):
            raise ConfigurationError(f"noise must be positive and finite, got {self.noise}")
        if not 1 <= self.restarts <= 32:
            raise ConfigurationError(f"restarts must be between 1 and 32, got {self.restarts}")
        if self.cluster_lam is not None and not (
            math.isfinite(self.cluster_lam) and self.cluster_lam > 0
        ):
            raise ConfigurationError(
                f"cluster_lam must be positive and finite, got {self.cluster_lam}"
            )


@dataclass(frozen=True, slots=True)
class UserData:
    """One user's data statistics: D = Σ w x xᵀ, c = Σ w r x, and how many updates; with
    ``A_inv`` the inverse (λI + D)⁻¹ their state keeps (fits compute it when it is absent)."""

    D: FloatArray
    c: FloatArray
    n: int
    A_inv: FloatArray | None = None


@dataclass(frozen=True, slots=True)
class PopulationModel:
    """Cluster means (K, d) and their shares (K,), for prior precision ``lam``."""

    means: FloatArray
    shares: FloatArray
    lam: float
    noise: float

    @classmethod
    def fit(
        cls,
        users: Sequence[UserData],
        lam: float,
        population: Population,
        seed: int = 0,
        max_iterations: int = 20,
    ) -> PopulationModel | None:
        """Fit to ``users`` (those with data); ``None`` when nobody has any."""
        users = [u for u in users if u.n > 0]
        if not users:
            return None
        d = users[0].c.shape[0]
        eye = np.eye(d) * lam
        pool_eye = eye if population.cluster_lam is None else np.eye(d) * population.cluster_lam
        k = min(population.clusters, len(users))
        if k == 1:
            return cls(_pooled(pool_eye, users)[None, :], np.ones(1), lam, population.noise)
        datas = np.array([u.D for u in users])
        if all(u.A_inv is not None for u in users):
            inverses = np.array([u.A_inv for u in users])
        else:
            inverses = np.linalg.inv(eye + datas)
        cs = np.array([u.c for u in users])
        batch = _Batch(
            pool_eye,
            lam,
            datas,
            cs,
            inverses,
            np.einsum("nij,nj->ni", inverses, cs),  # each user's own ridge estimate
            np.array([float(u.n) for u in users]),
            {},
        )
        low = k if population.min_clusters is None else min(population.min_clusters, k)
        chosen: tuple[float, FloatArray, FloatArray] | None = None
        for count in range(low, k + 1):
            best: tuple[float, FloatArray, FloatArray] | None = None
            for restart in range(population.restarts):
                rng = np.random.default_rng(seed + restart)
                centres, assignment, total = _hard_em(batch, count, rng, max_iterations)
                if best is None or total < best[0]:
                    best = (total, centres, assignment)
            assert best is not None
            parameters = (
                _effective_parameters(batch, best[2], len(best[1]))
                if population.effective_parameters
                else float(len(best[1]) * d)
            )
            score = information_criterion(best[0], parameters, population.noise)
            if chosen is None or score < chosen[0]:
                chosen = (score, best[1], best[2])
        assert chosen is not None
        _, centres, assignment = chosen
        shares = np.bincount(assignment, minlength=len(centres)).astype(np.float64)
        return cls(centres, shares / shares.sum(), lam, population.noise)

    def prior_for(self, D: FloatArray, c: FloatArray, A_inv: FloatArray) -> FloatArray:
        """The prior mean for a user with data statistics D, c and A⁻¹ = (λI + D)⁻¹."""
        if self.means.shape[0] == 1:
            mean: FloatArray = self.means[0].copy()
            return mean
        return mixture_prior(
            D, 0.0, c, np.zeros_like(c), A_inv, self.means, np.log(self.shares), self.noise
        )

    def center(self, state: RidgeState) -> None:
        """Move ``state``'s prior mean to what this population expects of its user, keeping
        the user's data: :meth:`prior_for` of its statistics, then :func:`recenter`. One
        compiled call reads D and c straight off ``A``, ``b`` and the current prior."""
        if self.means.shape[0] == 1:
            mean = self.means[0]
        else:
            mean = mixture_prior(
                state.A,
                self.lam,
                state.b,
                state.prior_mean,
                state.A_inv,
                self.means,
                np.log(self.shares),
                self.noise,
            )
        recenter(state, mean, self.lam)


def refit_after(every: int, users: int) -> int:
    """How many updates a population model serves before it is refitted: ``every``, or one
    per user it was fitted to when there are more (a fit costs time in proportion to the
    users, so its cost per update stays bounded). The engine, the off-policy replay and the
    benchmarks all refit on this rule."""
    return max(every, users)


def information_criterion(total_misfit: float, parameters: float, noise: float) -> float:
    """Akaike's criterion of a fit with ``parameters`` free numbers (``clusters × dim`` cluster
    means, or their effective count, :func:`_effective_parameters`), up to a constant shared by
    every fit of the same users: −2 log-likelihood is Σ misfit / σ² (the misfit is
    −2σ² log p(data | mean) less a constant per user), plus 2 per parameter.

    Chosen over BIC (ln(users) per parameter, 4.8 for 119 users), which on the simulator's
    personas kept five or six clusters for eleven habits and scored below a fixed six
    (docs/adr/0009)."""
    return total_misfit / noise + 2.0 * parameters


def _effective_parameters(batch: _Batch, assignment: FloatArray, clusters: int) -> float:
    """Σ over clusters of tr(S (λ_c I + S)⁻¹) = d − λ_c tr((λ_c I + S)⁻¹), S the pooled data of
    the cluster's members: the effective degrees of freedom of each cluster's ridge fit
    (Hastie, Tibshirani & Friedman, *Elements of Statistical Learning*, §3.4.1). Each lies
    between 0 (no data) and d (data in every direction, far beyond λ_c)."""
    regularised = _pooled_data(_membership(assignment, clusters), batch.datas) + batch.eye
    lam_c = float(batch.eye[0, 0])
    d = batch.eye.shape[0]
    traces = np.trace(np.linalg.inv(regularised), axis1=1, axis2=2)
    return float((d - lam_c * traces).sum())


def _misfits(centres: FloatArray, cs: FloatArray, inverses: FloatArray, lam: float) -> FloatArray:
    """Q(μ_k) of every user n for every centre k at once, (n, k), less a constant per user.

    With A = λI + D, ``D − DA⁻¹D = λI − λ²A⁻¹`` and ``c − DA⁻¹c = λA⁻¹c``, so :func:`_misfit`
    is ``λ‖μ‖² − λ t·(λμ + 2c) − cᵀA⁻¹c`` with ``t = A⁻¹μ``: one (d, d) product per user and
    centre instead of two. The dropped ``cᵀA⁻¹c`` depends on the user only, so it changes
    neither a user's best centre nor which of two fits of the same users has the lower total.
    """
    t = inverses @ centres.T  # (n, d, k): A_n⁻¹ μ_k
    pulls = lam * centres[None, :, :] + 2.0 * cs[:, None, :]  # (n, k, d)
    costs: FloatArray = lam * (centres * centres).sum(axis=1)[None, :] - lam * np.einsum(
        "nik,nki->nk", t, pulls
    )
    return costs


@dataclass(frozen=True, slots=True)
class _Batch:
    """The users being fitted, stacked: D (n, d, d), c (n, d) and A⁻¹ = (λI + D)⁻¹ (n, d, d),
    with the users' λ and ``eye`` (λ_c I) for the clusters' pooled fits."""

    eye: FloatArray
    lam: float
    datas: FloatArray
    cs: FloatArray
    inverses: FloatArray
    estimates: FloatArray
    """Each user's own ridge estimate A⁻¹c, where k-means++ seeds the centres."""
    weights: FloatArray
    """Each user's number of updates, the weight of their estimate in the seeding."""
    pooled: dict[bytes, FloatArray]
    """The pooled fit of each group of users met so far in this fit, by membership: EM
    iterations and restarts meet the same groups again and again, and a fit costs a d×d
    solve."""


def _hard_em(
    batch: _Batch, k: int, rng: np.random.Generator, max_iterations: int
) -> tuple[FloatArray, FloatArray, float]:
    """One hard-EM run from a k-means++ start: (centres, assignment, total misfit)."""
    eye, datas, cs, inverses = batch.eye, batch.datas, batch.cs, batch.inverses
    centres = _kmeans_plus_plus(batch.estimates, batch.weights, k, rng)
    n = len(cs)
    assignment = np.full(n, -1)
    costs = _misfits(centres, cs, inverses, batch.lam)
    for _ in range(max_iterations):
        new = costs.argmin(axis=1)
        if np.array_equal(new, assignment):
            break
        assignment = new
        # Each non-empty cluster's pooled ridge fit, (λ_c I + Σ D)⁻¹ Σ c over its members.
        assignment = np.unique(assignment, return_inverse=True)[1]
        groups = int(assignment.max()) + 1
        members = _membership(assignment, groups)
        keys = [row.tobytes() for row in np.packbits(members > 0, axis=1)]
        new_groups = [j for j, key in enumerate(keys) if key not in batch.pooled]
        if new_groups:
            chosen = members[new_groups]
            solved = _solve(_pooled_data(chosen, datas) + eye, (chosen @ cs)[:, :, None])[:, :, 0]
            for j, centre in zip(new_groups, solved, strict=True):
                batch.pooled[keys[j]] = centre
        centres = np.array([batch.pooled[key] for key in keys])
        costs = _misfits(centres, cs, inverses, batch.lam)
    total = float(costs[np.arange(n), assignment].sum())
    return centres, assignment, total


def _membership(assignment: npt.NDArray[Any], groups: int) -> FloatArray:
    """(groups, n): row g is 1 for the users assigned to group g, else 0."""
    members = np.zeros((groups, len(assignment)))
    members[assignment, np.arange(len(assignment))] = 1.0
    return members


def _pooled_data(members: FloatArray, datas: FloatArray) -> FloatArray:
    """Σ D over each row's members: (groups, d, d) from a (groups, n) membership and the users'
    (n, d, d) data."""
    n, d = datas.shape[0], datas.shape[1]
    pooled: FloatArray = (members @ datas.reshape(n, -1)).reshape(members.shape[0], d, d)
    return pooled


def _pooled(eye: FloatArray, users: Sequence[UserData]) -> FloatArray:
    """The ridge estimate of everyone in ``users`` pooled: (λI + Σ D)⁻¹ Σ c."""
    total_d = eye.copy()
    total_c = np.zeros(eye.shape[0])
    for u in users:
        total_d += u.D
        total_c += u.c
    return _solve(total_d, total_c)


def _solve(a: FloatArray, b: FloatArray) -> FloatArray:
    solved: FloatArray = np.linalg.solve(a, b).astype(np.float64, copy=False)
    return solved


def _misfit(mu: FloatArray, D: FloatArray, c: FloatArray, A_inv: FloatArray) -> float:
    """Q(μ): −2σ² log p(data | prior mean μ) up to a constant (see the module docstring)."""
    g = c - D @ mu
    return float(mu @ (D @ mu) - 2.0 * (mu @ c) - g @ (A_inv @ g))


def _kmeans_plus_plus(
    points: FloatArray, weights: FloatArray, k: int, rng: np.random.Generator
) -> FloatArray:
    """k seeds spread out over ``points`` (Arthur & Vassilvitskii, 2007), weighted."""
    first = int(rng.choice(len(points), p=weights / weights.sum()))
    chosen = [first]
    distance = ((points - points[first]) ** 2).sum(axis=1)
    for _ in range(1, k):
        mass = distance * weights
        if mass.sum() <= 0:
            break
        nxt = int(rng.choice(len(points), p=mass / mass.sum()))
        chosen.append(nxt)
        distance = np.minimum(distance, ((points - points[nxt]) ** 2).sum(axis=1))
    centres: FloatArray = points[chosen]
    return centres


def user_data(state: RidgeState, lam: float) -> UserData:
    """The data part of a user's statistics: D = A − λI, c = b − λμ.

    Exact with a discount too: the model tops the prior back up on every discounted update, so
    A stays λI plus the discounted data and b stays λμ plus the discounted data.
    """
    D = state.A.copy()
    D.flat[:: state.dim + 1] -= lam
    return UserData(D, state.b - lam * state.prior_mean, state.n_updates, state.A_inv)


def recenter(state: RidgeState, mean: FloatArray, lam: float) -> None:
    """Move ``state``'s prior mean to ``mean`` keeping its data: b += λ(μ_new − μ_old)."""
    state.b = state.b + lam * (mean - state.prior_mean)
    state.prior_mean = np.array(mean, dtype=np.float64)
    state.theta = posterior_mean(state.A_inv, state.b)
