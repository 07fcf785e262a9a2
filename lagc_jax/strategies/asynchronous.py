"""Asynchronous strategies (MODEL.md §8): K-async SGD and asynchronous SGD (k = 1).

The server does not run rounds: it updates θ as soon as the next k gradients have
arrived, and workers keep computing on the θ they last received. One engine step is
one server update n. The state carries, per worker, the gradient its running job
will deliver, the job's arrival time relative to the current server time t_n (so
float32 keeps its precision over long runs), its job index j, and whether the job
started at this update (its gradient is then ∇f_m(θ^n) = ``round.grads[m]``, and its
unit time X_{j,m} comes from ``round.draw``, the unit times indexed by job).

>>> s = KAsync(num_workers=4, k=2)
>>> s.name, s.num_partitions, s.delay_dependent
('k-async', 4, True)
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from .protocol import Stats, pytree_dataclass, static


class AsyncState(NamedTuple):
    """Per-trial state of :class:`KAsync` (all arrays over the M workers)."""

    pending: jnp.ndarray  # (M, d) gradient each worker's running job delivers
    arrival: jnp.ndarray  # (M,) arrival time of that job, relative to the current server time
    job: jnp.ndarray  # (M,) int32 index j of the running job
    fresh: jnp.ndarray  # (M,) bool: the job starts at this update (θ^n just sent)


@pytree_dataclass
class KAsync:
    """K-async SGD: update with the sum of the next k gradients to arrive.

    Identity placement (P = M, load 1), parallel uplink only. Worker m's job j takes
    τ_b (receiving θ) + X_{j,m} + τ; the server's update n uses the k earliest
    arrivals (ties by worker index), at t_n = the k-th, and sends θ^n to those k
    workers only. Counts per update: uploads k; downloads and computations M at
    n = 1, k later. With k = M it is ``gd``.

    >>> import jax.numpy as jnp
    >>> from lagc_jax.strategies import Knobs, Round
    >>> s = KAsync(num_workers=3, k=1)
    >>> state = s.init(jnp.zeros(2), None)
    >>> grads = jnp.arange(6.0).reshape(3, 2)
    >>> knobs = Knobs(step_size=0.1)
    >>> g, state, stats = s.step(state, Round(jnp.zeros(2), grads, jnp.array([2.0, 1.0, 3.0]),
    ...                                       jnp.int32(0)), knobs)
    >>> g.tolist(), float(stats.duration), stats.upload_mask.tolist()
    ([2.0, 3.0], 1.0, [False, True, False])
    """

    num_workers: int = static()
    k: int = static(default=1)
    name: str = static(default="k-async")
    stragglers: int = static(default=0)

    xi = None  # no lazy threshold
    is_lazy = False
    delay_dependent = True  # which gradients are summed depends on the arrival order
    links = ("parallel",)  # a shared uplink is rejected before compiling

    def __post_init__(self):
        M, k = self.num_workers, self.k
        if isinstance(M, bool) or not isinstance(M, int) or M < 1:
            raise ValueError(f"num_workers must be an integer >= 1, got {M!r}")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= M:
            raise ValueError(f"k must be an integer in [1, num_workers = {M}], got {k!r}")

    @property
    def num_partitions(self) -> int:
        return self.num_workers

    def init(self, theta0, union_smoothness):
        """Every worker receives θ^0 at t = 0 and starts job 0."""
        M = self.num_workers
        dtype = jnp.asarray(theta0).dtype
        return AsyncState(
            pending=jnp.zeros((M,) + jnp.shape(theta0), dtype),
            arrival=jnp.zeros((M,), dtype),
            job=jnp.zeros((M,), jnp.int32),
            fresh=jnp.ones((M,), bool),
        )

    def step(self, state, round, knobs):
        """Server update n + 1 from θ^n: (sum of the k gradients, new state, Stats)."""
        M, k = self.num_workers, self.k
        dtype = round.grads.dtype
        fresh = state.fresh
        # Jobs started at t_n: their unit times by job index (the engine's draws; a step
        # called without the hook, e.g. directly in a test, uses this round's row).
        x = round.unit_times if round.draw is None else round.draw(state.job)
        started = knobs.broadcast_time + (x.astype(dtype) + knobs.link.durations())
        arrival = jnp.where(fresh, started, state.arrival)
        pending = jnp.where(fresh[:, None], round.grads, state.pending)
        order = jnp.argsort(arrival, stable=True)  # ties: lowest worker index first
        used = jnp.zeros((M,), bool).at[order[:k]].set(True)
        duration = arrival[order[k - 1]]  # t_{n+1} − t_n
        aggregate = jnp.where(used[:, None], pending, 0.0).sum(axis=0)
        new_state = AsyncState(
            pending=pending,
            arrival=arrival - duration,
            job=state.job + used.astype(jnp.int32),
            fresh=used,
        )
        started_jobs = jnp.sum(fresh, dtype=jnp.int32)  # M at the first update, k later
        stats = Stats(
            duration=duration,
            uploads=jnp.int32(k),
            downloads=started_jobs,
            computations=started_jobs,
            upload_mask=used,
            decoding_residual=jnp.zeros((), dtype),
        )
        return aggregate, new_state, stats


def k_async(num_workers, stragglers, k=1, encoding=None):
    """The registered ``k-async`` (option ``k``, 1 ≤ k ≤ M, default 1).

    >>> k_async(6, 0, k=3).k
    3
    """
    _check_identity(encoding, num_workers)
    return KAsync(num_workers=int(num_workers), k=k, name="k-async", stragglers=int(stragglers))


def asynchronous(num_workers, stragglers, encoding=None):
    """The registered ``async``: k-async with k = 1.

    >>> asynchronous(6, 0).k
    1
    """
    _check_identity(encoding, num_workers)
    return KAsync(num_workers=int(num_workers), k=1, name="async", stragglers=int(stragglers))


def _check_identity(encoding, num_workers):
    if encoding is None:
        return
    B = jnp.asarray(encoding)
    if B.shape != (num_workers, num_workers) or not bool(jnp.all(B == jnp.eye(num_workers))):
        raise ValueError(
            "encoding: the asynchronous strategies use identity placement "
            f"(P = M = {num_workers}); a non-identity encoding is not supported, "
            f"got shape {tuple(B.shape)}"
        )
