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
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .reductions import inner


class QuadraticForm(NamedTuple):
    """f_p(θ) = ½ θᵀH_pθ − b_pᵀθ + c_p: the exact form of a quadratic problem.

    With it, ∇f_p(θ) = H_pθ − b_p costs 2d² FLOPs instead of the 4nd of the
    residual form, and f(θ) = f* + ½(θ − θ*)ᵀ∇f(θ) (exact for any minimiser θ*,
    as Hθ* = b) needs no residuals at all.
    """

    hessians: Any  # (P, d, d) H_p, symmetric (including any ridge term of f_p)
    linear: Any  # (P, d) b_p
    minimizer: Any  # (d,) a minimiser θ* of f
    optimal_value: Any  # () f* = f(θ*)


class ProblemData(NamedTuple):
    """What the compiled program sees of a problem (traced, never baked in)."""

    examples: Any  # pytree, leaves (P, n, ...)
    weights: Any  # (P, n): 1 for real examples, 0 for padding
    l2: Any  # ridge coefficient, added as (l2/2)‖θ‖² to every partition
    quadratic: QuadraticForm | None = None  # set when the problem computes from it


@dataclass(frozen=True, eq=False)
class Problem:
    """A finite-sum problem split into partitions.

    f(θ) = Σ_p f_p(θ),  f_p(θ) = Σ_{i∈p} w_i ℓ(θ, x_i) + (l2/2)‖θ‖².

    Attributes:
      name: short label used in results and plots.
      weighted_loss: pure ``(theta (d,), examples (n, ...), weights (n,)) -> Σ_i w_i ℓ(θ, x_i)``
        for one partition, written in vectorised form (one matrix product, not a
        loop over examples); :func:`weighted_sum` builds it from a per-example loss.
      examples: pytree of numpy arrays with leading axes (P, n); partitions
        shorter than n are padded (weight 0).
      weights: (P, n) example weights (1 real, 0 padding).
      l2: ridge coefficient per partition.
      dim: length d of the flat parameter vector θ.
      smoothness: global smoothness L of f (step size 1/L by default).
      partition_smoothness: (P,) smoothness L_p of each f_p.
      optimal_value: f* = min f (float64).
      union_smoothness: host callable, bool mask (P,) -> smoothness of Σ_{p in mask} f_p.
      init_params: θ⁰ (d,), zeros unless given.
      estimated: True when L and f* are estimates (non-convex models), not exact.
      unravel: maps a flat θ back to the model's parameter pytree (identity for vectors).
      quadratic: the exact :class:`QuadraticForm` of a quadratic problem (float64), or
        None. When it needs fewer FLOPs than the residual form (d < 2n,
        :attr:`uses_quadratic_form`), losses and gradients are computed from it.
    """

    name: str
    weighted_loss: Callable[[Any, Any, Any], Any]
    examples: Any
    weights: np.ndarray
    l2: float
    dim: int
    smoothness: float
    partition_smoothness: np.ndarray
    optimal_value: float
    union_smoothness: Callable[[np.ndarray], float] = field(repr=False)
    init_params: np.ndarray | None = field(default=None, repr=False)
    estimated: bool = False
    unravel: Callable = field(default=lambda theta: theta, repr=False)
    quadratic: QuadraticForm | None = field(default=None, repr=False)

    def __post_init__(self):
        smoothness = float(self.smoothness)
        if not np.isfinite(smoothness) or smoothness <= 0:
            raise ValueError(
                f"problem {self.name!r}: its smoothness L = {smoothness!r} must be finite and > 0 "
                "(L = 0 means f has no curvature at all — e.g. every feature is zero — so there "
                "is nothing to learn and the default step 1/L is undefined)"
            )

    @property
    def num_partitions(self) -> int:
        return len(self.partition_smoothness)

    @property
    def partition_sizes(self) -> np.ndarray:
        return self.weights.sum(axis=1).astype(int)

    def initial_params(self) -> np.ndarray:
        if self.init_params is None:
            return np.zeros(self.dim)
        return np.asarray(self.init_params, dtype=float)

    @property
    def uses_quadratic_form(self) -> bool:
        """Whether gradients come from the quadratic form: 2d² < 4nd FLOPs per partition."""
        return self.quadratic is not None and self.dim < 2 * self.weights.shape[1]

    def device_data(self, dtype) -> ProblemData:
        """The problem's arrays in the compute dtype, for the compiled program."""

        dtype = np.dtype(jnp.dtype(dtype).name)

        def cast(a):
            a = np.asarray(a)
            return a.astype(dtype) if np.issubdtype(a.dtype, np.floating) else a

        quadratic = (
            jax.tree_util.tree_map(cast, self.quadratic) if self.uses_quadratic_form else None
        )
        host = ProblemData(
            jax.tree_util.tree_map(cast, self.examples),
            np.asarray(self.weights, dtype),
            np.asarray(self.l2, dtype),
            quadratic,
        )
        return jax.device_put(host)  # one transfer of every array

    def loss(self, theta) -> float:
        """f(θ) at jax's default precision (float64 when x64 is enabled)."""
        data = self.device_data(jnp.asarray(0.0).dtype)
        return float(loss_and_partition_grads(self.weighted_loss, jnp.asarray(theta), data)[0])


def weighted_sum(example_loss):
    """Turn a per-example loss ``(theta, example) -> scalar`` into a ``weighted_loss``."""

    def weighted_loss(theta, examples, weights):
        return jnp.dot(weights, jax.vmap(example_loss, in_axes=(None, 0))(theta, examples))

    return weighted_loss


def loss_and_partition_grads(weighted_loss, theta, data: ProblemData):
    """f(θ) and the (P, d) matrix of partition gradients ∇f_p(θ)."""
    return gradient_oracle(weighted_loss, data).loss_and_grads(theta)


class GradientOracle(NamedTuple):
    """How the compiled program evaluates a problem at θ (see :func:`gradient_oracle`)."""

    loss_and_grads: Callable  # θ (d,) -> (f(θ), (P, d) partition gradients)
    # (θ, matrix (R, P)) -> matrix @ ∇f_p(θ) (R, d) straight from θ, or None where the
    # problem has no cheaper way than multiplying the partition gradients.
    combine: Callable | None = None
    # θ -> (f(θ) − f*, partition gradients) to the relative precision of the gap itself
    # (quadratic problems), or None: f − f* is then known only to the dtype's resolution of f.
    gap_and_grads: Callable | None = None


def gradient_oracle(weighted_loss, data: ProblemData) -> GradientOracle:
    """The loss and partition gradients of a problem, for the compiled program.

    Call it once, outside a loop over iterations: loop-invariant work (laying the
    Hessians side by side) is done here. With a quadratic form in ``data``, θ is
    extended by a constant 1 so that the gradients are one product
    [θ, 1] @ [[H_1 … H_P], [−b_1 … −b_P]] (under vmap over trials one GEMM
    (T, d+1) @ (d+1, P·d), the bias included), ``combine`` multiplies the coded
    combination Σ_p B_rp [H_p; −b_p] (independent of the trial) instead of the
    gradients, and f = f* + ½(θ − θ*)ᵀ∇f(θ) with ∇f from its own (d+1, d) product,
    so that f never needs the partition gradients; ``gap_and_grads`` gives the gap
    ½(θ − θ*)ᵀ∇f(θ) itself, which float32 resolves far below its resolution of f.
    Otherwise one ``vmap(value_and_grad)`` of the partition loss.
    """
    if data.quadratic is not None:
        hessians, linear, minimizer, optimal_value = data.quadratic
        P, d, _ = hessians.shape
        # (d+1, P, d): column block p is [H_p; −b_p] (H_p symmetric, so θ @ H_p = H_p θ)
        blocks = jnp.concatenate([jnp.transpose(hessians, (1, 0, 2)), -linear[None]], axis=0)
        full = jnp.sum(blocks, axis=1)  # (d+1, d): [Σ H_p; −Σ b_p]

        def extended(theta):
            return jnp.concatenate([theta, jnp.ones((1,), theta.dtype)])

        def gap_and_grads(theta):
            x = extended(theta)
            gap = 0.5 * inner(theta - minimizer, x @ full)
            return gap, (x @ blocks.reshape(d + 1, P * d)).reshape(P, d)

        def loss_and_grads(theta):
            gap, grads = gap_and_grads(theta)
            return optimal_value + gap, grads

        def combine(theta, matrix):
            # a batched product over the rows i of the blocks gives the (d+1, R, d) layout
            # of the GEMM's right operand directly: XLA hoists it out of the loop over
            # iterations (an einsum's transpose to that layout stayed inside, as a copy)
            coded = jax.lax.dot_general(
                jnp.broadcast_to(matrix, (d + 1,) + matrix.shape),
                blocks,
                (((2,), (1,)), ((0,), (0,))),
            ).reshape(d + 1, -1)
            return (extended(theta) @ coded).reshape(matrix.shape[0], d)

        return GradientOracle(loss_and_grads, combine, gap_and_grads)

    def partition_loss(theta, examples, weights):
        return weighted_loss(theta, examples, weights) + 0.5 * data.l2 * jnp.dot(theta, theta)

    def generic(theta):
        values, grads = jax.vmap(jax.value_and_grad(partition_loss), in_axes=(None, 0, 0))(
            theta, data.examples, data.weights
        )
        return jnp.sum(values), grads

    return GradientOracle(generic)


def minibatch_partition_grads(weighted_loss, theta, data: ProblemData, key, batch_size: int):
    """(P, d) unbiased stochastic partition gradients from ``batch_size`` examples each.

    Each partition samples ``batch_size`` of its real examples without
    replacement and rescales by n_p / batch_size.
    """
    P, n = data.weights.shape
    keys = jax.random.split(key, P)

    def one(key, examples, weights):
        size = jnp.sum(weights)
        idx = jax.random.choice(key, n, (batch_size,), replace=False, p=weights / size)
        batch = jax.tree_util.tree_map(lambda a: a[idx], examples)
        scale = jnp.full((batch_size,), size / batch_size, weights.dtype)

        def batch_loss(theta):
            return weighted_loss(theta, batch, scale) + 0.5 * data.l2 * jnp.dot(theta, theta)

        return jax.grad(batch_loss)(theta)

    return jax.vmap(one)(keys, data.examples, data.weights)


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


PARTITIONINGS = ("contiguous", "random", "sorted")


def partition_rows(
    num_rows: int, num_partitions: int, partitioning: str = "contiguous", labels=None, seed: int = 0
):
    """Split row indices into ``num_partitions`` near-equal parts (sizes differ by at most one).

    ``partitioning``: "contiguous" (in order), "random" (a seeded permutation) or
    "sorted" (rows sorted by label, so partitions are heterogeneous: where LAG saves most).
    Returns (index (P, n) int, weights (P, n)); short partitions repeat their first
    row with weight 0.

    >>> idx, w = partition_rows(5, 2)
    >>> idx.tolist(), w.tolist()
    ([[0, 1, 2], [3, 4, 3]], [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    """
    num_partitions = _check_partitions(num_partitions, num_rows)
    if partitioning == "contiguous":
        order = np.arange(num_rows)
    elif partitioning == "random":
        order = np.random.default_rng(seed).permutation(num_rows)
    elif partitioning == "sorted":
        if labels is None:
            raise ValueError("partitioning='sorted' needs labels")
        order = np.argsort(np.asarray(labels), kind="stable")
    else:
        raise ValueError(f"partitioning must be one of {PARTITIONINGS}, got {partitioning!r}")
    parts = np.array_split(order, num_partitions)
    n = max(len(p) for p in parts)
    index = np.stack([np.concatenate([p, np.full(n - len(p), p[0])]) for p in parts])
    weights = np.stack([np.arange(n) < len(p) for p in parts]).astype(float)
    return index, weights


def _partitioned(X, y, num_partitions, partitioning, seed):
    """X (P, n, d), y (P, n), weights from 3-D input or from X (N, d), y (N,)."""
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
            raise ValueError(
                f"y must have shape ({X.shape[0]},) to match X {X.shape}, got {y.shape}"
            )
        if num_partitions is None:
            raise ValueError("num_partitions is required when X is 2-D (N, d)")
        index, weights = partition_rows(len(y), num_partitions, partitioning, y, seed)
        return X[index], y[index], weights
    raise ValueError(f"X must be 2-D (N, d) or 3-D (P, n, d), got shape {X.shape}")


def _lambda_max(gram: np.ndarray) -> float:
    return float(np.linalg.eigvalsh(gram)[-1])


def _weighted_grams(X, w):
    return np.einsum("pni,pn,pnj->pij", X, w, X)


# --------------------------------------------------------------------------- #
# least squares
# --------------------------------------------------------------------------- #
def _squared_error(theta, examples, weights):
    X, y = examples
    residual = X @ theta - y
    return 0.5 * jnp.dot(weights * residual, residual)


def linear_regression(
    X, y, *, num_partitions=None, partitioning="contiguous", seed=0, name="linear_regression"
) -> Problem:
    """f(θ) = Σ_p ½‖X_p θ − y_p‖².

    X (P, n, d) with y (P, n); or X (N, d) with y (N,), ``num_partitions`` and a
    ``partitioning`` ("contiguous", "random" with ``seed``, or "sorted" by label).

    >>> import numpy as np
    >>> p = linear_regression(np.eye(4)[None].repeat(2, 0), np.ones((2, 4)))
    >>> p.num_partitions, p.dim, p.smoothness, round(p.optimal_value, 12)
    (2, 4, 2.0, 0.0)
    """
    Xp, yp, wp = _partitioned(X, y, num_partitions, partitioning, seed)
    grams = _weighted_grams(Xp, wp)
    sqrt_w = np.sqrt(wp).reshape(-1)
    A, b = Xp.reshape(-1, Xp.shape[-1]) * sqrt_w[:, None], yp.reshape(-1) * sqrt_w
    theta_star = np.linalg.lstsq(A, b, rcond=None)[0]
    residual = A @ theta_star - b
    optimal_value = float(0.5 * residual @ residual)

    def union_smoothness(mask):
        return _lambda_max(grams[np.asarray(mask, bool)].sum(0))

    return Problem(
        name=name,
        weighted_loss=_squared_error,
        examples=(Xp, yp),
        weights=wp,
        l2=0.0,
        dim=Xp.shape[-1],
        smoothness=_lambda_max(grams.sum(0)),
        partition_smoothness=np.array([_lambda_max(g) for g in grams]),
        optimal_value=optimal_value,
        union_smoothness=union_smoothness,
        quadratic=QuadraticForm(
            grams, np.einsum("pni,pn,pn->pi", Xp, wp, yp), theta_star, np.float64(optimal_value)
        ),
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
        raise ValueError(
            f"num_partitions must be an integer in [1, dim={dim}], got {num_partitions!r}"
        )
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, 14)), mode="complete")
    y = rng.standard_normal(dim)
    X = np.stack([np.eye(dim) + 1.3**p * np.outer(q[:, p], q[:, p]) for p in range(num_partitions)])
    return linear_regression(
        X, np.tile(y, (num_partitions, 1)), name=f"lag_synthetic(P={num_partitions})"
    )


# --------------------------------------------------------------------------- #
# L2-regularised logistic regression
# --------------------------------------------------------------------------- #
def _logistic_loss(theta, examples, weights):
    X, y = examples
    return jnp.dot(weights, jnp.logaddexp(0.0, -y * (X @ theta)))


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


def logistic_regression(
    X,
    y,
    *,
    l2=1e-3,
    num_partitions=None,
    partitioning="contiguous",
    seed=0,
    name="logistic_regression",
) -> Problem:
    """f(θ) = Σ_p [Σ_{i∈p} log(1 + exp(−y_i x_iᵀθ)) + (l2/2)‖θ‖²], labels y ∈ {−1, +1}.

    Each partition carries its own ridge term, so L_u = λ_max(Σ_{p∈u} X_pᵀX_p)/4 + |u|·l2
    (MODEL.md §1). l2 > 0 keeps f* attained. Data layout and ``partitioning`` as in
    :func:`linear_regression`.

    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]])
    >>> p = logistic_regression(X, np.array([1, -1, 1, -1]), l2=0.1, num_partitions=2)
    >>> p.num_partitions, p.dim
    (2, 2)
    """
    l2 = float(l2)
    if not np.isfinite(l2) or l2 <= 0:
        raise ValueError(f"l2 must be finite and > 0, got {l2!r}")
    Xp, yp, wp = _partitioned(X, y, num_partitions, partitioning, seed)
    if not np.all(np.isin(yp[wp > 0], (-1.0, 1.0))):
        raise ValueError("y must hold labels -1 and +1 only")
    P = Xp.shape[0]
    grams = _weighted_grams(Xp, wp)
    theta_star = _logistic_optimum(Xp, yp, wp, l2, P)
    margins = yp * (Xp @ theta_star)
    f_star = float(
        np.sum(wp * np.logaddexp(0.0, -margins)) + 0.5 * P * l2 * theta_star @ theta_star
    )

    def union_smoothness(mask):
        mask = np.asarray(mask, bool)
        return _lambda_max(grams[mask].sum(0)) / 4 + mask.sum() * l2

    return Problem(
        name=name,
        weighted_loss=_logistic_loss,
        examples=(Xp, yp),
        weights=wp,
        l2=l2,
        dim=Xp.shape[-1],
        smoothness=union_smoothness(np.ones(P, bool)),
        partition_smoothness=np.array([_lambda_max(g) / 4 + l2 for g in grams]),
        optimal_value=f_star,
        union_smoothness=union_smoothness,
    )


# --------------------------------------------------------------------------- #
# any JAX model
# --------------------------------------------------------------------------- #
# Up to this many parameters the Hessian is formed densely and L is exact at θ⁰.
_DENSE_HESSIAN_MAX_DIM = 2000


def _power_iteration(
    hvp, dim: int, max_iters: int = 5000, rtol: float = 1e-12, seed: int = 0
) -> float:
    """Largest |eigenvalue| of a symmetric operator given as a Hessian-vector product,
    iterated until the estimate changes by less than ``rtol`` (relative)."""
    v = np.random.default_rng(seed).standard_normal(dim)
    v /= np.linalg.norm(v)
    value = 0.0
    for _ in range(max_iters):
        w = np.asarray(hvp(jnp.asarray(v)), dtype=np.float64)
        previous, value = value, float(np.linalg.norm(w))
        if value == 0.0 or abs(value - previous) <= rtol * value:
            break
        v = w / value
    return value


def from_loss(
    per_example_loss,
    params,
    data,
    num_partitions: int,
    *,
    l2: float = 0.0,
    partitioning: str = "contiguous",
    labels=None,
    seed: int = 0,
    optimum_steps: int = 3000,
    name: str = "model",
) -> Problem:
    """A problem from any per-example loss written in JAX and any pytree of parameters.

    Args:
      per_example_loss: ``(params, example) -> scalar``, ``example`` being one row
        of every leaf of ``data``.
      params: initial parameters (any pytree); θ is their flattened vector.
      data: pytree of arrays with a common leading axis N (examples).
      num_partitions: P; rows are split by ``partitioning`` ("contiguous",
        "random" with ``seed``, or "sorted" by ``labels``).
      l2: ridge coefficient added to every partition.
      optimum_steps: gradient steps (step 1/L, float64 if enabled) used to estimate f*.

    L and L_p are the largest |eigenvalue| of the Hessian at the initial parameters
    (dense for up to 2000 parameters, else power iteration on Hessian-vector
    products until converged), and f* is estimated as the best
    loss found by ``optimum_steps`` steps of gradient descent; ``Problem.estimated``
    is True, and results record that the optimum is an estimate. For a non-convex
    model both are local estimates: use them as a scale, not a guarantee.

    >>> import jax.numpy as jnp, numpy as np
    >>> X = np.random.default_rng(0).standard_normal((40, 3)); y = X @ np.array([1.0, -2.0, 0.5])
    >>> p = from_loss(lambda w, ex: 0.5 * (ex[0] @ w["w"] - ex[1]) ** 2, {"w": jnp.zeros(3)},
    ...               (X, y), 4, optimum_steps=500)
    >>> p.dim, p.num_partitions, p.estimated, bool(abs(p.optimal_value) < 1e-8)
    (3, 4, True, True)
    """
    from jax.flatten_util import ravel_pytree

    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        raise ValueError("data must hold at least one array")
    num_rows = len(leaves[0])
    if any(len(leaf) != num_rows for leaf in leaves):
        raise ValueError("every leaf of data must have the same leading length (examples)")
    for leaf in leaves:
        if np.issubdtype(np.asarray(leaf).dtype, np.floating):
            _as_finite("data", leaf)
    l2 = float(l2)
    if not np.isfinite(l2) or l2 < 0:
        raise ValueError(f"l2 must be finite and >= 0, got {l2!r}")
    index, weights = partition_rows(num_rows, num_partitions, partitioning, labels, seed)
    examples = jax.tree_util.tree_map(lambda a: np.asarray(a)[index], data)
    theta0, unravel = ravel_pytree(params)
    theta0 = np.asarray(theta0, dtype=np.float64)

    def example_loss(theta, example):
        return per_example_loss(unravel(theta), example)

    one = jax.tree_util.tree_map(lambda a: np.asarray(a)[0], data)
    value = jax.eval_shape(per_example_loss, params, one)
    if not hasattr(value, "shape") or value.shape != ():
        raise ValueError(
            "per_example_loss must return a scalar for one example, got "
            f"{getattr(value, 'shape', type(value).__name__)!r}"
        )
    weighted_loss = weighted_sum(example_loss)
    dtype = jnp.asarray(0.0).dtype
    device_examples = jax.tree_util.tree_map(
        lambda a: jnp.asarray(a, dtype) if np.issubdtype(a.dtype, np.floating) else jnp.asarray(a),
        examples,
    )
    device_weights = jnp.asarray(weights, dtype)

    def union_loss(theta, mask):
        w = device_weights * jnp.asarray(mask, dtype)[:, None]
        per_partition = jax.vmap(weighted_loss, in_axes=(None, 0, 0))(theta, device_examples, w)
        return jnp.sum(per_partition) + 0.5 * l2 * jnp.sum(mask) * jnp.dot(theta, theta)

    start = jnp.asarray(theta0, dtype)
    hessian = jax.jit(jax.hessian(union_loss))
    hvp = jax.jit(
        lambda v, mask: jax.jvp(lambda t: jax.grad(union_loss)(t, mask), (start,), (v,))[1]
    )

    def union_smoothness(mask):
        """Largest |eigenvalue| of the union's Hessian at θ⁰ (dense when d is small)."""
        mask = jnp.asarray(mask, dtype)
        if len(theta0) <= _DENSE_HESSIAN_MAX_DIM:
            return float(
                np.max(np.abs(np.linalg.eigvalsh(np.asarray(hessian(start, mask), np.float64))))
            )
        return _power_iteration(lambda v: hvp(v, mask), len(theta0))

    P = index.shape[0]
    initial = float(union_loss(start, jnp.ones(P, dtype)))
    if not np.isfinite(initial):
        raise ValueError(
            f"per_example_loss must be finite: the loss at the initial params is {initial!r}"
        )
    smoothness = union_smoothness(np.ones(P))
    if not np.isfinite(smoothness) or smoothness <= 0:
        raise ValueError(
            f"problem {name!r}: the Hessian at the initial params has largest "
            f"|eigenvalue| L = {smoothness!r}; L must be finite and > 0 (L = 0: "
            "the loss has no curvature there, so the step 1/L is undefined)"
        )
    loss_and_grad = jax.jit(jax.value_and_grad(lambda t: union_loss(t, np.ones(P))))
    theta, best = jnp.asarray(theta0, dtype), np.inf
    for _ in range(optimum_steps):
        value, grad = loss_and_grad(theta)
        best = min(best, float(value))
        theta = theta - grad / smoothness
    return Problem(
        name=name,
        weighted_loss=weighted_loss,
        examples=examples,
        weights=weights,
        l2=l2,
        dim=len(theta0),
        smoothness=smoothness,
        partition_smoothness=np.array([union_smoothness(np.eye(P)[p]) for p in range(P)]),
        optimal_value=min(best, float(loss_and_grad(theta)[0])),
        union_smoothness=union_smoothness,
        init_params=theta0,
        estimated=True,
        unravel=unravel,
    )
