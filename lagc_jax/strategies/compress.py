"""Compressors: what a worker's message becomes before it is uploaded (MODEL.md §9).

A compressor is the fifth kind of piece of a composed
:class:`~lagc_jax.strategies.Strategy` (``Strategy(..., compressor=...)``). Each round
it sees the fresh gradient of every lazy unit (a worker, or a fractional-repetition
group: its members send the same compressed message) and returns what each would upload,
with the quantization error and the size in bits; the trigger then decides on the
compressed messages, the link carries each used message for its own size, and the
strategy reports ``bits_up`` (the bits of the messages the server used). Three pure
functions, and two flags:

    init(placement, theta0) -> state
    compress(state, fresh (U, d), key) -> Compressed(values (U, d), errors (U,), bits (U,))
    acknowledge(state, compressed, updated (U,) bool) -> state
        the units whose message the server now holds (a stateful compressor quantizes
        against them); the server tells each worker in its next broadcast **(ours)**

``stochastic`` (class attribute): it draws from ``key``, so the iterates differ between
trials (the strategy is then ``delay_dependent``). ``allow_decoding`` (a static field):
run it on a strategy that decodes coded messages anyway (refused by default: decoding
weights amplify the quantization error).

Built in: :class:`InnovationQuantizer` (LAQ's, stateful), :class:`StochasticQuantizer`
(QSGD) and :class:`RandomSparsifier` (Wangni et al.).

>>> import jax.numpy as jnp
>>> q = InnovationQuantizer(bits=2)     # 4 levels on [q − R, q + R]: q = 0, R = 3
>>> out = q.compress(jnp.zeros((1, 4)), jnp.array([[0.0, 1.0, 2.0, 3.0]]), None)
>>> out.values.tolist(), out.bits.tolist()             # levels −3, −1, 1, 3; b·d + 32 bits
([[1.0, 1.0, 3.0, 3.0]], [40.0])
"""

from __future__ import annotations

import inspect
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..reductions import sum_squares
from .aggregate import Decode
from .protocol import pytree_dataclass, static

__all__ = [
    "Compressed",
    "InnovationQuantizer",
    "RandomSparsifier",
    "StochasticQuantizer",
    "check_bits",
    "check_composition",
    "keep_probabilities",
    "per_worker",
    "quantize",
]

# Bits of a full-precision scalar on the wire (a radius, a norm, a kept value).
FLOAT_BITS = 32
# The largest b of the innovation quantizer: 2^b − 1 levels stay exact in float64.
MAX_BITS = 52


class Compressed(NamedTuple):
    """What each lazy unit would upload this round."""

    values: jnp.ndarray  # (U, d) the decompressed message the server would hold
    errors: jnp.ndarray  # (U,) ‖values − fresh‖², the compression error
    bits: jnp.ndarray  # (U,) size of the message on the wire


def check_bits(bits) -> int:
    """Validate the innovation quantizer's b: an integer in [1, 52].

    >>> check_bits(4)
    4
    """
    if (
        isinstance(bits, bool)
        or not isinstance(bits, (int, np.integer))
        or not 1 <= bits <= MAX_BITS
    ):
        raise ValueError(f"bits must be an integer in [1, {MAX_BITS}], got {bits!r}")
    return int(bits)


def quantize(values, reference, bits):
    """LAQ's quantizer Q_b(g; q) of each row g of ``values`` against the row q of
    ``reference`` (MODEL.md §9): R = max_i |g_i − q_i|, δ = R / (2^b − 1),
    Q = q − R + 2δ ⌊(g − q + R + δ) / (2δ)⌋, a grid of 2^b levels on [q − R, q + R]
    (Q = q where R = 0).

    >>> quantize(jnp.array([[0.4, -1.0]]), jnp.zeros((1, 2)), 1).tolist()
    [[1.0, -1.0]]
    """
    difference = values - reference
    radius = jnp.max(jnp.abs(difference), axis=-1, keepdims=True)
    step = radius / (jnp.ldexp(jnp.ones((), values.dtype), bits) - 1)
    width = 2 * step
    positive = width > 0
    levels = jnp.floor((difference + radius + step) / jnp.where(positive, width, 1))
    return jnp.where(positive, reference - radius + width * levels, reference)


def keep_probabilities(magnitudes, budget):
    """Wangni et al.'s (2018) probabilities p_i = min(1, λ|g_i|) of keeping each coordinate,
    λ such that Σ_i p_i = budget (the variance-optimal choice for that expected number of
    kept coordinates; rows with at most ``budget`` non-zero coordinates keep all of them).

    ``magnitudes`` (..., d) are |g_i|; ``budget`` in (0, d].

    >>> keep_probabilities(jnp.array([4.0, 1.0, 1.0, 0.0]), 2.0).tolist()
    [1.0, 0.5, 0.5, 0.0]
    """
    a = jnp.asarray(magnitudes)
    descending = -jnp.sort(-a, axis=-1)
    tail = jnp.cumsum(descending[..., ::-1], axis=-1)[..., ::-1]  # Σ_{i ≥ j} of the sorted
    capped = jnp.arange(a.shape[-1], dtype=a.dtype)  # j: the j largest are kept surely
    scale = (budget - capped) / jnp.where(tail > 0, tail, 1)  # λ_j
    # the smallest j whose largest uncapped coordinate has λ_j |g| ≤ 1 (it exists when
    # more than ``budget`` coordinates are non-zero)
    first = jnp.argmax(scale * descending <= 1, axis=-1)
    chosen = jnp.take_along_axis(scale, first[..., None], axis=-1)
    nonzero = a > 0
    few = jnp.sum(nonzero, axis=-1, keepdims=True) <= budget
    return jnp.where(few, nonzero.astype(a.dtype), jnp.minimum(1, chosen * a))


def per_worker(placement, unit_values):
    """(M, ...) the values of each worker's lazy unit (workers or groups).

    >>> from lagc_jax.strategies import placement
    >>> per_worker(placement.fractional(4, 1), jnp.array([10.0, 20.0])).tolist()
    [10.0, 10.0, 20.0, 20.0]
    """
    if placement.units == "workers":
        return unit_values
    return unit_values[np.asarray(placement.unit_of_worker)]


def check_composition(strategy) -> None:
    """Raise ValueError unless ``strategy.compressor`` can compress its messages: lazy
    units that are workers or groups, a trigger whose ``plan`` takes ``compressed``, the
    clean start, and no decoding of coded messages (an aggregator decodes if it is a
    :class:`~lagc_jax.strategies.Decode` or says ``decodes = True``), unless the
    compressor says ``allow_decoding``.

    >>> from lagc_jax import strategies as st
    >>> import dataclasses
    >>> gc = dataclasses.replace(st.make("gc", 4, 1), compressor=InnovationQuantizer(4))
    >>> try:
    ...     check_composition(gc)
    ... except ValueError as error:
    ...     print(error)
    strategy 'gc': compressor InnovationQuantizer on a strategy that decodes coded messages ...
    """
    compressor = strategy.compressor
    what = f"strategy {strategy.name!r}: compressor {type(compressor).__name__}"
    for method in ("init", "compress", "acknowledge"):
        if not callable(getattr(compressor, method, None)):
            raise ValueError(
                f"{what} lacks the method {method!r} (init, compress and "
                "acknowledge; see lagc_jax.strategies.compress)"
            )
    units = strategy.placement.units
    if units not in ("workers", "groups"):
        raise ValueError(
            f"{what} needs lazy units that are workers or groups (messages a "
            f"worker uploads), not {units}"
        )
    if getattr(strategy.trigger, "start", "clean") != "clean":
        raise ValueError(
            f"{what} needs start='clean' (with start={strategy.trigger.start!r} "
            "the server holds values no worker sent)"
        )
    try:
        parameters = inspect.signature(strategy.trigger.plan).parameters
    except (AttributeError, TypeError, ValueError):
        parameters = {}
    if "compressed" not in parameters and not any(
        p.kind is p.VAR_KEYWORD for p in parameters.values()
    ):
        raise ValueError(
            f"{what}: trigger {type(strategy.trigger).__name__} cannot take "
            "compressed messages (its plan has no `compressed` argument)"
        )
    aggregate = strategy.aggregate
    decodes = getattr(aggregate, "decodes", isinstance(aggregate, Decode))
    if decodes and not getattr(compressor, "allow_decoding", False):
        raise ValueError(
            f"{what} on a strategy that decodes coded messages (aggregate "
            f"{type(aggregate).__name__}): its decoding weights amplify the compression "
            "error; pass allow_decoding=True to the compressor to run it anyway"
        )


@pytree_dataclass
class InnovationQuantizer:
    """LAQ's quantizer of the innovation (MODEL.md §9): unit u uploads
    Q_b(g_u; q̂_u), quantized against q̂_u, the message of u the server holds (0 before
    the first). Deterministic. **Bits:** β = b·d + 32 per message (the d level indices
    and the radius R).

    >>> from lagc_jax.strategies import placement
    >>> q = InnovationQuantizer(bits=3)
    >>> state = q.init(placement.identity(1), jnp.zeros(2))
    >>> out = q.compress(state, jnp.array([[1.0, -0.5]]), None)
    >>> q.acknowledge(state, out, jnp.array([True])).tolist() == out.values.tolist()
    True
    """

    bits: int = 4  # b: a leaf (traced); 1 ≤ b ≤ 52
    allow_decoding: bool = static(default=False)

    stochastic = False

    def validate(self, strategy, *, dtype, link):
        check_bits(self.bits)

    def init(self, placement, theta0):
        """q̂ = 0 for every unit: (U, d)."""
        theta0 = jnp.asarray(theta0)
        return jnp.zeros((placement.num_units,) + theta0.shape, theta0.dtype)

    def compress(self, state, fresh, key):
        values = quantize(fresh, state, self.bits)
        bits = jnp.full(fresh.shape[:1], self.bits * fresh.shape[1] + FLOAT_BITS, fresh.dtype)
        return Compressed(values, sum_squares(values - fresh), bits)

    def acknowledge(self, state, compressed, updated):
        return jnp.where(updated[:, None], compressed.values, state)


def _uniforms(key, shape, dtype, who):
    if key is None:
        raise ValueError(
            f"{who} draws from the round's key, and this round has none "
            "(a step called by hand: give Round(..., key=...))"
        )
    return jax.random.uniform(key, shape, dtype)


@pytree_dataclass
class StochasticQuantizer:
    """QSGD's unbiased stochastic quantizer (Alistarh et al. 2017) with s ``levels``:
    Q(g)_i = ‖g‖₂ sign(g_i) ℓ_i / s, ℓ_i = ⌊s|g_i|/‖g‖⌋ + 1 with probability
    s|g_i|/‖g‖ − ⌊s|g_i|/‖g‖⌋, else ⌊s|g_i|/‖g‖⌋, so E Q(g) = g. Stateless; one draw per
    unit and round from the round's key (members of a group share it). **Bits:**
    β = 32 + d·(1 + ⌈log₂(s + 1)⌉) per message (the norm, then a sign and a level index
    per coordinate, fixed-length codes).

    >>> q = StochasticQuantizer(levels=1)
    >>> out = q.compress((), jnp.array([[3.0, 0.0, -4.0]]), jax.random.key(0))
    >>> set(abs(v) for v in out.values[0].tolist()) <= {0.0, 5.0}, out.bits.tolist()
    (True, [38.0])
    """

    levels: int = static(default=4)  # s ≥ 1 (static: ⌈log₂(s + 1)⌉ is computed exactly)
    allow_decoding: bool = static(default=False)

    stochastic = True

    def validate(self, strategy, *, dtype, link):
        levels = self.levels
        if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
            raise ValueError(f"levels must be an integer >= 1, got {levels!r}")

    def init(self, placement, theta0):
        return ()

    def compress(self, state, fresh, key):
        uniforms = _uniforms(key, fresh.shape, fresh.dtype, "StochasticQuantizer")
        norm = jnp.sqrt(sum_squares(fresh))[:, None]
        scaled = jnp.abs(fresh) / jnp.where(norm > 0, norm, 1) * self.levels
        lower = jnp.floor(scaled)
        level = lower + (uniforms < scaled - lower)
        values = jnp.sign(fresh) * norm * (level / self.levels)
        width = 1 + int(self.levels).bit_length()  # sign + ⌈log₂(s + 1)⌉
        bits = jnp.full(fresh.shape[:1], FLOAT_BITS + fresh.shape[1] * width, fresh.dtype)
        return Compressed(values, sum_squares(values - fresh), bits)

    def acknowledge(self, state, compressed, updated):
        return state


@pytree_dataclass
class RandomSparsifier:
    """Unbiased random sparsification (Wangni, Wang, Liu & Zhang 2018): coordinate i is kept
    with probability p_i = min(1, λ|g_i|), λ such that Σ p_i = ``density``·d (their
    variance-optimal choice, :func:`keep_probabilities`), and rescaled by 1/p_i, so
    E C(g) = g. Stateless; one draw per unit and round from the round's key. **Bits:**
    β = 32 n + min(d, n ⌈log₂ d⌉) for n kept coordinates (their values, and their
    positions as a bitmap or a list of indices, whichever is shorter).

    >>> s = RandomSparsifier(density=0.5)
    >>> out = s.compress((), jnp.array([[2.0, 0.0, 0.0, 1.0]]), jax.random.key(0))
    >>> out.values.tolist(), out.bits.tolist()     # 2 kept, surely: 64 + min(4, 2·2)
    ([[2.0, 0.0, 0.0, 1.0]], [68.0])
    """

    density: float = 0.1  # expected fraction of the d coordinates kept, in (0, 1]: a leaf
    allow_decoding: bool = static(default=False)

    stochastic = True

    def validate(self, strategy, *, dtype, link):
        density = self.density
        if (
            isinstance(density, bool)
            or not isinstance(density, (int, float, np.number))
            or not 0 < density <= 1
        ):
            raise ValueError(f"density must be a number in (0, 1], got {density!r}")

    def init(self, placement, theta0):
        return ()

    def compress(self, state, fresh, key):
        d = fresh.shape[1]
        uniforms = _uniforms(key, fresh.shape, fresh.dtype, "RandomSparsifier")
        probabilities = keep_probabilities(jnp.abs(fresh), self.density * d)
        kept = (uniforms < probabilities) & (fresh != 0)
        values = jnp.where(kept, fresh / jnp.where(kept, probabilities, 1), 0)
        count = jnp.sum(kept, axis=1).astype(fresh.dtype)
        index_bits = (d - 1).bit_length()  # ⌈log₂ d⌉
        bits = FLOAT_BITS * count + jnp.minimum(d, count * index_bits)
        return Compressed(values, sum_squares(values - fresh), bits)

    def acknowledge(self, state, compressed, updated):
        return state
