"""``first_random`` is numpy's first ``random()`` of ``Generator(PCG64(seed))``, bit for bit,
and a lazy generator that used it goes on exactly as numpy's would."""

from __future__ import annotations

import random

import numpy as np
import pytest

from oo_ml.policies.base import seeded_generator
from oo_ml.policies.pcg import MAX_SEED, first_after, first_random, pcg64_words


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


def test_first_after_is_numpys_first_draw_after_advancing() -> None:
    rnd = random.Random(7)
    starts = [np.random.SeedSequence([rnd.getrandbits(64), u, 0x7A]) for u in range(40)]
    words = [pcg64_words(np.random.PCG64(start).state) for start in starts]
    columns = [np.array([w[part][half] for w in words]) for part in (0, 1) for half in (0, 1)]
    out = np.empty(len(starts))
    deltas = [0, 1, 2, 3, 2**32, 7 << 32, (149 << 32) + 1, 2**48 + 12345, rnd.getrandbits(62)]
    for delta in deltas:
        first_after(*columns, delta, out)
        for start, got in zip(starts, out.tolist(), strict=True):
            bits = np.random.PCG64(start)
            bits.advance(delta)
            assert got == np.random.Generator(bits).random(), (start, delta)


def test_first_after_reads_the_state_a_generator_has_reached() -> None:
    generator = np.random.default_rng(11)
    generator.random(17)  # a state far from any seed's
    generator.integers(0, 5)  # and a half-used 32-bit word, which advancing discards
    state, inc = pcg64_words(generator.bit_generator.state)
    out = np.empty(1)
    first_after(*(np.array([word]) for word in (*state, *inc)), 5, out)
    generator.bit_generator.advance(5)
    assert out[0] == generator.random()
