"""The delay-model protocol (lagc_jax.delays.DelayModel) and the laws written through it.

Weibull, LogNormal and Bimodal against their closed forms (sample moments within 4
standard errors, cdf against the empirical cdf, quantile inverting the cdf), the analysis'
order statistics against Monte Carlo, the CLI forms and their errors, the built-in laws'
draws bit for bit as before the protocol, and a law written in this file (as a user would)
through the module's kernels and the analysis.
"""

import json
import math
import statistics
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lagc_jax import analysis, delays, random_words
from lagc_jax.delays import (
    Bimodal,
    DelayModel,
    Empirical,
    LogNormal,
    MarkovStragglers,
    Pareto,
    ShiftedExponential,
    Weibull,
)

N = 200_000  # draws for moments and cdfs
M, S = 12, 2  # workers and stragglers for the order statistics
N_MC = 100_000  # Monte Carlo iterations of M workers
KEY = jax.random.key(2024)

WEIBULL = Weibull(scale=2.0, shape=0.7, shift=0.3)
LOGNORMAL = LogNormal(mu=-0.2, sigma=0.6)
BIMODAL = Bimodal(ShiftedExponential(shift=0.1, rate=2.0), slow_factor=8.0, p_slow=0.1)
NEW_LAWS = {"weibull": WEIBULL, "lognormal": LOGNORMAL, "bimodal": BIMODAL}


def _moments(name):
    """(mean, variance) of a law, written out here from the textbook formulas."""
    if name == "weibull":
        g1, g2 = math.gamma(1 + 1 / 0.7), math.gamma(1 + 2 / 0.7)
        return 0.3 + 2.0 * g1, 4.0 * (g2 - g1 * g1)
    if name == "lognormal":
        s2 = 0.36
        return math.exp(-0.2 + s2 / 2), (math.exp(s2) - 1) * math.exp(-0.4 + s2)
    base_mean, base_second = 0.1 + 0.5, 0.25 + 0.6**2  # Y = 0.1 + Exp(2)
    mean = base_mean * (0.9 + 0.1 * 8.0)
    second = base_second * (0.9 + 0.1 * 64.0)
    return mean, second - mean * mean


def _cdf_by_hand(name, x):
    if name == "weibull":
        return 1 - math.exp(-(((x - 0.3) / 2.0) ** 0.7)) if x > 0.3 else 0.0
    if name == "lognormal":
        return statistics.NormalDist(-0.2, 0.6).cdf(math.log(x)) if x > 0 else 0.0

    def exp_cdf(v):
        return 1 - math.exp(-2.0 * (v - 0.1)) if v > 0.1 else 0.0

    return 0.9 * exp_cdf(x) + 0.1 * exp_cdf(x / 8.0)


def _numpy_draws(name, rng, shape):
    """Independent numpy samplers (delays.py samples with jax)."""
    if name == "weibull":
        return 0.3 + 2.0 * rng.weibull(0.7, shape)
    if name == "lognormal":
        return rng.lognormal(-0.2, 0.6, shape)
    slow = rng.random(shape) < 0.1
    return (0.1 + rng.exponential(0.5, shape)) * np.where(slow, 8.0, 1.0)


def _assert_within_4se(samples, expected):
    samples = np.asarray(samples, dtype=float)
    se = samples.std(ddof=1) / math.sqrt(samples.size)
    assert abs(samples.mean() - expected) < 4 * se, (samples.mean(), expected, se)


@pytest.fixture(scope="module")
def draws():
    """N jax draws of every new law (one iteration of N workers: i.i.d.)."""
    return {name: np.asarray(law.sample(KEY, N)) for name, law in NEW_LAWS.items()}


# ------------------------------------------------------------------ closed forms


@pytest.mark.parametrize("name", NEW_LAWS)
def test_sample_moments_match_closed_forms(name, draws):
    x, (mean, var) = draws[name], _moments(name)
    assert NEW_LAWS[name].mean == pytest.approx(mean, rel=1e-13)
    _assert_within_4se(x, mean)
    centred = (x - x.mean()) ** 2  # the sample variance, and its standard error
    assert abs(centred.mean() - var) < 4 * centred.std(ddof=1) / math.sqrt(N), (centred.mean(), var)


@pytest.mark.parametrize("name", NEW_LAWS)
def test_cdf_against_formula_and_empirical_cdf(name, draws):
    law, x = NEW_LAWS[name], np.sort(draws[name])
    points = np.array([0.05, 0.2, 0.35, 0.6, 1.0, 1.7, 3.0, 6.0, 12.0])
    np.testing.assert_allclose(
        law.cdf(points), [_cdf_by_hand(name, v) for v in points], rtol=1e-13, atol=1e-15
    )
    np.testing.assert_allclose(law.cdf(points) + law.sf(points), 1.0, rtol=1e-14)
    assert law.cdf(-1.0) == 0.0 and law.sf(-1.0) == 1.0
    for q in (0.01, 0.1, 0.5, 0.9, 0.99):
        at = float(law.quantile(q))
        empirical = np.searchsorted(x, at, side="right") / N
        assert abs(empirical - q) < 4 * math.sqrt(q * (1 - q) / N), (q, empirical)


@pytest.mark.parametrize("name", NEW_LAWS)
def test_quantile_inverts_cdf(name):
    law = NEW_LAWS[name]
    q = np.concatenate([[1e-12, 1e-6], np.linspace(0.01, 0.99, 25), [1 - 1e-6, 1 - 1e-12]])
    np.testing.assert_allclose(law.cdf(law.quantile(q)), q, rtol=0, atol=1e-10)
    assert np.all(np.diff(law.quantile(q)) > 0)
    assert float(law.quantile(0.0)) == {"weibull": 0.3, "lognormal": 0.0, "bimodal": 0.1}[name]
    assert float(law.quantile(1.0)) == math.inf


def test_known_values():
    # Weibull: median shift + scale (ln 2)^(1/shape); LogNormal: median e^mu
    assert float(WEIBULL.quantile(0.5)) == pytest.approx(
        0.3 + 2.0 * math.log(2) ** (1 / 0.7), rel=1e-14
    )
    assert float(LOGNORMAL.quantile(0.5)) == pytest.approx(math.exp(-0.2), rel=1e-14)
    assert float(LOGNORMAL.quantile(0.975)) == pytest.approx(
        math.exp(-0.2 + 0.6 * 1.959963984540054), rel=1e-12
    )
    # shape 1 is the shifted exponential
    w, e = Weibull(scale=0.5, shape=1.0, shift=0.2), ShiftedExponential(shift=0.2, rate=2.0)
    x = np.linspace(0.0, 5.0, 11)
    np.testing.assert_allclose(w.cdf(x), e.cdf(x), rtol=1e-14, atol=0)
    assert w.mean == pytest.approx(e.mean, rel=1e-15)


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: Weibull(scale=0.0), r"scale must be finite and > 0, got 0\.0"),
        (lambda: Weibull(shape=-1), r"shape must be finite and > 0, got -1"),
        (lambda: Weibull(1.0, 1.0, shift=-0.5), r"shift must be finite and >= 0"),
        (lambda: Weibull(scale=math.nan), r"scale must be finite"),
        (lambda: Weibull(scale="2"), r"scale must be a real number"),
        (lambda: LogNormal(mu=math.inf), r"mu must be a finite real number"),
        (lambda: LogNormal(mu="0"), r"mu must be a real number"),
        (lambda: LogNormal(sigma=0.0), r"sigma must be finite and > 0"),
        (lambda: Bimodal(slow_factor=0.0), r"slow_factor must be finite and > 0"),
        (lambda: Bimodal(p_slow=1.5), r"p_slow must be in \[0, 1\], got 1\.5"),
        (lambda: Bimodal(p_slow=-0.1), r"p_slow must be finite and >= 0"),
        (lambda: Bimodal(base="exp"), r"base must be a delay model"),
        (lambda: MarkovStragglers(base=Empirical([1.0, 2.0])), r"base must be ShiftedExponential"),
        (lambda: jax.tree_util.tree_map(lambda v: -1.0, Weibull()).validate(), r"scale"),
        (lambda: jax.tree_util.tree_map(lambda v: math.nan, LogNormal()).validate(), r"mu"),
        (lambda: Bimodal(Weibull(), 2.0, 0.5)._replace(p_slow=2.0).validate(), r"p_slow"),
        (
            lambda: Bimodal(Pareto(), 2.0, 0.5)._replace(base=Pareto._make((1.0, 0.0))).validate(),
            r"shape must be finite and > 0",
        ),
    ],
)
def test_parameters_out_of_range_name_the_parameter(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_edge_parameters_are_valid():
    assert Bimodal(p_slow=0.0).validate().p_slow == 0.0
    assert Bimodal(p_slow=1.0).mean == pytest.approx(5.0, rel=1e-15)
    assert LogNormal(mu=-3.0, sigma=0.1).validate() == (-3.0, 0.1)
    assert MarkovStragglers(Weibull(2.0, 0.5), 3.0, 0.1, 0.4).validate().base == (2.0, 0.5, 0.0)


# ------------------------------------------------------------------ parse_delay


@pytest.mark.parametrize(
    "text, expected",
    [
        ("weibull:2,0.5", Weibull(2.0, 0.5, 0.0)),
        ("weibull:2,0.5,0.1", Weibull(2.0, 0.5, 0.1)),
        ("lognormal:-0.5,0.8", LogNormal(-0.5, 0.8)),
        ("bimodal:2,10,0.05", Bimodal(ShiftedExponential(0.0, 2.0), 10.0, 0.05)),
        ("exp:2,0.5", ShiftedExponential(0.5, 2.0)),
        ("pareto:1,1.5", Pareto(1.0, 1.5)),
    ],
)
def test_parse_delay_forms(text, expected):
    got = delays.parse_delay(text)
    assert type(got) is type(expected) and got == expected
    if isinstance(got, Bimodal):
        assert type(got.base) is ShiftedExponential


@pytest.mark.parametrize(
    "text, match",
    [
        (
            "weibull:1",
            r"^delay must be 'exp:RATE\[,SHIFT\]', 'pareto:SCALE,SHAPE', "
            r"'weibull:SCALE,SHAPE\[,SHIFT\]', 'lognormal:MU,SIGMA' or "
            r"'bimodal:RATE,SLOW_FACTOR,P_SLOW', got 'weibull:1'$",
        ),
        ("weibull:0,1", r"^scale must be finite and > 0, got 0\.0$"),
        ("weibull:1,0", r"^shape must be finite and > 0"),
        ("weibull:1,1,-1", r"^shift must be finite and >= 0"),
        ("lognormal:0,-1", r"^sigma must be finite and > 0"),
        ("lognormal:nan,1", r"^mu must be a finite real number"),
        ("lognormal:1", r"^delay must be"),
        ("bimodal:0,2,0.1", r"^rate must be finite and > 0"),
        ("bimodal:1,0,0.1", r"^slow_factor must be finite and > 0"),
        ("bimodal:1,2,2", r"^p_slow must be in \[0, 1\], got 2\.0$"),
        ("bimodal:1,2", r"^delay must be"),
        ("bimodal:1,x,0.1", r"^delay: cannot parse numbers in 'bimodal:1,x,0.1'$"),
        ("gamma:1,2", r"^delay must be"),
    ],
)
def test_parse_delay_errors_are_one_line_naming_the_parameter(text, match):
    with pytest.raises(ValueError, match=match) as error:
        delays.parse_delay(text)
    assert "\n" not in str(error.value)


# ------------------------------------------------------------------ analysis


@pytest.mark.parametrize("name", NEW_LAWS)
def test_iteration_times_against_monte_carlo(name):
    law = NEW_LAWS[name]
    x = _numpy_draws(name, np.random.default_rng(17), (N_MC, M))
    xs = np.sort(x, axis=1)
    sims = {
        "gd": xs[:, -1],
        "fastest-k": xs[:, M - S - 1],
        "gc": (S + 1) * xs[:, M - S - 1],
        "grouping": (S + 1) * x.reshape(N_MC, M // (S + 1), S + 1).min(2).max(1),
    }
    for strategy, compute in sims.items():
        expected = analysis.expected_iteration_time(
            strategy, M, S, law, upload_time=0.25, broadcast_time=0.1
        )
        assert isinstance(expected, float)
        _assert_within_4se(0.35 + compute, expected)
    # the law's own (jax) draws agree too: the k-th order statistic of M
    own = np.sort(np.asarray(law.sample(jax.random.key(5), N_MC * M)).reshape(N_MC, M), axis=1)
    for k in (1, M - S, M):
        _assert_within_4se(own[:, k - 1], analysis.expected_order_statistic(law, k, M))


def test_closed_forms_agree_with_quadrature():
    for k, n in [(1, 1), (1, 12), (1, 60)]:  # Weibull: the minimum is Weibull
        closed = analysis.expected_order_statistic(WEIBULL, k, n, method="closed")
        numeric = analysis.expected_order_statistic(WEIBULL, k, n, method="numeric")
        assert closed == pytest.approx(
            0.3 + 2.0 * n ** (-1 / 0.7) * math.gamma(1 + 1 / 0.7), rel=1e-14
        )
        assert numeric == pytest.approx(closed, rel=1e-10)
    with pytest.raises(ValueError, match=r"method='closed' needs a closed form of E X_\(2:12\)"):
        analysis.expected_order_statistic(WEIBULL, 2, 12, method="closed")
    # grouping with Weibull: closed min (min_of), numeric max; and fully numeric
    assert analysis.expected_min_then_max(WEIBULL, 3, 4) == pytest.approx(
        analysis.expected_min_then_max(WEIBULL, 3, 4, method="numeric"), rel=1e-10
    )
    # Weibull(shape 1) is the exponential, whose order statistics are closed forms
    w, e = Weibull(1.0, 1.0, 0.5), ShiftedExponential(0.5, 1.0)
    for k, n in [(10, 12), (12, 12), (30, 60)]:
        assert analysis.expected_order_statistic(w, k, n) == pytest.approx(
            analysis.expected_order_statistic(e, k, n), rel=1e-12
        )


@pytest.mark.parametrize(
    "law, mean",
    [
        (LOGNORMAL, math.exp(-0.2 + 0.18)),
        (LogNormal(1.0, 2.5), math.exp(1.0 + 3.125)),  # a heavy tail: mean 62, median e
        (Weibull(1.0, 0.15), math.gamma(1 + 1 / 0.15)),  # stretched exponential: mean 2594
        (BIMODAL, 0.6 * 1.7),
        (Bimodal(LogNormal(0.0, 1.0), 5.0, 0.2), math.exp(0.5) * 1.8),
    ],
)
def test_quadrature_over_unbounded_support(law, mean):
    assert analysis.expected_order_statistic(law, 1, 1, method="numeric") == pytest.approx(
        mean, rel=1e-8
    )


def test_bimodal_of_a_discrete_law_is_exact():
    """Bimodal over a pooled Empirical has atoms: E max of 3 by enumerating 6^3 outcomes."""
    law = Bimodal(Empirical([1.0, 2.0, 4.0]), slow_factor=3.0, p_slow=0.25)
    values = np.array([1.0, 2.0, 4.0, 3.0, 6.0, 12.0])
    weights = np.array([0.75, 0.75, 0.75, 0.25, 0.25, 0.25]) / 3
    grid = np.stack(np.meshgrid(values, values, values, indexing="ij"), -1).reshape(-1, 3)
    w = np.prod(
        np.stack(np.meshgrid(weights, weights, weights, indexing="ij"), -1).reshape(-1, 3), axis=1
    )
    assert analysis.expected_iteration_time("gd", 3, 0, law) == pytest.approx(
        float(np.sum(w * grid.max(1))), rel=1e-13
    )
    assert analysis.expected_iteration_time("fastest-k", 3, 1, law) == pytest.approx(
        float(np.sum(w * np.sort(grid, 1)[:, 1])), rel=1e-13
    )
    assert law.mean == pytest.approx(7 / 3 * 1.5, rel=1e-15)


# ------------------------------------------------------------------ the built-in laws, bit for bit


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["float32", "float64"])
def test_builtin_draws_are_the_formulas_of_before(dtype):
    """The draws the engine makes, written as delays.py wrote them before the protocol."""
    keys = [jax.random.fold_in(KEY, k) for k in (0, 1, 99)]
    base, pareto = ShiftedExponential(0.5, 2.0), Pareto(1.0, 1.5)
    markov = MarkovStragglers(Pareto(1.0, 3.0), 4.0, 0.1, 0.5)
    pooled, rows = Empirical([1.0, 2.0, 5.0]), Empirical(np.arange(1.0, 13.0).reshape(2, 6))
    shuffled = Empirical(np.arange(1.0, 13.0).reshape(2, 6), shuffle_columns=True)
    for key in keys:
        e = jax.random.exponential(key, (6,), dtype=dtype)
        assert _same_bits(delays.sample_unit_times(base, key, 6, dtype), 0.5 + e / 2.0)
        assert _same_bits(delays.sample_unit_times(pareto, key, 6, dtype), 1.0 * jnp.exp(e / 1.5))
        assert _same_bits(delays.sample_unit_times(markov, key, 6, dtype), 1.0 * jnp.exp(e / 3.0))
        assert _same_bits(WEIBULL.sample(key, 6, dtype), 0.3 + 2.0 * e ** (1.0 / 0.7))
        z = jax.random.normal(key, (6,), dtype=dtype)
        assert _same_bits(LOGNORMAL.sample(key, 6, dtype), jnp.exp(-0.2 + 0.6 * z))
        samples = jnp.asarray(pooled.samples, dtype=dtype)
        assert _same_bits(
            delays.sample_unit_times(pooled, key, 6, dtype),
            samples[jax.random.randint(key, (6,), 0, 3)],
        )
        table = jnp.asarray(rows.samples, dtype=dtype)
        assert _same_bits(
            delays.sample_unit_times(rows, key, 6, dtype), table[jax.random.randint(key, (), 0, 2)]
        )
        # the states: Markov flags and their transition, the shuffled columns
        flags = delays.init_delay_state(markov, key, 6)
        assert _same_bits(flags, jax.random.uniform(key, (6,)) < 0.1 / (0.1 + 0.5))
        u = jax.random.uniform(jax.random.fold_in(key, 1), (6,))
        moved = delays.advance_delay_state(markov, flags, jax.random.fold_in(key, 1))
        assert _same_bits(moved, jnp.where(flags, u >= 0.5, u < 0.1))
        x = jnp.arange(1.0, 7.0, dtype=dtype)
        assert _same_bits(
            delays.apply_delay_state(markov, moved, x), x * jnp.where(moved, 4.0, 1.0)
        )
        permutation = delays.init_delay_state(shuffled, key, 6)
        assert _same_bits(permutation, jax.random.permutation(key, 6))
        assert _same_bits(delays.apply_delay_state(shuffled, permutation, x), x[permutation])
        for law in (base, pareto, WEIBULL, LOGNORMAL, BIMODAL, pooled, rows):
            assert delays.init_delay_state(law, key, 6) == ()
            assert delays.apply_delay_state(law, (), x) is x


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["float32", "float64"])
def test_bits_ahead_give_the_same_draws(dtype):
    """from_standard of exponentials from random_words = sample, bit for bit."""
    laws = (
        ShiftedExponential(0.5, 2.0),
        Pareto(1.0, 1.5),
        WEIBULL,
        Weibull(0.5, 3.0),
        MarkovStragglers(WEIBULL, 4.0, 0.1, 0.5),
    )
    for law in laws:
        assert law.standard_exponential and delays.from_bits(law)
        for k in (0, 7, 2**31 + 3):
            bits = random_words.random_bits(random_words.fold_in(KEY, k), 12, dtype)
            assert _same_bits(
                delays.unit_times_from_bits(law, bits, dtype),
                delays.sample_unit_times(law, jax.random.fold_in(KEY, k), 12, dtype),
            )
    for law in (LOGNORMAL, BIMODAL, Empirical([1.0, 2.0])):
        assert not law.standard_exponential and not delays.from_bits(law)


def test_bimodal_pairs_with_its_base():
    """The base draw uses the key as the base alone does; about p_slow of them are slowed."""
    for base in (ShiftedExponential(0.1, 2.0), WEIBULL, LOGNORMAL):
        law = Bimodal(base, slow_factor=8.0, p_slow=0.1)
        x, y = np.asarray(law.sample(KEY, N)), np.asarray(base.sample(KEY, N))
        ratio = x / y
        slow = np.isclose(ratio, 8.0, rtol=1e-12)
        assert np.all(slow | (ratio == 1.0))
        assert abs(slow.mean() - 0.1) < 4 * math.sqrt(0.09 / N)
    assert np.all(
        np.asarray(Bimodal(WEIBULL, 8.0, 0.0).sample(KEY, 64))
        == np.asarray(WEIBULL.sample(KEY, 64))
    )


def test_protocol_attributes_and_parameters():
    markov = MarkovStragglers(ShiftedExponential(), 4.0, 0.1, 0.5)
    table = [  # (law, standard_exponential, job_indexable, parameters)
        (ShiftedExponential(0.5, 2.0), True, True, {"ShiftedExponential": [0.5, 2.0]}),
        (Pareto(1.0, 1.5), True, True, {"Pareto": [1.0, 1.5]}),
        (markov, True, False, {"MarkovStragglers": [0.0, 1.0, 4.0, 0.1, 0.5]}),
        (WEIBULL, True, True, {"Weibull": [2.0, 0.7, 0.3]}),
        (LOGNORMAL, False, True, {"LogNormal": [-0.2, 0.6]}),
        (
            BIMODAL,
            False,
            True,
            {
                "Bimodal": {
                    "base": {"ShiftedExponential": [0.1, 2.0]},
                    "slow_factor": 8.0,
                    "p_slow": 0.1,
                }
            },
        ),
        (Bimodal(markov, 2.0, 0.5), False, False, None),
        (Empirical([1.0, 2.0]), False, True, None),
    ]
    for law, standard, indexable, parameters in table:
        assert law.standard_exponential is standard and law.job_indexable is indexable, law
        assert delays.is_delay_model(law)
        if parameters is not None:
            assert delays.describe_parameters(law) == parameters
            assert json.loads(json.dumps(law.parameters())) == parameters
    record = delays.describe_parameters(Empirical([[1.0, 2.0]], shuffle_columns=True))
    assert record["Empirical"]["shape"] == [1, 2] and record["Empirical"]["shuffle_columns"]
    assert set(delays.DISTRIBUTIONS) >= {Weibull, LogNormal, Bimodal, Empirical}
    assert all(issubclass(cls, DelayModel) for cls in delays.DISTRIBUTIONS)
    assert not delays.is_delay_model("exp:1") and not delays.is_delay_model(Pareto)
    assert [law.describe() for law in NEW_LAWS.values()] == [
        "weibull(scale=2, shape=0.7, shift=0.3)",
        "lognormal(mu=-0.2, sigma=0.6)",
        "bimodal(exp(rate=2, shift=0.1), ×8 w.p. 0.1)",
    ]


def test_new_laws_trace_and_vmap_over_their_parameters():
    """Parameters are leaves: one compiled program for every value, vmappable."""
    scales = jnp.array([1.0, 2.0, 4.0])
    out = jax.vmap(lambda s: Weibull._make((s, 0.7, 0.0)).sample(KEY, 5))(scales)
    np.testing.assert_allclose(out[2], 4 * out[0], rtol=1e-14)
    run = jax.jit(lambda law, key: law.sample(key, 5))
    a, b = run(LOGNORMAL, KEY), run(LOGNORMAL._replace(mu=0.8), KEY)
    np.testing.assert_allclose(b, a * math.exp(1.0), rtol=1e-14)
    run(BIMODAL._replace(slow_factor=2.0), KEY)  # a third model type: its own program
    assert run._cache_size() == 2  # one program per model type, whatever the numbers


# ------------------------------------------------------------------ a law written by a user


@jax.tree_util.register_pytree_node_class
class Uniform(DelayModel):
    """Uniform(lo, hi) unit times, written against the protocol only."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def tree_flatten(self):
        return (self.lo, self.hi), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)

    def validate(self, num_workers=None):
        lo, hi = float(self.lo), float(self.hi)
        if not 0 <= lo < hi < math.inf:
            raise ValueError(f"Uniform needs 0 <= lo < hi < inf, got lo={lo!r}, hi={hi!r}")
        return Uniform(lo, hi)

    def sample(self, key, num_workers, dtype=None):
        return jax.random.uniform(key, (num_workers,), dtype=dtype, minval=self.lo, maxval=self.hi)

    def cdf(self, x):
        return np.clip((np.asarray(x, dtype=float) - self.lo) / (self.hi - self.lo), 0.0, 1.0)


@jax.tree_util.register_pytree_node_class
class Scaled(DelayModel):
    """c · E, E standard exponential, through from_standard only (no sample)."""

    standard_exponential = True

    def __init__(self, c):
        self.c = c

    def tree_flatten(self):
        return (self.c,), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)

    def from_standard(self, e):
        return self.c * e


def test_user_law_through_the_kernels():
    law = Uniform(1.0, 3.0).validate()
    assert delays.is_delay_model(law) and law.job_indexable and not delays.from_bits(law)
    x = delays.sample_unit_times(law, KEY, N)
    assert x.shape == (N,) and float(x.min()) >= 1.0 and float(x.max()) < 3.0
    _assert_within_4se(np.asarray(x), 2.0)
    assert delays.init_delay_state(law, KEY, 4) == ()
    assert delays.advance_delay_state(law, (), KEY) == ()
    assert delays.describe_parameters(law) == {"Uniform": [1.0, 3.0]}
    assert law.describe() == "Uniform(lo=1, hi=3)"
    assert law.mean == pytest.approx(2.0, rel=1e-9)  # the protocol's default: quadrature
    with pytest.raises(ValueError, match="lo=3.0, hi=1.0"):
        Uniform(3.0, 1.0).validate()
    with pytest.raises(ValueError, match=r"^c must be finite"):  # the default validate
        Scaled(math.inf).validate()
    # a law given by from_standard: the default sample, and the engine's bits path
    scaled = Scaled(2.0).validate()
    assert delays.from_bits(scaled)
    e = jax.random.exponential(KEY, (12,))
    assert _same_bits(delays.sample_unit_times(scaled, KEY, 12), 2.0 * e)
    bits = random_words.random_bits(random_words.fold_in(KEY, 3), 12, jnp.float64)
    assert _same_bits(
        delays.unit_times_from_bits(scaled, bits, jnp.float64),
        delays.sample_unit_times(scaled, jax.random.fold_in(KEY, 3), 12, jnp.float64),
    )


def test_user_law_through_the_analysis():
    law = Uniform(1.0, 3.0)
    # Uniform order statistics: lo + (hi - lo) k / (n + 1)
    assert analysis.expected_iteration_time("gd", M, S, law) == pytest.approx(
        1.0 + 2.0 * M / (M + 1), rel=1e-8
    )
    assert analysis.expected_iteration_time("fastest-k", M, S, law) == pytest.approx(
        1.0 + 2.0 * (M - S) / (M + 1), rel=1e-8
    )
    own = np.sort(np.asarray(law.sample(KEY, N_MC * M)).reshape(N_MC, M), axis=1)
    _assert_within_4se(own[:, -1], analysis.expected_iteration_time("gd", M, S, law))
    # composed with the built-in Bimodal: the analysis integrates the mixture
    slow = Bimodal(law, slow_factor=3.0, p_slow=0.2)
    assert slow.mean == pytest.approx(2.0 * 1.4, rel=1e-9)
    x = np.asarray(slow.sample(KEY, N_MC * M)).reshape(N_MC, M)
    _assert_within_4se(
        np.sort(x, 1)[:, M - S - 1], analysis.expected_iteration_time("fastest-k", M, S, slow)
    )
    with pytest.raises(ValueError, match="Uniform needs"):
        analysis.expected_iteration_time("gd", M, S, Uniform(2.0, 2.0))
    # Markov stragglers over the user's law (no state of its own): stationary mixture
    markov = MarkovStragglers(law, 3.0, 0.1, 0.3)
    assert markov.mean == pytest.approx(2.0 * (0.75 + 0.25 * 3.0), rel=1e-9)


def test_user_law_in_simulate():
    """The engine calls the protocol: a user law runs like a built-in one."""
    import lagc_jax as lj

    problem, K, T = lj.problems.lag_synthetic(6, dim=8), 40, 50
    try:
        r = lj.simulate(problem, lj.make("gd", 6), Uniform(1.0, 3.0), num_iters=K, num_trials=T)
    except ValueError as error:  # pragma: no cover - an engine that predates the protocol
        if "delay must be one of" in str(error):
            pytest.skip(f"this engine takes built-in delay classes only: {error}")
        raise
    per_iteration = np.diff(r.wall_clock, axis=1).ravel()
    assert per_iteration.size == K * T
    assert float(per_iteration.min()) >= 1.0 and float(per_iteration.max()) < 3.0
    expected = analysis.expected_iteration_time("gd", 6, 0, Uniform(1.0, 3.0))
    _assert_within_4se(per_iteration, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert r.config["delay"] == {"Uniform": [1.0, 3.0]}


def test_builtin_new_law_in_simulate():
    """Weibull (drawn from random bits computed ahead) through the engine: the mean
    iteration time of fastest-k is the analysis' E X_(M−S:M)."""
    import lagc_jax as lj

    K, T = 40, 50
    r = lj.simulate(
        lj.problems.lag_synthetic(6, dim=8),
        lj.make("fastest-k", 6, 1),
        WEIBULL,
        num_iters=K,
        num_trials=T,
    )
    per_iteration = np.diff(r.wall_clock, axis=1).ravel()
    assert float(per_iteration.min()) >= 0.3
    _assert_within_4se(per_iteration, analysis.expected_iteration_time("fastest-k", 6, 1, WEIBULL))
    assert r.config["delay"] == {"Weibull": [2.0, 0.7, 0.3]}


def test_a_model_without_sample_or_from_standard_is_told_what_to_define():
    """The protocol's defaults name the class and the method a user's model lacks."""

    class NoDraws(delays.DelayModel):
        pass

    with pytest.raises(NotImplementedError, match=r"NoDraws must define sample\(key"):
        NoDraws().sample(jax.random.key(0), 3)
    with pytest.raises(NotImplementedError, match="NoDraws is not a transform of standard"):
        NoDraws().from_standard(jnp.ones(3))
