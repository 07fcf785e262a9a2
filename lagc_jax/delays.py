"""Distributions of the per-worker unit computing time X (MODEL.md §3).

Each distribution is a pytree (a NamedTuple of floats), so its parameters are
traced values: changing them never recompiles, and they can be vmapped over in
sweeps. Both distributions are transforms of the same standard exponential
draws E, so a given key yields *paired* samples across distributions too:

    ShiftedExponential:  X = shift + E / rate
    Pareto:              X = scale * exp(E / shape)     (= scale * U**(-1/shape))

>>> import jax
>>> x = sample_unit_times(ShiftedExponential(rate=2.0), jax.random.key(0), 12)
>>> x.shape
(12,)
"""

from __future__ import annotations

import math
from typing import NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np


def _check_number(name: str, value, *, positive: bool) -> float:
    """Return ``value`` as float or raise a ValueError naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(number) or (number <= 0 if positive else number < 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return number


class ShiftedExponential(NamedTuple):
    """X = shift + Exp(rate): mean shift + 1/rate."""

    shift: float = 0.0
    rate: float = 1.0

    def validate(self) -> "ShiftedExponential":
        return ShiftedExponential(
            _check_number("shift", self.shift, positive=False),
            _check_number("rate", self.rate, positive=True),
        )

    def from_standard(self, e):
        return self.shift + e / self.rate

    def cdf(self, x):
        """P(X <= x), numpy, for numerical integration in the analysis."""
        x = np.asarray(x, dtype=float)
        return np.where(x > self.shift, -np.expm1(-self.rate * (x - self.shift)), 0.0)

    def describe(self) -> str:
        return f"exp(rate={self.rate:g}, shift={self.shift:g})"


class Pareto(NamedTuple):
    """X = scale * U^(-1/shape): P(X > x) = (scale/x)^shape for x >= scale."""

    scale: float = 1.0
    shape: float = 1.5

    def validate(self) -> "Pareto":
        return Pareto(
            _check_number("scale", self.scale, positive=True),
            _check_number("shape", self.shape, positive=True),
        )

    def from_standard(self, e):
        return self.scale * jnp.exp(e / self.shape)

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        safe = np.maximum(x, self.scale)
        return np.where(x > self.scale, 1.0 - (self.scale / safe) ** self.shape, 0.0)

    def describe(self) -> str:
        return f"pareto(scale={self.scale:g}, shape={self.shape:g})"


Delay = Union[ShiftedExponential, Pareto]


def sample_unit_times(delay: Delay, key, num_workers: int, dtype=None):
    """Draw one iteration's unit times X_{k,m}, shape (num_workers,).

    Jittable and vmappable over ``key`` and over the delay's parameters.

    >>> import jax
    >>> keys = jax.random.split(jax.random.key(1), 1000)
    >>> x = jax.vmap(lambda k: sample_unit_times(Pareto(1.0, 2.0), k, 4))(keys)
    >>> bool((x >= 1.0).all())
    True
    """
    e = jax.random.exponential(key, (num_workers,), dtype=dtype)
    return delay.from_standard(e)


def parse_delay(text: str) -> Delay:
    """Parse the CLI form ``exp:RATE[,SHIFT]`` or ``pareto:SCALE,SHAPE``."""
    kind, _, args = text.partition(":")
    try:
        values = [float(v) for v in args.split(",")] if args else []
    except ValueError:
        raise ValueError(f"delay: cannot parse numbers in {text!r}") from None
    if kind == "exp" and len(values) in (1, 2):
        rate, shift = values[0], (values[1] if len(values) == 2 else 0.0)
        return ShiftedExponential(shift=shift, rate=rate).validate()
    if kind == "pareto" and len(values) == 2:
        return Pareto(scale=values[0], shape=values[1]).validate()
    raise ValueError(
        f"delay must be 'exp:RATE[,SHIFT]' or 'pareto:SCALE,SHAPE', got {text!r}"
    )
