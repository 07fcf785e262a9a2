"""Distributions of the per-worker unit computing time X (MODEL.md §3).

Each distribution is a pytree (a NamedTuple of floats, or for ``Empirical`` an
array of measured times), so its parameters are traced values: changing them
never recompiles, and they can be vmapped over in sweeps. The parametric laws
are transforms of the same standard exponential draws E, so a given key yields
*paired* samples across distributions too:

    ShiftedExponential:  X = shift + E / rate
    Pareto:              X = scale * exp(E / shape)     (= scale * U**(-1/shape))

Parameters are checked when a model is built (a ValueError naming the
parameter and its valid range). jax rebuilds models from traced or placeholder
leaves without these checks, so jit, vmap and ``tree_map`` over a model keep
working; ``validate()`` (called by ``simulate``) checks again.

>>> import jax
>>> x = sample_unit_times(ShiftedExponential(rate=2.0), jax.random.key(0), 12)
>>> x.shape
(12,)
"""

from __future__ import annotations

import hashlib
import math
import warnings
from typing import NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from . import random_words

__all__ = [
    "DISTRIBUTIONS",
    "Empirical",
    "InfiniteMeanWarning",
    "MarkovStragglers",
    "Pareto",
    "ShiftedExponential",
    "advance_delay_state",
    "apply_delay_state",
    "describe_parameters",
    "from_bits",
    "init_delay_state",
    "normalize_samples",
    "parse_delay",
    "sample_unit_times",
    "unit_times_from_bits",
]


class InfiniteMeanWarning(RuntimeWarning):
    """A delay model whose mean unit time (or iteration time) is infinite."""


def _check_number(name: str, value, *, positive: bool) -> float:
    """Return ``value`` as float or raise a ValueError naming ``name``."""
    if isinstance(value, (str, bytes, bool)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(number) or (number <= 0 if positive else number < 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return number


def _is_python_number(value) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)))


def _check_at_construction(name: str, value, *, positive: bool) -> None:
    """Check a parameter given as a Python/numpy scalar; let arrays and tracers pass.

    jax builds models with tracers, arrays and placeholder objects as leaves
    (jit, vmap, tree_map); those are left to ``validate()``. Strings are always
    a mistake.
    """
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if _is_python_number(value):
        _check_number(name, value, positive=positive)


def _register(cls, fields):
    """Register a NamedTuple model with jax: unflatten skips the constructor's checks."""
    def flatten_with_keys(model):
        return tuple((jax.tree_util.GetAttrKey(f), getattr(model, f)) for f in fields), None

    def flatten(model):
        return tuple(model), None

    def unflatten(_, children):
        return tuple.__new__(cls, tuple(children))

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
    return cls


class _ShiftedExponentialFields(NamedTuple):
    shift: float = 0.0
    rate: float = 1.0


class ShiftedExponential(_ShiftedExponentialFields):
    """X = shift + Exp(rate): mean shift + 1/rate; shift >= 0, rate > 0."""

    __slots__ = ()

    def __new__(cls, shift=0.0, rate=1.0):
        _check_at_construction("shift", shift, positive=False)
        _check_at_construction("rate", rate, positive=True)
        return super().__new__(cls, shift, rate)

    def validate(self, num_workers=None) -> "ShiftedExponential":
        """Check the parameters (also traced-in ones); return them as floats."""
        return self._make((_check_number("shift", self.shift, positive=False),
                           _check_number("rate", self.rate, positive=True)))

    def from_standard(self, e):
        return self.shift + e / self.rate

    def cdf(self, x):
        """P(X <= x), numpy, for numerical integration in the analysis."""
        x = np.asarray(x, dtype=float)
        return np.where(x > self.shift, -np.expm1(-self.rate * (x - self.shift)), 0.0)

    @property
    def mean(self) -> float:
        return float(self.shift) + 1.0 / float(self.rate)

    def describe(self) -> str:
        return f"exp(rate={self.rate:g}, shift={self.shift:g})"


def _warn_infinite_mean(shape) -> None:
    if _is_python_number(shape) and 0 < float(shape) <= 1:
        warnings.warn(
            f"Pareto shape={float(shape):g} <= 1: the mean unit time is infinite, so mean "
            "iteration times and wall clocks diverge (lagc_jax.analysis returns inf)",
            InfiniteMeanWarning, stacklevel=3)


class _ParetoFields(NamedTuple):
    scale: float = 1.0
    shape: float = 1.5


class Pareto(_ParetoFields):
    """X = scale * U^(-1/shape): P(X > x) = (scale/x)^shape for x >= scale.

    scale > 0, shape > 0; shape <= 1 (infinite mean) warns with InfiniteMeanWarning.
    """

    __slots__ = ()

    def __new__(cls, scale=1.0, shape=1.5):
        _check_at_construction("scale", scale, positive=True)
        _check_at_construction("shape", shape, positive=True)
        _warn_infinite_mean(shape)
        return super().__new__(cls, scale, shape)

    def validate(self, num_workers=None) -> "Pareto":
        """Check the parameters (also traced-in ones); return them as floats."""
        return self._make((_check_number("scale", self.scale, positive=True),
                           _check_number("shape", self.shape, positive=True)))

    def from_standard(self, e):
        return self.scale * jnp.exp(e / self.shape)

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        safe = np.maximum(x, self.scale)
        return np.where(x > self.scale, 1.0 - (self.scale / safe) ** self.shape, 0.0)

    @property
    def mean(self) -> float:
        """scale·shape/(shape − 1), inf for shape <= 1."""
        shape = float(self.shape)
        return math.inf if shape <= 1 else float(self.scale) * shape / (shape - 1.0)

    def describe(self) -> str:
        return f"pareto(scale={self.scale:g}, shape={self.shape:g})"


class _MarkovFields(NamedTuple):
    base: Union[ShiftedExponential, Pareto] = ShiftedExponential()
    slow_factor: float = 5.0
    p_slow: float = 0.05
    p_recover: float = 0.2


def _check_probability(name: str, value) -> None:
    if _is_python_number(value):
        p = _check_number(name, value, positive=True)
        if p > 1:
            raise ValueError(f"{name} must be in (0, 1], got {value!r}")


class MarkovStragglers(_MarkovFields):
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

    __slots__ = ()

    def __new__(cls, base=ShiftedExponential(), slow_factor=5.0, p_slow=0.05, p_recover=0.2):
        if not isinstance(base, (ShiftedExponential, Pareto)):
            raise ValueError(f"base must be ShiftedExponential or Pareto, got {base!r}")
        _check_at_construction("slow_factor", slow_factor, positive=True)
        _check_probability("p_slow", p_slow)
        _check_probability("p_recover", p_recover)
        return super().__new__(cls, base, slow_factor, p_slow, p_recover)

    def validate(self, num_workers=None) -> "MarkovStragglers":
        if not isinstance(self.base, (ShiftedExponential, Pareto)):
            raise ValueError(f"base must be ShiftedExponential or Pareto, got {self.base!r}")
        factor = _check_number("slow_factor", self.slow_factor, positive=True)
        probabilities = []
        for name in ("p_slow", "p_recover"):
            p = _check_number(name, getattr(self, name), positive=True)
            if p > 1:
                raise ValueError(f"{name} must be in (0, 1], got {p!r}")
            probabilities.append(p)
        return self._make((self.base.validate(), factor, *probabilities))

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


_register(ShiftedExponential, ShiftedExponential._fields)
_register(Pareto, Pareto._fields)
_register(MarkovStragglers, MarkovStragglers._fields)


# --------------------------------------------------------------------------- #
# measured unit times
# --------------------------------------------------------------------------- #
def _check_samples(samples, name: str = "samples") -> np.ndarray:
    """Measured times as a float64 array: finite, > 0, shape (N,) or (N, M), N, M >= 1."""
    if isinstance(samples, (str, bytes)):
        raise ValueError(f"{name} must be an array of times, got {samples!r}")
    try:
        array = np.array(samples, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of real numbers (ragged rows?)") from None
    if array.ndim not in (1, 2):
        raise ValueError(f"{name} must have shape (N,) or (N, M), got shape {array.shape}")
    if array.shape[0] < 1 or (array.ndim == 2 and array.shape[1] < 1):
        raise ValueError(f"{name} must hold at least one time (N >= 1, M >= 1), "
                         f"got shape {array.shape}")
    bad = ~np.isfinite(array) | (array <= 0)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} must be finite and > 0, got {float(array[where])!r} at index "
                         f"{where if len(where) > 1 else where[0]}")
    return array


def normalize_samples(samples, by: str = "mean") -> np.ndarray:
    """Measured times divided by their mean (or median) over all entries.

    Results then read in units of E[X] (or of the median time); ratios between
    workers and steps are kept.

    >>> normalize_samples([[1.0, 3.0], [2.0, 2.0]]).tolist()
    [[0.5, 1.5], [1.0, 1.0]]
    >>> normalize_samples([1.0, 2.0, 10.0], by="median").tolist()
    [0.5, 1.0, 5.0]
    """
    array = _check_samples(samples)
    if by == "mean":
        return array / array.mean()
    if by == "median":
        return array / np.median(array)
    raise ValueError(f"by must be 'mean' or 'median', got {by!r}")


def _row_bootstrap_message() -> str:
    return ("Empirical with (N, M) samples is a row bootstrap: the M unit times of an "
            "iteration are one measured step, neither independent nor identically "
            "distributed, so the i.i.d. order-statistic formulas (E X_(k:n), the min-then-max "
            "of grouping, the lazy costs built on them) and a marginal cdf do not describe "
            "it. Exact instead (iterations are i.i.d.): the mean over rows of the row's "
            "statistic, which analysis.expected_iteration_time computes for gd, fastest-k, "
            "gc, and grouping without column shuffle. Pool the samples (samples.ravel()) for "
            "the i.i.d. model.")


class Empirical:
    """Unit times resampled from measured times (MODEL.md §3), a pytree.

    - ``samples`` of shape (N,): each X_{k,m} is drawn i.i.d. from the N values
      (pooled). ``cdf`` is the empirical CDF, and ``lagc_jax.analysis`` gives
      exact order statistics of this discrete law.
    - ``samples`` of shape (N, M), M = the number of workers: each iteration
      draws one row (a bootstrap of whole steps), which keeps worker identity
      (persistent stragglers) and the correlation within a step.
      ``shuffle_columns=True`` permutes the columns once per trial (the same
      stragglers, in random positions), a permutation drawn from the trial key.

    ``samples`` is the only leaf: new samples of the same shape never
    recompile. ``shuffle_columns`` is static (pytree metadata). Times must be
    finite and > 0; :meth:`normalized` rescales them to mean (or median) 1.

    >>> import jax
    >>> d = Empirical([[1.0, 2.0], [3.0, 4.0]])
    >>> x = sample_unit_times(d, jax.random.key(0), 2)
    >>> x.tolist() in ([1.0, 2.0], [3.0, 4.0])                 # one whole row
    True
    """

    __slots__ = ("samples", "shuffle_columns")

    def __init__(self, samples, *, shuffle_columns: bool = False):
        if not isinstance(shuffle_columns, (bool, np.bool_)):
            raise ValueError(f"shuffle_columns must be True or False, got {shuffle_columns!r}")
        if not isinstance(samples, jax.core.Tracer):
            samples = _check_samples(samples)
            samples.setflags(write=False)
            if shuffle_columns and samples.ndim != 2:
                raise ValueError("shuffle_columns=True needs samples of shape (N, M) "
                                 f"(a row bootstrap), got shape {samples.shape}")
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "shuffle_columns", bool(shuffle_columns))

    def __setattr__(self, name, value):
        raise AttributeError("Empirical is immutable; build a new one")

    def tree_flatten(self):
        return (self.samples,), (self.shuffle_columns,)

    @classmethod
    def tree_unflatten(cls, aux, children):
        model = object.__new__(cls)
        object.__setattr__(model, "samples", children[0])
        object.__setattr__(model, "shuffle_columns", aux[0])
        return model

    def __reduce__(self):  # pickle and copy: rebuild without re-running the checks
        return Empirical.tree_unflatten, ((self.shuffle_columns,), (self.samples,))

    def __repr__(self) -> str:
        shape = getattr(self.samples, "shape", None)
        return f"Empirical(samples of shape {shape}, shuffle_columns={self.shuffle_columns})"

    @property
    def pooled(self) -> bool:
        """True for samples of shape (N,): i.i.d. draws from the pooled values."""
        return np.ndim(self.samples) == 1

    @property
    def num_columns(self):
        """M of (N, M) samples; None when pooled."""
        return None if self.pooled else int(np.shape(self.samples)[1])

    @property
    def mean(self) -> float:
        """Mean unit time E[X] (over all entries)."""
        return float(np.mean(self.samples))

    def validate(self, num_workers=None) -> "Empirical":
        """Check the samples; with ``num_workers``, that (N, M) samples have M columns."""
        model = Empirical(np.asarray(self.samples), shuffle_columns=self.shuffle_columns)
        if num_workers is not None:
            model.check_workers(num_workers)
        return model

    def check_workers(self, num_workers: int) -> None:
        """Raise unless the samples fit ``num_workers`` workers (columns = workers)."""
        columns = self.num_columns
        if columns is not None and columns != num_workers:
            raise ValueError(
                f"samples have {columns} columns (one per worker) but the strategy has "
                f"num_workers={num_workers}; a row bootstrap needs exactly one column per "
                "worker: pick num_workers columns (samples[:, cols]) or pool the times "
                "(samples.ravel())")

    def normalized(self, by: str = "mean") -> "Empirical":
        """The same model with times divided by their mean (or median): E[X] = 1."""
        return Empirical(normalize_samples(self.samples, by), shuffle_columns=self.shuffle_columns)

    def atoms(self) -> np.ndarray:
        """Sorted distinct values of the pooled law (for exact order statistics)."""
        if not self.pooled:
            raise ValueError(_row_bootstrap_message())
        return np.unique(np.asarray(self.samples))

    def cdf(self, x):
        """Empirical CDF of pooled samples, P(X <= x) = #{samples <= x} / N (numpy)."""
        if not self.pooled:
            raise ValueError(_row_bootstrap_message())
        ordered = np.sort(np.asarray(self.samples))
        x = np.asarray(x, dtype=float)
        return np.searchsorted(ordered, x, side="right") / ordered.size

    def describe(self) -> str:
        shape = np.shape(self.samples)
        if self.pooled:
            return f"empirical(pooled, {shape[0]} times, mean {self.mean:.4g})"
        shuffle = ", shuffled columns" if self.shuffle_columns else ""
        return f"empirical({shape[0]} steps × {shape[1]} workers, mean {self.mean:.4g}{shuffle})"


jax.tree_util.register_pytree_node(Empirical, Empirical.tree_flatten, Empirical.tree_unflatten)


Delay = Union[ShiftedExponential, Pareto, MarkovStragglers, Empirical]
DISTRIBUTIONS = (ShiftedExponential, Pareto, MarkovStragglers, Empirical)


def describe_parameters(delay) -> dict:
    """JSON-able parameters of a delay model (for a Result's config and checkpoints).

    Scalar models list their floats; ``Empirical`` gives the samples' shape,
    their SHA-256 and the column-shuffle flag (the samples themselves can be large).

    >>> describe_parameters(ShiftedExponential(0.5, 2.0))
    {'ShiftedExponential': [0.5, 2.0]}
    >>> describe_parameters(Empirical([1.0, 2.0]))["Empirical"]["shape"]
    [2]
    """
    if isinstance(delay, Empirical):
        samples = np.ascontiguousarray(np.asarray(delay.samples, dtype=np.float64))
        return {"Empirical": {"shape": list(samples.shape),
                              "sha256": hashlib.sha256(samples.tobytes()).hexdigest(),
                              "shuffle_columns": delay.shuffle_columns}}
    return {type(delay).__name__: [float(v) for v in jax.tree_util.tree_leaves(delay)]}


def _check_columns(delay: Empirical, num_workers: int) -> None:
    if np.ndim(delay.samples) == 2:
        delay.check_workers(num_workers)


def init_delay_state(delay: Delay, key, num_workers: int):
    """Per-trial state of a delay model.

    () for i.i.d. models, the slow flags (M,) for Markov, and for an
    ``Empirical`` row bootstrap with ``shuffle_columns`` the column permutation
    (M,) of the trial. Raises a ValueError when (N, M) samples do not have one
    column per worker (before anything compiles: the engine builds the initial
    state eagerly).
    """
    if isinstance(delay, MarkovStragglers):
        return jax.random.uniform(key, (num_workers,)) < delay.stationary_slow
    if isinstance(delay, Empirical):
        _check_columns(delay, num_workers)
        if delay.shuffle_columns:
            return jax.random.permutation(key, num_workers)
    return ()


def advance_delay_state(delay: Delay, state, key):
    """One Markov transition of every worker's fast/slow state (no-op for other models)."""
    if not isinstance(delay, MarkovStragglers):
        return state
    u = jax.random.uniform(key, state.shape)
    return jnp.where(state, u >= delay.p_recover, u < delay.p_slow)


def apply_delay_state(delay: Delay, state, unit_times):
    """Slow the slow workers (Markov) or permute the columns (shuffled ``Empirical``)."""
    if isinstance(delay, Empirical):
        return unit_times[state] if delay.shuffle_columns else unit_times
    if not isinstance(delay, MarkovStragglers):
        return unit_times
    return unit_times * jnp.where(state, delay.slow_factor, 1.0)


def sample_unit_times(delay: Delay, key, num_workers: int, dtype=None):
    """Draw one iteration's unit times X_{k,m}, shape (num_workers,).

    Jittable and vmappable over ``key`` and over the delay's parameters. For
    ``MarkovStragglers`` these are the base draws; ``apply_delay_state`` slows them.
    ``Empirical``: N uniform indices into pooled samples, or one uniform row of
    (N, M) samples.

    >>> import jax
    >>> keys = jax.random.split(jax.random.key(1), 1000)
    >>> x = jax.vmap(lambda k: sample_unit_times(Pareto(1.0, 2.0), k, 4))(keys)
    >>> bool((x >= 1.0).all())
    True
    """
    if isinstance(delay, Empirical):
        samples = jnp.asarray(delay.samples, dtype=dtype)
        if samples.ndim == 1:
            return samples[jax.random.randint(key, (num_workers,), 0, samples.shape[0])]
        _check_columns(delay, num_workers)
        return samples[jax.random.randint(key, (), 0, samples.shape[0])]
    e = jax.random.exponential(key, (num_workers,), dtype=dtype)
    base = delay.base if isinstance(delay, MarkovStragglers) else delay
    return base.from_standard(e)


def from_bits(delay: Delay) -> bool:
    """Whether the engine may draw ``delay``'s unit times from random bits it computes
    ahead (:mod:`lagc_jax.random_words`): every parametric law, when those bits are jax's."""
    return not isinstance(delay, Empirical) and random_words.matches_jax()


def unit_times_from_bits(delay: Delay, bits, dtype):
    """``sample_unit_times(delay, fold_in(key, k), n, dtype)``, bit for bit, from
    ``random_words.random_bits(random_words.fold_in(key, k), n, dtype)`` (a parametric
    law; see :func:`from_bits`)."""
    base = delay.base if isinstance(delay, MarkovStragglers) else delay
    return base.from_standard(random_words.exponential(bits, dtype))


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
