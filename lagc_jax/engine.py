"""The batched Monte Carlo engine: every trial of a run in one compiled program.

Structure of a run (MODEL.md §3–4):

    vmap over trials ( scan over record blocks ( scan over `record_every` iterations ) )

Per iteration k of trial i the unit times are drawn from ``fold_in(key_i, k)``
with ``key_i = fold_in(key(seed), i)``, so they are identical for every
strategy (common random numbers) and independent of how trials and iterations
are chunked. Iterations run in chunks: the carry (θ, optimizer state, strategy
state) passes between calls of one compiled function, which bounds memory and
lets a progress callback report. Per-iteration durations and counts are summed
inside a record block and accumulated into running totals on the host in
float64 / int64.
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

from . import delays as delays_lib
from .problems import Problem, loss_and_partition_grads
from .results import Result, package_versions
from .strategies import StepParams, Strategy, StrategyArrays
from .timing import LINKS

# A trial is flagged as diverged when its gap exceeds this multiple of the
# initial gap (plus |f*|), or when its loss stops being finite.
DIVERGENCE_FACTOR = 1e6


class _Static(NamedTuple):
    """Everything that fixes shapes or code paths: the jit cache key."""

    strategy: Strategy
    partition_loss: Callable
    optimizer: optax.GradientTransformation | None
    link: str
    record_every: int
    num_blocks: int
    record_masks: bool
    replay: bool  # unit times given instead of drawn
    carry_batched_in: bool
    carry_batched_out: bool


class _Traced(NamedTuple):
    """Numeric knobs: changing them never recompiles."""

    step: StepParams
    delay: object  # a delay distribution (pytree of floats)
    slowdown: jnp.ndarray  # (M,)


def _optimizer(static: _Static, step_size):
    if static.optimizer is not None:
        return static.optimizer
    return optax.sgd(step_size)


def _trial_chunk(static: _Static, data, arrays: StrategyArrays, traced: _Traced,
                 carry, trial_key, unit_times, k0):
    """Run ``num_blocks * record_every`` iterations of one trial from iteration k0."""
    strategy = static.strategy
    M = strategy.num_workers
    optimizer = _optimizer(static, traced.step.step_size)

    def iteration(state, i):
        (theta, opt_state, strat_state), acc = state
        k = k0 + i
        loss, grads = loss_and_partition_grads(static.partition_loss, theta, data)
        if static.replay:
            x = unit_times[i]
        else:
            x = delays_lib.sample_unit_times(
                traced.delay, jax.random.fold_in(trial_key, k), M, dtype=theta.dtype)
        x = x * traced.slowdown
        aggregate, strat_state, stats = strategy.step(
            arrays, traced.step, strat_state, theta, k, grads, x, static.link)
        updates, opt_state = optimizer.update(aggregate, opt_state, theta)
        new_theta = optax.apply_updates(theta, updates)
        strat_state = strategy.record_step(strat_state, jnp.sum((new_theta - theta) ** 2), k)
        first_loss, duration, uploads, downloads, computations = acc
        acc = (
            jnp.where(i % static.record_every == 0, loss, first_loss),
            duration + stats.duration,
            uploads + stats.uploads,
            downloads + stats.downloads,
            computations + stats.computations,
        )
        return ((new_theta, opt_state, strat_state), acc), (
            stats.upload_mask if static.record_masks else None)

    def block(carry, b):
        zero = jnp.zeros((), carry[0].dtype)
        izero = jnp.zeros((), jnp.int32)
        acc = (zero, zero, izero, izero, izero)
        steps = b * static.record_every + jnp.arange(static.record_every)
        (carry, acc), masks = jax.lax.scan(iteration, (carry, acc), steps)
        return carry, (acc, masks)

    carry, (records, masks) = jax.lax.scan(block, carry, jnp.arange(static.num_blocks))
    if static.record_masks:
        masks = masks.reshape(-1, masks.shape[-1])
    return carry, records, masks


@partial(jax.jit, static_argnames=("static",))
def _run_chunk(static: _Static, data, arrays, traced, carry, trial_keys, unit_times, k0):
    carry_in = 0 if static.carry_batched_in else None
    carry_out = 0 if static.carry_batched_out else None
    times_axis = 0 if static.replay else None
    run = jax.vmap(
        partial(_trial_chunk, static, data, arrays, traced),
        in_axes=(carry_in, 0, times_axis, None),
        out_axes=(carry_out, 0, 0),
    )
    return run(carry, trial_keys, unit_times, k0)


@partial(jax.jit, static_argnames=("partition_loss", "batched"))
def _final_loss(partition_loss, batched, data, theta):
    def loss(t):
        return loss_and_partition_grads(partition_loss, t, data)[0]
    return jax.vmap(loss)(theta) if batched else loss(theta)


def _init_carry(static: _Static, theta0, step_size):
    optimizer = _optimizer(static, step_size)
    return theta0, optimizer.init(theta0), static.strategy.init_state(theta0, theta0.dtype)


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


def _unit_smoothness(problem: Problem, strategy: Strategy) -> np.ndarray:
    if strategy.trigger != "server":
        return np.ones(max(strategy.num_units, 1))
    return np.array([problem.union_smoothness(mask) for mask in strategy.unit_partitions])


def compute_dtype():
    """float64 when jax x64 is enabled, else float32."""
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


# --------------------------------------------------------------------------- #
# public entry point
# --------------------------------------------------------------------------- #
def simulate(problem: Problem, strategy: Strategy, delay=None, *, num_iters: int, num_trials: int,
             seed: int = 0, step_size=None, optimizer=None, upload_time=0.0,
             broadcast_time=0.0, link: str = "parallel", unit_times=None, slowdown=None,
             record_every: int = 1, record_masks: bool = False, chunk_size: int | None = None,
             progress: Callable[[int, int], None] | None = None) -> Result:
    """Simulate ``num_trials`` independent runs of ``strategy`` on ``problem``.

    Args:
      problem: a :class:`~lagc_jax.problems.Problem` with ``num_partitions`` equal
        to the strategy's P.
      strategy: from :func:`lagc_jax.strategies.make`.
      delay: unit-time distribution (``ShiftedExponential`` or ``Pareto``);
        may be None when ``unit_times`` is given.
      num_iters, num_trials: iterations K and Monte Carlo trials.
      seed: trial i uses ``fold_in(key(seed), i)``; per-iteration draws fold in k.
      step_size: α (default 1/L); also the nominal α of the lazy thresholds.
      optimizer: any optax GradientTransformation applied to the aggregated
        gradient (default ``optax.sgd(step_size)``).
      upload_time, broadcast_time: τ and τ_b (≥ 0).
      link: "parallel" or "shared" uplink (MODEL.md §3).
      unit_times: measured unit times, array (num_trials, num_iters, M), replacing the draws.
      slowdown: (M,) factors multiplying the unit times (persistent stragglers).
      record_every: record every r-th iterate (r must divide num_iters).
      record_masks: also record ``upload_mask`` (trials, iters, units) of lazy strategies.
      chunk_size: iterations per compiled call (a multiple of record_every);
        default: the whole run in one call.
      progress: called as ``progress(iterations_done, num_iters)`` after each chunk.

    Returns:
      a :class:`~lagc_jax.results.Result` whose arrays have shape
      (num_trials, num_iters // record_every + 1).
    """
    # -- validate everything before anything compiles
    if not isinstance(problem, Problem):
        raise ValueError(f"problem must be a lagc_jax.problems.Problem, got {type(problem).__name__}")
    if not isinstance(strategy, Strategy):
        raise ValueError(f"strategy must come from lagc_jax.strategies.make, got {type(strategy).__name__}")
    if problem.num_partitions != strategy.num_partitions:
        raise ValueError(
            f"problem has {problem.num_partitions} partitions but strategy {strategy.name!r} "
            f"places {strategy.num_partitions} (num_partitions must equal the encoding's columns)")
    num_iters = _positive_int("num_iters", num_iters)
    num_trials = _positive_int("num_trials", num_trials)
    record_every = _positive_int("record_every", record_every)
    if num_iters % record_every:
        raise ValueError(f"record_every={record_every} must divide num_iters={num_iters}")
    chunk_size = num_iters if chunk_size is None else _positive_int("chunk_size", chunk_size)
    if chunk_size % record_every:
        raise ValueError(f"chunk_size={chunk_size} must be a multiple of record_every={record_every}")
    if link not in LINKS:
        raise ValueError(f"link must be one of {LINKS}, got {link!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    upload_time = _nonnegative("upload_time", upload_time)
    broadcast_time = _nonnegative("broadcast_time", broadcast_time)
    step_size = 1.0 / problem.smoothness if step_size is None else float(step_size)
    if not math.isfinite(step_size) or step_size <= 0:
        raise ValueError(f"step_size must be finite and > 0, got {step_size!r}")
    if optimizer is not None and not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError("optimizer must be an optax.GradientTransformation")
    M = strategy.num_workers
    if unit_times is not None:
        unit_times = np.asarray(unit_times, dtype=np.float64)
        if unit_times.shape != (num_trials, num_iters, M):
            raise ValueError(
                f"unit_times must have shape (num_trials, num_iters, M) = "
                f"{(num_trials, num_iters, M)}, got {unit_times.shape}")
        if not np.all(np.isfinite(unit_times)) or np.any(unit_times < 0):
            raise ValueError("unit_times must be finite and >= 0")
    elif delay is None:
        raise ValueError("delay is required unless unit_times are given")
    if delay is not None:
        if not isinstance(delay, (delays_lib.ShiftedExponential, delays_lib.Pareto)):
            raise ValueError(f"delay must be ShiftedExponential or Pareto, got {type(delay).__name__}")
        delay = delay.validate()
    else:
        delay = delays_lib.ShiftedExponential()  # unused: times are replayed
    if slowdown is None:
        slowdown = np.ones(M)
    slowdown = np.asarray(slowdown, dtype=np.float64)
    if slowdown.shape != (M,) or not np.all(np.isfinite(slowdown)) or np.any(slowdown <= 0):
        raise ValueError(f"slowdown must be {M} finite factors > 0, got {slowdown!r}")

    # -- assemble the compiled program's arguments
    dtype = compute_dtype()
    data = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), problem.data)
    arrays = strategy.arrays(_unit_smoothness(problem, strategy), dtype)
    traced = _Traced(
        step=StepParams(*(jnp.asarray(v, dtype) for v in
                          (step_size, strategy.xi or 0.0, upload_time, broadcast_time))),
        delay=type(delay)(*(jnp.asarray(v, dtype) for v in delay)),
        slowdown=jnp.asarray(slowdown, dtype),
    )
    root = jax.random.key(seed)
    trial_keys = jax.vmap(lambda i: jax.random.fold_in(root, i))(jnp.arange(num_trials))

    def static_for(num_blocks, batched_in):
        return _Static(strategy, problem.partition_loss, optimizer, link, record_every,
                       num_blocks, record_masks, unit_times is not None, batched_in,
                       strategy.delay_dependent)

    carry = _init_carry(static_for(0, False), jnp.asarray(problem.initial_params(), dtype),
                        traced.step.step_size)
    batched = False
    records, masks = [], []
    for k0 in range(0, num_iters, chunk_size):
        length = min(chunk_size, num_iters - k0)
        static = static_for(length // record_every, batched)
        chunk_times = (jnp.asarray(unit_times[:, k0:k0 + length], dtype)
                       if unit_times is not None else None)
        carry, chunk_records, chunk_masks = _run_chunk(
            static, data, arrays, traced, carry, trial_keys, chunk_times, jnp.int32(k0))
        batched = static.carry_batched_out
        records.append(jax.tree_util.tree_map(np.asarray, chunk_records))
        if record_masks:
            masks.append(np.asarray(chunk_masks))
        if progress is not None:
            progress(k0 + length, num_iters)
    final_loss = np.asarray(_final_loss(problem.partition_loss, batched, data, carry[0]))
    final_loss = np.broadcast_to(final_loss, (num_trials,))

    # -- host-side assembly: cumulative totals in float64 / int64
    first_loss, duration, uploads, downloads, computations = (
        np.concatenate(parts, axis=1) for parts in zip(*records))
    loss = np.concatenate([first_loss, final_loss[:, None]], axis=1).astype(np.float64)

    def cumulative(per_block, kind):
        totals = np.cumsum(per_block.astype(kind), axis=1)
        return np.concatenate([np.zeros((num_trials, 1), kind), totals], axis=1)

    f_star = problem.optimal_value
    gap = loss - f_star
    diverged = ~np.all(np.isfinite(loss), axis=1) | np.any(
        gap > DIVERGENCE_FACTOR * (np.abs(gap[:, :1]) + abs(f_star)), axis=1)
    if diverged.any():
        warnings.warn(
            f"{strategy.name}: {int(diverged.sum())} of {num_trials} trials diverged "
            f"(loss non-finite or gap > {DIVERGENCE_FACTOR:g}× the initial); see Result.diverged",
            RuntimeWarning, stacklevel=2)
    config = dict(
        problem=problem.name, num_partitions=problem.num_partitions, dim=problem.dim,
        strategy=strategy.name, num_workers=M, stragglers=strategy.stragglers,
        xi=strategy.xi, history=strategy.history, start=strategy.start,
        delay=None if unit_times is not None else {type(delay).__name__: [float(v) for v in delay]},
        num_iters=num_iters, num_trials=num_trials, seed=int(seed), step_size=step_size,
        optimizer="sgd" if optimizer is None else repr(optimizer),
        upload_time=upload_time, broadcast_time=broadcast_time, link=link,
        replayed_unit_times=unit_times is not None, slowdown=slowdown.tolist(),
        record_every=record_every, dtype=jnp.dtype(dtype).name, versions=package_versions(),
    )
    return Result(
        iterations=np.arange(0, num_iters + 1, record_every),
        loss=loss,
        gap=gap,
        wall_clock=cumulative(duration, np.float64),
        uploads=cumulative(uploads, np.int64),
        downloads=cumulative(downloads, np.int64),
        computations=cumulative(computations, np.int64),
        diverged=diverged,
        optimal_value=f_star,
        upload_mask=np.concatenate(masks, axis=1).astype(bool) if record_masks else None,
        config=config,
    )
