"""Expectations of order statistics of a delay law by numerical integration of its cdf.

E X_(k:n) = ∫₀^∞ P(X_(k:n) > x) dx for i.i.d. copies of a nonnegative unit time X
(MODEL.md §7), over an unbounded support too: the integrand is the binomial tail of
the delay's numpy ``cdf(x)`` (its ``sf(x)`` when present, which keeps heavy tails
accurate), integrated by adaptive Gauss–Legendre quadrature after the substitution
x = start + e^u, and extrapolated beyond the level where 1 − cdf loses its accuracy.
A discrete law (``atoms()``) is integrated exactly, as a step function. An infinite
expectation comes back as ``inf`` (:func:`order_statistic_mean` and
:func:`infinite_expectation` also warn with :class:`InfiniteMeanWarning`).

This is the numerical core of :mod:`lagc_jax.analysis` and of the default
``DelayModel.mean``: numpy and ``math`` only, importing nothing from the package, so
that both can use it.

>>> import numpy as np
>>> class Uniform:                          # any object with a numpy cdf, X >= 0
...     def cdf(self, x):
...         return np.clip(np.asarray(x, dtype=float), 0.0, 1.0)
>>> round(order_statistic_mean(Uniform(), 2, 3), 8)             # k / (n + 1)
0.5
>>> round(order_statistic_mean(MinOf(Uniform(), 3), 1, 1), 8)   # the min of 3: 1/4
0.25
"""

from __future__ import annotations

import math
import warnings

import numpy as np

__all__ = [
    "InfiniteMeanWarning",
    "MinOf",
    "atoms_of",
    "cdf_and_survival",
    "infinite_expectation",
    "integrate_finite",
    "integrate_steps",
    "integrate_tail",
    "log_cdf",
    "numeric_mixed_max",
    "numeric_order_statistic",
    "order_statistic_mean",
    "order_statistic_survival",
    "support_start",
    "survival_quantile",
    "tail_cut",
]


class InfiniteMeanWarning(RuntimeWarning):
    """A delay model whose mean unit time (or iteration time) is infinite."""


def infinite_expectation(what: str, reason: str, *, stacklevel: int = 2) -> float:
    """Warn that ``what`` is infinite (an InfiniteMeanWarning giving ``reason``) and
    return inf; ``stacklevel`` as for ``warnings.warn``, counted from the caller.

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     infinite_expectation("E X", "a Pareto shape <= 1")
    inf
    >>> str(caught[0].message)
    'E X is infinite: a Pareto shape <= 1'
    """
    warnings.warn(f"{what} is infinite: {reason}", InfiniteMeanWarning, stacklevel=stacklevel + 1)
    return math.inf


_Q_CUT = 1e-9  # below this survival, 1 - cdf(x) has lost ~1e-7 relative accuracy
_Q_CUT_SF = 1e-15  # with an sf(x), the survival stays accurate much further out
_X_CAP = 1e250
_MAX_PANELS = 2048
_GL_LO = np.polynomial.legendre.leggauss(10)
_GL_HI = np.polynomial.legendre.leggauss(21)


def cdf_and_survival(delay, x):
    """(F, q) = (P(X <= x), P(X > x)) as float arrays, using ``sf`` if present."""
    x = np.asarray(x, dtype=float)
    sf = getattr(delay, "sf", None)
    if callable(sf):
        q = np.clip(np.asarray(sf(x), dtype=float), 0.0, 1.0)
        f = np.clip(np.asarray(delay.cdf(x), dtype=float), 0.0, 1.0)
    else:
        f = np.clip(np.asarray(delay.cdf(x), dtype=float), 0.0, 1.0)
        q = 1.0 - f
    return np.broadcast_to(f, x.shape), np.broadcast_to(q, x.shape)


def tail_cut(delay) -> float:
    """The survival level where the integration stops and extrapolates: far out when
    the delay (or the law it takes minima of) has an accurate ``sf``."""
    while isinstance(delay, MinOf):
        delay = delay.base
    return _Q_CUT_SF if callable(getattr(delay, "sf", None)) else _Q_CUT


def log_cdf(f, q):
    """log F with the precise branch on each side of 1/2."""
    with np.errstate(divide="ignore"):
        return np.where(q < 0.5, np.log1p(-q), np.log(f))


class MinOf:
    """Distribution of the minimum of ``count`` i.i.d. copies of ``base``."""

    def __init__(self, base, count: int):
        self.base, self.count = base, count

    def cdf(self, x):
        f, _ = cdf_and_survival(self.base, x)
        with np.errstate(divide="ignore"):
            return -np.expm1(self.count * np.log1p(-f))

    def sf(self, x):
        _, q = cdf_and_survival(self.base, x)
        return q**self.count


def survival_quantile(delay, level: float, lo: float) -> float:
    """Smallest x >= lo (up to bisection accuracy) with P(X > x) <= level."""
    hi = max(2.0 * lo, 1.0)
    while cdf_and_survival(delay, hi)[1] > level:
        if hi >= _X_CAP:
            return _X_CAP
        hi = min(hi * 4.0, _X_CAP)
    a = lo
    for _ in range(200):
        mid = 0.5 * (a + hi)
        if mid in (a, hi):
            break
        if cdf_and_survival(delay, mid)[1] > level:
            a = mid
        else:
            hi = mid
    return hi


def support_start(delay) -> float:
    """sup{x >= 0 : P(X > x) = 1}, i.e. where the cdf starts to rise."""
    if float(cdf_and_survival(delay, np.nextafter(0.0, -1.0))[0]) > 0.0:
        raise ValueError("delay must be a nonnegative variable: cdf(x) > 0 for x < 0")
    if cdf_and_survival(delay, 0.0)[1] < 1.0:
        return 0.0
    hi = 1.0
    while cdf_and_survival(delay, hi)[1] >= 1.0:
        if hi >= _X_CAP:
            raise ValueError("delay.cdf is 0 everywhere; not a distribution")
        hi *= 4.0
    a = 0.0
    for _ in range(300):
        mid = 0.5 * (a + hi)
        if mid in (a, hi):
            break
        if cdf_and_survival(delay, mid)[1] >= 1.0:
            a = mid
        else:
            hi = mid
    return a


def integrate_tail(surv, start: float, scale: float, cut: float) -> float:
    """start + ∫_start^∞ surv(x) dx, where surv = 1 below ``start``.

    Substitutes x = start + e^u, which turns both a power-law tail and the
    behaviour near ``start`` into exponential decay in u, integrates
    [start + scale·1e-16, cut] by adaptive Gauss–Legendre (10 vs 21 points per
    panel) and extrapolates beyond ``cut`` (where 1 − cdf is no longer
    accurate) with the local decay rate of the integrand; returns inf when the
    integrand does not decay there (infinite mean).
    """
    if cut <= start:
        return start

    def h(u):
        return surv(start + np.exp(u)) * np.exp(u)

    u_lo, u_hi = math.log(scale * 1e-16), math.log(cut - start)
    if u_hi <= u_lo:
        return start
    left = math.exp(u_lo)  # surv ~ 1 on (start, start + e^u_lo)
    total = _integrate_panels(h, u_lo, u_hi)
    # The decay rate is taken over 2 units of u (a factor e^2 in x), wide enough
    # to average out the rounding noise of 1 - cdf near ``cut``.
    h_end, h_prev = float(h(u_hi)), float(h(u_hi - 2.0))
    if h_end > 0.0:
        rate = (math.log(h_prev) - math.log(h_end)) / 2.0 if h_prev > 0 else 0.0
        if rate <= 1e-6:
            return math.inf
        total += h_end / rate
    return start + left + total


def _integrate_panels(h, u_lo: float, u_hi: float) -> float:
    """∫_{u_lo}^{u_hi} h(u) du by adaptive Gauss–Legendre (10 vs 21 points per panel)."""
    edges = np.linspace(u_lo, u_hi, 33)
    a, b = edges[:-1], edges[1:]
    total, accepted, width = 0.0, 0.0, u_hi - u_lo
    (x10, w10), (x21, w21) = _GL_LO, _GL_HI
    for _ in range(40):
        mid, half = 0.5 * (a + b), 0.5 * (b - a)
        i10 = (h(mid[:, None] + half[:, None] * x10) * w10).sum(1) * half
        i21 = (h(mid[:, None] + half[:, None] * x21) * w21).sum(1) * half
        err = np.abs(i21 - i10)
        total = accepted + i21.sum()
        # Rounding in 1 - cdf near ``cut`` puts a ~1e-11 relative noise floor
        # under the panel errors, hence 1e-10 and a cap on the panel count.
        tol = max(1e-10 * abs(total), 1e-300) * (b - a) / width
        ok = err <= tol
        if ok.all() or a.size > _MAX_PANELS:
            accepted += i21.sum()
            break
        accepted += i21[ok].sum()
        a, b = a[~ok], b[~ok]
        m = 0.5 * (a + b)
        a, b = np.concatenate([a, m]), np.concatenate([m, b])
    else:  # pragma: no cover - only for pathological cdfs
        accepted += i21.sum()
    return accepted


def integrate_finite(surv, start: float, scale: float, stop: float) -> float:
    """∫_0^stop surv(x) dx = start + ∫_start^stop surv(x) dx, where surv = 1 below
    ``start`` (the substitution x = start + e^u of :func:`integrate_tail`, no tail)."""
    if stop <= start:
        return stop

    def h(u):
        return surv(start + np.exp(u)) * np.exp(u)

    u_lo, u_hi = math.log(scale * 1e-16), math.log(stop - start)
    if u_hi <= u_lo:
        return stop
    return start + math.exp(u_lo) + _integrate_panels(h, u_lo, u_hi)


def atoms_of(delay):
    """Sorted atoms of a discrete law (``atoms()``), also through a min of copies; else None."""
    if isinstance(delay, MinOf):
        return atoms_of(delay.base)
    atoms = getattr(delay, "atoms", None)
    values = atoms() if callable(atoms) else None
    return None if values is None else np.asarray(values, dtype=float)


def integrate_steps(surv, breakpoints) -> float:
    """∫_0^∞ surv(x) dx for a right-continuous step function that is 1 below the
    first breakpoint, constant between breakpoints and 0 from the last one on."""
    b = np.unique(np.asarray(breakpoints, dtype=float))
    values = np.asarray(surv(b[:-1]), dtype=float) if b.size > 1 else np.zeros(0)
    return float(b[0] + np.sum(values * np.diff(b)))


def numeric_order_statistic(delay, k: int, n: int) -> float:
    """E X_(k:n) = ∫_0^∞ P(fewer than k of n are <= x) dx (binomial tail)."""
    surv = order_statistic_survival(delay, k, n)
    atoms = atoms_of(delay)
    if atoms is not None:  # exact: P(X_(k:n) > x) is constant between atoms
        return integrate_steps(surv, atoms)
    start = support_start(delay)
    scale = max(survival_quantile(delay, 0.5, start) - start, 1e-300)
    cut = survival_quantile(delay, tail_cut(delay), start)
    return integrate_tail(surv, start, scale, cut)


def order_statistic_survival(delay, k: int, n: int):
    """x -> P(X_(k:n) > x) = P(fewer than k of n are <= x), vectorised."""
    j = np.arange(k, dtype=float)
    log_binom = np.array(
        [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in range(k)]
    )

    def surv(x):
        f, q = cdf_and_survival(delay, x)
        log_f = log_cdf(f, q)[..., None]
        with np.errstate(divide="ignore", invalid="ignore"):
            log_q = np.log(q)[..., None]
            jlogf = np.where(j == 0, 0.0, j * log_f)
            terms = np.exp(log_binom + jlogf + (n - j) * log_q)
        return np.minimum(terms.sum(-1), 1.0)

    return surv


def numeric_mixed_max(delay, n_late: int, n_plain: int, lag: float) -> float:
    """E max(X_1 + lag, …, X_{n_late} + lag, Y_1, …, Y_{n_plain}), all i.i.d."""

    def surv(x):
        f1, q1 = cdf_and_survival(delay, x - lag)
        f2, q2 = cdf_and_survival(delay, x)
        with np.errstate(invalid="ignore"):
            s = -np.expm1(n_late * log_cdf(f1, q1) + n_plain * log_cdf(f2, q2))
        return np.nan_to_num(s, nan=1.0)

    atoms = atoms_of(delay)
    if atoms is not None:  # exact: steps at the atoms and at the atoms + lag
        return integrate_steps(surv, np.concatenate([atoms, atoms + lag]))
    base = support_start(delay)
    start = base + lag
    scale = max(survival_quantile(delay, 0.5, base) - base, 1e-300)
    cut = survival_quantile(delay, tail_cut(delay), base) + lag
    return integrate_tail(surv, start, scale, cut)


def order_statistic_mean(delay, k: int, n: int, *, method: str = "auto") -> float:
    """E X_(k:n) of a checked delay (1 <= k <= n): its ``closed_order_statistic(k, n)``
    when it has one (``method`` "auto" or "closed"; "closed" raises a ValueError without
    one), else :func:`numeric_order_statistic`; an infinite integral warns with
    :func:`infinite_expectation`, naming the line that called this function's caller.

    >>> import numpy as np
    >>> class Exponential:
    ...     def cdf(self, x):
    ...         return -np.expm1(-np.maximum(np.asarray(x, dtype=float), 0.0))
    >>> round(order_statistic_mean(Exponential(), 2, 2), 8)    # 1 + 1/2
    1.5
    """
    closed = None
    if method != "numeric":
        hook = getattr(delay, "closed_order_statistic", None)
        closed = hook(k, n) if callable(hook) else None
        if closed is None and method == "closed":
            raise ValueError(
                f"method='closed' needs a closed form of E X_({k}:{n}) (the delay's "
                "closed_order_statistic: ShiftedExponential, Pareto, Weibull for k = 1), got "
                f"{type(delay).__name__}"
            )
    if closed is not None:  # an infinite closed form has warned with its reason
        return float(closed)
    value = float(numeric_order_statistic(delay, k, n))
    if math.isinf(value):
        return infinite_expectation(
            f"E X_({k}:{n})",
            "the tail of delay.cdf decays too slowly "
            "(a heavy tail without a finite mean of this order statistic)",
            stacklevel=3,
        )
    return value
