"""Approximate gradient coding and deadlines (MODEL.md §10): pieces and factories.

These strategies accept an error in the gradient estimate (measured by ``grad_error``,
η_k = ‖ĝ − ∇f‖²/‖∇f‖²) to save load or waiting. Each is a composition
(:class:`~lagc_jax.strategies.Strategy`) of a placement, ``NoTrigger``, and

    wait rules   Deadline(T)                     every message arrived by the deadline
                 FirstKOrEveryGroup(size, k, M)  arrivals in order until k workers or every group
    aggregators  RescaledSum()                   (M/|F|) Σ_{m∈F} g_m
                 UnbiasedSum(p, replication)     Σ_{m∈F} g_m / (replication·(1 − p))
                 LeastSquaresDecode              Σ_{m∈F} a_{F,m} g_m, a_F the least-squares weights

registered (``strategies/registry.py``) as

    deadline     identity placement, Deadline(T), RescaledSum            option ``deadline`` T
    erasurehead  fractional placement, FirstKOrEveryGroup, Sum           option ``k`` (M − S)
    sgc          cyclic support of ones, Deadline(T, no floor), UnbiasedSum
                                                 options ``deadline`` T, ``straggle_probability`` p
    graph-gc     B = A/s of a random s-regular graph (or ``encoding``), FirstK(M − S),
                 ``decoder`` "optimal" (LeastSquaresDecode) or "fixed" (ScaledSum(M/(M−S)))

Deadlines are compared with the arrival times (compute + link time), i.e. measured from
the moment the workers hold θ^k, after the broadcast τ_b; a round lasts τ_b + the wait.
T, p and the encoding's values are pytree leaves, so a sweep over them compiles once.

>>> import lagc_jax as lj
>>> s = lj.make("deadline", 6, deadline=2.0)
>>> type(s.wait).__name__, float(s.wait.deadline), type(s.aggregate).__name__
('Deadline', 2.0, 'RescaledSum')
"""

from __future__ import annotations

import functools
import math
from numbers import Integral, Real

import jax.numpy as jnp
import numpy as np

from .. import coding
from ..reductions import weighted_rows
from .aggregate import MAX_DECODING_TABLE, Decode, ScaledSum, Sum
from .composed import Strategy
from .lazy import NoTrigger
from .placement import fractional, from_encoding, identity
from .protocol import pytree_dataclass, static
from .wait import FirstK

DECODERS = ("optimal", "fixed")


# --------------------------------------------------------------------------- #
# wait rules
# --------------------------------------------------------------------------- #
@pytree_dataclass
class Deadline:
    """Every message arrived by t, proceeding at t (MODEL.md §10).

    ``wait_for_first=True`` (``deadline``): t = max(min(T, last arrival), first arrival),
    so at least one message is used. ``False`` (``sgc``): t = min(T, last arrival); a round
    in which nothing arrives by T uses no message (``may_use_no_message``). T = inf waits
    for everyone. T is a leaf (traced); ties at t count as arrived.

    >>> used, t = Deadline(2.5)(jnp.array([3.0, 1.0, 2.0]), jnp.ones(3, bool))
    >>> used.tolist(), float(t)
    ([False, True, True], 2.5)
    >>> used, t = Deadline(0.5)(jnp.array([3.0, 1.0, 2.0]), jnp.ones(3, bool))
    >>> used.tolist(), float(t)
    ([False, True, False], 1.0)
    >>> used, t = Deadline(0.5, wait_for_first=False)(jnp.array([3.0, 1.0]), jnp.ones(2, bool))
    >>> used.tolist(), float(t)
    ([False, False], 0.5)
    """

    deadline: float = math.inf
    wait_for_first: bool = static(default=True)
    delay_dependent = True

    @property
    def may_use_no_message(self) -> bool:
        """Whether a round may end with no message used (a hard deadline)."""
        return not self.wait_for_first

    def __call__(self, arrivals, participating):
        deadline = jnp.asarray(self.deadline, arrivals.dtype)
        last = jnp.max(jnp.where(participating, arrivals, -jnp.inf))
        time = jnp.minimum(deadline, last)
        if self.wait_for_first:
            time = jnp.maximum(time, jnp.min(jnp.where(participating, arrivals, jnp.inf)))
        time = jnp.where(jnp.any(participating), time, jnp.zeros((), arrivals.dtype))
        return participating & (arrivals <= time), time


@pytree_dataclass
class FirstKOrEveryGroup:
    """ErasureHead's wait: arrivals in order (ties by worker index) until k workers have
    arrived or every group of ``group_size`` consecutive workers has one, whichever comes
    first; uses the first arrival of each group covered and proceeds at the last arrival
    taken. Groups without a participating worker are not waited for.

    With k ≥ M − group_size + 1 every group is covered by then (pigeonhole): it is
    ``FirstPerGroup`` (grouping), and says ``delay_dependent = False`` like it.

    >>> rule = FirstKOrEveryGroup(group_size=2, k=2, num_workers=6)
    >>> used, t = rule(jnp.array([5.0, 1.0, 2.0, 3.0, 6.0, 4.0]), jnp.ones(6, bool))
    >>> used.tolist(), float(t)                       # workers 1, 2 taken: groups 0 and 1
    ([False, True, True, False, False, False], 2.0)
    """

    group_size: int = static()
    k: int = static()
    num_workers: int = static()

    @property
    def delay_dependent(self) -> bool:
        return self.k < self.num_workers - self.group_size + 1

    def __call__(self, arrivals, participating):
        M, size = arrivals.shape[0], self.group_size
        keys = jnp.where(participating, arrivals, jnp.inf)
        index = jnp.arange(M)
        # rank[m]: position of m in arrival order (ties: the lower index first)
        before = (keys[None, :] < keys[:, None]) | (
            (keys[None, :] == keys[:, None]) & (index[None, :] < index[:, None])
        )
        rank = jnp.sum(before, axis=1)
        group_first = jnp.min(rank.reshape(-1, size), axis=1)  # rank of each group's first
        waited = participating.reshape(-1, size).any(axis=1)
        every_group = jnp.max(jnp.where(waited, group_first + 1, 0), initial=0)
        taken = participating & (rank < jnp.minimum(self.k, every_group))
        used = taken & (rank == jnp.repeat(group_first, size))
        return used, jnp.max(jnp.where(taken, arrivals, 0.0), initial=0.0)


# --------------------------------------------------------------------------- #
# aggregators
# --------------------------------------------------------------------------- #
def _no_residual(messages):
    return jnp.zeros((), messages.dtype)


@pytree_dataclass
class RescaledSum:
    """(M/|F|) Σ_{m∈F} g_m over the set F of messages used (0 when F is empty): the
    ``deadline`` estimate.

    >>> from lagc_jax.strategies import Delivered, placement
    >>> p = placement.identity(3)
    >>> d = Delivered(jnp.eye(3), jnp.eye(3), jnp.array([True, True, False]),
    ...               jnp.ones(3, bool), jnp.eye(3), jnp.eye(3), p)
    >>> RescaledSum()(d)[0].tolist()
    [1.5, 1.5, 0.0]
    """

    def __call__(self, delivered):
        messages, used = delivered.messages, delivered.used
        scale = messages.shape[0] / jnp.maximum(jnp.sum(used), 1).astype(messages.dtype)
        return weighted_rows(used.astype(messages.dtype) * scale, messages), _no_residual(messages)


@pytree_dataclass
class UnbiasedSum:
    """Σ_{m∈F} g_m / (replication·(1 − p)): stochastic gradient coding's estimate, unbiased
    when each worker's message is missing independently with probability p and every
    partition is held by ``replication`` workers. p is a leaf (traced).

    >>> from lagc_jax.strategies import Delivered, placement
    >>> p = placement.identity(2)
    >>> d = Delivered(jnp.eye(2), jnp.eye(2), jnp.array([True, False]),
    ...               jnp.ones(2, bool), jnp.eye(2), jnp.eye(2), p)
    >>> UnbiasedSum(0.5, replication=1)(d)[0].tolist()
    [2.0, 0.0]
    """

    straggle_probability: float = 0.0
    replication: int = static(default=1)

    def __call__(self, delivered):
        messages, used = delivered.messages, delivered.used
        p = jnp.asarray(self.straggle_probability, messages.dtype)
        scale = 1.0 / (self.replication * (1.0 - p))
        return weighted_rows(used.astype(messages.dtype) * scale, messages), _no_residual(messages)


@pytree_dataclass
class LeastSquaresDecode(Decode):
    """The optimal approximate decoder: Σ_{m∈F} a_{F,m} g_m with a_F = argmin ‖B_Fᵀa − 1‖₂
    (minimum norm), for any encoding, exact or not. The weights come from
    :func:`lagc_jax.coding.least_squares_table` (or a solve in the step for large tables),
    as :class:`Decode`'s, so a code that decodes exactly gives ``Decode``'s results. Its
    error is the estimate's, measured by ``grad_error``; the decoding residual it reports
    is 0 (it does not claim to decode).

    >>> from lagc_jax import coding
    >>> B = coding.random_regular_graph(6, 2, seed=0) / 2
    >>> LeastSquaresDecode.for_code(B, 1).table.shape
    (6, 6)
    """

    @classmethod
    def for_code(cls, encoding, stragglers: int) -> "LeastSquaresDecode":
        """The decoder of an encoding (table precomputed where it fits)."""
        B = np.asarray(encoding, dtype=np.float64)
        M = B.shape[0]
        table = np.zeros((0, M))
        if math.comb(M, stragglers) * M <= MAX_DECODING_TABLE:
            table = _cached_least_squares_table(B.shape, B.tobytes(), stragglers)
        return cls(table=table, stragglers=stragglers)

    def __call__(self, delivered):
        a, _ = self.weights(delivered)
        return weighted_rows(a, delivered.held), _no_residual(delivered.messages)


@functools.lru_cache(maxsize=16)
def _cached_least_squares_table(shape, encoding_bytes, stragglers):
    """coding.least_squares_table, once per code; read-only result."""
    encoding = np.frombuffer(encoding_bytes, dtype=np.float64).reshape(shape)
    table = coding.least_squares_table(encoding, stragglers)
    table.flags.writeable = False
    return table


# --------------------------------------------------------------------------- #
# factories (registered in registry.py)
# --------------------------------------------------------------------------- #
def _deadline_value(deadline) -> float:
    """T > 0 as a float (inf allowed), else a ValueError naming ``deadline``."""
    if isinstance(deadline, bool) or not isinstance(deadline, Real) or not deadline > 0:
        raise ValueError(
            f"deadline must be a number > 0 (in wall-clock units; inf: no "
            f"deadline), got {deadline!r}"
        )
    return float(deadline)


def deadline_strategy(num_workers, stragglers, deadline=math.inf):
    """``deadline``: identity placement, all M compute (load 1); the server uses every
    message arrived by t = max(min(T, last arrival), first arrival) and aggregates
    (M/|F|) Σ_{m∈F} g_m. T = inf (the default) is gd.

    >>> deadline_strategy(4, 0, deadline=1.5).wait.deadline
    1.5
    """
    T = _deadline_value(deadline)
    return Strategy(
        identity(num_workers), NoTrigger(), Deadline(T), RescaledSum(), "deadline", stragglers
    )


def erasurehead(num_workers, stragglers, k=None):
    """``erasurehead`` (Wang, Charles & Papailiopoulos 2019): fractional placement (groups
    of S+1, load S+1); arrivals in order until k workers (default M − S, 1 ≤ k ≤ M) have
    arrived or every group has one; ĝ = Σ of the covered groups' sums (no rescaling).
    Every k ≥ M − S covers every group, which is ``grouping``; erasures need k ≤ M − S − 1.

    >>> erasurehead(6, 1, k=3).wait.delay_dependent, erasurehead(6, 1).wait.delay_dependent
    (True, False)
    """
    placement = fractional(num_workers, stragglers)  # raises unless (S+1) | M
    M = placement.num_workers
    k = M - stragglers if k is None else k
    if isinstance(k, bool) or not isinstance(k, Integral) or not 1 <= k <= M:
        raise ValueError(f"k must be an integer in [1, num_workers = {M}], got {k!r}")
    return Strategy(
        placement,
        NoTrigger(),
        FirstKOrEveryGroup(stragglers + 1, int(k), M),
        Sum(),
        "erasurehead",
        stragglers,
    )


def sgc(num_workers, stragglers, deadline=math.inf, straggle_probability=None):
    """``sgc``, stochastic gradient coding (Bitar, Wootters & El Rouayheb 2020): worker m
    sums partitions m … m+S (all coefficients 1, load S+1); F = the messages arrived by
    T, the round lasts τ_b + min(T, last arrival), ĝ = Σ_{m∈F} g_m / ((S+1)(1 − p)).

    p (0 ≤ p < 1) should be the probability that a worker misses T, which makes ĝ
    unbiased: :func:`lagc_jax.analysis.straggle_probability` computes it from a delay
    model. It is required with a finite T; with T = inf (the default) it is 0.

    >>> float(sgc(6, 1, deadline=4.0, straggle_probability=0.25).aggregate.straggle_probability)
    0.25
    """
    T = _deadline_value(deadline)
    if straggle_probability is None:
        if math.isfinite(T):
            raise ValueError(
                "straggle_probability is required with a finite deadline: p = P(a worker "
                "misses T), e.g. lagc_jax.analysis.straggle_probability(delay, T, "
                f"load={stragglers + 1}, upload_time=τ, latency=...)"
            )
        straggle_probability = 0.0
    p = straggle_probability
    if isinstance(p, bool) or not isinstance(p, Real) or not 0 <= p < 1:
        raise ValueError(f"straggle_probability must be a number in [0, 1), got {p!r}")
    placement = from_encoding(coding.cyclic_support(num_workers, stragglers))
    return Strategy(
        placement,
        NoTrigger(),
        Deadline(T, wait_for_first=False),
        UnbiasedSum(float(p), replication=stragglers + 1),
        "sgc",
        stragglers,
    )


def graph_gc(num_workers, stragglers, degree=None, decoder="optimal", seed=None, encoding=None):
    """``graph-gc``: approximate gradient coding with B = A/s, A the adjacency matrix of a
    random s-regular graph (``degree`` s, default S+1; ``seed``, default 0;
    :func:`lagc_jax.coding.random_regular_graph`), or any user ``encoding`` (M × P,
    without degree or seed). The server waits for the first M − S arrivals and decodes
    with ``decoder``: "optimal" (least-squares a_F) or "fixed" (a = M/(M − S) on every
    arrival). With a cyclic GC code and the optimal decoder it is ``gc``.

    >>> s = graph_gc(6, 1, degree=3, decoder="fixed")
    >>> s.placement.support_loads, s.aggregate.scale
    ((3, 3, 3, 3, 3, 3), 1.2)
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    if encoding is not None:
        if degree is not None or seed is not None:
            raise ValueError(
                "graph-gc: give either encoding or the random graph's degree and seed, not both"
            )
        B = np.asarray(encoding, dtype=np.float64)
        if B.ndim != 2 or B.shape[0] != num_workers:
            raise ValueError(f"encoding must be a ({num_workers}, P) matrix, got shape {B.shape}")
    else:
        degree = stragglers + 1 if degree is None else degree
        B = coding.random_regular_graph(num_workers, degree, 0 if seed is None else seed) / degree
    placement = from_encoding(B)
    M = placement.num_workers
    aggregate = (
        LeastSquaresDecode.for_code(placement.encoding, stragglers)
        if decoder == "optimal"
        else ScaledSum(M / (M - stragglers))
    )
    return Strategy(
        placement, NoTrigger(), FirstK(M - stragglers), aggregate, "graph-gc", stragglers
    )
