"""Assertions shared by the test modules."""

import contextlib

import jax
import numpy as np

COUNTS = ("uploads", "downloads", "computations")


def assert_same_run(a, b, rtol=1e-12):
    """Counts exactly; loss and wall clock to rounding (a strategy whose iterates depend on
    the delays runs batched over trials, which may round differently from unbatched)."""
    for field in COUNTS:
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    for field in ("loss", "wall_clock"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=rtol, err_msg=field)


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
