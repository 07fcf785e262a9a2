"""Aggregators: the server's gradient estimate from what it holds (MODEL.md §6).

An aggregator is a callable ``(Delivered) -> (aggregate (d,), decoding residual)``;
the residual is max |a_F B − 1| of the decoding used (0 when nothing is decoded),
measured in the compiled step so a code that cannot decode is caught at run time.

An aggregator may only use what reached the server: the messages used
(``Delivered.used``, of workers that uploaded), the held values of the units heard and
what the trigger stored before. ``held`` is zero for units not heard (``NoTrigger``),
so ``Sum`` adds only what arrived. ``check_strategy`` evaluates the aggregator once with
the messages not received, and the gradients no received message depends on, replaced:
an aggregate that changes is refused, naming the aggregator.

>>> import jax.numpy as jnp
>>> from lagc_jax.strategies import placement
>>> p = placement.identity(3)
>>> d = Delivered(jnp.eye(3), jnp.eye(3), jnp.array([True, True, False]),
...               jnp.ones(3, bool), jnp.eye(3), jnp.eye(3), p)
>>> ScaledSum(1.5)(d)[0].tolist()
[1.5, 1.5, 0.0]
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from .. import coding
from ..reductions import segmented_sum, weighted_rows
from .placement import Placement
from .protocol import pytree_dataclass, static

# Above this many table entries, decode by a least-squares solve inside jit.
MAX_DECODING_TABLE = 2_000_000


class Delivered(NamedTuple):
    """What reached the server in one round."""

    messages: jnp.ndarray  # (M, d) fresh coded messages B @ ∇f
    held: jnp.ndarray  # (U, d) per lazy unit, after this round (fresh when not lazy)
    used: jnp.ndarray  # (M,) bool: messages the wait rule used
    selected: jnp.ndarray  # (U,) bool: units that sent or were asked for a fresh gradient
    previous: jnp.ndarray  # (U, d) what the server held before this round
    grads: jnp.ndarray  # (P, d) partition gradients
    placement: Placement


@pytree_dataclass
class Sum:
    """Σ_u over the lazy units' held gradients (Σ_m g_m for identity placements, the
    sum of group sums for fractional ones)."""

    def __call__(self, delivered):
        held = delivered.held
        return segmented_sum(held, axis=0), jnp.zeros((), held.dtype)


@pytree_dataclass
class ScaledSum:
    """``scale`` × Σ of the used messages (fastest-k: M/(M−S), approximate)."""

    scale: float = static()

    def __call__(self, delivered):
        messages = delivered.messages  # the used ones only: weight 0 for the others
        weights = delivered.used.astype(messages.dtype) * self.scale
        return weighted_rows(weights, messages), jnp.zeros((), messages.dtype)


@pytree_dataclass
class Decode:
    """Gradient coding: Σ_{m∈F} a_{F,m} g_m with a_F B_F = 1 for the used set F.

    ``table`` holds a_F for every straggler set (row = colex rank) when it is small
    enough; an empty (0, M) table decodes by a least-squares solve inside jit.
    """

    table: jnp.ndarray
    stragglers: int = static()

    @classmethod
    def for_code(cls, encoding, stragglers: int) -> "Decode":
        """The decoder of an encoding (table precomputed where it fits)."""
        B = np.asarray(encoding, dtype=np.float64)
        M = B.shape[0]
        table = np.zeros((0, M))
        if math.comb(M, stragglers) * M <= MAX_DECODING_TABLE:
            table = _cached_decoding_table(B.shape, B.tobytes(), stragglers)
        return cls(table=table, stragglers=stragglers)

    def validate(self, strategy, *, dtype, link):
        """Refuse a float32 run whose decoding float32 cannot represent (max|a|·ε₃₂ > 1e-3)."""
        if np.dtype(dtype) == np.float32:
            B = np.asarray(strategy.placement.encoding, dtype=np.float64)
            check = _cached_float32_check(B.shape, B.tobytes(), self.stragglers)
            if not check["ok"]:
                raise ValueError(f"{strategy.name}: {check['reason']}")

    def weights(self, delivered):
        """(M,) decoding weights a of the used set, and a B (P,) (all ones when exact)."""
        dtype = delivered.messages.dtype
        encoding = jnp.asarray(delivered.placement.encoding, dtype)
        if self.table.shape[0]:
            a = coding.lookup_decoding_weights(
                jnp.asarray(self.table, dtype), delivered.used, self.stragglers
            )
        else:
            a = coding.decoding_weights_jax(encoding, delivered.used)
        return a, a @ encoding

    def __call__(self, delivered):
        a, decoded = self.weights(delivered)
        return weighted_rows(a, delivered.held), _residual(decoded)


@pytree_dataclass
class DecodeFreshStale(Decode):
    """lagc-ps: decoding recovers Σ of the fresh gradients of the selected partitions;
    the stale stored gradients of the others are added."""

    def __call__(self, delivered):
        a, decoded = self.weights(delivered)
        # Σ_m a_m (B ∘ selected) ∇f summed per partition: (a B)_p s_p weights ∇f_p; the
        # stale stored gradients of the unselected partitions join the same sum, so one
        # fused pass reads each partition's gradient or stored gradient once (no masked
        # messages, no masked copy of the stored gradients)
        terms = jnp.where(
            delivered.selected[:, None], decoded[:, None] * delivered.grads, delivered.previous
        )
        return segmented_sum(terms, axis=0), _residual(decoded)


def _residual(decoded):
    """max |a B − 1|: how far the decoding is from recovering every partition once."""
    return jnp.max(jnp.abs(decoded - 1.0))


@functools.lru_cache(maxsize=16)
def _cached_float32_check(shape, encoding_bytes, stragglers):
    """coding.float32_decoding_check, once per code."""
    encoding = np.frombuffer(encoding_bytes, dtype=np.float64).reshape(shape)
    return coding.float32_decoding_check(encoding, stragglers)


@functools.lru_cache(maxsize=16)
def _cached_decoding_table(shape, encoding_bytes, stragglers):
    """coding.decoding_table, once per code (0.6 s for C(48, 3) sets); read-only result."""
    encoding = np.frombuffer(encoding_bytes, dtype=np.float64).reshape(shape)
    table = coding.decoding_table(encoding, stragglers)
    table.flags.writeable = False
    return table
