"""The batched Monte Carlo engine: every trial of a run in one compiled program.

Structure of a run (MODEL.md §3–4):

    [vmap over sweep points] vmap over trials ( scan over record blocks ( scan over
    `record_every` iterations ) )

Random streams are positional: trial i has ``key_i = fold_in(key(seed), i)``;
iteration k draws its unit times from ``fold_in(key_i, k)`` — identical for
every strategy (common random numbers) — and derives Markov-straggler
transitions and mini-batches from that key by further ``fold_in``. So results
depend neither on chunking nor on how trials are split across devices. (For the
parametric delay laws those draws are computed an iteration ahead by
``random_words``, bit for bit the same, which is faster on CPU.)

A run is described once (:class:`_RunSpec`: its points, each a strategy, a delay
model and knob values, and the configuration common to all); ``simulate`` is a
one-point ``sweep``. The numbers of every point (the strategy's leaves, the delay
model's, α and the link) are traced, so other values of one structure never
recompile. Unit times come from one source (:class:`_UnitTimes`: drawn, drawn
ahead or replayed; by iteration or by job index).

Iterations run in chunks: the carry (θ, optimizer state, strategy state, delay
state) passes between calls of one compiled function, which bounds memory, lets
a progress callback report and lets a checkpointed run resume. Durations, counts
and the strategy's named metrics are accumulated by name inside a record block and
into running totals on the host in float64 / int64. Where iterates do not depend
on the delays, the carry stays unbatched across trials: the θ trajectory is
computed once.
"""

from __future__ import annotations

import math
import warnings
from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import checkpoints as checkpoints_lib
from . import delays as delays_lib
from . import random_words
from .problems import Problem, gradient_oracle, minibatch_partition_grads
from .reductions import sum_squares
from .results import BUILTIN_METRICS, CORE_NAMES, Result, package_versions
from .strategies import Knobs, Round, is_strategy
from .strategies.contracts import check_strategy
from .strategies.protocol import ACCUMULATIONS, Metric
from .timing import BITS_PER_COORDINATE, LINKS, Link

# A trial is flagged as diverged when its gap exceeds this multiple of the
# initial gap (plus |f*|), or when its loss stops being finite.
DIVERGENCE_FACTOR = 1e6

# A trial whose decoding residual max|a_F B − 1| exceeds this (per compute dtype) decoded
# a wrong gradient: flagged in Result.decoding_residual and warned about.
DECODING_TOLERANCE = {"float64": 1e-8, "float32": 1e-3}

# Tags of the random streams derived from an iteration's key.
_MARKOV_TAG, _MARKOV_INIT_TAG, _MINIBATCH_TAG, _STRATEGY_TAG = 1, 2, 3, 4

# Trials per block when a run with batched iterates is split (see _in_trial_blocks).
_TRIAL_BLOCK = 2048

# What `record=` may ask for.
RECORDABLE = ("masks", "grad_error")


class _Static(NamedTuple):
    """Everything that fixes shapes or code paths: the jit cache key (with the pytree
    structures of the traced arguments: strategy, delay model, link)."""

    delay_dependent: bool  # the strategy's iterates depend on the delays
    weighted_loss: Callable
    optimizer: object  # None (sgd), a GradientTransformation, or a factory of traced args
    record_every: int
    num_blocks: int
    record: tuple  # of RECORDABLE names
    metrics: tuple  # the strategy's Metric declarations
    replay: bool  # unit times given instead of drawn
    batch_size: int | None
    swept: bool  # leading axis of sweep points on the traced values

    @property
    def iterates_batched(self) -> bool:
        """Whether θ differs across trials (else it is computed once for all)."""
        return self.delay_dependent or self.batch_size is not None


class _Traced(NamedTuple):
    """The numbers of a run: changing them never recompiles (one value per point)."""

    strategy: object  # the strategy's leaves (B, ξ, ...)
    knobs: Knobs  # α and the link
    delay: object  # a delay model (pytree of floats)
    slowdown: jnp.ndarray  # (M,)
    optimizer_args: dict  # keyword arguments of an optimizer factory


def _optimizer(static: _Static, step_size, optimizer_args):
    """The server's optax transformation: sgd(α) by default; a factory is called with
    its (traced) keyword arguments, so looping over their values never recompiles."""
    if static.optimizer is None:
        return optax.sgd(step_size)
    if isinstance(static.optimizer, optax.GradientTransformation):
        return static.optimizer
    return static.optimizer(**optimizer_args)


class _UnitTimes:
    """The one source of a trial's unit times X_{k,m} (times the slowdown).

    Drawn: iteration k draws from ``fold_in(trial_key, k)`` through the delay model's
    state (Markov stragglers, shuffled columns); for laws that transform standard
    exponentials the bits are computed an iteration ahead (``random_words``, bit for
    bit jax.random's draws, faster on CPU) and carried as ``ahead``. Replayed: row k
    of the trial's whole (num_iters, M) array. Either can be read by iteration
    (:meth:`at`) or by job index (:meth:`by_job`, for strategies whose workers run
    different iterations' jobs at once).
    """

    def __init__(self, static: _Static, traced: _Traced, trial_key, replayed, num_workers, dtype):
        self.static, self.delay, self.slowdown = static, traced.delay, traced.slowdown
        self.trial_key, self.replayed, self.M, self.dtype = trial_key, replayed, num_workers, dtype
        self.ahead = not static.replay and delays_lib.from_bits(self.delay)

    def start(self, k0):
        """The carried random bits of iteration k0 (None unless drawn ahead)."""
        if not self.ahead:
            return None
        return (
            random_words.random_bits(random_words.fold_in(self.trial_key, k0), self.M, self.dtype),
            random_words.fold_in(self.trial_key, k0 + 1),
        )

    def at(self, k, key, delay_state, ahead):
        """(X_k (M,), the delay state at k, the bits carried to k + 1)."""
        if self.static.replay:
            return self.replayed[k] * self.slowdown, delay_state, ahead
        delay, M = self.delay, self.M
        initial = delay.init_state(
            jax.random.fold_in(jax.random.fold_in(self.trial_key, 0), _MARKOV_INIT_TAG), M
        )
        advanced = delay.advance_state(delay_state, jax.random.fold_in(key, _MARKOV_TAG))
        delay_state = jax.tree_util.tree_map(
            lambda a, b: jnp.where(k == 0, a, b), initial, advanced
        )
        if self.ahead:
            bits, next_key = ahead
            x = delay.from_standard(random_words.exponential(bits, self.dtype))
            ahead = (
                random_words.random_bits(next_key, M, self.dtype),
                random_words.fold_in(self.trial_key, k + 2),
            )
        else:
            x = delay.sample(key, M, dtype=self.dtype)
        x = delay.apply_state(delay_state, x)
        return x * self.slowdown, delay_state, ahead

    def by_job(self, delay_state):
        """``draw(jobs)``: X_{jobs[m], m} for each worker m. Drawn: the draw of iteration
        jobs[m] with the trial's delay state (a model whose state evolves per iteration
        cannot be indexed by job: refused while tracing, before compiling). Replayed:
        row jobs[m] (an index past the run is never used: clamped)."""
        M = self.M
        if self.static.replay:

            def draw(jobs):
                rows = jnp.minimum(jobs, self.replayed.shape[0] - 1)
                return self.replayed[rows, jnp.arange(M)] * self.slowdown

            return draw
        if not self.delay.job_indexable:

            def refuse(jobs):
                raise ValueError(
                    f"delay: {type(self.delay).__name__} cannot be indexed by job (its state "
                    "evolves per iteration), which this strategy needs (its workers run "
                    "different iterations' jobs at once); use ShiftedExponential, Pareto or "
                    "replayed unit_times"
                )

            return refuse

        def draw(jobs):
            def one(job, m):
                x = self.delay.sample(jax.random.fold_in(self.trial_key, job), M, dtype=self.dtype)
                return self.delay.apply_state(delay_state, x)[m]

            return jax.vmap(one)(jobs, jnp.arange(M)) * self.slowdown

        return draw


def _gradient_error(aggregate, grads):
    """η = ‖ĝ − ∇f‖² / ‖∇f‖² (MODEL.md §10; 0 when ∇f = 0)."""
    full = jnp.sum(grads, axis=0)
    norm = sum_squares(full)
    error = sum_squares(aggregate - full)
    return jnp.where(norm > 0, error / jnp.where(norm > 0, norm, 1.0), 0.0)


def _trial_chunk(static: _Static, data, traced: _Traced, carry, trial_key, replayed, k0):
    """Run ``num_blocks * record_every`` iterations of one trial from iteration k0."""
    strategy = traced.strategy
    M = strategy.num_workers
    dtype = carry[0].dtype
    optimizer = _optimizer(static, traced.knobs.step_size, traced.optimizer_args)
    oracle = gradient_oracle(static.weighted_loss, data)  # loop-invariant work once
    # The value recorded: the gap f − f* where the problem computes it itself (the host
    # forms f = f* + gap in the compute dtype, ``_assemble``: the same operation as
    # ``loss_and_grads``, and no loss record in the program), else f.
    recorded = "loss" if oracle.gap_and_grads is None else "gap"
    value_and_grads = oracle.gap_and_grads or oracle.loss_and_grads

    def evaluate(theta):
        """({recorded: its value at θ}, grads)."""
        value, grads = value_and_grads(theta)
        return {recorded: value}, grads

    source = _UnitTimes(static, traced, trial_key, replayed, M, dtype)
    summed = [m.name for m in static.metrics if m.accumulate == "sum"]
    per_round = [m.name for m in static.metrics if m.accumulate == "round"]
    if "grad_error" in static.record:
        per_round.append("grad_error")

    def iteration(state, i):
        (theta, opt_state, strat_state, delay_state), acc, ahead = state
        k = k0 + i
        key = jax.random.fold_in(trial_key, k)
        values, grads = evaluate(theta)
        full_grads = grads
        if static.batch_size is not None:
            grads = minibatch_partition_grads(
                static.weighted_loss,
                theta,
                data,
                jax.random.fold_in(key, _MINIBATCH_TAG),
                static.batch_size,
            )
        x, delay_state, ahead = source.at(k, key, delay_state, ahead)
        combine = (
            None
            if oracle.combine is None or static.batch_size is not None
            else partial(oracle.combine, theta)
        )
        aggregate, strat_state, stats = strategy.step(
            strat_state,
            Round(
                theta,
                grads,
                x,
                k,
                jax.random.fold_in(key, _STRATEGY_TAG),
                source.by_job(delay_state),
                combine,
            ),
            traced.knobs,
        )
        updates, opt_state = optimizer.update(aggregate, opt_state, theta)
        new_theta = optax.apply_updates(theta, updates)
        reported = dict(stats.metrics)
        declared = {metric.name for metric in static.metrics}
        if set(reported) != declared:  # raised while tracing, before anything compiles
            raise ValueError(
                f"strategy {strategy.name!r}: its step reports the metrics "
                f"{sorted(reported) or 'none'} but it declares {sorted(declared) or 'none'} "
                "(strategy.metrics: a Metric for each name in Stats.metrics)"
            )
        if "grad_error" in static.record:
            reported["grad_error"] = _gradient_error(aggregate, full_grads)
        acc = dict(
            acc,
            **{
                f"first_{name}": jnp.where(
                    i % static.record_every == 0, value, acc[f"first_{name}"]
                )
                for name, value in values.items()
            },
            duration=acc["duration"] + stats.duration,
            uploads=acc["uploads"] + stats.uploads,
            downloads=acc["downloads"] + stats.downloads,
            computations=acc["computations"] + stats.computations,
            residual=jnp.maximum(acc["residual"], stats.decoding_residual),
            **{name: acc[name] + jnp.asarray(reported[name], dtype) for name in summed},
            **{name: jnp.asarray(reported[name], dtype) for name in per_round},
        )
        return ((new_theta, opt_state, strat_state, delay_state), acc, ahead), (
            stats.upload_mask if "masks" in static.record else None
        )

    def block(state, b):
        carry, ahead = state
        zero, izero = jnp.zeros((), dtype), jnp.zeros((), jnp.int32)
        acc = dict(
            **{f"first_{recorded}": zero},
            duration=zero,
            uploads=izero,
            downloads=izero,
            computations=izero,
            residual=zero,
            **{name: zero for name in (*summed, *per_round)},
        )
        steps = b * static.record_every + jnp.arange(static.record_every)
        (carry, acc, ahead), masks = jax.lax.scan(iteration, (carry, acc, ahead), steps)
        return (carry, ahead), (acc, masks)

    (carry, _), (records, masks) = jax.lax.scan(
        block, (carry, source.start(k0)), jnp.arange(static.num_blocks)
    )
    if "masks" in static.record:
        masks = masks.reshape(-1, masks.shape[-1])
    end_values, _ = evaluate(carry[0])
    return carry, records, masks, end_values


def _carry_axes(static: _Static):
    """Trial axis of each part of the carry (θ, optimizer, strategy, delay state): None
    where the iterates do not depend on the delays (θ computed once for all trials)."""
    iterates = 0 if static.iterates_batched else None
    return (iterates, iterates, iterates, 0)


@partial(jax.jit, static_argnames=("static",))
def _run_chunk(static: _Static, data, traced, carry, trial_keys, replayed, k0):
    carry_axes = _carry_axes(static)
    run = jax.vmap(
        partial(_trial_chunk, static, data),
        in_axes=(None, carry_axes, 0, 0 if static.replay else None, None),
        out_axes=(carry_axes, 0, 0, 0),
    )
    num_trials = trial_keys.shape[0]
    if static.iterates_batched and jax.device_count() == 1 and num_trials > 1.5 * _TRIAL_BLOCK:
        run = partial(_in_trial_blocks, run, num_trials)
    if static.swept:
        run = jax.vmap(run, in_axes=(0, 0, None, None, None))
    return run(traced, carry, trial_keys, replayed, k0)


def _in_trial_blocks(run, num_trials, traced, carry, trial_keys, replayed, k0):
    """``run`` over blocks of at most _TRIAL_BLOCK trials, one block after another.

    Every trial computes what it would in one batch; a block's per-iteration arrays
    (trials × P·n residuals, trials × M × d messages) stay closer to cache size, which
    keeps the time per trial from growing with the number of trials (~25 % at 10^4
    trials, M = 12, d = 50). Only used when the iterates are batched over trials.
    """
    blocks = -(-num_trials // _TRIAL_BLOCK)
    size = -(-num_trials // blocks)
    pad = blocks * size - num_trials

    def split(a):
        if pad:  # repeat trial 0 to fill the last block; dropped again in join
            a = jnp.concatenate([a, jnp.broadcast_to(a[:1], (pad,) + a.shape[1:])])
        return a.reshape((blocks, size) + a.shape[1:])

    def join(a):
        return a.reshape((blocks * size,) + a.shape[2:])[:num_trials]

    def one_block(xs):
        keys, times, block_carry = xs
        return run(traced, block_carry, keys, times, k0)

    per_trial = (trial_keys, replayed, carry)
    return jax.tree_util.tree_map(
        join, jax.lax.map(one_block, jax.tree_util.tree_map(split, per_trial))
    )


@partial(jax.jit, static_argnums=1)
def _trial_keys(root, count):
    """fold_in(root, i) for i < count, compiled once per count (eager vmap re-traces, ~2 ms)."""
    return jax.vmap(lambda i: jax.random.fold_in(root, i))(jnp.arange(count))


def _delay_state_shape(delay, num_workers):
    """Shapes and dtypes of a delay model's per-trial state (traced, not run: no program
    compiles), cached by the model's structure."""
    leaves, structure = jax.tree_util.tree_flatten(delay)
    signature = (
        structure,
        num_workers,
        tuple((np.shape(leaf), np.result_type(leaf).str) for leaf in leaves),
    )
    if signature not in _DELAY_STATE_SHAPES:
        _DELAY_STATE_SHAPES[signature] = jax.eval_shape(
            lambda key: delay.init_state(key, num_workers), jax.eval_shape(jax.random.key, 0)
        )
    return _DELAY_STATE_SHAPES[signature]


_DELAY_STATE_SHAPES: dict = {}


def _initial_carry(
    static: _Static,
    strategy,
    theta0,
    step_size,
    optimizer_args,
    delay,
    union_smoothness,
    num_trials,
):
    """The state before iteration 0, with the trial axes of :func:`_carry_axes`."""
    optimizer = _optimizer(static, step_size, optimizer_args)
    delay_state = jax.tree_util.tree_map(
        lambda a: np.zeros(a.shape, a.dtype), _delay_state_shape(delay, strategy.num_workers)
    )
    carry = (theta0, optimizer.init(theta0), strategy.init(theta0, union_smoothness), delay_state)
    return tuple(  # on the host: no small eager programs to compile
        part
        if axis is None
        else jax.tree_util.tree_map(
            lambda a: np.broadcast_to(np.asarray(a), (num_trials,) + np.shape(a)), part
        )
        for part, axis in zip(carry, _carry_axes(static))
    )


# --------------------------------------------------------------------------- #
# validation
# --------------------------------------------------------------------------- #
def _positive_int(name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _nonnegative(name, value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return number


def _positive(name, value):
    number = _nonnegative(name, value)
    if number == 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return number


def _check_delay(delay, num_workers: int):
    if not delays_lib.is_delay_model(delay):
        names = ", ".join(d.__name__ for d in delays_lib.DISTRIBUTIONS)
        raise ValueError(
            f"delay must be a delay model (a pytree with validate and sample: "
            f"{names} or your own DelayModel), got {type(delay).__name__}"
        )
    if (
        isinstance(delay, delays_lib.DelayModel)
        and not delay.standard_exponential
        and type(delay).sample is delays_lib.DelayModel.sample
    ):
        raise ValueError(
            f"delay: {type(delay).__name__} defines neither sample(key, "
            "num_workers, dtype) nor from_standard(e) with standard_exponential "
            "= True, so it has no draws"
        )
    return delay.validate(num_workers=num_workers)


def compute_dtype():
    """float64 when jax x64 is enabled, else float32."""
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


# --------------------------------------------------------------------------- #
# devices
# --------------------------------------------------------------------------- #
def _trial_sharding(num_trials: int):
    """Sharding of a leading trial axis over all devices (None on one device), and the
    trial count padded to a multiple of the device count."""
    devices = jax.devices()
    if len(devices) == 1:
        return None, num_trials
    padded = -(-num_trials // len(devices)) * len(devices)
    return NamedSharding(Mesh(np.array(devices), ("trials",)), PartitionSpec("trials")), padded


def _place(array, sharding):
    """A global array from a host array (identical on every process), sharded over trials."""
    array = np.asarray(array)
    if sharding is None:
        return jnp.asarray(array)
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def _to_host(tree):
    """Fetch (all shards of) outputs to numpy, across processes when running multi-host."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return jax.tree_util.tree_map(
            lambda a: np.asarray(multihost_utils.process_allgather(a, tiled=True)), tree
        )
    return jax.tree_util.tree_map(np.asarray, tree)


# --------------------------------------------------------------------------- #
# the run loop shared by simulate and sweep
# --------------------------------------------------------------------------- #
def _check_optimizer(optimizer, optimizer_args) -> dict:
    """Validate the optimizer (None, a GradientTransformation or a factory) and its args."""
    if optimizer is None or isinstance(optimizer, optax.GradientTransformation):
        if optimizer_args:
            raise ValueError("optimizer_args need an optimizer factory (e.g. optimizer=optax.adam)")
        return {}
    if not callable(optimizer):
        raise ValueError(
            "optimizer must be an optax.GradientTransformation or a factory "
            f"returning one (e.g. optax.adam), got {type(optimizer).__name__}"
        )
    args = dict(optimizer_args or {})
    for name, value in args.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float, np.floating, np.integer))
            or not math.isfinite(value)
        ):
            raise ValueError(
                f"optimizer_args[{name!r}] must be a finite real number (traced; "
                f"pass other settings through a factory), got {value!r}"
            )
    try:
        built = optimizer(**args)
    except TypeError as error:
        raise ValueError(
            f"optimizer factory rejected optimizer_args {sorted(args)}: {error}"
        ) from None
    if not isinstance(built, optax.GradientTransformation):
        raise ValueError(
            f"optimizer factory must return an optax.GradientTransformation, "
            f"got {type(built).__name__}"
        )
    return {name: float(value) for name, value in args.items()}


def _describe_optimizer(optimizer, optimizer_args) -> str:
    """A stable description (no memory addresses) of the server's optimizer."""
    if optimizer is None:
        return "sgd(step_size)"
    if isinstance(optimizer, optax.GradientTransformation):
        return "custom optax transformation"
    name = f"{getattr(optimizer, '__module__', '')}.{getattr(optimizer, '__qualname__', '?')}"
    args = ", ".join(f"{k}={v!r}" for k, v in sorted((optimizer_args or {}).items()))
    return f"{name}({args})"


def _point_values(name, value, check):
    """A knob's values: a scalar (one value for every point) or a sequence (one per point)."""
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim > 0):
        values = [check(name, v) for v in value]
        if not values:
            raise ValueError(f"{name} must not be an empty sequence")
        return values
    return [check(name, value)]


def _check_factors(name, value, num_workers):
    if value is None:
        return None
    factors = np.asarray(value, dtype=np.float64)
    if factors.shape != (num_workers,) or not np.all(np.isfinite(factors)) or np.any(factors <= 0):
        raise ValueError(
            f"{name} must be {num_workers} finite factors > 0 (one per worker), got {value!r}"
        )
    return factors


def _factor_points(value, num_workers):
    """upload_factors: None, one (M,) array, or a sequence / (N, M) array of them."""
    if value is None:
        return [None]
    array = np.asarray(value, dtype=object if isinstance(value, (list, tuple)) else None)
    if array.ndim == 2 or (
        isinstance(value, (list, tuple)) and len(value) and np.ndim(value[0]) == 1
    ):
        return [_check_factors("upload_factors", v, num_workers) for v in value]
    return [_check_factors("upload_factors", value, num_workers)]


def _with_xi(strategy, xi):
    """``strategy`` with every leaf named ``xi`` set to ``xi`` (one place for ξ: the trigger)."""
    if getattr(strategy, "xi", None) is None:
        raise ValueError(f"xi does not apply to strategy {strategy.name!r}")
    found = []

    def replace(path, leaf):
        if path and getattr(path[-1], "name", None) == "xi":
            found.append(path)
            return xi
        return leaf

    new = jax.tree_util.tree_map_with_path(replace, strategy)
    if not found:
        raise ValueError(
            f"xi: strategy {strategy.name!r} has no pytree leaf named xi to set; "
            "pass strategies with the values instead"
        )
    return new


def _check_metrics(strategy) -> tuple:
    """The strategy's Metric declarations, checked: unique names not of the core arrays."""
    declared = tuple(getattr(strategy, "metrics", ()))
    names = set()
    for metric in declared:
        if not isinstance(metric, Metric):
            raise ValueError(
                f"strategy {strategy.name!r}: metrics must be Metric(name, "
                f"accumulate) entries, got {metric!r}"
            )
        if not isinstance(metric.name, str) or not metric.name.isidentifier():
            raise ValueError(
                f"strategy {strategy.name!r}: metric name {metric.name!r} must be "
                "a Python identifier"
            )
        if metric.name in CORE_NAMES:
            raise ValueError(
                f"strategy {strategy.name!r}: metric name {metric.name!r} collides "
                f"with a core record ({', '.join(sorted(CORE_NAMES))})"
            )
        if metric.accumulate not in ACCUMULATIONS:
            raise ValueError(
                f"strategy {strategy.name!r}: metric {metric.name!r} accumulate must "
                f"be one of {ACCUMULATIONS}, got {metric.accumulate!r}"
            )
        if metric.name in BUILTIN_METRICS and metric.accumulate != "sum":
            raise ValueError(
                f"strategy {strategy.name!r}: metric {metric.name!r} (bits on the "
                "wire) must accumulate by 'sum'"
            )
        if metric.name in names:
            raise ValueError(f"strategy {strategy.name!r}: metric {metric.name!r} declared twice")
        names.add(metric.name)
    return declared


def _check_record(record, record_masks) -> tuple:
    if isinstance(record, str):
        record = (record,)
    record = tuple(record)
    unknown = [name for name in record if name not in RECORDABLE]
    if unknown:
        raise ValueError(f"record: unknown record {unknown[0]!r}; valid: {', '.join(RECORDABLE)}")
    if not isinstance(record_masks, (bool, np.bool_)):
        raise ValueError(f"record_masks must be True or False, got {record_masks!r}")
    if record_masks and "masks" not in record:
        record = record + ("masks",)
    return tuple(name for name in RECORDABLE if name in record)


class _RunSpec(NamedTuple):
    """A run described once: its points (one strategy, delay model and knob values
    each), the configuration common to all, and one JSON record per point."""

    strategies: list
    delays: list  # models (None when replaying)
    step_sizes: list
    links: list  # Link per point (numbers as Python floats / numpy)
    num_iters: int
    num_trials: int
    seed: int
    optimizer: object
    optimizer_args: dict
    link: str
    unit_times: np.ndarray | None
    slowdown: np.ndarray
    record_every: int
    chunk_size: int
    batch_size: int | None
    record: tuple
    metrics: tuple
    configs: list

    @property
    def num_points(self) -> int:
        return len(self.strategies)


def _prepare(
    problem,
    strategy,
    delay,
    *,
    num_iters,
    num_trials,
    seed=0,
    step_size=None,
    optimizer=None,
    optimizer_args=None,
    upload_time=0.0,
    broadcast_time=0.0,
    latency=0.0,
    upload_factors=None,
    xi=None,
    link="parallel",
    unit_times=None,
    slowdown=None,
    record_every=1,
    record=(),
    record_masks=False,
    chunk_size=None,
    batch_size=None,
) -> _RunSpec:
    """Validate every argument before anything compiles; return the run's description."""
    if not isinstance(problem, Problem):
        raise ValueError(
            f"problem must be a lagc_jax.problems.Problem, got {type(problem).__name__}"
        )
    strategies = list(strategy) if isinstance(strategy, (list, tuple)) else [strategy]
    if not strategies:
        raise ValueError("strategy must not be an empty sequence")
    for s in strategies:
        if not is_strategy(s):
            raise ValueError(
                f"strategy must follow the strategy protocol (lagc_jax.make or "
                f"lagc_jax.strategies.Strategy), got {type(s).__name__}"
            )
        if jax.tree_util.all_leaves([s]):  # not a registered pytree node
            raise ValueError(
                f"strategy: {type(s).__name__} is not a registered pytree; "
                "declare it with lagc_jax.strategies.pytree_dataclass"
            )
    first = strategies[0]
    structure = jax.tree_util.tree_structure(first)
    for i, s in enumerate(strategies[1:], 1):
        if jax.tree_util.tree_structure(s) != structure:
            raise ValueError(
                f"strategy: a sweep takes strategies of one pytree structure (same pieces and "
                f"static fields, numbers may differ); point {i} ({s.name!r}) differs from point "
                f"0 ({first.name!r})"
            )
    if problem.num_partitions != first.num_partitions:
        raise ValueError(
            f"problem has {problem.num_partitions} partitions but strategy {first.name!r} "
            f"places {first.num_partitions} (num_partitions must equal the encoding's columns)"
        )
    num_iters = _positive_int("num_iters", num_iters)
    num_trials = _positive_int("num_trials", num_trials)
    record_every = _positive_int("record_every", record_every)
    if num_iters % record_every:
        raise ValueError(f"record_every={record_every} must divide num_iters={num_iters}")
    chunk_size = num_iters if chunk_size is None else _positive_int("chunk_size", chunk_size)
    if chunk_size % record_every:
        raise ValueError(
            f"chunk_size={chunk_size} must be a multiple of record_every={record_every}"
        )
    if link not in LINKS:
        raise ValueError(f"link must be one of {LINKS}, got {link!r}")
    supported = tuple(getattr(first, "links", LINKS))
    if link not in supported:
        raise ValueError(
            f"link={link!r} does not apply to strategy {first.name!r} "
            f"(supported: {', '.join(supported)})"
        )
    record = _check_record(record, record_masks)
    metrics = _check_metrics(first)
    # jax.random.key keeps 32 bits of the seed without x64 (seed and seed + 2**32 would
    # give the same run) and 63 with it (larger seeds overflow)
    seed_bits = 63 if jax.config.jax_enable_x64 else 32
    if (
        not isinstance(seed, (int, np.integer))
        or isinstance(seed, bool)
        or not 0 <= seed < 2**seed_bits
    ):
        raise ValueError(
            f"seed must be an integer in [0, 2**{seed_bits} - 1] (the range "
            f"jax.random.key distinguishes with jax_enable_x64 "
            f"{'on' if seed_bits == 63 else 'off'}), got {seed!r}"
        )
    optimizer_args = _check_optimizer(optimizer, optimizer_args)
    if batch_size is not None:
        smallest = int(problem.partition_sizes.min())
        if (
            not isinstance(batch_size, (int, np.integer))
            or isinstance(batch_size, bool)
            or not 1 <= batch_size <= smallest
        ):
            raise ValueError(
                f"batch_size must be an integer in [1, {smallest}] (the smallest "
                f"partition), got {batch_size!r}"
            )
        batch_size = int(batch_size)
    M = first.num_workers
    if unit_times is not None:
        unit_times = np.asarray(unit_times, dtype=np.float64)
        if unit_times.shape != (num_trials, num_iters, M):
            raise ValueError(
                f"unit_times must have shape (num_trials, num_iters, M) = "
                f"{(num_trials, num_iters, M)}, got {unit_times.shape}"
            )
        if not np.all(np.isfinite(unit_times)) or np.any(unit_times < 0):
            raise ValueError("unit_times must be finite and >= 0")
        delays = [None]
    elif delay is None:
        raise ValueError("delay is required unless unit_times are given")
    else:
        delays = [_check_delay(d, M) for d in (delay if isinstance(delay, list) else [delay])]
        if len({jax.tree_util.tree_structure(d) for d in delays}) > 1:
            raise ValueError("delay: a sweep takes delay models of one type and structure")
    slowdown = np.ones(M) if slowdown is None else np.asarray(slowdown, dtype=np.float64)
    if slowdown.shape != (M,) or not np.all(np.isfinite(slowdown)) or np.any(slowdown <= 0):
        raise ValueError(f"slowdown must be {M} finite factors > 0, got {slowdown!r}")
    _check_representable("slowdown", slowdown)
    if unit_times is not None:
        _check_representable("unit_times", unit_times)
    for model in delays:
        mean = None if model is None else getattr(model, "mean", None)
        if mean is not None and math.isfinite(mean):
            _check_representable("delay (its mean unit time)", mean)
    points = dict(
        strategy=strategies,
        delay=delays,
        step_size=_point_values(
            "step_size", 1.0 / problem.smoothness if step_size is None else step_size, _positive
        ),
        upload_time=_point_values("upload_time", upload_time, _nonnegative),
        broadcast_time=_point_values("broadcast_time", broadcast_time, _nonnegative),
        latency=_point_values("latency", latency, _nonnegative),
        upload_factors=_factor_points(upload_factors, M),
        xi=[None] if xi is None else _point_values("xi", xi, _nonnegative),
    )
    lengths = {name: len(values) for name, values in points.items() if len(values) != 1}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"swept values must share one length, got {lengths}")
    num_points = max(lengths.values(), default=1)
    points = {
        name: values * num_points if len(values) == 1 else values for name, values in points.items()
    }
    if points["xi"][0] is not None:
        points["strategy"] = [_with_xi(s, v) for s, v in zip(points["strategy"], points["xi"])]
    if len({f is None for f in points["upload_factors"]}) > 1:
        raise ValueError("upload_factors: give factors for every point of a sweep or for none")
    for name in ("upload_time", "broadcast_time", "latency", "upload_factors"):
        for value in points[name]:
            if value is not None:
                _check_representable(name, value)
    for s in points["strategy"]:
        if getattr(s, "xi", None) is not None:
            _nonnegative("xi", s.xi)
        if hasattr(s, "validate"):
            s.validate(dtype=compute_dtype(), link=link)
    links = [
        Link(t, b, lat, f, kind=link)
        for t, b, lat, f in zip(
            points["upload_time"],
            points["broadcast_time"],
            points["latency"],
            points["upload_factors"],
        )
    ]
    theta0 = np.asarray(problem.initial_params(), np.float64).astype(
        jnp.dtype(compute_dtype()).name
    )
    for s, step, point_link in zip(points["strategy"], points["step_size"], links):
        check_strategy(
            s,
            theta0=theta0,
            num_partitions=problem.num_partitions,
            knobs=Knobs(step, point_link),
            dtype=compute_dtype(),
        )
    spec = _RunSpec(
        strategies=points["strategy"],
        delays=points["delay"],
        step_sizes=points["step_size"],
        links=links,
        num_iters=num_iters,
        num_trials=num_trials,
        seed=int(seed),
        optimizer=optimizer,
        optimizer_args=optimizer_args,
        link=link,
        unit_times=unit_times,
        slowdown=slowdown,
        record_every=record_every,
        chunk_size=chunk_size,
        batch_size=batch_size,
        record=record,
        metrics=metrics,
        configs=[],
    )
    return spec._replace(configs=[_config(problem, spec, i) for i in range(num_points)])


def _stack(values, dtype):
    """One host array of the points' values of a leaf (floats in the compute dtype)."""
    array = np.asarray(values)
    if np.issubdtype(array.dtype, np.floating) or array.dtype == object:
        return np.asarray(values, dtype=np.float64).astype(dtype)
    return array


def _delay_models(spec: _RunSpec) -> list:
    """The delay model of each point (a placeholder, never drawn from, when replaying)."""
    if spec.unit_times is not None:
        return [delays_lib.ShiftedExponential()] * spec.num_points
    return spec.delays


def _traced(spec: _RunSpec, dtype) -> _Traced:
    """The numbers of every point, stacked on a leading point axis when there are several."""

    def stacked(trees):
        if len(trees) == 1:
            return jax.tree_util.tree_map(lambda v: _stack(v, dtype), trees[0])
        return jax.tree_util.tree_map(lambda *v: _stack(list(v), dtype), *trees)

    num_points, M = spec.num_points, spec.strategies[0].num_workers
    dtype = np.dtype(jnp.dtype(dtype).name)
    traced = _Traced(
        strategy=stacked(spec.strategies),
        knobs=stacked([Knobs(step, link) for step, link in zip(spec.step_sizes, spec.links)]),
        delay=stacked(_delay_models(spec)),
        slowdown=spec.slowdown.astype(dtype),
        optimizer_args={
            name: np.asarray(value, dtype) for name, value in spec.optimizer_args.items()
        },
    )
    if num_points > 1:
        traced = traced._replace(
            slowdown=np.broadcast_to(traced.slowdown, (num_points, M)),
            optimizer_args={
                name: np.broadcast_to(value, (num_points,) + value.shape)
                for name, value in traced.optimizer_args.items()
            },
        )
    return jax.device_put(traced)  # one transfer of every leaf


def _run(problem, spec: _RunSpec, *, progress, checkpoint_dir):
    """Run all chunks; return host records per point: (records dict, end loss, masks)."""
    dtype = compute_dtype()
    strategy = spec.strategies[0]
    swept = spec.num_points > 1
    data = problem.device_data(dtype)
    traced = _traced(spec, dtype)
    trial_sharding, padded = _trial_sharding(spec.num_trials)
    replayed = None  # every chunk reads the trial's whole array (by iteration or by job)
    if spec.unit_times is not None:
        times = spec.unit_times
        if padded > spec.num_trials:
            times = np.concatenate([times, np.repeat(times[:1], padded - spec.num_trials, 0)])
        replayed = _place(times.astype(dtype), trial_sharding)

    def static_for(num_blocks):
        return _Static(
            bool(strategy.delay_dependent),
            problem.weighted_loss,
            spec.optimizer,
            spec.record_every,
            num_blocks,
            spec.record,
            spec.metrics,
            spec.unit_times is not None,
            spec.batch_size,
            swept,
        )

    theta0 = jnp.asarray(problem.initial_params(), dtype)
    carries = [
        _initial_carry(
            static_for(0), s, theta0, step, spec.optimizer_args, d, problem.union_smoothness, padded
        )
        for s, step, d in zip(spec.strategies, spec.step_sizes, _delay_models(spec))
    ]
    carry = (
        carries[0]
        if not swept
        else jax.tree_util.tree_map(lambda *a: np.stack([np.asarray(x) for x in a]), *carries)
    )
    carry = jax.device_put(carry)  # arrays like the chunks' outputs: one jit cache entry
    if not all(model.job_indexable for model in _delay_models(spec)):
        # a strategy that reads unit times by job refuses such a model while tracing:
        # trace one trial now, before anything compiles
        _program_description(static_for(1), data, traced, carry, replayed, swept)
    trial_keys = _trial_keys(jax.random.key(spec.seed), padded)
    if trial_sharding is not None:
        # one global array over the devices of every process; each process places the
        # shards of its own devices (identical key data everywhere: positional keys)
        trial_keys = jax.random.wrap_key_data(
            _place(np.asarray(jax.random.key_data(trial_keys)), trial_sharding)
        )
    records, masks, end_values, start = [], [], None, 0
    trial_axis = 1 if swept else 0
    checkpoint = None
    if checkpoint_dir is not None:
        lengths = sorted(
            {
                min(spec.chunk_size, spec.num_iters - k0)
                for k0 in range(0, spec.num_iters, spec.chunk_size)
            }
        )
        programs = [
            _program_description(
                static_for(n // spec.record_every), data, traced, carry, replayed, swept
            )
            for n in lengths
        ]
        checkpoint = _checkpoint(
            checkpoint_dir, problem, spec, programs, carry, _carry_trial_axes(static_for(0), carry)
        )
    if checkpoint is not None and checkpoint.done:
        # the carry keeps its pytree structure and leaf shapes across chunks
        records, masks, end_values, carry = checkpoint.load(
            carry, _carry_trial_axes(static_for(0), carry), padded
        )
        start = checkpoint.done
    for k0 in range(start, spec.num_iters, spec.chunk_size):
        length = min(spec.chunk_size, spec.num_iters - k0)
        static = static_for(length // spec.record_every)
        carry, chunk_records, chunk_masks, chunk_end = _run_chunk(
            static, data, traced, carry, trial_keys, replayed, jnp.int32(k0)
        )
        chunk_records, chunk_masks, end_values = _to_host((chunk_records, chunk_masks, chunk_end))
        if padded > spec.num_trials:  # padding trials dropped
            chunk_records, chunk_masks, end_values = jax.tree_util.tree_map(
                lambda a: np.take(a, np.arange(spec.num_trials), axis=trial_axis),
                (chunk_records, chunk_masks, end_values),
            )
        records.append(chunk_records)
        if "masks" in spec.record:
            masks.append(chunk_masks)
        if checkpoint is not None:
            checkpoint.save(
                k0,
                k0 + length,
                chunk_records,
                chunk_masks if "masks" in spec.record else None,
                end_values,
                _to_host(carry),
                _carry_trial_axes(static, carry),
            )
        if progress is not None:
            progress(k0 + length, spec.num_iters)

    joined = (
        records[0]
        if len(records) == 1
        else {
            name: np.concatenate([r[name] for r in records], axis=trial_axis + 1)
            for name in records[0]
        }
    )
    mask = (
        np.concatenate(masks, axis=trial_axis + 1).astype(bool) if "masks" in spec.record else None
    )
    if not swept:  # a leading point axis of length 1
        joined = {name: a[None] for name, a in joined.items()}
        end_values = {name: a[None] for name, a in end_values.items()}
        mask = None if mask is None else mask[None]
    return [
        (
            {name: a[i] for name, a in joined.items()},
            {name: a[i] for name, a in end_values.items()},
            None if mask is None else mask[i],
        )
        for i in range(spec.num_points)
    ]


def _assemble(problem, spec: _RunSpec, point: int, records, end_values, mask) -> Result:
    """Host-side assembly of one point: cumulative totals in float64 / int64, named
    metrics, the divergence flag."""
    config = spec.configs[point]
    name = f"{spec.strategies[point].name}{f'[point {point}]' if spec.num_points > 1 else ''}"
    num_trials = records["duration"].shape[0]
    f_star = problem.optimal_value
    if "gap" in end_values:  # f = f* + gap in the compute dtype, as ``loss_and_grads`` forms it
        f_star_c = np.asarray(problem.quadratic.optimal_value).astype(end_values["gap"].dtype)
        records = dict(records, first_loss=f_star_c + records["first_gap"])
        end_values = dict(end_values, loss=f_star_c + end_values["gap"])

    def with_end(name):
        first = records[f"first_{name}"]
        values = np.empty((num_trials, first.shape[1] + 1), np.float64)
        values[:, :-1] = first
        values[:, -1] = end_values[name]
        return values

    loss = with_end("loss")
    # f − f*: computed by the program where the problem can (no floor at eps·|f*|)
    gap = with_end("gap") if "gap" in end_values else loss - f_star

    # Written into preallocated arrays: these copies are most of the host's share of a
    # short run. The running sum adds the same values in the same order as a cumsum in the
    # wider dtype; accumulating a widened copy is 2-10x faster than a cumsum with dtype=.
    def cumulative(per_block, kind):
        totals = np.empty((num_trials, per_block.shape[1] + 1), kind)
        totals[:, 0] = 0
        np.add.accumulate(per_block.astype(kind, copy=False), axis=1, out=totals[:, 1:])
        return totals

    def per_round(values):
        rounds = np.empty((num_trials, values.shape[1] + 1), np.float64)
        rounds[:, 0] = np.nan
        rounds[:, 1:] = values
        return rounds

    diverged = ~np.all(np.isfinite(loss), axis=1) | np.any(
        gap > DIVERGENCE_FACTOR * (np.abs(gap[:, :1]) + abs(f_star)), axis=1
    )
    if diverged.any():
        warnings.warn(
            f"{name}: {int(diverged.sum())} of {num_trials} trials diverged "
            f"(loss non-finite or gap > {DIVERGENCE_FACTOR:g}× the initial); see Result.diverged",
            RuntimeWarning,
            stacklevel=4,
        )
    # worst decoding of each trial, reduced here rather than after the device loop: that
    # reduction changed XLA's buffer packing so that gd's loop body ran serially, 15 %
    # slower (docs/performance.md, "Small programs and XLA's thunk executor")
    residual = records["residual"].max(axis=1)
    tolerance = DECODING_TOLERANCE[config["dtype"]]
    undecoded = ~(residual <= tolerance)
    if undecoded.any():
        warnings.warn(
            f"{name}: {int(undecoded.sum())} of {num_trials} trials used a "
            f"decoding with max|a_F B - 1| = {float(np.max(residual)):.3g} > {tolerance:g} "
            "(the encoding cannot decode the straggler sets met, or the dtype cannot represent "
            "its decoding); see Result.decoding_residual",
            RuntimeWarning,
            stacklevel=4,
        )
    wall_clock = cumulative(records["duration"], np.float64)
    clock_broken = ~np.all(np.isfinite(wall_clock), axis=1)
    if clock_broken.any():
        warnings.warn(
            f"{name}: the wall clock of {int(clock_broken.sum())} of {num_trials} "
            "trials is not finite (a unit time overflowed the compute dtype, the delay has "
            "an infinite mean, e.g. Pareto shape <= 1, or a wait rule returned a negative or "
            "NaN time); they are flagged in Result.diverged",
            RuntimeWarning,
            stacklevel=4,
        )
        diverged = diverged | clock_broken
    counts = {k: cumulative(records[k], np.int64) for k in ("uploads", "downloads", "computations")}
    bits_per_vector = BITS_PER_COORDINATE * problem.dim
    metrics = {
        "bits_up": bits_per_vector * counts["uploads"],
        "bits_down": bits_per_vector * counts["downloads"],
    }
    for metric in spec.metrics:
        values = records[metric.name]
        metrics[metric.name] = (
            cumulative(values, np.float64) if metric.accumulate == "sum" else per_round(values)
        )
    if "grad_error" in spec.record:
        metrics["grad_error"] = per_round(records["grad_error"])
    return Result(
        iterations=np.arange(0, config["num_iters"] + 1, spec.record_every),
        loss=loss,
        gap=gap,
        wall_clock=wall_clock,
        **counts,
        diverged=diverged,
        optimal_value=f_star,
        upload_mask=mask,
        decoding_residual=residual.astype(np.float64),
        config=config,
        metrics=metrics,
    )


def _carry_trial_axes(static: _Static, carry) -> list:
    """Per leaf of the carry, its axis of trials, or None when the leaf is shared by all
    trials (iterates that do not depend on the delays)."""
    offset = 1 if static.swept else 0  # sweep points come first
    return [
        None if axis is None else axis + offset
        for part, axis in zip(carry, _carry_axes(static))
        for _ in jax.tree_util.tree_leaves(part)
    ]


def _gap_resolution(problem) -> float:
    """The smallest gap f − f* the compute dtype resolves: 0 where the program computes
    the gap itself (quadratic problems), else the dtype's resolution of f (eps·|f*|)."""
    if problem.uses_quadratic_form:
        return 0.0
    return float(jnp.finfo(compute_dtype()).eps * abs(problem.optimal_value))


def _check_representable(name, values) -> None:
    """Refuse positive times or factors that the compute dtype rounds to 0 (or to inf)."""
    values = np.asarray(values, dtype=np.float64)
    dtype = np.dtype(jnp.dtype(compute_dtype()).name)
    rounded = values.astype(dtype)
    lost = (values > 0) & ((rounded == 0) | ~np.isfinite(rounded))
    if lost.any():
        value = float(values[lost].flat[0])
        raise ValueError(
            f"{name}: {value!r} is not representable in {dtype.name} (it rounds to "
            f"{float(rounded[lost].flat[0])!r}; smallest normal "
            f"{np.finfo(dtype).tiny:.3g}, largest {np.finfo(dtype).max:.3g}); "
            "rescale the times or enable float64 (JAX_ENABLE_X64=1)"
        )


def _config(problem, spec: _RunSpec, point: int) -> dict:
    """The JSON record of one point: everything that determines its result, readably."""
    strategy, link, delay = spec.strategies[point], spec.links[point], spec.delays[point]
    factors = link.upload_factors
    return dict(
        problem=problem.name,
        num_partitions=problem.num_partitions,
        dim=problem.dim,
        optimum_estimated=problem.estimated,
        strategy=strategy.name,
        num_workers=strategy.num_workers,
        stragglers=getattr(strategy, "stragglers", None),
        xi=getattr(strategy, "xi", None),
        history=getattr(strategy, "history", None),
        start=getattr(strategy, "start", None),
        delay=None if delay is None else delays_lib.describe_parameters(delay),
        num_iters=spec.num_iters,
        num_trials=spec.num_trials,
        seed=spec.seed,
        step_size=spec.step_sizes[point],
        optimizer=_describe_optimizer(spec.optimizer, spec.optimizer_args),
        upload_time=link.upload_time,
        broadcast_time=link.broadcast_time,
        latency=link.latency,
        upload_factors=None if factors is None else factors.tolist(),
        link=spec.link,
        replayed_unit_times=spec.unit_times is not None,
        slowdown=spec.slowdown.tolist(),
        batch_size=spec.batch_size,
        record_every=spec.record_every,
        record=list(spec.record),
        gap_resolution=_gap_resolution(problem),
        metrics=[list(m) for m in spec.metrics],
        dtype=jnp.dtype(compute_dtype()).name,
        versions=package_versions(),
    )


def _program_description(static: _Static, data, traced, carry, replayed, swept):
    """What one trial's chunk computes: the text of its jaxpr and its constants' bytes.

    Every piece of user code that runs inside (wait rules, aggregators, losses,
    optimizers, delay models) is traced into it, so an edited function body, another
    closure value or another optax transformation changes it, while the device count
    and the number of trials do not (one trial of the first point is traced).
    """

    def first(tree, axes: int):
        """Entry 0 along the ``axes`` leading axes (points, then trials), on the host
        (indexing a device array would compile a small program)."""
        return jax.tree_util.tree_map(lambda a: np.asarray(a)[(0,) * axes], tree)

    point = 1 if swept else 0
    one_traced = first(traced, point)
    one_carry = tuple(
        first(part, point + (axis is not None)) for part, axis in zip(carry, _carry_axes(static))
    )
    # inputs without the trials' sharding (it would show in the jaxpr), values unused
    one_replayed = (
        None if replayed is None else jax.ShapeDtypeStruct(replayed.shape[1:], replayed.dtype)
    )
    closed = jax.make_jaxpr(partial(_trial_chunk, static._replace(swept=False), data))(
        one_traced, one_carry, jax.eval_shape(jax.random.key, 0), one_replayed, jnp.int32(0)
    )
    return checkpoints_lib.describe_jaxpr(closed)


def _checkpoint(directory, problem, spec: _RunSpec, programs, initial_carry, trial_axes):
    """The checkpoint store of a run, keyed by what it computes: the chunk programs
    (:func:`_program_description`), the problem's data, the initial state the strategy
    and optimizer build on the host, the replayed times and the run's configuration."""
    dtype = compute_dtype()
    parts = {
        "program": checkpoints_lib.fingerprint(programs=programs),
        "data": checkpoints_lib.fingerprint(
            problem_data=problem.device_data(dtype),
            smoothness=problem.smoothness,
            partition_smoothness=problem.partition_smoothness,
            optimal_value=problem.optimal_value,
            theta0=np.asarray(problem.initial_params(), dtype),
            unit_times=spec.unit_times,
        ),
        "initial state": checkpoints_lib.fingerprint(  # the padding trials left out
            carry=[
                np.asarray(leaf)
                if axis is None
                else np.take(np.asarray(leaf), np.arange(spec.num_trials), axis=axis)
                for leaf, axis in zip(jax.tree_util.tree_leaves(initial_carry), trial_axes)
            ]
        ),
        "configuration": checkpoints_lib.fingerprint(
            strategies=spec.strategies,
            chunk_size=spec.chunk_size,
            configs=[{k: v for k, v in c.items() if k != "versions"} for c in spec.configs],
        ),
    }
    return checkpoints_lib.Checkpoint(directory, parts, spec.num_trials)


def _execute(problem, spec: _RunSpec, *, progress, checkpoint_dir) -> list[Result]:
    """Run a described run: one Result per point."""
    outputs = _run(problem, spec, progress=progress, checkpoint_dir=checkpoint_dir)
    results = []
    for i, output in enumerate(outputs):  # a loop, not a comprehension: warnings' stacklevel
        results.append(_assemble(problem, spec, i, *output))
    return results


# --------------------------------------------------------------------------- #
# public entry points
# --------------------------------------------------------------------------- #
def simulate(
    problem: Problem,
    strategy,
    delay=None,
    *,
    num_iters: int,
    num_trials: int,
    seed: int = 0,
    step_size=None,
    optimizer=None,
    optimizer_args=None,
    upload_time=0.0,
    broadcast_time=0.0,
    latency=0.0,
    upload_factors=None,
    link: str = "parallel",
    unit_times=None,
    slowdown=None,
    record_every: int = 1,
    record=(),
    record_masks: bool = False,
    chunk_size: int | None = None,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    checkpoint_dir=None,
) -> Result:
    """Simulate ``num_trials`` independent runs of ``strategy`` on ``problem``
    (a one-point :func:`sweep`).

    Args:
      problem: a :class:`~lagc_jax.problems.Problem` with ``num_partitions`` equal
        to the strategy's P.
      strategy: from :func:`lagc_jax.strategies.make` (or any strategy of the protocol).
      delay: a unit-time model (any :class:`~lagc_jax.delays.DelayModel`:
        ``ShiftedExponential``, ``Pareto``, ``Weibull``, ``MarkovStragglers``, …);
        may be None when ``unit_times`` is given.
      num_iters, num_trials: iterations K and Monte Carlo trials.
      seed: trial i uses ``fold_in(key(seed), i)``; iteration k folds in k.
      step_size: α (default 1/L); also the nominal α of the lazy thresholds.
      optimizer: any optax GradientTransformation applied to the aggregated
        gradient, or a factory returning one (e.g. ``optax.adam``) called with
        ``optimizer_args`` (real numbers, traced: a loop over their values compiles
        once, whereas every new GradientTransformation instance compiles anew);
        default ``optax.sgd(step_size)``.
      upload_time, broadcast_time: τ (link time of a full-precision gradient) and τ_b (≥ 0).
      latency: added to every upload's link time (≥ 0; MODEL.md §9).
      upload_factors: (M,) factors > 0 multiplying each worker's upload time
        (heterogeneous bandwidth); default all 1.
      link: "parallel" or "shared" uplink (MODEL.md §3).
      unit_times: measured unit times, array (num_trials, num_iters, M), replacing the draws.
      slowdown: (M,) factors multiplying the unit times (persistent stragglers).
      record_every: record every r-th iterate (r must divide num_iters).
      record: extra records: ``"masks"`` (``upload_mask`` (trials, iters, units): lazy units
        updated, or messages used) and ``"grad_error"`` (η_k of MODEL.md §10, a metric).
      record_masks: ``True`` is ``record=("masks",)``.
      chunk_size: iterations per compiled call (a multiple of record_every);
        default: the whole run in one call.
      batch_size: mini-batch size per partition for stochastic gradients (default:
        full partition gradients); sampled per trial and iteration.
      progress: called as ``progress(iterations_done, num_iters)`` after each chunk.
      checkpoint_dir: save each chunk there; a rerun with the same arguments
        resumes after the last chunk committed, with identical results, on any
        device count. Another configuration, or a missing, stale or corrupt file,
        raises ValueError (see :mod:`lagc_jax.checkpoints`).

    Returns:
      a :class:`~lagc_jax.results.Result` whose arrays have shape
      (num_trials, num_iters // record_every + 1), with the metrics ``bits_up``,
      ``bits_down``, the strategy's own and those recorded on request.
    """
    scalars = dict(
        step_size=step_size, upload_time=upload_time, broadcast_time=broadcast_time, latency=latency
    )
    swept = [
        name
        for name, value in scalars.items()
        if isinstance(value, (list, tuple)) or np.ndim(value) > 0
    ]
    if (
        swept
        or isinstance(strategy, (list, tuple))
        or isinstance(delay, list)
        or np.ndim(upload_factors) > 1
    ):
        raise ValueError(
            f"simulate takes scalar knobs (got sequences for "
            f"{', '.join(swept) or 'strategy, delay or upload_factors'}); use "
            "lagc_jax.sweep for several values"
        )
    spec = _prepare(
        problem,
        strategy,
        delay,
        num_iters=num_iters,
        num_trials=num_trials,
        seed=seed,
        optimizer=optimizer,
        optimizer_args=optimizer_args,
        upload_factors=upload_factors,
        link=link,
        unit_times=unit_times,
        slowdown=slowdown,
        record_every=record_every,
        record=record,
        record_masks=record_masks,
        chunk_size=chunk_size,
        batch_size=batch_size,
        **scalars,
    )
    return _execute(problem, spec, progress=progress, checkpoint_dir=checkpoint_dir)[0]


def sweep(
    problem: Problem,
    strategy,
    delay=None,
    *,
    num_iters: int,
    num_trials: int,
    step_size=None,
    xi=None,
    upload_time=0.0,
    broadcast_time=0.0,
    latency=0.0,
    upload_factors=None,
    progress=None,
    checkpoint_dir=None,
    **kwargs,
) -> list[Result]:
    """Simulate several points in one vmapped, compiled program.

    Any of ``strategy`` (strategies of one pytree structure: other ξ, B, deadlines,
    a quantizer's levels — whatever is a leaf), ``delay`` (models of one type),
    ``step_size``, ``xi`` (sets every strategy leaf named ``xi``), ``upload_time``,
    ``broadcast_time``, ``latency`` and ``upload_factors`` ((N, M)) may be a sequence;
    sequences must have one common length N and are zipped (use ``numpy.meshgrid`` for
    a grid); single values are broadcast. Every point sees the same unit-time draws
    (common random numbers). Other keyword arguments are those of :func:`simulate`.
    Returns N Results. Another sweep with other values of the same structure and
    length compiles nothing.

    >>> import lagc_jax as lj
    >>> rs = sweep(lj.problems.lag_synthetic(4, dim=8), lj.strategies.make("gd", 4),
    ...            lj.ShiftedExponential(), num_iters=5, num_trials=2, upload_time=[0.0, 1.0])
    >>> [round(float(r.wall_clock[0, -1] - rs[0].wall_clock[0, -1]), 6) for r in rs]
    [0.0, 5.0]
    """
    unknown = sorted(set(kwargs) - _SWEEP_KEYWORDS)
    if unknown:
        raise TypeError(
            f"sweep() got an unexpected keyword argument {unknown[0]!r}; valid "
            f"keywords: strategy, delay, step_size, xi, upload_time, broadcast_time, "
            f"latency, upload_factors (swept) and {', '.join(sorted(_SWEEP_KEYWORDS))}"
        )
    spec = _prepare(
        problem,
        strategy,
        delay,
        num_iters=num_iters,
        num_trials=num_trials,
        step_size=step_size,
        xi=xi,
        upload_time=upload_time,
        broadcast_time=broadcast_time,
        latency=latency,
        upload_factors=upload_factors,
        **kwargs,
    )
    return _execute(problem, spec, progress=progress, checkpoint_dir=checkpoint_dir)


# Keyword arguments of sweep that are not swept (those of simulate).
_SWEEP_KEYWORDS = frozenset(
    {
        "seed",
        "optimizer",
        "optimizer_args",
        "link",
        "unit_times",
        "slowdown",
        "record_every",
        "record",
        "record_masks",
        "chunk_size",
        "batch_size",
    }
)
