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

from .. import timing
from .protocol import pytree_dataclass, static


@pytree_dataclass
class WaitAll:
    """Every participating worker's message (upload or skip notice)."""

    delay_dependent = False

    def __call__(self, arrivals, participating):
        return timing.wait_all(arrivals, participating)


@pytree_dataclass
class FirstK:
    """The first k messages; a worker with nothing to compute is done at time 0 and
    sends nothing (lagc-ps)."""

    k: int = static()
    delay_dependent = True

    def __call__(self, arrivals, participating):
        return timing.wait_fastest(jnp.where(participating, arrivals, 0.0), self.k)


@pytree_dataclass
class FirstPerGroup:
    """The first message of every group of ``group_size`` consecutive workers that has a
    participating member. Not delay-dependent: members of a fractional-repetition group
    send identical messages, so which one arrives first does not change the iterates."""

    group_size: int = static()
    delay_dependent = False

    def __call__(self, arrivals, participating):
        waited_groups = participating.reshape(-1, self.group_size).any(axis=1)
        return timing.wait_first_per_group(
            jnp.where(participating, arrivals, jnp.inf), self.group_size, waited_groups)


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
