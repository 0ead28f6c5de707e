"""The first ``random()`` of ``numpy.random.Generator(PCG64(seed))``, computed directly.

Every ε-greedy decision draws one number from a generator seeded with the decision's logged
seed. Building that generator — ``SeedSequence`` hashing the seed into the pool, generating
PCG64's 256 bits of initial state, then the bit generator and ``Generator`` objects — costs
numpy ~15 µs, most of it object and array overhead around a few dozen 32-bit multiplications.
:func:`first_random` does those multiplications in one compiled call (numba, unsigned 64-bit
words; ~0.4 µs, where the same arithmetic on Python integers took ~10) and returns the very
same double:

* ``SeedSequence(seed)`` with no spawn key: the seed's 32-bit words (least significant first)
  are mixed into a pool of four words (``mix_entropy``), then ``generate_state(4, uint64)``
  hashes the pool into eight words, read as four little-endian 64-bit words.
* ``PCG64``: state and increment are the 128-bit numbers of words (0, 1) and (2, 3), seeded as
  ``pcg_setseq_128_srandom_r``; a draw steps the LCG and outputs XSL-RR; ``random()`` keeps the
  top 53 bits.

The constants are numpy's (``numpy/random/bit_generator.pyx``, ``pcg64.h``); numpy keeps both
algorithms stable across versions, as reproducible seeding requires. ``tests/core`` compares
this with numpy on seeds of every length.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from oo_ml.compiling import compiled

__all__ = ["MAX_SEED", "first_random"]

MAX_SEED = (1 << 128) - 1
"""Seeds up to four 32-bit words; longer ones change the mixing (not handled here)."""

_M32 = 0xFFFFFFFF
_M64 = (1 << 64) - 1
_M128 = (1 << 128) - 1
_PCG_MULT = (2549297995355413924 << 64) + 4865540595714422341
_MIX_L = 0xCA01F9DD
_MIX_R = 0x4973F715


def _hash_constants(start: int, mult: int, count: int) -> list[tuple[int, int]]:
    """The (xor, multiplier) of each successive hashmix: the hash constant before and after
    its update, which depend only on how many hashes came before."""
    pairs = []
    constant = start
    for _ in range(count):
        before = constant
        constant = (constant * mult) & _M32
        pairs.append((before, constant))
    return pairs


_MIX = _hash_constants(0x43B0D7E5, 0x931E8875, 16)  # INIT_A, MULT_A: mix_entropy's 16 hashes
_FIRST = _MIX[:4]
_CROSS = [
    (src, dst, xor, mult)
    for (src, dst), (xor, mult) in zip(
        [(s, d) for s in range(4) for d in range(4) if s != d], _MIX[4:], strict=True
    )
]
_OUT = _hash_constants(0x8B51F9DD, 0x58F38DED, 8)  # INIT_B, MULT_B: generate_state's 8 words

# The same constants as the kernel reads them (numba freezes global arrays into the code).
_MIX_U = np.array(_MIX, dtype=np.uint64)
_OUT_U = np.array(_OUT, dtype=np.uint64)
_CROSS_U = np.array([(src, dst) for src, dst, _, _ in _CROSS], dtype=np.int64)
_MULT_HIGH = np.uint64(_PCG_MULT >> 64)
_MULT_LOW = np.uint64(_PCG_MULT & _M64)
_TWO_63 = 1 << 63


def first_random(seed: int) -> float:
    """``numpy.random.Generator(numpy.random.PCG64(seed)).random()`` for ``0 <= seed <=
    MAX_SEED``, bit for bit."""
    if 0 <= seed < _TWO_63:  # the engine's seeds: one word, passed as it is
        return _first_random(seed, 0)
    high, low = _split(seed)  # two 64-bit words, each as the signed integer of the same bits
    return _first_random(low, high)


def _split(value: int) -> tuple[int, int]:
    """A 128-bit number as the signed integers of its (high, low) 64-bit words."""
    high, low = value >> 64, value & _M64
    return high - (high >> 63 << 64), low - (low >> 63 << 64)


@compiled
def _product(a: np.uint64, b: np.uint64) -> tuple[np.uint64, np.uint64]:
    """The 128-bit product of two 64-bit words, as (high, low) words."""
    m32, s32 = np.uint64(_M32), np.uint64(32)
    a0, a1, b0, b1 = a & m32, a >> s32, b & m32, b >> s32
    p00, p01, p10 = a0 * b0, a0 * b1, a1 * b0
    middle = (p00 >> s32) + (p01 & m32) + (p10 & m32)
    return a1 * b1 + (p01 >> s32) + (p10 >> s32) + (middle >> s32), (p00 & m32) | (middle << s32)


@compiled
def _times(
    a_high: np.uint64, a_low: np.uint64, b_high: np.uint64, b_low: np.uint64
) -> tuple[np.uint64, np.uint64]:
    """The product of two 128-bit numbers modulo 2¹²⁸, as (high, low) words."""
    high, low = _product(a_low, b_low)
    return high + a_low * b_high + a_high * b_low, low


@compiled
def _plus(
    a_high: np.uint64, a_low: np.uint64, b_high: np.uint64, b_low: np.uint64
) -> tuple[np.uint64, np.uint64]:
    """The sum of two 128-bit numbers modulo 2¹²⁸, as (high, low) words."""
    low = a_low + b_low
    return a_high + b_high + (np.uint64(1) if low < a_low else np.uint64(0)), low


@compiled
def _step(
    high: np.uint64, low: np.uint64, inc_high: np.uint64, inc_low: np.uint64
) -> tuple[np.uint64, np.uint64]:
    """PCG64's LCG step of the 128-bit state (high, low): ``state * MULT + increment``."""
    product_high, product_low = _times(high, low, _MULT_HIGH, _MULT_LOW)
    return _plus(product_high, product_low, inc_high, inc_low)


@compiled
def _output(high: np.uint64, low: np.uint64) -> float:
    """What ``random()`` makes of the state (high, low) after a step: XSL-RR's 64-bit output,
    its top 53 bits as a double in [0, 1)."""
    xored = high ^ low
    rotation = high >> np.uint64(58)
    output = (xored >> rotation) | (xored << ((np.uint64(64) - rotation) & np.uint64(63)))
    return float(output >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@compiled
def _first_random(low_word: int, high_word: int) -> float:
    """:func:`first_random` of the seed whose 64-bit words have the bits of these integers.
    (Under ``NUMBA_DISABLE_JIT=1`` numpy refuses the negative ones: seeds below 2⁶³ only.)"""
    m32, s16, s32, one = np.uint64(_M32), np.uint64(16), np.uint64(32), np.uint64(1)
    low, high = np.uint64(low_word), np.uint64(high_word)
    words = (low & m32, low >> s32, high & m32, high >> s32)
    pool = np.empty(4, np.uint64)
    for i in range(4):  # mix_entropy: each word hashed into the pool ...
        value = ((words[i] ^ _MIX_U[i, 0]) * _MIX_U[i, 1]) & m32
        pool[i] = value ^ (value >> s16)
    for j in range(12):  # ... then every pool word mixed into every other
        src, dst = _CROSS_U[j, 0], _CROSS_U[j, 1]
        value = ((pool[src] ^ _MIX_U[4 + j, 0]) * _MIX_U[4 + j, 1]) & m32
        mixed = (np.uint64(_MIX_L) * pool[dst] - np.uint64(_MIX_R) * (value ^ (value >> s16))) & m32
        pool[dst] = mixed ^ (mixed >> s16)
    out = np.empty(8, np.uint64)
    for i in range(8):  # generate_state: eight 32-bit words of PCG64's seed
        value = ((pool[i & 3] ^ _OUT_U[i, 0]) * _OUT_U[i, 1]) & m32
        out[i] = value ^ (value >> s16)
    initial_high, initial_low = out[0] | out[1] << s32, out[2] | out[3] << s32
    inc_high, inc_low = out[4] | out[5] << s32, out[6] | out[7] << s32
    inc_high = (inc_high << one) | (inc_low >> np.uint64(63))  # increment = (inc << 1) | 1
    inc_low = (inc_low << one) | one
    # pcg_setseq_128_srandom_r: state = (increment + initial) stepped once ...
    high, low = _plus(inc_high, inc_low, initial_high, initial_low)
    high, low = _step(high, low, inc_high, inc_low)
    high, low = _step(high, low, inc_high, inc_low)  # ... and the draw's own step
    return _output(high, low)


def pcg64_words(state: Mapping[str, Any]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(state, increment) of a ``PCG64``'s ``state`` (what its ``.state`` gives), each as the
    (high, low) words :func:`first_after` takes."""
    inner = state["state"]
    return _split(int(inner["state"])), _split(int(inner["inc"]))


@compiled
def first_after(  # noqa: PLR0917 (a kernel takes arrays, not an object)
    state_high: Any, state_low: Any, inc_high: Any, inc_low: Any, delta: int, out: Any
) -> None:
    """``out[i]``: the ``random()`` a ``PCG64`` in state ``i`` gives once advanced by ``delta``
    draws (``bits.advance(delta)``, which also empties its 32-bit buffer; ``random()`` never
    reads it). States and increments are 128-bit numbers as arrays of (high, low) int64 words
    (:func:`pcg64_words`); the jump is PCG's own, O(log delta) multiplications."""
    one, zero = np.uint64(1), np.uint64(0)
    for i in range(out.shape[0]):
        c_high, c_low = np.uint64(inc_high[i]), np.uint64(inc_low[i])
        m_high, m_low = _MULT_HIGH, _MULT_LOW  # the multiplier of 2^k steps
        acc_high, acc_low, add_high, add_low = zero, one, zero, zero
        left = np.uint64(delta)
        while left > zero:
            if left & one:
                acc_high, acc_low = _times(acc_high, acc_low, m_high, m_low)
                add_high, add_low = _times(add_high, add_low, m_high, m_low)
                add_high, add_low = _plus(add_high, add_low, c_high, c_low)
            p_high, p_low = _plus(m_high, m_low, zero, one)
            c_high, c_low = _times(p_high, p_low, c_high, c_low)
            m_high, m_low = _times(m_high, m_low, m_high, m_low)
            left >>= one
        high, low = _times(acc_high, acc_low, np.uint64(state_high[i]), np.uint64(state_low[i]))
        high, low = _plus(high, low, add_high, add_low)
        high, low = _step(high, low, np.uint64(inc_high[i]), np.uint64(inc_low[i]))
        out[i] = _output(high, low)
