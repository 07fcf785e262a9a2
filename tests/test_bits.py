"""Communication in bits (MODEL.md §9): `qgd` and `laq` against a plain NumPy implementation
of §9 on replayed unit times, the equivalences of §9, the compressors (LAQ's innovation
quantizer, QSGD, Wangni et al.'s sparsification) alone and composed with other strategies,
the compressor's contract checks, and the inputs refused before compiling."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagc_jax as lj
from lagc_jax import strategies as st
from lagc_jax.strategies import compress
from lagc_jax.strategies.contracts import check_strategy

from helpers import assert_same_run, count_compilations

M, DIM, K, T = 6, 10, 30, 3
TAU, LATENCY, TAU_B = 0.5, 0.2, 0.3
TIMES = np.random.default_rng(0).exponential(size=(T, K, M))
SYNTHETIC = lj.problems.lag_synthetic(M, dim=DIM)


def _logistic():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((8 * M, DIM))
    y = np.where(X @ rng.standard_normal(DIM) + 0.5 * rng.standard_normal(8 * M) > 0, 1.0, -1.0)
    return lj.problems.logistic_regression(X, y, l2=0.1, num_partitions=M)


LOGISTIC = _logistic()
PROBLEMS = {"lag_synthetic": SYNTHETIC, "logistic": LOGISTIC}


# --------------------------------------------------------------------------- #
# MODEL.md §9 in plain NumPy
# --------------------------------------------------------------------------- #
def partition_grads(problem, theta):
    """(P, d) ∇f_p(θ) of least squares or L2-logistic regression (MODEL.md §1)."""
    (X, y), w = problem.examples, problem.weights
    margins = X @ theta
    if problem.quadratic is None:  # logistic: ℓ = log(1 + exp(−y xᵀθ))
        residual = -y * 0.5 * (1 - np.tanh(0.5 * y * margins))
    else:
        residual = margins - y
    return np.einsum("pni,pn->pi", X, w * residual) + problem.l2 * theta


def loss(problem, theta):
    (X, y), w = problem.examples, problem.weights
    margins = X @ theta
    if problem.quadratic is None:
        per_example = np.logaddexp(0.0, -y * margins)
    else:
        per_example = 0.5 * (margins - y) ** 2
    return float(
        np.sum(w * per_example) + 0.5 * problem.num_partitions * problem.l2 * theta @ theta
    )


def np_quantize(g, q, b):
    """The LAQ authors' `quantd` (sunjunaimer/LAQ, LAQ.py) row by row, Q = q where R = 0."""
    difference = g - q
    r = np.max(np.abs(difference), axis=1, keepdims=True)
    delta = r / (2.0**b - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        quantized = q - r + 2 * delta * np.floor((difference + r + delta) / (2 * delta))
    return np.where(r > 0, quantized, q)


def np_arrivals(compute, uploads, duration, link):
    """MODEL.md §3/§9: a parallel link per worker, or one FIFO uplink in order of compute
    completion (ties by index); skip notices arrive at their compute time."""
    if link == "parallel":
        return compute + np.where(uploads, duration, 0.0)
    arrival, free = compute.copy(), -np.inf
    for m in np.argsort(compute, kind="stable"):
        if uploads[m]:
            free = max(compute[m], free) + duration
            arrival[m] = free
    return arrival


def numpy_laq(problem, *, bits, lazy, xi=0.8, history=10, max_skips=100, link="parallel"):
    """qgd (lazy=False) or laq on replayed TIMES, MODEL.md §9 line by line. Returns the
    losses, decisions (K, M), relative margins of the unforced decisions, and wall clocks."""
    alpha, d = 1.0 / problem.smoothness, problem.dim
    theta, previous = np.zeros(d), np.zeros(d)
    steps = np.zeros(history)  # ring buffer of ‖θ^{j+1} − θ^j‖², missing history 0
    held, held_error = np.zeros((M, d)), np.zeros(M)
    skipped, heard = np.zeros(M, int), np.zeros(M, bool)
    losses, masks, margins = [loss(problem, theta)], [], []
    for k in range(K):
        steps[(k - 1) % history] = np.sum((theta - previous) ** 2)
        previous = theta.copy()
        threshold = xi * steps.sum() / (alpha**2 * M**2 * history)
        g = partition_grads(problem, theta)
        Q = np_quantize(g, held, bits)
        error = np.sum((Q - g) ** 2, axis=1)
        send = np.ones(M, bool)
        if lazy:
            innovation = np.sum((Q - held) ** 2, axis=1)
            bound = threshold + 3 * (error + held_error)
            forced = ~heard | (skipped >= max_skips)
            send = (innovation >= bound) | forced
            scale = np.maximum(np.maximum(innovation, bound), 1e-300)
            margins.extend((np.abs(innovation - bound) / scale)[~forced])
        held[send], held_error[send] = Q[send], error[send]
        heard |= send
        skipped = np.where(send, 0, skipped + 1)
        theta = theta - alpha * held.sum(axis=0)
        losses.append(loss(problem, theta))
        masks.append(send)
    masks = np.array(masks)
    duration = LATENCY + TAU * (bits * d + 32) / (32 * d)
    rounds = np.array(
        [
            [TAU_B + np_arrivals(TIMES[t, k], masks[k], duration, link).max() for k in range(K)]
            for t in range(T)
        ]
    )
    wall_clock = np.concatenate([np.zeros((T, 1)), np.cumsum(rounds, axis=1)], axis=1)
    return dict(
        loss=np.array(losses), masks=masks, margins=np.array(margins), wall_clock=wall_clock
    )


def simulate(problem, strategy, link="parallel", **options):
    settings = dict(
        num_iters=K,
        num_trials=T,
        unit_times=TIMES,
        upload_time=TAU,
        latency=LATENCY,
        broadcast_time=TAU_B,
        link=link,
        record_masks=True,
    )
    return lj.simulate(problem, strategy, None, **(settings | options))


def cumulative(per_round):
    return np.concatenate([[0], np.cumsum(per_round)])


@pytest.mark.parametrize(
    "problem_name, name, options, link",
    [
        ("lag_synthetic", "qgd", {}, "parallel"),
        ("lag_synthetic", "laq", {}, "parallel"),
        ("logistic", "qgd", {"bits": 3}, "shared"),
        ("logistic", "laq", {"bits": 3, "max_skips": 3, "xi": 0.5}, "shared"),
    ],
)
def test_qgd_and_laq_match_numpy(problem_name, name, options, link):
    """Decisions and counts exact, bits_up = (b·d + 32) per upload, losses to rounding and
    wall clocks (τ, latency, τ_b > 0) of a NumPy implementation of §9, on both problems."""
    problem = PROBLEMS[problem_name]
    bits = options.get("bits", 4)
    expected = numpy_laq(
        problem,
        bits=bits,
        lazy=name == "laq",
        link=link,
        **{k: v for k, v in options.items() if k != "bits"},
    )
    r = simulate(problem, lj.make(name, M, **options), link)
    for t in range(T):
        np.testing.assert_array_equal(r.upload_mask[t], expected["masks"])
        np.testing.assert_array_equal(r.uploads[t], cumulative(expected["masks"].sum(axis=1)))
    np.testing.assert_array_equal(r.bits_up, (bits * DIM + 32) * r.uploads)
    np.testing.assert_array_equal(r.bits_down, 32 * DIM * r.downloads)
    np.testing.assert_array_equal(np.diff(r.downloads, axis=1), M)
    np.testing.assert_array_equal(np.diff(r.computations, axis=1), M)
    np.testing.assert_allclose(r.loss, np.broadcast_to(expected["loss"], r.loss.shape), rtol=1e-10)
    np.testing.assert_allclose(r.wall_clock, expected["wall_clock"], rtol=1e-12)
    if name == "laq":
        uploads = expected["masks"].sum()
        assert 0 < uploads - M < M * (K - 1)  # the rule skipped and uploaded after k = 0
        assert expected["margins"].min() > 1e-8  # no decision within rounding of its bound
        if "max_skips" in options:  # a unit that skipped C rounds uploaded at the next
            runs = ["".join("x" if m else "." for m in column) for column in expected["masks"].T]
            longest = max(len(run) for column in runs for run in column.split("x"))
            assert longest == options["max_skips"]


# --------------------------------------------------------------------------- #
# the equivalences of §9
# --------------------------------------------------------------------------- #
def test_qgd_with_40_bits_is_gd():
    """b = 40: the quantization error is ≤ R/(2^40 − 1) per coordinate, so the iterates are
    gd's to ~1e-13; counts and (τ = latency = 0) wall clocks are gd's exactly."""
    plain = dict(upload_time=0.0, latency=0.0)
    gd = simulate(SYNTHETIC, lj.make("gd", M), **plain)
    qgd = simulate(SYNTHETIC, lj.make("qgd", M, bits=40), **plain)
    np.testing.assert_allclose(qgd.loss, gd.loss, rtol=1e-13)
    assert_same_run(qgd, gd, rtol=1e-13)
    np.testing.assert_array_equal(qgd.wall_clock, gd.wall_clock)


def test_laq_with_40_bits_and_no_skip_limit_makes_lag_wks_decisions():
    """b = 40, C = ∞: LAQ's rule is LAG-WK's with ξ_WK = ξ (its 3(e + ê) ~ 1e-24 relative,
    "≥" against ">"), decision for decision; the NumPy replay shows none is a near tie."""
    xi = 1.0
    lag = simulate(SYNTHETIC, lj.make("lag-wk", M, xi=xi))
    laq = simulate(SYNTHETIC, lj.make("laq", M, xi=xi, bits=40, max_skips=math.inf))
    replay = numpy_laq(SYNTHETIC, bits=40, lazy=True, xi=xi, max_skips=math.inf)
    assert replay["margins"].min() > 1e-6
    np.testing.assert_array_equal(laq.upload_mask, lag.upload_mask)
    np.testing.assert_array_equal(laq.uploads, lag.uploads)
    assert 0 < lag.uploads[0, -1] - M < M * (K - 1)
    np.testing.assert_allclose(laq.loss, lag.loss, rtol=1e-10)


def test_laq_with_max_skips_zero_is_qgd():
    """C = 0: every unit uploads every round, so laq is qgd in iterates, wall clock, counts
    and bits, bit for bit."""
    qgd = simulate(LOGISTIC, lj.make("qgd", M), "shared")
    laq = simulate(LOGISTIC, lj.make("laq", M, max_skips=0), "shared")
    assert_same_run(laq, qgd, rtol=0)
    np.testing.assert_array_equal(laq.bits_up, qgd.bits_up)


# --------------------------------------------------------------------------- #
# the compressors
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_innovation_quantizer_is_laqs_quantizer(bits):
    """Q_b(g; q) is the LAQ authors' `quantd`; it lies on the grid of 2^b levels on
    [q − R, q + R], within δ of g; β = b·d + 32; R = 0 gives Q = q with error 0."""
    rng = np.random.default_rng(bits)
    g, q = rng.standard_normal((5, 7)), rng.standard_normal((5, 7))
    q[4] = g[4]  # R = 0
    out = compress.InnovationQuantizer(bits).compress(jnp.asarray(q), jnp.asarray(g), None)
    values = np.asarray(out.values)
    r = np.max(np.abs(g - q), axis=1, keepdims=True)
    delta = r / (2**bits - 1)
    np.testing.assert_allclose(values, np_quantize(g, q, bits), rtol=0, atol=1e-14)
    index = (values[:4] - q[:4] + r[:4]) / (2 * delta[:4])
    np.testing.assert_allclose(index, np.round(index), atol=1e-9)
    assert index.min() > -1e-9 and index.max() < 2**bits - 1 + 1e-9
    assert np.all(np.abs(values[:4] - g[:4]) <= delta[:4] * (1 + 1e-12))
    np.testing.assert_array_equal(values[4], q[4])
    np.testing.assert_allclose(out.errors, np.sum((values - g) ** 2, axis=1), rtol=1e-14)
    assert float(out.errors[4]) == 0.0
    np.testing.assert_array_equal(out.bits, bits * 7 + 32)


def compress_many(compressor, fresh, draws):
    keys = jax.random.split(jax.random.key(7), draws)
    return jax.jit(jax.vmap(lambda key: compressor.compress((), fresh, key)))(keys)


def test_stochastic_quantizer_is_unbiased_within_qsgds_variance_bound():
    """QSGD with s levels: E Q(g) = g (every coordinate within 5 standard errors over 4000
    draws), E‖Q(g) − g‖² ≤ min(d/s², √d/s)‖g‖², values on the grid ‖g‖ℓ/s,
    β = 32 + d(1 + ⌈log₂(s + 1)⌉)."""
    levels, d, draws = 3, 16, 4000
    fresh = jnp.asarray(np.random.default_rng(2).standard_normal((2, d)))
    out = compress_many(compress.StochasticQuantizer(levels), fresh, draws)
    values, g = np.asarray(out.values), np.asarray(fresh)
    se = values.std(axis=0) / math.sqrt(draws)
    assert np.all(np.abs(values.mean(axis=0) - g) <= 5 * se + 1e-12)
    norms = np.linalg.norm(g, axis=1)
    grid = np.abs(values) * levels / norms[None, :, None]
    np.testing.assert_allclose(grid, np.round(grid), atol=1e-9)
    errors = np.asarray(out.errors)
    bound = min(d / levels**2, math.sqrt(d) / levels) * norms**2
    assert np.all(errors.mean(axis=0) <= bound + 5 * errors.std(axis=0) / math.sqrt(draws))
    np.testing.assert_allclose(errors, np.sum((values - g) ** 2, axis=-1), rtol=1e-12)
    np.testing.assert_array_equal(out.bits, 32 + d * (1 + 2))


def np_keep_probabilities(a, budget):
    """Wangni et al.'s probabilities by iterated capping: p = min(1, λ|g|), Σ p = budget."""
    a = np.abs(a)
    active = a > 0
    if active.sum() <= budget:
        return active.astype(float)
    capped = np.zeros_like(active)
    while True:
        scale = (budget - capped.sum()) / a[active & ~capped].sum()
        new = active & ~capped & (scale * a > 1)
        if not new.any():
            return np.where(capped, 1.0, scale * a)
        capped |= new


def test_keep_probabilities_are_wangnis():
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = np.abs(rng.standard_cauchy(12)) * (rng.random(12) < 0.8)  # heavy tails: caps
        budget = float(rng.uniform(0.5, 12))
        p = np.asarray(compress.keep_probabilities(jnp.asarray(a), budget))
        np.testing.assert_allclose(p, np_keep_probabilities(a, budget), rtol=1e-12, atol=1e-15)
        assert p.max() <= 1 and abs(p.sum() - min(budget, (a > 0).sum())) < 1e-9


def test_random_sparsifier_is_unbiased_with_the_expected_density():
    """E C(g) = g (5 standard errors over 4000 draws); kept coordinates number density·d on
    average; β = 32n + min(d, n⌈log₂ d⌉) for the n kept."""
    density, d, draws = 0.25, 16, 4000
    fresh = jnp.asarray(np.random.default_rng(4).standard_normal((2, d)))
    out = compress_many(compress.RandomSparsifier(density), fresh, draws)
    values, g = np.asarray(out.values), np.asarray(fresh)
    se = values.std(axis=0) / math.sqrt(draws)
    assert np.all(np.abs(values.mean(axis=0) - g) <= 5 * se + 1e-12)
    kept = (values != 0).sum(axis=-1)
    assert abs(kept.mean() - density * d) <= 5 * kept.std() / math.sqrt(kept.size)
    np.testing.assert_array_equal(out.bits, 32 * kept + np.minimum(d, 4 * kept))


# --------------------------------------------------------------------------- #
# compressors composed with other strategies
# --------------------------------------------------------------------------- #
def with_compressor(name, compressor, **options):
    strategy = lj.make(name, M, 1, **options)
    return dataclasses.replace(strategy, compressor=compressor, name=f"quantized {name}")


def test_quantized_fastest_k_at_40_bits_is_fastest_k():
    """A compressor on a strategy that drops late messages: at b = 40 with τ = latency = 0
    the waits, counts and masks are fastest-k's exactly and the iterates to ~1e-12 (each
    worker quantizes against its last message the server used); bits_up = (40 d + 32)
    per used message."""
    plain = dict(upload_time=0.0, latency=0.0)
    original = simulate(SYNTHETIC, lj.make("fastest-k", M, 1), **plain)
    quantized = simulate(
        SYNTHETIC, with_compressor("fastest-k", compress.InnovationQuantizer(40)), **plain
    )
    assert_same_run(quantized, original, rtol=1e-12)
    np.testing.assert_array_equal(quantized.upload_mask, original.upload_mask)
    np.testing.assert_array_equal(quantized.wall_clock, original.wall_clock)
    np.testing.assert_array_equal(quantized.bits_up, (40 * DIM + 32) * quantized.uploads)


@pytest.mark.parametrize("name", ["lag-ps", "g-lag"])
def test_quantized_server_side_lag_pays_link_time_for_its_bits(name):
    """Quantized lag-ps and g-lag (b = 4, τ, latency, τ_b > 0): from the units the server
    asked (the recorded masks), each round lasts τ_b + the last asked unit's first
    arrival, an upload taking latency + τ(4d + 32)/(32d); uploads, downloads,
    computations and bits_up follow from the same masks."""
    S = 1
    size = 1 if name == "lag-ps" else S + 1
    r = simulate(SYNTHETIC, with_compressor(name, compress.InnovationQuantizer(4)))
    asked = r.upload_mask  # (T, K, units)
    assert 0 < asked.sum() < asked.size  # the server-side rule skipped some units
    duration = LATENCY + TAU * (4 * DIM + 32) / (32 * DIM)
    first = (size * TIMES + duration).reshape(T, K, M // size, size).min(axis=-1)
    expected = TAU_B + np.where(asked, first, 0.0).max(axis=-1)
    np.testing.assert_allclose(np.diff(r.wall_clock, axis=1), expected, rtol=1e-12)
    units = asked.sum(axis=-1)
    np.testing.assert_array_equal(np.diff(r.uploads, axis=1), units)
    np.testing.assert_array_equal(np.diff(r.downloads, axis=1), size * units)
    np.testing.assert_array_equal(np.diff(r.computations, axis=1), size * size * units)
    np.testing.assert_array_equal(r.bits_up, (4 * DIM + 32) * r.uploads)


def test_stochastic_quantizer_on_groups_runs_per_trial_and_reports_its_bits():
    """QSGD on g-lag-wk (group units, each group's members send one draw): delay-dependent
    (each trial draws from its own key), reproducible, bits_up = 32 + d(1 + 3) per message."""
    strategy = with_compressor("g-lag-wk", compress.StochasticQuantizer(levels=4))
    assert strategy.delay_dependent
    r = simulate(SYNTHETIC, strategy, seed=3)
    assert_same_run(r, simulate(SYNTHETIC, strategy, seed=3), rtol=0)
    assert np.all(np.isfinite(r.loss)) and not np.array_equal(r.loss[0], r.loss[1])
    np.testing.assert_array_equal(r.bits_up, (32 + DIM * (1 + 3)) * r.uploads)
    groups = r.upload_mask.sum(axis=-1)
    np.testing.assert_array_equal(np.diff(r.uploads, axis=1), groups)  # one message a group


def test_random_sparsifier_on_fastest_k_reports_its_bits():
    """Sparsification on fastest-k: per trial (stochastic), between 0 and 32 d + d bits per
    used message."""
    strategy = with_compressor("fastest-k", compress.RandomSparsifier(density=0.5))
    r = simulate(SYNTHETIC, strategy, seed=3)
    assert strategy.delay_dependent and np.all(np.isfinite(r.loss))
    per_message = np.diff(r.bits_up, axis=1) / np.diff(r.uploads, axis=1)
    assert np.all((per_message > 0) & (per_message <= 33 * DIM))


# --------------------------------------------------------------------------- #
# bad input: refused by name, before compiling
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "name, options, pattern",
    [
        ("qgd", {"bits": 0}, r"bits must be an integer in \[1, 52\], got 0"),
        ("qgd", {"bits": 53}, r"bits must be an integer in \[1, 52\], got 53"),
        ("laq", {"bits": 4.5}, r"bits must be an integer in \[1, 52\], got 4.5"),
        ("laq", {"bits": True}, r"bits must be an integer .* got True"),
        ("laq", {"xi": -0.1}, r"xi must be a finite number >= 0, got -0.1"),
        ("laq", {"max_skips": -1}, r"max_skips must be an integer >= 0 or math.inf .* got -1"),
        ("laq", {"max_skips": 2.5}, r"max_skips must be .* got 2.5"),
        ("laq", {"start": "lag-reference"}, r"option 'start' does not apply to strategy 'laq'"),
        ("qgd", {"xi": 1.0}, r"option 'xi' does not apply to strategy 'qgd'"),
    ],
)
def test_bad_options_are_named(name, options, pattern):
    with pytest.raises(ValueError, match=pattern):
        lj.make(name, M, **options)


@st.pytree_dataclass
class PlanWithoutCompressed(st.NoTrigger):
    """A user trigger written before compressors: its plan takes no ``compressed``."""

    def plan(self, state, placement, round, messages, knobs):
        return super().plan(state, placement, round, messages, knobs)


def test_bad_runs_are_refused_by_name_before_compiling():
    """Negative latency, a compressor on a decoding strategy (gc, lagc) or on partition
    units (lagc-ps), laq without a compressor, a compressor with the lag-reference start
    or a trigger that cannot take compressed messages, and bad compressor numbers: one
    ValueError naming the parameter, nothing compiled; allow_decoding=True lets gc run."""
    quantizer = compress.InnovationQuantizer(4)
    cases = [
        (lj.make("laq", M), dict(latency=-1.0), r"latency"),
        (
            with_compressor("gc", quantizer),
            {},
            r"compressor InnovationQuantizer on a strategy "
            r"that decodes coded messages \(aggregate Decode\)",
        ),
        (with_compressor("lagc", quantizer), {}, r"decodes coded messages .* allow_decoding"),
        (
            with_compressor("lagc-ps", quantizer),
            {},
            r"needs lazy units that are workers or "
            r"groups .* not partitions",
        ),
        (
            dataclasses.replace(lj.make("laq", M), compressor=None),
            {},
            r"trigger LaqTrigger decides on compressed messages; give the strategy a compressor",
        ),
        (with_compressor("lag-wk", quantizer, start="lag-reference"), {}, r"needs start='clean'"),
        (
            st.Strategy(
                st.placement.identity(M),
                PlanWithoutCompressed(),
                st.WaitAll(),
                st.Sum(),
                name="old",
                compressor=quantizer,
            ),
            {},
            r"trigger PlanWithoutCompressed cannot take compressed messages",
        ),
        (
            with_compressor("gd", compress.InnovationQuantizer(60)),
            {},
            r"bits must be an integer in \[1, 52\], got 60",
        ),
        (
            with_compressor("gd", compress.StochasticQuantizer(levels=0)),
            {},
            r"levels must be an integer >= 1, got 0",
        ),
        (
            with_compressor("gd", compress.RandomSparsifier(density=0.0)),
            {},
            r"density must be a number in \(0, 1\], got 0.0",
        ),
    ]
    with count_compilations() as compiled:
        for strategy, options, pattern in cases:
            with pytest.raises(ValueError, match=pattern):
                simulate(SYNTHETIC, strategy, **options)
    assert compiled == []
    allowed = with_compressor("gc", compress.InnovationQuantizer(4, allow_decoding=True))
    allowed.validate(dtype=jnp.float64, link="parallel")


# --------------------------------------------------------------------------- #
# a user compressor's contract
# --------------------------------------------------------------------------- #
@st.pytree_dataclass
class NegativeBits(compress.InnovationQuantizer):
    def compress(self, state, fresh, key):
        out = super().compress(state, fresh, key)
        return out._replace(bits=-out.bits)


@st.pytree_dataclass
class OneSizeForAll(compress.InnovationQuantizer):
    def compress(self, state, fresh, key):
        out = super().compress(state, fresh, key)
        return out._replace(bits=jnp.sum(out.bits))


@st.pytree_dataclass
class SecretlyRandom(compress.InnovationQuantizer):
    """Draws from the key but says stochastic = False (the class attribute it inherits)."""

    def compress(self, state, fresh, key):
        out = super().compress(state, fresh, key)
        return out._replace(values=out.values + jax.random.normal(key, fresh.shape, fresh.dtype))


@st.pytree_dataclass
class ForgetsItsDtype(compress.InnovationQuantizer):
    def acknowledge(self, state, compressed, updated):
        return super().acknowledge(state, compressed, updated).astype(jnp.float32)


@st.pytree_dataclass
class NoAcknowledge:
    def init(self, placement, theta0):
        return ()

    def compress(self, state, fresh, key):
        return compress.Compressed(
            fresh,
            jnp.zeros(fresh.shape[:1], fresh.dtype),
            jnp.full(fresh.shape[:1], 32.0 * fresh.shape[1]),
        )


@pytest.mark.parametrize(
    "compressor, pattern",
    [
        (
            NegativeBits(4),
            r"compressor NegativeBits returned bits \[-64\., .*must be finite and >= 0",
        ),
        (
            OneSizeForAll(4),
            r"compressor OneSizeForAll returned shape \(\) for Compressed.bits; "
            r"expected \(U,\) = \(6,\)",
        ),
        (
            SecretlyRandom(4),
            r"its compressor SecretlyRandom says stochastic = False, but .* depends "
            r"on .* the round's key",
        ),
        (
            ForgetsItsDtype(4),
            r"compressor ForgetsItsDtype returned a state of another structure, "
            r"shape or dtype",
        ),
        (NoAcknowledge(), r"compressor NoAcknowledge lacks the method 'acknowledge'"),
    ],
)
def test_a_faulty_compressor_is_named(compressor, pattern):
    strategy = dataclasses.replace(lj.make("gd", M), compressor=compressor)
    with pytest.raises(ValueError, match=pattern) as error:
        check_strategy(
            strategy, theta0=jnp.zeros(DIM), num_partitions=M, knobs=st.Knobs(step_size=0.1)
        )
    assert "\n" not in str(error.value)
