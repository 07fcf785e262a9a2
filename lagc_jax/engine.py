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

Iterations run in chunks: the carry (θ, optimizer state, strategy state, delay
state) passes between calls of one compiled function, which bounds memory, lets
a progress callback report and lets a checkpointed run resume. Durations and
counts are summed inside a record block and accumulated into running totals on
the host in float64 / int64. Where iterates do not depend on the delays, the
carry stays unbatched across trials: the θ trajectory is computed once.
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
from .results import Result, package_versions
from .strategies import Knobs, Round, is_strategy
from .timing import LINKS

# A trial is flagged as diverged when its gap exceeds this multiple of the
# initial gap (plus |f*|), or when its loss stops being finite.
DIVERGENCE_FACTOR = 1e6

# A trial whose decoding residual max|a_F B − 1| exceeds this (per compute dtype) decoded
# a wrong gradient: flagged in Result.decoding_residual and warned about.
DECODING_TOLERANCE = {"float64": 1e-8, "float32": 1e-3}

# Tags of the random streams derived from an iteration's key.
_MARKOV_TAG, _MARKOV_INIT_TAG, _MINIBATCH_TAG = 1, 2, 3

# Trials per block when a run with batched iterates is split (see _in_trial_blocks).
_TRIAL_BLOCK = 2048


class _Static(NamedTuple):
    """Everything that fixes shapes or code paths: the jit cache key."""

    delay_dependent: bool  # the strategy's iterates depend on the delays
    weighted_loss: Callable
    optimizer: object  # None (sgd), a GradientTransformation, or a factory of traced args
    link: str
    record_every: int
    num_blocks: int
    record_masks: bool
    replay: bool  # unit times given instead of drawn
    batch_size: int | None
    first_chunk: bool  # the carry is the (unbatched) initial state
    swept: bool  # leading axis of sweep points on the traced knobs

    @property
    def iterates_batched(self) -> bool:
        """Whether θ differs across trials (else it is computed once for all)."""
        return self.delay_dependent or self.batch_size is not None


class _Traced(NamedTuple):
    """Numeric knobs: changing them never recompiles."""

    knobs: Knobs
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


def _trial_chunk(static: _Static, data, strategy, traced: _Traced, carry, trial_key, unit_times,
                 k0):
    """Run ``num_blocks * record_every`` iterations of one trial from iteration k0."""
    M = strategy.num_workers
    optimizer = _optimizer(static, traced.knobs.step_size, traced.optimizer_args)
    oracle = gradient_oracle(static.weighted_loss, data)  # loop-invariant work once
    # Strategies that index unit times by job (asynchronous ones) get round.draw; replayed
    # unit times then arrive whole, (num_iters, M) per trial, not as this chunk's slice.
    job_draws = bool(getattr(strategy, "needs_job_draws", False))

    def job_draw(delay_state):
        """round.draw of a job-indexed strategy: X_{j,m} for each worker m's job j. Drawn:
        the draw of iteration j (fold_in(trial_key, j)) with the trial's delay state
        (constant: Markov models are refused for such strategies; a shuffled Empirical
        keeps its column permutation). Replayed: row j of the whole array."""
        if static.replay:
            def draw(jobs):  # an index past the run is never used: clamped
                rows = jnp.minimum(jobs, unit_times.shape[0] - 1)
                return unit_times[rows, jnp.arange(M)] * traced.slowdown
            return draw

        def draw(jobs):
            def one(job, m):
                x = delays_lib.sample_unit_times(traced.delay, jax.random.fold_in(trial_key, job),
                                                 M, dtype=traced.slowdown.dtype)
                return delays_lib.apply_delay_state(traced.delay, delay_state, x)[m]
            return jax.vmap(one)(jobs, jnp.arange(M)) * traced.slowdown
        return draw

    # Unit times from random bits computed one iteration ahead and carried, bit-identical
    # to drawing them here (see random_words): ``ahead`` holds the bits of iteration k and
    # the key words of fold_in(trial_key, k + 1); None where drawn through jax.random.
    bits_ahead = not static.replay and delays_lib.from_bits(traced.delay)

    def iteration(state, i):
        (theta, opt_state, strat_state, delay_state), acc, ahead = state
        k = k0 + i
        key = jax.random.fold_in(trial_key, k)
        loss, grads = oracle.loss_and_grads(theta)
        if static.batch_size is not None:
            grads = minibatch_partition_grads(static.weighted_loss, theta, data,
                                              jax.random.fold_in(key, _MINIBATCH_TAG),
                                              static.batch_size)
        if static.replay:
            x = unit_times[k] if job_draws else unit_times[i]
        else:
            initial = delays_lib.init_delay_state(
                traced.delay, jax.random.fold_in(jax.random.fold_in(trial_key, 0), _MARKOV_INIT_TAG), M)
            advanced = delays_lib.advance_delay_state(
                traced.delay, delay_state, jax.random.fold_in(key, _MARKOV_TAG))
            delay_state = jax.tree_util.tree_map(
                lambda a, b: jnp.where(k == 0, a, b), initial, advanced)
            if bits_ahead:
                bits, next_key = ahead
                x = delays_lib.unit_times_from_bits(traced.delay, bits, theta.dtype)
                ahead = (random_words.random_bits(next_key, M, theta.dtype),
                         random_words.fold_in(trial_key, k + 2))
            else:
                x = delays_lib.sample_unit_times(traced.delay, key, M, dtype=theta.dtype)
            x = delays_lib.apply_delay_state(traced.delay, delay_state, x)
        x = x * traced.slowdown
        round_draw = job_draw(delay_state) if job_draws else None
        combine = None if oracle.combine is None or static.batch_size is not None else partial(
            oracle.combine, theta)
        aggregate, strat_state, stats = strategy.step(
            strat_state, Round(theta, grads, x, k, static.link, round_draw, combine),
            traced.knobs)
        updates, opt_state = optimizer.update(aggregate, opt_state, theta)
        new_theta = optax.apply_updates(theta, updates)
        first_loss, duration, uploads, downloads, computations, residual = acc
        acc = (
            jnp.where(i % static.record_every == 0, loss, first_loss),
            duration + stats.duration,
            uploads + stats.uploads,
            downloads + stats.downloads,
            computations + stats.computations,
            jnp.maximum(residual, stats.decoding_residual),
        )
        return ((new_theta, opt_state, strat_state, delay_state), acc, ahead), (
            stats.upload_mask if static.record_masks else None)

    def block(state, b):
        carry, ahead = state
        zero = jnp.zeros((), carry[0].dtype)
        izero = jnp.zeros((), jnp.int32)
        steps = b * static.record_every + jnp.arange(static.record_every)
        (carry, acc, ahead), masks = jax.lax.scan(
            iteration, (carry, (zero, zero, izero, izero, izero, zero), ahead), steps)
        return (carry, ahead), (acc, masks)

    ahead = ((random_words.random_bits(random_words.fold_in(trial_key, k0), M, carry[0].dtype),
              random_words.fold_in(trial_key, k0 + 1)) if bits_ahead else None)
    (carry, _), (records, masks) = jax.lax.scan(block, (carry, ahead),
                                                jnp.arange(static.num_blocks))
    if static.record_masks:
        masks = masks.reshape(-1, masks.shape[-1])
    end_loss, _ = oracle.loss_and_grads(carry[0])
    return carry, records, masks, end_loss


@partial(jax.jit, static_argnames=("static",))
def _run_chunk(static: _Static, data, strategy, traced, carry, trial_keys, unit_times, k0):
    iterates = 0 if static.iterates_batched else None
    carry_axes = (iterates, iterates, iterates, 0)  # delay state is always per trial
    carry_in = None if static.first_chunk else carry_axes
    run = jax.vmap(
        partial(_trial_chunk, static, data, strategy),
        in_axes=(None, carry_in, 0, 0 if static.replay else None, None),
        out_axes=(carry_axes, 0, 0, 0),
    )
    num_trials = trial_keys.shape[0]
    if static.iterates_batched and jax.device_count() == 1 and num_trials > 1.5 * _TRIAL_BLOCK:
        run = partial(_in_trial_blocks, run, static.first_chunk, num_trials)
    if static.swept:
        run = jax.vmap(run, in_axes=(0, None if static.first_chunk else 0, None, None, None))
    return run(traced, carry, trial_keys, unit_times, k0)


def _in_trial_blocks(run, first_chunk, num_trials, traced, carry, trial_keys, unit_times, k0):
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
        return run(traced, carry if first_chunk else block_carry, keys, times, k0)

    per_trial = (trial_keys, unit_times, None if first_chunk else carry)
    return jax.tree_util.tree_map(join, jax.lax.map(one_block, jax.tree_util.tree_map(split, per_trial)))


@partial(jax.jit, static_argnums=1)
def _trial_keys(root, count):
    """fold_in(root, i) for i < count, compiled once per count (eager vmap re-traces, ~2 ms)."""
    return jax.vmap(lambda i: jax.random.fold_in(root, i))(jnp.arange(count))


def _initial_carry(static: _Static, strategy, theta0, step_size, optimizer_args, delay,
                   union_smoothness):
    optimizer = _optimizer(static, step_size, optimizer_args)
    delay_state = jax.tree_util.tree_map(
        jnp.zeros_like, delays_lib.init_delay_state(delay, jax.random.key(0), strategy.num_workers))
    return (theta0, optimizer.init(theta0), strategy.init(theta0, union_smoothness), delay_state)


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
    if not isinstance(delay, delays_lib.DISTRIBUTIONS):
        names = ", ".join(d.__name__ for d in delays_lib.DISTRIBUTIONS)
        raise ValueError(f"delay must be one of {names}, got {type(delay).__name__}")
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
            lambda a: np.asarray(multihost_utils.process_allgather(a, tiled=True)), tree)
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
        raise ValueError("optimizer must be an optax.GradientTransformation or a factory "
                         f"returning one (e.g. optax.adam), got {type(optimizer).__name__}")
    args = dict(optimizer_args or {})
    for name, value in args.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                or not math.isfinite(value):
            raise ValueError(f"optimizer_args[{name!r}] must be a finite real number (traced; "
                             f"pass other settings through a factory), got {value!r}")
    try:
        built = optimizer(**args)
    except TypeError as error:
        raise ValueError(f"optimizer factory rejected optimizer_args {sorted(args)}: {error}") from None
    if not isinstance(built, optax.GradientTransformation):
        raise ValueError(f"optimizer factory must return an optax.GradientTransformation, "
                         f"got {type(built).__name__}")
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


def _prepare(problem, strategy, delay, num_iters, num_trials, seed, step_size, optimizer,
             upload_time, broadcast_time, link, unit_times, slowdown, record_every, chunk_size,
             batch_size, optimizer_args=None):
    """Validate every argument before anything compiles; return the normalised values."""
    if not isinstance(problem, Problem):
        raise ValueError(f"problem must be a lagc_jax.problems.Problem, got {type(problem).__name__}")
    if not is_strategy(strategy):
        raise ValueError(f"strategy must follow the strategy protocol (lagc_jax.make or "
                         f"lagc_jax.strategies.Strategy), got {type(strategy).__name__}")
    if jax.tree_util.all_leaves([strategy]):  # not a registered pytree node
        raise ValueError(f"strategy: {type(strategy).__name__} is not a registered pytree; "
                         "declare it with lagc_jax.strategies.pytree_dataclass")
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
    supported = tuple(getattr(strategy, "links", LINKS))
    if link not in supported:
        raise ValueError(f"link={link!r} does not apply to strategy {strategy.name!r} "
                         f"(supported: {', '.join(supported)})")
    if hasattr(strategy, "validate"):
        strategy.validate(dtype=compute_dtype(), link=link)
    # jax.random.key keeps 32 bits of the seed without x64 (seed and seed + 2**32 would
    # give the same run) and 63 with it (larger seeds overflow)
    seed_bits = 63 if jax.config.jax_enable_x64 else 32
    if (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool)
            or not 0 <= seed < 2**seed_bits):
        raise ValueError(f"seed must be an integer in [0, 2**{seed_bits} - 1] (the range "
                         f"jax.random.key distinguishes with jax_enable_x64 "
                         f"{'on' if seed_bits == 63 else 'off'}), got {seed!r}")
    optimizer_args = _check_optimizer(optimizer, optimizer_args)
    if batch_size is not None:
        smallest = int(problem.partition_sizes.min())
        if (not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool)
                or not 1 <= batch_size <= smallest):
            raise ValueError(f"batch_size must be an integer in [1, {smallest}] (the smallest "
                             f"partition), got {batch_size!r}")
        batch_size = int(batch_size)
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
    elif getattr(strategy, "needs_job_draws", False) and any(
            isinstance(d, delays_lib.MarkovStragglers) for d in (
                delay if isinstance(delay, list) else [delay])):
        raise ValueError(f"delay: MarkovStragglers cannot be indexed by job, which strategy "
                         f"{strategy.name!r} needs (its workers run different iterations' jobs "
                         "at once); use ShiftedExponential, Pareto or replayed unit_times")
    slowdown = np.ones(M) if slowdown is None else np.asarray(slowdown, dtype=np.float64)
    if slowdown.shape != (M,) or not np.all(np.isfinite(slowdown)) or np.any(slowdown <= 0):
        raise ValueError(f"slowdown must be {M} finite factors > 0, got {slowdown!r}")
    knobs = dict(
        step_size=[_positive("step_size", s) for s in np.atleast_1d(
            1.0 / problem.smoothness if step_size is None else step_size)],
        xi=[_nonnegative("xi", getattr(strategy, "xi", None) or 0.0)],
        upload_time=[_nonnegative("upload_time", t) for t in np.atleast_1d(upload_time)],
        broadcast_time=[_nonnegative("broadcast_time", t) for t in np.atleast_1d(broadcast_time)],
        delay=[_check_delay(d, M) for d in (delay if isinstance(delay, list) else [delay])]
        if delay is not None else [delays_lib.ShiftedExponential()],  # unused when replaying
    )
    return dict(num_iters=num_iters, num_trials=num_trials, record_every=record_every,
                chunk_size=chunk_size, batch_size=batch_size, unit_times=unit_times,
                slowdown=slowdown, knobs=knobs, optimizer_args=optimizer_args)


def _run(problem, strategy, *, knobs, swept, num_iters, num_trials, seed, optimizer, link,
         unit_times, slowdown, record_every, chunk_size, batch_size, record_masks, progress,
         checkpoint, optimizer_args):
    """Run all chunks; return per-point lists of host arrays (point axis first)."""
    dtype = compute_dtype()
    M = strategy.num_workers
    num_points = len(knobs["step_size"])
    data = problem.device_data(dtype)

    def stack(values):
        return jnp.asarray(np.array(values, dtype=np.float64), dtype)

    delays_ = knobs["delay"]
    traced = _Traced(
        knobs=Knobs(stack(knobs["step_size"]), stack(knobs["xi"]),
                    stack(knobs["upload_time"]), stack(knobs["broadcast_time"])),
        delay=jax.tree_util.tree_map(lambda *v: stack(list(v)), *delays_),
        slowdown=jnp.asarray(slowdown, dtype),
        optimizer_args={name: jnp.asarray(value, dtype) for name, value in optimizer_args.items()},
    )
    if not swept:
        traced = traced._replace(knobs=Knobs(*(v[0] for v in traced.knobs)),
                                 delay=jax.tree_util.tree_map(lambda v: v[0], traced.delay))
    else:
        traced = traced._replace(
            slowdown=jnp.broadcast_to(traced.slowdown, (num_points, M)),
            optimizer_args={name: jnp.broadcast_to(value, (num_points,) + value.shape)
                            for name, value in traced.optimizer_args.items()})

    trial_sharding, padded = _trial_sharding(num_trials)
    root = jax.random.key(seed)
    trial_keys = _trial_keys(root, padded)
    if trial_sharding is not None:
        # one global array over the devices of every process; each process places the
        # shards of its own devices (identical key data everywhere: positional keys)
        trial_keys = jax.random.wrap_key_data(
            _place(np.asarray(jax.random.key_data(trial_keys)), trial_sharding))
    if unit_times is not None and padded > num_trials:
        unit_times = np.concatenate([unit_times, np.repeat(unit_times[:1], padded - num_trials, 0)])

    def static_for(num_blocks, first):
        return _Static(bool(strategy.delay_dependent), problem.weighted_loss, optimizer, link,
                       record_every, num_blocks, record_masks, unit_times is not None, batch_size,
                       first, swept)

    theta0 = jnp.asarray(problem.initial_params(), dtype)
    first_delay = jax.tree_util.tree_map(lambda v: v[0], traced.delay) if swept else traced.delay
    carry = _initial_carry(static_for(0, True), strategy, theta0, knobs["step_size"][0],
                           optimizer_args, first_delay, problem.union_smoothness)
    records, masks, end_loss, start = [], [], None, 0
    trial_axis = 1 if swept else 0
    if checkpoint is not None and checkpoint.done:
        # the carry keeps its pytree structure across chunks; only leaf shapes change
        records, masks, end_loss, carry = checkpoint.load(
            carry, _carry_trial_axes(static_for(0, False), carry), padded)
        start = checkpoint.done
    job_draws = bool(getattr(strategy, "needs_job_draws", False))
    all_times = None  # every chunk of a job-indexed strategy reads the whole replayed array
    if unit_times is not None and job_draws:
        all_times = _place(unit_times.astype(dtype), trial_sharding)
    for k0 in range(start, num_iters, chunk_size):
        length = min(chunk_size, num_iters - k0)
        static = static_for(length // record_every, k0 == 0)
        chunk_times = all_times
        if unit_times is not None and not job_draws:
            chunk_times = _place(unit_times[:, k0:k0 + length].astype(dtype), trial_sharding)
        carry, chunk_records, chunk_masks, chunk_end = _run_chunk(
            static, data, strategy, traced, carry, trial_keys, chunk_times, jnp.int32(k0))
        chunk_records, chunk_masks, end_loss = jax.tree_util.tree_map(  # padding trials dropped
            lambda a: np.take(a, np.arange(num_trials), axis=trial_axis),
            _to_host((chunk_records, chunk_masks, chunk_end)))
        records.append(chunk_records)
        if record_masks:
            masks.append(chunk_masks)
        if checkpoint is not None:
            checkpoint.save(k0, k0 + length, chunk_records, chunk_masks if record_masks else None,
                            end_loss, _to_host(carry), _carry_trial_axes(static, carry))
        if progress is not None:
            progress(k0 + length, num_iters)

    def joined(parts):
        return np.concatenate(parts, axis=trial_axis + 1)

    first_loss, duration, uploads, downloads, computations, residual = (
        joined(p) for p in zip(*records))
    residual = residual.max(axis=-1)  # worst decoding of each trial
    mask = joined(masks).astype(bool) if record_masks else None
    if not swept:  # give everything a leading point axis of length 1
        first_loss, duration, uploads, downloads, computations, residual, end_loss = (
            a[None] for a in (first_loss, duration, uploads, downloads, computations, residual,
                              end_loss))
        mask = None if mask is None else mask[None]
    return first_loss, duration, uploads, downloads, computations, residual, end_loss, mask


def _assemble(problem, strategy, point, first_loss, duration, uploads, downloads, computations,
              residual, end_loss, mask, config) -> Result:
    """Host-side assembly of one point: cumulative totals in float64 / int64, divergence flag."""
    num_trials = first_loss.shape[0]
    loss = np.concatenate([first_loss, end_loss[:, None]], axis=1).astype(np.float64)

    def cumulative(per_block, kind):
        totals = np.cumsum(per_block.astype(kind), axis=1)
        return np.concatenate([np.zeros((num_trials, 1), kind), totals], axis=1)

    f_star = problem.optimal_value
    gap = loss - f_star
    diverged = ~np.all(np.isfinite(loss), axis=1) | np.any(
        gap > DIVERGENCE_FACTOR * (np.abs(gap[:, :1]) + abs(f_star)), axis=1)
    if diverged.any():
        warnings.warn(
            f"{strategy.name}{point}: {int(diverged.sum())} of {num_trials} trials diverged "
            f"(loss non-finite or gap > {DIVERGENCE_FACTOR:g}× the initial); see Result.diverged",
            RuntimeWarning, stacklevel=3)
    tolerance = DECODING_TOLERANCE[config["dtype"]]
    undecoded = ~(residual <= tolerance)
    if undecoded.any():
        warnings.warn(
            f"{strategy.name}{point}: {int(undecoded.sum())} of {num_trials} trials used a "
            f"decoding with max|a_F B - 1| = {float(np.max(residual)):.3g} > {tolerance:g} "
            "(the encoding cannot decode the straggler sets met, or the dtype cannot represent "
            "its decoding); see Result.decoding_residual", RuntimeWarning, stacklevel=3)
    wall_clock = cumulative(duration, np.float64)
    clock_broken = ~np.all(np.isfinite(wall_clock), axis=1)
    if clock_broken.any():
        warnings.warn(
            f"{strategy.name}{point}: the wall clock of {int(clock_broken.sum())} of {num_trials} "
            "trials is not finite (a unit time overflowed the compute dtype, or the delay has "
            "an infinite mean, e.g. Pareto shape <= 1); they are flagged in Result.diverged",
            RuntimeWarning, stacklevel=3)
        diverged = diverged | clock_broken
    record_every = config["record_every"]
    return Result(
        iterations=np.arange(0, config["num_iters"] + 1, record_every),
        loss=loss, gap=gap,
        wall_clock=wall_clock,
        uploads=cumulative(uploads, np.int64),
        downloads=cumulative(downloads, np.int64),
        computations=cumulative(computations, np.int64),
        diverged=diverged, optimal_value=f_star, upload_mask=mask,
        decoding_residual=residual.astype(np.float64), config=config,
    )


def _carry_trial_axes(static: _Static, carry) -> list:
    """Per leaf of a (non-initial) carry, its axis of trials, or None when the leaf is
    shared by all trials (iterates that do not depend on the delays)."""
    iterates = 0 if static.iterates_batched else None
    offset = 1 if static.swept else 0  # sweep points come first
    return [None if axis is None else axis + offset
            for part, axis in zip(carry, (iterates, iterates, iterates, 0))
            for _ in jax.tree_util.tree_leaves(part)]


def _describe_delay(delay):
    if delay is None:
        return None
    return delays_lib.describe_parameters(delay)


def _config(problem, strategy, prepared, *, seed, optimizer, link, step_size, xi, upload_time,
            broadcast_time, delay, record_masks):
    return dict(
        problem=problem.name, num_partitions=problem.num_partitions, dim=problem.dim,
        optimum_estimated=problem.estimated,
        strategy=strategy.name, num_workers=strategy.num_workers,
        stragglers=getattr(strategy, "stragglers", None),
        xi=xi if getattr(strategy, "xi", None) is not None else None,
        history=getattr(strategy, "history", None), start=getattr(strategy, "start", None),
        delay=None if prepared["unit_times"] is not None else _describe_delay(delay),
        num_iters=prepared["num_iters"], num_trials=prepared["num_trials"], seed=int(seed),
        step_size=step_size,
        optimizer=_describe_optimizer(optimizer, prepared["optimizer_args"]),
        upload_time=upload_time, broadcast_time=broadcast_time, link=link,
        replayed_unit_times=prepared["unit_times"] is not None,
        slowdown=prepared["slowdown"].tolist(), batch_size=prepared["batch_size"],
        record_every=prepared["record_every"], record_masks=record_masks,
        dtype=jnp.dtype(compute_dtype()).name, versions=package_versions(),
    )


def _checkpoint(directory, problem, strategy, config, prepared, optimizer):
    """The checkpoint store of a run, keyed by everything that determines its result."""
    dtype = compute_dtype()
    configs = config if isinstance(config, list) else [config]
    theta0 = jnp.asarray(problem.initial_params(), dtype)
    key = checkpoints_lib.fingerprint(
        problem_data=problem.device_data(dtype), smoothness=problem.smoothness,
        partition_smoothness=problem.partition_smoothness, optimal_value=problem.optimal_value,
        theta0=theta0, loss=problem.weighted_loss,
        strategy=strategy,
        configs=[{k: v for k, v in c.items() if k != "versions"} for c in configs],
        chunk_size=prepared["chunk_size"], unit_times=prepared["unit_times"],
        optimizer=checkpoints_lib.describe_optimizer(optimizer, theta0))
    return checkpoints_lib.Checkpoint(directory, key, prepared["num_trials"])


# --------------------------------------------------------------------------- #
# public entry points
# --------------------------------------------------------------------------- #
def simulate(problem: Problem, strategy, delay=None, *, num_iters: int, num_trials: int,
             seed: int = 0, step_size=None, optimizer=None, optimizer_args=None, upload_time=0.0,
             broadcast_time=0.0, link: str = "parallel", unit_times=None, slowdown=None,
             record_every: int = 1, record_masks: bool = False, chunk_size: int | None = None,
             batch_size: int | None = None, progress: Callable[[int, int], None] | None = None,
             checkpoint_dir=None) -> Result:
    """Simulate ``num_trials`` independent runs of ``strategy`` on ``problem``.

    Args:
      problem: a :class:`~lagc_jax.problems.Problem` with ``num_partitions`` equal
        to the strategy's P.
      strategy: from :func:`lagc_jax.strategies.make`.
      delay: unit-time model (``ShiftedExponential``, ``Pareto`` or
        ``MarkovStragglers``); may be None when ``unit_times`` is given.
      num_iters, num_trials: iterations K and Monte Carlo trials.
      seed: trial i uses ``fold_in(key(seed), i)``; iteration k folds in k.
      step_size: α (default 1/L); also the nominal α of the lazy thresholds.
      optimizer: any optax GradientTransformation applied to the aggregated
        gradient, or a factory returning one (e.g. ``optax.adam``) called with
        ``optimizer_args`` (real numbers, traced: a loop over their values compiles
        once, whereas every new GradientTransformation instance compiles anew);
        default ``optax.sgd(step_size)``.
      upload_time, broadcast_time: τ and τ_b (≥ 0).
      link: "parallel" or "shared" uplink (MODEL.md §3).
      unit_times: measured unit times, array (num_trials, num_iters, M), replacing the draws.
      slowdown: (M,) factors multiplying the unit times (persistent stragglers).
      record_every: record every r-th iterate (r must divide num_iters).
      record_masks: also record ``upload_mask`` (trials, iters, units) of lazy strategies.
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
      (num_trials, num_iters // record_every + 1).
    """
    prepared = _prepare(problem, strategy, delay, num_iters, num_trials, seed, step_size,
                        optimizer, upload_time, broadcast_time, link, unit_times, slowdown,
                        record_every, chunk_size, batch_size, optimizer_args)
    knobs = prepared["knobs"]
    if any(len(v) != 1 for v in knobs.values()):
        raise ValueError("simulate takes scalar knobs; use lagc_jax.sweep for several values")
    config = _config(problem, strategy, prepared, seed=seed, optimizer=optimizer, link=link,
                     step_size=knobs["step_size"][0], xi=knobs["xi"][0],
                     upload_time=knobs["upload_time"][0], broadcast_time=knobs["broadcast_time"][0],
                     delay=delay, record_masks=record_masks)
    checkpoint = None
    if checkpoint_dir is not None:
        checkpoint = _checkpoint(checkpoint_dir, problem, strategy, config, prepared, optimizer)
    outputs = _run(problem, strategy, knobs=knobs, swept=False, seed=seed, optimizer=optimizer,
                   link=link, record_masks=record_masks, progress=progress,
                   checkpoint=checkpoint, **{k: prepared[k] for k in (
                       "num_iters", "num_trials", "unit_times", "slowdown", "record_every",
                       "chunk_size", "batch_size", "optimizer_args")})
    return _assemble(problem, strategy, "", *(o[0] if o is not None else None for o in outputs),
                     config=config)


# Keyword arguments sweep passes on to the run (those of simulate that are not swept).
_SWEEP_KEYWORDS = frozenset({"seed", "optimizer", "optimizer_args", "link", "unit_times", "slowdown", "record_every",
                             "record_masks", "chunk_size", "batch_size", "progress",
                             "checkpoint_dir"})


def sweep(problem: Problem, strategy, delay=None, *, num_iters: int, num_trials: int,
          step_size=None, xi=None, upload_time=0.0, broadcast_time=0.0, **kwargs) -> list[Result]:
    """Simulate several values of the numeric knobs in one vmapped, compiled program.

    ``step_size``, ``xi``, ``upload_time``, ``broadcast_time`` and ``delay`` (a
    list of delay models of one type) may each be a sequence; sequences must have
    one common length N and are zipped (use ``numpy.meshgrid`` for a grid); scalars
    are broadcast. Every point sees the same unit-time draws (common random
    numbers). Other keyword arguments are those of :func:`simulate`. Returns N
    Results. A second sweep with other values of the same shape does not recompile.

    >>> import lagc_jax as lj
    >>> rs = sweep(lj.problems.lag_synthetic(4, dim=8), lj.strategies.make("gd", 4),
    ...            lj.ShiftedExponential(), num_iters=5, num_trials=2, upload_time=[0.0, 1.0])
    >>> [round(float(r.wall_clock[0, -1] - rs[0].wall_clock[0, -1]), 6) for r in rs]
    [0.0, 5.0]
    """
    unknown = sorted(set(kwargs) - _SWEEP_KEYWORDS)
    if unknown:
        raise TypeError(f"sweep() got an unexpected keyword argument {unknown[0]!r}; valid "
                        f"keywords: step_size, xi, upload_time, broadcast_time, delay (swept) and "
                        f"{', '.join(sorted(_SWEEP_KEYWORDS))}")
    checkpoint_dir = kwargs.pop("checkpoint_dir", None)
    kwargs.setdefault("record_masks", False)
    kwargs.setdefault("progress", None)
    prepared = _prepare(problem, strategy, delay, num_iters, num_trials, kwargs.get("seed", 0),
                        step_size, kwargs.get("optimizer"), upload_time, broadcast_time,
                        kwargs.get("link", "parallel"), kwargs.get("unit_times"),
                        kwargs.get("slowdown"), kwargs.get("record_every", 1),
                        kwargs.get("chunk_size"), kwargs.get("batch_size"),
                        kwargs.get("optimizer_args"))
    knobs = prepared["knobs"]
    if xi is not None:
        if getattr(strategy, "xi", None) is None:
            raise ValueError(f"xi does not apply to strategy {strategy.name!r}")
        knobs["xi"] = [_nonnegative("xi", v) for v in np.atleast_1d(xi)]
    lengths = {name: len(values) for name, values in knobs.items() if len(values) != 1}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"swept knobs must share one length, got {lengths}")
    num_points = max(lengths.values(), default=1)
    knobs = {name: values * num_points if len(values) == 1 else values
             for name, values in knobs.items()}
    if len({type(d) for d in knobs["delay"]}) > 1:
        raise ValueError("delay: a sweep takes delay models of one type")
    seed = kwargs.get("seed", 0)
    optimizer, link = kwargs.get("optimizer"), kwargs.get("link", "parallel")
    configs = [
        _config(problem, strategy, prepared, seed=seed, optimizer=optimizer, link=link,
                step_size=knobs["step_size"][i], xi=knobs["xi"][i],
                upload_time=knobs["upload_time"][i], broadcast_time=knobs["broadcast_time"][i],
                delay=knobs["delay"][i], record_masks=kwargs["record_masks"])
        for i in range(num_points)]
    checkpoint = None
    if checkpoint_dir is not None:
        checkpoint = _checkpoint(checkpoint_dir, problem, strategy, configs, prepared, optimizer)
    outputs = _run(problem, strategy, knobs=knobs, swept=True, seed=seed, optimizer=optimizer,
                   link=link, record_masks=kwargs["record_masks"], progress=kwargs["progress"],
                   checkpoint=checkpoint, **{k: prepared[k] for k in (
                       "num_iters", "num_trials", "unit_times", "slowdown", "record_every",
                       "chunk_size", "batch_size", "optimizer_args")})
    return [_assemble(problem, strategy, f"[point {i}]",
                      *(o[i] if o is not None else None for o in outputs), config=configs[i])
            for i in range(num_points)]
