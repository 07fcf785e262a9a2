"""The strategy protocol: what the engine hands a strategy each round, and what it returns.

A strategy is any pytree with

- ``name`` (str), ``num_workers`` (M), ``num_partitions`` (P),
  ``delay_dependent`` (bool: whether the iterates depend on which worker is fast;
  if False the engine computes θ once for all trials), ``xi`` (its lazy threshold ξ,
  a pytree leaf it reads itself, or None when it has none);
- ``init(theta0, union_smoothness) -> state``: the per-trial state (a pytree),
  called on the host; ``union_smoothness(mask)`` gives L_u of a set of partitions;
- ``step(state, round, knobs) -> (aggregate, state, stats)``: one round, a pure
  function over worker arrays, jittable and vmappable; nothing is called after the
  optimizer;
- optionally ``validate(*, dtype, link)``: raise ValueError, before anything compiles,
  for a run the strategy cannot simulate faithfully (e.g. a float32 decoding).

Optional members the engine reads: ``links`` (the uplinks it supports, default
both) and ``metrics`` (a tuple of :class:`Metric`: the named per-round values its
``Stats.metrics`` reports, e.g. bits on the wire or staleness).

Static structure (shapes, code paths) must be pytree metadata and numbers pytree
leaves, so the jit cache key is the strategy's pytree structure, and a sweep over
strategies of one structure (other ξ, B, deadlines) runs in one compiled program.

>>> knobs = Knobs(step_size=0.1, link=Link(upload_time=0.5))
>>> knobs.upload_time, knobs.broadcast_time
(0.5, 0.0)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from ..timing import Link


class Knobs(NamedTuple):
    """Traced numbers of a run that are not the strategy's own: changing them never
    recompiles (a strategy's own numbers, such as ξ, are leaves of the strategy)."""

    step_size: Any  # α: the nominal step size of the lazy thresholds
    link: Link = Link()  # τ, τ_b, latency, per-worker upload factors; its kind is static

    @property
    def upload_time(self):
        """τ: link time of one full-precision gradient."""
        return self.link.upload_time

    @property
    def broadcast_time(self):
        """τ_b: time to send θ to the workers, once per round."""
        return self.link.broadcast_time


ACCUMULATIONS = ("sum", "round")


class Metric(NamedTuple):
    """A named per-round value a strategy reports in ``Stats.metrics``.

    ``accumulate="sum"``: recorded cumulatively, 0 at entry 0 (like ``uploads``);
    ``"round"``: entry k + 1 holds round k's value (NaN at entry 0; with
    ``record_every=r``, the last round of each record block).

    >>> Metric("staleness", "round").accumulate
    'round'
    """

    name: str
    accumulate: str = "sum"


class Stats(NamedTuple):
    """Per-round statistics (MODEL.md §4), and the strategy's named metrics."""

    duration: jnp.ndarray  # Δ_k = τ_b + arrival of the last message waited for
    uploads: jnp.ndarray  # gradient vectors the server used (int32)
    downloads: jnp.ndarray  # workers sent θ^k (int32)
    computations: jnp.ndarray  # partition-gradient evaluations started (int32)
    upload_mask: jnp.ndarray  # (U,) bool: lazy units updated, or (M,) messages used
    decoding_residual: jnp.ndarray  # max |a_F B − 1| of this round's decoding (0 if none)
    metrics: dict = {}  # name -> scalar, one per Metric the strategy declares


class StrategyProtocol(Protocol):
    """Anything with these members runs in :func:`lagc_jax.simulate` and :func:`lagc_jax.sweep`."""

    name: str
    num_workers: int
    num_partitions: int
    delay_dependent: bool
    xi: float | None

    def init(self, theta0, union_smoothness: Callable) -> Any: ...

    def step(self, state, round: Round, knobs: Knobs) -> tuple[jnp.ndarray, Any, Stats]: ...


def static(**kwargs):
    """A dataclass field that is pytree metadata (part of the jit cache key)."""
    return dataclasses.field(metadata={"static": True}, **kwargs)


def pytree_dataclass(cls):
    """A frozen dataclass registered as a pytree; fields made with :func:`static` are
    metadata, all others leaves. Use it for your own pieces and strategies.

    >>> @pytree_dataclass
    ... class Scale:
    ...     factor: float
    ...     name: str = static(default="scale")
    >>> jax.tree_util.tree_leaves(Scale(2.0))
    [2.0]
    """
    cls = dataclasses.dataclass(frozen=True, eq=False)(cls)
    return jax.tree_util.register_dataclass(cls)


@pytree_dataclass
class Round:
    """What one round of one trial sees (a pytree; the link is static)."""

    theta: jnp.ndarray  # θ^k (d,)
    grads: jnp.ndarray  # (P, d) partition gradients ∇f_p(θ^k)
    unit_times: jnp.ndarray  # (M,) unit computing times X_{k,m}
    k: jnp.ndarray  # iteration index (traced int)
    # The strategy's own randomness for this round (stochastic quantizers, random
    # assignments): fold_in(iteration key, tag), so drawing from it leaves the unit
    # times (common random numbers) unchanged. None when a step is called by hand.
    key: Any = None
    # Unit times by job index: ``draw(jobs)`` with jobs (M,) int gives X_{jobs[m], m}
    # (the draws of iteration jobs[m], times the slowdown), e.g. for asynchronous
    # strategies whose workers run different iterations' jobs. None: use unit_times.
    draw: Callable | None = static(default=None)
    # ``combine(matrix)`` with matrix (R, P) gives matrix @ grads, computed from θ by the
    # problem when it knows a cheaper way (quadratic problems: one product with the
    # combined Hessians); None: use :meth:`combined`, which multiplies ``grads``.
    combine: Callable | None = static(default=None)

    def combined(self, matrix):
        """(R, d) = matrix (R, P) @ grads: coded messages, group sums.

        Prefer it to multiplying ``grads`` yourself: for a quadratic problem the
        partition gradients are then never formed (one GEMM instead of two passes).
        """
        if self.combine is None:
            return matrix @ self.grads
        return self.combine(matrix)


def is_strategy(obj) -> bool:
    """Whether ``obj`` has the members of :class:`StrategyProtocol`."""
    return all(
        hasattr(obj, member)
        for member in ("name", "num_workers", "num_partitions", "delay_dependent", "init", "step")
    )
