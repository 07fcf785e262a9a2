"""The fast paths agree with the plain ones: quadratic forms against autodiff of the residuals,
coded products from the combined Hessians against B @ grads, order statistics by removal
against top_k, segmented sums against jnp.sum. (The quadratic form's float32 gap floor is
checked with the other float32 runs, in tests/test_float32.py.)"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagc_jax as lj
from lagc_jax import problems, reductions, strategies
from lagc_jax.strategies import Knobs, Round

from helpers import SMALL_DELAY, SMALL_PROBLEM, SMALL_RUN


def quadratic_and_direct():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((97, 7))
    y = X @ rng.standard_normal(7) + 0.3 * rng.standard_normal(97)
    uneven = problems.linear_regression(X, y, num_partitions=5, partitioning="random", seed=2)
    return [problems.lag_synthetic(6, dim=12), uneven]


@pytest.mark.parametrize("problem", quadratic_and_direct(), ids=lambda p: p.name)
def test_quadratic_form_equals_residual_form_in_float64(problem):
    assert problem.uses_quadratic_form
    direct = dataclasses.replace(problem, quadratic=None)
    assert not direct.uses_quadratic_form and direct.device_data(jnp.float64).quadratic is None
    fast = problems.gradient_oracle(problem.weighted_loss, problem.device_data(jnp.float64))
    slow = problems.gradient_oracle(direct.weighted_loss, direct.device_data(jnp.float64))
    assert slow.combine is None
    # jitted, as the engine calls them (one program each, not one per operation)
    fast_loss_and_grads, fast_combine = jax.jit(fast.loss_and_grads), jax.jit(fast.combine)
    slow_loss_and_grads = jax.jit(slow.loss_and_grads)
    rng = np.random.default_rng(1)
    for theta in [
        np.zeros(problem.dim),
        problem.quadratic.minimizer + 1e-3,
        rng.standard_normal(problem.dim) * 5,
    ]:
        theta = jnp.asarray(theta)
        f, grads = fast_loss_and_grads(theta)
        f0, grads0 = slow_loss_and_grads(theta)
        assert abs(float(f) - float(f0)) <= 1e-10 * abs(float(f0))
        scale = float(jnp.max(jnp.abs(grads0)))
        np.testing.assert_allclose(grads, grads0, rtol=0, atol=1e-10 * scale)
        # combine: any (R, P) matrix, also under vmap over trials
        B = jnp.asarray(rng.standard_normal((3, problem.num_partitions)))
        np.testing.assert_allclose(
            fast_combine(theta, B),
            B @ grads0,
            rtol=0,
            atol=1e-10 * scale * float(jnp.abs(B).sum(1).max()),
        )
    thetas = jnp.asarray(rng.standard_normal((4, problem.dim)))
    coded = jax.jit(jax.vmap(lambda t: fast.combine(t, B)))(thetas)
    expected = jax.jit(jax.vmap(lambda t: B @ slow.loss_and_grads(t)[1]))(thetas)
    np.testing.assert_allclose(coded, expected, rtol=1e-10, atol=1e-10)


def test_quadratic_form_only_where_it_saves_flops():
    rng = np.random.default_rng(3)
    wide = problems.linear_regression(rng.standard_normal((4, 5, 12)), rng.standard_normal((4, 5)))
    assert wide.quadratic is not None and not wide.uses_quadratic_form  # d = 12 ≥ 2n = 10
    assert wide.device_data(jnp.float64).quadratic is None
    tall = problems.linear_regression(rng.standard_normal((4, 7, 12)), rng.standard_normal((4, 7)))
    assert tall.uses_quadratic_form  # d = 12 < 2n = 14
    logistic = problems.logistic_regression(
        rng.standard_normal((40, 3)), np.sign(rng.standard_normal(40)), num_partitions=4
    )
    assert logistic.quadratic is None and not logistic.uses_quadratic_form


@pytest.mark.parametrize("name, S", [("fastest-k", 1), ("gc", 1), ("lagc", 2), ("lagc-ps", 2)])
def test_simulate_agrees_with_the_residual_form(name, S):
    """Non-lazy strategies: counts and clocks identical, losses to 1e-10 (on the modules'
    shared small run: the quadratic form's programs are test_strategy_battery.py's). Lazy
    ones may decide a trigger differently where it sits at rounding level: the same median
    progress and mean uploads over 16 trials, to a few percent."""
    if strategies.info(name).lazy:
        problem, delay = problems.lag_synthetic(6, dim=12), lj.ShiftedExponential()
        kw = dict(num_iters=60, num_trials=16, seed=5)
    else:
        problem, delay = SMALL_PROBLEM, SMALL_DELAY
        kw = dict(num_iters=64, seed=5, **SMALL_RUN)
    direct = dataclasses.replace(problem, quadratic=None)
    a = lj.simulate(problem, lj.make(name, 6, S), delay, **kw)
    b = lj.simulate(direct, lj.make(name, 6, S), delay, **kw)
    if strategies.info(name).lazy:
        # statistics over the trials, not one trial's count: a flip cascades in that trial
        np.testing.assert_allclose(np.median(a.gap[:, -1]), np.median(b.gap[:, -1]), rtol=0.05)
        np.testing.assert_allclose(a.uploads[:, -1].mean(), b.uploads[:, -1].mean(), rtol=0.1)
        return
    for field in ("uploads", "downloads", "computations", "wall_clock"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-10)


def test_round_combined_matches_the_product_of_gradients():
    grads = jnp.arange(12.0).reshape(4, 3)
    B = jnp.array([[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]])
    plain = Round(jnp.zeros(3), grads, jnp.ones(4), 0)
    np.testing.assert_array_equal(plain.combined(B), B @ grads)
    calls = []
    through = Round(
        jnp.zeros(3), grads, jnp.ones(4), 0, combine=lambda m: calls.append(m.shape) or m @ grads
    )
    np.testing.assert_array_equal(through.combined(B), B @ grads)
    assert calls == [(2, 4)]


@pytest.mark.parametrize("name, S", [("gc", 1), ("lagc", 1), ("g-lag", 1), ("g-lag-wk", 1)])
def test_strategy_steps_through_combine_like_through_grads(name, S):
    """A coded strategy's round is the same whether its messages come from
    ``round.combine`` or from the partition gradients."""
    problem = problems.lag_synthetic(4, dim=6)
    oracle = problems.gradient_oracle(problem.weighted_loss, problem.device_data(jnp.float64))
    strategy = lj.make(name, 4, S)
    theta = jnp.linspace(-1.0, 2.0, 6)
    _, grads = oracle.loss_and_grads(theta)
    knobs = Knobs(1 / problem.smoothness, lj.timing.Link(upload_time=0.1))
    state = strategy.init(theta - 0.5, problem.union_smoothness)
    times = jnp.array([1.0, 3.0, 2.0, 0.5])

    @jax.jit  # both rounds in one program
    def both_ways(strategy, state):
        return [
            strategy.step(state, Round(theta, grads, times, 3, combine=combine), knobs)
            for combine in (None, lambda m: oracle.combine(theta, m))
        ]

    (a, state_a, stats_a), (b, state_b, stats_b) = both_ways(strategy, state)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    assert stats_a.uploads == stats_b.uploads and stats_a.duration == stats_b.duration
    for x, y in zip(jax.tree_util.tree_leaves(state_a), jax.tree_util.tree_leaves(state_b)):
        np.testing.assert_allclose(x, y, rtol=1e-12)


def np_fastest(arrivals, k):
    """A stable sort's first k (NaN last, ±0 equal, ties by index) and the k-th arrival."""

    def key(i):
        x = arrivals[i]
        return (np.isnan(x), 0.0 if np.isnan(x) or x == 0 else x, i)

    order = sorted(range(len(arrivals)), key=key)
    used = np.zeros(len(arrivals), bool)
    used[order[:k]] = True
    return used, arrivals[order[k - 1]]


# slow: M = 20 has the k of M = 12 relative to M (the same sides of the switch)
@pytest.mark.parametrize("M", [1, 3, 12, pytest.param(20, marks=pytest.mark.slow)])
def test_wait_fastest_by_removal_and_by_top_k_agree_with_a_sort(M):
    """Fewer than MAX_DROPPED_BY_REMOVAL late arrivals to drop: removed one at a time;
    more: lax.top_k. Both give a stable sort's order with ties, ±0, ±inf and NaN, and the
    exact bits of the k-th arrival."""
    assert strategies.wait.MAX_DROPPED_BY_REMOVAL == 4
    rng = np.random.default_rng(M)
    fastest = jax.jit(jax.vmap(strategies.wait_fastest, in_axes=(0, None)), static_argnums=1)
    cases = np.concatenate(
        [
            rng.exponential(size=(20, M)),
            rng.integers(0, 3, (30, M)).astype(float),
            rng.choice([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0], size=(50, M)),
        ]
    )
    # k = 1, and both sides of the switch between removal (M − k < 4) and top_k
    for dtype in (np.float64, np.float32):
        rows = cases.astype(dtype)
        for k in sorted({1} | set(range(max(1, M - 5), M + 1))):
            used, t = fastest(jnp.asarray(rows), k)
            for i, row in enumerate(rows):
                ref_used, ref_t = np_fastest(row, k)
                np.testing.assert_array_equal(used[i], ref_used, err_msg=f"{row} k={k}")
                assert np.asarray(t[i]).tobytes() == dtype(ref_t).tobytes(), (row, k)


def test_wait_fastest_with_eligible_workers():
    arrivals = jnp.array([0.5, 2.0, 1.0, 3.0, 0.1])
    used, t = strategies.wait_fastest(
        arrivals, 2, eligible=jnp.array([True, True, True, True, False])
    )
    assert used.tolist() == [True, False, True, False, False] and float(t) == 1.0
    # two eligible, three needed: the third is the first ineligible worker, at inf
    used, t = strategies.wait_fastest(
        arrivals, 3, eligible=jnp.array([True, False, False, False, True])
    )
    assert used.tolist() == [True, True, False, False, True] and float(t) == np.inf


@pytest.mark.parametrize("n", [1, 5, 31, 32, 33, 50, 64, 100, 201])
def test_segmented_sums_equal_plain_sums(n):
    x = np.random.default_rng(n).standard_normal((3, n))
    np.testing.assert_allclose(reductions.segmented_sum(jnp.asarray(x)), x.sum(-1), rtol=1e-13)
    np.testing.assert_allclose(
        reductions.segmented_sum(jnp.asarray(x.T), axis=0), x.sum(-1), rtol=1e-13
    )
    np.testing.assert_allclose(reductions.sum_squares(jnp.asarray(x)), (x * x).sum(-1), rtol=1e-13)
    np.testing.assert_allclose(
        reductions.inner(jnp.asarray(x), jnp.asarray(x[::-1])),
        (x * x[::-1]).sum(-1),
        rtol=1e-12,
        atol=1e-12,
    )
    w = np.arange(3.0)
    np.testing.assert_allclose(
        reductions.weighted_rows(jnp.asarray(w), jnp.asarray(x)), w @ x, rtol=1e-12, atol=1e-12
    )
    integers = jnp.arange(n, dtype=jnp.float32)
    assert float(reductions.segmented_sum(integers)) == n * (n - 1) / 2  # exact
