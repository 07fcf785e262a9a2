"""Engine: time model and accounting by hand, closed forms, equivalences, determinism, caching."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagc_jax as lj
from lagc_jax import engine, strategies
from lagc_jax.problems import lag_synthetic, linear_regression

from helpers import COUNTS, SMALL_PROBLEM, SMALL_RUN, assert_same_run, drawn_unit_times

EXP = lj.ShiftedExponential(rate=1.0)


def tiny_problem(num_partitions, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    return linear_regression(
        rng.standard_normal((num_partitions, 4, dim)), rng.standard_normal((num_partitions, 4))
    )


def replay(name, M, S, times, link, tau=0.5, tau_b=0.25, **options):
    times = np.asarray(times, float)[None]  # one trial
    return lj.simulate(
        tiny_problem(M),
        strategies.make(name, M, S, **options),
        None,
        num_iters=times.shape[1],
        num_trials=1,
        unit_times=times,
        upload_time=tau,
        broadcast_time=tau_b,
        link=link,
    )


# --------------------------------------------------------------------------- #
# hand-computed rounds (MODEL.md §3-4), at the level of a strategy's step (the engine sums
# rounds: test_slowdown_multiplies_unit_times and every run against a NumPy reference)
# --------------------------------------------------------------------------- #
STEP = jax.jit(lambda strategy, state, round_, knobs: strategy.step(state, round_, knobs))


def rounds(name, M, S, times, link, tau=0.5, tau_b=0.25):
    """One round per row of ``times`` (unit times of the M workers), stepped from the
    strategy's initial state: [(Δ, uploads, downloads, computations)] of each."""
    problem, strategy = tiny_problem(M), strategies.make(name, M, S)
    theta = jnp.zeros(problem.dim)
    grads = jnp.asarray(problem.quadratic.hessians @ np.ones(problem.dim))  # any gradients
    state = strategy.init(theta, problem.union_smoothness)
    knobs = strategies.Knobs(
        jnp.float64(1.0 / problem.smoothness),
        lj.timing.Link(jnp.float64(tau), jnp.float64(tau_b), kind=link),
    )
    out = []
    for k, x in enumerate(np.asarray(times, float)):
        _, state, stats = STEP(strategy, state, strategies.Round(theta, grads, x, k), knobs)
        out.append((float(stats.duration), *(int(getattr(stats, c)) for c in COUNTS)))
    return out


# unit times [1, 1.2, 1.1]; τ = 0.5, τ_b = 0.25.
# parallel: arrivals 1.5, 1.7, 1.6.
# shared FIFO in completion order w0, w2, w1: 1.5, max(1.1, 1.5)+.5 = 2.0, max(1.2, 2.0)+.5 = 2.5.
@pytest.mark.parametrize(
    "link, gd_wait, fastest_wait",
    [
        ("parallel", 1.7, 1.6),
        ("shared", 2.5, 2.0),
    ],
)
def test_hand_computed_gd_and_fastest_k(link, gd_wait, fastest_wait):
    times = [[1.0, 1.2, 1.1], [1.0, 1.2, 1.1]]
    for got in rounds("gd", 3, 0, times, link):
        np.testing.assert_allclose(got, [gd_wait + 0.25, 3, 3, 3], rtol=1e-12)
    for got in rounds("fastest-k", 3, 1, times, link):
        np.testing.assert_allclose(got, [fastest_wait + 0.25, 2, 3, 3], rtol=1e-12)


# gc, M = 3, S = 1: load 2, compute 2, 2.4, 2.2; waits for the 2nd arrival.
# parallel: 2.5, 2.9, 2.7 -> 2.7.  shared: w0 2.5, w2 max(2.2, 2.5)+.5 = 3.0 -> 3.0.
@pytest.mark.parametrize("link, wait", [("parallel", 2.7), ("shared", 3.0)])
def test_hand_computed_gc(link, wait):
    (got,) = rounds("gc", 3, 1, [[1.0, 1.2, 1.1]], link)
    np.testing.assert_allclose(got, [wait + 0.25, 2, 3, 6], rtol=1e-12)


# grouping, M = 4, S = 1: groups {0,1}, {2,3}; load 2: compute 2, 2.4, 2.2, 0.6.
# parallel arrivals 2.5, 2.9, 2.7, 1.1 -> max(min(2.5, 2.9), min(2.7, 1.1)) = 2.5.
# shared, order w3, w0, w2, w1: 1.1, 2.5, 3.0, 3.5 -> max(2.5, 1.1) = 2.5.
# With τ = 2: parallel 4, 4.4, 4.2, 2.6 -> 4.0; shared 2.6, 4.6, 6.6, 8.6 -> max(4.6, 2.6) = 4.6.
@pytest.mark.parametrize(
    "link, tau, wait",
    [("parallel", 0.5, 2.5), ("shared", 0.5, 2.5), ("parallel", 2.0, 4.0), ("shared", 2.0, 4.6)],
)
def test_hand_computed_grouping(link, tau, wait):
    (got,) = rounds("grouping", 4, 1, [[1.0, 1.2, 1.1, 0.3]], link, tau=tau)
    np.testing.assert_allclose(got, [wait + 0.25, 2, 4, 8], rtol=1e-12)


def test_slowdown_multiplies_unit_times():
    times = np.ones((1, 2, 3))
    base = replay("gd", 3, 0, times[0], "parallel", tau=0.0, tau_b=0.0)
    slow = lj.simulate(
        tiny_problem(3),
        strategies.make("gd", 3),
        None,
        num_iters=2,
        num_trials=1,
        unit_times=times,
        slowdown=[1.0, 5.0, 2.0],
    )
    np.testing.assert_allclose(base.wall_clock[0], [0, 1, 2])
    np.testing.assert_allclose(slow.wall_clock[0], [0, 5, 10])


# --------------------------------------------------------------------------- #
# closed forms (MODEL.md §7)
# --------------------------------------------------------------------------- #
def harmonic(n):
    return sum(1.0 / i for i in range(1, n + 1))


def exp_order(k, n, rate=1.0, shift=0.0):
    return shift + (harmonic(n) - harmonic(n - k)) / rate


def pareto_order(k, n, scale, shape):
    lg = math.lgamma
    return scale * math.exp(
        lg(n + 1) + lg(n - k + 1 - 1 / shape) - lg(n - k + 1) - lg(n + 1 - 1 / shape)
    )


M, S = 12, 2
SHAPE = 2.5  # Pareto with a finite variance for every order statistic used here
CLOSED_FORMS = {
    ("gd", "exp"): exp_order(M, M, 1.0, 0.2),
    ("fastest-k", "exp"): exp_order(M - S, M, 1.0, 0.2),
    ("gc", "exp"): (S + 1) * exp_order(M - S, M, 1.0, 0.2),
    # min of S+1 shifted exponentials: shift + Exp((S+1)μ); max over G = 4 groups.
    ("grouping", "exp"): (S + 1) * exp_order(4, 4, (S + 1) * 1.0, 0.2),
    ("gd", "pareto"): pareto_order(M, M, 1.0, SHAPE),
    ("fastest-k", "pareto"): pareto_order(M - S, M, 1.0, SHAPE),
    ("gc", "pareto"): (S + 1) * pareto_order(M - S, M, 1.0, SHAPE),
    ("grouping", "pareto"): (S + 1) * pareto_order(4, 4, 1.0, (S + 1) * SHAPE),
}


def test_model_example_numbers():
    # MODEL.md §7: M = 12, S = 2, exponential μ = 1: gd 3.103, gc 4.810, grouping 2.083.
    assert exp_order(12, 12) == pytest.approx(3.103, abs=5e-4)
    assert 3 * exp_order(10, 12) == pytest.approx(4.810, abs=5e-4)
    assert 3 * exp_order(4, 4, 3.0) == pytest.approx(2.083, abs=5e-4)


@pytest.mark.parametrize("name, dist", sorted(CLOSED_FORMS))
def test_mean_iteration_time_matches_closed_form(name, dist):
    """On i.i.d. unit times drawn by NumPy and replayed: one program per strategy for both
    laws (the engine's own draws of these laws are checked by
    test_kernels.py::test_sample_unit_times_jit_vmap_and_moments)."""
    rng = np.random.default_rng(3)
    if dist == "exp":
        times = 0.2 + rng.exponential(size=(400, 50, M))
    else:  # Pareto(1, κ) = U^(-1/κ)
        times = (1.0 - rng.random(size=(400, 50, M))) ** (-1 / SHAPE)
    r = lj.simulate(
        lag_synthetic(M, dim=M),
        strategies.make(name, M, S),
        None,
        num_iters=50,
        num_trials=400,
        unit_times=times,
    )
    durations = np.diff(r.wall_clock, axis=1).ravel()  # 20,000 i.i.d. iteration times
    expected = CLOSED_FORMS[(name, dist)]
    standard_error = durations.std(ddof=1) / math.sqrt(durations.size)
    assert abs(durations.mean() - expected) < 4 * standard_error, (durations.mean(), expected)


# --------------------------------------------------------------------------- #
# equivalences, determinism, chunking, caching
# --------------------------------------------------------------------------- #
def run(name, M_, S_, problem=None, **kwargs):
    """A drawn run of the modules' shared small sizes (helpers.SMALL_RUN, d = 10), 24
    iterations unless told: any multiple of 8 uses the same program."""
    problem = problem or lag_synthetic(M_, dim=10)
    kwargs = {"num_iters": 24, "upload_time": 0.3, **SMALL_RUN, **kwargs}
    options = kwargs.pop("options", {})
    return lj.simulate(problem, strategies.make(name, M_, S_, **options), EXP, **kwargs)


@pytest.mark.parametrize("link", ["parallel", "shared"])
def test_zero_stragglers_gc_and_grouping_equal_gd(link):
    gd = run("gd", 6, 0, link=link)
    assert_same_run(run("gc", 6, 0, link=link), gd)
    assert_same_run(run("grouping", 6, 0, link=link), gd)


def test_same_seed_same_result_different_seed_different_delays():
    a, b, c = run("gc", 6, 1, seed=7), run("gc", 6, 1, seed=7), run("gc", 6, 1, seed=8)
    assert_same_run(a, b)
    assert not np.array_equal(a.wall_clock, c.wall_clock)
    # trials within a run see different delays too
    assert len(np.unique(a.wall_clock[:, -1])) == a.num_trials


def test_common_random_numbers_across_strategies():
    # gd and fastest-k with S = 0 wait for the same (last) arrival on the same draws.
    np.testing.assert_array_equal(run("gd", 6, 0).wall_clock, run("fastest-k", 6, 0).wall_clock)
    # gc waits for order statistic M-S of the *same* unit times scaled by load S+1.
    gc, fk = run("gc", 6, 1, upload_time=0.0), run("fastest-k", 6, 1, upload_time=0.0)
    np.testing.assert_allclose(gc.wall_clock, 2 * fk.wall_clock, rtol=1e-12)


@pytest.mark.parametrize(
    "name",
    [
        # slow: their chunks of record_every = 1 are checked for every strategy by
        # test_strategy_battery.py::test_simulate_is_deterministic_chunking_invariant_...
        pytest.param("gc", marks=pytest.mark.slow),
        "lagc",
        pytest.param("g-lag", marks=pytest.mark.slow),
        pytest.param("lag-wk", marks=pytest.mark.slow),
    ],
)
def test_chunked_equals_unchunked(name):
    """Chunks of one record block, of two, and uneven ones (10, 10, 4): four programs."""
    whole = run(name, 6, 1, record_every=2, chunk_size=None)
    for chunk in (2, 4, 10):
        assert_same_run(whole, run(name, 6, 1, record_every=2, chunk_size=chunk))


def test_record_every_thins_records():
    full = run("gc", 6, 1)
    thin = run("gc", 6, 1, record_every=2)
    np.testing.assert_array_equal(thin.iterations, np.arange(0, 25, 2))
    for field in ("loss", "uploads", "computations"):
        np.testing.assert_array_equal(getattr(thin, field), getattr(full, field)[:, ::2])
    np.testing.assert_allclose(thin.wall_clock, full.wall_clock[:, ::2], rtol=1e-12)


def test_numeric_knobs_do_not_recompile():
    problem = lag_synthetic(6, dim=10)
    strategy = strategies.make("gc", 6, 1)
    kwargs = dict(num_iters=24, **SMALL_RUN)
    lj.simulate(problem, strategy, EXP, **kwargs)
    size = engine._run_chunk._cache_size()
    lj.simulate(
        problem,
        strategies.make("gc", 6, 1),
        lj.ShiftedExponential(0.5, 3.0),
        step_size=0.01,
        upload_time=0.7,
        broadcast_time=0.1,
        seed=4,
        **kwargs,
    )
    lj.simulate(problem, strategy, EXP, slowdown=np.arange(1.0, 7.0), **kwargs)
    assert engine._run_chunk._cache_size() == size


def test_a_chunked_run_compiles_one_program_per_chunk_length():
    """No first-chunk variant: 12 iterations in chunks of 4 compile one program, in chunks
    of 5 (5, 5, 2) two; latency and upload factors are traced like τ."""
    problem = lag_synthetic(6, dim=11)  # a size no other test compiles
    strategy = strategies.make("lagc", 6, 1)
    for chunk_size, programs in ((4, 1), (5, 2)):
        size = engine._run_chunk._cache_size()
        lj.simulate(
            problem,
            strategy,
            EXP,
            num_iters=12,
            num_trials=2,
            chunk_size=chunk_size,
            latency=0.1,
            upload_factors=np.ones(6),
        )
        assert engine._run_chunk._cache_size() == size + programs
    size = engine._run_chunk._cache_size()
    lj.simulate(
        problem,
        strategy,
        EXP,
        num_iters=12,
        num_trials=2,
        chunk_size=4,
        latency=0.3,
        upload_factors=np.arange(1.0, 7.0),
        upload_time=2.0,
    )
    assert engine._run_chunk._cache_size() == size


def test_gd_converges_to_optimum_float64():
    r = run("gd", 6, 0, num_iters=400)
    assert r.gap[0, -1] < 1e-10
    assert r.gap[0, 0] > 1.0
    assert not r.diverged.any()


def test_default_optimizer_is_sgd_with_step_one_over_L():
    import optax

    problem = SMALL_PROBLEM
    a = run("gd", 6, 0, problem=problem)
    b = run("gd", 6, 0, problem=problem, optimizer=optax.sgd(1.0 / problem.smoothness))
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-13)


def test_any_optax_optimizer_runs():
    """Heavy-ball momentum through optax: f(θ^k) follows a hand-rolled heavy ball."""
    import optax

    problem = SMALL_PROBLEM
    alpha, beta = 1.0 / problem.smoothness, 0.5
    r = run("gd", 6, 0, problem=problem, num_iters=64, optimizer=optax.sgd(alpha, momentum=beta))
    X, y = problem.examples
    theta, velocity, losses = np.zeros(10), np.zeros(10), []
    for _ in range(65):
        residual = np.einsum("pnd,d->pn", X, theta) - y
        losses.append(0.5 * np.sum(residual**2))
        velocity = beta * velocity + np.einsum("pnd,pn->d", X, residual)
        theta = theta - alpha * velocity
    np.testing.assert_allclose(r.loss[0], losses, rtol=1e-10)


# --------------------------------------------------------------------------- #
# validation: clear ValueErrors before anything compiles
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_iters=0), "num_iters"),
        (dict(num_trials=0), "num_trials"),
        (dict(upload_time=-1.0), "upload_time"),
        (dict(broadcast_time=float("nan")), "broadcast_time"),
        (dict(link="ring"), "link must be one of"),
        (dict(record_every=7), "record_every"),
        (dict(step_size=-0.1), "step_size"),
        (dict(unit_times=np.ones((2, 3, 4))), "unit_times must have shape"),
        (dict(unit_times=-np.ones((3, 24, 6))), "unit_times must be finite and >= 0"),
        (dict(unit_times=np.full((3, 24, 6), np.inf)), "unit_times must be finite"),
        (dict(slowdown=np.zeros(6)), "slowdown"),
    ],
)
def test_simulate_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run("gd", 6, 0, **kwargs)


@pytest.mark.parametrize(
    "delay, match",
    [
        # _replace bypasses the constructor's checks: simulate must still catch them
        (lj.ShiftedExponential()._replace(rate=0.0), "rate"),
        (lj.ShiftedExponential()._replace(shift=-1.0), "shift"),
        (lj.Pareto()._replace(scale=-1.0), "scale"),
        (lj.Pareto()._replace(shape=0.0), "shape"),
    ],
)
def test_bad_delay_parameters(delay, match):
    with pytest.raises(ValueError, match=match):
        lj.simulate(
            lag_synthetic(3, dim=5), strategies.make("gd", 3), delay, num_iters=2, num_trials=1
        )


def test_strategy_validation():
    with pytest.raises(ValueError, match="valid names: gd, fastest-k"):
        strategies.make("sgd", 4)
    with pytest.raises(
        ValueError, match="stragglers must be an integer in \\[0, num_workers - 1 = 3\\]"
    ):
        strategies.make("gc", 4, 4)
    with pytest.raises(ValueError, match="stragglers"):
        strategies.make("grouping", 6, 3)  # 4 does not divide 6
    with pytest.raises(ValueError, match="option 'encoding' does not apply"):
        strategies.make("gd", 4, encoding=np.eye(4))
    with pytest.raises(ValueError, match="partitions"):
        lj.simulate(
            lag_synthetic(5, dim=8), strategies.make("gd", 4), EXP, num_iters=1, num_trials=1
        )


def test_problem_validation():
    with pytest.raises(ValueError, match="y must have shape"):
        linear_regression(np.ones((3, 4, 2)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="X must be finite"):
        linear_regression(np.full((3, 4, 2), np.nan), np.ones((3, 4)))
    with pytest.raises(ValueError, match="num_partitions"):
        linear_regression(np.ones((10, 2)), np.ones(10), num_partitions=11)
    with pytest.raises(ValueError, match="num_partitions"):
        lag_synthetic(60, dim=50)


def test_gc_accepts_user_encoding(reference_dir):
    ref = np.load(reference_dir / "gradient_coding" / "cyclic_n6_s2.npz")
    s = strategies.make("gc", 6, 2, encoding=ref["B"])
    np.testing.assert_array_equal(s.encoding, ref["B"])
    r = run("gc", 6, 2, options={"encoding": ref["B"]}, num_iters=200)
    gd = run("gd", 6, 0, num_iters=200)
    np.testing.assert_allclose(r.loss, gd.loss, rtol=1e-8)


def test_unit_times_replay_reproduces_draws():
    """Replaying the unit times a run drew gives that run back."""
    drawn = run("gc", 6, 1, seed=5)
    times = drawn_unit_times(EXP, 5, drawn.num_trials, 24, 6)
    replayed = lj.simulate(
        lag_synthetic(6, dim=10),
        strategies.make("gc", 6, 1),
        None,
        num_iters=24,
        unit_times=times,
        upload_time=0.3,
        **SMALL_RUN,
    )
    assert_same_run(drawn, replayed)
    np.testing.assert_array_equal(drawn.upload_mask, replayed.upload_mask)


# --------------------------------------------------------------------------- #
# validation where the mistake is made
# --------------------------------------------------------------------------- #
def test_seed_outside_the_key_range_is_rejected():
    p, s = SMALL_PROBLEM, strategies.make("gd", 6)
    kw = dict(num_iters=24, **SMALL_RUN)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63 - 1\]"):
        lj.simulate(p, s, lj.ShiftedExponential(), seed=2**63, **kw)
    jax.config.update("jax_enable_x64", False)
    try:  # without x64 the key keeps 32 bits: seed and seed + 2**32 would be the same run
        with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32 - 1\].*off"):
            lj.simulate(p, s, lj.ShiftedExponential(), seed=2**32 + 1, **kw)
    finally:
        jax.config.update("jax_enable_x64", True)
    a = lj.simulate(p, s, lj.ShiftedExponential(), seed=1, **kw)
    b = lj.simulate(p, s, lj.ShiftedExponential(), seed=2**32 + 1, **kw)
    assert not np.array_equal(a.wall_clock, b.wall_clock)  # with x64: distinct runs


def test_sweep_rejects_unknown_keywords():
    p, s = lag_synthetic(4, dim=10), strategies.make("gd", 4)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'uplod_time'.*upload_time"):
        lj.sweep(p, s, lj.ShiftedExponential(), num_iters=2, num_trials=1, uplod_time=[0.0, 1.0])


def test_non_finite_wall_clock_is_flagged_like_a_divergence():
    """Pareto shape 0.001: unit times overflow float64 to inf; the loss is fine."""
    p, s = lag_synthetic(4, dim=10), strategies.make("gd", 4)
    with pytest.warns(RuntimeWarning, match="wall clock of 3 of 3 trials is not finite"):
        r = lj.simulate(p, s, lj.Pareto(1.0, 0.001), num_iters=5, num_trials=3)
    assert np.isinf(r.wall_clock[:, -1]).all() and np.isfinite(r.loss).all()
    assert r.diverged.all()
    ok = lj.simulate(p, s, lj.Pareto(1.0, 2.0), num_iters=5, num_trials=3)
    assert not ok.diverged.any() and np.isfinite(ok.wall_clock).all()
