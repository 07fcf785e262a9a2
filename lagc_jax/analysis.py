"""Expected per-iteration time and counts of the strategies (MODEL.md §3, §4, §6, §7, §10).

These closed forms and quadratures are independent checks for the Monte Carlo
engine and cheap curves for plots. Assumptions (MODEL.md §3): i.i.d. unit times
X, compute time = load · X (linear load scaling), a *parallel* link (each upload
adds the same τ = ``upload_time``; the shared FIFO link is not modelled), one
broadcast τ_b = ``broadcast_time`` per iteration, no persistent slowdown factors.
The approximate strategies of MODEL.md §10 (deadline, erasurehead, sgc, graph-gc) are in
:func:`expected_approximate_iteration_costs`; :func:`straggle_probability` gives the p
of stochastic gradient coding.

Everything is numpy/``math`` only (no jax, no scipy). A delay is any object
with a vectorised numpy ``cdf(x)`` of a nonnegative variable: every built-in
model of ``lagc_jax.delays``, your own ``DelayModel``, or a bare object
(numerical integration of the order statistics' survival functions, over an
unbounded support too: :mod:`lagc_jax.quadrature`). The functions read only
these optional members of the delay (the ``DelayModel`` protocol), never its type:

- ``validate()``: called first, when present (a ValueError for bad parameters);
- ``sf(x)`` = 1 − cdf, used when present, which keeps heavy tails accurate;
- ``closed_order_statistic(k, n)``: a closed form of E X_(k:n), or None
  (ShiftedExponential and Pareto for all k, Weibull for k = 1);
- ``min_of(count)``: the law of the minimum of ``count`` copies, or None
  (exponential: rate × count; Pareto: shape × count; Weibull: a smaller scale);
- ``atoms()``: a discrete law's support (pooled ``Empirical``), integrated
  exactly: the survival function is a step function between atoms;
- ``bootstrap_rows()``: the equally likely (N, M) rows of a law that is not
  i.i.d. within an iteration (``Empirical`` with (N, M) samples, a row
  bootstrap). Only ``expected_iteration_time`` (and ``expected_iteration_costs``)
  handle it, as exact means over rows; everything else raises a ValueError
  saying why.

An infinite expectation (a Pareto shape too small for the order statistic, or
a numerically non-decaying tail) is returned as ``inf`` with an
``InfiniteMeanWarning``.

>>> d = ShiftedExponential(rate=1.0)
>>> [round(expected_iteration_time(s, 12, 2, d), 3) for s in ("gd", "gc", "grouping")]
[3.103, 4.81, 2.083]
"""

from __future__ import annotations

import math
import operator

import numpy as np

from . import quadrature
from .delays import Pareto, ShiftedExponential  # noqa: F401 (the examples use them)
from .delays import row_bootstrap_message

__all__ = [
    "NON_LAZY_STRATEGIES",
    "LAZY_STRATEGIES",
    "expected_order_statistic",
    "expected_min_then_max",
    "expected_iteration_time",
    "expected_iteration_costs",
    "expected_lazy_iteration_costs",
    "APPROXIMATE_STRATEGIES",
    "straggle_probability",
    "expected_approximate_iteration_costs",
]

NON_LAZY_STRATEGIES = ("gd", "fastest-k", "gc", "grouping")
LAZY_STRATEGIES = ("lag-ps", "lag-wk", "g-lag", "g-lag-wk", "lagc", "lagc-ps")
APPROXIMATE_STRATEGIES = ("deadline", "erasurehead", "sgc", "graph-gc")
_METHODS = ("auto", "closed", "numeric")


# --------------------------------------------------------------------------- checks


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    """Return ``value`` as int in [low, high] or raise a ValueError naming it."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if number < low or (high is not None and number > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be {bound}, got {number}")
    return number


def _check_time(name: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not (math.isfinite(number) and number >= 0.0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return number


def _check_method(method: str) -> str:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    return method


def _rows(delay):
    """The (N, M) rows of a row bootstrap (``bootstrap_rows()``), else None."""
    rows = getattr(delay, "bootstrap_rows", None)
    return rows() if callable(rows) else None


def _check_delay(delay, *, rows_allowed: bool = False):
    """Validate a delay (its ``validate()``, when it has one); require a callable
    ``cdf`` unless it is a row bootstrap and those are allowed."""
    validate = getattr(delay, "validate", None)
    if callable(validate) and not isinstance(delay, type):
        checked = validate()
        delay = delay if checked is None else checked
    if _rows(delay) is not None:
        if not rows_allowed:
            raise ValueError(row_bootstrap_message())
        return delay
    if not callable(getattr(delay, "cdf", None)):
        raise ValueError(
            "delay must be a delay model with a numpy cdf(x) method (ShiftedExponential, "
            f"Pareto, Weibull, LogNormal, ...) or any object with one, got {type(delay).__name__}"
        )
    return delay


def _check_workers(num_workers, stragglers) -> tuple[int, int]:
    m = _check_int("num_workers", num_workers, 1)
    s = _check_int("stragglers", stragglers, 0, m - 1)
    return m, s


def _check_call(
    name,
    valid,
    num_workers,
    stragglers,
    delay,
    upload_time,
    broadcast_time,
    method,
    rows_allowed=False,
):
    """Validate the arguments shared by the per-strategy expectations."""
    if name not in valid:
        raise ValueError(f"name must be one of {valid}, got {name!r}")
    m, s = _check_workers(num_workers, stragglers)
    return (
        m,
        s,
        _check_delay(delay, rows_allowed=rows_allowed),
        _check_time("upload_time", upload_time),
        _check_time("broadcast_time", broadcast_time),
        _check_method(method),
    )


def _num_groups(num_workers: int, stragglers: int, name: str) -> int:
    if num_workers % (stragglers + 1):
        raise ValueError(
            f"{name} needs (stragglers + 1) to divide num_workers, got "
            f"num_workers={num_workers}, stragglers={stragglers}"
        )
    return num_workers // (stragglers + 1)


# ------------------------------------------------------------------- public figures


def expected_order_statistic(delay, k: int, n: int, *, method: str = "auto") -> float:
    """E X_(k:n), the k-th smallest of n i.i.d. unit times (MODEL.md §7).

    Closed forms from the delay's ``closed_order_statistic(k, n)`` when it has one:
    ShiftedExponential (a + (H_n − H_{n−k})/μ), Pareto
    (x_m Γ(n+1)Γ(n−k+1−1/β)/(Γ(n−k+1)Γ(n+1−1/β)), inf when n−k+1 <= 1/β), Weibull
    for k = 1. ``method="numeric"`` integrates the binomial tail of ``delay.cdf``
    instead (the only option for other distributions and order statistics).

    >>> round(expected_order_statistic(ShiftedExponential(rate=1.0), 12, 12), 4)
    3.1032
    """
    n = _check_int("n", n, 1)
    k = _check_int("k", k, 1, n)
    method = _check_method(method)
    delay = _check_delay(delay)
    return quadrature.order_statistic_mean(delay, k, n, method=method)


def _min_distribution(delay, group_size: int):
    """The law of the min of ``group_size`` copies: the delay's ``min_of`` or numeric."""
    hook = getattr(delay, "min_of", None)
    inner = hook(group_size) if callable(hook) else None
    return quadrature.MinOf(delay, group_size) if inner is None else inner


def expected_min_then_max(
    delay, group_size: int, num_groups: int, *, method: str = "auto"
) -> float:
    """E[max over ``num_groups`` groups of the min of ``group_size`` unit times].

    The grouping wait rule (first reply in every group). The delay's ``min_of``
    gives the law of the min when it has one: the min of S+1 exponentials is
    exponential with rate (S+1)μ, of S+1 Pareto(x_m, β) is Pareto(x_m, (S+1)β), of
    S+1 Weibulls a Weibull; other distributions go through the numeric path.

    >>> round(expected_min_then_max(ShiftedExponential(rate=1.0), 3, 4), 4)
    0.6944
    """
    group_size = _check_int("group_size", group_size, 1)
    num_groups = _check_int("num_groups", num_groups, 1)
    method = _check_method(method)
    delay = _check_delay(delay)
    inner = _min_distribution(delay, group_size)
    if method == "numeric" and not isinstance(inner, quadrature.MinOf):
        inner = quadrature.MinOf(delay, group_size)
    return expected_order_statistic(
        inner, num_groups, num_groups, method="auto" if method == "numeric" else method
    )


def _mixed_max(delay, n_late: int, n_plain: int, lag: float, method: str) -> float:
    """E max of n_late copies of X + lag and n_plain copies of X (lag >= 0)."""
    n = n_late + n_plain
    if n == 0:
        return 0.0
    if n_late == 0 or lag == 0.0:
        return expected_order_statistic(delay, n, n, method=method)
    if n_plain == 0:
        return expected_order_statistic(delay, n, n, method=method) + lag
    if method == "closed":
        raise ValueError(
            "method='closed': no closed form for a maximum where only some of the "
            "messages pay upload_time; use method='auto' or 'numeric'"
        )
    value = quadrature.numeric_mixed_max(delay, n_late, n_plain, lag)
    if math.isinf(value):
        return quadrature.infinite_expectation(
            "the expected maximum", "the tail of delay.cdf decays too slowly"
        )
    return value


def expected_iteration_time(
    name: str,
    num_workers: int,
    stragglers: int,
    delay,
    *,
    upload_time: float = 0.0,
    broadcast_time: float = 0.0,
    method: str = "auto",
) -> float:
    """Expected duration of one iteration of a non-lazy strategy (MODEL.md §7).

    gd: E X_(M:M); fastest-k: E X_(M−S:M); gc: (S+1) E X_(M−S:M);
    grouping: (S+1) E[max over M/(S+1) groups of the min of S+1]; each plus
    broadcast_time + upload_time (parallel link: every message pays τ).

    For an ``Empirical`` row bootstrap ((N, M) samples, M = num_workers; any delay
    with ``bootstrap_rows()``) the compute part is the exact mean over rows of the
    same statistic of the row (grouping: consecutive workers form a group; not
    with shuffled columns). Any other delay needs a numpy ``cdf`` (closed forms
    where the delay has them, quadrature otherwise).

    >>> d = ShiftedExponential(shift=0.0, rate=1.0)
    >>> round(expected_iteration_time("gd", 12, 2, d), 3)
    3.103
    >>> round(expected_iteration_time("gc", 12, 2, d, upload_time=0.5), 3)
    5.31
    """
    m, s, delay, tau, tau_b, method = _check_call(
        name,
        NON_LAZY_STRATEGIES,
        num_workers,
        stragglers,
        delay,
        upload_time,
        broadcast_time,
        method,
        rows_allowed=True,
    )
    rows = _rows(delay)
    if rows is not None:
        return tau_b + tau + _row_bootstrap_compute_time(name, m, s, delay, rows)
    if name == "gd":
        compute = expected_order_statistic(delay, m, m, method=method)
    elif name == "fastest-k":
        compute = expected_order_statistic(delay, m - s, m, method=method)
    elif name == "gc":
        compute = (s + 1) * expected_order_statistic(delay, m - s, m, method=method)
    else:
        g = _num_groups(m, s, name)
        compute = (s + 1) * expected_min_then_max(delay, s + 1, g, method=method)
    return tau_b + tau + compute


def _row_bootstrap_compute_time(name: str, m: int, s: int, delay, samples) -> float:
    """Exact mean compute time of one iteration under a row bootstrap: the mean over
    rows (each drawn with probability 1/N) of the wait rule applied to the row."""
    samples = np.asarray(samples, dtype=float)
    check = getattr(delay, "check_workers", None)
    if callable(check):
        check(m)
    elif samples.ndim != 2 or samples.shape[1] != m:
        raise ValueError(
            f"delay rows have shape {samples.shape}, need one column per worker (num_workers={m})"
        )
    rows = np.sort(samples, axis=1) if name != "grouping" else None
    if name == "gd":
        return float(rows[:, -1].mean())
    if name in ("fastest-k", "gc"):
        load = 1 if name == "fastest-k" else s + 1
        return load * float(rows[:, m - s - 1].mean())
    g = _num_groups(m, s, name)
    if getattr(delay, "shuffle_columns", False):
        raise ValueError(
            "grouping under a row bootstrap with shuffle_columns=True: the time depends on "
            "which workers share a group, averaged over random column permutations; no exact "
            "formula here (simulate it, or use shuffle_columns=False)"
        )
    groups = samples.reshape(-1, g, s + 1)
    return (s + 1) * float(groups.min(axis=2).max(axis=1).mean())


def expected_iteration_costs(name: str, num_workers: int, stragglers: int, delay, **kw) -> dict:
    """Expected time and counts of one iteration (MODEL.md §4) of a non-lazy strategy.

    Returns ``{"time", "uploads", "downloads", "computations"}``: uploads = gradient
    vectors used (gd M, fastest-k and gc M−S, grouping G); downloads = M;
    computations = Σ loads (gd, fastest-k M; gc, grouping M(S+1)). ``kw`` is
    passed to :func:`expected_iteration_time`.

    >>> expected_iteration_costs("grouping", 12, 2, ShiftedExponential())["uploads"]
    4
    """
    time = expected_iteration_time(name, num_workers, stragglers, delay, **kw)
    m, s = num_workers, stragglers
    uploads = {"gd": m, "fastest-k": m - s, "gc": m - s, "grouping": m // (s + 1)}[name]
    computations = m if name in ("gd", "fastest-k") else m * (s + 1)
    return {"time": time, "uploads": uploads, "downloads": m, "computations": computations}


def expected_lazy_iteration_costs(
    name: str,
    num_workers: int,
    stragglers: int,
    delay,
    num_units_active: int,
    *,
    upload_time: float = 0.0,
    broadcast_time: float = 0.0,
    method: str = "auto",
) -> dict:
    """Expected time and counts of one lazy iteration with ``n = num_units_active``.

    Laziness makes n random and data-dependent; these are the figures *given* n,
    assuming (as holds for the triggers of MODEL.md §5, which depend on iterates,
    not on the current delays) that which units are active is independent of
    the current unit times. n counts:

    - lag-ps: workers asked (0..M). Time τ_b + τ + E X_(n:n) (τ_b if n = 0).
    - lag-wk: workers that upload (0..M); all M compute and the server waits for
      all M messages, skips arriving at c, uploads at c + τ. Time τ_b + E max of
      n copies of X + τ and M − n of X (exact; numeric when 0 < n < M, τ > 0).
    - g-lag: groups selected (0..G). Time τ_b + τ + (S+1) E[max over n groups of
      min of S+1]; downloads n(S+1); computations n(S+1)·(S+1).
    - g-lag-wk: groups whose first finisher uploads (0..G); all groups compute.
      Time exact as in lag-wk, on the group minima scaled by S+1.
    - lagc: uploads among the first M−S messages (0..M−S). Time
      τ_b + (S+1) E X_(M−S:M) + (τ if n > 0): exact for τ = 0 or when every
      worker uploads (the gc twin), otherwise an *upper bound* within τ of the
      truth (parallel-link approximation: which workers make up the first M−S
      depends on who pays τ).
    - lagc-ps: partitions selected (0..P, P = M). Not a function of n alone
      (loads depend on which partitions are selected), so *upper bounds*:
      every holder has load <= min(n, S+1), hence time <=
      τ_b + τ + min(n, S+1) E X_(M−S:M); downloads (holders, at least
      min(M, n+S)) <= min(M, n(S+1)); uploads <= min(M−S, n(S+1)).
      computations = n(S+1) is exact. All exact at n = M.

    With n at its maximum, lag-ps and lag-wk reduce to gd, g-lag and g-lag-wk
    to grouping, lagc and lagc-ps to gc.

    >>> d = ShiftedExponential(rate=1.0)
    >>> c = expected_lazy_iteration_costs("g-lag", 12, 2, d, 4)
    >>> round(c["time"], 3), c["uploads"], c["computations"]
    (2.083, 4, 36)
    """
    m, s, delay, tau, tau_b, method = _check_call(
        name, LAZY_STRATEGIES, num_workers, stragglers, delay, upload_time, broadcast_time, method
    )
    load = s + 1
    if name in ("g-lag", "g-lag-wk"):
        g = _num_groups(m, s, name)
        n = _check_int("num_units_active", num_units_active, 0, g)
        group_min = _min_distribution(delay, load)
        if name == "g-lag":
            time = tau_b + (
                tau + load * expected_order_statistic(group_min, n, n, method=method) if n else 0.0
            )
            return {
                "time": time,
                "uploads": n,
                "downloads": n * load,
                "computations": n * load * load,
            }
        time = tau_b + load * _mixed_max(group_min, n, g - n, tau / load, method)
        return {"time": time, "uploads": n, "downloads": m, "computations": m * load}
    if name == "lagc":
        n = _check_int("num_units_active", num_units_active, 0, m - s)
        time = (
            tau_b
            + (tau if n else 0.0)
            + load * expected_order_statistic(delay, m - s, m, method=method)
        )
        return {"time": time, "uploads": n, "downloads": m, "computations": m * load}
    n = _check_int("num_units_active", num_units_active, 0, m)
    if name == "lag-ps":
        time = tau_b + (tau + expected_order_statistic(delay, n, n, method=method) if n else 0.0)
        return {"time": time, "uploads": n, "downloads": n, "computations": n}
    if name == "lag-wk":
        time = tau_b + _mixed_max(delay, n, m - n, tau, method)
        return {"time": time, "uploads": n, "downloads": m, "computations": m}
    # lagc-ps: upper bounds (see docstring)
    if n == 0:
        return {"time": tau_b, "uploads": 0, "downloads": 0, "computations": 0}
    time = tau_b + tau + min(n, load) * expected_order_statistic(delay, m - s, m, method=method)
    return {
        "time": time,
        "uploads": min(m - s, n * load),
        "downloads": min(m, n * load),
        "computations": n * load,
    }


# ------------------------------------------------ approximate strategies (MODEL.md §10)


def _check_deadline(deadline) -> float:
    """T > 0, a real number; inf (no deadline) allowed."""
    if isinstance(deadline, bool):
        number = math.nan
    else:
        try:
            number = float(deadline)
        except (TypeError, ValueError):
            number = math.nan
    if not number > 0:
        raise ValueError(f"deadline must be a number > 0 (inf: no deadline), got {deadline!r}")
    return number


def straggle_probability(
    delay, deadline, *, load=1, upload_time: float = 0.0, latency: float = 0.0
) -> float:
    """p = P(load·X + latency + upload_time > deadline): the probability that a worker's
    message misses the deadline T on a parallel link (MODEL.md §10, ``sgc``).

    T is measured from the moment the workers hold θ^k, after the broadcast (the clock of
    the arrivals). On a shared link the FIFO queue delays uploads further, so the true
    probability is at least this one (equal when upload_time = latency = 0). ``delay`` is
    any i.i.d. law with a numpy ``cdf`` (its ``sf`` when present); T = inf gives 0.

    >>> round(straggle_probability(ShiftedExponential(rate=1.0), 3.0, load=3), 4)  # e^-1
    0.3679
    >>> straggle_probability(ShiftedExponential(rate=1.0), 0.5, upload_time=1.0)
    1.0
    """
    delay = _check_delay(delay)
    T = _check_deadline(deadline)
    try:
        load_value = math.nan if isinstance(load, bool) else float(load)
    except (TypeError, ValueError):
        load_value = math.nan
    if not (math.isfinite(load_value) and load_value > 0):
        raise ValueError(f"load must be a finite number > 0 (partitions per worker), got {load!r}")
    link = _check_time("upload_time", upload_time) + _check_time("latency", latency)
    if math.isinf(T):
        return 0.0
    if T < link:
        return 1.0
    _, q = quadrature.cdf_and_survival(delay, (T - link) / load_value)
    return float(q)


def _expected_min_order_statistic(delay, k: int, n: int, cap: float) -> float:
    """E min(X_(k:n), cap) = ∫_0^cap P(X_(k:n) > x) dx (exact for discrete laws)."""
    surv = quadrature.order_statistic_survival(delay, k, n)
    atoms = quadrature.atoms_of(delay)
    if atoms is not None:  # a step function: exact up to the cap
        return quadrature.integrate_steps(surv, np.append(atoms[atoms < cap], cap))
    start = quadrature.support_start(delay)
    scale = max(quadrature.survival_quantile(delay, 0.5, start) - start, 1e-300)
    return quadrature.integrate_finite(surv, start, scale, cap)


def _covering_subsets(group_size: int, num_groups: int, n: int) -> int:
    """Subsets of n of the G·g workers that contain a member of every group (inclusion–
    exclusion over the groups left out)."""
    return sum(
        (-1) ** j * math.comb(num_groups, j) * math.comb((num_groups - j) * group_size, n)
        for j in range(num_groups + 1)
    )


def _erasurehead_compute_time(delay, group_size: int, num_groups: int, k: int) -> float:
    """E min(X_(k:M), max over groups of the group minimum), unit times of load 1:
    P(> x) = Σ_{n<k} (C(M, n) − covering(n)) F^n (1 − F)^(M−n)."""
    M = group_size * num_groups
    counts = np.array(
        [math.comb(M, n) - _covering_subsets(group_size, num_groups, n) for n in range(k)],
        dtype=float,
    )
    keep = counts > 0
    n = np.arange(k, dtype=float)[keep]
    log_counts = np.log(counts[keep])

    def surv(x):
        f, q = quadrature.cdf_and_survival(delay, x)
        log_f = quadrature.log_cdf(f, q)[..., None]
        with np.errstate(divide="ignore", invalid="ignore"):
            n_log_f = np.where(n == 0, 0.0, n * log_f)
            terms = np.exp(log_counts + n_log_f + (M - n) * np.log(q)[..., None])
        return np.minimum(terms.sum(-1), 1.0)

    atoms = quadrature.atoms_of(delay)
    if atoms is not None:
        return quadrature.integrate_steps(surv, atoms)
    start = quadrature.support_start(delay)
    scale = max(quadrature.survival_quantile(delay, 0.5, start) - start, 1e-300)
    cut = quadrature.survival_quantile(delay, quadrature.tail_cut(delay), start)
    value = quadrature.integrate_tail(surv, start, scale, cut)
    if math.isinf(value):
        return quadrature.infinite_expectation(
            "erasurehead's expected iteration time", "the tail of delay.cdf decays too slowly"
        )
    return value


def expected_approximate_iteration_costs(
    name: str,
    num_workers: int,
    stragglers: int,
    delay,
    *,
    deadline=None,
    k=None,
    degree=None,
    upload_time: float = 0.0,
    broadcast_time: float = 0.0,
    latency: float = 0.0,
) -> dict:
    """Expected time and counts of one iteration of an approximate strategy (MODEL.md §10).

    Returns ``{"time", "uploads", "downloads", "computations"}`` (expectations; uploads may
    be fractional). Same assumptions as :func:`expected_iteration_time`: i.i.d. unit times X,
    compute time = load·X, a parallel link on which every message takes c = latency +
    upload_time, τ_b once per round; A = load·X + c is an arrival, measured from the
    moment the workers hold θ^k. Options as the strategies' (only those of ``name``):

    - ``deadline`` (T, default inf): t = max(min(T, A_max), A_min) = min(T, A_max) +
      (A_min − T)⁺, so E t = E min(T, A_max) + E(A_min − T)⁺ (quadrature of the order
      statistics' survival functions up to T). uploads: M·P(A ≤ T) + P(A > T)^M.
    - ``erasurehead`` (k, default M − S; needs (S+1) | M): t = c + (S+1)·min(X_(k:M),
      max over groups of the group minimum), whose survival is
      Σ_{n<k} (C(M, n) − #(n-sets meeting every group)) F^n (1 − F)^(M−n), integrated.
      uploads (groups covered) = G·(1 − C(M − S − 1, k)/C(M, k)): the first k arrivals
      are a uniformly random k-set (continuous laws: no ties).
    - ``sgc`` (T, default inf): t = min(T, A_max) with load S+1; uploads M·(1 − p),
      p = :func:`straggle_probability`.
    - ``graph-gc`` (degree s, default S+1; load s): t = c + s·E X_(M−S:M), as gc's.

    >>> d = ShiftedExponential(rate=1.0)
    >>> c = expected_approximate_iteration_costs("deadline", 12, 2, d, deadline=1.0)
    >>> round(c["time"], 4), round(c["uploads"], 4)
    (0.9995, 7.5855)
    >>> round(expected_approximate_iteration_costs("erasurehead", 12, 2, d, k=12)["time"], 3)
    2.083
    """
    if name not in APPROXIMATE_STRATEGIES:
        raise ValueError(f"name must be one of {APPROXIMATE_STRATEGIES}, got {name!r}")
    m, s = _check_workers(num_workers, stragglers)
    delay = _check_delay(delay)
    tau_b = _check_time("broadcast_time", broadcast_time)
    tau, lat = _check_time("upload_time", upload_time), _check_time("latency", latency)
    link = tau + lat
    options = {"deadline": deadline, "k": k, "degree": degree}
    takes = {
        "deadline": ("deadline",),
        "sgc": ("deadline",),
        "erasurehead": ("k",),
        "graph-gc": ("degree",),
    }[name]
    for option, value in options.items():
        if value is not None and option not in takes:
            raise ValueError(
                f"option {option!r} does not apply to {name!r} (valid: {', '.join(takes)})"
            )
    if name == "graph-gc":
        load = s + 1 if degree is None else _check_int("degree", degree, 1, m - 1)
        if (m * load) % 2:
            raise ValueError(
                f"degree: no {load}-regular graph on {m} nodes exists "
                f"(num_workers · degree = {m * load} is odd)"
            )
        time = tau_b + link + load * expected_order_statistic(delay, m - s, m)
        return {"time": float(time), "uploads": m - s, "downloads": m, "computations": m * load}
    if name == "erasurehead":
        g = _num_groups(m, s, name)
        k = m - s if k is None else _check_int("k", k, 1, m)
        compute = _erasurehead_compute_time(delay, s + 1, g, k)
        uploads = g * (1.0 - math.comb(m - s - 1, k) / math.comb(m, k))
        return {
            "time": float(tau_b + link + (s + 1) * compute),
            "uploads": uploads,
            "downloads": m,
            "computations": m * (s + 1),
        }
    T = math.inf if deadline is None else _check_deadline(deadline)
    load = 1 if name == "deadline" else s + 1
    if math.isinf(T):
        time = link + load * expected_order_statistic(delay, m, m)
    elif T <= link:
        time = T
    else:
        time = link + load * _expected_min_order_statistic(delay, m, m, (T - link) / load)
    p = straggle_probability(delay, T, load=load, upload_time=tau, latency=lat)
    if name == "sgc":
        return {
            "time": float(tau_b + time),
            "uploads": m * (1.0 - p),
            "downloads": m,
            "computations": m * load,
        }
    if not math.isinf(T):  # E(A_min − T)⁺: the server waits for the first arrival
        first = expected_order_statistic(delay, 1, m)
        if T <= link:
            time += link - T + first
        else:
            time += first - _expected_min_order_statistic(delay, 1, m, T - link)
    return {
        "time": float(tau_b + time),
        "uploads": m * (1.0 - p) + p**m,
        "downloads": m,
        "computations": m,
    }
