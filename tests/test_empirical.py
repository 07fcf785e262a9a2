"""Delay models: parameter checks at construction, and the Empirical (measured-times) model."""

import itertools
import logging
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagc_jax as lj
from lagc_jax import analysis, delays, strategies
from lagc_jax.problems import lag_synthetic


# --------------------------------------------------------------------------- construction checks


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: lj.ShiftedExponential(rate=0), r"rate must be finite and > 0, got 0"),
        (lambda: lj.ShiftedExponential(rate=-2.0), r"rate must be finite and > 0"),
        (lambda: lj.ShiftedExponential(shift=-1), r"shift must be finite and >= 0, got -1"),
        (lambda: lj.ShiftedExponential(rate=math.inf), r"rate must be finite"),
        (lambda: lj.ShiftedExponential(shift=math.nan), r"shift must be finite"),
        (lambda: lj.ShiftedExponential(rate="2"), r"rate must be a real number"),
        (lambda: lj.Pareto(shape=-1), r"shape must be finite and > 0, got -1"),
        (lambda: lj.Pareto(scale=0.0), r"scale must be finite and > 0"),
        (lambda: lj.Pareto(scale=np.float32(np.inf)), r"scale must be finite"),
        (lambda: lj.MarkovStragglers(slow_factor=0.0), r"slow_factor must be finite and > 0"),
        (lambda: lj.MarkovStragglers(p_slow=1.5), r"p_slow must be in \(0, 1\]"),
        (lambda: lj.MarkovStragglers(p_recover=0.0), r"p_recover must be finite and > 0"),
        (lambda: lj.MarkovStragglers(base="exp"), r"base must be ShiftedExponential or Pareto"),
    ],
)
def test_delay_models_check_parameters_when_built(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_pareto_shape_at_most_one_warns_and_analysis_returns_inf():
    with pytest.warns(
        delays.InfiniteMeanWarning, match="shape=1 <= 1: the mean unit time is infinite"
    ):
        d = lj.Pareto(1.0, 1.0)
    assert d.mean == math.inf
    with pytest.warns(delays.InfiniteMeanWarning, match=r"E X_\(6:6\) is infinite: Pareto shape 1"):
        assert analysis.expected_iteration_time("gd", 6, 0, d) == math.inf
    # the second smallest of 6 still has a finite mean at shape 1 (n - k + 1 = 5 > 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isfinite(analysis.expected_order_statistic(lj.Pareto._make((1.0, 1.0)), 2, 6))
        lj.Pareto(1.0, 1.01)  # a finite mean: no warning


def test_delay_models_survive_jit_vmap_and_tree_map():
    key = jax.random.key(0)
    models = [
        lj.ShiftedExponential(0.5, 2.0),
        lj.Pareto(1.0, 2.5),
        lj.MarkovStragglers(lj.Pareto(1.0, 3.0), 4.0, 0.1, 0.5),
        delays.Empirical([1.0, 2.0, 4.0]),
        delays.Empirical(np.ones((3, 4)) * 2.0),
    ]
    for d in models:
        eager = delays.sample_unit_times(d, key, 4)
        jitted = jax.jit(lambda m: delays.sample_unit_times(m, key, 4))(d)
        np.testing.assert_allclose(jitted, eager, rtol=1e-12)
        # jax rebuilds models from arbitrary leaves without the constructor's checks
        zeros = jax.tree_util.tree_map(lambda _: 0, d)
        assert type(zeros) is type(d)
        with pytest.raises(ValueError):
            zeros.validate()  # ... and validate() still catches them
        assert jax.tree_util.tree_structure(jax.tree_util.tree_map(lambda _: None, d)) is not None
    # vmap over stacked parameters (a sweep over rates): the mean of X is 1/rate
    rates = jnp.array([1.0, 2.0, 4.0])
    stacked = lj.ShiftedExponential(shift=jnp.zeros(3), rate=rates)
    keys = jax.random.split(key, 4000)
    x = jax.vmap(lambda m: jax.vmap(lambda k: delays.sample_unit_times(m, k, 2))(keys))(stacked)
    means = x.mean(axis=(1, 2))
    se = 1.0 / rates / math.sqrt(x.shape[1] * 2)
    assert np.all(np.abs(means - 1.0 / rates) < 5 * se)
    # vmap over Empirical samples of one shape
    samples = jnp.stack([jnp.full((2, 3), 1.0), jnp.full((2, 3), 3.0)])
    out = jax.vmap(lambda s: delays.sample_unit_times(delays.Empirical(s), key, 3))(samples)
    np.testing.assert_array_equal(out, [[1.0] * 3, [3.0] * 3])


# --------------------------------------------------------------------------- Empirical


@pytest.mark.parametrize(
    "samples, kwargs, match",
    [
        (np.ones((2, 2, 2)), {}, r"shape \(N,\) or \(N, M\)"),
        (np.ones(0), {}, r"at least one time"),
        (np.ones((3, 0)), {}, r"at least one time"),
        ([1.0, math.nan], {}, r"finite and > 0, got nan at index 1"),
        ([[1.0, 2.0], [0.0, 1.0]], {}, r"finite and > 0, got 0.0 at index \(1, 0\)"),
        ([1.0, -1.0], {}, r"finite and > 0"),
        ([[1.0, 2.0], [1.0]], {}, r"ragged"),
        (
            [1.0, 2.0],
            dict(shuffle_columns=True),
            r"shuffle_columns=True needs samples of shape \(N, M\)",
        ),
        ([[1.0]], dict(shuffle_columns=1), r"shuffle_columns must be True or False"),
    ],
)
def test_empirical_rejects_bad_samples(samples, kwargs, match):
    with pytest.raises(ValueError, match=match):
        delays.Empirical(samples, **kwargs)


@pytest.mark.parametrize("columns", [3, 5])
def test_row_bootstrap_needs_one_column_per_worker(columns):
    d = delays.Empirical(np.ones((4, columns)))
    with pytest.raises(ValueError, match=f"samples have {columns} columns .* num_workers=4"):
        lj.simulate(lag_synthetic(4, dim=5), strategies.make("gd", 4), d, num_iters=2, num_trials=1)
    with pytest.raises(ValueError, match="num_workers=4"):
        d.validate(num_workers=4)


def _matrix(rows=7, cols=6, seed=3):
    return np.random.default_rng(seed).lognormal(0.0, 0.6, size=(rows, cols)) + 0.2


def _mean_iteration_time(result, iters):
    per_trial = result.wall_clock[:, -1] / iters  # trials are independent
    return per_trial.mean(), per_trial.std(ddof=1) / math.sqrt(len(per_trial))


def test_row_bootstrap_gd_time_is_mean_row_maximum():
    samples = _matrix()
    d = delays.Empirical(samples)
    exact = samples.max(axis=1).mean()
    assert analysis.expected_iteration_time("gd", 6, 0, d) == pytest.approx(exact, rel=1e-14)
    iters, trials = 40, 500
    r = lj.simulate(
        lag_synthetic(6, dim=8),
        strategies.make("gd", 6),
        d,
        num_iters=iters,
        num_trials=trials,
        seed=1,
    )
    mean, se = _mean_iteration_time(r, iters)
    assert abs(mean - exact) < 4 * se, (mean, exact, se)
    assert r.config["delay"]["Empirical"]["shape"] == [7, 6]


def _row_means_by_hand(name, samples):
    """E Δ of one round of M = 6, S = 1 on a row bootstrap of ``samples`` (7, 6), by hand."""
    rows = np.sort(samples, axis=1)
    return {
        "fastest-k": rows[:, 4].mean(),
        "gc": 2 * rows[:, 4].mean(),
        "grouping": 2 * samples.reshape(7, 3, 2).min(2).max(1).mean(),
    }[name]


def test_row_bootstrap_analysis_is_the_row_means_by_hand():
    samples = _matrix(seed=5)
    d = delays.Empirical(samples)
    for name in ("fastest-k", "gc", "grouping"):
        exact = analysis.expected_iteration_time(name, 6, 1, d)
        assert exact == pytest.approx(_row_means_by_hand(name, samples), rel=1e-14), name


@pytest.mark.parametrize(
    "name",
    [
        # slow: the row bootstrap's draws are checked by Monte Carlo with gd and gc, the
        # analysis of every wait rule by hand (test_row_bootstrap_analysis_is_the_row_...)
        pytest.param("fastest-k", marks=pytest.mark.slow),
        "gc",
        pytest.param("grouping", marks=pytest.mark.slow),
    ],
)
def test_row_bootstrap_matches_exact_row_means(name):
    samples = _matrix(seed=5)
    d = delays.Empirical(samples)
    exact = analysis.expected_iteration_time(name, 6, 1, d)
    assert exact == pytest.approx(_row_means_by_hand(name, samples), rel=1e-14)
    iters = 30
    r = lj.simulate(
        lag_synthetic(6, dim=8),
        strategies.make(name, 6, 1),
        d,
        num_iters=iters,
        num_trials=400,
        seed=2,
    )
    mean, se = _mean_iteration_time(r, iters)
    assert abs(mean - exact) < 4 * se, (name, mean, exact, se)


def test_pooled_exact_order_statistics_match_enumeration():
    values = np.array([0.5, 1.0, 1.0, 2.5, 4.0])  # a repeated value: atoms with weights
    d = delays.Empirical(values)
    for k, n in [(1, 3), (2, 3), (3, 3), (2, 4), (4, 4)]:
        brute = np.mean([sorted(c)[k - 1] for c in itertools.product(values, repeat=n)])
        assert analysis.expected_order_statistic(d, k, n) == pytest.approx(brute, rel=1e-12)
    brute = np.mean(
        [max(min(c[0], c[1]), min(c[2], c[3])) for c in itertools.product(values, repeat=4)]
    )
    assert analysis.expected_min_then_max(d, 2, 2) == pytest.approx(brute, rel=1e-12)
    brute = np.mean(
        [max(c[0] + 0.3, c[1] + 0.3, c[2]) for c in itertools.product(values, repeat=3)]
    )
    lazy = analysis.expected_lazy_iteration_costs("lag-wk", 3, 0, d, 2, upload_time=0.3)
    assert lazy["time"] == pytest.approx(brute, rel=1e-12)
    np.testing.assert_array_equal(d.cdf([0.4, 1.0, 2.0, 4.0]), [0.0, 0.6, 0.6, 1.0])


@pytest.mark.parametrize(
    "name, S",
    [
        ("gd", 0),
        # slow: the pooled draws are checked by Monte Carlo with gd, the pooled order
        # statistics gc and grouping wait for by enumeration
        # (test_pooled_exact_order_statistics_match_enumeration)
        pytest.param("gc", 2, marks=pytest.mark.slow),
        pytest.param("grouping", 2, marks=pytest.mark.slow),
    ],
)
def test_pooled_monte_carlo_agrees_with_exact_analysis(name, S):
    d = delays.Empirical(_matrix(rows=5, cols=4, seed=7).ravel())
    exact = analysis.expected_iteration_time(name, 6, S, d)
    iters = 40
    r = lj.simulate(
        lag_synthetic(6, dim=8),
        strategies.make(name, 6, S),
        d,
        num_iters=iters,
        num_trials=400,
        seed=4,
    )
    mean, se = _mean_iteration_time(r, iters)
    assert abs(mean - exact) < 4 * se, (name, mean, exact, se)


def test_row_bootstrap_analysis_says_which_formulas_fail():
    d = delays.Empirical(_matrix())
    with pytest.raises(ValueError, match="row bootstrap.*i.i.d. order-statistic formulas"):
        analysis.expected_order_statistic(d, 6, 6)
    with pytest.raises(ValueError, match="row bootstrap"):
        analysis.expected_lazy_iteration_costs("lag-ps", 6, 0, d, 3)
    with pytest.raises(ValueError, match="row bootstrap"):
        d.cdf(1.0)
    shuffled = delays.Empirical(_matrix(), shuffle_columns=True)
    with pytest.raises(ValueError, match="shuffle_columns=True"):
        analysis.expected_iteration_time("grouping", 6, 1, shuffled)
    # symmetric wait rules do not care about column order
    assert analysis.expected_iteration_time(
        "gc", 6, 1, shuffled
    ) == analysis.expected_iteration_time("gc", 6, 1, d)


def test_column_shuffle_is_per_trial_and_deterministic_per_seed():
    # one step, two slow workers: grouping (pairs of workers) takes 2·10 when both slow
    # workers share a group, else 2·1. Unshuffled they do (workers 2, 3); shuffled, a trial
    # puts them together with probability 1/3, the same in every iteration of the trial.
    row = np.array([[1.0, 1.0, 10.0, 10.0]])
    problem, strategy, iters = lag_synthetic(4, dim=5), strategies.make("grouping", 4, 1), 5
    plain = lj.simulate(problem, strategy, delays.Empirical(row), num_iters=iters, num_trials=3)
    np.testing.assert_array_equal(plain.wall_clock[:, -1], 20.0 * iters)
    shuffled = delays.Empirical(row, shuffle_columns=True)
    runs = [
        lj.simulate(problem, strategy, shuffled, num_iters=iters, num_trials=300, seed=s)
        for s in (0, 0, 1)
    ]
    per_iteration = np.diff(runs[0].wall_clock, axis=1)
    assert set(np.unique(per_iteration)) == {2.0, 20.0}
    assert np.all(per_iteration == per_iteration[:, :1])  # fixed within a trial
    together = np.mean(per_iteration[:, 0] == 20.0)
    assert abs(together - 1 / 3) < 4 * math.sqrt(2 / 9 / 300)
    np.testing.assert_array_equal(runs[0].wall_clock, runs[1].wall_clock)  # same seed
    assert not np.array_equal(runs[0].wall_clock, runs[2].wall_clock)  # another seed
    # the permutation is the trial's state: one key, one permutation
    key = jax.random.key(9)
    p1, p2 = (delays.init_delay_state(shuffled, key, 4) for _ in range(2))
    np.testing.assert_array_equal(p1, p2)
    assert sorted(np.asarray(p1).tolist()) == [0, 1, 2, 3]


def test_new_samples_of_the_same_shape_do_not_recompile(caplog):
    traces = []

    @jax.jit
    def draw(model, key):
        traces.append(1)  # runs once per trace (= per compilation)
        return delays.sample_unit_times(model, key, 3)

    key = jax.random.key(0)
    for scale in (1.0, 2.0, 5.0):
        x = draw(delays.Empirical(np.full((4, 3), scale)), key)
        np.testing.assert_array_equal(x, scale)
    assert len(traces) == 1
    draw(delays.Empirical(np.ones((5, 3))), key)  # another shape: a new trace
    assert len(traces) == 2
    # simulate: a new shape compiles (control); new samples of that shape compile nothing
    problem, strategy = lag_synthetic(3, dim=4), strategies.make("gd", 3)

    def compiles(samples):
        caplog.clear()
        jax.config.update("jax_log_compiles", True)
        try:
            with caplog.at_level(logging.WARNING):
                r = lj.simulate(
                    problem, strategy, delays.Empirical(samples), num_iters=3, num_trials=2
                )
        finally:
            jax.config.update("jax_log_compiles", False)
        return r, [rec.getMessage() for rec in caplog.records if "Compiling" in rec.getMessage()]

    _, first = compiles(np.full((7, 3), 1.0))
    assert first  # the control: this shape was never compiled in this process
    r, second = compiles(np.full((7, 3), 2.0))
    assert not second, second
    np.testing.assert_array_equal(r.wall_clock[:, -1], 6.0)


def test_normalization_helpers():
    samples = np.array([[1.0, 3.0], [2.0, 6.0]])
    d = delays.Empirical(samples).normalized()
    assert d.mean == pytest.approx(1.0)
    np.testing.assert_allclose(d.samples, samples / 3.0)
    assert np.median(delays.Empirical(samples).normalized("median").samples) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="by must be 'mean' or 'median'"):
        delays.normalize_samples(samples, by="max")
    assert "2 steps × 2 workers" in delays.Empirical(samples).describe()
    assert delays.describe_parameters(delays.Empirical(samples)) != delays.describe_parameters(
        delays.Empirical(samples * 2)
    )


def test_models_pickle_and_copy():
    import copy
    import pickle

    e = delays.Empirical(_matrix(), shuffle_columns=True)
    for model in (e, lj.Pareto(1.0, 2.0), lj.MarkovStragglers(), lj.ShiftedExponential(0.5, 2.0)):
        for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
            assert type(clone) is type(model)
            assert jax.tree_util.tree_structure(clone) == jax.tree_util.tree_structure(model)
            for a, b in zip(jax.tree_util.tree_leaves(clone), jax.tree_util.tree_leaves(model)):
                np.testing.assert_array_equal(a, b)


def test_sweep_over_empirical_samples():
    samples = [np.full((2, 3), 1.0), np.array([[1.0, 2.0, 4.0], [2.0, 2.0, 2.0]])]
    results = lj.sweep(
        lag_synthetic(3, dim=4),
        strategies.make("gd", 3),
        [delays.Empirical(s) for s in samples],
        num_iters=5,
        num_trials=2,
    )
    np.testing.assert_array_equal(results[0].wall_clock[:, -1], 5.0)
    assert set(np.diff(results[1].wall_clock[0])) <= {2.0, 4.0}  # one row's maximum per step
