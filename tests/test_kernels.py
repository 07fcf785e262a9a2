"""Public kernels (delays, link models, wait rules, triggers): jit, vmap, numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lagc_jax import delays, strategies, timing


# --------------------------------------------------------------------------- #
# numpy references, written as a researcher would (loops, no vectorisation)
# --------------------------------------------------------------------------- #
def np_arrivals(c, uploads, tau, link):
    if link == "parallel":
        return c + tau * uploads
    out = c.astype(float).copy()
    link_free = -np.inf
    for j in sorted(range(len(c)), key=lambda i: (c[i], i)):
        if uploads[j]:
            link_free = max(c[j], link_free) + tau
            out[j] = link_free
    return out


def np_fastest(arrivals, k):
    order = sorted(range(len(arrivals)), key=lambda i: (arrivals[i], i))[:k]
    used = np.zeros(len(arrivals), bool)
    used[order] = True
    return used, (arrivals[order[-1]] if k else 0.0)


def np_first_per_group(arrivals, size):
    used = np.zeros(len(arrivals), bool)
    times = []
    for g in range(len(arrivals) // size):
        block = arrivals[g * size : (g + 1) * size]
        used[g * size + int(np.argmin(block))] = True
        times.append(block.min())
    return used, max(times)


times_arrays = st.integers(2, 9).flatmap(
    lambda m: st.tuples(
        st.lists(st.floats(0, 10, allow_nan=False, allow_subnormal=False), min_size=m, max_size=m),
        st.lists(st.booleans(), min_size=m, max_size=m),
        st.floats(0, 3, allow_nan=False),
    )
)


@settings(max_examples=60, deadline=None)
@given(times_arrays)
def test_arrivals_match_numpy(case):
    c, uploads, tau = np.array(case[0]), np.array(case[1]), case[2]
    for link in timing.LINKS:
        got = jax.jit(timing.arrival_times, static_argnums=3)(c, uploads, tau, link)
        np.testing.assert_allclose(got, np_arrivals(c, uploads, tau, link), rtol=1e-12, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(times_arrays, st.integers(0, 9))
def test_wait_fastest_matches_numpy(case, k):
    arrivals = np.array(case[0])
    k = min(k, len(arrivals))
    used, t = jax.jit(strategies.wait_fastest, static_argnums=1)(arrivals, k)
    ref_used, ref_t = np_fastest(arrivals, k)
    np.testing.assert_array_equal(used, ref_used)
    assert float(t) == ref_t


def test_kernels_vmap_over_trials():
    """(Each vmapped kernel jitted: one program, not one per operation.)"""
    rng = np.random.default_rng(0)
    c = rng.exponential(size=(50, 6))
    uploads = rng.random((50, 6)) < 0.7
    shared = jax.jit(jax.vmap(lambda x, u: timing.arrival_times(x, u, 0.4, "shared")))(c, uploads)
    for i in range(50):
        np.testing.assert_allclose(
            shared[i], np_arrivals(c[i], uploads[i], 0.4, "shared"), rtol=1e-12
        )
    used, t = jax.jit(jax.vmap(lambda a: strategies.wait_first_per_group(a, 3)))(c)
    for i in range(50):
        ref_used, ref_t = np_first_per_group(c[i], 3)
        np.testing.assert_array_equal(used[i], ref_used)
        assert float(t[i]) == ref_t
    used, t = jax.jit(jax.vmap(lambda a: strategies.wait_fastest(a, 4)))(c)
    assert used.sum(axis=1).tolist() == [4] * 50
    np.testing.assert_array_equal(t, np.sort(c, axis=1)[:, 3])


def test_wait_all_and_restricted_groups():
    arrivals = jnp.array([3.0, 1.0, 2.0, 5.0])
    used, t = strategies.wait_all(arrivals, jnp.array([True, True, True, False]))
    assert used.tolist() == [True, True, True, False] and float(t) == 3.0
    used, t = strategies.wait_all(arrivals, jnp.zeros(4, bool))
    assert float(t) == 0.0
    used, t = strategies.wait_first_per_group(arrivals, 2, jnp.array([True, False]))
    assert used.tolist() == [False, True, False, False] and float(t) == 1.0


def test_ties_break_by_worker_index():
    used, t = strategies.wait_fastest(jnp.array([1.0, 1.0, 1.0]), 2)
    assert used.tolist() == [True, True, False]
    used, _ = strategies.wait_first_per_group(jnp.array([2.0, 2.0, 1.0, 1.0]), 2)
    assert used.tolist() == [True, False, True, False]


def test_shared_link_fifo_by_completion():
    # uploads at 1, 1.1, 1.2 with τ = 0.5 queue up: 1.5, 2.0, 2.5; a skip at 1.05 arrives at once.
    c = jnp.array([1.2, 1.0, 1.1, 1.05])
    up = jnp.array([True, True, True, False])
    np.testing.assert_allclose(timing.arrival_times(c, up, 0.5, "shared"), [2.5, 1.5, 2.0, 1.05])
    np.testing.assert_allclose(timing.arrival_times(c, up, 0.5, "parallel"), [1.7, 1.5, 1.6, 1.05])


# --------------------------------------------------------------------------- #
# delays
# --------------------------------------------------------------------------- #
def test_sample_unit_times_jit_vmap_and_moments():
    keys = jax.random.split(jax.random.key(0), 20000)
    exp = jax.jit(
        jax.vmap(lambda k: delays.sample_unit_times(delays.ShiftedExponential(0.5, 2.0), k, 3))
    )(keys)
    # mean 0.5 + 1/2, sd 1/2: standard error 0.5/sqrt(60000)
    assert abs(float(exp.mean()) - 1.0) < 4 * 0.5 / np.sqrt(exp.size)
    assert float(exp.min()) >= 0.5
    par = jax.jit(jax.vmap(lambda k: delays.sample_unit_times(delays.Pareto(2.0, 3.0), k, 3)))(keys)
    # P(X > x) = (2/x)^3: check the empirical tail at x = 3 within 4 binomial standard errors
    p = (2.0 / 3.0) ** 3
    assert abs(float((par > 3.0).mean()) - p) < 4 * np.sqrt(p * (1 - p) / par.size)
    assert float(par.min()) >= 2.0


def test_delays_share_standard_draws():
    """Both distributions transform the same exponential draws: paired across distributions."""
    key = jax.random.key(3)
    e = delays.sample_unit_times(delays.ShiftedExponential(0.0, 1.0), key, 8)
    x = delays.sample_unit_times(delays.Pareto(1.5, 2.0), key, 8)
    np.testing.assert_allclose(x, 1.5 * np.exp(np.asarray(e) / 2.0), rtol=1e-12)


def test_delay_parameters_vmap():
    rates = jnp.array([1.0, 2.0, 4.0])
    out = jax.vmap(
        lambda r: delays.sample_unit_times(delays.ShiftedExponential(0.0, r), jax.random.key(1), 4)
    )(rates)
    np.testing.assert_allclose(out[1] * 2, out[0], rtol=1e-12)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("exp:2", delays.ShiftedExponential(0.0, 2.0)),
        ("exp:2,0.5", delays.ShiftedExponential(0.5, 2.0)),
        ("pareto:1,1.5", delays.Pareto(1.0, 1.5)),
    ],
)
def test_parse_delay(text, expected):
    assert delays.parse_delay(text) == expected


@pytest.mark.parametrize("text", ["exp:0", "pareto:1", "gamma:1,2", "exp:a", "pareto:1,-2"])
def test_parse_delay_rejects(text):
    with pytest.raises(ValueError):
        delays.parse_delay(text)


# --------------------------------------------------------------------------- #
# lazy triggers
# --------------------------------------------------------------------------- #
def test_threshold_and_ring_buffer():
    h = jnp.zeros(3)
    for k, step in enumerate([1.0, 2.0, 3.0, 4.0]):
        h = strategies.push_step(h, step, k)
    np.testing.assert_allclose(h, [4.0, 2.0, 3.0])  # step 1 fell out of the window of D = 3
    thr = strategies.lazy_threshold(h, 2.0, 0.1, 4)
    assert float(thr) == pytest.approx(2.0 * 9.0 / (0.01 * 16 * 3))


def test_triggers_strict_and_vmappable():
    fresh = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    stored = jnp.zeros((2, 2))
    np.testing.assert_array_equal(strategies.worker_trigger(fresh, stored, 1.0), [False, True])
    thetas = jnp.array([[0.0, 0.0], [1.0, 0.0]])
    asked = jax.vmap(
        lambda t: strategies.server_trigger(t, jnp.zeros((2, 2)), jnp.array([1.0, 3.0]), 1.0)
    )(thetas)
    np.testing.assert_array_equal(asked, [[False, False], [False, True]])  # 1·1 > 1 is False; 9 > 1
