"""``jax.random.exponential`` draws, bit for bit, from threefry words computed ahead.

The engine's unit times of trial key κ at iteration k are
``jax.random.exponential(fold_in(κ, k), (M,))``: one Threefry-2x32 hash for the
fold-in and one per worker. On CPU jax runs the hash as a rolled loop (five
steps of four rounds). Written out as elementwise integer ops, the same hash is
one vectorised loop, about 3× faster (12 000 hashes: 56 against 170 µs on one
core). XLA would fuse that loop with the exponential's ``log1p``, and the fused
loop is no longer vectorised (5× slower than the two apart), so the engine
computes iteration k + 1's words in iteration k and carries them through the
scan: the carry keeps the hash in a loop of its own.

:func:`fold_in`, :func:`random_bits` and :func:`exponential` reproduce jax's result
exactly (the tests compare every bit, float32 and float64) when keys are threefry2x32 with
``jax_threefry_partitionable`` on, jax's defaults; :func:`matches_jax` says
whether they are, and the engine draws through ``jax.random`` otherwise.

>>> import jax
>>> key = jax.random.key(3)
>>> e = exponential(random_bits(fold_in(key, 5), 4, jnp.float32), jnp.float32)
>>> bool((e == jax.random.exponential(jax.random.fold_in(key, 5), (4,), jnp.float32)).all())
True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# Threefry-2x32's rotation constants, alternating every four rounds (Salmon et al. 2011).
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def matches_jax() -> bool:
    """Whether these functions give jax's bits: threefry keys, partitionable bit layout."""
    return jax.config.jax_default_prng_impl == "threefry2x32" and bool(
        jax.config.jax_threefry_partitionable
    )


@jax.jit
def threefry2x32(k1, k2, x1, x2):
    """The Threefry-2x32 hash (20 rounds) of the words (x1, x2) under key (k1, k2),
    all uint32 and broadcast together, as jax's ``threefry_2x32`` computes it.

    Jitted: the ~130 unrolled ops are then traced (and batched) once per shape and
    process, not in every program that draws unit times, which keeps compiles fast."""
    keys = (k1, k2, k1 ^ k2 ^ _PARITY)
    x1, x2 = x1 + keys[0], x2 + keys[1]
    for step in range(5):
        for rotation in _ROTATIONS[step % 2]:
            x1 = x1 + x2
            x2 = (x2 << np.uint32(rotation)) | (x2 >> np.uint32(32 - rotation))
            x2 = x1 ^ x2
        x1 = x1 + keys[(step + 1) % 3]
        x2 = x2 + keys[(step + 2) % 3] + np.uint32(step + 1)
    return x1, x2


def fold_in(key, k):
    """The two uint32 key words of ``jax.random.fold_in(key, k)`` (``key`` one typed
    key, vmap for many; ``k`` a non-negative integer, traced or not)."""
    k1, k2 = jax.random.key_data(key)
    return threefry2x32(k1, k2, np.uint32(0), jnp.asarray(k).astype(jnp.uint32))


def random_bits(key_words, n: int, dtype):
    """(n,) random bits as wide as ``dtype`` (float32: uint32, float64: uint64): those
    ``jax.random.exponential(key, (n,), dtype)`` transforms, for the key whose words
    are ``key_words`` (from :func:`fold_in`). One array, so that the hash is computed once."""
    counters = jnp.arange(n, dtype=jnp.uint32)
    high, low = threefry2x32(key_words[0], key_words[1], jnp.zeros_like(counters), counters)
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return high ^ low
    if dtype == np.float64:
        return (high.astype(jnp.uint64) << np.uint64(32)) | low.astype(jnp.uint64)
    raise ValueError(f"dtype must be float32 or float64, got {dtype}")


def exponential(bits, dtype):
    """Standard exponential draws of ``dtype`` from :func:`random_bits`, by jax.random's
    own transform: a uniform in [0, 1) from the top mantissa bits, then −log1p(−u)."""
    dtype = np.dtype(dtype)
    unsigned = bits.dtype.type
    shift = np.dtype(unsigned).itemsize * 8 - np.finfo(dtype).nmant
    one = np.array(1.0, dtype).view(unsigned)
    floats = jax.lax.bitcast_convert_type((bits >> unsigned(shift)) | one, dtype) - dtype.type(1.0)
    uniform = jax.lax.max(dtype.type(0.0), floats * dtype.type(1.0) + dtype.type(0.0))
    return -jnp.log1p(-uniform)
