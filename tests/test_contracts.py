"""Strategy contracts (lagc_jax.strategies.contracts.check_strategy): no silent wrong answers.

Each faulty strategy below ran before these checks, with wrong numbers or a raw jax error
(gd's iterates at the time of the M/2 fastest workers, 0 uploads at wall clock 0, a clock
running backwards, an aggregate broadcast over θ, "scan body function carry input and
carry output must have equal types"); each now gives a one-line ValueError naming the
piece, or honest numbers. The built-in strategies and legitimate user compositions pass.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

import lagc_jax as lj
from lagc_jax import strategies as st
from lagc_jax.strategies.contracts import ContractError, check_strategy
from lagc_jax.timing import Link

from helpers import count_compilations

M, D = 6, 10
THETA = jnp.zeros(D)
KNOBS = st.Knobs(jnp.float64(0.05), Link(jnp.float64(0.2), jnp.float64(0.1)))
IDENTITY = st.placement.identity(M)


def check(strategy, **options):
    check_strategy(
        strategy,
        theta0=THETA,
        num_partitions=strategy.num_partitions,
        knobs=KNOBS,
        dtype=THETA.dtype,
        **options,
    )


def refused(strategy, pattern):
    """check_strategy raises one line matching ``pattern``; returns the message."""
    with pytest.raises(ValueError, match=pattern) as error:
        check(strategy)
    assert isinstance(error.value, ContractError) and "\n" not in str(error.value)
    return str(error.value)


def half_fastest(arrivals, participating):
    """Uses the M/2 earliest messages, proceeds at the M/2-th arrival."""
    time = jnp.sort(arrivals)[M // 2 - 1]
    return arrivals <= time, time


# --------------------------------------------------------------------------- #
# what passes
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", lj.names())
def test_built_in_strategies_pass(name):
    check(lj.make(name, M, 1))


@st.pytree_dataclass
class FirstGroups:
    """docs/EXTENDING.md example 1: wait for the first k groups' first messages."""

    size: int = st.static()
    k: int = st.static()
    delay_dependent = True

    def __call__(self, arrivals, participating):
        grouped = jnp.where(participating, arrivals, jnp.inf).reshape(-1, self.size)
        first = jnp.argmin(grouped, axis=1)
        group_time = jnp.min(grouped, axis=1)
        order = jnp.argsort(group_time, stable=True)
        chosen = jnp.zeros(group_time.shape, bool).at[order[: self.k]].set(True)
        used = (jnp.arange(self.size)[None, :] == first[:, None]) & chosen[:, None]
        return used.reshape(-1), group_time[order[self.k - 1]]


@st.pytree_dataclass
class ScaledGroupSum:
    size: int = st.static()
    k: int = st.static()

    def __call__(self, delivered):
        held = delivered.held
        heard = delivered.used.reshape(-1, self.size).any(axis=1)
        weights = heard.astype(held.dtype) * (held.shape[0] / self.k)
        return weights @ held, jnp.zeros((), held.dtype)


@st.pytree_dataclass
class BoundedWorkerTrigger(st.WorkerTrigger):
    """docs/EXTENDING.md example 2."""

    max_skips: int = st.static(default=10)

    def forced(self, state):
        return super().forced(state) | (state.skipped >= self.max_skips)


def test_user_compositions_pass():
    # README's first-half: wait for half the workers, rescale by 2
    check(
        st.Strategy(
            IDENTITY, st.NoTrigger(), st.FirstK(M // 2), st.ScaledSum(2.0), name="first-half"
        )
    )
    check(
        st.Strategy(
            st.placement.fractional(M, 2),
            st.NoTrigger(),
            FirstGroups(3, 1),
            ScaledGroupSum(3, 1),
            name="first-groups",
        )
    )
    check(
        st.Strategy(
            IDENTITY,
            BoundedWorkerTrigger(max_skips=3),
            st.WaitAll(),
            st.Sum(),
            name="lag-wk-bounded",
        )
    )
    # partition units with a code every M − 1 workers decode: Sum of the decoded partitions
    check(
        st.Strategy(
            st.placement.cyclic(M, 1, units="partitions"),
            st.NoTrigger(),
            st.FirstK(M - 1),
            st.Sum(),
        )
    )
    # a deadline rule: every message by t = 2 (or the first one), proceeds at the deadline
    deadline = st.WaitFunction(
        lambda a, p: (p & ((a <= 2.0) | (a == jnp.min(a))), jnp.maximum(2.0, jnp.min(a)))
    )
    check(st.Strategy(IDENTITY, st.NoTrigger(), deadline, st.ScaledSum(1.5)))
    check(st.KAsync(num_workers=M, k=2))


def test_sum_over_the_first_k_adds_only_the_messages_used():
    """(a) FirstK(M/2) with Sum gave gd's iterates (every unit's fresh gradient was held
    whatever the wait rule used) at the time of the M/2 fastest: an impossible speed-up.
    NoTrigger now holds only the units heard: Sum adds the M/2 gradients that arrived."""
    strategy = st.Strategy(IDENTITY, st.NoTrigger(), st.FirstK(M // 2), st.Sum())
    rng = np.random.default_rng(0)
    grads = jnp.asarray(rng.standard_normal((M, D)))
    times = jnp.asarray(rng.permutation(M) + 1.0)
    aggregate, _, stats = strategy.step((), st.Round(THETA, grads, times, jnp.int32(0)), KNOBS)
    fastest = np.argsort(np.asarray(times))[: M // 2]
    np.testing.assert_allclose(aggregate, np.asarray(grads)[fastest].sum(0), rtol=1e-12)
    assert not np.allclose(aggregate, np.asarray(grads).sum(0))
    assert int(stats.uploads) == M // 2
    check(strategy)  # an honest (if unscaled) estimate: the sum of what arrived


# --------------------------------------------------------------------------- #
# wait rules
# --------------------------------------------------------------------------- #
def test_first_per_group_on_an_identity_placement_is_refused():
    """(a) FirstPerGroup says delay_dependent=False (right for fractional groups, whose
    members send the same message); on identity units it drops half the gradients, and
    gave gd's iterates."""
    refused(
        st.Strategy(IDENTITY, st.NoTrigger(), st.FirstPerGroup(2), st.Sum()),
        r"^strategy 'custom': wait rule FirstPerGroup says delay_dependent = False, but the "
        r"messages it uses depend on the arrival times",
    )


def test_wait_rule_using_no_message_is_refused():
    """(a) 0 uploads, wall clock 0 and gd's iterates before."""
    nothing = st.WaitFunction(lambda a, p: (jnp.zeros_like(p), jnp.zeros((), a.dtype)))
    refused(
        st.Strategy(IDENTITY, st.NoTrigger(), nothing, st.Sum()),
        r"wait rule WaitFunction\(test_wait_rule_using_no_message_is_refused.<locals>."
        r"<lambda>\) uses no message when all 6 workers participate",
    )
    refused(
        st.Strategy(IDENTITY, st.NoTrigger(), st.FirstK(0), st.ScaledSum(1.0)),
        r"wait rule FirstK uses no message",
    )


def test_dropping_wait_rule_claiming_delay_independence_is_refused_under_a_lazy_trigger():
    """(b) docs/EXTENDING.md promises an error; it gave lag-wk's iterates."""
    claim = st.WaitFunction(half_fastest, delay_dependent=False)
    refused(
        st.Strategy(IDENTITY, st.WorkerTrigger(), claim, st.Sum()),
        r"wait rule WaitFunction\(half_fastest\) says delay_dependent = False, but the "
        r"messages it uses depend on the arrival times \(used [01]{6} for arrivals",
    )
    fixed = st.WaitFunction(lambda a, p: (p.at[0].set(False), jnp.max(a)), delay_dependent=False)
    refused(
        st.Strategy(IDENTITY, st.ServerTrigger(), fixed, st.Sum()),
        r"says delay_dependent = False, but does not use every participating worker's "
        r"message \(used 011111",
    )
    # and where the dropped messages reach the aggregate: a vmap error before
    refused(
        st.Strategy(IDENTITY, st.NoTrigger(), claim, st.ScaledSum(2.0)),
        r"its wait rule WaitFunction\(half_fastest\) says delay_dependent = False, but the "
        r"aggregate or the state depends on the unit times",
    )


def test_negative_nan_or_early_wait_times_are_refused_and_nan_at_run_time():
    """(c) a negative time ran the wall clock backwards (-68.9 after 30 rounds)."""
    backwards = st.WaitFunction(lambda a, p: (p, -jnp.max(a)))
    strategy = st.Strategy(IDENTITY, st.NoTrigger(), backwards, st.Sum())
    refused(
        strategy,
        r"wait rule WaitFunction\(.*\) returned time -[0-9.]+ for arrivals "
        r"\[.*\]; a wait time must be finite and >= 0",
    )
    _, _, stats = strategy.step(
        (), st.Round(THETA, jnp.ones((M, D)), jnp.ones(M), jnp.int32(0)), KNOBS
    )
    assert np.isnan(stats.duration)  # the engine flags a non-finite wall clock
    not_a_number = st.WaitFunction(lambda a, p: (p, jnp.max(a) * jnp.nan))
    refused(
        st.Strategy(IDENTITY, st.NoTrigger(), not_a_number, st.Sum()),
        r"returned time nan for arrivals",
    )
    early = st.WaitFunction(lambda a, p: (p, jnp.sort(a)[-2]))  # before the last one it uses
    refused(
        st.Strategy(IDENTITY, st.NoTrigger(), early, st.Sum()),
        r"returned time [0-9.]+, before the latest message it uses arrives \([0-9.]+, "
        r"arrivals .*, used 111111\)",
    )
    # built-in rules: valid times, and a valid run keeps its duration
    _, _, stats = lj.make("gd", M).step(
        (), st.Round(THETA, jnp.ones((M, D)), jnp.ones(M), jnp.int32(0)), KNOBS
    )
    assert float(stats.duration) == pytest.approx(0.1 + 1.0 + 0.2)


# --------------------------------------------------------------------------- #
# aggregators
# --------------------------------------------------------------------------- #
@st.pytree_dataclass
class ScalarSum:
    def __call__(self, delivered):
        return jnp.sum(delivered.held), jnp.zeros((), delivered.held.dtype)


@st.pytree_dataclass
class Rows:
    def __call__(self, delivered):
        return delivered.held, jnp.zeros(())


@st.pytree_dataclass
class Single:
    def __call__(self, delivered):
        return jnp.sum(delivered.held, 0).astype(jnp.float32), jnp.zeros(())


def test_aggregate_of_the_wrong_shape_or_dtype_is_refused():
    """(c) a scalar aggregate was broadcast over θ (loss 2.5e21 after 30 rounds)."""
    refused(
        st.Strategy(IDENTITY, st.NoTrigger(), st.WaitAll(), ScalarSum()),
        r"^strategy 'custom': aggregate ScalarSum returned shape \(\) for the aggregate; "
        r"expected \(d,\) = \(10,\)$",
    )
    refused(
        st.Strategy(IDENTITY, st.NoTrigger(), st.WaitAll(), Rows()),
        r"aggregate Rows returned shape \(6, 10\) for the aggregate; expected \(d,\)",
    )
    refused(
        st.Strategy(IDENTITY, st.NoTrigger(), st.WaitAll(), Single()),
        r"aggregate Single returned dtype float32 for the aggregate; expected float64",
    )


@st.pytree_dataclass
class MessageSum:
    """Sums every message, used or not."""

    def __call__(self, delivered):
        return jnp.sum(delivered.messages, 0), jnp.zeros((), delivered.messages.dtype)


@st.pytree_dataclass
class GradientSum:
    """Sums the partition gradients: gd whatever arrived."""

    def __call__(self, delivered):
        return jnp.sum(delivered.grads, 0), jnp.zeros((), delivered.grads.dtype)


@st.pytree_dataclass
class SlightlyLeaky:
    """ScaledSum plus 1e-3 × the mean of all messages: a small leak still counts."""

    scale: float = st.static()

    def __call__(self, delivered):
        used = delivered.used.astype(delivered.held.dtype) * self.scale
        return used @ delivered.held + 1e-3 * jnp.mean(delivered.messages, 0), jnp.zeros(())


def test_aggregators_reading_what_did_not_arrive_are_refused():
    """Before: gd's iterates at the time of the M − 1 fastest."""
    wait = st.FirstK(M - 1)
    refused(
        st.Strategy(IDENTITY, st.NoTrigger(), wait, MessageSum()),
        r"aggregate MessageSum uses what the server did not receive: its aggregate "
        r"changed by .* when only the messages not received were changed \(sent: [01]{6}\)",
    )
    refused(
        st.Strategy(IDENTITY, st.NoTrigger(), wait, GradientSum()),
        r"aggregate GradientSum uses what the server did not receive",
    )
    refused(
        st.Strategy(IDENTITY, st.NoTrigger(), st.FirstK(M // 2), SlightlyLeaky(2.0)),
        r"aggregate SlightlyLeaky uses what the server did not receive",
    )
    # partition units claim every partition decoded: not with an identity encoding
    partitions = st.placement.from_encoding(np.eye(M), units="partitions")
    refused(
        st.Strategy(partitions, st.NoTrigger(), wait, st.Sum()),
        r"aggregate Sum uses what the server did not receive: .* the gradients no "
        r"received message depends on",
    )
    # a decoding that cannot decode the set used (NaN weights) is the decoding residual's
    # business (a RuntimeWarning at run time), not a use of what did not arrive
    check(dataclasses.replace(lj.make("gc", M, 1), wait=st.WaitAll()))


# --------------------------------------------------------------------------- #
# raw jax errors become one line naming the piece
# --------------------------------------------------------------------------- #
class NotAPytree:
    delay_dependent = True

    def __call__(self, arrivals, participating):
        return participating, jnp.max(arrivals)


@st.pytree_dataclass
class FloatSkips(st.WorkerTrigger):
    """Its commit changes the dtype of a state leaf (a scan carry)."""

    def commit(self, state, plan, heard, theta):
        state, held, updated = super().commit(state, plan, heard, theta)
        return state._replace(skipped=state.skipped.astype(jnp.float64)), held, updated


@st.pytree_dataclass
class Broken:
    def __call__(self, delivered):
        return jnp.ones(3) + delivered.held, jnp.zeros(())


CASES = {
    "wait None": (
        st.Strategy(IDENTITY, st.NoTrigger()),
        r"^strategy 'custom': the wait rule is None; give a wait rule",
    ),
    "aggregate None": (
        st.Strategy(IDENTITY, st.NoTrigger(), st.WaitAll()),
        r"the aggregator is None",
    ),
    "not a pytree": (
        st.Strategy(IDENTITY, st.NoTrigger(), NotAPytree(), st.Sum()),
        r"wait rule NotAPytree is not a registered pytree",
    ),
    "bare function": (
        st.Strategy(IDENTITY, st.NoTrigger(), lambda a, p: (p, jnp.max(a)), st.Sum()),
        r"wait rule <lambda> is a bare function; wrap it: WaitFunction",
    ),
    "state dtype": (
        st.Strategy(IDENTITY, FloatSkips(), st.WaitAll(), st.Sum()),
        r"trigger FloatSkips returned state.skipped of shape \(6,\) and dtype "
        r"float64; init gave \(6,\) and int32",
    ),
    "shape error": (
        st.Strategy(IDENTITY, st.NoTrigger(), st.WaitAll(), Broken()),
        r"aggregate Broken failed: ValueError: Incompatible shapes for broadcasting",
    ),
    "three outputs": (
        st.Strategy(
            IDENTITY, st.NoTrigger(), st.WaitFunction(lambda a, p: (p, jnp.max(a), 0)), st.Sum()
        ),
        r"wait rule WaitFunction\(.*\) returned a tuple of 3; expected \(used \(M,\) bool, time\)",
    ),
    "used not bool": (
        st.Strategy(
            IDENTITY,
            st.NoTrigger(),
            st.WaitFunction(lambda a, p: (p.astype(jnp.float64), jnp.max(a))),
            st.Sum(),
        ),
        r"wait rule WaitFunction\(.*\) returned dtype float64 for used; expected bool",
    ),
    "time per worker": (
        st.Strategy(IDENTITY, st.NoTrigger(), st.WaitFunction(lambda a, p: (p, a)), st.Sum()),
        r"wait rule WaitFunction\(.*\) returned shape \(6,\) for the time; expected a scalar",
    ),
    "worker trigger on partitions": (
        st.Strategy(
            st.placement.cyclic(M, 1, units="partitions"),
            st.WorkerTrigger(),
            st.FirstK(M - 1),
            st.Sum(),
        ),
        r"trigger WorkerTrigger failed: ValueError: a worker-side trigger needs "
        r"worker or group units",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_raw_errors_become_one_line_naming_the_piece(case):
    strategy, pattern = CASES[case]
    refused(strategy, pattern)


# --------------------------------------------------------------------------- #
# hand-written strategies: the shape checks
# --------------------------------------------------------------------------- #
@st.pytree_dataclass
class HandWritten:
    """gd against the protocol, with optional faults."""

    num_workers: int = st.static()
    fault: str = st.static(default="")
    name: str = st.static(default="hand")
    delay_dependent = True
    xi = None

    @property
    def num_partitions(self):
        return self.num_workers

    @property
    def metrics(self):
        return (st.Metric("staleness", "round"),) if self.fault == "metrics" else ()

    def init(self, theta0, union_smoothness):
        return jnp.zeros((1,), theta0.dtype)

    def step(self, state, round, knobs):
        grads = round.grads
        state = jnp.concatenate([state, state]) if self.fault == "state" else state + 1.0
        uploads = jnp.float64(M) if self.fault == "uploads" else jnp.int32(M)
        mask = jnp.ones((M, 2), bool) if self.fault == "mask" else jnp.ones((M,), bool)
        return (
            jnp.sum(grads, 0),
            state,
            st.Stats(
                duration=knobs.broadcast_time + jnp.max(round.unit_times),
                uploads=uploads,
                downloads=jnp.int32(M),
                computations=jnp.int32(M),
                upload_mask=mask,
                decoding_residual=jnp.zeros((), grads.dtype),
            ),
        )


def test_hand_written_strategies_get_the_shape_checks():
    check(HandWritten(M))
    refused(
        HandWritten(M, "state"),
        r"^strategy 'hand': HandWritten.step returned state of "
        r"shape \(2,\) and dtype float64; init gave \(1,\)",
    )
    refused(
        HandWritten(M, "uploads"),
        r"HandWritten.step returned dtype float64 for "
        r"Stats.uploads; expected int32",
    )
    refused(
        HandWritten(M, "mask"),
        r"HandWritten.step returned shape \(6, 2\) dtype bool for "
        r"Stats.upload_mask; expected a 1-D bool array",
    )
    refused(
        HandWritten(M, "metrics"),
        r"'hand': its step reports the metrics none but it "
        r"declares \['staleness'\]",
    )


def test_passing_checks_are_remembered():
    calls = []

    @st.pytree_dataclass
    class CountingTrigger(st.NoTrigger):
        def init(self, placement, theta0, union_smoothness):
            calls.append(1)
            return ()

    strategy = st.Strategy(IDENTITY, CountingTrigger(), st.FirstK(M - 1), st.ScaledSum(1.2))
    check(strategy)
    first = len(calls)
    assert first >= 1
    check(strategy)
    assert len(calls) == first  # the same strategy, θ⁰, knobs and dtype: not checked again
    check(st.Strategy(IDENTITY, CountingTrigger(), st.FirstK(M - 1), st.ScaledSum(1.2)))
    assert len(calls) == first  # an equal strategy built afresh
    check_strategy(strategy, theta0=jnp.ones(D), knobs=KNOBS)
    assert len(calls) > first  # another θ⁰


def test_structure_only_checks_compile_nothing():
    """evaluate=False: the shape checks only (jax.eval_shape), no compilation (a first
    check of another ξ runs the host-side init's small eager programs beforehand)."""

    def strategy(xi):
        return st.Strategy(
            st.placement.cyclic(M, 2),
            st.WorkerTrigger(xi=xi),
            st.FirstK(M - 2),
            st.Decode.for_code(st.placement.cyclic(M, 2).encoding, 2),
        )

    check(strategy(0.3), evaluate=False)
    with count_compilations() as events:
        check(strategy(0.7), evaluate=False)
    assert events == []
