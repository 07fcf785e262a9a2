"""Approximate gradient coding and deadlines (MODEL.md §10): deadline, erasurehead, sgc and
graph-gc against an independent NumPy reading of §10 on replayed unit times, their
equivalences with exact strategies, sweeps over the deadline, the refusals of bad input,
the analysis against Monte Carlo, and the pieces they are built from.

One small problem (M = 6 workers, S = 1, d = 8) and one set of replayed unit times, so
most programs compile once for the module.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagc_jax as lj
from lagc_jax import analysis, coding
from lagc_jax import strategies as st
from lagc_jax.strategies.contracts import check_strategy

from helpers import count_compilations

M, S, DIM = 6, 1, 8
G = M // (S + 1)  # erasurehead's groups
K, TRIALS = 10, 4  # iterations and trials of the replayed runs
PROBLEM = lj.problems.lag_synthetic(M, dim=DIM)
ALPHA = 1.0 / PROBLEM.smoothness  # the default step size
TAU, TAU_B = 0.25, 0.125  # upload and broadcast times of the replayed runs
_rng = np.random.default_rng(11)
# trial 0 replays integer unit times: ties (broken by worker index) and arrivals at T
TIMES = np.concatenate(
    [_rng.integers(1, 4, (1, K, M)).astype(float), _rng.exponential(size=(TRIALS - 1, K, M)) + 0.1]
)
LINKS = ("parallel", "shared")
# option sets of the replayed runs: deadlines that some arrivals miss, k with erasures
CASES = {
    "deadline": dict(deadline=1.5),
    "erasurehead": dict(k=3),
    "sgc": dict(deadline=3.25, straggle_probability=0.3),
    "graph-gc": dict(degree=2),  # the fixed decoder: with a user encoding, below
}


# --------------------------------------------------------------------------- #
# an independent NumPy reading of MODEL.md §10
# --------------------------------------------------------------------------- #
def partition_grads(theta):
    """(P, d) ∇f_p(θ) = H_p θ − b_p of the least-squares problem."""
    q = PROBLEM.quadratic
    return np.asarray(q.hessians) @ theta - np.asarray(q.linear)


def np_loss(theta):
    X, y = PROBLEM.examples
    residual = X @ theta - y
    return 0.5 * float(np.sum(residual * residual))


def np_arrivals(compute, link):
    """§3: parallel c + τ; shared: one FIFO uplink served in order of completion (ties by
    worker index)."""
    if link == "parallel":
        return compute + TAU
    out, free = np.empty_like(compute), -np.inf
    for m in np.argsort(compute, kind="stable"):
        free = max(free, compute[m]) + TAU
        out[m] = free
    return out


def np_arrivals_all(compute, link):
    """np_arrivals over leading axes."""
    flat = compute.reshape(-1, M)
    return np.stack([np_arrivals(c, link) for c in flat]).reshape(compute.shape)


def fractional_encoding():
    return np.kron(np.eye(G), np.ones((S + 1, S + 1)))


def cyclic_ones():
    B = np.zeros((M, M))
    for m in range(M):
        for j in range(S + 1):
            B[m, (m + j) % M] = 1.0
    return B


def reference_round(name, options, B, grads, unit_times, link):
    """One round of §10 read literally: (ĝ, Δ, uploads, computations)."""
    loads = (B != 0).sum(axis=1)
    messages = B @ grads
    arrivals = np_arrivals(loads * unit_times, link)
    order = np.argsort(arrivals, kind="stable")
    if name == "deadline":
        T = options["deadline"]
        t = max(min(T, arrivals.max()), arrivals.min())
        used = arrivals <= t
        estimate = M / used.sum() * messages[used].sum(axis=0)
        uploads = used.sum()
    elif name == "sgc":
        T, p = options["deadline"], options["straggle_probability"]
        t = min(T, arrivals.max())
        used = arrivals <= T
        estimate = messages[used].sum(axis=0) / ((S + 1) * (1 - p))
        uploads = used.sum()
    elif name == "erasurehead":
        taken, covered, t = 0, {}, 0.0
        for m in order:  # until k workers have arrived or every group has one
            if taken == options["k"] or len(covered) == G:
                break
            taken, t = taken + 1, arrivals[m]
            covered.setdefault(m // (S + 1), m)
        estimate = sum(messages[m] for m in covered.values())  # the covered groups' sums
        uploads = len(covered)
    else:  # graph-gc
        finished = order[: M - S]
        t = arrivals[order[M - S - 1]]
        if options.get("decoder", "optimal") == "optimal":
            weights = np.linalg.lstsq(B[finished].T, np.ones(B.shape[1]), rcond=None)[0]
        else:
            weights = np.full(M - S, M / (M - S))
        estimate = weights @ messages[finished]
        uploads = M - S
    return estimate, TAU_B + t, uploads, loads.sum()


def reference_run(name, options, B, link):
    """TRIALS replayed runs of K rounds from θ = 0 with step 1/L."""
    shape = (TRIALS, K)
    duration, uploads, computations, eta = (np.empty(shape) for _ in range(4))
    loss = np.empty((TRIALS, K + 1))
    for trial in range(TRIALS):
        theta = np.zeros(DIM)
        for k in range(K):
            grads = partition_grads(theta)
            estimate, duration[trial, k], uploads[trial, k], computations[trial, k] = (
                reference_round(name, options, B, grads, TIMES[trial, k], link)
            )
            full = grads.sum(axis=0)
            eta[trial, k] = np.sum((estimate - full) ** 2) / np.sum(full**2)
            loss[trial, k] = np_loss(theta)
            theta = theta - ALPHA * estimate
        loss[trial, K] = np_loss(theta)

    def cumulative(values):
        return np.concatenate([np.zeros((TRIALS, 1)), np.cumsum(values, axis=1)], axis=1)

    return dict(
        loss=loss,
        wall_clock=cumulative(duration),
        uploads=cumulative(uploads),
        downloads=cumulative(np.full(shape, M)),
        computations=cumulative(computations),
        grad_error=eta,
    )


def replayed(strategy, link):
    return lj.simulate(
        PROBLEM,
        strategy,
        num_iters=K,
        num_trials=TRIALS,
        unit_times=TIMES,
        upload_time=TAU,
        broadcast_time=TAU_B,
        link=link,
        record=("grad_error",),
    )


def assert_matches_reference(result, expected, link):
    """Counts exactly; wall clock exactly on the parallel link (the same additions), to
    rounding on the shared one (the FIFO's closed form); losses to rounding; η to 1e-9."""
    for field in ("uploads", "downloads", "computations"):
        np.testing.assert_array_equal(getattr(result, field), expected[field], err_msg=field)
    if link == "parallel":
        np.testing.assert_array_equal(result.wall_clock, expected["wall_clock"])
    else:
        np.testing.assert_allclose(result.wall_clock, expected["wall_clock"], rtol=1e-14)
    np.testing.assert_allclose(result.loss, expected["loss"], rtol=1e-11)
    np.testing.assert_allclose(
        result.grad_error[:, 1:], expected["grad_error"], rtol=1e-9, atol=1e-24
    )


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("name", list(CASES))
def test_matches_a_numpy_reading_of_section_10(name, link):
    strategy = lj.make(name, M, S, **CASES[name])
    B = {
        "deadline": np.eye(M),
        "erasurehead": fractional_encoding(),
        "sgc": cyclic_ones(),
        "graph-gc": strategy.encoding,
    }[name]
    if name == "graph-gc":  # B = A/s of a 2-regular graph on the M workers
        assert set(np.unique(B)) == {0.0, 0.5} and (B.sum(axis=0) == 1).all()
    expected = reference_run(name, CASES[name], B, link)
    result = replayed(strategy, link)
    assert_matches_reference(result, expected, link)
    eta = expected["grad_error"]
    assert eta.max() > 1e-3  # the estimates are approximate: η visibly > 0 in some round
    if name in ("deadline", "sgc", "erasurehead"):  # and some rounds waited for fewer
        per_round = np.diff(expected["uploads"], axis=1)
        assert per_round.min() < (G if name == "erasurehead" else M)


@pytest.mark.parametrize("link", LINKS)
def test_graph_gc_with_a_user_encoding_matches_the_reference(link):
    """Any B (M × P), both decoders: a cyclic support with random weights (not decodable)."""
    B = cyclic_ones() * np.random.default_rng(3).uniform(0.5, 1.5, (M, M))
    for decoder in ("optimal", "fixed"):
        strategy = lj.make("graph-gc", M, S, encoding=B, decoder=decoder)
        expected = reference_run("graph-gc", dict(decoder=decoder), B, link)
        assert_matches_reference(replayed(strategy, link), expected, link)


# --------------------------------------------------------------------------- #
# equivalences (MODEL.md §10)
# --------------------------------------------------------------------------- #
def assert_same_counts_and_clock(a, b, loss_rtol):
    for field in ("uploads", "downloads", "computations", "wall_clock"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    np.testing.assert_allclose(a.loss, b.loss, rtol=loss_rtol)


@pytest.mark.parametrize(
    # slow: k = M, covered before the M − S boundary is (k is static: a program per k)
    "k",
    [pytest.param(M, marks=pytest.mark.slow), M - S],
    ids=["k=M", "k=M-S"],
)
@pytest.mark.parametrize("link", LINKS)
def test_erasurehead_with_k_at_least_m_minus_s_is_grouping(link, k):
    """Any k ≥ M − S (every group is covered by then: pigeonhole), k = M − S the default."""
    grouping = replayed(lj.make("grouping", M, S), link)
    assert_same_counts_and_clock(
        replayed(lj.make("erasurehead", M, S, k=k), link), grouping, loss_rtol=0
    )
    assert np.nanmax(grouping.grad_error) < 1e-20


@pytest.mark.parametrize("link", LINKS)
def test_no_deadline_is_gd(link):
    """deadline with T = ∞ is gd; sgc with T = ∞ and p = 0 has gd's iterates (ĝ =
    Σ_m g_m/(S+1) = ∇f), at the time of the slowest load-(S+1) worker."""
    gd = replayed(lj.make("gd", M), link)
    no_deadline = replayed(lj.make("deadline", M, S, deadline=math.inf), link)
    assert_same_counts_and_clock(no_deadline, gd, loss_rtol=1e-12)
    sgc = replayed(lj.make("sgc", M, S), link)
    np.testing.assert_allclose(sgc.loss, gd.loss, rtol=1e-12)
    for exact in (gd, no_deadline, sgc):
        assert np.nanmax(exact.grad_error) < 1e-20
    slowest = np.max(np_arrivals_all((S + 1) * TIMES, link), axis=-1)
    np.testing.assert_allclose(np.diff(sgc.wall_clock, axis=1), TAU_B + slowest, rtol=1e-14)


@pytest.mark.parametrize("link", LINKS)
def test_graph_gc_with_the_cyclic_code_and_optimal_decoder_is_gc(link):
    gc = replayed(lj.make("gc", M, S), link)
    coded = replayed(lj.make("graph-gc", M, S, encoding=coding.cyclic_repetition(M, S)), link)
    assert_same_counts_and_clock(coded, gc, loss_rtol=1e-13)
    assert np.nanmax(coded.grad_error) < 1e-20


def test_a_hard_deadline_before_every_arrival_uses_nothing():
    """sgc with T below every arrival: no message arrives by T, so each round lasts τ_b + T,
    uses no upload and leaves θ where it is (§10: F is empty, ĝ = 0). The contract check
    accepts it because the rule says it may use no message."""
    strategy = lj.make("sgc", M, S, deadline=0.05, straggle_probability=0.5)
    assert strategy.wait.may_use_no_message and not lj.make("deadline", M).wait.may_use_no_message
    result = replayed(strategy, "parallel")
    np.testing.assert_array_equal(result.uploads, 0)
    np.testing.assert_array_equal(result.loss, result.loss[:, :1] * np.ones((1, K + 1)))
    np.testing.assert_allclose(result.wall_clock[:, -1], K * (TAU_B + 0.05), rtol=1e-14)


# --------------------------------------------------------------------------- #
# sweeps over the deadline and p compile once
# --------------------------------------------------------------------------- #
def test_sweeps_over_deadline_and_p_compile_once_and_equal_separate_runs():
    def points(deadlines, probabilities):
        return [
            lj.make("sgc", M, S, deadline=T, straggle_probability=p)
            for T, p in zip(deadlines, probabilities)
        ]

    kw = dict(
        num_iters=K,
        num_trials=TRIALS,
        unit_times=TIMES,
        upload_time=TAU,
        broadcast_time=TAU_B,
        record=("grad_error",),  # the separate run: test_matches_a_numpy_reading_...'s program
    )
    first = lj.sweep(PROBLEM, points([2.0, 3.25, math.inf], [0.4, 0.3, 0.0]), **kw)
    with count_compilations() as compiled:
        again = lj.sweep(PROBLEM, points([1.0, 2.5, 6.0], [0.6, 0.35, 0.05]), **kw)
    assert compiled == []
    replayed(lj.make("deadline", M, deadline=2.0), "parallel")
    with count_compilations() as compiled:
        replayed(lj.make("deadline", M, deadline=0.7), "parallel")
    assert compiled == []
    separate = lj.simulate(PROBLEM, points([3.25], [0.3])[0], **kw)
    for field in ("uploads", "computations", "wall_clock"):
        np.testing.assert_array_equal(getattr(first[1], field), getattr(separate, field))
    np.testing.assert_allclose(first[1].loss, separate.loss, rtol=1e-12)
    assert not np.array_equal(again[0].uploads, first[0].uploads)


# --------------------------------------------------------------------------- #
# bad input: a ValueError naming the parameter, before anything compiles
# --------------------------------------------------------------------------- #
BAD_OPTIONS = [
    ("deadline", M, S, dict(deadline=0.0), r"deadline must be a number > 0"),
    ("deadline", M, S, dict(deadline=-1.0), r"deadline must be a number > 0"),
    ("deadline", M, S, dict(deadline=math.nan), r"deadline must be a number > 0"),
    ("deadline", M, S, dict(deadline="2"), r"deadline must be a number > 0"),
    ("deadline", M, S, dict(deadline=True), r"deadline must be a number > 0"),
    ("sgc", M, S, dict(deadline=0.0, straggle_probability=0.1), r"deadline must be"),
    ("sgc", M, S, dict(deadline=2.0), r"straggle_probability is required with a finite dead"),
    (
        "sgc",
        M,
        S,
        dict(deadline=2.0, straggle_probability=1.0),
        r"straggle_probability must be "
        r"a number in \[0, 1\), got 1.0",
    ),
    ("sgc", M, S, dict(deadline=2.0, straggle_probability=-0.1), r"in \[0, 1\), got -0.1"),
    ("sgc", M, S, dict(deadline=2.0, straggle_probability=math.nan), r"in \[0, 1\), got nan"),
    ("erasurehead", M, S, dict(k=0), r"k must be an integer in \[1, num_workers = 6\], got 0"),
    ("erasurehead", M, S, dict(k=M + 1), r"k must be an integer in \[1, num_workers = 6\]"),
    ("erasurehead", M, S, dict(k=2.5), r"k must be an integer in \[1, num_workers = 6\]"),
    ("erasurehead", 5, 1, {}, r"stragglers \+ 1 = 2 does not divide num_workers = 5"),
    ("graph-gc", M, S, dict(degree=0), r"degree must be an integer in \[1, num_workers - 1 = 5\]"),
    ("graph-gc", M, S, dict(degree=M), r"degree must be an integer in \[1, num_workers - 1 = 5\]"),
    ("graph-gc", 5, 2, {}, r"degree: no 3-regular graph on 5 nodes exists"),
    ("graph-gc", M, S, dict(decoder="median"), r"decoder must be one of \('optimal', 'fixed'\)"),
    ("graph-gc", M, S, dict(seed=-1), r"seed must be an integer >= 0"),
    ("graph-gc", M, S, dict(encoding=np.eye(M), degree=2), r"either encoding or the random"),
    ("graph-gc", M, S, dict(encoding=np.eye(M + 1)), r"encoding must be a \(6, P\) matrix"),
    ("graph-gc", M, S, dict(encoding=np.zeros((M, M))), r"every partition must be stored"),
]


@pytest.mark.parametrize("name, workers, stragglers, options, message", BAD_OPTIONS)
def test_bad_options_are_refused_by_name_before_compiling(
    name, workers, stragglers, options, message
):
    with count_compilations() as compiled, pytest.raises(ValueError, match=message):
        lj.make(name, workers, stragglers, **options)
    assert compiled == []


def test_bad_analysis_arguments_are_refused_by_name():
    delay = lj.ShiftedExponential()
    cases = [
        (lambda: analysis.straggle_probability(delay, 0.0), r"deadline must be a number > 0"),
        (lambda: analysis.straggle_probability(delay, 1.0, load=0), r"load must be a finite"),
        (lambda: analysis.straggle_probability(delay, 1.0, upload_time=-1.0), r"upload_time"),
        (lambda: analysis.straggle_probability(object(), 1.0), r"delay must be a delay model"),
        (
            lambda: analysis.expected_approximate_iteration_costs("gc", M, S, delay),
            r"name must be one of \('deadline', 'erasurehead', 'sgc', 'graph-gc'\)",
        ),
        (
            lambda: analysis.expected_approximate_iteration_costs("deadline", M, S, delay, k=2),
            r"option 'k' does not apply to 'deadline' \(valid: deadline\)",
        ),
        (
            lambda: analysis.expected_approximate_iteration_costs("erasurehead", M, S, delay, k=0),
            r"k must be in 1\.\.6, got 0",
        ),
        (
            lambda: analysis.expected_approximate_iteration_costs("erasurehead", 5, 1, delay),
            r"erasurehead needs \(stragglers \+ 1\) to divide num_workers",
        ),
        (
            lambda: analysis.expected_approximate_iteration_costs("graph-gc", 5, 2, delay),
            r"degree: no 3-regular graph on 5 nodes",
        ),
        (
            lambda: analysis.expected_approximate_iteration_costs(
                "sgc", M, S, delay, deadline=-2.0
            ),
            r"deadline must be a number > 0",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()


# --------------------------------------------------------------------------- #
# the analysis against Monte Carlo (MODEL.md §7 and §10)
# --------------------------------------------------------------------------- #
MC_CASES = [
    ("deadline", dict(deadline=1.2), lj.ShiftedExponential(shift=0.1, rate=1.0)),
    ("deadline", dict(deadline=0.3), lj.Weibull(scale=1.0, shape=1.5)),  # T before most arrive
    ("erasurehead", dict(k=3), lj.Weibull(scale=1.0, shape=1.5)),
    ("sgc", dict(deadline=3.0), lj.Pareto(scale=0.5, shape=3.0)),
    ("graph-gc", dict(degree=3), lj.LogNormal(mu=0.0, sigma=0.5)),
]


@pytest.mark.parametrize("name, options, delay", MC_CASES)
def test_analysis_matches_monte_carlo(name, options, delay):
    """Mean round time and uploads of 6000 simulated rounds (parallel link, τ, τ_b and a
    latency) against expected_approximate_iteration_costs, within 4 standard errors."""
    link = dict(upload_time=0.2, broadcast_time=0.1, latency=0.05)
    make_options = dict(options)
    if name == "sgc":
        make_options["straggle_probability"] = analysis.straggle_probability(
            delay, options["deadline"], load=S + 1, upload_time=0.2, latency=0.05
        )
    expected = analysis.expected_approximate_iteration_costs(name, M, S, delay, **options, **link)
    result = lj.simulate(
        PROBLEM,
        lj.make(name, M, S, **make_options),
        delay,
        num_iters=4,
        num_trials=1500,
        seed=2,
        **link,
    )
    for quantity, series in (("time", result.wall_clock), ("uploads", result.uploads)):
        per_round = np.diff(series, axis=1).ravel()
        error = per_round.std(ddof=1) / math.sqrt(per_round.size)
        assert abs(per_round.mean() - expected[quantity]) <= 4 * error + 1e-12, (
            quantity,
            per_round.mean(),
            expected[quantity],
            error,
        )
    assert np.diff(result.computations, axis=1).mean() == expected["computations"]
    assert np.diff(result.downloads, axis=1).mean() == expected["downloads"]


def test_analysis_reduces_to_the_exact_strategies():
    """T = ∞ is gd; erasurehead with k ≥ M − S is grouping; graph-gc is gc at load s; sgc
    with T = ∞ waits for the slowest load-(S+1) worker; a deadline before every arrival
    is T plus the wait for the first."""
    delay, m, s = lj.ShiftedExponential(rate=1.0), 12, 2
    kw = dict(upload_time=0.3, broadcast_time=0.2)
    costs = analysis.expected_approximate_iteration_costs
    np.testing.assert_allclose(
        costs("deadline", m, s, delay, **kw)["time"],
        analysis.expected_iteration_time("gd", m, s, delay, **kw),
        rtol=1e-12,
    )
    grouping = analysis.expected_iteration_time("grouping", m, s, delay, **kw)
    for k in (m - s, m):
        c = costs("erasurehead", m, s, delay, k=k, **kw)
        np.testing.assert_allclose(c["time"], grouping, rtol=1e-9)
        assert c["uploads"] == m // (s + 1)
    np.testing.assert_allclose(
        costs("graph-gc", m, s, delay, **kw)["time"],
        analysis.expected_iteration_time("gc", m, s, delay, **kw),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        costs("sgc", m, s, delay, **kw)["time"],
        0.5 + 3 * analysis.expected_order_statistic(delay, m, m),
        rtol=1e-12,
    )
    early = costs("deadline", m, s, delay, deadline=0.1, **kw)  # T < τ: nothing by T
    np.testing.assert_allclose(early["time"], 0.2 + 0.3 + 1 / m, rtol=1e-9)
    np.testing.assert_allclose(early["uploads"], 1.0)
    # closed form: exponential unit times, deadline T > τ: ∫ survival of the max and min
    T, mu = 1.7, 1.0
    x = np.linspace(0.0, T - 0.3, 200_001)
    max_part = 0.3 + np.trapezoid(1 - (1 - np.exp(-mu * x)) ** m, x)
    min_part = np.exp(-m * mu * (T - 0.3)) / (m * mu)
    np.testing.assert_allclose(
        costs("deadline", m, s, delay, deadline=T, **kw)["time"],
        0.2 + max_part + min_part,
        rtol=1e-8,
    )


def test_straggle_probability_is_the_survival_at_the_slack():
    delay = lj.Weibull(scale=2.0, shape=0.7)
    p = analysis.straggle_probability(delay, 5.0, load=3, upload_time=0.4, latency=0.1)
    np.testing.assert_allclose(p, float(delay.sf(np.array(1.5))), rtol=1e-12)
    assert analysis.straggle_probability(delay, math.inf, load=3) == 0.0
    assert analysis.straggle_probability(delay, 0.3, upload_time=0.4) == 1.0


# --------------------------------------------------------------------------- #
# the estimates' means: sgc with the true p and graph-gc's fixed decoder are unbiased
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", ["sgc", "graph-gc"])
def test_unbiased_estimates(name):
    """E[ĝ] = ∇f at a fixed θ, over 20000 rounds of i.i.d. unit times, each coordinate
    within 4.5 standard errors: sgc with p = P(miss T), and graph-gc's fixed decoder on
    B = A/s (the first M − S are a uniformly random set, and B's columns sum to 1)."""
    delay = lj.ShiftedExponential(rate=1.0)
    options = dict(CASES[name])
    if name == "sgc":
        options["straggle_probability"] = analysis.straggle_probability(
            delay, options["deadline"], load=S + 1, upload_time=TAU
        )
    else:
        options["decoder"] = "fixed"
    strategy = lj.make(name, M, S, **options)
    theta = jnp.asarray(np.random.default_rng(0).standard_normal(DIM))
    grads = jnp.asarray(partition_grads(np.asarray(theta)))
    knobs = st.Knobs(jnp.float64(ALPHA), lj.timing.Link(jnp.float64(TAU)))
    state = strategy.init(theta, lambda mask: 1.0)
    times = jnp.asarray(np.random.default_rng(1).exponential(size=(20_000, M)))
    step = jax.jit(
        jax.vmap(lambda x: strategy.step(state, st.Round(theta, grads, x, jnp.int32(0)), knobs)[0])
    )
    estimates = np.asarray(step(times))
    error = estimates.std(axis=0, ddof=1) / math.sqrt(len(estimates))
    full = np.asarray(grads).sum(axis=0)
    assert np.all(np.abs(estimates.mean(axis=0) - full) <= 4.5 * error)
    eta = np.sum((estimates - full) ** 2, axis=1) / np.sum(full**2)
    assert eta.mean() > 1e-3  # each estimate is visibly approximate: a real test


# --------------------------------------------------------------------------- #
# pieces: the random regular graph, the least-squares decoder, the wait rules
# --------------------------------------------------------------------------- #
def _pairing_model_graph(num_nodes, degree, rng):
    """A uniformly random simple regular graph: the configuration model, rejecting loops
    and double edges (an exactly uniform reference for the swap construction)."""
    while True:
        stubs = rng.permutation(np.repeat(np.arange(num_nodes), degree)).reshape(-1, 2)
        A = np.zeros((num_nodes, num_nodes))
        np.add.at(A, (stubs[:, 0], stubs[:, 1]), 1)
        A = A + A.T
        if np.all(np.diag(A) == 0) and A.max() == 1:
            return A


def test_random_regular_graph_is_regular_seeded_and_uniform_like_the_pairing_model():
    A = coding.random_regular_graph(12, 3, seed=5)
    assert (A == A.T).all() and np.all(np.diag(A) == 0) and set(np.unique(A)) == {0.0, 1.0}
    assert (A.sum(axis=0) == 3).all()
    np.testing.assert_array_equal(A, coding.random_regular_graph(12, 3, seed=5))
    assert not np.array_equal(A, coding.random_regular_graph(12, 3, seed=6))
    assert coding.random_regular_graph(7, 6, seed=0).sum() == 42  # the complete graph
    # triangles per graph (a statistic the swaps must randomise), 300 graphs each
    rng = np.random.default_rng(0)
    ours = (
        np.array(
            [
                np.trace(np.linalg.matrix_power(coding.random_regular_graph(12, 3, seed), 3))
                for seed in range(300)
            ]
        )
        / 6
    )
    uniform = (
        np.array(
            [
                np.trace(np.linalg.matrix_power(_pairing_model_graph(12, 3, rng), 3))
                for _ in range(300)
            ]
        )
        / 6
    )
    error = math.hypot(ours.std(ddof=1), uniform.std(ddof=1)) / math.sqrt(300)
    assert abs(ours.mean() - uniform.mean()) <= 4 * error


def test_least_squares_table_is_the_min_norm_least_squares_decoder():
    exact = coding.cyclic_repetition(M, S)
    np.testing.assert_array_equal(
        coding.least_squares_table(exact, S), coding.decoding_table(exact, S)
    )
    B = coding.random_regular_graph(M, 2, seed=4) / 2
    table = coding.least_squares_table(B, 2)
    for row, stragglers in zip(table, [(a, b) for b in range(M) for a in range(b)]):
        finished = [m for m in range(M) if m not in stragglers]
        expected = np.zeros(M)
        expected[finished] = np.linalg.lstsq(B[finished].T, np.ones(M), rcond=None)[0]
        np.testing.assert_allclose(row, expected, atol=1e-12)
    assert np.abs(table @ B - 1).max() > 0.1  # an approximate code


def test_erasurehead_wait_takes_arrivals_in_order_with_ties_by_index():
    rule = st.FirstKOrEveryGroup(group_size=2, k=3, num_workers=6)
    everyone = jnp.ones(6, bool)
    # arrivals 1, 1, 1 (workers 0, 1, 2, tied) then others: the first k = 3 by index
    used, t = rule(jnp.array([1.0, 1.0, 1.0, 2.0, 2.0, 0.5]), everyone)
    # order: 5 (group 2), 0 (group 0), 1 (group 0 again): k = 3 reached, group 1 erased
    assert used.tolist() == [True, False, False, False, False, True] and float(t) == 1.0
    # every group covered before k arrivals: stop there
    used, t = rule(jnp.array([0.1, 3.0, 0.2, 3.0, 0.3, 3.0]), everyone)
    assert used.tolist() == [True, False, True, False, True, False] and float(t) == 0.3


def test_pieces_pass_the_contract_checks():
    theta = jnp.zeros(DIM)
    for piece_strategy in (
        st.Strategy(
            st.placement.identity(M),
            st.NoTrigger(),
            st.Deadline(1.0),
            st.RescaledSum(),
            name="my-deadline",
        ),
        st.Strategy(
            st.placement.identity(M),
            st.NoTrigger(),
            st.Deadline(0.01, wait_for_first=False),
            st.UnbiasedSum(0.5, 1),
            name="hard-deadline",
        ),
        st.Strategy(
            st.placement.cyclic(M, S),
            st.NoTrigger(),
            st.FirstK(M - S),
            st.LeastSquaresDecode.for_code(coding.cyclic_repetition(M, S), S),
            name="least-squares-gc",
        ),
    ):
        check_strategy(piece_strategy, theta0=theta, num_partitions=M)
    with pytest.raises(ValueError, match="uses no message when all 6 workers participate"):
        check_strategy(
            st.Strategy(
                st.placement.identity(M),
                st.NoTrigger(),
                st.WaitFunction(lambda a, p: (a < 0.01, jnp.float64(0.01))),
                st.RescaledSum(),
                name="silent",
            ),
            theta0=theta,
            num_partitions=M,
        )
