"""Kernels of the time model: message arrivals per link model (MODEL.md §3, §9). The
wait rules that pick the messages the server uses are in :mod:`lagc_jax.strategies.wait`.

All functions are pure, jittable and vmappable over leading trial axes; they
see per-worker arrays of shape (M,) and use sorts and masks, never Python
branching on data. Ties are broken by worker index, so results are
deterministic.

>>> import jax.numpy as jnp
>>> arrivals = arrival_times(jnp.array([3.0, 1.0, 2.0]), jnp.array([True, True, False]), 0.5, "shared")
>>> arrivals.tolist()
[3.5, 1.5, 2.0]
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from .checks import LINKS  # the uplinks parallel and shared, defined once

# Bits of one coordinate of a full-precision message on the wire (MODEL.md §9),
# whatever dtype the simulation computes in.
BITS_PER_COORDINATE = 32


def arrival_times(compute_times, uploads, upload_time, link: str):
    """Arrival time at the server of each worker's message, shape (M,).

    ``uploads`` marks gradient uploads, which take ``upload_time`` on the link;
    other entries are skip notices (or nothing) and arrive at their compute time.
    ``link="parallel"``: every worker has its own link (arrival = c + τ).
    ``link="shared"``: one FIFO uplink serving uploads in order of compute
    completion, so upload j finishes at max(c_j, finish of the previous upload) + τ.

    >>> c, up = jnp.array([1.0, 1.0, 3.0]), jnp.array([True, True, True])
    >>> arrival_times(c, up, 1.0, "parallel").tolist(), arrival_times(c, up, 1.0, "shared").tolist()
    ([2.0, 2.0, 4.0], [2.0, 3.0, 4.0])
    """
    c = jnp.asarray(compute_times)
    tau = jnp.asarray(upload_time, c.dtype)
    if link == "parallel":
        return c + jnp.where(uploads, tau, 0.0)
    if link != "shared":
        raise ValueError(f"link must be one of {LINKS}, got {link!r}")
    order = jnp.argsort(c, stable=True)
    c_sorted, up_sorted = c[order], uploads[order]
    served = jnp.cumsum(up_sorted.astype(c.dtype))  # uploads served up to and including j
    # finish_j = τ·served_j + max_{i<=j, i uploads} (c_i − τ·served_{i−1})
    start_key = jnp.where(up_sorted, c_sorted - tau * (served - 1.0), -jnp.inf)
    finish = tau * served + lax.cummax(start_key)
    arrival_sorted = jnp.where(up_sorted, finish, c_sorted)
    return jnp.zeros_like(c).at[order].set(arrival_sorted)


def sized_arrival_times(compute_times, uploads, durations, link: str):
    """:func:`arrival_times` with a link time per message: ``durations`` (M,) is the time
    upload m occupies its link (parallel: its own; shared: the FIFO uplink, served in
    order of compute completion, ties by worker index).

    >>> c, up = jnp.array([1.0, 1.0, 3.0]), jnp.array([True, True, False])
    >>> sized_arrival_times(c, up, jnp.array([0.5, 2.0, 1.0]), "shared").tolist()
    [1.5, 3.5, 3.0]
    """
    c = jnp.asarray(compute_times)
    durations = jnp.where(uploads, jnp.asarray(durations, c.dtype), 0.0)
    if link == "parallel":
        return c + durations
    if link != "shared":
        raise ValueError(f"link must be one of {LINKS}, got {link!r}")
    order = jnp.argsort(c, stable=True)
    c_sorted, up_sorted, s_sorted = c[order], uploads[order], durations[order]
    served = jnp.cumsum(s_sorted)  # link time of the uploads up to and including j
    # finish_j = served_j + max_{i<=j, i uploads} (c_i − served_{i−1})
    start_key = jnp.where(up_sorted, c_sorted - (served - s_sorted), -jnp.inf)
    finish = served + lax.cummax(start_key)
    arrival_sorted = jnp.where(up_sorted, finish, c_sorted)
    return jnp.zeros_like(c).at[order].set(arrival_sorted)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class Link:
    """The network of a run (MODEL.md §3, §9): a pytree whose numbers are traced.

    An upload of β bits occupies its link for ``latency + upload_time · β / (32 d)``,
    times the worker's ``upload_factors[m]`` (heterogeneous bandwidth; None: all 1);
    ``upload_time`` τ is the time of one full-precision gradient of d coordinates.
    ``broadcast_time`` τ_b is paid once per round; skip notices take no link time.
    ``kind`` (static): "parallel" (a link per worker) or "shared" (one FIFO uplink).
    With full-precision messages, latency 0 and no factors this is MODEL.md §3 exactly.

    >>> link = Link(upload_time=1.0, latency=0.25, kind="shared")
    >>> c, up = jnp.array([1.0, 1.0]), jnp.array([True, True])
    >>> link.arrivals(c, up, bits=jnp.array([80.0, 160.0]), dim=10).tolist()
    [1.5, 2.25]
    """

    upload_time: Any = 0.0
    broadcast_time: Any = 0.0
    latency: Any = 0.0
    upload_factors: Any = None
    kind: str = dataclasses.field(default="parallel", metadata={"static": True})

    def durations(self, bits=None, dim=None):
        """Link time of each worker's upload: (M,) with bits (M,) or factors, else a scalar."""
        full = (
            self.upload_time
            if bits is None
            else (self.upload_time * (bits / (BITS_PER_COORDINATE * dim)))
        )
        duration = self.latency + full
        if self.upload_factors is not None:
            duration = duration * self.upload_factors
        return duration

    def arrivals(self, compute_times, uploads, bits=None, dim=None):
        """Arrival time of each message at the server, (M,); ``bits`` (M,) the sizes of
        the uploads (default: full precision, 32·dim), ``dim`` the coordinates of θ."""
        duration = self.durations(bits, dim)
        if jnp.ndim(duration) == 0:  # one time per upload: the closed form of §3
            return arrival_times(compute_times, uploads, duration, self.kind)
        return sized_arrival_times(compute_times, uploads, duration, self.kind)
