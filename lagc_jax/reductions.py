"""Small reductions written so that XLA fuses them on CPU, for the per-round kernels.

Under vmap over trials, two plain spellings compile badly on CPU:

- ``weights @ rows`` for a (R,) × (R, d) product per trial is a batched dot of tiny
  matrices (3–4× slower than multiplying and summing, measured at R = 12, d = 50);
- ``jnp.sum(x, axis)`` over more than 32 elements is rewritten by XLA into a
  reduce-window over a materialised input, so a producer (a difference, a square)
  no longer fuses into the reduction (1.6× slower at d = 50).

These helpers multiply and sum in segments of at most :data:`SEGMENT` elements,
which keeps one fused loop per reduction. Exact in exact arithmetic; in floating
point the order of the additions differs from ``jnp.sum`` (rounding at the level
of the dtype's ε).

>>> import jax.numpy as jnp
>>> float(sum_squares(jnp.arange(100.0)))
328350.0
>>> weighted_rows(jnp.array([1.0, 2.0]), jnp.array([[1.0, 1.0], [3.0, 4.0]])).tolist()
[7.0, 9.0]
"""

from __future__ import annotations

import jax.numpy as jnp

# XLA's CPU compiler splits reductions over more elements than this into a tree.
SEGMENT = 32


def segmented_sum(x, axis: int = -1):
    """Σ over ``axis`` as a sum of per-segment sums of at most SEGMENT elements each."""
    axis = axis % x.ndim
    n = x.shape[axis]
    if n <= SEGMENT:
        return jnp.sum(x, axis=axis)
    parts = -(-n // SEGMENT)
    size = -(-n // parts)
    total = None
    for start in range(0, n, size):
        index = (slice(None),) * axis + (slice(start, start + size),)
        part = jnp.sum(x[index], axis=axis)
        total = part if total is None else total + part
    return total


def sum_squares(x):
    """Σ_i x_i² over the last axis."""
    return segmented_sum(x * x, axis=-1)


def inner(a, b):
    """Σ_i a_i b_i over the last axis."""
    return segmented_sum(a * b, axis=-1)


def weighted_rows(weights, rows):
    """Σ_r w_r rows_r: weights (R,), rows (R, d) -> (d,) (``weights @ rows``)."""
    return segmented_sum(weights[:, None] * rows, axis=0)
