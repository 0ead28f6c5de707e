"""A percentile-bootstrap interval for any estimator, for when the normal one is not trusted."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from oo_ml.errors import ValidationError
from oo_ml.ope._validation import check_level
from oo_ml.ope.estimate import Estimate

__all__ = ["bootstrap"]


def bootstrap(
    estimator: Callable[..., Estimate],
    *arrays: npt.ArrayLike,
    seed: int | np.random.Generator,
    n_resamples: int = 1000,
    level: float = 0.95,
    **options: object,
) -> Estimate:
    """``estimator(*arrays, **options)`` with a percentile-bootstrap interval in place of its own.

    Every positional array is one row per logged round (true of all the estimators here), so
    each resample draws n rounds with replacement and takes the same rows of each array.
    ``lower``/``upper`` are the (1 − level)/2 and (1 + level)/2 quantiles of the resampled
    estimates, ``std_err`` their standard deviation, ``method`` is ``"bootstrap"``; value and
    diagnostics are those of the full data. The percentile interval makes no normality
    assumption, which matters when a few large importance weights skew the terms (low ESS),
    but it is no cure for them: a resample still only sees the weights that were logged.

    For :func:`~oo_ml.ope.estimators.replay` with very few matched rounds, a resample can match
    none and the estimator's :class:`~oo_ml.errors.ValidationError` propagates.

    >>> from oo_ml.ope import ips
    >>> est = bootstrap(ips, [1.0, 0.0, 1.0, 1.0], [0.5] * 4, [0.5] * 4, seed=0, n_resamples=200)
    >>> (est.method, est.value, 0.0 <= est.lower <= est.value <= est.upper <= 1.0)
    ('bootstrap', 0.75, True)
    """
    level = check_level(level)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 2:
        raise ValidationError("n_resamples", f"is {n_resamples!r}; it must be an integer ≥ 2")
    if not arrays:
        raise ValidationError("arrays", "pass the estimator's row-aligned arrays positionally")
    point = estimator(*arrays, level=level, **options)  # validates every argument once
    data = [np.asarray(a) for a in arrays]
    n = data[0].shape[0]
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n, size=(n_resamples, n))
    values = np.fromiter(
        (estimator(*(d[r] for d in data), level=level, **options).value for r in rows),
        dtype=np.float64,
        count=n_resamples,
    )
    tail = (1.0 - level) / 2.0
    lower, upper = np.quantile(values, [tail, 1.0 - tail])
    return dataclasses.replace(
        point,
        lower=float(lower),
        upper=float(upper),
        std_err=float(np.std(values, ddof=1)),
        method="bootstrap",
    )
