"""Two NumPy implementations of the lagc_jax model, for benchmarks and agreement tests.

Both implement MODEL.md for the strategies gd, fastest-k, gc, lag-wk, lagc and g-lag
with lagc_jax's defaults: step size 1/L (plain gradient steps), τ = τ_b = 0,
parallel links, ξ = 1 (worker-side rules) or 10 (server-side), D = 10, "clean" start,
full partition gradients, a record every iteration.

* :func:`run_loop` — a loop over trials and iterations, as a researcher would write it
  (NumPy inside an iteration, Python control flow around it).
* :func:`run_vectorised` — one loop over iterations, every array carrying a leading
  trial axis.

Unit times are either replayed (``unit_times`` of shape (trials, iters, M), as
``lagc_jax.simulate(unit_times=...)`` takes them) or drawn from NumPy's generator
(standard exponentials: ``ShiftedExponential()``). Both return a dict of arrays
shaped like the corresponding ``lagc_jax.Result`` fields: ``loss`` (T, K+1) and the
cumulative ``wall_clock``, ``uploads``, ``downloads``, ``computations`` (T, K+1).

Decoding weights and smoothness constants are inputs of the model (precomputed once,
as a researcher would), so they are taken from the problem and ``lagc_jax.coding``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

STRATEGIES = ("gd", "fastest-k", "gc", "lag-wk", "lagc", "g-lag")
_XI = {"lag-wk": 1.0, "lagc": 1.0, "g-lag": 10.0}
HISTORY = 10


@dataclass
class Setup:
    """Everything a run needs, in the compute dtype."""

    name: str
    M: int
    S: int
    X: np.ndarray  # (P, n, d)
    y: np.ndarray  # (P, n)
    w: np.ndarray  # (P, n)
    alpha: float
    B: np.ndarray | None  # (M, P) cyclic code (gc, lagc)
    table: np.ndarray | None  # (C(M, S), M) decoding weights by colex rank
    binom: np.ndarray | None  # (M, S+1) binomial coefficients for the colex rank
    group_L: np.ndarray | None  # (G,) group smoothness (g-lag)
    dtype: np.dtype

    @property
    def dim(self):
        return self.X.shape[2]


def setup(problem, name: str, M: int, S: int, dtype=np.float32) -> Setup:
    """The model's arrays for ``name`` on a lagc_jax Problem (least squares, P = M)."""
    from lagc_jax import coding

    if name not in STRATEGIES:
        raise ValueError(f"no NumPy reference for {name!r}")
    X, y = (np.asarray(a, dtype) for a in problem.examples)
    B = table = binom = group_L = None
    if name in ("gc", "lagc"):
        B64 = coding.cyclic_repetition(M, S)
        B = B64.astype(dtype)
        table = coding.decoding_table(B64, S).astype(dtype)
        binom = np.array([[math.comb(m, k) for k in range(S + 1)] for m in range(M)], np.int64)
    if name == "g-lag":
        groups = np.arange(M) // (S + 1)
        group_L = np.array(
            [problem.union_smoothness(groups == g) for g in range(M // (S + 1))], dtype
        )
    return Setup(
        name,
        M,
        S,
        X,
        y,
        np.asarray(problem.weights, dtype),
        float(1.0 / problem.smoothness),
        B,
        table,
        binom,
        group_L,
        np.dtype(dtype),
    )


def _outputs(T, K, dtype):
    return dict(
        loss=np.zeros((T, K + 1), dtype),
        duration=np.zeros((T, K), dtype),
        uploads=np.zeros((T, K), np.int64),
        downloads=np.zeros((T, K), np.int64),
        computations=np.zeros((T, K), np.int64),
    )


def _cumulative(out):
    T = out["loss"].shape[0]
    result = {"loss": out["loss"].astype(np.float64)}
    for field, kind in (
        ("duration", np.float64),
        ("uploads", np.int64),
        ("downloads", np.int64),
        ("computations", np.int64),
    ):
        total = np.cumsum(out[field].astype(kind), axis=1)
        result["wall_clock" if field == "duration" else field] = np.concatenate(
            [np.zeros((T, 1), kind), total], axis=1
        )
    return result


# --------------------------------------------------------------------------- #
# (a) the straightforward loop
# --------------------------------------------------------------------------- #
def run_loop(s: Setup, num_iters: int, num_trials: int, unit_times=None, seed: int = 0):
    """Loop over trials and iterations."""
    M, S, K, T = s.M, s.S, num_iters, num_trials
    X, y, w, alpha, dt = s.X, s.y, s.w, s.alpha, s.dtype
    Xt = X.transpose(0, 2, 1)
    rng = np.random.default_rng(seed)
    out = _outputs(T, K, dt)
    lazy = s.name in _XI
    U = M // (S + 1) if s.name == "g-lag" else M
    for t in range(T):
        theta = np.zeros(s.dim, dt)
        stored = np.zeros((U, s.dim), dt)
        stored_params = np.zeros((U, s.dim), dt)
        uploaded = np.zeros(U, bool)
        history = np.zeros(HISTORY, dt)
        for k in range(K):
            if unit_times is not None:
                x = unit_times[t, k].astype(dt)
            else:
                x = rng.standard_exponential(M, dtype=dt)
            residual = X @ theta - y  # (P, n)
            weighted = w * residual
            out["loss"][t, k] = 0.5 * np.sum(weighted * residual)
            grads = (Xt @ weighted[:, :, None])[:, :, 0]  # (P, d)
            if lazy:
                threshold = _XI[s.name] * history.sum() / (alpha**2 * U**2 * HISTORY)

            if s.name == "gd":
                aggregate = grads.sum(axis=0)
                duration, uploads, downloads, computations = x.max(), M, M, M
            elif s.name == "fastest-k":
                order = np.argsort(x, kind="stable")
                used = order[: M - S]
                aggregate = (M / (M - S)) * grads[used].sum(axis=0)
                duration, uploads, downloads, computations = x[order[M - S - 1]], M - S, M, M
            elif s.name in ("gc", "lagc"):
                coded = s.B @ grads
                c = (S + 1) * x
                order = np.argsort(c, kind="stable")
                used = np.zeros(M, bool)
                used[order[: M - S]] = True
                duration = c[order[M - S - 1]]
                stragglers = np.sort(order[M - S :])
                rank = sum(math.comb(int(m), i + 1) for i, m in enumerate(stragglers))
                a = s.table[rank]
                if s.name == "gc":
                    aggregate = a @ coded
                    uploads = M - S
                else:
                    sends = (((coded - stored) ** 2).sum(axis=1) > threshold) | ~uploaded
                    updated = sends & used
                    stored[updated] = coded[updated]
                    uploaded |= updated
                    aggregate = a @ stored
                    uploads = int(updated.sum())
                downloads, computations = M, M * (S + 1)
            elif s.name == "lag-wk":
                sends = (((grads - stored) ** 2).sum(axis=1) > threshold) | ~uploaded
                stored[sends] = grads[sends]
                uploaded |= sends
                aggregate = stored.sum(axis=0)
                duration, uploads, downloads, computations = x.max(), int(sends.sum()), M, M
            else:  # g-lag
                drift = ((stored_params - theta) ** 2).sum(axis=1)
                selected = (s.group_L**2 * drift > threshold) | ~uploaded
                group_grads = grads.reshape(U, S + 1, -1).sum(axis=1)
                duration = 0.0
                for g in np.flatnonzero(selected):
                    duration = max(duration, (S + 1) * x[g * (S + 1) : (g + 1) * (S + 1)].min())
                stored[selected] = group_grads[selected]
                stored_params[selected] = theta
                uploaded |= selected
                aggregate = stored.sum(axis=0)
                n_sel = int(selected.sum())
                uploads, downloads, computations = n_sel, (S + 1) * n_sel, (S + 1) ** 2 * n_sel

            new_theta = theta - alpha * aggregate
            history[k % HISTORY] = np.sum((new_theta - theta) ** 2)
            theta = new_theta.astype(dt)
            out["duration"][t, k] = duration
            out["uploads"][t, k] = uploads
            out["downloads"][t, k] = downloads
            out["computations"][t, k] = computations
        residual = X @ theta - y
        out["loss"][t, K] = 0.5 * np.sum(w * residual * residual)
    return _cumulative(out)


# --------------------------------------------------------------------------- #
# (b) vectorised over trials
# --------------------------------------------------------------------------- #
def _fastest(c, num_needed):
    """Stable order of c (T, M): used mask of the first num_needed, their last time, stragglers."""
    T, M = c.shape
    order = np.argsort(c, axis=1, kind="stable")
    used = np.zeros((T, M), bool)
    np.put_along_axis(used, order[:, :num_needed], True, axis=1)
    duration = np.take_along_axis(c, order[:, num_needed - 1 : num_needed], axis=1)[:, 0]
    return used, duration, np.sort(order[:, num_needed:], axis=1)


def run_vectorised(s: Setup, num_iters: int, num_trials: int, unit_times=None, seed: int = 0):
    """One loop over iterations; every array has a leading trial axis."""
    M, S, K, T = s.M, s.S, num_iters, num_trials
    X, y, w, alpha, dt = s.X, s.y, s.w, s.alpha, s.dtype
    P, n, d = X.shape
    X_rows = X.reshape(P * n, d)
    rng = np.random.default_rng(seed)
    out = _outputs(T, K, dt)
    lazy = s.name in _XI
    U = M // (S + 1) if s.name == "g-lag" else M
    theta = np.zeros((T, d), dt)
    if lazy:
        stored = np.zeros((T, U, d), dt)
        uploaded = np.zeros((T, U), bool)
        history = np.zeros((T, HISTORY), dt)
    if s.name == "g-lag":
        stored_params = np.zeros((T, U, d), dt)
    for k in range(K):
        if unit_times is not None:
            x = unit_times[:, k].astype(dt)
        else:
            x = rng.standard_exponential((T, M), dtype=dt)
        residual = (theta @ X_rows.T).reshape(T, P, n) - y  # one (T, d) @ (d, P·n) product
        weighted = w * residual
        out["loss"][:, k] = 0.5 * np.sum(weighted * residual, axis=(1, 2))
        grads = np.matmul(weighted.transpose(1, 0, 2), X).transpose(1, 0, 2)  # (T, P, d)
        if lazy:
            threshold = _XI[s.name] * history.sum(axis=1) / (alpha**2 * U**2 * HISTORY)

        if s.name == "gd":
            aggregate = grads.sum(axis=1)
            duration, uploads, downloads, computations = x.max(axis=1), M, M, M
        elif s.name == "fastest-k":
            used, duration, _ = _fastest(x, M - S)
            aggregate = (M / (M - S)) * np.einsum("tm,tmd->td", used.astype(dt), grads)
            uploads, downloads, computations = M - S, M, M
        elif s.name in ("gc", "lagc"):
            coded = np.einsum("mp,tpd->tmd", s.B, grads, optimize=True)
            used, duration, stragglers = _fastest((S + 1) * x, M - S)
            rank = s.binom[stragglers, np.arange(1, S + 1)].sum(axis=1)
            a = s.table[rank]  # (T, M)
            if s.name == "gc":
                aggregate = np.einsum("tm,tmd->td", a, coded)
                uploads = M - S
            else:
                sends = (((coded - stored) ** 2).sum(axis=2) > threshold[:, None]) | ~uploaded
                updated = sends & used
                stored = np.where(updated[:, :, None], coded, stored)
                uploaded |= updated
                aggregate = np.einsum("tm,tmd->td", a, stored)
                uploads = updated.sum(axis=1)
            downloads, computations = M, M * (S + 1)
        elif s.name == "lag-wk":
            sends = (((grads - stored) ** 2).sum(axis=2) > threshold[:, None]) | ~uploaded
            stored = np.where(sends[:, :, None], grads, stored)
            uploaded |= sends
            aggregate = stored.sum(axis=1)
            duration, uploads, downloads, computations = x.max(axis=1), sends.sum(axis=1), M, M
        else:  # g-lag
            drift = ((stored_params - theta[:, None, :]) ** 2).sum(axis=2)
            selected = (s.group_L**2 * drift > threshold[:, None]) | ~uploaded
            group_grads = grads.reshape(T, U, S + 1, d).sum(axis=2)
            group_time = (S + 1) * x.reshape(T, U, S + 1).min(axis=2)
            duration = np.where(selected, group_time, 0.0).max(axis=1)
            stored = np.where(selected[:, :, None], group_grads, stored)
            stored_params = np.where(selected[:, :, None], theta[:, None, :], stored_params)
            uploaded |= selected
            aggregate = stored.sum(axis=1)
            n_sel = selected.sum(axis=1)
            uploads, downloads, computations = n_sel, (S + 1) * n_sel, (S + 1) ** 2 * n_sel

        new_theta = (theta - alpha * aggregate).astype(dt)
        if lazy:
            history[:, k % HISTORY] = np.sum((new_theta - theta) ** 2, axis=1)
        theta = new_theta
        out["duration"][:, k] = duration
        out["uploads"][:, k] = uploads
        out["downloads"][:, k] = downloads
        out["computations"][:, k] = computations
    residual = (theta @ X_rows.T).reshape(T, P, n) - y
    out["loss"][:, K] = 0.5 * np.sum(w * residual * residual, axis=(1, 2))
    return _cumulative(out)


def compare_with(result, reference: dict, rtol: float = 1e-6) -> list[str]:
    """Differences between a lagc_jax Result and a reference dict (empty list: they agree).

    Counts must be identical; loss and wall clock agree to ``rtol`` (relative, with an
    absolute floor of rtol × the initial loss for the loss).
    """
    problems = []
    for field in ("uploads", "downloads", "computations"):
        if not np.array_equal(getattr(result, field), reference[field]):
            problems.append(f"{field} differ")
    if not np.allclose(result.wall_clock, reference["wall_clock"], rtol=rtol, atol=0):
        problems.append(
            f"wall_clock differs (max rel "
            f"{np.max(np.abs(result.wall_clock - reference['wall_clock']) / np.maximum(np.abs(reference['wall_clock']), 1e-300)):.2e})"
        )
    scale = np.abs(reference["loss"][:, :1])
    if not np.all(
        np.abs(result.loss - reference["loss"]) <= rtol * (np.abs(reference["loss"]) + scale)
    ):
        problems.append(
            f"loss differs (max abs {np.max(np.abs(result.loss - reference['loss'])):.2e})"
        )
    return problems
