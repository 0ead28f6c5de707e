"""Shared test settings: Hypothesis is derandomized so every run sees the same examples."""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("oo-ml", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("oo-ml")
