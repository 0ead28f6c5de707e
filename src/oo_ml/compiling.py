"""numba, as every compiled kernel of the package uses it.

Kernels are compiled in nopython mode at their first call with given argument types and cached
on disk beside their module (or in numba's user cache directory when that is read-only). No
``fastmath``: results stay IEEE, identical from run to run and machine to machine, and equal
to numpy's element-wise arithmetic term for term. ``NUMBA_DISABLE_JIT=1`` runs the same
functions as plain Python, for debugging.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

__all__ = ["compiled"]

F = TypeVar("F", bound=Callable[..., Any])


def compiled(function: F) -> F:
    """``function`` compiled in nopython mode, with an on-disk cache when one can be written."""
    try:
        compiled = numba.njit(cache=True)(function)
    except RuntimeError:  # no writable cache location (read-only install, no home directory)
        compiled = numba.njit(function)
    return cast(F, compiled)
