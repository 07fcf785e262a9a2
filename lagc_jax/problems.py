"""Learning problems: f(θ) = Σ_p f_p(θ) over P data partitions (MODEL.md §1).

A :class:`Problem` pairs a pure per-partition loss ``partition_loss(theta, data_p)``
with the partitioned data (a pytree whose leaves have leading axis P). The
engine passes the data to the compiled program as an argument (never as a
baked-in constant) and gets every partition's gradient with one
``vmap(value_and_grad)``. Host-side metadata — the smoothness constants and the
optimum f* — is computed once in float64 with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True, eq=False)
class Problem:
    """A finite-sum problem split into partitions.

    Attributes:
      name: short label used in results and plots.
      partition_loss: pure ``(theta (d,), data_p) -> scalar`` loss of one partition.
      data: pytree of numpy arrays, each with leading axis ``num_partitions``.
      dim: length d of the flat parameter vector θ.
      smoothness: global smoothness L of f (step size 1/L by default).
      partition_smoothness: (P,) smoothness L_p of each f_p.
      optimal_value: f* = min f, computed in float64.
      union_smoothness: host callable, bool mask (P,) -> smoothness of Σ_{p in mask} f_p.
      init_params: θ⁰ (d,), zeros unless given.
    """

    name: str
    partition_loss: Callable[[Any, Any], Any]
    data: Any
    dim: int
    smoothness: float
    partition_smoothness: np.ndarray
    optimal_value: float
    union_smoothness: Callable[[np.ndarray], float] = field(repr=False)
    init_params: np.ndarray | None = field(default=None, repr=False)

    @property
    def num_partitions(self) -> int:
        return len(self.partition_smoothness)

    def initial_params(self) -> np.ndarray:
        if self.init_params is None:
            return np.zeros(self.dim)
        return np.asarray(self.init_params, dtype=float)

    def loss(self, theta) -> float:
        """f(θ) at jax's default precision (float64 when x64 is enabled)."""
        data = jax.tree_util.tree_map(jnp.asarray, self.data)
        value, _ = loss_and_partition_grads(self.partition_loss, jnp.asarray(theta), data)
        return float(value)


def loss_and_partition_grads(partition_loss, theta, data):
    """f(θ) and the (P, d) matrix of partition gradients ∇f_p(θ), from shared residuals."""
    values, grads = jax.vmap(jax.value_and_grad(partition_loss), in_axes=(None, 0))(theta, data)
    return jnp.sum(values), grads


# --------------------------------------------------------------------------- #
# validation helpers
# --------------------------------------------------------------------------- #
def _as_finite(name: str, array) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    return array


def _check_partitions(num_partitions, num_rows: int) -> int:
    if not isinstance(num_partitions, (int, np.integer)) or not 1 <= num_partitions <= num_rows:
        raise ValueError(
            f"num_partitions must be an integer in [1, {num_rows}] (the number of rows), "
            f"got {num_partitions!r}"
        )
    return int(num_partitions)


def _split_rows(X: np.ndarray, y: np.ndarray, num_partitions: int):
    """Contiguous split into near-equal parts (sizes differ by at most one), padded.

    Returns X (P, n, d), y (P, n), weights (P, n) with weight 0 on padding rows.
    """
    parts = np.array_split(np.arange(len(y)), num_partitions)
    n = max(len(p) for p in parts)
    Xp = np.zeros((num_partitions, n, X.shape[1]))
    yp = np.zeros((num_partitions, n))
    wp = np.zeros((num_partitions, n))
    for i, rows in enumerate(parts):
        Xp[i, : len(rows)] = X[rows]
        yp[i, : len(rows)] = y[rows]
        wp[i, : len(rows)] = 1.0
    return Xp, yp, wp


def _partitioned(X, y, num_partitions, name):
    """Accept X (P, n, d), y (P, n) or X (N, d), y (N,) with num_partitions."""
    X = _as_finite("X", X)
    y = _as_finite("y", y)
    if X.ndim == 3:
        if num_partitions is not None and num_partitions != X.shape[0]:
            raise ValueError(
                f"num_partitions={num_partitions} disagrees with X.shape[0]={X.shape[0]}"
            )
        if y.shape != X.shape[:2]:
            raise ValueError(f"y must have shape {X.shape[:2]} to match X {X.shape}, got {y.shape}")
        return X, y, np.ones(y.shape)
    if X.ndim == 2:
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must have shape ({X.shape[0]},) to match X {X.shape}, got {y.shape}")
        if num_partitions is None:
            raise ValueError(f"{name}: num_partitions is required when X is 2-D (N, d)")
        return _split_rows(X, y, _check_partitions(num_partitions, X.shape[0]))
    raise ValueError(f"X must be 2-D (N, d) or 3-D (P, n, d), got shape {X.shape}")


def _lambda_max(gram: np.ndarray) -> float:
    return float(np.linalg.eigvalsh(gram)[-1])


# --------------------------------------------------------------------------- #
# least squares
# --------------------------------------------------------------------------- #
def _least_squares_loss(theta, data):
    X, y = data
    residual = X @ theta - y
    return 0.5 * jnp.dot(residual, residual)


def linear_regression(X, y, *, num_partitions=None, name="linear_regression") -> Problem:
    """f(θ) = Σ_p ½‖X_p θ − y_p‖².

    X (P, n, d) with y (P, n); or X (N, d) with y (N,) and ``num_partitions``
    (contiguous split, sizes differing by at most one; short partitions are
    padded with zero rows, which add nothing to f or its gradient).

    >>> import numpy as np
    >>> p = linear_regression(np.eye(4)[None].repeat(2, 0), np.ones((2, 4)))
    >>> p.num_partitions, p.dim, p.smoothness, round(p.optimal_value, 12)
    (2, 4, 2.0, 0.0)
    """
    Xp, yp, _ = _partitioned(X, y, num_partitions, "linear_regression")
    grams = np.einsum("pni,pnj->pij", Xp, Xp)
    theta_star = np.linalg.lstsq(Xp.reshape(-1, Xp.shape[-1]), yp.reshape(-1), rcond=None)[0]
    residual = Xp.reshape(-1, Xp.shape[-1]) @ theta_star - yp.reshape(-1)

    def union_smoothness(mask):
        return _lambda_max(grams[np.asarray(mask, bool)].sum(0))

    return Problem(
        name=name,
        partition_loss=_least_squares_loss,
        data=(Xp, yp),
        dim=Xp.shape[-1],
        smoothness=_lambda_max(grams.sum(0)),
        partition_smoothness=np.array([_lambda_max(g) for g in grams]),
        optimal_value=float(0.5 * residual @ residual),
        union_smoothness=union_smoothness,
    )


def lag_synthetic(num_partitions: int, dim: int = 50, seed: int = 0) -> Problem:
    """The LAG paper's synthetic least squares (MODEL.md §1).

    X_p = I + 1.3^(p−1) q_p q_pᵀ with q_p the p-th column of the orthogonal
    factor of the full QR of a seeded dim×14 Gaussian matrix, so that
    L_p = (1 + 1.3^(p−1))². Every partition has the same label vector y; the LAG
    authors used Body Fat responses, we draw y ~ N(0, I) from the same seed
    (our convention).

    >>> p = lag_synthetic(3)
    >>> [round(float(v), 4) for v in p.partition_smoothness]
    [4.0, 5.29, 7.2361]
    """
    if not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    if not isinstance(num_partitions, (int, np.integer)) or not 1 <= num_partitions <= dim:
        raise ValueError(f"num_partitions must be an integer in [1, dim={dim}], got {num_partitions!r}")
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, 14)), mode="complete")
    y = rng.standard_normal(dim)
    X = np.stack([np.eye(dim) + 1.3**p * np.outer(q[:, p], q[:, p]) for p in range(num_partitions)])
    return linear_regression(X, np.tile(y, (num_partitions, 1)), name=f"lag_synthetic(P={num_partitions})")


# --------------------------------------------------------------------------- #
# L2-regularised logistic regression
# --------------------------------------------------------------------------- #
def _logistic_loss(theta, data):
    X, y, w, l2 = data
    margins = y * (X @ theta)
    return jnp.dot(w, jnp.logaddexp(0.0, -margins)) + 0.5 * l2 * jnp.dot(theta, theta)


def _logistic_optimum(X, y, w, l2, num_partitions) -> np.ndarray:
    """Newton's method in float64 (f is l2-strongly convex)."""
    Xf, yf, wf = X.reshape(-1, X.shape[-1]), y.reshape(-1), w.reshape(-1)
    theta = np.zeros(X.shape[-1])
    for _ in range(100):
        margins = yf * (Xf @ theta)
        sig = 0.5 * (1 - np.tanh(0.5 * margins))  # σ(−margin), overflow-free
        grad = -Xf.T @ (wf * yf * sig) + num_partitions * l2 * theta
        hess = (Xf.T * (wf * sig * (1 - sig))) @ Xf + num_partitions * l2 * np.eye(len(theta))
        delta = np.linalg.solve(hess, grad)
        theta -= delta
        if np.linalg.norm(delta) <= 1e-13 * (1 + np.linalg.norm(theta)):
            break
    return theta


def logistic_regression(X, y, *, l2=1e-3, num_partitions=None, name="logistic_regression") -> Problem:
    """f(θ) = Σ_p [Σ_{i∈p} log(1 + exp(−y_i x_iᵀθ)) + (l2/2)‖θ‖²], labels y ∈ {−1, +1}.

    Each partition carries its own ridge term, so L_u = λ_max(Σ_{p∈u} X_pᵀX_p)/4 + |u|·l2
    (MODEL.md §1). l2 > 0 keeps f* attained.

    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]])
    >>> p = logistic_regression(X, np.array([1, -1, 1, -1]), l2=0.1, num_partitions=2)
    >>> p.num_partitions, p.dim
    (2, 2)
    """
    l2 = float(l2)
    if not np.isfinite(l2) or l2 <= 0:
        raise ValueError(f"l2 must be finite and > 0, got {l2!r}")
    Xp, yp, wp = _partitioned(X, y, num_partitions, "logistic_regression")
    if not np.all(np.isin(yp[wp > 0], (-1.0, 1.0))):
        raise ValueError("y must hold labels -1 and +1 only")
    P = Xp.shape[0]
    grams = np.einsum("pni,pnj->pij", Xp, Xp)
    theta_star = _logistic_optimum(Xp, yp, wp, l2, P)
    margins = yp * (Xp @ theta_star)
    f_star = float(np.sum(wp * np.logaddexp(0.0, -margins)) + 0.5 * P * l2 * theta_star @ theta_star)

    def union_smoothness(mask):
        mask = np.asarray(mask, bool)
        return _lambda_max(grams[mask].sum(0)) / 4 + mask.sum() * l2

    return Problem(
        name=name,
        partition_loss=_logistic_loss,
        data=(Xp, yp, wp, np.full(P, l2)),
        dim=Xp.shape[-1],
        smoothness=union_smoothness(np.ones(P, bool)),
        partition_smoothness=np.array([_lambda_max(g) / 4 + l2 for g in grams]),
        optimal_value=f_star,
        union_smoothness=union_smoothness,
    )
