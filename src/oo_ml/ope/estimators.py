"""Off-policy estimators of a target policy's value from rounds logged by another policy.

Notation, for n logged rounds i with K candidate slots (fewer candidates: pad with zeros):

- ``reward[i]`` = rᵢ, the reward observed for the logged action aᵢ = ``action[i]``;
- ``pscore[i]`` = μ(aᵢ|xᵢ) ∈ (0, 1], the logging policy's probability of aᵢ;
- ``target_pscore[i]`` = π(aᵢ|xᵢ) ∈ [0, 1], the evaluated (target) policy's probability of aᵢ;
- ``target_dist[i, k]`` = π(k|xᵢ), each row a distribution over the round's candidates;
- ``q_hat[i, k]`` = q̂(xᵢ, k), a reward model's prediction for candidate k;
- wᵢ = π(aᵢ|xᵢ) / μ(aᵢ|xᵢ), the importance weight (``min(wᵢ, clip)`` when clipped).

==========  ==================================================  =========================
estimator   value                                               95 % interval
==========  ==================================================  =========================
ips         (1/n) Σ wᵢ rᵢ                                       normal, per-round terms
snips       Σ wᵢ rᵢ / Σ wᵢ                                      delta method
dm          (1/n) Σᵢ Σₖ π(k|xᵢ) q̂(xᵢ, k)                        normal, per-round terms
dr          dm + (1/n) Σ wᵢ (rᵢ − q̂(xᵢ, aᵢ))                    normal, per-round terms
replay      mean of rᵢ over rounds where the target chose aᵢ    normal, matched rounds
==========  ==================================================  =========================

"Normal, per-round terms": each estimate is the mean of n independent terms tᵢ, so the interval
is mean ± z·sd(t)/√n with sd taken with n − 1 in the denominator and z = 1.95996… for 95 %
(:func:`~oo_ml.ope.estimate.normal_quantile` for another ``level``). It is asymptotic: with a
few rounds carrying huge weights (see ``Estimate.ess``) it under-covers, and
:func:`~oo_ml.ope.resampling.bootstrap` gives a percentile interval instead.

These are the textbook definitions, the same as Open Bandit Pipeline's
``InverseProbabilityWeighting`` (its ``lambda_`` is our ``clip``),
``SelfNormalizedInverseProbabilityWeighting``, ``DirectMethod``, ``DoublyRobust`` and
``ReplayMethod``, whose intervals are bootstrap ones. Its rounds × K × slots arrays
(``action_dist``, ``estimated_rewards_by_reg_model``) are taken as they are when they have one
slot (``len_list = 1``); a ranking of several slots is refused.

Padding: a zero in ``target_dist`` cannot be told from a real candidate the target never picks;
both contribute nothing to DM and DR, whatever ``q_hat`` holds there. The only padding check
possible is the one made: ``0 ≤ action[i] < K``. A logged action pointing at padding would have
``pscore`` from a candidate that was never offered — keep indices within each round's real
candidates.

Every function validates all its arguments first and raises
:class:`~oo_ml.errors.ValidationError` with ``field`` naming the argument (and the row, as
``pscore[17]``): wrong dimensions, differing numbers of rounds, no rounds, NaN or ±inf,
``pscore`` outside (0, 1], target probabilities outside [0, 1], a ``target_dist`` row not
summing to 1 within :data:`~oo_ml.ope._validation.ROW_SUM_TOLERANCE`, an action index that is
not an integer or out of range. Inputs are copied, never mutated.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from oo_ml.errors import ValidationError
from oo_ml.ope._validation import (
    check_actions,
    check_clip,
    check_distribution,
    check_level,
    check_matrix,
    check_probabilities,
    check_rewards,
)
from oo_ml.ope.estimate import Estimate, around, standard_error, weight_diagnostics

__all__ = ["dm", "dr", "ips", "replay", "sample_actions", "snips"]

FloatArray = npt.NDArray[np.float64]


def _weights(
    pscore: FloatArray, target_pscore: FloatArray, clip: float | None
) -> tuple[FloatArray, int]:
    with np.errstate(over="ignore"):
        raw = target_pscore / pscore
    overflow = ~np.isfinite(raw)
    if overflow.any():  # a subnormal pscore: 1 / 5e-324 is inf
        row = int(np.argmax(overflow))
        raise ValidationError(
            f"pscore[{row}]", f"is {float(pscore[row])!r}, too small for a finite weight"
        )
    if clip is None:
        return raw, 0
    return np.minimum(raw, clip), int(np.count_nonzero(raw > clip))


def ips(
    reward: npt.ArrayLike,
    pscore: npt.ArrayLike,
    target_pscore: npt.ArrayLike,
    *,
    clip: float | None = None,
    level: float = 0.95,
) -> Estimate:
    """Inverse propensity scoring: the mean of wᵢ·rᵢ (Horvitz & Thompson 1952).

    Unbiased whenever the logging policy gave every action the target can take a positive
    probability and ``pscore`` is the true logging probability. The interval is
    mean ± z·sd(w·r)/√n.

    ``clip`` caps each weight at ``min(w, clip)`` (OBP's ``lambda_``, VW's ``max_weight``):
    it trades variance for a bias of −(1/n) Σ (wᵢ − clip)⁺ rᵢ — downwards for non-negative
    rewards — which the interval does not include; ``Estimate.n_clipped`` says how many
    rounds paid it.

    >>> ips([1.0, 0.0, 1.0], pscore=[0.5, 0.5, 0.25], target_pscore=[1.0, 0.0, 0.5]).value
    1.3333333333333333
    """
    level = check_level(level)
    clip = check_clip(clip)
    r = check_rewards("reward", reward)
    n = r.shape[0]
    mu = check_probabilities("pscore", pscore, n, "reward", positive=True)
    pi = check_probabilities("target_pscore", target_pscore, n, "reward", positive=False)
    w, n_clipped = _weights(mu, pi, clip)
    terms = w * r
    clipped = n_clipped if clip is not None else None
    return _term_mean("ips", terms, level, weights=w, n_clipped=clipped)


def snips(
    reward: npt.ArrayLike,
    pscore: npt.ArrayLike,
    target_pscore: npt.ArrayLike,
    *,
    level: float = 0.95,
) -> Estimate:
    """Self-normalised IPS: Σ wᵢrᵢ / Σ wᵢ (Swaminathan & Joachims 2015).

    Slightly biased (O(1/n)) but consistent, always within the range of the observed rewards,
    and invariant to rescaling every weight — so it tolerates propensities known only up to a
    common factor. The interval is the delta method's: the ratio is linearised into the
    per-round terms φᵢ = wᵢ(rᵢ − V̂) / w̄, and V̂ ± z·sd(φ)/√n.

    Raises :class:`~oo_ml.errors.ValidationError` on ``target_pscore`` when it is zero in every
    round: the target never takes a logged action, and the ratio is 0/0.

    >>> snips([1.0, 0.0, 1.0], pscore=[0.5, 0.5, 0.25], target_pscore=[1.0, 0.0, 0.5]).value
    1.0
    """
    level = check_level(level)
    r = check_rewards("reward", reward)
    n = r.shape[0]
    mu = check_probabilities("pscore", pscore, n, "reward", positive=True)
    pi = check_probabilities("target_pscore", target_pscore, n, "reward", positive=False)
    w, _ = _weights(mu, pi, None)
    total = float(w.sum())
    if total == 0.0:
        raise ValidationError(
            "target_pscore", "is 0 in every round, so SNIPS (Σwr / Σw) is undefined"
        )
    value = float(np.sum(w * r)) / total
    influence = w * (r - value) / (total / n)
    ess, max_weight = weight_diagnostics(w)
    return around(
        "snips",
        value,
        std_err=standard_error(influence),
        n=n,
        level=level,
        method="delta",
        ess=ess,
        max_weight=max_weight,
    )


def _term_mean(
    name: str,
    terms: FloatArray,
    level: float,
    *,
    weights: FloatArray | None = None,
    n_clipped: int | None = None,
) -> Estimate:
    """The mean of per-round ``terms`` ± z·sd/√n; with ``weights``, their diagnostics too."""
    ess = max_weight = None
    if weights is not None:
        ess, max_weight = weight_diagnostics(weights)
    return around(
        name,
        float(terms.mean()),
        std_err=standard_error(terms),
        n=int(terms.shape[0]),
        level=level,
        method="normal",
        ess=ess,
        max_weight=max_weight,
        n_clipped=n_clipped,
    )


def _direct_terms(target_dist: FloatArray, q_hat: FloatArray) -> FloatArray:
    terms: FloatArray = np.einsum("ik,ik->i", target_dist, q_hat)
    return terms


def dm(target_dist: npt.ArrayLike, q_hat: npt.ArrayLike, *, level: float = 0.95) -> Estimate:
    """Direct method: the reward model's value of the target, (1/n) Σᵢ Σₖ π(k|xᵢ) q̂(xᵢ, k).

    Needs no propensities and has low variance, but inherits every bias of ``q_hat``. The
    interval, mean ± z·sd/√n over the rounds' terms, only measures how the contexts vary: it
    treats ``q_hat`` as exact, so with a biased reward model it is confidently wrong.

    >>> dm([[0.5, 0.5], [1.0, 0.0]], q_hat=[[1.0, 0.0], [0.2, 0.9]]).value
    0.35
    """
    level = check_level(level)
    pi = check_distribution("target_dist", target_dist)
    q = check_matrix("q_hat", q_hat, pi.shape, "target_dist")
    terms = _direct_terms(pi, q)
    return _term_mean("dm", terms, level)


def dr(
    reward: npt.ArrayLike,
    pscore: npt.ArrayLike,
    target_dist: npt.ArrayLike,
    q_hat: npt.ArrayLike,
    action: npt.ArrayLike,
    *,
    clip: float | None = None,
    level: float = 0.95,
) -> Estimate:
    """Doubly robust: DM corrected by IPS on the model's residual (Dudík et al. 2011).

    Per round, tᵢ = Σₖ π(k|xᵢ) q̂(xᵢ, k) + wᵢ (rᵢ − q̂(xᵢ, aᵢ)) with wᵢ = π(aᵢ|xᵢ)/μ(aᵢ|xᵢ)
    taken from ``target_dist``. Unbiased when either the propensities or ``q_hat`` are right,
    and with less variance than IPS when ``q_hat`` is close. The interval is
    mean ± z·sd(t)/√n. ``clip`` caps the weights as in :func:`ips`, with a bias of
    −(1/n) Σ (wᵢ − clip)⁺ (rᵢ − q̂(xᵢ, aᵢ)) that the interval does not include.

    >>> dr([1.0, 0.0], pscore=[0.5, 0.5], target_dist=[[0.5, 0.5], [1.0, 0.0]],
    ...    q_hat=[[1.0, 0.0], [0.2, 0.9]], action=[0, 0]).value
    0.15
    """
    level = check_level(level)
    clip = check_clip(clip)
    r = check_rewards("reward", reward)
    n = r.shape[0]
    mu = check_probabilities("pscore", pscore, n, "reward", positive=True)
    pi = check_distribution("target_dist", target_dist, n, "reward")
    q = check_matrix("q_hat", q_hat, pi.shape, "target_dist")
    a = check_actions("action", action, n, "reward", pi.shape[1])
    rows = np.arange(n)
    w, n_clipped = _weights(mu, pi[rows, a], clip)
    terms = _direct_terms(pi, q) + w * (r - q[rows, a])
    clipped = n_clipped if clip is not None else None
    return _term_mean("dr", terms, level, weights=w, n_clipped=clipped)


def replay(
    reward: npt.ArrayLike,
    action: npt.ArrayLike,
    target_action: npt.ArrayLike,
    *,
    level: float = 0.95,
) -> Estimate:
    """Replay (Li et al. 2011): mean reward over rounds where the target picks the logged action.

    ``target_action[i]`` is the action the target policy takes in round i; for a stochastic
    target, draw it with :func:`sample_actions` (which adds the draw's own noise; IPS or SNIPS
    with ``target_pscore`` use the probabilities without it).

    Replay is unbiased only when the logging policy chose uniformly at random among a fixed
    number of candidates — more precisely, when the logged action's probability was the same
    in every round. Otherwise rounds are kept with unequal chances and the estimate is biased;
    use :func:`snips`, which is replay with wᵢ = π/μ in place of the match indicator.

    The interval is the matched rounds' mean ± z·sd/√m over the m = ``n_matched`` kept rounds
    (which under uniform logging are an i.i.d. sample of the target's rewards). Raises
    :class:`~oo_ml.errors.ValidationError` on ``target_action`` when no round matches.

    >>> replay([1.0, 0.0, 0.5], action=[0, 1, 2], target_action=[0, 0, 2]).value
    0.75
    """
    level = check_level(level)
    r = check_rewards("reward", reward)
    n = r.shape[0]
    a = check_actions("action", action, n, "reward")
    chosen = check_actions("target_action", target_action, n, "reward")
    kept = r[a == chosen]
    if kept.shape[0] == 0:
        raise ValidationError(
            "target_action", f"matches the logged action in none of the {n} rounds"
        )
    return around(
        "replay",
        float(kept.mean()),
        std_err=standard_error(kept),
        n=n,
        level=level,
        method="normal",
        n_matched=int(kept.shape[0]),
    )


def sample_actions(
    target_dist: npt.ArrayLike, *, seed: int | np.random.Generator
) -> npt.NDArray[np.int64]:
    """One action per round drawn from ``target_dist``, for :func:`replay` of a stochastic target.

    Never returns a column with probability 0, so padding is never drawn. ``seed`` makes the
    draw reproducible.

    >>> sample_actions([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], seed=0).tolist()
    [1, 0]
    """
    pi = check_distribution("target_dist", target_dist)
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(pi, axis=1)
    # Dividing by the row total makes the last entry exactly 1, so every u in [0, 1) finds a
    # column; a zero-probability column never is the first one above u.
    cdf = cumulative / cumulative[:, -1:]
    u = rng.random((pi.shape[0], 1))
    return np.asarray((u < cdf).argmax(axis=1), dtype=np.int64)
