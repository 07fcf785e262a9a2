"""The open engine: named metrics, links with message sizes, sweeps over any leaf, a key per
round for strategies, the checkpoint format — each checked against hand computations or an
independent NumPy replay.

One small problem (M = 4 partitions, d = 6), a few trials and iterations: every program is
compiled once or twice, and most tests reuse a module-scoped run.
"""

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagc_jax as lj
from lagc_jax import checkpoints, coding, engine, timing
from lagc_jax import strategies as st
from lagc_jax.results import Result
from lagc_jax.strategies.protocol import Metric

from helpers import assert_same_run, count_compilations

M, S, DIM = 4, 1, 6
K, T = 6, 3  # iterations and trials of most runs
PROBLEM = lj.problems.lag_synthetic(M, dim=DIM)
ALPHA = 1.0 / PROBLEM.smoothness  # the default step size
TAU = 0.25  # upload time of the replayed runs
TIMES = np.random.default_rng(7).exponential(size=(T, K, M)) + 0.1  # replayed unit times
BITS = 32 * DIM  # bits of one full-precision vector (MODEL.md §9)
PARETO = lj.Pareto(scale=1.0, shape=2.5)
EXP_DELAY = lj.ShiftedExponential(rate=1.0)


# --------------------------------------------------------------------------- #
# user strategies (written as a user would, outside the package)
# --------------------------------------------------------------------------- #
def _round_metrics(x):
    """The values the test strategies can report for a round with unit times x (M,)."""
    return {"staleness": jnp.sum(x > jnp.mean(x)), "max_time": jnp.max(x), "x0": x[0]}


@st.pytree_dataclass
class Watched:
    """Any strategy, plus named metrics per round: ``staleness`` (workers slower than the
    round's mean unit time; summed) and ``max_time`` (the round's largest unit time)."""

    inner: object
    metrics: tuple = st.static(default=(Metric("staleness", "sum"), Metric("max_time", "round")))
    name: str = st.static(default="watched")

    @property
    def num_workers(self):
        return self.inner.num_workers

    @property
    def num_partitions(self):
        return self.inner.num_partitions

    @property
    def delay_dependent(self):
        return self.inner.delay_dependent

    @property
    def xi(self):
        return self.inner.xi

    def validate(self, *, dtype, link):
        self.inner.validate(dtype=dtype, link=link)

    def init(self, theta0, union_smoothness):
        return self.inner.init(theta0, union_smoothness)

    def step(self, state, round, knobs):
        aggregate, state, stats = self.inner.step(state, round, knobs)
        values = _round_metrics(round.unit_times)
        return (
            aggregate,
            state,
            stats._replace(
                metrics={m.name: values.get(m.name, jnp.zeros(())) for m in self.metrics}
            ),
        )


@st.pytree_dataclass
class RandomHalf:
    """gd's round (all M compute and upload, the server waits for all), but the server uses
    each worker's gradient with probability ½ (drawn from ``round.key``), scaled by 2."""

    num_workers: int = st.static()
    name: str = st.static(default="random-half")
    metrics = (
        Metric("x0", "round"),
        Metric("max_time", "round"),
        Metric("used", "sum"),
        Metric("u", "round"),
    )
    delay_dependent = True  # the iterates depend on the draws: batched over trials
    xi = None

    @property
    def num_partitions(self):
        return self.num_workers

    def init(self, theta0, union_smoothness):
        return jnp.zeros((), jnp.int32)

    def step(self, state, round, knobs):
        keep, u = draws(round.key, self.num_workers)
        everyone = jnp.ones((self.num_workers,), bool)
        _, wait = lj.strategies.wait_all(knobs.link.arrivals(round.unit_times, everyone), everyone)
        aggregate = 2.0 * (keep.astype(round.grads.dtype) @ round.grads)
        values = _round_metrics(round.unit_times)
        stats = st.Stats(
            duration=knobs.broadcast_time + wait,
            uploads=jnp.sum(keep, dtype=jnp.int32),
            downloads=jnp.int32(self.num_workers),
            computations=jnp.int32(self.num_workers),
            upload_mask=keep,
            decoding_residual=jnp.zeros((), round.grads.dtype),
            metrics={
                "x0": values["x0"],
                "max_time": values["max_time"],
                "used": jnp.sum(keep),
                "u": u,
            },
        )
        return aggregate, state + 1, stats


def draws(key, num_workers):
    """RandomHalf's draws from a round key: (which workers are used, a uniform number)."""
    k1, k2 = jax.random.split(key)
    return jax.random.bernoulli(k1, 0.5, (num_workers,)), jax.random.uniform(k2)


# --------------------------------------------------------------------------- #
# NumPy references
# --------------------------------------------------------------------------- #
def partition_grads(theta):
    """(P, d) ∇f_p(θ) = H_p θ − b_p of the least-squares problem."""
    q = PROBLEM.quadratic
    return np.asarray(q.hessians) @ theta - np.asarray(q.linear)


def np_loss(theta):
    X, y = PROBLEM.examples
    residual = X @ theta - y
    return 0.5 * float(np.sum(residual * residual))


def fifo(c, durations, uploads=None):
    """Shared FIFO uplink by hand: uploads served in order of compute completion, ties by
    index; other messages (skip notices) take no link time and arrive at c."""
    c = np.asarray(c, dtype=float)
    uploads = np.ones(c.shape, bool) if uploads is None else np.asarray(uploads)
    out, free = c.copy(), -np.inf
    for m in np.argsort(c, kind="stable"):
        if uploads[m]:
            free = max(free, c[m]) + durations[m]
            out[m] = free
    return out


def cumulative(per_round):
    return np.concatenate([np.zeros((per_round.shape[0], 1)), np.cumsum(per_round, axis=1)], 1)


def per_round(values):
    return np.concatenate([np.full((values.shape[0], 1), np.nan), values], axis=1)


def refuse_to_run(monkeypatch):
    """Make any chunk of a run fail the test (an error must be raised before)."""

    def refuse(*args, **kwargs):
        raise AssertionError("a chunk ran: the error was not raised before running")

    monkeypatch.setattr(engine, "_run_chunk", refuse)


@contextmanager
def compiles_nothing():
    """Assert no new program is traced (jit cache) or compiled inside the block."""
    size = engine._run_chunk._cache_size()
    with count_compilations() as events:
        yield
    assert engine._run_chunk._cache_size() == size
    assert events == []


@contextmanager
def nothing_runs(monkeypatch):
    """Assert the block neither compiles anything nor runs a chunk (errors raised first)."""
    with compiles_nothing():
        refuse_to_run(monkeypatch)
        try:
            yield
        finally:
            monkeypatch.undo()


def watched_run(**kwargs):
    """Watched(gd) on the replayed unit times (τ = 0.25)."""
    return lj.simulate(
        PROBLEM,
        Watched(lj.make("gd", M)),
        None,
        num_iters=K,
        num_trials=T,
        unit_times=TIMES,
        upload_time=TAU,
        **kwargs,
    )


@pytest.fixture(scope="module")
def watched():
    return watched_run()


# --------------------------------------------------------------------------- #
# 1. named metrics
# --------------------------------------------------------------------------- #
def test_user_metrics_match_a_numpy_replay(watched):
    r = watched
    assert set(r.metrics) == {"bits_up", "bits_down", "staleness", "max_time"}
    assert r.staleness is r.metrics["staleness"] and r.max_time is r.metrics["max_time"]
    assert r.staleness.shape == r.max_time.shape == (T, K + 1)
    slower = (TIMES > TIMES.mean(axis=-1, keepdims=True)).sum(axis=-1)  # (T, K)
    assert slower.min() >= 1 and slower.max() <= M - 1 and len(np.unique(slower)) > 1
    np.testing.assert_array_equal(r.staleness, cumulative(slower))
    np.testing.assert_array_equal(r.max_time, per_round(TIMES.max(axis=-1)))
    # gd: Δ = max(x) + τ, every worker uploads and downloads each round
    np.testing.assert_allclose(r.wall_clock, cumulative(TIMES.max(axis=-1) + TAU), rtol=1e-14)
    np.testing.assert_array_equal(r.uploads, cumulative(np.full((T, K), M)))
    np.testing.assert_array_equal(r.bits_up, BITS * r.uploads)
    np.testing.assert_array_equal(r.bits_down, BITS * r.downloads)
    assert sorted(r.cumulative_metrics()) == ["bits_down", "bits_up", "staleness"]
    assert r.config["metrics"] == [["staleness", "sum"], ["max_time", "round"]]
    with pytest.raises(AttributeError, match="staleness"):  # the message lists the metrics
        _ = r.nonexistent


def test_metrics_do_not_depend_on_chunking_and_thin_with_record_every(watched):
    chunked = watched_run(chunk_size=3)
    for name in ("staleness", "max_time", "bits_up", "bits_down"):
        np.testing.assert_array_equal(chunked.metrics[name], watched.metrics[name], err_msg=name)
    assert_same_run(chunked, watched, rtol=0)
    thinned = watched_run(record_every=2)
    np.testing.assert_array_equal(thinned.iterations, [0, 2, 4, 6])
    # summed: the cumulative total at iterations 0, 2, 4, 6
    np.testing.assert_array_equal(thinned.staleness, watched.staleness[:, ::2])
    np.testing.assert_array_equal(thinned.bits_up, watched.bits_up[:, ::2])
    # per round: entry j holds the last round of block j, round 2j - 1 (NaN at entry 0)
    assert np.isnan(thinned.max_time[:, 0]).all()
    np.testing.assert_array_equal(thinned.max_time[:, 1:], TIMES[:, 1::2].max(axis=-1))
    np.testing.assert_array_equal(thinned.max_time[:, 1:], watched.max_time[:, 2::2])


def test_metrics_resume_from_a_checkpoint(watched, tmp_path):
    class Interrupt(Exception):
        pass

    def stop(done, total):
        if done == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        watched_run(chunk_size=3, checkpoint_dir=tmp_path, progress=stop)
    manifest = json.loads((tmp_path / checkpoints.MANIFEST).read_text())
    assert manifest["format"] == 3 and manifest["done"] == 3
    with np.load(tmp_path / manifest["chunks"][0]["file"]) as chunk:  # records kept by name
        assert {"record:staleness", "record:max_time"} <= set(chunk.files)
    seen = []
    resumed = watched_run(
        chunk_size=3, checkpoint_dir=tmp_path, progress=lambda done, total: seen.append(done)
    )
    assert seen == [6]  # only the missing chunk ran
    for name in ("staleness", "max_time", "bits_up", "bits_down"):
        np.testing.assert_array_equal(resumed.metrics[name], watched.metrics[name], err_msg=name)
    assert_same_run(resumed, watched, rtol=0)


def test_metrics_survive_save_and_load(watched, tmp_path):
    path = watched.save(tmp_path / "watched")
    loaded = Result.load(path)
    assert set(loaded.metrics) == set(watched.metrics)
    for name, values in watched.metrics.items():
        np.testing.assert_array_equal(loaded.metrics[name], values, err_msg=name)  # NaN == NaN
    np.testing.assert_array_equal(loaded.staleness, watched.staleness)
    assert loaded.cumulative_metrics() == watched.cumulative_metrics()
    assert loaded.config["metrics"] == [["staleness", "sum"], ["max_time", "round"]]


def test_to_reach_reports_the_summed_metrics(watched):
    r = watched
    target = float(r.gap[0, 3])  # gd: θ is the same in every trial
    reach = r.to_reach(target)
    assert {"staleness", "bits_up", "bits_down"} <= set(reach) and "max_time" not in reach
    first = np.argmax(r.gap <= target, axis=1)
    assert (first == first[0]).all() and 1 <= first[0] <= 3
    rows = np.arange(T)
    np.testing.assert_array_equal(reach["staleness"], r.staleness[rows, first])
    np.testing.assert_array_equal(reach["bits_up"], BITS * M * first)
    summary = r.summary(target)
    assert summary["staleness"][0] == np.median(r.staleness[rows, first])
    assert np.isnan(r.to_reach(float(r.gap.min()) / 2)["staleness"]).all()  # never reached


@pytest.mark.parametrize(
    "name",
    [
        # slow: η ≈ 0 of gd and grouping is asserted by test_approximate.py (test_no_deadline_
        # is_gd, test_erasurehead_with_k_at_least_m_minus_s_is_grouping); their bits are the
        # built-in count of the others here, and gd's is checked by test_user_metrics_...
        pytest.param("gd", marks=pytest.mark.slow),
        "gc",
        pytest.param("grouping", marks=pytest.mark.slow),
        "fastest-k",
        "lag-ps",
        "k-async",
    ],
)
def test_builtin_bits_and_gradient_error(name):
    """bits_up = 32 d · uploads and bits_down = 32 d · downloads for built-in strategies;
    grad_error (MODEL.md §10): NaN at entry 0, ~0 for exact strategies, and for fastest-k the
    η_k of a NumPy replay of its own iterates."""
    strategy = lj.make(name, M, S)
    r = lj.simulate(
        PROBLEM,
        strategy,
        None,
        num_iters=K,
        num_trials=T,
        unit_times=TIMES,
        upload_time=TAU,
        record=("grad_error",),
    )
    assert set(r.metrics) == {"bits_up", "bits_down", "grad_error"}
    np.testing.assert_array_equal(r.bits_up, BITS * r.uploads)
    np.testing.assert_array_equal(r.bits_down, BITS * r.downloads)
    assert r.bits_up.dtype == np.int64 and r.uploads[:, -1].min() > 0
    eta = r.grad_error
    assert eta.shape == (T, K + 1) and np.isnan(eta[:, 0]).all() and np.all(eta[:, 1:] >= 0)
    assert "grad_error" not in r.cumulative_metrics()
    if name in ("gd", "gc", "grouping"):
        assert eta[:, 1:].max() < 1e-20
    if name == "fastest-k":
        expected, losses = np.empty((T, K)), np.empty((T, K + 1))
        for t in range(T):
            theta = PROBLEM.initial_params()
            for k in range(K):
                grads = partition_grads(theta)
                fastest = np.argsort(TIMES[t, k] + TAU, kind="stable")[: M - S]
                estimate = M / (M - S) * grads[fastest].sum(axis=0)
                full = grads.sum(axis=0)
                expected[t, k] = np.sum((estimate - full) ** 2) / np.sum(full**2)
                losses[t, k] = np_loss(theta)
                theta = theta - ALPHA * estimate
            losses[t, K] = np_loss(theta)
        assert expected.min() > 1e-6  # an approximate gradient: η visibly > 0
        np.testing.assert_allclose(eta[:, 1:], expected, rtol=1e-9)
        np.testing.assert_allclose(r.loss, losses, rtol=1e-12)
        np.testing.assert_allclose(
            np.diff(r.wall_clock, axis=1), np.sort(TIMES + TAU, axis=-1)[..., M - S - 1], rtol=1e-14
        )
        np.testing.assert_array_equal(r.bits_up[:, -1], BITS * (M - S) * K)


def test_record_masks_is_record_equals_masks():
    kw = dict(num_iters=K, num_trials=T, upload_time=TAU)
    a = lj.simulate(PROBLEM, lj.make("lag-wk", M), EXP_DELAY, record=("masks",), **kw)
    b = lj.simulate(PROBLEM, lj.make("lag-wk", M), EXP_DELAY, record_masks=True, **kw)
    c = lj.simulate(PROBLEM, lj.make("lag-wk", M), EXP_DELAY, record="masks", **kw)
    assert a.upload_mask.shape == (T, K, M) and a.upload_mask.dtype == bool
    for other in (b, c):
        np.testing.assert_array_equal(other.upload_mask, a.upload_mask)
        assert_same_run(other, a, rtol=0)
        assert other.config["record"] == a.config["record"] == ["masks"]
    np.testing.assert_array_equal(a.upload_mask.sum(axis=-1), np.diff(a.uploads, axis=1))
    assert a.metrics.keys() == {"bits_up", "bits_down"}


@pytest.mark.parametrize(
    "metrics, record, message",
    [
        ((Metric("uploads", "sum"),), (), "'uploads' collides with a core record"),
        ((Metric("loss", "round"),), (), "'loss' collides with a core record"),
        ((Metric("grad_error", "round"),), (), "'grad_error' collides"),
        ((Metric("staleness", "max"),), (), "accumulate must be one of"),
        ((Metric("a", "sum"), Metric("a", "round")), (), "metric 'a' declared twice"),
        ((Metric("bits_up", "round"),), (), "'bits_up' .* must accumulate by 'sum'"),
        ((Metric("my metric", "sum"),), (), "must be a Python identifier"),
        (("staleness",), (), "must be Metric"),
        ((), ("nonsense",), "record: unknown record 'nonsense'"),
    ],
)
def test_bad_metric_declarations_and_records_fail_before_compiling(
    monkeypatch, metrics, record, message
):
    strategy = Watched(lj.make("gd", M), metrics=metrics)
    start = time.perf_counter()
    with nothing_runs(monkeypatch), pytest.raises(ValueError, match=message):
        lj.simulate(PROBLEM, strategy, EXP_DELAY, num_iters=K, num_trials=T, record=record)
    assert time.perf_counter() - start < 5


# --------------------------------------------------------------------------- #
# 2. links with message sizes
# --------------------------------------------------------------------------- #
def test_link_arrivals_by_hand():
    """d = 10 (full precision 320 bits), τ = 1, latency 0.5, factors (1, 2, 1, 0.5).
    Upload durations (0.5 + bits/320)·factor: w0 320 bits 1.5, w1 160 bits 2.0, w2 a skip
    notice (no link time), w3 640 bits 1.25. Compute completions c = (2, 1, 1, 3)."""
    c = jnp.array([2.0, 1.0, 1.0, 3.0])
    up = jnp.array([True, True, False, True])
    bits = jnp.array([320.0, 160.0, 320.0, 640.0])
    factors = jnp.array([1.0, 2.0, 1.0, 0.5])
    parallel = timing.Link(upload_time=1.0, latency=0.5, upload_factors=factors)
    shared = timing.Link(upload_time=1.0, latency=0.5, upload_factors=factors, kind="shared")
    np.testing.assert_array_equal(parallel.durations(bits, 10), [1.5, 2.0, 1.5, 1.25])
    # parallel: c + duration; the skip notice arrives at its compute time
    np.testing.assert_array_equal(parallel.arrivals(c, up, bits, 10), [3.5, 3.0, 1.0, 4.25])
    # shared FIFO, order w1 (c 1), w2 (c 1, skip), w0 (c 2), w3 (c 3):
    # w1 1 + 2 = 3; w2 at 1; w0 max(2, 3) + 1.5 = 4.5; w3 max(3, 4.5) + 1.25 = 5.75
    np.testing.assert_array_equal(shared.arrivals(c, up, bits, 10), [4.5, 3.0, 1.0, 5.75])
    # the link idles when a message completes after the previous one left: w1 at 6
    idle = jnp.array([0.0, 6.0])
    np.testing.assert_array_equal(
        timing.sized_arrival_times(idle, jnp.array([True, True]), jnp.array([2.0, 0.5]), "shared"),
        [2.0, 6.5],
    )
    # ties by worker index: w0 first
    np.testing.assert_array_equal(
        timing.sized_arrival_times(
            jnp.array([1.0, 1.0]), jnp.array([True, True]), jnp.array([2.0, 0.5]), "shared"
        ),
        [3.0, 3.5],
    )
    # no sizes: every upload full precision, (latency + τ)·factor
    np.testing.assert_array_equal(shared.arrivals(c, up), [5.5, 4.0, 1.0, 6.25])
    np.testing.assert_array_equal(shared.arrivals(c, up), fifo(c, 1.5 * np.asarray(factors), up))
    np.testing.assert_array_equal(parallel.arrivals(c, up), [3.5, 4.0, 1.0, 3.75])
    # no factors, no latency: τ·β/(32 d)
    plain = timing.Link(upload_time=2.0)
    np.testing.assert_array_equal(plain.arrivals(c, up, bits, 10), [4.0, 2.0, 1.0, 7.0])


@pytest.mark.parametrize("kind", ["parallel", "shared"])
def test_link_at_defaults_is_the_closed_form_bitwise(kind):
    rng = np.random.default_rng(3)
    for _ in range(5):
        c = jnp.asarray(np.round(rng.exponential(size=7), 1))  # ties included
        up = jnp.asarray(rng.random(7) < 0.7)
        tau = float(rng.exponential())
        link = timing.Link(tau, 0.3, kind=kind)
        np.testing.assert_array_equal(link.arrivals(c, up), timing.arrival_times(c, up, tau, kind))
        np.testing.assert_array_equal(
            timing.Link(tau, 0.3, 0.0, None, kind=kind).arrivals(c, up),
            timing.arrival_times(c, up, tau, kind),
        )
        # per-message durations all τ: the same times (to rounding)
        np.testing.assert_allclose(
            timing.sized_arrival_times(c, up, jnp.full(7, tau), kind),
            timing.arrival_times(c, up, tau, kind),
            rtol=1e-14,
        )
        expected = (
            fifo(c, np.full(7, tau), up)
            if kind == "shared"
            else np.asarray(c) + np.where(up, tau, 0.0)
        )
        np.testing.assert_allclose(link.arrivals(c, up), expected, rtol=1e-14)


@pytest.mark.parametrize("kind", ["parallel", "shared"])
def test_gd_wall_clock_with_latency_and_upload_factors(kind):
    """gd waits for all M: Δ = τ_b + max_m arrival_m, arrival by the link by hand."""
    tau, tau_b = 0.5, 0.25
    latencies = [0.1, 0.4, 0.0]
    factors = [[1.0, 2.0, 0.5, 1.5], [0.5, 0.5, 1.0, 3.0], [1.0, 1.0, 1.0, 1.0]]
    points = lj.sweep(
        PROBLEM,
        lj.make("gd", M),
        None,
        num_iters=K,
        num_trials=T,
        unit_times=TIMES,
        upload_time=tau,
        broadcast_time=tau_b,
        latency=latencies,
        upload_factors=factors,
        link=kind,
    )
    for r, latency, f in zip(points, latencies, factors):
        durations = (latency + tau) * np.asarray(f)
        delta = np.empty((T, K))
        for t in range(T):
            for k in range(K):
                arrivals = (
                    TIMES[t, k] + durations if kind == "parallel" else fifo(TIMES[t, k], durations)
                )
                delta[t, k] = tau_b + arrivals.max()
        np.testing.assert_allclose(r.wall_clock, cumulative(delta), rtol=1e-14)
        assert r.config["latency"] == latency and r.config["upload_factors"] == f
        np.testing.assert_array_equal(r.bits_up, np.tile(BITS * M * np.arange(K + 1), (T, 1)))
    # latency 0 and factors 1 (the sized path) give the default run's numbers
    default = lj.simulate(
        PROBLEM,
        lj.make("gd", M),
        None,
        num_iters=K,
        num_trials=T,
        unit_times=TIMES,
        upload_time=tau,
        broadcast_time=tau_b,
        link=kind,
    )
    explicit = lj.simulate(
        PROBLEM,
        lj.make("gd", M),
        None,
        num_iters=K,
        num_trials=T,
        unit_times=TIMES,
        upload_time=tau,
        broadcast_time=tau_b,
        link=kind,
        latency=0.0,
        upload_factors=None,
    )
    assert_same_run(explicit, default, rtol=0)
    assert_same_run(points[2], default, rtol=1e-14)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(latency=-0.1), "latency must be finite and >= 0"),
        (dict(latency=float("nan")), "latency must be finite and >= 0"),
        (dict(latency=float("inf")), "latency must be finite and >= 0"),
        (dict(upload_factors=[1.0, 1.0, 1.0]), "upload_factors must be 4 finite factors > 0"),
        (dict(upload_factors=[1.0, 0.0, 1.0, 1.0]), "upload_factors must be 4 finite factors > 0"),
        (dict(upload_factors=[1.0, -2.0, 1.0, 1.0]), "upload_factors must be 4 finite factors > 0"),
        (
            dict(upload_factors=[1.0, np.inf, 1.0, 1.0]),
            "upload_factors must be 4 finite factors > 0",
        ),
    ],
)
def test_bad_link_inputs_fail_before_compiling(monkeypatch, kwargs, message):
    with nothing_runs(monkeypatch), pytest.raises(ValueError, match=message):
        lj.simulate(
            PROBLEM,
            lj.make("gd", M),
            EXP_DELAY,
            num_iters=K,
            num_trials=T,
            upload_time=0.5,
            **kwargs,
        )


def test_bad_swept_link_inputs_fail_before_compiling(monkeypatch):
    with nothing_runs(monkeypatch):
        with pytest.raises(ValueError, match="latency must be finite and >= 0"):
            lj.sweep(
                PROBLEM, lj.make("gd", M), EXP_DELAY, num_iters=K, num_trials=T, latency=[0.0, -1.0]
            )
        with pytest.raises(ValueError, match="upload_factors must be 4 finite factors > 0"):
            lj.sweep(
                PROBLEM,
                lj.make("gd", M),
                EXP_DELAY,
                num_iters=K,
                num_trials=T,
                upload_factors=[[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0]],
            )
        with pytest.raises(ValueError, match="upload_factors"):  # a (2, M) array: sweep's
            lj.simulate(
                PROBLEM,
                lj.make("gd", M),
                EXP_DELAY,
                num_iters=K,
                num_trials=T,
                upload_factors=np.ones((2, M)),
            )


# --------------------------------------------------------------------------- #
# 3. sweeps over any leaf
# --------------------------------------------------------------------------- #
def test_sweep_over_strategies_and_xi_equals_separate_runs():
    """(The separate runs are test_record_masks_is_record_equals_masks's program.)"""
    kw = dict(num_iters=K, num_trials=T, upload_time=0.2, seed=5, record_masks=True)
    xis = [0.5, 2.0]
    lazy = [lj.make("lag-wk", M, S, xi=xi) for xi in xis]
    swept = lj.sweep(PROBLEM, lazy, EXP_DELAY, **kw)
    for point, (strategy, xi) in enumerate(zip(lazy, xis)):
        single = lj.simulate(PROBLEM, strategy, EXP_DELAY, **kw)
        assert_same_run(swept[point], single, rtol=1e-12)
        np.testing.assert_array_equal(swept[point].bits_up, single.bits_up)
        assert swept[point].config["xi"] == single.config["xi"] == xi
    assert swept[1].uploads[:, -1].sum() < swept[0].uploads[:, -1].sum()  # larger ξ: fewer
    with compiles_nothing():  # xi= sets the strategy's ξ leaf: the same program
        by_xi = lj.sweep(PROBLEM, lj.make("lag-wk", M, S), EXP_DELAY, xi=xis, **kw)
        other = lj.sweep(
            PROBLEM, [lj.make("lag-wk", M, S, xi=x) for x in (0.0, 5.0)], EXP_DELAY, **kw
        )
    for a, b in zip(by_xi, swept):
        assert_same_run(a, b, rtol=0)
        assert a.config["xi"] == b.config["xi"]
    np.testing.assert_array_equal(other[0].uploads[:, -1], M * K)  # ξ = 0: every worker, always


def test_sweep_over_encodings_equals_separate_runs():
    """(Replayed unit times, η recorded: the separate runs use the program of
    test_builtin_bits_and_gradient_error for gc.)"""
    kw = dict(num_iters=K, num_trials=T, unit_times=TIMES, upload_time=TAU, record=("grad_error",))
    codes = [lj.make("gc", M, S), lj.make("gc", M, S, encoding=coding.tandon_cyclic(M, S, 1))]
    assert not np.allclose(codes[0].encoding, codes[1].encoding)
    swept = lj.sweep(PROBLEM, codes, None, **kw)
    for point, strategy in enumerate(codes):
        single = lj.simulate(PROBLEM, strategy, None, **kw)
        assert_same_run(swept[point], single, rtol=1e-12)
        assert swept[point].decoding_residual.max() < 1e-8
    # both decode ∇f exactly: the same iterates, times and counts
    np.testing.assert_allclose(swept[1].loss, swept[0].loss, rtol=1e-10)
    np.testing.assert_array_equal(swept[1].wall_clock, swept[0].wall_clock)


def test_sweep_over_a_delay_parameter_equals_separate_runs_and_compiles_once():
    """Weibull(1, shape) = E^(1/shape) of the same standard exponentials E (common random
    numbers): the shape-2 point's unit times are the square roots of the shape-1 point's."""
    strategy = Watched(lj.make("gd", M))
    kw = dict(num_iters=K, num_trials=T)
    weibulls = [lj.delays.Weibull(scale=1.0, shape=1.0), lj.delays.Weibull(scale=1.0, shape=2.0)]
    swept = lj.sweep(PROBLEM, strategy, weibulls, **kw)
    for point, delay in enumerate(weibulls):
        single = lj.simulate(PROBLEM, strategy, delay, **kw)
        assert_same_run(swept[point], single, rtol=1e-12)
        for name in ("staleness", "max_time"):
            np.testing.assert_array_equal(swept[point].metrics[name], single.metrics[name])
    np.testing.assert_allclose(
        swept[1].max_time[:, 1:], np.sqrt(swept[0].max_time[:, 1:]), rtol=1e-14
    )
    np.testing.assert_allclose(
        np.diff(swept[1].wall_clock, axis=1), swept[1].max_time[:, 1:], rtol=1e-12
    )  # gd with τ = τ_b = 0: Δ = max x
    with compiles_nothing():  # other numbers of the same structure and length
        again = lj.sweep(
            PROBLEM,
            [Watched(lj.make("gd", M))] * 2,
            [lj.delays.Weibull(2.0, 1.5, 0.1), lj.delays.Weibull(0.5, 3.0)],
            upload_time=[0.0, 1.0],
            **kw,
        )
    np.testing.assert_allclose(
        again[0].max_time[:, 1:], 0.1 + 2.0 * swept[0].max_time[:, 1:] ** (1 / 1.5), rtol=1e-12
    )
    np.testing.assert_allclose(
        np.diff(again[1].wall_clock, axis=1),
        1.0 + 0.5 * swept[0].max_time[:, 1:] ** (1 / 3.0),
        rtol=1e-12,
    )


def test_sweep_refuses_mixed_structures_and_lengths(monkeypatch):
    kw = dict(num_iters=K, num_trials=T)
    with nothing_runs(monkeypatch):
        with pytest.raises(ValueError, match="one pytree structure"):
            lj.sweep(PROBLEM, [lj.make("gd", M), lj.make("gc", M, S)], EXP_DELAY, **kw)
        with pytest.raises(ValueError, match="one pytree structure"):  # static fields differ
            lj.sweep(
                PROBLEM,
                [
                    Watched(lj.make("gd", M)),
                    Watched(lj.make("gd", M), metrics=(Metric("x0", "round"),)),
                ],
                EXP_DELAY,
                **kw,
            )
        with pytest.raises(ValueError, match="share one length"):
            lj.sweep(
                PROBLEM, [lj.make("lag-wk", M)] * 2, EXP_DELAY, upload_time=[0.0, 1.0, 2.0], **kw
            )
        with pytest.raises(ValueError, match="share one length"):
            lj.sweep(
                PROBLEM,
                lj.make("lag-wk", M),
                [EXP_DELAY, lj.ShiftedExponential(2.0)],
                xi=[0.0, 1.0, 2.0],
                **kw,
            )
        with pytest.raises(ValueError, match="delay models of one type"):
            lj.sweep(PROBLEM, lj.make("gd", M), [EXP_DELAY, PARETO], **kw)
        with pytest.raises(ValueError, match="xi does not apply"):
            lj.sweep(PROBLEM, lj.make("gd", M), EXP_DELAY, xi=[0.0, 1.0], **kw)


# --------------------------------------------------------------------------- #
# 4. randomness for strategies, and 4 devices = 1 device
# --------------------------------------------------------------------------- #
def drawn_runs(seed=0):
    """Two strategies with metrics on drawn Pareto unit times, chunked, 7 trials (padded on
    4 devices): gd watched (iterates shared by the trials) and RandomHalf drawing from
    round.key (iterates batched over trials)."""
    kw = dict(num_iters=K, num_trials=7, upload_time=0.2, chunk_size=3, seed=seed)
    return {
        "gd": lj.simulate(PROBLEM, Watched(lj.make("gd", M)), PARETO, **kw),
        "random-half": lj.simulate(PROBLEM, RandomHalf(M), PARETO, **kw),
    }


def drawn_arrays(runs):
    out = {}
    for name, r in runs.items():
        for field in ("loss", "wall_clock", "uploads", "downloads", "computations"):
            out[f"{name}/{field}"] = getattr(r, field)
        for metric, values in r.metrics.items():
            out[f"{name}/metric:{metric}"] = values
    return out


@pytest.fixture(scope="module")
def drawn():
    return drawn_runs()


def iteration_keys(seed, trials, iters):
    """(trials, iters) keys by the engine's documented derivation: trial i folds i into
    key(seed), iteration k folds in k."""

    def one(i, k):
        return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), i), k)

    grid = jax.vmap(lambda i: jax.vmap(lambda k: one(i, k))(jnp.arange(iters)))
    return jax.jit(grid)(jnp.arange(trials))


def test_strategy_draws_from_round_key_leave_unit_times_unchanged(drawn):
    gd, rh = drawn["gd"], drawn["random-half"]
    # common random numbers: drawing from round.key does not move the unit times
    np.testing.assert_array_equal(rh.max_time, gd.max_time)
    np.testing.assert_array_equal(rh.wall_clock, gd.wall_clock)
    # the unit times themselves: Pareto draws from fold_in(fold_in(key(seed), i), k) (the
    # exponentials bit for bit; exp(E / shape) inside the compiled run may round 1 ulp apart)
    keys = iteration_keys(0, 7, K)
    x = np.asarray(jax.jit(jax.vmap(jax.vmap(lambda key: PARETO.sample(key, M))))(keys))
    np.testing.assert_allclose(rh.x0[:, 1:], x[..., 0], rtol=1e-15)
    np.testing.assert_allclose(gd.max_time[:, 1:], x.max(axis=-1), rtol=1e-15)
    # the strategy's draws: reproduced from round.key = fold_in(iteration key, tag)
    keep, u = jax.jit(
        jax.vmap(jax.vmap(lambda key: draws(jax.random.fold_in(key, engine._STRATEGY_TAG), M)))
    )(keys)
    keep, u = np.asarray(keep), np.asarray(u)
    np.testing.assert_array_equal(rh.u[:, 1:], u)
    np.testing.assert_array_equal(rh.used, cumulative(keep.sum(axis=-1)))
    np.testing.assert_array_equal(rh.uploads, rh.used)
    assert len(np.unique(u)) == u.size  # a new draw every round of every trial
    assert len({tuple(row) for row in keep.reshape(-1, M)}) > 4
    # and the iterates follow them: θ ← θ − α · 2 Σ_{m kept} ∇f_m(θ)
    for t in range(7):
        theta, losses = PROBLEM.initial_params(), []
        for k in range(K):
            losses.append(np_loss(theta))
            theta = theta - ALPHA * 2.0 * keep[t, k].astype(float) @ partition_grads(theta)
        losses.append(np_loss(theta))
        np.testing.assert_allclose(rh.loss[t], losses, rtol=1e-12)
    assert len(np.unique(rh.loss[:, -1])) > 1  # trials differ


def test_strategy_draws_are_reproducible_by_seed(drawn):
    rh = drawn["random-half"]
    kw = dict(num_iters=K, num_trials=7, upload_time=0.2, chunk_size=3)
    same = lj.simulate(PROBLEM, RandomHalf(M), PARETO, seed=0, **kw)
    for name in rh.metrics:
        np.testing.assert_array_equal(same.metrics[name], rh.metrics[name], err_msg=name)
    assert_same_run(same, rh, rtol=0)
    other = lj.simulate(PROBLEM, RandomHalf(M), PARETO, seed=1, **kw)
    assert not np.isin(other.u[:, 1:], rh.u[:, 1:]).any()
    assert not np.isin(other.x0[:, 1:], rh.x0[:, 1:]).any()


@st.pytree_dataclass
class ResidualHalf(RandomHalf):
    """RandomHalf reporting its round's uniform draw u, scaled by 2⁻⁴⁰ (exact, and far below
    the decoding tolerance), as the decoding residual: a residual that changes every round."""

    name: str = st.static(default="residual-half")

    def step(self, state, round, knobs):
        aggregate, state, stats = super().step(state, round, knobs)
        return aggregate, state, stats._replace(decoding_residual=stats.metrics["u"] * 2.0**-40)


def test_decoding_residual_is_the_worst_of_every_round_across_chunks_and_resumes(tmp_path):
    kw = dict(num_iters=K, num_trials=T, upload_time=0.2, seed=3)
    whole = lj.simulate(PROBLEM, ResidualHalf(M), PARETO, **kw)
    worst = np.nanmax(whole.u, axis=1) * 2.0**-40  # u of every round: entry 0 is NaN
    np.testing.assert_array_equal(whole.decoding_residual, worst)
    assert len(np.unique(np.nanargmax(whole.u, axis=1))) > 1  # the worst round differs by trial
    # chunks of 2 recording every 2nd round: still the worst of every round
    thinned = lj.simulate(PROBLEM, ResidualHalf(M), PARETO, chunk_size=2, record_every=2, **kw)
    np.testing.assert_array_equal(thinned.decoding_residual, worst)

    class Interrupt(Exception):
        pass

    def stop(done, total):
        if done == 2:
            raise Interrupt

    chunked = dict(kw, chunk_size=2, checkpoint_dir=tmp_path)
    with pytest.raises(Interrupt):
        lj.simulate(PROBLEM, ResidualHalf(M), PARETO, progress=stop, **chunked)
    resumed = lj.simulate(PROBLEM, ResidualHalf(M), PARETO, **chunked)
    np.testing.assert_array_equal(resumed.decoding_residual, worst)
    assert_same_run(resumed, whole, rtol=0)


SHARDED = """
import sys, numpy as np, jax
jax.config.update("jax_enable_x64", True)
assert len(jax.devices()) == 4, jax.devices()
sys.path.insert(0, {tests!r})
from test_open_engine import drawn_runs, drawn_arrays
np.savez({path!r}, **drawn_arrays(drawn_runs()))
"""


def test_metrics_and_draws_identical_on_four_devices(drawn, tmp_path):
    path = tmp_path / "four.npz"
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
    }
    code = SHARDED.format(tests=str(Path(__file__).resolve().parent), path=str(path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    one = drawn_arrays(drawn)
    with np.load(path) as four:
        assert set(four.files) == set(one)
        for key, values in one.items():
            if key.endswith("loss") or key.endswith("wall_clock"):
                np.testing.assert_allclose(four[key], values, rtol=1e-12, err_msg=key)
            else:  # counts and metrics: exactly
                np.testing.assert_array_equal(four[key], values, err_msg=key)
    assert one["random-half/metric:u"].shape == (7, K + 1)


# --------------------------------------------------------------------------- #
# 5. checkpoints of an older format
# --------------------------------------------------------------------------- #
def test_checkpoint_of_the_older_format_is_refused(monkeypatch, tmp_path):
    """A manifest of format 2 (records by position), as that version wrote it."""
    (tmp_path / checkpoints.MANIFEST).write_text(
        json.dumps(
            {
                "format": 2,
                "key": "0" * 64,
                "done": 3,
                "num_trials": T,
                "carry": {"file": "carry_000000003_abc.npz", "sha256": "0" * 64},
                "chunks": [
                    {"file": "chunk_000000000_abc.npz", "sha256": "0" * 64, "k0": 0, "done": 3}
                ],
            }
        )
    )
    refuse_to_run(monkeypatch)
    with pytest.raises(ValueError, match=r"older version of lagc_jax \(records by position"):
        watched_run(chunk_size=3, checkpoint_dir=tmp_path)


def test_reported_metrics_must_be_the_declared_ones():
    """A declared metric the step does not report, or a reported one it does not declare,
    is refused while tracing (before compiling), naming the strategy."""
    base = lj.make("gd", 4)

    @st.pytree_dataclass
    class Misreported:
        inner: object
        reports: tuple = st.static(default=())
        name: str = st.static(default="misreported")
        metrics = (st.Metric("staleness", "sum"),)
        num_workers = 4
        num_partitions = 4
        delay_dependent = False
        xi = None

        def init(self, theta0, union_smoothness):
            return self.inner.init(theta0, union_smoothness)

        def step(self, state, round, knobs):
            g, state, stats = self.inner.step(state, round, knobs)
            return g, state, stats._replace(metrics={n: jnp.zeros(()) for n in self.reports})

    problem = PROBLEM
    for reports in ((), ("staleness", "other")):
        with pytest.raises(ValueError, match=r"'misreported': its step reports the metrics"):
            lj.simulate(
                problem,
                Misreported(base, reports),
                lj.ShiftedExponential(),
                num_iters=2,
                num_trials=1,
            )
    r = lj.simulate(
        problem,
        Misreported(base, ("staleness",)),
        lj.ShiftedExponential(),
        num_iters=2,
        num_trials=1,
    )
    assert r.staleness.tolist() == [[0.0, 0.0, 0.0]]


def test_a_delay_model_without_draws_is_refused_before_compiling():
    """A DelayModel subclass that defines neither sample nor from_standard is refused by
    name instead of failing inside the trace."""

    class NoDraws(lj.delays.DelayModel):
        scale = 1.0

    jax.tree_util.register_pytree_node(
        NoDraws, lambda d: ((d.scale,), None), lambda _, leaves: NoDraws()
    )
    with (
        count_compilations() as events,
        pytest.raises(ValueError, match="NoDraws defines neither sample"),
    ):
        lj.simulate(PROBLEM, lj.make("gd", M), NoDraws(), num_iters=2, num_trials=1)
    assert events == []
