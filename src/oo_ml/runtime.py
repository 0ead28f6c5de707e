"""Process-wide settings for long-running jobs (the server's workers, simulations)."""

from __future__ import annotations

import gc

__all__ = ["YOUNG_GC_THRESHOLD", "freeze_startup_heap"]

YOUNG_GC_THRESHOLD = 10_000
"""Allocations between two young collections (Python's default: 700)."""


def freeze_startup_heap() -> None:
    """Move everything allocated so far out of the garbage collector's sight, and collect the
    young generation less often.

    Call it once the long-lived objects exist (imports, the app, the engine): ~130 000 of them
    for the service. Otherwise objects that live a little while (requests in flight, a
    simulation's records) survive young collections often enough to trigger full ones, and
    each full one walks all of the startup objects too: 50–100 ms with the event loop
    stopped in a server, 10–30 µs per step of a simulation. A young collection costs about the
    same whatever its threshold (it walks what is alive), so a higher one runs fewer of them.
    Frozen objects are never freed; that is what they are for.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
