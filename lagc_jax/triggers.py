"""Lazy-aggregation triggers of LAG (Chen et al. 2018; MODEL.md §5).

A lazily aggregated unit u keeps at the server its last uploaded gradient ĝ_u
and the iterate θ̂_u it was computed at. With R_k = Σ_{j=1}^{D} ‖θ^{k+1−j} − θ^{k−j}‖²
(a ring buffer of the last D squared steps) and U units:

    worker-side: upload iff  ‖g_u(θ^k) − ĝ_u‖²      > ξ R_k / (α² U² D)
    server-side: ask    iff  L_u² ‖θ̂_u − θ^k‖²       > ξ R_k / (α² U² D)

All functions are pure, jittable and vmappable.

>>> import jax.numpy as jnp
>>> history = push_step(jnp.zeros(3), 4.0, 0)            # R = 4, D = 3
>>> thr = lazy_threshold(history, xi=1.0, step_size=0.5, num_units=2)
>>> float(thr)                                            # 1·4 / (0.25·4·3)
1.3333333333333333
>>> worker_trigger(jnp.array([[2.0], [1.0]]), jnp.zeros((2, 1)), thr).tolist()
[True, False]
"""

from __future__ import annotations

import jax.numpy as jnp

from .reductions import sum_squares


def push_step(history, step_sq, k):
    """Store ‖θ^{k+1} − θ^k‖² in the ring buffer of the last D squared steps.

    >>> push_step(jnp.zeros(2), 3.0, 5).tolist()      # slot 5 mod 2
    [0.0, 3.0]
    """
    return history.at[k % history.shape[0]].set(step_sq)


def lazy_threshold(history, xi, step_size, num_units: int):
    """ξ R_k / (α² U² D), with R_k the sum of the ring buffer (missing entries are 0).

    >>> float(lazy_threshold(jnp.array([1.0, 3.0]), xi=1.0, step_size=1.0, num_units=2))
    0.5
    """
    D = history.shape[0]
    return xi * jnp.sum(history) / (step_size**2 * num_units**2 * D)


def worker_trigger(fresh, stored, threshold):
    """Worker-side rule: units (U, d) whose gradient moved more than the threshold upload.

    >>> worker_trigger(jnp.array([[1.0, 1.0], [0.1, 0.0]]), jnp.zeros((2, 2)), 0.5).tolist()
    [True, False]
    """
    return sum_squares(fresh - stored) > threshold


def server_trigger(theta, stored_params, unit_smoothness, threshold):
    """Server-side rule: ask units whose iterate is stale enough, L_u² ‖θ̂_u − θ‖² > threshold.

    >>> stale = jnp.array([[0.0], [1.0]])           # θ̂_u of two units; θ = 0
    >>> server_trigger(jnp.zeros(1), stale, jnp.array([5.0, 2.0]), 3.0).tolist()
    [False, True]
    """
    drift = sum_squares(stored_params - theta)
    return unit_smoothness**2 * drift > threshold
