"""The ten strategies of MODEL.md §6 as one composition: placement × trigger × wait rule.

A :class:`Strategy` is static configuration (it picks code paths when the
program is traced); everything numeric — ξ, the step size used by the triggers,
upload and broadcast times — arrives at run time in :class:`StepParams`, so
changing it never recompiles. One iteration is :meth:`Strategy.step`, a pure
function over worker arrays:

    placement  encoding B (M×P): worker m computes g_m = Σ_p B[m,p] ∇f_p
    trigger    none | worker-side LAG | server-side LAG, over lazy units
               (workers, partitions or groups)
    wait rule  all messages | first M−S arrivals | first arrival per group
    aggregate  Σ | rescaled Σ (fastest-k) | decoding weights a_F

>>> s = make("gc", 5, stragglers=1)
>>> s.encoding.shape, s.wait
((5, 5), 'fastest')
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from . import coding, timing, triggers

STARTS = ("clean", "lag-reference")

# Above this many table entries, decode by a least-squares solve inside jit.
_MAX_DECODING_TABLE = 2_000_000


class StepParams(NamedTuple):
    """Traced numeric knobs of one iteration."""

    step_size: jnp.ndarray  # α, the nominal step size used by the lazy thresholds
    xi: jnp.ndarray
    upload_time: jnp.ndarray
    broadcast_time: jnp.ndarray


class StrategyArrays(NamedTuple):
    """Arrays a strategy needs inside the compiled program (passed, not baked in)."""

    encoding: jnp.ndarray  # (M, P)
    unit_matrix: jnp.ndarray  # (U, P): unit u's gradient is unit_matrix[u] @ ∇f
    unit_smoothness: jnp.ndarray  # (U,) L_u, for server-side triggers
    decoding_table: jnp.ndarray  # (C(M,S), M) or (0, M) when decoded by a solve


class LazyState(NamedTuple):
    """Per-trial lazy-aggregation state: O(U·d + D) memory."""

    stored_grads: jnp.ndarray  # (U, d) ĝ_u, last gradient the server received
    stored_params: jnp.ndarray  # (U, d) θ̂_u, its iterate (server-side rules; else (0, d))
    uploaded: jnp.ndarray  # (U,) bool: the server holds a gradient from u
    step_history: jnp.ndarray  # (D,) ring buffer of ‖θ^{k+1} − θ^k‖²


class IterationStats(NamedTuple):
    duration: jnp.ndarray  # Δ_k
    uploads: jnp.ndarray  # gradient vectors used
    downloads: jnp.ndarray  # workers sent θ^k
    computations: jnp.ndarray  # partition-gradient evaluations started
    upload_mask: jnp.ndarray  # (U,) bool, lazy units whose upload the server used


@dataclass(frozen=True, eq=False)
class Strategy:
    """Static description of a strategy; hashable, so it can key the jit cache.

    Attributes:
      name: registry name.
      num_workers, stragglers: M and S.
      encoding: (M, P) placement matrix B (numpy).
      wait: "all", "fastest" (first M−S) or "group" (first per group of S+1).
      aggregate: "sum", "scaled" (M/(M−S)·Σ, fastest-k) or "decode" (a_F).
      trigger: None, "worker" or "server" (lazy aggregation).
      units: lazy units: "workers", "partitions" or "groups" (None if not lazy).
      xi, history, start: LAG options (ξ default, D, start convention).
      delay_dependent: whether iterates depend on the delays (which workers finish first).
    """

    name: str
    num_workers: int
    stragglers: int
    encoding: np.ndarray = field(repr=False)
    wait: str
    aggregate: str
    trigger: str | None = None
    units: str | None = None
    xi: float | None = None
    history: int | None = None
    start: str | None = None
    delay_dependent: bool = False

    # -- identity: strategies with the same static structure share compiled code
    def _key(self):
        return (
            self.name, self.num_workers, self.stragglers, self.encoding.shape,
            self.encoding.tobytes(), self.history, self.start, self.delay_dependent,
        )

    def __hash__(self):
        return hash(self._key())

    def __eq__(self, other):
        return isinstance(other, Strategy) and self._key() == other._key()

    # -- derived static structure
    @property
    def num_partitions(self) -> int:
        return self.encoding.shape[1]

    @property
    def group_size(self) -> int:
        return self.stragglers + 1

    @property
    def loads(self) -> np.ndarray:
        """ℓ_m: partitions worker m evaluates when asked for everything."""
        return (self.encoding != 0).sum(axis=1)

    @property
    def unit_partitions(self) -> np.ndarray:
        """(U, P) bool: partitions each lazy unit's gradient depends on."""
        if self.units == "workers":
            return self.encoding != 0
        if self.units == "groups" or (self.units is None and self.wait == "group"):
            groups = coding.group_ids(self.num_workers, self.stragglers)
            return np.stack([(self.encoding[groups == g] != 0).any(0) for g in range(groups.max() + 1)])
        return np.eye(self.num_partitions, dtype=bool)

    @property
    def num_units(self) -> int:
        return self.unit_partitions.shape[0] if self.units else 0

    @property
    def is_lazy(self) -> bool:
        return self.trigger is not None

    def arrays(self, unit_smoothness, dtype) -> StrategyArrays:
        """The strategy's arrays in the compute dtype, for the compiled program."""
        if self.units == "workers":
            unit_matrix = self.encoding
        else:
            unit_matrix = self.unit_partitions.astype(float)
        table = np.zeros((0, self.num_workers))
        if self.aggregate == "decode" and math.comb(self.num_workers, self.stragglers) * self.num_workers <= _MAX_DECODING_TABLE:
            table = _cached_decoding_table(self.encoding.shape, self.encoding.dtype.str,
                                           self.encoding.tobytes(), self.stragglers)
        return StrategyArrays(
            encoding=jnp.asarray(self.encoding, dtype),
            unit_matrix=jnp.asarray(unit_matrix, dtype),
            unit_smoothness=jnp.asarray(unit_smoothness, dtype),
            decoding_table=jnp.asarray(table, dtype),
        )

    # -- the per-iteration kernel
    def init_state(self, theta0, dtype):
        """Initial per-trial state: () for non-lazy strategies, a LazyState otherwise."""
        if not self.is_lazy:
            return ()
        U, d = self.num_units, theta0.shape[0]
        reference = self.start == "lag-reference"
        return LazyState(
            stored_grads=jnp.full((U, d), 1.0 if reference else 0.0, dtype),
            # θ̂_u is only read by the server-side rule: (0, d) for the others
            stored_params=jnp.broadcast_to(jnp.asarray(theta0, dtype),
                                           (U if self.trigger == "server" else 0, d)),
            uploaded=jnp.full((U,), reference),
            step_history=jnp.zeros((self.history,), dtype),
        )

    def record_step(self, state, step_sq, k):
        """Push ‖θ^{k+1} − θ^k‖² into the lazy ring buffer (no-op when not lazy)."""
        if not self.is_lazy:
            return state
        return state._replace(step_history=triggers.push_step(state.step_history, step_sq, k))

    def _decode(self, arrays, finished):
        if arrays.decoding_table.shape[0]:
            return coding.lookup_decoding_weights(arrays.decoding_table, finished, self.stragglers)
        return coding.decoding_weights_jax(arrays.encoding, finished)

    def _coded(self, arrays, grads, selected=None):
        """(M, d) worker messages B @ grads, of the ``selected`` partitions (P,) only if given.

        A cyclic support (worker m stores partitions m … m+S) is summed as S+1 shifted
        copies of grads, O(S·M·d) instead of the dense O(M·P·d) product; any other
        placement uses the product. The selection masks the coefficients, not the
        gradients, so with every partition selected the arithmetic (and its rounding)
        is that of the unmasked messages.
        """
        M, P = self.encoding.shape
        if selected is None and P == M and np.array_equal(self.encoding, np.eye(M)):
            return grads
        rows = np.arange(M)
        offsets = [j for j in range(M) if P == M and np.any(self.encoding[rows, (rows + j) % M])]
        if P != M or 2 * len(offsets) > M:
            encoding = arrays.encoding
            if selected is not None:
                encoding = encoding * selected.astype(encoding.dtype)[None, :]
            return encoding @ grads
        coded = None
        for j in offsets:
            columns = (rows + j) % M
            weights = arrays.encoding[rows, columns]
            if selected is not None:
                weights = weights * selected[columns].astype(weights.dtype)
            term = weights[:, None] * jnp.roll(grads, -j, axis=0)
            coded = term if coded is None else coded + term
        return coded

    def _fresh_unit_grads(self, arrays, grads, coded):
        """(U, d) current gradient of every lazy unit."""
        if self.units == "workers":
            return coded
        if self.units == "partitions":
            return grads
        return arrays.unit_matrix @ grads

    def _wait(self, arrivals, participating):
        """Apply the wait rule: (used mask (M,), time of the last needed arrival)."""
        if self.wait == "all":
            return timing.wait_all(arrivals, participating)
        if self.wait == "fastest":
            # A worker with nothing to compute is done at time 0 and sends nothing.
            return timing.wait_fastest(jnp.where(participating, arrivals, 0.0),
                                       self.num_workers - self.stragglers)
        waited_groups = participating.reshape(-1, self.group_size).any(axis=1)
        return timing.wait_first_per_group(
            jnp.where(participating, arrivals, jnp.inf), self.group_size, waited_groups)

    def step(self, arrays: StrategyArrays, params: StepParams, state, theta, k, grads,
             unit_times, link: str):
        """One iteration: who computes, message arrivals, the wait rule, the aggregate.

        Args:
          state: ``init_state`` output carried from the previous iteration.
          theta: θ^k (d,); k: iteration index (traced int).
          grads: (P, d) partition gradients ∇f_p(θ^k).
          unit_times: (M,) unit computing times X_{k,m}.
          link: "parallel" or "shared" (static).
        Returns:
          (aggregated gradient ĝ^k (d,), new state, IterationStats).
        """
        M, S = self.num_workers, self.stragglers
        dtype = grads.dtype
        coded = self._coded(arrays, grads)  # (M, d) worker messages
        loads = jnp.asarray(self.loads, dtype)
        participating = jnp.ones((M,), bool)
        is_upload = participating

        if self.is_lazy:
            fresh = self._fresh_unit_grads(arrays, grads, coded)
            # lag-reference start: no checks, no uploads, nobody computes for k < D.
            active = (k >= self.history) if self.start == "lag-reference" else jnp.array(True)
            threshold = triggers.lazy_threshold(
                state.step_history, params.xi, params.step_size, self.num_units)
        if self.trigger == "worker":
            # Every worker computes, then uploads or sends a skip notice; a unit
            # the server holds nothing from must upload.
            unit_sends = (triggers.worker_trigger(fresh, state.stored_grads, threshold)
                          | ~state.uploaded) & active
            participating = jnp.broadcast_to(active, (M,))
            loads = loads * active
            unit_of_worker = (np.arange(M) if self.units == "workers"
                              else coding.group_ids(M, S))
            is_upload = unit_sends[unit_of_worker]
        elif self.trigger == "server":
            # Only the partitions of selected units are evaluated, by the workers storing them.
            selected = (triggers.server_trigger(theta, state.stored_params,
                                                arrays.unit_smoothness, threshold)
                        | ~state.uploaded) & active
            needed = selected.astype(dtype) @ (arrays.unit_matrix != 0).astype(dtype) > 0
            loads = (arrays.encoding != 0).astype(dtype) @ needed.astype(dtype)
            participating = is_upload = loads > 0

        arrivals = timing.arrival_times(loads * unit_times, is_upload & participating,
                                        params.upload_time, link)
        used, wait_time = self._wait(arrivals, participating)
        sent = used & participating & is_upload  # gradient vectors the server used

        if not self.is_lazy:
            upload_mask = jnp.zeros((0,), bool)
            if self.aggregate == "decode":
                aggregate = self._decode(arrays, used) @ coded
            elif self.aggregate == "scaled":
                aggregate = (used.astype(dtype) * (M / (M - S))) @ coded
            elif self.wait == "group":  # members of a group send identical sums
                group_sums = arrays.unit_matrix @ grads
                aggregate = jnp.ones((group_sums.shape[0],), dtype) @ group_sums
            else:
                aggregate = jnp.ones((M,), dtype) @ coded
            new_state = state
        else:
            # Units whose fresh gradient reached the server. Stated per rule (not
            # derived from `used`) so iterates stay delay-independent where they are.
            if self.trigger == "server":
                updated = selected  # every selected unit is waited for (or decoded)
            elif self.wait == "fastest":
                updated = unit_sends & used  # late uploads are cancelled
            else:
                updated = unit_sends  # the server hears from every worker / group
            stored = jnp.where(updated[:, None], fresh, state.stored_grads)
            ones = jnp.ones((self.num_units,), dtype)
            if self.units == "partitions":
                fresh_selected = self._coded(arrays, grads, selected)
                aggregate = (self._decode(arrays, used) @ fresh_selected
                             + ones @ jnp.where(selected[:, None], 0.0, state.stored_grads))
            elif self.aggregate == "decode":
                aggregate = self._decode(arrays, used) @ stored
            else:
                aggregate = ones @ stored
            new_state = state._replace(
                stored_grads=stored,
                uploaded=state.uploaded | updated,
            )
            if self.trigger == "server":  # θ̂_u is only read by the server-side rule
                new_state = new_state._replace(
                    stored_params=jnp.where(updated[:, None], theta, state.stored_params))
            upload_mask = updated

        stats = IterationStats(
            duration=params.broadcast_time + wait_time,
            uploads=jnp.sum(sent, dtype=jnp.int32),
            downloads=jnp.sum(participating, dtype=jnp.int32),
            computations=jnp.sum(loads).astype(jnp.int32),
            upload_mask=upload_mask,
        )
        return aggregate, new_state, stats


@functools.lru_cache(maxsize=16)
def _cached_decoding_table(shape, dtype, encoding_bytes, stragglers):
    """coding.decoding_table, once per code (0.6 s for C(48, 3) sets); read-only result."""
    encoding = np.frombuffer(encoding_bytes, dtype=np.dtype(dtype)).reshape(shape)
    table = coding.decoding_table(encoding, stragglers)
    table.flags.writeable = False
    return table


# --------------------------------------------------------------------------- #
# registry
# --------------------------------------------------------------------------- #
# name: (placement, wait, aggregate, trigger, lazy units, iterates depend on delays)
_TABLE = {
    "gd": ("identity", "all", "sum", None, None, False),
    "fastest-k": ("identity", "fastest", "scaled", None, None, True),
    "gc": ("cyclic", "fastest", "decode", None, None, True),
    "grouping": ("fractional", "group", "sum", None, None, False),
    "lag-wk": ("identity", "all", "sum", "worker", "workers", False),
    "lag-ps": ("identity", "all", "sum", "server", "workers", False),
    "lagc": ("cyclic", "fastest", "decode", "worker", "workers", True),
    "lagc-ps": ("cyclic", "fastest", "decode", "server", "partitions", True),
    "g-lag": ("fractional", "group", "sum", "server", "groups", False),
    "g-lag-wk": ("fractional", "group", "sum", "worker", "groups", False),
}
_DEFAULT_XI = {"worker": 1.0, "server": 10.0}


def names() -> tuple[str, ...]:
    """Registered strategy names, in MODEL.md §6 order."""
    return tuple(_TABLE)


def _check_workers(num_workers, stragglers):
    if not isinstance(num_workers, (int, np.integer)) or num_workers < 1:
        raise ValueError(f"num_workers must be an integer >= 1, got {num_workers!r}")
    if not isinstance(stragglers, (int, np.integer)) or not 0 <= stragglers < num_workers:
        raise ValueError(
            f"stragglers must be an integer in [0, num_workers - 1 = {num_workers - 1}], "
            f"got {stragglers!r}")


def _placement(kind, num_workers, stragglers, encoding):
    if kind == "identity":
        return np.eye(num_workers)
    if kind == "fractional":
        return coding.fractional_repetition(num_workers, stragglers)
    if encoding is None:
        return coding.cyclic_repetition(num_workers, stragglers)
    B = np.asarray(encoding, dtype=np.float64)
    if B.ndim != 2 or B.shape[0] != num_workers:
        raise ValueError(f"encoding must be a ({num_workers}, P) matrix, got shape {B.shape}")
    if not np.all(np.isfinite(B)):
        raise ValueError("encoding must be finite")
    # Every straggler set must be decodable: decoding_weights raises otherwise.
    if math.comb(num_workers, stragglers) * num_workers <= _MAX_DECODING_TABLE:
        coding.decoding_table(B, stragglers)
    return B


def make(name: str, num_workers: int, stragglers: int = 0, **options) -> Strategy:
    """Build a registered strategy.

    Options: ``encoding`` (an M×P matrix, for the cyclic-placement strategies gc,
    lagc, lagc-ps); ``xi`` (threshold constant ξ ≥ 0; default 1 for worker-side,
    10 for server-side rules), ``history`` (D ≥ 1, default 10) and ``start``
    ("clean" or "lag-reference") for the lazy strategies.

    >>> make("g-lag", 12, 2).num_units
    4
    """
    if name not in _TABLE:
        raise ValueError(f"unknown strategy {name!r}; valid names: {', '.join(_TABLE)}")
    _check_workers(num_workers, stragglers)
    placement, wait, aggregate, trigger, units, delay_dependent = _TABLE[name]
    allowed = ({"encoding"} if placement == "cyclic" else set()) | (
        {"xi", "history", "start"} if trigger else set())
    for option in options:
        if option not in allowed:
            valid = ", ".join(sorted(allowed)) or "none"
            raise ValueError(f"option {option!r} does not apply to strategy {name!r} (valid: {valid})")
    lazy = {}
    if trigger:
        xi = options.get("xi", _DEFAULT_XI[trigger])
        if not isinstance(xi, (int, float, np.number)) or not math.isfinite(xi) or xi < 0:
            raise ValueError(f"xi must be a finite number >= 0, got {xi!r}")
        history = options.get("history", 10)
        if not isinstance(history, (int, np.integer)) or history < 1:
            raise ValueError(f"history must be an integer >= 1, got {history!r}")
        start = options.get("start", "clean")
        if start not in STARTS:
            raise ValueError(f"start must be one of {STARTS}, got {start!r}")
        lazy = dict(xi=float(xi), history=int(history), start=start)
    return Strategy(
        name=name,
        num_workers=int(num_workers),
        stragglers=int(stragglers),
        encoding=_placement(placement, num_workers, stragglers, options.get("encoding")),
        wait=wait,
        aggregate=aggregate,
        trigger=trigger,
        units=units,
        delay_dependent=delay_dependent,
        **lazy,
    )
