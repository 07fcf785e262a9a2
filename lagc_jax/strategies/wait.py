"""Wait rules: which messages the server waits for (MODEL.md §6).

A wait rule is a callable ``(arrivals (M,), participating (M,) bool) -> (used (M,)
bool, time)`` plus a static ``delay_dependent`` flag: True when which messages are
used depends on the arrival times (then the iterates may depend on the delays and
the engine batches them over trials). Any such function can be wrapped with
:class:`WaitFunction`.

The contract (checked before compiling by
:func:`lagc_jax.strategies.contracts.check_strategy`, naming the rule): ``used`` is (M,)
bool and ``time`` a scalar, finite, ≥ 0 and not before the latest arrival of a message
it uses; with every worker participating it uses at least one message; a rule with
``delay_dependent = False`` hears from the same lazy units whatever the arrival order,
namely every unit with a participating worker (``FirstPerGroup`` on fractional groups:
one member per group, all send the same message). A negative or NaN time also makes
the round's duration NaN at run time, so the engine flags the run's wall clock.

>>> import jax.numpy as jnp
>>> used, t = FirstK(2)(jnp.array([3.0, 1.0, 2.0]), jnp.ones(3, bool))
>>> used.tolist(), float(t)
([False, True, True], 2.0)
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp

from jax import lax

from .protocol import pytree_dataclass, static

# wait_fastest drops the M − k latest arrivals one at a time (two fused reductions over
# the workers each) when there are fewer than this many to drop, else uses lax.top_k (an
# unfused sort-like kernel on CPU: 12 % of a lagc round at M = 12, S = 2).
MAX_DROPPED_BY_REMOVAL = 4


@pytree_dataclass
class WaitAll:
    """Every participating worker's message (upload or skip notice)."""

    delay_dependent = False

    def __call__(self, arrivals, participating):
        return wait_all(arrivals, participating)


@pytree_dataclass
class FirstK:
    """The first k messages; a worker with nothing to compute is done at time 0 and
    sends nothing (lagc-ps)."""

    k: int = static()
    delay_dependent = True

    def __call__(self, arrivals, participating):
        return wait_fastest(jnp.where(participating, arrivals, 0.0), self.k)


@pytree_dataclass
class FirstPerGroup:
    """The first message of every group of ``group_size`` consecutive workers that has a
    participating member. Not delay-dependent: members of a fractional-repetition group
    send identical messages, so which one arrives first does not change the iterates."""

    group_size: int = static()
    delay_dependent = False

    def __call__(self, arrivals, participating):
        waited_groups = participating.reshape(-1, self.group_size).any(axis=1)
        return wait_first_per_group(
            jnp.where(participating, arrivals, jnp.inf), self.group_size, waited_groups
        )


@pytree_dataclass
class WaitFunction:
    """Any function ``(arrivals, participating) -> (used, time)`` as a wait rule.

    >>> rule = WaitFunction(lambda a, p: (p, jnp.max(a)))
    >>> float(rule(jnp.array([1.0, 4.0]), jnp.ones(2, bool))[1])
    4.0
    """

    function: Callable = static()
    delay_dependent: bool = static(default=True)

    def __call__(self, arrivals, participating):
        return self.function(arrivals, participating)


# --------------------------------------------------------------------------- #
# the kernels: pure, jittable and vmappable over leading trial axes; ties broken by
# worker index, so results are deterministic
# --------------------------------------------------------------------------- #
def wait_all(arrivals, waited):
    """Wait for every message in the mask ``waited``: (used mask, wait time; 0 if none).

    >>> used, t = wait_all(jnp.array([2.0, 5.0, 1.0]), jnp.array([True, False, True]))
    >>> float(t)
    2.0
    """
    return waited, jnp.max(jnp.where(waited, arrivals, 0.0), initial=0.0)


def wait_fastest(arrivals, num_needed: int, eligible=None):
    """Wait for the first ``num_needed`` arrivals among ``eligible`` (k-th order statistic).

    Returns (used mask of exactly ``num_needed`` workers, the k-th smallest arrival).

    >>> used, t = wait_fastest(jnp.array([4.0, 1.0, 3.0, 2.0]), 3)
    >>> used.tolist(), float(t)
    ([False, True, True, True], 3.0)
    """
    arrivals = jnp.asarray(arrivals)
    if num_needed == 0:
        return jnp.zeros(arrivals.shape, bool), jnp.zeros((), arrivals.dtype)
    keys = arrivals if eligible is None else jnp.where(eligible, arrivals, jnp.inf)
    if keys.shape[0] - num_needed < MAX_DROPPED_BY_REMOVAL:
        return _fastest_by_removal(keys, num_needed)
    return _fastest_by_top_k(keys, num_needed)


def _fastest_by_top_k(keys, num_needed: int):
    """wait_fastest with lax.top_k: the M − k + 1 latest arrivals, without a full sort."""
    M = keys.shape[0]
    # A stable argsort, without sorting (much faster on CPU): top_k of the reversed keys
    # lists the M − k + 1 last arrivals latest first, ties broken as the sort breaks
    # them (the higher index is later). top_k orders floats by their bits, so values
    # the sort's comparison finds equal to 0 (-0, and flushed denormals on CPU) become
    # 0, and every NaN one NaN; the time is read from the keys (exact bits).
    _, latest = lax.top_k(_canonical(keys)[::-1], M - num_needed + 1)
    latest = M - 1 - latest
    used = ~jnp.any(jnp.arange(M)[:, None] == latest[None, :-1], axis=1)
    return used, keys[latest[-1]]


def _canonical(keys):
    """Keys the sort's comparison finds equal given equal bits: -0 (and flushed
    denormals) become 0, every NaN one NaN."""
    return jnp.where(
        keys == 0,
        jnp.zeros((), keys.dtype),
        jnp.where(jnp.isnan(keys), jnp.full((), jnp.nan, keys.dtype), keys),
    )


def _sort_key(keys):
    """Integers ordered as a stable float sort orders ``keys``: ±0 equal, NaN last."""
    width = jnp.finfo(keys.dtype).bits
    itype = jnp.dtype(f"int{width}")
    bits = lax.bitcast_convert_type(_canonical(keys), itype)
    return jnp.where(bits < 0, bits ^ jnp.asarray(2 ** (width - 1) - 1, itype), bits)


def _fastest_by_removal(keys, num_needed: int):
    """wait_fastest by removing the latest remaining arrival (ties: the higher index is
    later) M − num_needed times; the time is the latest arrival left (exact bits)."""
    M = keys.shape[0]
    order, index = _sort_key(keys), jnp.arange(M)
    lowest = jnp.iinfo(order.dtype).min
    remaining = jnp.ones((M,), bool)

    def latest(remaining):
        top = jnp.max(jnp.where(remaining, order, lowest))
        return jnp.max(jnp.where(remaining & (order == top), index, -1))

    for _ in range(M - num_needed):
        remaining = remaining & (index != latest(remaining))
    last = latest(remaining)
    return remaining, jnp.max(jnp.where(index == last, keys, -jnp.inf))


def wait_first_per_group(arrivals, group_size: int, waited_groups=None):
    """Wait for the first arrival in every group of ``group_size`` consecutive workers.

    ``waited_groups`` (G,) restricts the wait to some groups (default all).
    Returns (used mask with one worker per waited group, max over groups of the min).

    >>> used, t = wait_first_per_group(jnp.array([4.0, 1.0, 3.0, 2.0]), 2)
    >>> used.tolist(), float(t)
    ([False, True, False, True], 2.0)
    """
    arrivals = jnp.asarray(arrivals)
    grouped = arrivals.reshape(-1, group_size)
    first = jnp.argmin(grouped, axis=1)  # lowest index on ties
    used = jnp.arange(group_size)[None, :] == first[:, None]
    group_time = jnp.min(grouped, axis=1)
    if waited_groups is not None:
        used = used & waited_groups[:, None]
        group_time = jnp.where(waited_groups, group_time, 0.0)
    return used.reshape(-1), jnp.max(group_time, initial=0.0)
