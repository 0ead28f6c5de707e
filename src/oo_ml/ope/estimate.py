"""The one result type of every estimator, and the interval arithmetic they share."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

__all__ = ["Estimate", "around", "normal_quantile", "standard_error", "weight_diagnostics"]


def normal_quantile(level: float) -> float:
    """The two-sided standard-normal critical value: 1.959963984540054 for ``level=0.95``."""
    return NormalDist().inv_cdf(0.5 + level / 2.0)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A policy-value estimate with its interval and the diagnostics that say how far to trust it.

    ``value`` is the point estimate and ``[lower, upper]`` its ``level`` (default 95 %)
    confidence interval, computed by ``method`` (``"normal"``: value ± z·std_err from the
    per-round terms; ``"delta"``: the same around a ratio linearised by the delta method;
    ``"bootstrap"``: percentiles of resampled estimates). ``std_err`` is the standard error
    behind a normal or delta interval (for a bootstrap, the resampled estimates' sd); it is
    infinite when a single round (or matched round) leaves the spread unknown, and then so is
    the interval.

    Diagnostics are ``None`` where they do not apply:

    - ``ess``: effective sample size of the importance weights, (Σw)² / Σw². Near ``n`` the
      target is close to the logging policy; far below it, a few heavily weighted rounds carry
      the estimate and its interval is less reliable than its width suggests.
    - ``max_weight``: the largest importance weight used (after clipping).
    - ``n_clipped``: rounds whose weight the ``clip`` cap lowered.
    - ``n_matched``: replay only — rounds where the target chose the logged action.
    """

    name: str
    value: float
    lower: float
    upper: float
    n: int
    std_err: float
    level: float = 0.95
    method: str = "normal"
    ess: float | None = None
    max_weight: float | None = None
    n_clipped: int | None = None
    n_matched: int | None = None

    @property
    def width(self) -> float:
        """``upper - lower``: how much the data leave undecided."""
        return self.upper - self.lower

    def covers(self, value: float) -> bool:
        """Whether ``value`` lies inside the closed interval."""
        return self.lower <= value <= self.upper


def standard_error(terms: npt.NDArray[np.float64]) -> float:
    """sd(terms, ddof=1) / √n — infinite for a single term, whose spread is unknown."""
    n = terms.shape[0]
    if n < 2:
        return math.inf
    return float(np.std(terms, ddof=1) / math.sqrt(n))


def weight_diagnostics(weights: npt.NDArray[np.float64]) -> tuple[float, float]:
    """(effective sample size, max weight); an all-zero weight vector has ESS 0."""
    total_sq = float(np.sum(weights * weights))  # not np.dot: BLAS threads cost more at this size
    ess = float(weights.sum()) ** 2 / total_sq if total_sq > 0 else 0.0
    return ess, float(weights.max())


def around(
    name: str,
    value: float,
    *,
    std_err: float,
    n: int,
    level: float,
    method: str,
    ess: float | None = None,
    max_weight: float | None = None,
    n_clipped: int | None = None,
    n_matched: int | None = None,
) -> Estimate:
    """An :class:`Estimate` with the symmetric interval value ± z·std_err."""
    half = normal_quantile(level) * std_err
    return Estimate(
        name=name,
        value=value,
        lower=value - half,
        upper=value + half,
        n=n,
        std_err=std_err,
        level=level,
        method=method,
        ess=ess,
        max_weight=max_weight,
        n_clipped=n_clipped,
        n_matched=n_matched,
    )
