"""The first ``random()`` of ``numpy.random.Generator(PCG64(seed))``, computed in plain integers.

Every ε-greedy decision draws one number from a generator seeded with the decision's logged
seed. Building that generator — ``SeedSequence`` hashing the seed into the pool, generating
PCG64's 256 bits of initial state, then the bit generator and ``Generator`` objects — costs
numpy ~9 µs, most of it object and array overhead around a few dozen 32-bit multiplications.
:func:`first_random` does those multiplications directly and returns the very same double:

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


def first_random(seed: int) -> float:
    """``numpy.random.Generator(numpy.random.PCG64(seed)).random()`` for ``0 <= seed <=
    MAX_SEED``, bit for bit."""
    words = (seed & _M32, (seed >> 32) & _M32, (seed >> 64) & _M32, (seed >> 96) & _M32)
    pool = []
    for word, (xor, mult) in zip(words, _FIRST, strict=True):
        value = ((word ^ xor) * mult) & _M32
        pool.append(value ^ (value >> 16))
    for src, dst, xor, mult in _CROSS:
        value = ((pool[src] ^ xor) * mult) & _M32
        mixed = (_MIX_L * pool[dst] - _MIX_R * (value ^ (value >> 16))) & _M32
        pool[dst] = mixed ^ (mixed >> 16)
    out = []
    for i, (xor, mult) in enumerate(_OUT):
        value = ((pool[i & 3] ^ xor) * mult) & _M32
        out.append(value ^ (value >> 16))
    initial = (out[0] | out[1] << 32) << 64 | out[2] | out[3] << 32
    increment = ((((out[4] | out[5] << 32) << 64 | out[6] | out[7] << 32) << 1) | 1) & _M128
    state = ((increment + initial) * _PCG_MULT + increment) & _M128
    state = (state * _PCG_MULT + increment) & _M128  # the draw's own step
    xored = ((state >> 64) ^ state) & _M64
    rotation = state >> 122
    output = ((xored >> rotation) | (xored << (64 - rotation))) & _M64
    return (output >> 11) * (1.0 / 9007199254740992.0)
