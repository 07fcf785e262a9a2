"""Placements: where the data lives (encoding B, M × P) and which lazy units exist.

Worker m computes the coded gradient g_m = Σ_p B[m, p] ∇f_p (MODEL.md §2). The
values of B are a pytree leaf (changing them never recompiles); its support
pattern, which picks how the product is computed, is static.

Lazy units (MODEL.md §5) are "workers" (unit u = worker u, gradient g_u),
"partitions" (unit u = partition u) or "groups" (the workers of a fractional
repetition group, gradient = the group's partition sum).

>>> import jax.numpy as jnp
>>> p = cyclic(4, 1)
>>> p.messages(jnp.ones((4, 2))).shape, p.num_units
((4, 2), 4)
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .. import coding
from .protocol import pytree_dataclass, static

UNITS = ("workers", "partitions", "groups")


@pytree_dataclass
class Placement:
    """Encoding B and the lazy units built on it.

    Attributes:
      encoding: (M, P) coefficients B (leaf).
      unit_matrix: (U, P): unit u's gradient is ``unit_matrix[u] @ ∇f`` (leaf).
      units: "workers", "partitions" or "groups" (static).
      unit_of_worker: unit of each worker's message (static; empty for partition units).
      shifts: offsets j of a cyclic support (worker m holds partitions m + j mod M),
        computed as shifted copies; None for a dense product; () for the identity.
      support_loads: ℓ_m, the partitions worker m stores (static: the support of B is
        structure, only its values are traced).
    """

    encoding: jnp.ndarray
    unit_matrix: jnp.ndarray
    units: str = static(default="workers")
    unit_of_worker: tuple = static(default=())
    shifts: tuple | None = static(default=None)
    support_loads: tuple = static(default=())

    @property
    def num_workers(self) -> int:
        return self.encoding.shape[0]

    @property
    def num_partitions(self) -> int:
        return self.encoding.shape[1]

    @property
    def num_units(self) -> int:
        return self.unit_matrix.shape[0]

    def loads(self, dtype):
        """ℓ_m: partitions worker m evaluates when asked for everything (a constant)."""
        return jnp.asarray(self.support_loads, dtype)

    def messages(self, grads, selected=None):
        """(M, d) worker messages B @ grads, of the ``selected`` partitions (P,) only if given.

        A cyclic support is summed as shifted copies of grads, O(|shifts|·M·d)
        instead of the dense O(M·P·d) product. The selection masks the
        coefficients, not the gradients, so with every partition selected the
        arithmetic (and its rounding) is that of the unmasked messages.
        """
        if self.shifts == () and selected is None:
            return grads
        encoding = jnp.asarray(self.encoding, grads.dtype)
        if self.shifts is None:
            if selected is not None:
                encoding = encoding * selected.astype(encoding.dtype)[None, :]
            return encoding @ grads
        M = self.num_workers
        rows = np.arange(M)
        coded = None
        for j in self.shifts or (0,):
            columns = (rows + j) % M
            weights = encoding[rows, columns]
            if selected is not None:
                weights = weights * selected[columns].astype(weights.dtype)
            term = weights[:, None] * jnp.roll(grads, -j, axis=0)
            coded = term if coded is None else coded + term
        return coded

    def round_messages(self, round):
        """(M, d) worker messages B @ ∇f of a round; through ``round.combined`` (one
        product from θ) where the problem offers one, else :meth:`messages`."""
        if self.shifts == () or round.combine is None:
            return self.messages(round.grads)
        return round.combined(jnp.asarray(self.encoding, round.grads.dtype))

    def unit_grads(self, round, messages):
        """(U, d) current gradient of every lazy unit."""
        if self.units == "workers":
            return messages
        if self.units == "partitions":
            return round.grads
        return round.combined(jnp.asarray(self.unit_matrix, round.grads.dtype))

    def unit_masks(self) -> np.ndarray:
        """(U, P) bool (host): partitions each unit's gradient depends on."""
        return np.asarray(self.unit_matrix) != 0


def _support_loads(B: np.ndarray) -> tuple:
    return tuple(int(n) for n in (B != 0).sum(axis=1))


def _shifts(B: np.ndarray):
    """Offsets of a cyclic support, or None when the dense product is cheaper."""
    M, P = B.shape
    if P != M:
        return None
    rows = np.arange(M)
    offsets = tuple(j for j in range(M) if np.any(B[rows, (rows + j) % M]))
    return None if 2 * len(offsets) > M else offsets


def from_encoding(encoding, units: str = "workers", group_size: int | None = None) -> Placement:
    """A placement for any finite (M, P) encoding B.

    ``units="groups"`` needs ``group_size`` (consecutive workers per group).

    >>> from_encoding(np.eye(3)).shifts
    (0,)
    """
    B = np.asarray(encoding, dtype=np.float64)
    if B.ndim != 2 or 0 in B.shape:
        raise ValueError(f"encoding must be a non-empty (M, P) matrix, got shape {B.shape}")
    if not np.all(np.isfinite(B)):
        raise ValueError("encoding must be finite")
    if units not in UNITS:
        raise ValueError(f"units must be one of {UNITS}, got {units!r}")
    M, P = B.shape
    if np.any(~(B != 0).any(axis=0)):
        raise ValueError(
            "encoding: every partition must be stored by some worker (a column of B is all zero)"
        )
    if units == "workers":
        unit_matrix, unit_of_worker = B, tuple(range(M))
    elif units == "partitions":
        unit_matrix, unit_of_worker = np.eye(P), ()
    else:
        if not isinstance(group_size, (int, np.integer)) or group_size < 1 or M % group_size:
            raise ValueError(
                f"group_size must be an integer >= 1 dividing M = {M}, got {group_size!r}"
            )
        groups = np.arange(M) // group_size
        unit_matrix = np.stack(
            [(B[groups == g] != 0).any(0) for g in range(M // group_size)]
        ).astype(np.float64)
        unit_of_worker = tuple(int(g) for g in groups)
    return Placement(
        encoding=B,
        unit_matrix=unit_matrix,
        units=units,
        unit_of_worker=unit_of_worker,
        shifts=_shifts(B),
        support_loads=_support_loads(B),
    )


def identity(num_workers: int) -> Placement:
    """B = I: worker m holds partition m (units: workers).

    >>> identity(3).shifts
    ()
    """
    B = coding.identity(num_workers)
    return Placement(
        encoding=B,
        unit_matrix=B,
        units="workers",
        unit_of_worker=tuple(range(B.shape[0])),
        shifts=(),
        support_loads=_support_loads(B),
    )


def cyclic(num_workers: int, stragglers: int, encoding=None, units: str = "workers") -> Placement:
    """Cyclic repetition (gradient coding): worker m holds partitions m … m+S (mod M).

    Default coefficients: the BCH-type code of :func:`lagc_jax.coding.cyclic_repetition`;
    a user ``encoding`` must let every set of M − S workers decode (checked).

    >>> cyclic(12, 2).shifts
    (0, 1, 2)
    """
    if encoding is None:
        return from_encoding(coding.cyclic_repetition(num_workers, stragglers), units)
    B = np.asarray(encoding, dtype=np.float64)
    if B.ndim != 2 or B.shape[0] != num_workers:
        raise ValueError(f"encoding must be a ({num_workers}, P) matrix, got shape {B.shape}")
    placement = from_encoding(B, units)
    # Every straggler set must decode (exhaustively where feasible; the rest is
    # measured at run time as Result.decoding_residual): raises otherwise.
    coding.check_decodable(B, stragglers)
    return placement


def fractional(num_workers: int, stragglers: int, units: str = "groups") -> Placement:
    """Fractional repetition (grouping): G = M/(S+1) groups of S+1 consecutive workers,
    each member holds its group's S+1 partitions with weight 1.

    >>> fractional(6, 1).num_units
    3
    """
    B = coding.fractional_repetition(num_workers, stragglers)
    return from_encoding(B, units, group_size=stragglers + 1)
