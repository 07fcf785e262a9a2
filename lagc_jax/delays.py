"""Distributions of the per-worker unit computing time X (MODEL.md §3).

A delay model is anything that follows the :class:`DelayModel` protocol: a jax
pytree with ``validate``, ``sample`` and (optionally) a per-trial state, a
``cdf`` for the analysis, and so on. The engine and :mod:`lagc_jax.analysis`
call these methods only, so a law written outside the package runs like the
built-in ones (docs/EXTENDING.md, "Your own delay model").

The built-in laws are NamedTuples of floats (``Empirical``: an array of
measured times), so their parameters are traced values: changing them never
recompiles, and they can be vmapped over in sweeps. Several are transforms of
the same standard exponential draws E, so a given key yields *paired* samples
across them:

    ShiftedExponential:  X = shift + E / rate
    Pareto:              X = scale * exp(E / shape)     (= scale * U**(-1/shape))
    Weibull:             X = shift + scale * E**(1/shape)

``LogNormal`` draws normals; ``Bimodal`` slows each worker of any law by a
factor with some probability every round; ``MarkovStragglers`` makes slowness
persist across rounds; ``Empirical`` resamples measured times.

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
import statistics
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import quadrature, random_words
from .quadrature import InfiniteMeanWarning

__all__ = [
    "Bimodal",
    "DISTRIBUTIONS",
    "DelayModel",
    "Empirical",
    "InfiniteMeanWarning",
    "LogNormal",
    "MarkovStragglers",
    "Pareto",
    "ShiftedExponential",
    "Weibull",
    "advance_delay_state",
    "apply_delay_state",
    "describe_parameters",
    "from_bits",
    "init_delay_state",
    "is_delay_model",
    "normalize_samples",
    "parse_delay",
    "row_bootstrap_message",
    "sample_unit_times",
    "unit_times_from_bits",
]


# --------------------------------------------------------------------------- #
# parameter checks
# --------------------------------------------------------------------------- #
def _as_float(name: str, value) -> float:
    """``value`` as a float (possibly not finite), or a ValueError naming ``name``."""
    if isinstance(value, (str, bytes, bool)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None


def _check_number(name: str, value, *, positive: bool) -> float:
    """Return ``value`` as float or raise a ValueError naming ``name``."""
    number = _as_float(name, value)
    if not math.isfinite(number) or (number <= 0 if positive else number < 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return number


def _check_real(name: str, value) -> float:
    """Return ``value`` as a finite float (any sign) or raise a ValueError naming ``name``."""
    number = _as_float(name, value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return number


def _check_unit_interval(name: str, value) -> float:
    """Return ``value`` as a float in [0, 1] or raise a ValueError naming ``name``."""
    number = _check_number(name, value, positive=False)
    if number > 1:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return number


def _is_python_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _check_at_construction(name: str, value, *, positive) -> None:
    """Check a parameter given as a Python/numpy scalar; let arrays and tracers pass.

    jax builds models with tracers, arrays and placeholder objects as leaves
    (jit, vmap, tree_map); those are left to ``validate()``. Strings are always
    a mistake. ``positive=None``: any finite real number.
    """
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if _is_python_number(value):
        if positive is None:
            _check_real(name, value)
        else:
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


def _named_leaves(model):
    """[(name, leaf)]: 'scale' for a leaf at GetAttrKey('scale'), 'base.rate' when nested;
    for a pytree without keys, the attribute that holds the leaf (else 'parameter [i]')."""
    attributes = getattr(model, "__dict__", {})
    named = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(model)[0]:
        name = jax.tree_util.keystr(path).lstrip(".")
        if not name or name.startswith("["):
            holders = [a for a, v in attributes.items() if v is leaf]
            name = holders[0] if len(holders) == 1 else f"parameter {name}".strip()
        named.append((name, leaf))
    return named


# --------------------------------------------------------------------------- #
# the protocol
# --------------------------------------------------------------------------- #
class DelayModel:
    """The delay-model protocol: what ``simulate``, ``sweep`` and the analysis call.

    A model is a jax pytree whose leaves are its (traced) parameters. At iteration
    k of a trial the engine computes, with the keys it derives from the seed::

        state = init_state(key0, M) if k == 0 else advance_state(state, key_k1)
        x = sample(key_k, M, dtype)                  # i.i.d. draws of this iteration
        x = apply_state(state, x)                    # the unit times X_{k,1..M}

    Required: ``validate(num_workers=None)`` (check the parameters, raise a
    ValueError naming the bad one and its valid range, return a checked copy; the
    default checks that every leaf is finite) and ``sample(key, num_workers,
    dtype=None)``. The rest have defaults:

    - ``init_state(key, num_workers)``: the per-trial state at k = 0, a pytree
      (``()``); ``advance_state(state, key)``: one iteration's transition
      (unchanged); ``apply_state(state, unit_times)`` (unchanged).
    - ``job_indexable`` (True): whether draws can be indexed by any job number
      (False when the state evolves per iteration, as for ``MarkovStragglers``;
      the asynchronous strategies need True).
    - ``standard_exponential`` (False) and ``from_standard(e)``: a law with
      X = from_standard(E), E = ``jax.random.exponential(key, (M,), dtype)``, sets
      it True; the engine then computes E ahead from random bits
      (:mod:`lagc_jax.random_words`), bit for bit the same draws, and the default
      ``sample`` is ``from_standard`` of those E.
    - ``parameters()``: a JSON-able record for a result's config and checkpoint
      fingerprints (``{type name: [float leaves]}``); ``describe()``: a label.
    - For :mod:`lagc_jax.analysis` (optional): ``cdf(x)`` (numpy, vectorised), and
      to help it ``sf(x)`` = 1 − cdf accurate in the tail, ``quantile(q)``,
      ``mean`` (the default integrates the ``cdf``), ``closed_order_statistic(k,
      n)`` (E X_(k:n) or None), ``min_of(count)`` (the law of the minimum of
      ``count`` copies, or None), ``atoms()`` (a discrete law's support) and
      ``bootstrap_rows()`` (the equally likely (N, M) rows of a law that is not
      i.i.d. across workers).

    >>> import jax, jax.numpy as jnp
    >>> @jax.tree_util.register_pytree_node_class
    ... class Constant(DelayModel):
    ...     def __init__(self, value):
    ...         self.value = value
    ...     def tree_flatten(self):
    ...         return (self.value,), None
    ...     @classmethod
    ...     def tree_unflatten(cls, aux, children):
    ...         return cls(*children)
    ...     def sample(self, key, num_workers, dtype=None):
    ...         return jnp.full((num_workers,), self.value, dtype)
    >>> d = Constant(2.0).validate()
    >>> is_delay_model(d), sample_unit_times(d, jax.random.key(0), 3).tolist()
    (True, [2.0, 2.0, 2.0])
    >>> d.parameters()
    {'Constant': [2.0]}
    """

    __slots__ = ()

    def validate(self, num_workers=None):
        """Check the parameters; return the model (default: every leaf a finite number)."""
        for name, leaf in _named_leaves(self):
            if isinstance(leaf, jax.core.Tracer):
                continue
            if isinstance(leaf, (str, bytes, bool, np.bool_)):
                raise ValueError(f"{name} must be a real number, got {leaf!r}")
            try:
                values = np.asarray(leaf, dtype=float)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a real number, got {leaf!r}") from None
            if not np.all(np.isfinite(values)):
                raise ValueError(f"{name} must be finite, got {leaf!r}")
        return self

    def init_state(self, key, num_workers: int):
        """The per-trial state at k = 0 (default: none, ``()``)."""
        return ()

    def advance_state(self, state, key):
        """The state after one iteration's transition (default: unchanged)."""
        return state

    def sample(self, key, num_workers: int, dtype=None):
        """(num_workers,) i.i.d. draws of one iteration, before the state is applied.

        The default, for a law with ``standard_exponential``, is ``from_standard``
        of ``jax.random.exponential(key, (num_workers,), dtype)``."""
        if self.standard_exponential:
            return self.from_standard(jax.random.exponential(key, (num_workers,), dtype=dtype))
        raise NotImplementedError(
            f"{type(self).__name__} must define sample(key, num_workers, dtype=None) (or "
            "from_standard(e) and standard_exponential = True)"
        )

    def apply_state(self, state, unit_times):
        """The unit times after the state (default: unchanged)."""
        return unit_times

    def from_standard(self, e):
        """X from standard exponential draws E (laws with ``standard_exponential`` only)."""
        raise NotImplementedError(
            f"{type(self).__name__} is not a transform of standard exponential draws"
        )

    @property
    def standard_exponential(self) -> bool:
        """Whether X = ``from_standard(E)`` of ``jax.random.exponential`` draws E."""
        return False

    @property
    def job_indexable(self) -> bool:
        """Whether a draw can be indexed by any job number (False if the state evolves)."""
        return True

    def parameters(self) -> dict:
        """JSON-able parameters: ``{type name: [leaves as floats]}`` (lists for arrays)."""
        return {
            type(self).__name__: [
                np.asarray(v, dtype=float).tolist() for v in jax.tree_util.tree_leaves(self)
            ]
        }

    def describe(self) -> str:
        """A short label, e.g. ``Uniform(lo=0.5, hi=2)``."""
        fields = []
        for name, leaf in _named_leaves(self):
            try:
                value = f"{float(leaf):g}" if np.ndim(leaf) == 0 else f"array{np.shape(leaf)}"
            except TypeError:  # a tracer
                value = repr(leaf)
            fields.append(f"{name}={value}")
        return f"{type(self).__name__}({', '.join(fields)})"

    @property
    def mean(self) -> float:
        """E[X]; the default, for a valid i.i.d. law with a ``cdf``: its
        ``closed_order_statistic(1, 1)`` if any, else the integral of the survival
        1 − ``cdf`` (inf with an InfiniteMeanWarning when it diverges)."""
        if not callable(getattr(self, "cdf", None)):
            raise AttributeError(
                f"{type(self).__name__} has no mean: define the property "
                "mean, or a numpy cdf(x) to integrate"
            )
        checked = self.validate()
        model = self if checked is None else checked
        rows = getattr(model, "bootstrap_rows", None)
        if callable(rows) and rows() is not None:
            raise ValueError(row_bootstrap_message())
        return quadrature.order_statistic_mean(model, 1, 1)


def is_delay_model(obj) -> bool:
    """Whether ``obj`` follows the :class:`DelayModel` protocol: ``validate`` and
    ``sample`` methods, and a jax pytree (so its parameters can be traced).

    >>> is_delay_model(Pareto()), is_delay_model("exp:1")
    (True, False)
    """
    if isinstance(obj, type) or not (
        callable(getattr(obj, "validate", None)) and callable(getattr(obj, "sample", None))
    ):
        return False
    leaves = jax.tree_util.tree_leaves(obj)
    return not (len(leaves) == 1 and leaves[0] is obj)


def _mixture_quantile(base, factor, weight, q):
    """x with (1 − weight)·F(x) + weight·F(x / factor) = q (F = base's cdf), by
    bisection between base.quantile(q) and factor × it."""
    q = np.asarray(q, dtype=float)
    if np.any((q < 0) | (q > 1)):
        raise ValueError("q must be in [0, 1]")
    factor, weight = float(factor), float(weight)
    at = np.asarray(base.quantile(q), dtype=float)
    lo, hi = np.minimum(at, at * factor), np.maximum(at, at * factor)
    finite = np.isfinite(hi)
    lo, hi = np.where(finite, lo, 0.0), np.where(finite, hi, 0.0)
    for _ in range(1100):  # halving [lo, hi] down to adjacent floats
        mid = 0.5 * (lo + hi)
        if np.all((mid == lo) | (mid == hi)):
            break
        below = (1 - weight) * base.cdf(mid) + weight * base.cdf(mid / factor) < q
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    at_lo = (1 - weight) * base.cdf(lo) + weight * base.cdf(lo / factor) >= q  # q = 0
    return np.where(finite, np.where(at_lo, lo, hi), np.inf)


# --------------------------------------------------------------------------- #
# parametric laws
# --------------------------------------------------------------------------- #
class _ShiftedExponentialFields(NamedTuple):
    shift: float = 0.0
    rate: float = 1.0


class ShiftedExponential(_ShiftedExponentialFields, DelayModel):
    """X = shift + Exp(rate): mean shift + 1/rate; shift >= 0, rate > 0."""

    __slots__ = ()
    standard_exponential = True

    def __new__(cls, shift=0.0, rate=1.0):
        _check_at_construction("shift", shift, positive=False)
        _check_at_construction("rate", rate, positive=True)
        return super().__new__(cls, shift, rate)

    def validate(self, num_workers=None) -> "ShiftedExponential":
        """Check the parameters (also traced-in ones); return them as floats."""
        return self._make(
            (
                _check_number("shift", self.shift, positive=False),
                _check_number("rate", self.rate, positive=True),
            )
        )

    def from_standard(self, e):
        return self.shift + e / self.rate

    def cdf(self, x):
        """P(X <= x), numpy, for numerical integration in the analysis."""
        x = np.asarray(x, dtype=float)
        return np.where(x > self.shift, -np.expm1(-self.rate * (x - self.shift)), 0.0)

    def quantile(self, q):
        """The x with P(X <= x) = q (numpy)."""
        with np.errstate(divide="ignore"):
            return self.shift - np.log1p(-np.asarray(q, dtype=float)) / self.rate

    @property
    def mean(self) -> float:
        return float(self.shift) + 1.0 / float(self.rate)

    def closed_order_statistic(self, k: int, n: int) -> float:
        """E X_(k:n) = shift + (H_n − H_{n−k}) / rate."""
        harmonic = math.fsum(1.0 / j for j in range(n - k + 1, n + 1))
        return self.shift + harmonic / self.rate

    def min_of(self, count: int) -> "ShiftedExponential":
        """The minimum of ``count`` copies: rate × count."""
        return ShiftedExponential(self.shift, self.rate * count)

    def describe(self) -> str:
        return f"exp(rate={self.rate:g}, shift={self.shift:g})"


def _warn_infinite_mean(shape) -> None:
    if _is_python_number(shape) and 0 < float(shape) <= 1:
        warnings.warn(
            f"Pareto shape={float(shape):g} <= 1: the mean unit time is infinite, so mean "
            "iteration times and wall clocks diverge (lagc_jax.analysis returns inf)",
            InfiniteMeanWarning,
            stacklevel=3,
        )


class _ParetoFields(NamedTuple):
    scale: float = 1.0
    shape: float = 1.5


class Pareto(_ParetoFields, DelayModel):
    """X = scale * U^(-1/shape): P(X > x) = (scale/x)^shape for x >= scale.

    scale > 0, shape > 0; shape <= 1 (infinite mean) warns with InfiniteMeanWarning.
    """

    __slots__ = ()
    standard_exponential = True

    def __new__(cls, scale=1.0, shape=1.5):
        _check_at_construction("scale", scale, positive=True)
        _check_at_construction("shape", shape, positive=True)
        _warn_infinite_mean(shape)
        return super().__new__(cls, scale, shape)

    def validate(self, num_workers=None) -> "Pareto":
        """Check the parameters (also traced-in ones); return them as floats."""
        return self._make(
            (
                _check_number("scale", self.scale, positive=True),
                _check_number("shape", self.shape, positive=True),
            )
        )

    def from_standard(self, e):
        return self.scale * jnp.exp(e / self.shape)

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        safe = np.maximum(x, self.scale)
        return np.where(x > self.scale, 1.0 - (self.scale / safe) ** self.shape, 0.0)

    def quantile(self, q):
        """The x with P(X <= x) = q (numpy)."""
        with np.errstate(divide="ignore"):
            return self.scale * (1.0 - np.asarray(q, dtype=float)) ** (-1.0 / self.shape)

    @property
    def mean(self) -> float:
        """scale·shape/(shape − 1), inf for shape <= 1."""
        shape = float(self.shape)
        return math.inf if shape <= 1 else float(self.scale) * shape / (shape - 1.0)

    def closed_order_statistic(self, k: int, n: int) -> float:
        """E X_(k:n) = x_m Γ(n+1)Γ(n−k+1−1/β)/(Γ(n−k+1)Γ(n+1−1/β)); inf (with an
        InfiniteMeanWarning) when n − k + 1 <= 1/β."""
        m, a = n - k + 1, 1.0 / self.shape
        if m <= a:
            warnings.warn(
                f"E X_({k}:{n}) is infinite: Pareto shape {self.shape:g} <= "
                f"1/(n - k + 1) = {1 / m:g} (the {k}-th smallest of {n} has no "
                "finite mean)",
                InfiniteMeanWarning,
                stacklevel=4,  # past quadrature.order_statistic_mean, to its caller's caller
            )
            return math.inf
        return self.scale * math.exp(
            math.lgamma(n + 1) + math.lgamma(m - a) - math.lgamma(m) - math.lgamma(n + 1 - a)
        )

    def min_of(self, count: int) -> "Pareto":
        """The minimum of ``count`` copies: shape × count."""
        return Pareto._make((self.scale, self.shape * count))

    def describe(self) -> str:
        return f"pareto(scale={self.scale:g}, shape={self.shape:g})"


class _WeibullFields(NamedTuple):
    scale: float = 1.0
    shape: float = 1.0
    shift: float = 0.0


class Weibull(_WeibullFields, DelayModel):
    """X = shift + scale · E^(1/shape), E standard exponential: P(X > shift + x) =
    exp(−(x/scale)^shape). scale > 0, shape > 0, shift >= 0.

    shape < 1 gives a heavier (stretched exponential) tail than the exponential
    (shape = 1), shape > 1 a lighter one. The draws are the same standard
    exponentials as ``ShiftedExponential``'s (paired samples; the engine computes
    them ahead from random bits).

    >>> import jax, math
    >>> d = Weibull(scale=2.0, shape=0.5, shift=0.1)
    >>> round(d.mean, 6), round(float(d.cdf(d.quantile(0.9))), 12)   # 0.1 + 2·Γ(3)
    (4.1, 0.9)
    >>> e = jax.random.exponential(jax.random.key(0), (4,))
    >>> bool((d.sample(jax.random.key(0), 4) == 0.1 + 2.0 * e ** 2.0).all())
    True
    """

    __slots__ = ()
    standard_exponential = True

    def __new__(cls, scale=1.0, shape=1.0, shift=0.0):
        _check_at_construction("scale", scale, positive=True)
        _check_at_construction("shape", shape, positive=True)
        _check_at_construction("shift", shift, positive=False)
        return super().__new__(cls, scale, shape, shift)

    def validate(self, num_workers=None) -> "Weibull":
        """Check the parameters (also traced-in ones); return them as floats."""
        return self._make(
            (
                _check_number("scale", self.scale, positive=True),
                _check_number("shape", self.shape, positive=True),
                _check_number("shift", self.shift, positive=False),
            )
        )

    def from_standard(self, e):
        return self.shift + self.scale * e ** (1.0 / self.shape)

    def _power(self, x):
        x = np.asarray(x, dtype=float)
        z = np.maximum(x - self.shift, 0.0) / self.scale
        return x, z**self.shape

    def cdf(self, x):
        """P(X <= x) = 1 − exp(−((x − shift)/scale)^shape) (numpy)."""
        x, p = self._power(x)
        return np.where(x > self.shift, -np.expm1(-p), 0.0)

    def sf(self, x):
        """P(X > x), accurate far in the tail (numpy)."""
        x, p = self._power(x)
        return np.where(x > self.shift, np.exp(-p), 1.0)

    def quantile(self, q):
        """The x with P(X <= x) = q (numpy)."""
        with np.errstate(divide="ignore"):
            e = -np.log1p(-np.asarray(q, dtype=float))
        return self.shift + self.scale * e ** (1.0 / self.shape)

    @property
    def mean(self) -> float:
        """shift + scale · Γ(1 + 1/shape)."""
        return float(self.shift) + float(self.scale) * math.gamma(1.0 + 1.0 / float(self.shape))

    def closed_order_statistic(self, k: int, n: int):
        """E X_(1:n) = shift + scale · n^(−1/shape) Γ(1 + 1/shape); None for k > 1."""
        return self.min_of(n).mean if k == 1 else None

    def min_of(self, count: int) -> "Weibull":
        """The minimum of ``count`` copies: scale × count^(−1/shape)."""
        return Weibull._make((self.scale * count ** (-1.0 / self.shape), self.shape, self.shift))

    def describe(self) -> str:
        return f"weibull(scale={self.scale:g}, shape={self.shape:g}, shift={self.shift:g})"


_ERFC = np.frompyfunc(math.erfc, 1, 1)
_STANDARD_NORMAL = statistics.NormalDist()


def _erfc(z):
    return np.asarray(_ERFC(np.asarray(z, dtype=float)), dtype=float)


class _LogNormalFields(NamedTuple):
    mu: float = 0.0
    sigma: float = 1.0


class LogNormal(_LogNormalFields, DelayModel):
    """X = exp(mu + sigma · Z), Z standard normal: log X ~ N(mu, sigma²). mu any finite
    number, sigma > 0. Mean exp(mu + sigma²/2); every moment is finite, but the tail
    is heavier than any exponential's.

    >>> import jax
    >>> d = LogNormal(mu=0.0, sigma=0.5)
    >>> round(d.mean, 6), round(float(d.quantile(0.5)), 12)     # exp(1/8), the median e^mu
    (1.133148, 1.0)
    >>> z = jax.random.normal(jax.random.key(0), (4,))
    >>> bool((d.sample(jax.random.key(0), 4) == jax.numpy.exp(0.0 + 0.5 * z)).all())
    True
    """

    __slots__ = ()

    def __new__(cls, mu=0.0, sigma=1.0):
        _check_at_construction("mu", mu, positive=None)
        _check_at_construction("sigma", sigma, positive=True)
        return super().__new__(cls, mu, sigma)

    def validate(self, num_workers=None) -> "LogNormal":
        """Check the parameters (also traced-in ones); return them as floats."""
        return self._make(
            (_check_real("mu", self.mu), _check_number("sigma", self.sigma, positive=True))
        )

    def sample(self, key, num_workers: int, dtype=None):
        return jnp.exp(self.mu + self.sigma * jax.random.normal(key, (num_workers,), dtype=dtype))

    def _z(self, x):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (np.log(np.where(x > 0, x, 1.0)) - self.mu) / (self.sigma * math.sqrt(2.0))
        return x, z

    def cdf(self, x):
        """P(X <= x) = erfc(−(log x − mu)/(sigma √2)) / 2 (numpy)."""
        x, z = self._z(x)
        return np.where(x > 0, 0.5 * _erfc(-z), 0.0)

    def sf(self, x):
        """P(X > x), accurate far in the tail (numpy)."""
        x, z = self._z(x)
        return np.where(x > 0, 0.5 * _erfc(z), 1.0)

    def quantile(self, q):
        """The x with P(X <= x) = q: exp(mu + sigma Φ⁻¹(q)) (numpy)."""
        q = np.asarray(q, dtype=float)
        if np.any((q < 0) | (q > 1)):
            raise ValueError("q must be in [0, 1]")
        inner = np.where((q > 0) & (q < 1), q, 0.5)
        z = np.vectorize(_STANDARD_NORMAL.inv_cdf, otypes=[float])(inner)
        z = np.where(q <= 0, -np.inf, np.where(q >= 1, np.inf, z))
        return np.exp(self.mu + self.sigma * z)

    @property
    def mean(self) -> float:
        """exp(mu + sigma²/2)."""
        return math.exp(float(self.mu) + float(self.sigma) ** 2 / 2.0)

    def closed_order_statistic(self, k: int, n: int):
        """The mean for n = 1; None otherwise (the analysis integrates the cdf)."""
        return self.mean if n == 1 else None

    def describe(self) -> str:
        return f"lognormal(mu={self.mu:g}, sigma={self.sigma:g})"


def _stateless(base) -> bool:
    """A delay model without per-trial state (the state methods are the protocol's)."""
    cls = type(base)
    return (
        is_delay_model(base)
        and cls.init_state is DelayModel.init_state
        and cls.advance_state is DelayModel.advance_state
        and cls.apply_state is DelayModel.apply_state
    )


class _MarkovFields(NamedTuple):
    base: DelayModel = ShiftedExponential()
    slow_factor: float = 5.0
    p_slow: float = 0.05
    p_recover: float = 0.2


def _check_probability(name: str, value) -> None:
    if _is_python_number(value):
        p = _check_number(name, value, positive=True)
        if p > 1:
            raise ValueError(f"{name} must be in (0, 1], got {value!r}")


def _check_markov_base(base) -> None:
    if not _stateless(base):
        raise ValueError(
            "base must be ShiftedExponential or Pareto (or another delay model "
            f"without per-trial state, such as Weibull or LogNormal), got {base!r}"
        )


class MarkovStragglers(_MarkovFields, DelayModel):
    """Persistent stragglers: a two-state (fast/slow) Markov chain per worker.

    A slow worker's unit time is ``slow_factor`` × a draw of ``base``. Each
    iteration a fast worker turns slow with probability ``p_slow`` and a slow
    one recovers with probability ``p_recover``; at k = 0 states are drawn from
    the stationary law, P(slow) = p_slow / (p_slow + p_recover). The base draws
    are the same as for ``base`` alone (paired samples). ``base`` is any delay
    model without per-trial state (``ShiftedExponential``, ``Pareto``, ``Weibull``,
    ``LogNormal``, ``Bimodal`` of those, your own).

    Within one iteration the workers' unit times are i.i.d. with the stationary
    mixture ``cdf``, so the analysis' order-statistic formulas still give the mean
    iteration time (numerically); across iterations they are correlated, so the
    variance of a run's wall clock is not that of independent iterations.
    """

    __slots__ = ()

    def __new__(cls, base=ShiftedExponential(), slow_factor=5.0, p_slow=0.05, p_recover=0.2):
        _check_markov_base(base)
        _check_at_construction("slow_factor", slow_factor, positive=True)
        _check_probability("p_slow", p_slow)
        _check_probability("p_recover", p_recover)
        return super().__new__(cls, base, slow_factor, p_slow, p_recover)

    def validate(self, num_workers=None) -> "MarkovStragglers":
        _check_markov_base(self.base)
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

    @property
    def standard_exponential(self) -> bool:
        """The base's: the slow factor is applied with the state."""
        return bool(self.base.standard_exponential)

    @property
    def job_indexable(self) -> bool:
        """False: the fast/slow states evolve one iteration at a time."""
        return False

    def init_state(self, key, num_workers: int):
        """Slow flags (M,) drawn from the stationary law."""
        return jax.random.uniform(key, (num_workers,)) < self.stationary_slow

    def advance_state(self, state, key):
        """One Markov transition of every worker's fast/slow flag."""
        u = jax.random.uniform(key, state.shape)
        return jnp.where(state, u >= self.p_recover, u < self.p_slow)

    def sample(self, key, num_workers: int, dtype=None):
        """The base draws (``apply_state`` slows the slow workers)."""
        return self.base.sample(key, num_workers, dtype)

    def apply_state(self, state, unit_times):
        return unit_times * jnp.where(state, self.slow_factor, 1.0)

    def from_standard(self, e):
        return self.base.from_standard(e)

    def cdf(self, x):
        """Stationary marginal P(X <= x): mixture of base and slow_factor × base."""
        pi = float(self.stationary_slow)
        x = np.asarray(x, dtype=float)
        return (1 - pi) * self.base.cdf(x) + pi * self.base.cdf(x / self.slow_factor)

    def quantile(self, q):
        """Quantile of the stationary marginal (bisection; needs ``base.quantile``)."""
        return _mixture_quantile(self.base, self.slow_factor, self.stationary_slow, q)

    @property
    def mean(self) -> float:
        """Stationary mean E[base] · (1 − π + π · slow_factor)."""
        pi = float(self.stationary_slow)
        return self.base.mean * (1.0 - pi + pi * float(self.slow_factor))

    def describe(self) -> str:
        return (
            f"markov({self.base.describe()}, ×{self.slow_factor:g}, "
            f"p_slow={self.p_slow:g}, p_recover={self.p_recover:g})"
        )


_BIMODAL_TAG = 0x5B0D  # folded into an iteration's key for the slow coins


class _BimodalFields(NamedTuple):
    base: DelayModel = ShiftedExponential()
    slow_factor: float = 5.0
    p_slow: float = 0.05


def _check_bimodal_base(base) -> None:
    if not is_delay_model(base):
        raise ValueError(
            f"base must be a delay model (ShiftedExponential, Pareto, Weibull, "
            f"LogNormal, Empirical, ...), got {base!r}"
        )


class Bimodal(_BimodalFields, DelayModel):
    """Transient stragglers: every round each worker is independently slow with
    probability ``p_slow``, its time then ``slow_factor`` × a draw of ``base``.

    X = Y · (slow_factor if U < p_slow else 1), Y a draw of ``base`` from the same
    key as ``base`` alone (paired samples), U uniform from the key folded with a tag.
    ``base`` is any delay model (its per-trial state, if any, is kept);
    ``slow_factor`` > 0 (> 1 for a slowdown, < 1 for a speed-up), 0 <= p_slow <= 1.
    Unlike ``MarkovStragglers``, slowness does not persist: the rounds are i.i.d.
    cdf (1 − p)·F(x) + p·F(x / slow_factor), mean E[Y]·(1 − p + p·slow_factor).

    >>> import jax
    >>> d = Bimodal(ShiftedExponential(rate=1.0), slow_factor=10.0, p_slow=0.1)
    >>> round(d.mean, 6)                                     # 0.9 + 0.1 · 10
    1.9
    >>> key = jax.random.key(0)
    >>> ratio = d.sample(key, 1000) / d.base.sample(key, 1000)
    >>> sorted(set(ratio.round(9).tolist()))
    [1.0, 10.0]
    """

    __slots__ = ()

    def __new__(cls, base=ShiftedExponential(), slow_factor=5.0, p_slow=0.05):
        _check_bimodal_base(base)
        _check_at_construction("slow_factor", slow_factor, positive=True)
        if _is_python_number(p_slow):
            _check_unit_interval("p_slow", p_slow)
        else:
            _check_at_construction("p_slow", p_slow, positive=False)
        return super().__new__(cls, base, slow_factor, p_slow)

    def validate(self, num_workers=None) -> "Bimodal":
        _check_bimodal_base(self.base)
        return self._make(
            (
                self.base.validate(num_workers),
                _check_number("slow_factor", self.slow_factor, positive=True),
                _check_unit_interval("p_slow", self.p_slow),
            )
        )

    @property
    def job_indexable(self) -> bool:
        return bool(self.base.job_indexable)

    def init_state(self, key, num_workers: int):
        return self.base.init_state(key, num_workers)

    def advance_state(self, state, key):
        return self.base.advance_state(state, key)

    def sample(self, key, num_workers: int, dtype=None):
        x = self.base.sample(key, num_workers, dtype)
        u = jax.random.uniform(jax.random.fold_in(key, _BIMODAL_TAG), (num_workers,), dtype=x.dtype)
        return x * jnp.where(u < self.p_slow, self.slow_factor, 1.0).astype(x.dtype)

    def apply_state(self, state, unit_times):
        return self.base.apply_state(state, unit_times)

    def cdf(self, x):
        """(1 − p_slow)·F(x) + p_slow·F(x / slow_factor), F the base's cdf (numpy)."""
        x = np.asarray(x, dtype=float)
        return (1 - self.p_slow) * np.asarray(
            self.base.cdf(x), dtype=float
        ) + self.p_slow * np.asarray(self.base.cdf(x / self.slow_factor), dtype=float)

    def sf(self, x):
        """P(X > x), from the base's ``sf`` when it has one (numpy)."""
        x = np.asarray(x, dtype=float)
        base_sf = getattr(self.base, "sf", None)
        if not callable(base_sf):

            def base_sf(v):
                return 1.0 - np.asarray(self.base.cdf(v), dtype=float)

        return (1 - self.p_slow) * np.asarray(base_sf(x), dtype=float) + self.p_slow * np.asarray(
            base_sf(x / self.slow_factor), dtype=float
        )

    def quantile(self, q):
        """The x with P(X <= x) = q (bisection; needs ``base.quantile``)."""
        return _mixture_quantile(self.base, self.slow_factor, self.p_slow, q)

    def atoms(self):
        """Support of a discrete base (``atoms()``) and its slowed copy; None otherwise."""
        atoms = getattr(self.base, "atoms", None)
        if not callable(atoms):
            return None
        values = atoms()
        if values is None:
            return None
        values = np.asarray(values, dtype=float)
        return np.unique(np.concatenate([values, values * float(self.slow_factor)]))

    @property
    def mean(self) -> float:
        """E[base] · (1 − p_slow + p_slow · slow_factor)."""
        p = float(self.p_slow)
        return self.base.mean * (1.0 - p + p * float(self.slow_factor))

    def parameters(self) -> dict:
        """``{'Bimodal': {'base': base.parameters(), 'slow_factor': f, 'p_slow': p}}``."""
        return {
            "Bimodal": {
                "base": self.base.parameters(),
                "slow_factor": float(self.slow_factor),
                "p_slow": float(self.p_slow),
            }
        }

    def describe(self) -> str:
        return f"bimodal({self.base.describe()}, ×{self.slow_factor:g} w.p. {self.p_slow:g})"


for _cls in (ShiftedExponential, Pareto, Weibull, LogNormal, MarkovStragglers, Bimodal):
    _register(_cls, _cls._fields)
del _cls


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
        raise ValueError(
            f"{name} must hold at least one time (N >= 1, M >= 1), got shape {array.shape}"
        )
    bad = ~np.isfinite(array) | (array <= 0)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must be finite and > 0, got {float(array[where])!r} at index "
            f"{where if len(where) > 1 else where[0]}"
        )
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


def row_bootstrap_message() -> str:
    """Why the i.i.d. formulas refuse a row bootstrap (``Empirical`` with (N, M) samples):
    the message of the ValueError that its ``cdf`` and the analysis raise.

    >>> row_bootstrap_message().startswith("Empirical with (N, M) samples is a row bootstrap")
    True
    """
    return (
        "Empirical with (N, M) samples is a row bootstrap: the M unit times of an "
        "iteration are one measured step, neither independent nor identically "
        "distributed, so the i.i.d. order-statistic formulas (E X_(k:n), the min-then-max "
        "of grouping, the lazy costs built on them) and a marginal cdf do not describe "
        "it. Exact instead (iterations are i.i.d.): the mean over rows of the row's "
        "statistic, which analysis.expected_iteration_time computes for gd, fastest-k, "
        "gc, and grouping without column shuffle. Pool the samples (samples.ravel()) for "
        "the i.i.d. model."
    )


class Empirical(DelayModel):
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
                raise ValueError(
                    "shuffle_columns=True needs samples of shape (N, M) "
                    f"(a row bootstrap), got shape {samples.shape}"
                )
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
                "(samples.ravel())"
            )

    def _check_columns(self, num_workers: int) -> None:
        if np.ndim(self.samples) == 2:
            self.check_workers(num_workers)

    def init_state(self, key, num_workers: int):
        """() or, with ``shuffle_columns``, the trial's column permutation (M,).

        Raises a ValueError when (N, M) samples do not have one column per worker
        (before anything compiles: the engine builds the initial state eagerly)."""
        self._check_columns(num_workers)
        if self.shuffle_columns:
            return jax.random.permutation(key, num_workers)
        return ()

    def sample(self, key, num_workers: int, dtype=None):
        """N uniform indices into pooled samples, or one uniform row of (N, M) samples."""
        samples = jnp.asarray(self.samples, dtype=dtype)
        if samples.ndim == 1:
            return samples[jax.random.randint(key, (num_workers,), 0, samples.shape[0])]
        self._check_columns(num_workers)
        return samples[jax.random.randint(key, (), 0, samples.shape[0])]

    def apply_state(self, state, unit_times):
        """The columns permuted (``shuffle_columns``), else unchanged."""
        return unit_times[state] if self.shuffle_columns else unit_times

    def parameters(self) -> dict:
        """Shape, SHA-256 and column-shuffle flag of the samples (they can be large)."""
        samples = np.ascontiguousarray(np.asarray(self.samples, dtype=np.float64))
        return {
            "Empirical": {
                "shape": list(samples.shape),
                "sha256": hashlib.sha256(samples.tobytes()).hexdigest(),
                "shuffle_columns": self.shuffle_columns,
            }
        }

    def normalized(self, by: str = "mean") -> "Empirical":
        """The same model with times divided by their mean (or median): E[X] = 1."""
        return Empirical(normalize_samples(self.samples, by), shuffle_columns=self.shuffle_columns)

    def atoms(self) -> np.ndarray:
        """Sorted distinct values of the pooled law (for exact order statistics)."""
        if not self.pooled:
            raise ValueError(row_bootstrap_message())
        return np.unique(np.asarray(self.samples))

    def bootstrap_rows(self):
        """The (N, M) equally likely rows of a row bootstrap; None when pooled."""
        return None if self.pooled else np.asarray(self.samples, dtype=float)

    def cdf(self, x):
        """Empirical CDF of pooled samples, P(X <= x) = #{samples <= x} / N (numpy)."""
        if not self.pooled:
            raise ValueError(row_bootstrap_message())
        ordered = np.sort(np.asarray(self.samples))
        x = np.asarray(x, dtype=float)
        return np.searchsorted(ordered, x, side="right") / ordered.size

    def quantile(self, q):
        """Smallest sample x with P(X <= x) >= q (pooled; numpy)."""
        if not self.pooled:
            raise ValueError(row_bootstrap_message())
        return np.quantile(np.asarray(self.samples), q, method="inverted_cdf")

    def describe(self) -> str:
        shape = np.shape(self.samples)
        if self.pooled:
            return f"empirical(pooled, {shape[0]} times, mean {self.mean:.4g})"
        shuffle = ", shuffled columns" if self.shuffle_columns else ""
        return f"empirical({shape[0]} steps × {shape[1]} workers, mean {self.mean:.4g}{shuffle})"


jax.tree_util.register_pytree_node(Empirical, Empirical.tree_flatten, Empirical.tree_unflatten)


Delay = DelayModel
DISTRIBUTIONS = (
    ShiftedExponential,
    Pareto,
    Weibull,
    LogNormal,
    Bimodal,
    MarkovStragglers,
    Empirical,
)


# --------------------------------------------------------------------------- #
# the public kernels: thin wrappers over the protocol
# --------------------------------------------------------------------------- #
def describe_parameters(delay) -> dict:
    """JSON-able parameters of a delay model (for a Result's config and checkpoints):
    ``delay.parameters()``.

    Scalar models list their floats; ``Empirical`` gives the samples' shape,
    their SHA-256 and the column-shuffle flag (the samples themselves can be large).

    >>> describe_parameters(ShiftedExponential(0.5, 2.0))
    {'ShiftedExponential': [0.5, 2.0]}
    >>> describe_parameters(Empirical([1.0, 2.0]))["Empirical"]["shape"]
    [2]
    """
    return delay.parameters()


def init_delay_state(delay: Delay, key, num_workers: int):
    """Per-trial state of a delay model: ``delay.init_state(key, num_workers)``.

    () for i.i.d. models, the slow flags (M,) for Markov, and for an
    ``Empirical`` row bootstrap with ``shuffle_columns`` the column permutation
    (M,) of the trial. Raises a ValueError when (N, M) samples do not have one
    column per worker (before anything compiles: the engine builds the initial
    state eagerly).
    """
    return delay.init_state(key, num_workers)


def advance_delay_state(delay: Delay, state, key):
    """One iteration's state transition: ``delay.advance_state(state, key)`` (one
    Markov transition of every worker's fast/slow state; a no-op for i.i.d. models)."""
    return delay.advance_state(state, key)


def apply_delay_state(delay: Delay, state, unit_times):
    """``delay.apply_state(state, unit_times)``: slow the slow workers (Markov) or
    permute the columns (shuffled ``Empirical``)."""
    return delay.apply_state(state, unit_times)


def sample_unit_times(delay: Delay, key, num_workers: int, dtype=None):
    """Draw one iteration's unit times X_{k,m}, shape (num_workers,): ``delay.sample``.

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
    return delay.sample(key, num_workers, dtype)


def from_bits(delay: Delay) -> bool:
    """Whether the engine may draw ``delay``'s unit times from random bits it computes
    ahead (:mod:`lagc_jax.random_words`): every law with ``standard_exponential``
    (``from_standard`` of exponential draws), when those bits are jax's."""
    return bool(getattr(delay, "standard_exponential", False)) and random_words.matches_jax()


def unit_times_from_bits(delay: Delay, bits, dtype):
    """``sample_unit_times(delay, fold_in(key, k), n, dtype)``, bit for bit, from
    ``random_words.random_bits(random_words.fold_in(key, k), n, dtype)`` (a law with
    ``standard_exponential``; see :func:`from_bits`)."""
    return delay.from_standard(random_words.exponential(bits, dtype))


# --------------------------------------------------------------------------- #
# the command line's forms
# --------------------------------------------------------------------------- #
_FORMS = (
    "'exp:RATE[,SHIFT]', 'pareto:SCALE,SHAPE', 'weibull:SCALE,SHAPE[,SHIFT]', "
    "'lognormal:MU,SIGMA' or 'bimodal:RATE,SLOW_FACTOR,P_SLOW'"
)


def parse_delay(text: str) -> Delay:
    """Parse a CLI form: ``exp:RATE[,SHIFT]``, ``pareto:SCALE,SHAPE``,
    ``weibull:SCALE,SHAPE[,SHIFT]``, ``lognormal:MU,SIGMA`` or
    ``bimodal:RATE,SLOW_FACTOR,P_SLOW`` (an Exp(RATE) base).

    >>> parse_delay("weibull:2,0.5")
    Weibull(scale=2.0, shape=0.5, shift=0.0)
    >>> parse_delay("bimodal:1,10,0.05").describe()
    'bimodal(exp(rate=1, shift=0), ×10 w.p. 0.05)'
    """
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
    if kind == "weibull" and len(values) in (2, 3):
        shift = values[2] if len(values) == 3 else 0.0
        return Weibull(scale=values[0], shape=values[1], shift=shift).validate()
    if kind == "lognormal" and len(values) == 2:
        return LogNormal(mu=values[0], sigma=values[1]).validate()
    if kind == "bimodal" and len(values) == 3:
        return Bimodal(
            ShiftedExponential(rate=values[0]), slow_factor=values[1], p_slow=values[2]
        ).validate()
    raise ValueError(f"delay must be {_FORMS}, got {text!r}")
