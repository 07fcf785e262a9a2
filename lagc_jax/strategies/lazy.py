"""Triggers: who computes and who uploads this round (MODEL.md §5).

A trigger owns its per-trial state, step history included, so nothing is
called after the optimizer: round k pushes ‖θ^k − θ^{k−1}‖² (the previous
round's step) before it evaluates R_k. Each trigger has two pure methods:

    plan(state, placement, round, messages, knobs[, compressed]) -> (Plan, state)
        who participates, who uploads, loads, fresh unit gradients; with a compressor
        (:mod:`~lagc_jax.strategies.compress`) the strategy passes ``compressed``, and the
        fresh unit gradients are its values (what each unit would upload)
    commit(state, plan, heard, theta) -> (state, held, updated)
        what the server now holds per lazy unit, after the wait rule: ``heard`` (U,)
        bool marks the units with a used message (None: all); a unit not heard keeps
        what the server held before (lazy triggers) or holds zeros (``NoTrigger``)

``NoTrigger`` (everyone computes and uploads), ``WorkerTrigger`` (LAG-WK: every
unit computes, uploads iff its gradient moved enough), ``ServerTrigger``
(LAG-PS: the server asks units whose iterate is stale enough; only they compute) and
``LaqTrigger`` (LAQ, MODEL.md §9: worker-side on quantized messages).

>>> import jax.numpy as jnp
>>> from lagc_jax.strategies import placement
>>> p = placement.identity(2)
>>> t = WorkerTrigger(xi=1.0, history=3)
>>> state = t.init(p, jnp.zeros(1), lambda mask: 1.0)
>>> state.stored_grads.shape, state.step_history.shape
((2, 1), (3,))
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ..reductions import sum_squares
from .protocol import pytree_dataclass, static

STARTS = ("clean", "lag-reference")


class Plan(NamedTuple):
    """A trigger's decisions for one round."""

    participating: jnp.ndarray  # (M,) bool: worker computes (and was sent θ^k)
    uploads: jnp.ndarray  # (M,) bool: its message is a gradient (else a skip notice)
    loads: jnp.ndarray  # (M,) partitions it evaluates
    fresh: jnp.ndarray  # (U, d) current gradient of every lazy unit
    selected: jnp.ndarray  # (U,) bool: units that send (or are asked for) a fresh gradient
    held: jnp.ndarray  # (U, d) what the server held before this round


class LazyState(NamedTuple):
    """Per-trial lazy-aggregation state: O(U·d + D) memory."""

    stored_grads: jnp.ndarray  # (U, d) ĝ_u, last gradient the server received
    stored_params: jnp.ndarray  # (U, d) θ̂_u, its iterate (server-side rule; else (0, d))
    unit_smoothness: jnp.ndarray  # (U,) L_u (server-side rule; else (0,))
    uploaded: jnp.ndarray  # (U,) bool: the server holds a gradient from u
    skipped: jnp.ndarray  # (U,) int32: consecutive rounds since u last updated
    step_history: jnp.ndarray  # (D,) ring buffer of ‖θ^{j+1} − θ^j‖²
    previous_theta: jnp.ndarray  # θ^{k−1}, for the step pushed at round k


def _fresh(placement, round, messages, compressed):
    """(U, d) what every lazy unit would upload: its gradient, or its compressed message."""
    if compressed is None:
        return placement.unit_grads(round, messages)
    return compressed.values


@pytree_dataclass
class NoTrigger:
    """Every worker computes its whole load and uploads."""

    is_lazy = False
    xi = None

    def init(self, placement, theta0, union_smoothness):
        return ()

    def plan(self, state, placement, round, messages, knobs, compressed=None):
        M, dtype = placement.num_workers, round.grads.dtype
        everyone = jnp.ones((M,), bool)
        fresh = _fresh(placement, round, messages, compressed)
        return Plan(
            everyone,
            everyone,
            placement.loads(dtype),
            fresh,
            jnp.ones((placement.num_units,), bool),
            fresh,
        ), state

    def commit(self, state, plan, heard, theta):
        """The server holds the fresh gradient of every unit it heard from (``heard`` None:
        all), and zeros for the others: a message the wait rule dropped cannot be used.
        (A product with the mask rather than a select: XLA then fuses the built-in
        aggregators as before, so their results are unchanged bit for bit.)"""
        if heard is None:
            return state, plan.fresh, plan.selected
        return (state, plan.fresh * heard[:, None].astype(plan.fresh.dtype), plan.selected & heard)


@pytree_dataclass
class _LazyTrigger:
    """State and bookkeeping shared by the worker- and server-side rules."""

    xi: float = 1.0  # ξ: a leaf, traced (a sweep over ξ compiles once)
    history: int = static(default=10)  # D
    start: str = static(default="clean")

    is_lazy = True
    server_side = False

    def init(self, placement, theta0, union_smoothness):
        theta0 = jnp.asarray(theta0)
        U, d, dtype = placement.num_units, theta0.shape[0], theta0.dtype
        reference = self.start == "lag-reference"
        smoothness = (
            np.array([union_smoothness(mask) for mask in placement.unit_masks()])
            if self.server_side
            else np.zeros(0)
        )
        return LazyState(
            stored_grads=jnp.full((U, d), 1.0 if reference else 0.0, dtype),
            stored_params=jnp.broadcast_to(theta0, (U if self.server_side else 0, d)),
            unit_smoothness=jnp.asarray(smoothness, dtype),
            uploaded=jnp.full((U,), reference),
            skipped=jnp.zeros((U,), jnp.int32),
            step_history=jnp.zeros((self.history,), dtype),
            previous_theta=theta0,
        )

    def forced(self, state):
        """(U,) units that must send whatever the rule says: those never heard from."""
        return ~state.uploaded

    def _begin(self, state, round, knobs, num_units):
        """Push the previous step; return (state, threshold, active)."""
        step_sq = sum_squares(round.theta - state.previous_theta)
        history = push_step(state.step_history, step_sq, round.k - 1)
        state = state._replace(step_history=history, previous_theta=round.theta)
        threshold = lazy_threshold(history, self.xi, knobs.step_size, num_units)
        # lag-reference start: no checks, no uploads, nobody computes for k < D.
        active = (round.k >= self.history) if self.start == "lag-reference" else jnp.array(True)
        return state, threshold, active

    def commit(self, state, plan, heard, theta):
        updated = plan.selected if heard is None else plan.selected & heard
        stored = jnp.where(updated[:, None], plan.fresh, state.stored_grads)
        state = state._replace(
            stored_grads=stored,
            uploaded=state.uploaded | updated,
            skipped=jnp.where(updated, 0, state.skipped + 1),
        )
        if self.server_side:  # θ̂_u is only read by the server-side rule
            state = state._replace(
                stored_params=jnp.where(updated[:, None], theta, state.stored_params)
            )
        return state, stored, updated


@pytree_dataclass
class WorkerTrigger(_LazyTrigger):
    """LAG-WK: every unit computes and uploads iff ‖g_u − ĝ_u‖² > ξ R / (α² U² D),
    otherwise sends a skip notice (units: workers or groups). With a compressor, g_u is the
    unit's compressed message (it decides on what it would send)."""

    def plan(self, state, placement, round, messages, knobs, compressed=None):
        if placement.units == "partitions":
            raise ValueError("a worker-side trigger needs worker or group units, not partitions")
        state, threshold, active = self._begin(state, round, knobs, placement.num_units)
        fresh = _fresh(placement, round, messages, compressed)
        sends = (worker_trigger(fresh, state.stored_grads, threshold) | self.forced(state)) & active
        return self._plan_of(placement, round, active, fresh, sends, state.stored_grads), state

    @staticmethod
    def _plan_of(placement, round, active, fresh, sends, held):
        """Every unit computes (when active); its workers upload iff it sends."""
        participating = jnp.broadcast_to(active, (placement.num_workers,))
        loads = placement.loads(round.grads.dtype) * active
        uploads = sends[np.asarray(placement.unit_of_worker)]
        return Plan(participating, uploads, loads, fresh, sends, held)


@pytree_dataclass
class ServerTrigger(_LazyTrigger):
    """LAG-PS: the server asks unit u iff L_u² ‖θ̂_u − θ‖² > ξ R / (α² U² D); only the
    partitions of asked units are evaluated, by the workers storing them. Every asked
    unit's fresh gradient reaches the server (waited for, or decoded)."""

    xi: float = 10.0
    server_side = True

    def plan(self, state, placement, round, messages, knobs, compressed=None):
        dtype = round.grads.dtype
        state, threshold, active = self._begin(state, round, knobs, placement.num_units)
        selected = (
            server_trigger(round.theta, state.stored_params, state.unit_smoothness, threshold)
            | self.forced(state)
        ) & active
        unit_matrix = jnp.asarray(placement.unit_matrix, dtype)
        needed = selected.astype(dtype) @ (unit_matrix != 0).astype(dtype) > 0
        loads = (jnp.asarray(placement.encoding, dtype) != 0).astype(dtype) @ needed.astype(dtype)
        participating = loads > 0
        fresh = _fresh(placement, round, messages, compressed)
        return Plan(participating, participating, loads, fresh, selected, state.stored_grads), state

    def commit(self, state, plan, heard, theta):
        return super().commit(state, plan, None, theta)


def check_max_skips(max_skips) -> float:
    """Validate LAQ's C (``max_skips``): a whole number >= 0, or ``math.inf`` (no limit);
    returned as a float (a leaf of :class:`LaqTrigger`).

    >>> check_max_skips(100), check_max_skips(math.inf)
    (100.0, inf)
    """
    if (
        isinstance(max_skips, (int, float, np.integer, np.floating))
        and not isinstance(max_skips, bool)
        and max_skips >= 0
        and (max_skips == math.inf or float(max_skips).is_integer())
    ):
        return float(max_skips)
    raise ValueError(f"max_skips must be an integer >= 0 or math.inf (no limit), got {max_skips!r}")


class LaqState(NamedTuple):
    """Per-trial state of :class:`LaqTrigger`: LAG's, plus the compression errors."""

    lazy: LazyState
    held_error: jnp.ndarray  # (U,) ê_u: error of the message the server holds (0 before any)
    fresh_error: jnp.ndarray  # (U,) e_u of this round's message (set by plan, read by commit)


@pytree_dataclass
class LaqTrigger(WorkerTrigger):
    """LAQ (Sun et al. 2019; MODEL.md §9): every unit computes its compressed message Q_u
    and uploads it iff ‖Q_u − q̂_u‖² ≥ ξ R / (α² U² D) + 3(e_u + ê_u) — note "≥" — or it
    skipped the last ``max_skips`` rounds (C; ``math.inf``: no limit), or the server never
    heard from it (everyone at k = 0); otherwise it sends a skip notice. q̂_u is the message
    the server holds, e_u = ‖Q_u − g_u‖² this round's compression error and ê_u that of
    the message held (0 before any). Needs a compressor (``Strategy(..., compressor=...)``).

    >>> from lagc_jax.strategies import placement
    >>> t = LaqTrigger(max_skips=5)
    >>> state = t.init(placement.identity(2), jnp.zeros(3), lambda mask: 1.0)
    >>> t.xi, state.held_error.tolist()
    (0.8, [0.0, 0.0])
    """

    xi: float = 0.8
    max_skips: float = 100.0  # C: a leaf (a sweep over C compiles once); math.inf: no limit

    def validate(self, strategy, *, dtype, link):
        check_max_skips(self.max_skips)
        if getattr(strategy, "compressor", None) is None:
            raise ValueError(
                f"strategy {strategy.name!r}: trigger LaqTrigger decides on "
                "compressed messages; give the strategy a compressor "
                "(e.g. compressor=InnovationQuantizer(bits=4))"
            )

    def init(self, placement, theta0, union_smoothness):
        lazy = super().init(placement, theta0, union_smoothness)
        errors = jnp.zeros((placement.num_units,), lazy.stored_grads.dtype)
        return LaqState(lazy, errors, errors)

    def forced(self, state):
        """Units never heard from, and those that skipped the last ``max_skips`` rounds."""
        return super().forced(state) | (state.skipped >= self.max_skips)

    def plan(self, state, placement, round, messages, knobs, compressed=None):
        if compressed is None:
            raise ValueError(
                "LaqTrigger decides on compressed messages; give the strategy a compressor"
            )
        if placement.units == "partitions":
            raise ValueError("a worker-side trigger needs worker or group units, not partitions")
        lazy, threshold, active = self._begin(state.lazy, round, knobs, placement.num_units)
        innovation = sum_squares(compressed.values - lazy.stored_grads)
        rule = innovation >= threshold + 3 * (compressed.errors + state.held_error)
        sends = (rule | self.forced(lazy)) & active
        plan = self._plan_of(placement, round, active, compressed.values, sends, lazy.stored_grads)
        return plan, LaqState(lazy, state.held_error, compressed.errors)

    def commit(self, state, plan, heard, theta):
        lazy, held, updated = super().commit(state.lazy, plan, heard, theta)
        held_error = jnp.where(updated, state.fresh_error, state.held_error)
        return LaqState(lazy, held_error, state.fresh_error), held, updated


# --------------------------------------------------------------------------- #
# the kernels of LAG's triggers (Chen et al. 2018; MODEL.md §5): with R_k the sum of
# the last D squared steps (a ring buffer) and U units,
#     worker-side: upload iff  ‖g_u(θ^k) − ĝ_u‖²  > ξ R_k / (α² U² D)
#     server-side: ask    iff  L_u² ‖θ̂_u − θ^k‖²  > ξ R_k / (α² U² D)
# pure, jittable and vmappable
# --------------------------------------------------------------------------- #
def push_step(history, step_sq, k):
    """Store ‖θ^{k+1} − θ^k‖² in the ring buffer of the last D squared steps.

    >>> push_step(jnp.zeros(2), 3.0, 5).tolist()      # slot 5 mod 2
    [0.0, 3.0]
    """
    return history.at[k % history.shape[0]].set(step_sq)


def lazy_threshold(history, xi, step_size, num_units: int):
    """ξ R_k / (α² U² D), with R_k the sum of the ring buffer (missing entries are 0).

    >>> float(lazy_threshold(jnp.array([1.0, 3.0]), xi=1.0, step_size=1.0, num_units=2))
    0.5
    """
    D = history.shape[0]
    return xi * jnp.sum(history) / (step_size**2 * num_units**2 * D)


def worker_trigger(fresh, stored, threshold):
    """Worker-side rule: units (U, d) whose gradient moved more than the threshold upload.

    >>> worker_trigger(jnp.array([[1.0, 1.0], [0.1, 0.0]]), jnp.zeros((2, 2)), 0.5).tolist()
    [True, False]
    """
    return sum_squares(fresh - stored) > threshold


def server_trigger(theta, stored_params, unit_smoothness, threshold):
    """Server-side rule: ask units whose iterate is stale enough, L_u² ‖θ̂_u − θ‖² > threshold.

    >>> stale = jnp.array([[0.0], [1.0]])           # θ̂_u of two units; θ = 0
    >>> server_trigger(jnp.zeros(1), stale, jnp.array([5.0, 2.0]), 3.0).tolist()
    [False, True]
    """
    drift = sum_squares(stored_params - theta)
    return unit_smoothness**2 * drift > threshold
