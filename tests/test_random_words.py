"""The engine's carried random bits (lagc_jax.random_words) are jax.random's, bit for bit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagc_jax as lj
from lagc_jax import delays, random_words, strategies
from lagc_jax.problems import lag_synthetic

# 2**31 and above: k is folded in as uint32, like jax.random.fold_in does
ITERATIONS = (0, 1, 7, 99, 2**31 - 1, 2**31 + 3, 2**32 - 1)
DTYPES = (jnp.float32, jnp.float64)
LAWS = (
    lj.ShiftedExponential(0.5, 2.0),
    lj.Pareto(1.0, 1.5),
    lj.MarkovStragglers(
        lj.ShiftedExponential(0.0, 1.0), slow_factor=4.0, p_slow=0.1, p_recover=0.5
    ),
)


def trial_keys(seed, count=300):
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(jnp.arange(count))


def same_bits(a, b):
    unsigned = jnp.uint32 if a.dtype == jnp.float32 else jnp.uint64
    return a.dtype == b.dtype and bool(jnp.all(a.view(unsigned) == b.view(unsigned)))


def test_matches_jax_under_jax_defaults():
    assert random_words.matches_jax()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("seed", [0, 12345])
def test_exponential_draws_are_jax_random_bit_for_bit(seed, dtype):
    keys = trial_keys(seed)

    @jax.jit
    def ours(keys, k):
        return jax.vmap(
            lambda key: random_words.exponential(
                random_words.random_bits(random_words.fold_in(key, k), 12, dtype), dtype
            )
        )(keys)

    @jax.jit
    def theirs(keys, k):
        return jax.vmap(
            lambda key: jax.random.exponential(jax.random.fold_in(key, k), (12,), dtype=dtype)
        )(keys)

    for k in ITERATIONS:
        assert same_bits(ours(keys, np.uint32(k)), theirs(keys, np.uint32(k))), k
    # the key words of fold_in too, and draws of another length (each side one program)
    folded = jax.jit(jax.vmap(lambda key: jnp.stack(random_words.fold_in(key, 5))))(keys)
    np.testing.assert_array_equal(
        folded,
        jax.jit(jax.vmap(lambda key: jax.random.key_data(jax.random.fold_in(key, 5))))(keys),
    )
    single = jax.jit(
        lambda key: random_words.exponential(
            random_words.random_bits(random_words.fold_in(key, 2), 37, dtype), dtype
        )
    )(keys[3])
    assert same_bits(
        single,
        jax.jit(lambda key: jax.random.exponential(jax.random.fold_in(key, 2), (37,), dtype))(
            keys[3]
        ),
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("law", LAWS, ids=lambda law: type(law).__name__)
def test_unit_times_from_bits_equal_sample_unit_times(law, dtype):
    assert delays.from_bits(law)
    keys = trial_keys(3, 50)

    @jax.jit
    def both(keys, k):
        expected = jax.vmap(
            lambda key: delays.sample_unit_times(law, jax.random.fold_in(key, k), 12, dtype=dtype)
        )(keys)
        got = jax.vmap(
            lambda key: delays.unit_times_from_bits(
                law, random_words.random_bits(random_words.fold_in(key, k), 12, dtype), dtype
            )
        )(keys)
        return got, expected

    for k in (0, 11):
        assert same_bits(*both(keys, np.uint32(k)))


def test_empirical_delays_draw_through_jax_random():
    assert not delays.from_bits(lj.Empirical([1.0, 2.0, 5.0]))


def test_random_bits_refuse_other_dtypes():
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        random_words.random_bits(random_words.fold_in(jax.random.key(0), 0), 4, jnp.float16)


@pytest.mark.parametrize(
    "name,law",
    [
        ("lagc", LAWS[0]),
        ("fastest-k", LAWS[2]),
        # slow: Pareto's draws from bits are jax.random's at the kernel level
        # (test_unit_times_from_bits_equal_sample_unit_times), carried like the others
        pytest.param("gc", LAWS[1], marks=pytest.mark.slow),
    ],
)
def test_simulate_with_carried_bits_equals_jax_random_draws(monkeypatch, name, law):
    """The carried path (bits of iteration k computed in iteration k − 1, across record
    blocks and chunks: chunks of 3 blocks of 2) gives the run jax.random gives, bit for bit."""
    problem = lag_synthetic(6, dim=8)
    strategy = strategies.make(name, 6, 1)
    kwargs = dict(num_iters=24, num_trials=7, seed=5, record_every=2, upload_time=0.2)
    carried = lj.simulate(problem, strategy, law, chunk_size=6, **kwargs)
    monkeypatch.setattr(delays, "from_bits", lambda delay: False)
    # unchunked: a program not compiled above (else the compiled carried path would be
    # reused), traced with jax.random's draws
    drawn = lj.simulate(problem, strategy, law, **kwargs)
    for field in ("loss", "wall_clock", "uploads", "computations", "downloads"):
        np.testing.assert_array_equal(getattr(carried, field), getattr(drawn, field), err_msg=field)


def test_other_bit_layouts_fall_back_to_jax_random():
    previous = jax.config.jax_threefry_partitionable
    try:
        jax.config.update("jax_threefry_partitionable", not previous)
        assert not random_words.matches_jax()
        assert not delays.from_bits(LAWS[0])
    finally:
        jax.config.update("jax_threefry_partitionable", previous)
    assert random_words.matches_jax()
