"""Tests of lagc_jax.analysis: MODEL.md §7 numbers, closed forms vs quadrature,
an independent numpy Monte Carlo (tolerances from the sample's standard error),
lazy reductions to the non-lazy twins, and input validation."""

import doctest
import math

import numpy as np
import pytest

from lagc_jax import analysis
from lagc_jax.analysis import (
    expected_iteration_costs,
    expected_iteration_time,
    expected_lazy_iteration_costs,
    expected_min_then_max,
    expected_order_statistic,
)
from lagc_jax.delays import Pareto, ShiftedExponential

M, S = 12, 2
G = M // (S + 1)
EXP = ShiftedExponential(shift=0.4, rate=1.3)
PAR3 = Pareto(scale=0.7, shape=3.0)
PAR15 = Pareto(scale=0.5, shape=1.5)


class CdfOnly:
    """A distribution the module knows nothing about except its cdf."""

    def __init__(self, cdf):
        self.cdf = cdf


class Uniform:
    """Uniform(0, width): E X_(k:n) = width * k / (n + 1)."""

    def __init__(self, width):
        self.width = width

    def cdf(self, x):
        return np.clip(np.asarray(x, dtype=float) / self.width, 0.0, 1.0)


def test_doctests():
    failures, tried = doctest.testmod(analysis)
    assert tried >= 6 and failures == 0


# ---------------------------------------------------------------- MODEL.md §7


def test_model_section7_example():
    d = ShiftedExponential(shift=0.0, rate=1.0)
    assert expected_iteration_time("gd", 12, 2, d) == pytest.approx(3.103, abs=1e-3)
    assert expected_iteration_time("gc", 12, 2, d) == pytest.approx(4.810, abs=1e-3)
    assert expected_iteration_time("grouping", 12, 2, d) == pytest.approx(2.083, abs=1e-3)
    # the exact values behind the rounded ones: H_12, 3 (H_12 - H_2), H_4
    h = lambda n: sum(1.0 / j for j in range(1, n + 1))  # noqa: E731
    assert expected_iteration_time("gd", 12, 2, d) == pytest.approx(h(12), rel=1e-14)
    assert expected_iteration_time("gc", 12, 2, d) == pytest.approx(3 * (h(12) - h(2)), rel=1e-14)
    assert expected_iteration_time("grouping", 12, 2, d) == pytest.approx(h(4), rel=1e-14)
    assert expected_iteration_time("fastest-k", 12, 2, d) == pytest.approx(h(12) - h(2), rel=1e-14)


def test_times_add_upload_and_broadcast():
    base = expected_iteration_time("gc", M, S, EXP)
    t = expected_iteration_time("gc", M, S, EXP, upload_time=0.25, broadcast_time=0.5)
    assert t == pytest.approx(base + 0.75, rel=1e-14)


def test_pareto_closed_form_known_values():
    # single draw: mean x_m beta / (beta - 1); min of 12 is Pareto(x_m, 12 beta)
    assert expected_order_statistic(PAR15, 1, 1) == pytest.approx(0.5 * 3.0, rel=1e-13)
    assert expected_order_statistic(PAR15, 1, 12) == pytest.approx(0.5 * 18 / 17, rel=1e-13)
    # max of 2 Pareto(1, 2): 1 + ∫_1^∞ 1 - (1 - x^-2)^2 dx = 1 + ∫_1^∞ 2x^-2 - x^-4 dx = 8/3
    assert expected_order_statistic(Pareto(1.0, 2.0), 2, 2) == pytest.approx(8 / 3, rel=1e-13)


def test_costs_counts():
    expected = {
        "gd": (12, 12, 12),
        "fastest-k": (10, 12, 12),
        "gc": (10, 12, 36),
        "grouping": (4, 12, 36),
    }
    for name, (up, down, comp) in expected.items():
        c = expected_iteration_costs(name, M, S, EXP, upload_time=0.1)
        assert (c["uploads"], c["downloads"], c["computations"]) == (up, down, comp)
        assert c["time"] == expected_iteration_time(name, M, S, EXP, upload_time=0.1)


# ------------------------------------------------------- closed vs numeric paths


@pytest.mark.parametrize("delay", [EXP, PAR3, PAR15, ShiftedExponential(2.5, 0.2)])
@pytest.mark.parametrize(
    "k,n", [(1, 1), (1, 12), (4, 12), (10, 12), (12, 12), (30, 60), (60, 60), (2, 200)]
)
def test_order_statistic_closed_vs_numeric(delay, k, n):
    closed = expected_order_statistic(delay, k, n, method="closed")
    numeric = expected_order_statistic(delay, k, n, method="numeric")
    assert math.isfinite(closed)
    assert numeric == pytest.approx(closed, rel=1e-6)


@pytest.mark.parametrize("delay", [EXP, PAR3, PAR15])
@pytest.mark.parametrize("size,groups", [(3, 4), (1, 12), (12, 1), (5, 7)])
def test_min_then_max_closed_vs_numeric(delay, size, groups):
    closed = expected_min_then_max(delay, size, groups, method="closed")
    numeric = expected_min_then_max(delay, size, groups, method="numeric")
    assert numeric == pytest.approx(closed, rel=1e-6)


def test_min_then_max_exponential_by_hand():
    # min of 3 is shift + Exp(3 rate); max of 4 of those: shift + H_4 / (3 rate)
    value = expected_min_then_max(EXP, 3, 4)
    assert value == pytest.approx(0.4 + (1 + 1 / 2 + 1 / 3 + 1 / 4) / 3.9, rel=1e-14)


def test_heavy_pareto_near_infinite_mean_numeric():
    # n-k+1 = 1 and beta = 1.2: the tail decays like x^-1.2; mean 6
    d = Pareto(1.0, 1.2)
    assert expected_order_statistic(d, 1, 1, method="closed") == pytest.approx(6.0, rel=1e-13)
    assert expected_order_statistic(d, 1, 1, method="numeric") == pytest.approx(6.0, rel=1e-6)


def test_generic_distributions_use_the_numeric_path():
    u = Uniform(2.0)
    for k, n in [(1, 1), (3, 7), (7, 7)]:
        assert expected_order_statistic(u, k, n) == pytest.approx(2.0 * k / (n + 1), rel=1e-8)
    # min of 3 Uniform(0,2), then max of 4: compare with quadrature by hand
    x = np.linspace(0.0, 2.0, 200_001)
    surv = 1.0 - (1.0 - (1.0 - x / 2.0) ** 3) ** 4
    by_hand = np.sum((surv[1:] + surv[:-1]) / 2 * np.diff(x))
    assert expected_min_then_max(u, 3, 4) == pytest.approx(by_hand, rel=1e-8)
    # an exponential known only by its cdf
    wrapped = CdfOnly(EXP.cdf)
    for name in analysis.NON_LAZY_STRATEGIES:
        assert expected_iteration_time(name, M, S, wrapped) == pytest.approx(
            expected_iteration_time(name, M, S, EXP), rel=1e-7
        )


# ------------------------------------------------------------- infinite means


def test_pareto_infinite_mean_is_inf():
    for method in ("closed", "numeric", "auto"):
        assert expected_order_statistic(Pareto(1.0, 0.5), 1, 1, method=method) == math.inf
        assert expected_order_statistic(Pareto(1.0, 1.0), 12, 12, method=method) == math.inf
        # n-k+1 = 2 <= 1/beta = 2: infinite; n-k+1 = 3 > 2: finite (= 66 x_m for 10 of 12)
        assert expected_order_statistic(Pareto(1.0, 0.5), 11, 12, method=method) == math.inf
        assert expected_order_statistic(Pareto(1.0, 0.5), 10, 12, method=method) == (
            pytest.approx(66.0, rel=1e-6)
        )
    assert expected_iteration_time("gd", M, S, Pareto(1.0, 1.0)) == math.inf
    assert expected_iteration_time("fastest-k", M, S, Pareto(1.0, 0.3)) == math.inf
    assert math.isfinite(expected_iteration_time("fastest-k", M, S, Pareto(1.0, 0.4)))
    # grouping: min of 3 is Pareto(x_m, 3 beta); its max is infinite iff 3 beta <= 1
    assert expected_iteration_time("grouping", M, S, Pareto(1.0, 1 / 3)) == math.inf
    assert math.isfinite(expected_iteration_time("grouping", M, S, Pareto(1.0, 0.34)))


# ------------------------------------------------------------------ Monte Carlo

N_DRAWS = 200_000
TAU, TAU_B = 0.3, 0.1


def _draws(delay, rng, shape):
    """Independent numpy sampler (delays.py samples with jax)."""
    if isinstance(delay, ShiftedExponential):
        return delay.shift + rng.exponential(1.0 / delay.rate, shape)
    return delay.scale * (1.0 + rng.pareto(delay.shape, shape))  # numpy's is Lomax


def _assert_within_4se(samples, expected):
    samples = np.asarray(samples)
    se = samples.std(ddof=1) / math.sqrt(samples.size)
    assert abs(samples.mean() - expected) < 4 * se, (samples.mean(), expected, se)


@pytest.mark.parametrize("delay", [EXP, PAR3], ids=["exp", "pareto3"])
def test_non_lazy_against_monte_carlo(delay):
    rng = np.random.default_rng(20240521)
    x = _draws(delay, rng, (N_DRAWS, M))
    xs = np.sort(x, axis=1)
    group_first = x.reshape(N_DRAWS, G, S + 1).min(axis=2).max(axis=1)
    sims = {
        "gd": xs[:, -1],
        "fastest-k": xs[:, M - S - 1],
        "gc": (S + 1) * xs[:, M - S - 1],
        "grouping": (S + 1) * group_first,
    }
    for name, compute in sims.items():
        expected = expected_iteration_time(name, M, S, delay, upload_time=TAU, broadcast_time=TAU_B)
        _assert_within_4se(TAU_B + TAU + compute, expected)


@pytest.mark.parametrize("delay", [EXP, PAR3], ids=["exp", "pareto3"])
def test_lazy_against_monte_carlo(delay):
    rng = np.random.default_rng(7)
    x = _draws(delay, rng, (N_DRAWS, M))
    # lag-wk with 5 uploaders: messages of workers 0..4 pay tau, skips do not
    n = 5
    sim = TAU_B + np.maximum((x[:, :n] + TAU).max(1), x[:, n:].max(1))
    c = expected_lazy_iteration_costs(
        "lag-wk", M, S, delay, n, upload_time=TAU, broadcast_time=TAU_B
    )
    _assert_within_4se(sim, c["time"])
    # g-lag-wk with 1 of 4 groups uploading
    first = (S + 1) * x.reshape(N_DRAWS, G, S + 1).min(axis=2)
    sim = TAU_B + np.maximum(first[:, 0] + TAU, first[:, 1:].max(1))
    c = expected_lazy_iteration_costs(
        "g-lag-wk", M, S, delay, 1, upload_time=TAU, broadcast_time=TAU_B
    )
    _assert_within_4se(sim, c["time"])
    # g-lag with 3 selected groups; lag-ps with 7 selected workers
    sim = TAU_B + TAU + first[:, :3].max(1)
    c = expected_lazy_iteration_costs(
        "g-lag", M, S, delay, 3, upload_time=TAU, broadcast_time=TAU_B
    )
    _assert_within_4se(sim, c["time"])
    sim = TAU_B + TAU + x[:, :7].max(1)
    c = expected_lazy_iteration_costs(
        "lag-ps", M, S, delay, 7, upload_time=TAU, broadcast_time=TAU_B
    )
    _assert_within_4se(sim, c["time"])


def test_lagc_and_lagc_ps_times_are_upper_bounds():
    rng = np.random.default_rng(3)
    x = _draws(EXP, rng, (N_DRAWS, M))
    # lagc: 4 of the 12 workers upload (pay tau), first M-S messages counted
    arrival = (S + 1) * x + TAU * (np.arange(M) < 4)
    sim = np.sort(arrival, axis=1)[:, M - S - 1]
    se = sim.std() / math.sqrt(N_DRAWS)
    bound = expected_lazy_iteration_costs("lagc", M, S, EXP, 4, upload_time=TAU)["time"]
    assert sim.mean() < bound + 4 * se
    assert sim.mean() > bound - TAU - 4 * se  # and within tau of it
    # lagc-ps: partitions {0, 5} selected on the cyclic code (worker m holds m..m+S)
    selected = [0, 5]
    held = [{(m + j) % M for j in range(S + 1)} for m in range(M)]
    loads = np.array([len(h & set(selected)) for h in held])
    done = np.where(loads > 0, loads * x + TAU, 0.0)
    sim = np.sort(done, axis=1)[:, M - S - 1]
    se = sim.std() / math.sqrt(N_DRAWS)
    c = expected_lazy_iteration_costs("lagc-ps", M, S, EXP, 2, upload_time=TAU)
    assert sim.mean() < c["time"] + 4 * se
    assert c["computations"] == loads.sum() == 6
    assert c["downloads"] >= (loads > 0).sum()


# ------------------------------------------------------------ lazy reductions


@pytest.mark.parametrize("delay", [EXP, PAR3, PAR15], ids=["exp", "pareto3", "pareto1.5"])
@pytest.mark.parametrize("tau", [0.0, 0.35])
def test_lazy_reduces_to_non_lazy_twin(delay, tau):
    kw = dict(upload_time=tau, broadcast_time=0.2)
    twins = [
        ("lag-ps", M, "gd"),
        ("lag-wk", M, "gd"),
        ("g-lag", G, "grouping"),
        ("g-lag-wk", G, "grouping"),
        ("lagc", M - S, "gc"),
        ("lagc-ps", M, "gc"),
    ]
    for lazy, n, twin in twins:
        got = expected_lazy_iteration_costs(lazy, M, S, delay, n, **kw)
        want = expected_iteration_costs(twin, M, S, delay, **kw)
        assert got.keys() == want.keys()
        assert got["time"] == pytest.approx(want["time"], rel=1e-12), (lazy, twin)
        assert (got["uploads"], got["downloads"], got["computations"]) == (
            want["uploads"],
            want["downloads"],
            want["computations"],
        ), (lazy, twin)


def test_lazy_counts_and_idle_iterations():
    kw = dict(upload_time=0.5, broadcast_time=0.2)
    gd_compute = expected_order_statistic(EXP, M, M)
    c = expected_lazy_iteration_costs("lag-ps", M, S, EXP, 0, **kw)
    assert c == {"time": 0.2, "uploads": 0, "downloads": 0, "computations": 0}
    c = expected_lazy_iteration_costs("lag-wk", M, S, EXP, 0, **kw)
    assert c["time"] == pytest.approx(0.2 + gd_compute, rel=1e-14)
    assert (c["uploads"], c["downloads"], c["computations"]) == (0, 12, 12)
    c = expected_lazy_iteration_costs("g-lag", M, S, EXP, 2, **kw)
    assert (c["uploads"], c["downloads"], c["computations"]) == (2, 6, 18)
    c = expected_lazy_iteration_costs("g-lag-wk", M, S, EXP, 2, **kw)
    assert (c["uploads"], c["downloads"], c["computations"]) == (2, 12, 36)
    c = expected_lazy_iteration_costs("lagc", M, S, EXP, 0, **kw)
    assert c["time"] == pytest.approx(0.2 + 3 * expected_order_statistic(EXP, M - S, M), rel=1e-14)
    assert (c["uploads"], c["downloads"], c["computations"]) == (0, 12, 36)
    # lag-wk time is monotone in the number of uploaders, between its two ends
    times = [
        expected_lazy_iteration_costs("lag-wk", M, S, EXP, n, **kw)["time"] for n in range(M + 1)
    ]
    assert all(np.diff(times) > 0)
    assert times[-1] == pytest.approx(times[0] + 0.5, rel=1e-12)
    # with tau = 0 the uploaders do not matter
    for n in (1, 6, 11):
        t = expected_lazy_iteration_costs("lag-wk", M, S, EXP, n)["time"]
        assert t == pytest.approx(gd_compute, rel=1e-14)


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: expected_iteration_time("sgd", M, S, EXP), "name must be one of.*'gd'"),
        (lambda: expected_lazy_iteration_costs("lag", M, S, EXP, 1), "name must be one of.*lagc"),
        (lambda: expected_iteration_time("gc", M, M, EXP), r"stragglers must be in 0\.\.11"),
        (lambda: expected_iteration_time("gc", M, -1, EXP), "stragglers"),
        (lambda: expected_iteration_time("gd", 0, 0, EXP), "num_workers must be >= 1"),
        (lambda: expected_iteration_time("gd", 2.5, 0, EXP), "num_workers must be an integer"),
        (lambda: expected_iteration_time("grouping", 12, 4, EXP), r"\(stragglers \+ 1\) to divide"),
        (lambda: expected_lazy_iteration_costs("g-lag", 12, 4, EXP, 1), "divide num_workers"),
        (lambda: expected_order_statistic(EXP, 0, 5), r"k must be in 1\.\.5"),
        (lambda: expected_order_statistic(EXP, 6, 5), r"k must be in 1\.\.5"),
        (lambda: expected_order_statistic(EXP, 1, 0), "n must be >= 1"),
        (lambda: expected_min_then_max(EXP, 0, 3), "group_size"),
        (lambda: expected_iteration_time("gd", M, S, EXP, upload_time=-1.0), "upload_time"),
        (lambda: expected_iteration_time("gd", M, S, EXP, broadcast_time=-0.1), "broadcast_time"),
        (lambda: expected_iteration_time("gd", M, S, EXP, upload_time=math.inf), "upload_time"),
        (lambda: expected_iteration_time("gd", M, S, EXP, method="exact"), "method must be one of"),
        (lambda: expected_order_statistic(Uniform(1.0), 1, 2, method="closed"), "method='closed'"),
        (
            lambda: expected_lazy_iteration_costs("lag-wk", M, S, EXP, 13),
            r"num_units_active.*0\.\.12",
        ),
        (
            lambda: expected_lazy_iteration_costs("lagc", M, S, EXP, 11),
            r"num_units_active.*0\.\.10",
        ),
        (lambda: expected_lazy_iteration_costs("g-lag", M, S, EXP, 5), r"num_units_active.*0\.\.4"),
        (lambda: expected_lazy_iteration_costs("lag-ps", M, S, EXP, -1), "num_units_active"),
        (
            lambda: expected_lazy_iteration_costs(
                "lag-wk", M, S, EXP, 3, upload_time=1.0, method="closed"
            ),
            "no closed form",
        ),
        (lambda: expected_iteration_time("gd", M, S, "exp"), "delay must be"),
        (lambda: expected_iteration_time("gd", M, S, ShiftedExponential(rate=0.0)), "rate"),
        (lambda: expected_iteration_time("gd", M, S, Pareto(shape=-1.0)), "shape"),
    ],
)
def test_validation_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
