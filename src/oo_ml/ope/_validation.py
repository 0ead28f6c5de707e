"""Input checks shared by the estimators; each failure names the argument (and row) at fault.

Every check copies its input into a fresh array, so no estimator can mutate what a caller
passed, and lists, tuples and arrays of any numeric dtype are accepted alike.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import numpy.typing as npt

from oo_ml.errors import ValidationError

__all__ = [
    "ROW_SUM_TOLERANCE",
    "check_actions",
    "check_clip",
    "check_distribution",
    "check_level",
    "check_matrix",
    "check_probabilities",
    "check_rewards",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: How far a row of ``target_dist`` may sum from 1: loose enough for float32 softmax output
#: (errors near 1e-7 per row), tight enough that a missing candidate (≥ 1e-3 of mass) fails.
ROW_SUM_TOLERANCE = 1e-6


def _numeric(name: str, value: object, ndim: int) -> npt.NDArray[np.generic]:
    try:
        array = np.array(value, copy=True)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise ValidationError(name, f"must be a rectangular numeric array ({exc})") from None
    if array.dtype.kind not in "biuf":
        raise ValidationError(name, f"must hold numbers, not {array.dtype}")
    if ndim == 2 and array.ndim == 3:
        # Open Bandit Pipeline's layout, rounds × K × slots (its action_dist and
        # estimated_rewards_by_reg_model): one slot is a rounds × K matrix.
        if array.shape[2] != 1:
            raise ValidationError(
                name,
                f"has {array.shape[2]} slots (rounds × K × slots); rankings are not "
                "supported: pass one slot, e.g. action_dist[:, :, 0]",
            )
        array = array[:, :, 0]
    if array.ndim != ndim:
        shape = "a 1-d array (one value per round)" if ndim == 1 else "a 2-d array (rounds × K)"
        raise ValidationError(name, f"must be {shape}, got {array.ndim}-d")
    if array.shape[0] == 0:
        raise ValidationError(name, "must hold at least one round")
    return array


def _first_bad_row(mask: npt.NDArray[np.bool_]) -> int:
    flat = mask.reshape(mask.shape[0], -1).any(axis=1)
    return int(np.argmax(flat))


def _same_rows(name: str, array: npt.NDArray[np.generic], n: int | None, other: str) -> None:
    if n is not None and array.shape[0] != n:
        raise ValidationError(name, f"has {array.shape[0]} rounds but {other} has {n}")


def _finite(name: str, array: FloatArray) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        row = _first_bad_row(bad)
        what = "NaN" if np.isnan(array[row]).any() else "infinite"
        raise ValidationError(f"{name}[{row}]", f"is {what}; every value must be finite")


def check_rewards(name: str, value: object, n: int | None = None, other: str = "") -> FloatArray:
    """A finite 1-d float array; ``n`` rounds when given (``other`` names where n came from)."""
    array = _numeric(name, value, 1)
    _same_rows(name, array, n, other)
    result = array.astype(np.float64, copy=False)
    _finite(name, result)
    return result


def check_probabilities(
    name: str, value: object, n: int | None, other: str, *, positive: bool
) -> FloatArray:
    """Probabilities in (0, 1] (``positive``, a logging propensity) or in [0, 1] (a target's)."""
    result = check_rewards(name, value, n, other)
    low_bad = result <= 0.0 if positive else result < 0.0
    bad = low_bad | (result > 1.0)
    if bad.any():
        row = _first_bad_row(bad)
        interval = "(0, 1]" if positive else "[0, 1]"
        reason = (
            "; a logged action must have had a positive chance of being logged"
            if positive and result[row] == 0.0
            else ""
        )
        raise ValidationError(
            f"{name}[{row}]", f"is {float(result[row])!r}, outside {interval}{reason}"
        )
    return result


def check_matrix(
    name: str, value: object, shape: tuple[int, ...] | None = None, other: str = ""
) -> FloatArray:
    """A finite 2-d float array with at least one column; ``shape`` when given."""
    array = _numeric(name, value, 2)
    if array.shape[1] == 0:
        raise ValidationError(name, "must have at least one candidate column")
    if shape is not None and array.shape != shape:
        raise ValidationError(name, f"has shape {array.shape} but {other} has shape {shape}")
    result = array.astype(np.float64, copy=False)
    _finite(name, result)
    return result


def check_distribution(
    name: str, value: object, n: int | None = None, other: str = ""
) -> FloatArray:
    """An n × K matrix whose rows are probability distributions (padding is zeros)."""
    result = check_matrix(name, value)
    _same_rows(name, result, n, other)
    bad = (result < 0.0) | (result > 1.0)
    if bad.any():
        row = _first_bad_row(bad)
        col = int(np.argmax(bad[row]))
        raise ValidationError(
            f"{name}[{row}][{col}]", f"is {float(result[row, col])!r}, outside [0, 1]"
        )
    sums = result.sum(axis=1)
    off = np.abs(sums - 1.0) > ROW_SUM_TOLERANCE
    if off.any():
        row = int(np.argmax(off))
        raise ValidationError(
            f"{name}[{row}]",
            f"sums to {float(sums[row])!r}; each row must sum to 1 (±{ROW_SUM_TOLERANCE:g})",
        )
    return result


def check_actions(
    name: str, value: object, n: int | None, other: str, n_candidates: int | None = None
) -> IntArray:
    """Non-negative integer action indices, below ``n_candidates`` when given."""
    array = _numeric(name, value, 1)
    _same_rows(name, array, n, other)
    if array.dtype.kind == "f":
        # Tables read with pandas or CSV readers often hold indices as floats: accept whole ones.
        _finite(name, array.astype(np.float64, copy=False))
        fractional = array != np.floor(array)
        if fractional.any():
            row = int(np.argmax(fractional))
            raise ValidationError(
                f"{name}[{row}]", f"is {float(array[row])!r}, must be an integer action index"
            )
    elif array.dtype.kind not in "iu":
        raise ValidationError(name, f"must hold integer action indices, not {array.dtype}")
    result = array.astype(np.int64, copy=False)
    bad = result < 0 if n_candidates is None else (result < 0) | (result >= n_candidates)
    if bad.any():
        row = int(np.argmax(bad))
        bound = "≥ 0" if n_candidates is None else f"in [0, {n_candidates})"
        raise ValidationError(f"{name}[{row}]", f"is {int(result[row])}, must be {bound}")
    return result


def check_clip(clip: object) -> float | None:
    """``None`` (no clipping) or a positive cap on the importance weights."""
    if clip is None:
        return None
    if isinstance(clip, bool) or not isinstance(clip, numbers.Real):
        raise ValidationError("clip", f"must be a number or None, not {type(clip).__name__}")
    if math.isnan(clip) or clip <= 0:
        raise ValidationError("clip", f"is {clip!r}; it must be a positive weight cap")
    return float(clip)


def check_level(level: object) -> float:
    """A confidence level strictly between 0 and 1."""
    if isinstance(level, bool) or not isinstance(level, numbers.Real):
        raise ValidationError("level", f"must be a number, not {type(level).__name__}")
    value = float(level)
    if not 0.0 < value < 1.0:
        raise ValidationError("level", f"is {level!r}; it must lie strictly between 0 and 1")
    return value
