"""async and k-async (MODEL.md §8): equivalence with gd at k = M, a hand-computed event
sequence, the update rate against renewal theory, chunking, sweeps and bad input."""

import jax
import numpy as np
import pytest

import lagc_jax as lj
from lagc_jax import cli
from lagc_jax import strategies as st
from lagc_jax.results import Result

from helpers import COUNTS, SMALL_DELAY, SMALL_PROBLEM, SMALL_RUN, assert_same_run, drawn_unit_times
from test_results import small_result

M = 6
PROBLEM, DELAY = SMALL_PROBLEM, SMALL_DELAY  # M = 6, d = 10
# the drawn runs of the engine-property tests below share these sizes (those of the other
# modules' small runs: async's program is test_strategy_battery.py's)
DRAWN = dict(num_iters=32, **SMALL_RUN)


def tiny_problem():
    """Least squares with P = 3 partitions of 4 rows in R^2 (random, strictly convex)."""
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 4))
    return lj.problems.linear_regression(X, y), X, y


def event_simulation(X, y, times, k, alpha, tau, tau_b, num_updates):
    """MODEL.md §8 written as a plain event loop over absolute times, in numpy.

    Returns per update n = 1 … K: the workers used, t_n, and f(θ^n) (with f(θ^0) first).
    """
    workers = times.shape[1]

    def grad(m, theta):
        return X[m].T @ (X[m] @ theta - y[m])

    def loss(theta):
        return sum(0.5 * np.sum((X[m] @ theta - y[m]) ** 2) for m in range(workers))

    theta = np.zeros(X.shape[-1])
    job = [0] * workers
    computed_at = [theta] * workers  # the θ each worker's running job computes on
    arrival = [tau_b + times[0, m] + tau for m in range(workers)]
    used, clock, losses = [], [0.0], [loss(theta)]
    for _ in range(num_updates):
        order = sorted(range(workers), key=lambda m: (arrival[m], m))
        chosen = sorted(order[:k])
        t = arrival[order[k - 1]]
        theta = theta - alpha * sum(grad(m, computed_at[m]) for m in chosen)
        for m in chosen:
            job[m] += 1
            computed_at[m] = theta
            arrival[m] = t + tau_b + times[min(job[m], len(times) - 1), m] + tau
        used.append(chosen)
        clock.append(t)
        losses.append(loss(theta))
    return used, np.array(clock), np.array(losses)


# --------------------------------------------------------------------------- #
# k = M is gd
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "delay",
    [
        DELAY,
        # slow: Pareto's job draws are its iteration draws bit for bit, as the exponential's
        # are (test_random_words.py::test_unit_times_from_bits_equal_sample_unit_times)
        pytest.param(lj.Pareto(1.0, 2.5), marks=pytest.mark.slow),
        None,
    ],
    ids=["exponential", "pareto", "replayed"],
)
def test_k_equal_m_is_gd_in_iterates_wall_clock_and_counts(delay):
    """(The drawn gd run is the modules' shared small run.)"""
    kw = dict(upload_time=0.3, broadcast_time=0.2, seed=3, slowdown=np.linspace(1.0, 2.0, M))
    kw.update(DRAWN)
    if delay is None:
        kw["unit_times"] = np.random.default_rng(2).exponential(size=(3, 32, M)) + 0.05
    gd = lj.simulate(PROBLEM, lj.make("gd", M), delay, **kw)
    full = lj.simulate(PROBLEM, lj.make("k-async", M, k=M), delay, **kw)
    for field in (*COUNTS, "upload_mask"):
        np.testing.assert_array_equal(getattr(full, field), getattr(gd, field), err_msg=field)
    np.testing.assert_allclose(full.loss, gd.loss, rtol=1e-12)
    np.testing.assert_allclose(full.wall_clock, gd.wall_clock, rtol=1e-12)
    assert gd.gap[:, -1].max() < 1e-3 * gd.gap[:, 0].min()  # it did converge: not a trivial run


# --------------------------------------------------------------------------- #
# a tiny case by hand, update by update
# --------------------------------------------------------------------------- #
# Unit times X_{j,m} of jobs j = 0…3 of workers m = 0…2 (integers: every time is exact).
TIMES = np.array(
    [
        [2.0, 1.0, 3.0],
        [2.0, 2.0, 1.0],
        [1.0, 3.0, 1.0],
        [4.0, 1.0, 2.0],
        [1.0, 1.0, 1.0],
        [2.0, 2.0, 2.0],
    ]
)


def test_async_tiny_case_by_hand():
    """τ = τ_b = 0, k = 1. At t = 0 all start job 0 (arrivals 2, 1, 3).
    n=1: w1 at 1 (∇ at θ0), w1 job 1 → 3.   n=2: w0 at 2 (θ0), w0 job 1 → 4.
    n=3: w1, w2 tie at 3 → w1 (θ1), w1 job 2 → 6.   n=4: w2 at 3 (θ0), w2 job 1 → 4.
    n=5: w0, w2 tie at 4 → w0 (θ2), w0 job 2 → 5.   n=6: w2 at 4 (θ4)."""
    problem, X, y = tiny_problem()
    alpha = 0.5 / problem.smoothness
    r = lj.simulate(
        problem,
        lj.make("async", 3),
        unit_times=TIMES[None],
        num_iters=6,
        num_trials=1,
        step_size=alpha,
        record_masks=True,
        chunk_size=2,  # the program of test_k_async_against_the_event_simulation's k = 1
    )
    assert [np.flatnonzero(m).tolist() for m in r.upload_mask[0]] == [[1], [0], [1], [2], [0], [2]]
    np.testing.assert_array_equal(r.wall_clock[0], [0, 1, 2, 3, 3, 4, 4])
    np.testing.assert_array_equal(r.uploads[0], np.arange(7))
    np.testing.assert_array_equal(r.downloads[0], [0, 3, 4, 5, 6, 7, 8])
    np.testing.assert_array_equal(r.computations[0], r.downloads[0])

    # θ^n by hand: the gradients used were computed at θ0, θ0, θ1, θ0, θ2, θ4
    def grad(m, theta):
        return X[m].T @ (X[m] @ theta - y[m])

    thetas = [np.zeros(2)]
    for m, at in zip([1, 0, 1, 2, 0, 2], [0, 0, 1, 0, 2, 4]):
        thetas.append(thetas[-1] - alpha * grad(m, thetas[at]))
    losses = [sum(0.5 * np.sum((X[p] @ t - y[p]) ** 2) for p in range(3)) for t in thetas]
    np.testing.assert_allclose(r.loss[0], losses, rtol=1e-12)
    assert len(set(np.round(losses, 9))) == 7  # every update moved θ: a real check


@pytest.mark.parametrize(
    "k, tau, tau_b", [(1, 1.0, 0.0), (2, 0.0, 1.0), (2, 1.0, 2.0), (3, 1.0, 1.0)]
)
def test_k_async_against_the_event_simulation(k, tau, tau_b):
    problem, X, y = tiny_problem()
    alpha = 0.3 / problem.smoothness
    K = len(TIMES)
    r = lj.simulate(
        problem,
        lj.make("k-async", 3, k=k),
        unit_times=TIMES[None],
        num_iters=K,
        num_trials=1,
        step_size=alpha,
        upload_time=tau,
        broadcast_time=tau_b,
        record_masks=True,
        chunk_size=2,
    )
    used, clock, losses = event_simulation(X, y, TIMES, k, alpha, tau, tau_b, K)
    assert [np.flatnonzero(m).tolist() for m in r.upload_mask[0]] == used
    np.testing.assert_array_equal(r.wall_clock[0], clock)
    np.testing.assert_allclose(r.loss[0], losses, rtol=1e-12)
    np.testing.assert_array_equal(r.uploads[0], k * np.arange(K + 1))
    np.testing.assert_array_equal(r.downloads[0], np.r_[0, 3 + k * np.arange(K)])
    np.testing.assert_array_equal(r.computations[0], r.downloads[0])


def test_job_draws_are_the_synchronous_draws():
    """Worker m's job j uses X_{j,m} = sample_unit_times(delay, fold_in(key_i, j), M)[m], the
    draw of the synchronous strategies' iteration j: the k = 1 run on drawn delays equals
    the event simulation fed with those draws."""
    problem, X, y = tiny_problem()
    delay = lj.Pareto(1.0, 2.0)
    K, seed = 12, 4
    key = jax.random.fold_in(jax.random.key(seed), 0)  # trial 0
    times = np.array(
        [
            np.asarray(lj.delays.sample_unit_times(delay, jax.random.fold_in(key, j), 3))
            for j in range(K)
        ]
    )
    alpha = 0.3 / problem.smoothness
    drawn = lj.simulate(
        problem,
        lj.make("async", 3),
        delay,
        num_iters=K,
        num_trials=1,
        seed=seed,
        step_size=alpha,
        upload_time=0.25,
        record_masks=True,
    )
    used, clock, losses = event_simulation(X, y, times, 1, alpha, 0.25, 0.0, K)
    assert [np.flatnonzero(m).tolist() for m in drawn.upload_mask[0]] == used
    np.testing.assert_allclose(drawn.wall_clock[0], clock, rtol=1e-12)
    np.testing.assert_allclose(drawn.loss[0], losses, rtol=1e-12)


# --------------------------------------------------------------------------- #
# update rate (statistical)
# --------------------------------------------------------------------------- #
def test_updates_per_unit_time_against_renewal_theory():
    """Exponential(1) unit times, τ = τ_b = 0. After every update of k-async all M workers are
    busy (the k used restart, the others had not arrived) and memoryless, so the time to the
    next update is X_(k:M), the k-th of M exponentials: i.i.d. with mean H_M − H_{M−k} and
    variance Σ_{i=M−k+1}^{M} 1/i². So async (k = 1) updates M/E[X] = M times per unit time,
    gd (k = M) 1/H_M times: async updates M·H_M times as often (M = 6: 14.7)."""
    trials, K = 400, 300
    delay = lj.ShiftedExponential(rate=1.0)
    harmonic = np.cumsum([0.0] + [1 / i for i in range(1, M + 1)])  # H_0 … H_M
    gd = lj.simulate(PROBLEM, lj.make("gd", M), delay, num_iters=K // M, num_trials=trials)
    gd_time = gd.wall_clock[:, -1] / (K // M)  # mean Δ of gd per trial
    assert abs(gd_time.mean() - harmonic[M]) < 4 * gd_time.std(ddof=1) / np.sqrt(trials)
    by_k = {1: lj.make("async", M), 3: lj.make("k-async", M, k=3)}  # async is k = 1
    runs = {
        k: lj.simulate(PROBLEM, s, delay, num_iters=K, num_trials=trials) for k, s in by_k.items()
    }
    for k, r in runs.items():
        t_K = r.wall_clock[:, -1]
        mean = K * (harmonic[M] - harmonic[M - k])
        sd = np.sqrt(K * sum(1 / i**2 for i in range(M - k + 1, M + 1)))
        assert abs(t_K.mean() - mean) < 4 * sd / np.sqrt(trials)
        # sample sd of 400 normal-ish values: relative standard error 1/√(2·399) ≈ 3.5 %
        assert abs(t_K.std(ddof=1) - sd) < 4 * sd / np.sqrt(2 * (trials - 1))
    # the ratio of update rates, async / gd, with its standard error (delta method)
    async_rate = K / runs[1].wall_clock[:, -1]
    ratio = async_rate.mean() * gd_time.mean()
    se = (
        ratio
        * np.hypot(async_rate.std(ddof=1) / async_rate.mean(), gd_time.std(ddof=1) / gd_time.mean())
        / np.sqrt(trials)
    )
    assert abs(ratio - M * harmonic[M]) < 4 * se + 0.01 * M * harmonic[M]  # E[K/t_K] bias ≈ 1/K


# --------------------------------------------------------------------------- #
# engine properties
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", ["async", "k-async"])
def test_deterministic_chunk_invariant_and_replayed_across_chunks(name):
    """Three programs: the drawn run in chunks (DRAWN), the unchunked replay of its unit
    times, and a replay in chunks of 16."""
    s = lj.make(name, M, k=2) if name == "k-async" else lj.make(name, M)
    kw = dict(upload_time=0.2, broadcast_time=0.1, **DRAWN)
    a = lj.simulate(PROBLEM, s, DELAY, seed=9, **kw)
    assert_same_run(a, lj.simulate(PROBLEM, s, DELAY, seed=9, **kw), rtol=0)
    # the drawn run in chunks is the unchunked replay of its draws: job j of worker m
    # draws X_{j,m}, whatever the chunk (a job started by update K - 1 has index < K)
    K = DRAWN["num_iters"]
    times = drawn_unit_times(DELAY, 9, DRAWN["num_trials"], K, M)
    kw.pop("chunk_size")
    whole = lj.simulate(PROBLEM, s, unit_times=times, **kw)
    assert_same_run(a, whole)
    np.testing.assert_array_equal(a.upload_mask, whole.upload_mask)
    # rows are read by job index, not by update, also across chunks: worker m ran jobs
    # 0 … c_m (c_m completed), so rows past c_m are never read, and a row it did read
    # changes the run
    completed = whole.upload_mask.sum(axis=1)  # (trials, M)
    assert completed.max() < K // 2  # most rows belong to no job at all
    unread = np.arange(K)[None, :, None] > completed[:, None, :]
    assert_same_run(
        whole,
        lj.simulate(PROBLEM, s, unit_times=np.where(unread, 50.0, times), chunk_size=16, **kw),
        rtol=0,
    )
    read = times.copy()
    read[:, 1] += 5.0  # every worker's job 1
    assert (
        lj.simulate(PROBLEM, s, unit_times=read, **kw).wall_clock[:, -1] > whole.wall_clock[:, -1]
    ).all()


def test_sweep_points_equal_separate_runs():
    """(The separate runs are the program of test_deterministic_chunk_invariant_...[k-async].)"""
    s = lj.make("k-async", M, k=2)
    kw = dict(seed=1, broadcast_time=0.1, **DRAWN)
    points = lj.sweep(PROBLEM, s, DELAY, upload_time=[0.0, 0.5], step_size=[0.01, 0.02], **kw)
    for point, (tau, alpha) in zip(points, [(0.0, 0.01), (0.5, 0.02)]):
        assert_same_run(
            point, lj.simulate(PROBLEM, s, DELAY, upload_time=tau, step_size=alpha, **kw)
        )


def test_masks_and_counts():
    """(The program of test_deterministic_chunk_invariant_...[k-async].)"""
    r = lj.simulate(PROBLEM, lj.make("k-async", M, k=2), DELAY, **DRAWN)
    assert r.upload_mask.shape == (3, 32, M) and (r.upload_mask.sum(-1) == 2).all()
    np.testing.assert_array_equal(
        r.downloads[:, 1:], np.broadcast_to(M + 2 * np.arange(32), (3, 32))
    )
    assert (np.diff(r.wall_clock, axis=1) >= 0).all()
    assert r.config["strategy"] == "k-async" and r.config["xi"] is None


# --------------------------------------------------------------------------- #
# bad input
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("k", [0, 7, 1.5, True, "2"])
def test_k_outside_range(k):
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, num_workers = 6\], got"):
        lj.make("k-async", M, k=k)


def test_bad_options_and_settings_are_named():
    with pytest.raises(ValueError, match="option 'k' does not apply to strategy 'async'"):
        lj.make("async", M, k=2)
    with pytest.raises(ValueError, match="option 'xi' does not apply to strategy 'k-async'"):
        lj.make("k-async", M, xi=1.0)
    with pytest.raises(ValueError, match="encoding: the asynchronous strategies use identity"):
        lj.make("k-async", M, encoding=lj.coding.cyclic_repetition(M, 1))
    assert lj.make("k-async", M, encoding=np.eye(M)).k == 1  # the identity is accepted
    s = lj.make("async", M)
    events = []

    def listener(event, duration, **kwargs):
        events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        with pytest.raises(
            ValueError,
            match="link='shared' does not apply to strategy 'async' "
            r"\(supported: parallel\)",
        ):
            lj.simulate(PROBLEM, s, DELAY, num_iters=4, num_trials=1, link="shared")
        with pytest.raises(ValueError, match="delay: MarkovStragglers cannot be indexed by job"):
            lj.simulate(PROBLEM, s, lj.MarkovStragglers(), num_iters=4, num_trials=1)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert "/jax/core/compile/backend_compile_duration" not in events  # raised before compiling
    with pytest.raises(ValueError, match="xi does not apply to strategy 'async'"):
        lj.sweep(PROBLEM, s, DELAY, xi=[0.1, 1.0], num_iters=4, num_trials=1)
    with pytest.raises(ValueError, match="problem has 4 partitions but strategy 'async'"):
        lj.simulate(lj.problems.lag_synthetic(4, dim=10), s, DELAY, num_iters=4, num_trials=1)


def test_registry_metadata():
    for name in ("async", "k-async"):
        entry = st.info(name)
        assert not entry.lazy and not entry.analytic
        others = {st.info(n).style.get("color") for n in lj.names() if n != name}
        assert entry.style["color"] not in others
    assert isinstance(lj.make("async", M), st.KAsync) and lj.make("async", M).k == 1


def test_command_line(tmp_path, capsys, monkeypatch):
    stem = str(tmp_path / "run")
    base = [
        "run",
        "--workers",
        "4",
        "--stragglers",
        "1",
        "--trials",
        "3",
        "--iters",
        "12",
        "--out",
        stem,
    ]
    assert cli.main(base + ["--strategy", "k-async"]) == 0  # default k = M − S = 3
    assert "| k-async |" in capsys.readouterr().out
    assert (np.diff(Result.load(stem + "_k-async.npz").uploads, axis=1) == 3).all()
    # --k reaches the strategy (the run of a k-async strategy: just above)
    made = []
    monkeypatch.setattr(lj, "simulate", lambda p, s, *a, **k: made.append(s) or small_result())
    assert cli.main(base + ["--strategy", "k-async", "--k", "2"]) == 0
    assert [(s.name, s.k) for s in made] == [("k-async", 2)]
    assert cli.main(base + ["--strategy", "k-async", "--k", "5"]) == 2
    assert "k must be an integer in [1, num_workers = 4], got 5" in capsys.readouterr().err
    assert cli.main(base + ["--strategy", "async", "--link", "shared"]) == 2
    assert "--link shared does not apply to strategy 'async'" in capsys.readouterr().err
    # every strategy on a shared link: the runs are replaced by a recorder (which strategies
    # run is the claim; test_cli.py::test_run_all_strategies_small runs them all, slow)
    ran = []
    monkeypatch.setattr(lj, "simulate", lambda p, s, *a, **k: ran.append(s.name) or small_result())
    assert cli.main(base + ["--strategy", "all", "--link", "shared", "--upload-time", "0.1"]) == 0
    captured = capsys.readouterr()
    assert "note: skipping async: --link shared does not apply to strategy 'async'" in captured.err
    assert "| gd |" in captured.out and "| async |" not in captured.out
    assert ran == [name for name in st.names() if name not in ("async", "k-async")]


def test_k_equals_m_is_gd_on_a_shuffled_row_bootstrap():
    """Job-indexed draws keep the trial's column permutation of an Empirical row bootstrap,
    so k-async with k = M still equals gd on measured times."""
    samples = np.random.default_rng(4).exponential(size=(9, 4)) + np.array([0.1, 0.5, 0.2, 1.0])
    delay = lj.Empirical(samples, shuffle_columns=True)
    p = lj.problems.lag_synthetic(4, dim=8)
    # per-worker slowdowns apply after the permutation: the maximum then depends on it
    kw = dict(
        num_iters=25,
        num_trials=6,
        seed=2,
        upload_time=0.1,
        broadcast_time=0.05,
        slowdown=[1.0, 3.0, 1.0, 0.5],
    )
    a = lj.simulate(p, lj.make("k-async", 4, k=4), delay, **kw)
    b = lj.simulate(p, lj.make("gd", 4), delay, **kw)
    np.testing.assert_allclose(a.wall_clock, b.wall_clock, rtol=1e-12)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-12)
    for field in ("uploads", "downloads", "computations"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_advise_compares_k_async_with_k_m_minus_s_and_skips_it_on_a_shared_link():
    from lagc_jax.studies import advise

    p = lj.problems.lag_synthetic(4, dim=8)
    kw = dict(num_iters=40, num_trials=6, names=["gd", "k-async"])
    ranked = advise.compare(p, lj.ShiftedExponential(), 4, [1], **kw)
    k_async = next(c for c in ranked if c.name == "k-async")
    assert (np.diff(k_async.result.uploads, axis=1) == 3).all()  # k = M − S = 3
    shared = advise.compare(
        p, lj.ShiftedExponential(), 4, [1], link="shared", upload_time=0.1, **kw
    )
    assert [c.name for c in shared] == ["gd"]
