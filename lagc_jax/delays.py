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


class MarkovStragglers(NamedTuple):
    """Persistent stragglers: a two-state (fast/slow) Markov chain per worker.

    A slow worker's unit time is ``slow_factor`` × a draw of ``base``. Each
    iteration a fast worker turns slow with probability ``p_slow`` and a slow
    one recovers with probability ``p_recover``; at k = 0 states are drawn from
    the stationary law, P(slow) = p_slow / (p_slow + p_recover). The base draws
    are the same standard exponentials as for ``base`` alone (paired samples).

    Within one iteration the workers' unit times are i.i.d. with the stationary
    mixture ``cdf``, so the analysis' order-statistic formulas still give the mean
    iteration time (numerically); across iterations they are correlated, so the
    variance of a run's wall clock is not that of independent iterations.
    """

    base: Union[ShiftedExponential, Pareto] = ShiftedExponential()
    slow_factor: float = 5.0
    p_slow: float = 0.05
    p_recover: float = 0.2

    def validate(self) -> "MarkovStragglers":
        if not isinstance(self.base, (ShiftedExponential, Pareto)):
            raise ValueError(f"base must be ShiftedExponential or Pareto, got {self.base!r}")
        factor = _check_number("slow_factor", self.slow_factor, positive=True)
        probabilities = []
        for name in ("p_slow", "p_recover"):
            p = _check_number(name, getattr(self, name), positive=True)
            if p > 1:
                raise ValueError(f"{name} must be in (0, 1], got {p!r}")
            probabilities.append(p)
        return MarkovStragglers(self.base.validate(), factor, *probabilities)

    @property
    def stationary_slow(self):
        return self.p_slow / (self.p_slow + self.p_recover)

    def cdf(self, x):
        """Stationary marginal P(X <= x): mixture of base and slow_factor × base."""
        pi = float(self.stationary_slow)
        x = np.asarray(x, dtype=float)
        return (1 - pi) * self.base.cdf(x) + pi * self.base.cdf(x / self.slow_factor)

    def describe(self) -> str:
        return (f"markov({self.base.describe()}, ×{self.slow_factor:g}, "
                f"p_slow={self.p_slow:g}, p_recover={self.p_recover:g})")


Delay = Union[ShiftedExponential, Pareto, MarkovStragglers]
DISTRIBUTIONS = (ShiftedExponential, Pareto, MarkovStragglers)


def init_delay_state(delay: Delay, key, num_workers: int):
    """Per-trial state of a delay model: () for i.i.d. models, slow flags (M,) for Markov."""
    if isinstance(delay, MarkovStragglers):
        return jax.random.uniform(key, (num_workers,)) < delay.stationary_slow
    return ()


def advance_delay_state(delay: Delay, state, key):
    """One Markov transition of every worker's fast/slow state (no-op for i.i.d. models)."""
    if not isinstance(delay, MarkovStragglers):
        return state
    u = jax.random.uniform(key, state.shape)
    return jnp.where(state, u >= delay.p_recover, u < delay.p_slow)


def apply_delay_state(delay: Delay, state, unit_times):
    """Multiply the unit times of slow workers by the slow factor."""
    if not isinstance(delay, MarkovStragglers):
        return unit_times
    return unit_times * jnp.where(state, delay.slow_factor, 1.0)


def sample_unit_times(delay: Delay, key, num_workers: int, dtype=None):
    """Draw one iteration's unit times X_{k,m}, shape (num_workers,).

    Jittable and vmappable over ``key`` and over the delay's parameters. For
    ``MarkovStragglers`` these are the base draws; ``apply_delay_state`` slows them.

    >>> import jax
    >>> keys = jax.random.split(jax.random.key(1), 1000)
    >>> x = jax.vmap(lambda k: sample_unit_times(Pareto(1.0, 2.0), k, 4))(keys)
    >>> bool((x >= 1.0).all())
    True
    """
    e = jax.random.exponential(key, (num_workers,), dtype=dtype)
    base = delay.base if isinstance(delay, MarkovStragglers) else delay
    return base.from_standard(e)


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
