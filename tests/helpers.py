"""Assertions and run sizes shared by the test modules."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np

import lagc_jax as lj

COUNTS = ("uploads", "downloads", "computations")

# The small drawn run the test modules share. A program is compiled per strategy structure
# and shapes: with these sizes it is compiled once per test session, the other modules load
# it from the persistent compilation cache (tests/conftest.py), and runs of any multiple of
# `chunk_size` iterations use it. The numbers (delay parameters, τ, ξ, step sizes, seeds)
# are traced: any values share the program.
SMALL_WORKERS, SMALL_STRAGGLERS = 6, 1
SMALL_PROBLEM = lj.problems.lag_synthetic(SMALL_WORKERS, dim=10)
SMALL_DELAY = lj.ShiftedExponential(shift=0.1, rate=1.0)
SMALL_RUN = dict(num_trials=3, chunk_size=8, record_masks=True)


def assert_same_run(a, b, rtol=1e-12):
    """Counts exactly; loss and wall clock to rounding (a strategy whose iterates depend on
    the delays runs batched over trials, which may round differently from unbatched)."""
    for field in COUNTS:
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    for field in ("loss", "wall_clock"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=rtol, err_msg=field)


def drawn_unit_times(delay, seed, num_trials, num_iters, num_workers):
    """The unit times a drawn run uses (MODEL.md §3), (trials, iterations, M): trial i,
    iteration k draws ``delay.sample(fold_in(fold_in(key(seed), i), k), M)``. Replaying
    them gives that run back, one trial at a time if wished (one small program)."""
    from lagc_jax.delays import sample_unit_times

    def trial(i):
        key = jax.random.fold_in(jax.random.key(seed), i)
        return jax.vmap(
            lambda k: sample_unit_times(delay, jax.random.fold_in(key, k), num_workers)
        )(jnp.arange(num_iters))

    return np.asarray(jax.jit(jax.vmap(trial))(jnp.arange(num_trials)))


@contextlib.contextmanager
def count_compilations():
    """The XLA backend compilations inside the block (a list, one entry each)."""
    events = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
