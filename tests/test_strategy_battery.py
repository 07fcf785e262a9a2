"""One conformance battery over every registered strategy (optax's shared-test style),
plus a hand-written protocol strategy and a composition registered inside the test."""

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lagc_jax as lj
from lagc_jax import strategies as st

from helpers import (
    SMALL_DELAY,
    SMALL_PROBLEM,
    SMALL_RUN,
    SMALL_STRAGGLERS,
    SMALL_WORKERS,
    assert_same_run,
    count_compilations,
    drawn_unit_times,
)

M, S = SMALL_WORKERS, SMALL_STRAGGLERS
BUILT_IN = lj.names()


@st.pytree_dataclass
class HandWrittenGD:
    """gd written directly against the protocol (no pieces): sum of all gradients,
    every worker computes and uploads, the server waits for the slowest."""

    num_workers: int = st.static()
    name: str = st.static(default="hand-gd")
    delay_dependent = False
    xi = None

    @property
    def num_partitions(self):
        return self.num_workers

    def init(self, theta0, union_smoothness):
        return ()

    def step(self, state, round, knobs):
        M_ = self.num_workers
        aggregate = jnp.ones((M_,), round.grads.dtype) @ round.grads
        arrivals = round.unit_times + knobs.upload_time
        stats = st.Stats(
            duration=knobs.broadcast_time + jnp.max(arrivals),
            uploads=jnp.int32(M_),
            downloads=jnp.int32(M_),
            computations=jnp.int32(M_),
            upload_mask=jnp.ones((M_,), bool),
            decoding_residual=jnp.zeros((), round.grads.dtype),
        )
        return aggregate, state, stats


def _half_fastest(num_workers, stragglers):
    """A composition registered by the test: wait for half the workers, rescale by 2."""
    k = num_workers // 2
    return st.Strategy(
        st.placement.identity(num_workers),
        st.NoTrigger(),
        st.FirstK(k),
        st.ScaledSum(num_workers / k),
        name="test-half",
        stragglers=stragglers,
    )


@pytest.fixture(scope="module", autouse=True)
def registered():
    lj.register("test-hand-gd", lambda m, s: HandWrittenGD(m), replace=True)
    lj.register("test-half", _half_fastest, replace=True)
    yield
    st.unregister("test-hand-gd")
    st.unregister("test-half")


ALL = BUILT_IN + ("test-hand-gd", "test-half")
PROBLEM, DELAY = SMALL_PROBLEM, SMALL_DELAY  # d = 10
# The drawn runs of the tests below share these sizes (those of the other modules' small
# runs): one program per strategy, compiled once (the times, step sizes and seeds are
# traced); chunked, so a run is also a check of chunking against the unchunked replay of
# its draws
RUN = dict(num_iters=24, **SMALL_RUN)
# One strategy round, jitted once for the module (the jit key is the strategy's structure)
STEP = jax.jit(lambda strategy, state, round_, knobs_: strategy.step(state, round_, knobs_))


def knobs(step_size=0.05, upload_time=0.2, broadcast_time=0.1):
    number = partial(jnp.asarray, dtype=jnp.float64)
    return st.Knobs(
        number(step_size), lj.timing.Link(number(upload_time), number(broadcast_time), number(0.0))
    )


def a_round(theta, k, times):
    grads = jnp.stack([jnp.arange(10.0) * (p + 1) / 50 - theta for p in range(M)])
    return st.Round(theta, grads, times, jnp.int32(k))


def scaled_encoding(strategy, factor):
    """The same strategy with B's values scaled (same shape and support)."""
    if not isinstance(strategy, st.Strategy):
        return strategy
    placement = dataclasses.replace(
        strategy.placement, encoding=np.asarray(strategy.placement.encoding) * factor
    )
    return dataclasses.replace(strategy, placement=placement)


@pytest.mark.parametrize("name", ALL)
def test_step_jits_vmaps_and_keeps_its_state_structure(name):
    s = lj.make(name, M, S)
    theta = jnp.zeros(10)
    state = s.init(theta, lambda mask: 2.0)
    structure = jax.tree_util.tree_structure(state)
    leaves = [(x.shape, x.dtype) for x in jax.tree_util.tree_leaves(state)]
    times = jax.random.exponential(jax.random.key(0), (3, 4, M), jnp.float64)
    for k in range(4):
        aggregate, state, stats = STEP(s, state, a_round(theta, k, times[0, k]), knobs())
        assert aggregate.shape == (10,) and bool(jnp.all(jnp.isfinite(aggregate)))
        assert jax.tree_util.tree_structure(state) == structure
        assert [(x.shape, x.dtype) for x in jax.tree_util.tree_leaves(state)] == leaves
        assert stats.uploads.dtype == jnp.int32 and stats.duration.shape == ()
        theta = theta - 0.05 * aggregate
    # vmap over a batch of unit times (trials) with a shared state
    batched = jax.jit(jax.vmap(lambda t: s.step(state, a_round(theta, 4, t), knobs())))
    aggregates, _, stats = batched(times[:, 0])
    assert aggregates.shape == (3, 10) and stats.duration.shape == (3,)
    for i in range(3):
        single, _, single_stats = STEP(s, state, a_round(theta, 4, times[i, 0]), knobs())
        np.testing.assert_allclose(aggregates[i], single, rtol=1e-12, atol=1e-12)
        assert int(stats.uploads[i]) == int(single_stats.uploads)


@pytest.mark.parametrize("name", ALL)
def test_no_recompilation_when_knobs_or_encoding_change(name):
    s = lj.make(name, M, S)
    state = s.init(jnp.zeros(10), lambda mask: 2.0)
    times = jnp.linspace(1.0, 2.0, M)
    STEP(s, state, a_round(jnp.zeros(10), 1, times), knobs())
    # new values everywhere, ξ included (built before counting: eager ops compile too)
    new = scaled_encoding(s, 2.0)
    if getattr(s, "is_lazy", False):
        new = dataclasses.replace(new, trigger=dataclasses.replace(new.trigger, xi=7.0))
    args = (
        new,
        state,
        a_round(jnp.ones(10), 2, times * 3),
        knobs(step_size=0.01, upload_time=1.5, broadcast_time=0.0),
    )
    with count_compilations() as compiled:
        STEP(*args)
    assert compiled == []


@pytest.fixture(scope="module")
def drawn_times():
    """The unit times of the drawn runs with seed 5, (trials, iterations, M)."""
    return drawn_unit_times(DELAY, 5, RUN["num_trials"], RUN["num_iters"], M)


@pytest.mark.parametrize("name", ALL)
def test_simulate_is_deterministic_chunking_invariant_and_loops_like_vmap(name, drawn_times):
    """Two programs per strategy: the drawn run (trials vmapped, in chunks of 8) equals, trial
    by trial, the unchunked one-trial replay of its unit times. So chunking changes nothing,
    vmap over trials is a Python loop over trials, and replay gives the draws back."""
    s = lj.make(name, M, S)
    a = lj.simulate(PROBLEM, s, DELAY, seed=5, upload_time=0.2, **RUN)
    b = lj.simulate(PROBLEM, s, DELAY, seed=5, upload_time=0.2, **RUN)
    for field in ("loss", "wall_clock", "uploads", "downloads", "computations", "upload_mask"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    other = lj.simulate(PROBLEM, s, DELAY, seed=6, upload_time=0.2, **RUN)
    assert not np.array_equal(a.wall_clock, other.wall_clock)
    for i in range(RUN["num_trials"]):
        alone = lj.simulate(
            PROBLEM,
            s,
            unit_times=drawn_times[i : i + 1],
            num_iters=RUN["num_iters"],
            num_trials=1,
            upload_time=0.2,
            record_masks=True,
        )
        for field in ("uploads", "downloads", "computations", "upload_mask"):
            np.testing.assert_array_equal(getattr(a, field)[i], getattr(alone, field)[0])
        np.testing.assert_allclose(a.wall_clock[i], alone.wall_clock[0], rtol=1e-12)
        np.testing.assert_allclose(a.loss[i], alone.loss[0], rtol=1e-12)


def test_hand_written_protocol_strategy_equals_gd():
    kw = dict(upload_time=0.3, broadcast_time=0.1, **RUN)
    hand = lj.simulate(PROBLEM, lj.make("test-hand-gd", M), DELAY, **kw)
    gd = lj.simulate(PROBLEM, lj.make("gd", M), DELAY, **kw)
    assert_same_run(hand, gd)
    np.testing.assert_array_equal(hand.upload_mask, gd.upload_mask)


def test_strategies_differing_in_one_piece_compile_separately():
    """The jit key is the pytree structure: changing the wait rule of gc compiles anew and
    gives that rule's numbers (the old hand-written key returned gc's wall clock)."""
    gc = lj.make("gc", M, S)
    waits_all = dataclasses.replace(gc, wait=st.WaitAll())
    fast = lj.simulate(PROBLEM, gc, DELAY, **RUN)
    with count_compilations() as compiled, pytest.warns(RuntimeWarning, match="decoding"):
        slow = lj.simulate(PROBLEM, waits_all, DELAY, **RUN)  # a_F of M − S workers, M used
    assert compiled and not (slow.decoding_residual <= 1e-8).any()  # NaN or large
    gd = lj.simulate(PROBLEM, lj.make("gd", M), DELAY, **RUN)
    # waiting for all M workers with load S+1 takes (S+1)× gd's time, exactly
    np.testing.assert_allclose(slow.wall_clock, (S + 1) * gd.wall_clock, rtol=1e-12)
    assert (fast.wall_clock[:, -1] < slow.wall_clock[:, -1]).all()


def test_new_encoding_and_knobs_do_not_recompile_simulate():
    s = lj.make("lagc", M, S)
    lj.simulate(PROBLEM, s, DELAY, **RUN)
    other_code = lj.make("lagc", M, S, encoding=lj.coding.tandon_cyclic(M, S, seed=3), xi=0.3)
    with count_compilations() as compiled:
        lj.simulate(
            PROBLEM,
            other_code,
            lj.ShiftedExponential(0.5, 2.0),
            step_size=0.01,
            upload_time=0.7,
            broadcast_time=0.2,
            **RUN,
        )
    assert compiled == []


def test_optimizer_factory_loop_compiles_once():
    kw = dict(num_iters=20, num_trials=2)
    s = lj.make("gd", M)
    results = []
    with count_compilations() as first:
        results.append(
            lj.simulate(
                PROBLEM,
                s,
                DELAY,
                optimizer=optax.sgd,
                optimizer_args={"learning_rate": 0.01, "momentum": 0.5},
                **kw,
            )
        )
    with count_compilations() as later:
        for lr in (0.02, 0.03):
            results.append(
                lj.simulate(
                    PROBLEM,
                    s,
                    DELAY,
                    optimizer=optax.sgd,
                    optimizer_args={"learning_rate": lr, "momentum": 0.5},
                    **kw,
                )
            )
    assert first and later == []
    # the traced arguments are used: the same numbers as a GradientTransformation instance
    direct = lj.simulate(PROBLEM, s, DELAY, optimizer=optax.sgd(0.03, momentum=0.5), **kw)
    np.testing.assert_allclose(results[-1].loss, direct.loss, rtol=1e-12)
    assert results[0].config["optimizer"].endswith("sgd(learning_rate=0.01, momentum=0.5)")


def test_optimizer_validation():
    with pytest.raises(ValueError, match=r"optimizer_args\['learning_rate'\] must be a finite"):
        lj.simulate(
            PROBLEM,
            lj.make("gd", M),
            DELAY,
            num_iters=2,
            num_trials=1,
            optimizer=optax.sgd,
            optimizer_args={"learning_rate": float("nan")},
        )
    with pytest.raises(ValueError, match="optimizer factory rejected"):
        lj.simulate(
            PROBLEM,
            lj.make("gd", M),
            DELAY,
            num_iters=2,
            num_trials=1,
            optimizer=optax.sgd,
            optimizer_args={"rate": 0.1},
        )
    with pytest.raises(ValueError, match="optimizer_args need an optimizer factory"):
        lj.simulate(
            PROBLEM,
            lj.make("gd", M),
            DELAY,
            num_iters=2,
            num_trials=1,
            optimizer_args={"learning_rate": 0.1},
        )


def test_registry_metadata_and_errors():
    assert lj.names()[:10] == (
        "gd",
        "fastest-k",
        "gc",
        "grouping",
        "lag-wk",
        "lag-ps",
        "lagc",
        "lagc-ps",
        "g-lag",
        "g-lag-wk",
    )
    assert st.info("gc").analytic and not st.info("gc").lazy and st.info("lagc").lazy
    with pytest.raises(ValueError, match="already registered"):
        lj.register("gd", lambda m, s: None)
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        lj.make("nope", 4)
    lj.register("test-broken", lambda m, s: object(), replace=True)
    try:
        with pytest.raises(ValueError, match="lacks the strategy protocol"):
            lj.make("test-broken", 4)
    finally:
        st.unregister("test-broken")
    assert lj.analysis.expected_iteration_time("gd", 12, 2, lj.ShiftedExponential()) > 3.0


def test_a_user_strategy_gets_a_style_in_figures(tmp_path):
    from lagc_jax import plotting

    style = plotting.strategy_style("test-half")
    assert style["color"].startswith("#") and style["linestyle"] == "-"
    assert plotting.color("gc") == "#1f77b4"
    _, colors = plotting.sweep_figure(
        {"p": {"test-half": ([1, 2], [3.0, 4.0], [2.5, 3.5], [3.5, 4.5])}},
        "x",
        "t",
        tmp_path / "f.png",
    )
    assert colors["test-half"] == style["color"]


def test_record_masks_for_every_strategy():
    """Non-lazy strategies record which workers' uploads the server used (M,); lazy ones the
    units updated (U,); upload counts equal the mask sums where units are workers."""
    for name in BUILT_IN:
        s = lj.make(name, M, S)
        r = lj.simulate(PROBLEM, s, DELAY, **RUN)
        units = s.num_units if s.is_lazy else M
        assert r.upload_mask.shape == (3, 24, units), name
        if not s.is_lazy or s.placement.units == "workers":
            np.testing.assert_array_equal(r.upload_mask.sum(-1), np.diff(r.uploads, axis=1))


def test_simulate_rejects_strategies_outside_the_protocol():
    class NotAPytree:
        name, num_workers, num_partitions, delay_dependent, xi = "plain", M, M, False, None

        def init(self, theta0, union_smoothness):
            return ()

        def step(self, state, round, knobs):
            raise AssertionError("never reached")

    with pytest.raises(ValueError, match="NotAPytree is not a registered pytree"):
        lj.simulate(PROBLEM, NotAPytree(), DELAY, num_iters=2, num_trials=1)
    with pytest.raises(ValueError, match="strategy must follow the strategy protocol"):
        lj.simulate(PROBLEM, "gd", DELAY, num_iters=2, num_trials=1)


def test_study_table_runs_a_registered_strategy_without_analysis():
    from lagc_jax.studies import paper as study

    rows = study.iteration_table(M, S, DELAY, trials=6, iters=10, names=("test-half",))
    assert {r["kind"] for r in rows} == {"none"} and all(np.isnan(r["analytic"]) for r in rows)
    uploads = next(r for r in rows if r["quantity"] == "uploads")
    assert uploads["mc_mean"] == M // 2  # waits for half the workers
    assert "| test-half | uploads | nan | none | 3.0000 |" in study.format_iteration_table(rows, "")


def test_user_encodings_are_checked_for_decodability():
    """Every straggler set must decode, at any size (exhaustive here: C(64, 4)·64 > 2e6 sets
    are sampled, and the identity fails at once)."""
    with pytest.raises(ValueError, match=r"encoding cannot decode with stragglers = 4"):
        lj.make("gc", 64, 4, encoding=np.eye(64))
    with pytest.raises(ValueError, match=r"encoding cannot decode with stragglers = 1"):
        lj.make("lagc-ps", 6, 1, encoding=np.eye(6))
