"""``first_random`` is numpy's first ``random()`` of ``Generator(PCG64(seed))``, bit for bit,
and a lazy generator that used it goes on exactly as numpy's would."""

from __future__ import annotations

import random

import numpy as np
import pytest

from oo_ml.policies.base import seeded_generator
from oo_ml.policies.pcg import MAX_SEED, first_random


def _numpy_first(seed: int) -> float:
    return float(np.random.Generator(np.random.PCG64(seed)).random())


def test_first_random_matches_numpy_on_seeds_of_every_length() -> None:
    rnd = random.Random(20240601)
    seeds = [0, 1, 2**32 - 1, 2**32, 2**63 - 1, 2**64, MAX_SEED]
    seeds += [rnd.getrandbits(bits) for bits in range(1, 129) for _ in range(20)]
    seeds += [rnd.getrandbits(63) for _ in range(5000)]  # the engine's seeds
    for seed in seeds:
        assert first_random(seed) == _numpy_first(seed), seed


@pytest.mark.parametrize("seed", [0, 7, 2**62 + 12345, MAX_SEED])
def test_lazy_generator_continues_after_the_computed_draw(seed: int) -> None:
    real = np.random.Generator(np.random.PCG64(seed))
    lazy = seeded_generator(seed)
    assert lazy.random() == real.random()
    assert lazy.random() == real.random()
    assert lazy.integers(0, 1000, size=5).tolist() == real.integers(0, 1000, size=5).tolist()
    assert lazy.standard_normal(3).tolist() == real.standard_normal(3).tolist()


def test_lazy_generator_without_the_shortcut_is_numpy() -> None:
    seed = 2**63 - 5
    real = np.random.Generator(np.random.PCG64(seed))
    lazy = seeded_generator(seed)
    assert lazy.random(3).tolist() == real.random(3).tolist()  # an argument: the real one
    assert lazy.random() == real.random()
    sequence = np.random.SeedSequence([seed, 99])
    lazy_ss = seeded_generator(sequence)
    assert lazy_ss.random() == np.random.Generator(np.random.PCG64(sequence)).random()
    with pytest.raises(ValueError, match="negative"):  # numpy's refusal, unchanged
        seeded_generator(-1).random()
