"""Data placement (encoding matrices B) and gradient-coding decoders (MODEL.md §2).

A placement matrix B has shape (M, P) (here P = M): worker m stores the
partitions in supp(B[m, :]) and returns the coded gradient
g_m = Σ_p B[m, p] ∇f_p. A set F of finished workers *decodes* when some a with
a_m = 0 for m ∉ F satisfies a·B = 1ᵀ, so that Σ_m a_m g_m = Σ_p ∇f_p.

Placements
    :func:`identity`               B = I (no redundancy).
    :func:`cyclic_repetition`      worker m stores partitions m … m+S (mod M) and
                                   any M−S workers decode; real BCH-type codes
                                   chosen for small decoding weights (see there).
    :func:`fractional_repetition`  groups of S+1 workers store the same S+1
                                   partitions and send their plain sum.
    :func:`tandon_cyclic`          the random construction of Tandon et al.
                                   (ICML 2017), for comparison only.
    :func:`cyclic_support`         the cyclic support with all coefficients 1
                                   (stochastic gradient coding, MODEL.md §10).
    :func:`random_regular_graph`   a seeded random s-regular graph; B = A/s is an
                                   approximate gradient code (MODEL.md §10).

Decoders
    :func:`decoding_weights`       numpy, one finished set, float64 least squares.
    :func:`decoding_weights_jax`   jittable/vmappable pseudo-inverse solve.
    :func:`decoding_table` + :func:`lookup_decoding_weights`
                                   precomputed weights for every straggler set,
                                   indexed in-jit by :func:`straggler_rank`
                                   (colex rank of the straggler set).
    :func:`decoding_stats`         worst case over all straggler sets: max|a|,
                                   cond(B_F) and the float32 decoding error.
    :func:`least_squares_table`    the optimal approximate decoder: least-squares
                                   weights for every straggler set, exact or not.

>>> B = cyclic_repetition(4, 1)
>>> a = decoding_weights(B, [True, False, True, True])
>>> bool(np.allclose(a @ B, 1.0)), float(a[1])
(True, 0.0)
"""

from __future__ import annotations

import itertools
import math
from numbers import Integral

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "identity",
    "cyclic_repetition",
    "fractional_repetition",
    "group_ids",
    "tandon_cyclic",
    "decoding_weights",
    "decoding_weights_jax",
    "decoding_table",
    "straggler_rank",
    "lookup_decoding_weights",
    "decoding_stats",
    "least_squares_table",
    "cyclic_support",
    "random_regular_graph",
    "check_decodable",
    "float32_decoding_check",
    "DECODING_TOLERANCE",
]

_EPS = np.finfo(np.float64).eps
_EPS32 = float(np.finfo(np.float32).eps)
# A set decodes when the float64 decoding weights leave max_p |(a·B)_p − 1| ≤ this: a
# fixed bound on the relative weight error of every partition in the decoded sum,
# whatever the size of a (a code whose weights are so large that rounding alone
# exceeds it does not decode reliably either).
DECODING_TOLERANCE = 1e-8
# check_decodable: exhaustive up to this many (straggler set × worker) entries.
_MAX_EXHAUSTIVE_WORK = 2_000_000
# Default cap on C(M, S) * M for the exhaustive routines (64 MB of float64).
_MAX_TABLE_ENTRIES = 8_000_000
_CHUNK = 2048  # straggler sets per batched SVD


# ---------------------------------------------------------------------------
# input validation (all before any computation)


def _check_num_workers(num_workers) -> int:
    if isinstance(num_workers, bool) or not isinstance(num_workers, Integral) or num_workers < 1:
        raise ValueError(f"num_workers must be an integer >= 1, got {num_workers!r}")
    return int(num_workers)


def _check_stragglers(stragglers, num_workers: int) -> int:
    if (
        isinstance(stragglers, bool)
        or not isinstance(stragglers, Integral)
        or not 0 <= stragglers < num_workers
    ):
        raise ValueError(
            f"stragglers must be an integer in [0, num_workers - 1 = {num_workers - 1}], "
            f"got {stragglers!r}"
        )
    return int(stragglers)


def _check_groups(num_workers, stragglers) -> tuple[int, int]:
    M = _check_num_workers(num_workers)
    S = _check_stragglers(stragglers, M)
    if M % (S + 1):
        raise ValueError(
            f"fractional repetition needs (stragglers + 1) to divide num_workers: "
            f"stragglers + 1 = {S + 1} does not divide num_workers = {M}"
        )
    return M, S


def _check_matrix(B, name: str = "B") -> np.ndarray:
    try:
        B = np.asarray(B, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real 2-D array (M, P)") from None
    if B.ndim != 2 or B.shape[0] < 1 or B.shape[1] < 1:
        raise ValueError(
            f"{name} must be a 2-D array of shape (M, P) with M, P >= 1, got shape {B.shape}"
        )
    if not np.all(np.isfinite(B)):
        raise ValueError(f"{name} must contain only finite values")
    return B


def _finished_mask(finished, num_workers: int) -> np.ndarray:
    """Bool mask (M,) from a bool mask or an array of worker indices."""
    arr = np.asarray(finished)
    if arr.dtype == bool:
        if arr.shape != (num_workers,):
            raise ValueError(
                f"finished must be a bool mask of shape ({num_workers},) or an "
                f"index array, got a bool array of shape {arr.shape}"
            )
        return arr.copy()
    if arr.size == 0:
        arr = arr.astype(np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"finished must be a bool mask of shape ({num_workers},) or a 1-D "
            f"integer index array, got dtype {arr.dtype} and shape {arr.shape}"
        )
    if arr.size and (arr.min() < 0 or arr.max() >= num_workers):
        raise ValueError(f"finished indices must lie in [0, {num_workers - 1}], got {arr.tolist()}")
    if np.unique(arr).size != arr.size:
        raise ValueError(f"finished indices must be distinct, got {arr.tolist()}")
    mask = np.zeros(num_workers, dtype=bool)
    mask[arr] = True
    return mask


def _check_jax_mask(finished_mask, num_workers: int, name: str = "finished_mask"):
    mask = jnp.asarray(finished_mask)
    if mask.shape != (num_workers,):
        raise ValueError(
            f"{name} must have shape ({num_workers},) (one entry per worker), "
            f"got shape {mask.shape}"
        )
    return mask if mask.dtype == bool else mask != 0


def _check_table_size(num_workers: int, stragglers: int, max_entries) -> int:
    count = math.comb(num_workers, stragglers)
    if max_entries is not None and count * num_workers > max_entries:
        raise ValueError(
            f"stragglers = {stragglers} with num_workers = {num_workers} gives "
            f"C({num_workers}, {stragglers}) = {count} straggler sets, more than "
            f"max_entries = {max_entries} table entries allow; decode per set with "
            f"decoding_weights / decoding_weights_jax instead"
        )
    return count


# ---------------------------------------------------------------------------
# placements


def identity(num_workers) -> np.ndarray:
    """B = I: worker m holds partition m only (plain distributed GD, no redundancy).

    >>> identity(3)
    array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 1.]])
    """
    return np.eye(_check_num_workers(num_workers))


def _haar_trig(x: np.ndarray, dim: int, period: int) -> np.ndarray:
    """(len(x), dim) real trigonometric Chebyshev system on the circle R/period·Z.

    Odd dim = 2t+1: 1, cos(2πjx/N), sin(2πjx/N) for j ≤ t (periodic).
    Even dim = 2t: cos((2j−1)πx/N), sin((2j−1)πx/N) for j ≤ t (antiperiodic).
    Any ``dim`` rows at distinct nodes in [0, N) are linearly independent (a
    nonzero combination has at most dim−1 zeros per (anti)period).
    """
    x = np.asarray(x, dtype=np.float64)
    cols = []
    if dim % 2:
        cols.append(np.ones_like(x))
        for j in range(1, (dim - 1) // 2 + 1):
            cols += [np.cos(2 * np.pi * j * x / period), np.sin(2 * np.pi * j * x / period)]
    else:
        for j in range(1, dim // 2 + 1):
            cols += [
                np.cos((2 * j - 1) * np.pi * x / period),
                np.sin((2 * j - 1) * np.pi * x / period),
            ]
    return np.stack(cols, axis=-1)


def cyclic_repetition(num_workers, stragglers) -> np.ndarray:
    """Cyclic gradient code: worker m stores partitions m, …, m+S (mod M); any M−S decode.

    Why: with a cyclic support the decoding vector of each straggler set is
    unique, so B alone fixes how much decoding amplifies rounding errors, and
    Tandon et al.'s random B amplifies exponentially in M (cond(B_F) ~ 1e8 at
    M = 50). This is the real BCH-type code of Raviv, Tamo, Tandon & Dimakis
    ("Gradient coding from cyclic MDS codes and expander graphs", ICML 2018;
    IEEE Trans. Inf. Theory 2020), extended to every (M, S):

    * the left null space {v : v·B = 0} is spanned by the columns of
      K[m] = (−1)^m T(m), T the real trigonometric Chebyshev system of
      dimension S on the cycle of length M (``_haar_trig``); any S rows of K
      are independent, which is exactly "any M−S workers decode";
    * column p of B (workers p−S … p) is the vector orthogonal to those S+1
      rows of K — in closed form b_i = (−1)^{w_i} / Π_{l≠i} sin(π(w_i − w_l)/M) —
      scaled so that a0·B = 1, a0 being the no-straggler decoding weights;
    * M − S odd: a0 = 1 and B is circulant, the real cyclic MDS code whose
      generator polynomial vanishes at the S consecutive M-th roots of unity
      nearest −1 (Raviv et al.); B·1 = Bᵀ·1 = 1;
    * M − S even, where no real cyclic MDS code exists: the same formula, so
      only the S columns whose window wraps past worker M−1 are not circulant.
      For odd S a window symmetric about the wrap would give a0·b = 0 with
      a0 = 1, so a0[0] = 0 there (our extension; decodability is checked
      exhaustively for all M ≤ 12 in the tests).

    Decoding is interpolation, a = a0 − K K_𝒮⁻¹ a0_𝒮 for straggler set 𝒮, and
    the worst case is S adjacent stragglers with max|a| ≈ c_S·M^(S−1)
    (polynomial, not exponential): 2 for S = 1, 8.6 at (12, 2), 82 at (20, 3),
    505 at (50, 3), while max|B| ≲ 1. Optimising all free coefficients of K and
    a0 numerically against the worst set improved a smooth worst-case error
    proxy by ~20 % at (12, 2) and not at all at (20, 3), so the closed form is
    kept. Support entries are all nonzero; B is exact to rounding, built in
    O(M·S²) (< 10 ms for M ≤ 50) and deterministic. S = 0 gives the identity,
    S = M−1 gives ones/M.

    Caveat, large S: worst-case weights grow to ~4e4 at (50, 5) and ~3e11 at
    (50, 25) (adjacent stragglers); there float64 decoding keeps ~1e-5
    relative accuracy and float32 coding is useless (the random construction
    is worse still). Not exhaustively verified beyond M = 12 or C(M,S) ~ 1e4.

    >>> B = cyclic_repetition(5, 2)
    >>> (B != 0).astype(int)
    array([[1, 1, 1, 0, 0],
           [0, 1, 1, 1, 0],
           [0, 0, 1, 1, 1],
           [1, 0, 0, 1, 1],
           [1, 1, 0, 0, 1]])
    >>> bool(np.allclose(decoding_weights(B, [0, 1, 4]) @ B, 1.0))
    True
    """
    M = _check_num_workers(num_workers)
    S = _check_stragglers(stragglers, M)
    if S == 0:
        return np.eye(M)
    workers = np.arange(M)
    a0 = np.ones(M)  # decoding weights when nobody straggles
    if (M - S) % 2 == 0 and S % 2 == 1:
        a0[0] = 0.0  # odd S: the sign slip at the wrap needs a weightless node
    windows = (workers[:, None] + np.arange(-S, 1)) % M  # (P, S+1): workers holding p
    # Closed form of the vector orthogonal to K[window] (a trigonometric divided
    # difference): b_i = (−1)^{w_i} / Π_{l≠i} sin(π (w_i − w_l) / M). It follows
    # from span K = span{exp(2πi m q / M): q = M/2 − (S−1)/2 + k, k < S} and is
    # accurate to rounding (an SVD null vector loses ~1e-6 at M = 50, S = 25).
    sines = np.sin(np.pi * (windows[:, :, None] - windows[:, None, :]) / M)
    diag = np.arange(S + 1)
    sines[:, diag, diag] = 1.0
    b = np.where(windows % 2 == 0, 1.0, -1.0) / np.prod(sines, axis=2)
    columns = b / np.einsum("pw,pw->p", b, a0[windows])[:, None]
    B = np.zeros((M, M))
    B[windows, workers[:, None]] = columns
    return B


def fractional_repetition(num_workers, stragglers) -> np.ndarray:
    """Grouping: G = M/(S+1) groups of S+1 consecutive workers, each storing the same S+1 partitions.

    Group j = workers j(S+1) … j(S+1)+S stores partitions j(S+1) … j(S+1)+S and
    every member sends their plain sum (0/1 entries), so one reply per group
    decodes with weight 1 (Tandon et al. 2017, fractional repetition scheme).
    Needs (S+1) | M.

    >>> fractional_repetition(4, 1)
    array([[1., 1., 0., 0.],
           [1., 1., 0., 0.],
           [0., 0., 1., 1.],
           [0., 0., 1., 1.]])
    """
    M, S = _check_groups(num_workers, stragglers)
    groups = np.arange(M) // (S + 1)
    return (groups[:, None] == groups[None, :]).astype(np.float64)


def group_ids(num_workers, stragglers) -> np.ndarray:
    """Group of each worker under fractional repetition: m // (S+1), int array (M,).

    >>> group_ids(6, 2)
    array([0, 0, 0, 1, 1, 1])
    """
    M, S = _check_groups(num_workers, stragglers)
    return np.arange(M) // (S + 1)


def tandon_cyclic(num_workers, stragglers, seed) -> np.ndarray:
    """The original random cyclic code of Tandon et al. (ICML 2017), for comparison.

    H is an S×M Gaussian matrix whose last column makes H·1 = 0 (drawn with
    ``np.random.RandomState(seed)``, not the global state); row i of B is
    supported on i … i+S (mod M) with B[i, i] = 1 and lies in null(H). This is
    the authors' ``getB``: ``tandon_cyclic(5, 1, 0)`` reproduces their B for
    ``np.random.seed(0)``. Badly conditioned for large M (see
    :func:`cyclic_repetition`).

    >>> B = tandon_cyclic(5, 1, seed=0)
    >>> float(B[0, 0]), round(float(B[0, 1]), 4)
    (1.0, -4.4084)
    """
    M = _check_num_workers(num_workers)
    S = _check_stragglers(stragglers, M)
    if isinstance(seed, bool) or not isinstance(seed, Integral) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32 - 1], got {seed!r}")
    if S == 0:
        return np.eye(M)
    rng = np.random.RandomState(int(seed))
    h = rng.normal(0.0, 1.0, [S, M - 1])
    H = np.hstack([h, -h.sum(axis=1, keepdims=True)])
    B = np.zeros((M, M))
    for i in range(M):
        support = (i + np.arange(S + 1)) % M
        B[i, support[0]] = 1.0
        B[i, support[1:]] = -np.linalg.solve(H[:, support[1:]], H[:, support[0]])
    return B


def cyclic_support(num_workers, stragglers) -> np.ndarray:
    """The support of cyclic repetition with every coefficient 1: worker m sums partitions
    m … m+S (mod M). Stochastic gradient coding's B (MODEL.md §10): each partition is held
    by S+1 workers, so Σ_m g_m = (S+1)·∇f.

    >>> cyclic_support(4, 1)
    array([[1., 1., 0., 0.],
           [0., 1., 1., 0.],
           [0., 0., 1., 1.],
           [1., 0., 0., 1.]])
    """
    M = _check_num_workers(num_workers)
    S = _check_stragglers(stragglers, M)
    B = np.zeros((M, M))
    rows = np.arange(M)
    for offset in range(S + 1):
        B[rows, (rows + offset) % M] = 1.0
    return B


def random_regular_graph(num_workers, degree, seed=0) -> np.ndarray:
    """Adjacency matrix (M, M) of a random ``degree``-regular simple graph on M nodes, seeded.

    B = A/s is the approximate gradient code of Raviv, Tamo, Tandon & Dimakis and of
    Charles, Papailiopoulos & Ellenberg (MODEL.md §10): worker m stores the partitions of its
    s neighbours. Our own construction, so that a seed gives the same graph on every
    machine with no optional dependency: a circulant s-regular graph (node m joined to
    m ± 1 … m ± ⌊s/2⌋, and to m + M/2 when s is odd), randomised by 20·(edges) + 100
    proposed double-edge swaps ({a, b}, {c, d} → {a, d}, {c, b}, refused when they would
    make a loop or a double edge). The swaps keep every degree; their chain is symmetric
    and connects all s-regular graphs on M nodes, so it tends to the uniform law over them.
    Needs 1 ≤ s ≤ M − 1 and M·s even (otherwise no s-regular graph exists).

    >>> A = random_regular_graph(8, 3, seed=1)
    >>> A.sum(axis=0).tolist() == [3.0] * 8, bool((A == A.T).all()), float(np.trace(A))
    (True, True, 0.0)
    """
    M = _check_num_workers(num_workers)
    if isinstance(degree, bool) or not isinstance(degree, Integral) or not 1 <= degree <= M - 1:
        raise ValueError(
            f"degree must be an integer in [1, num_workers - 1 = {M - 1}], got {degree!r}"
        )
    s = int(degree)
    if (M * s) % 2:
        raise ValueError(
            f"degree: no {s}-regular graph on {M} nodes exists (num_workers · "
            f"degree = {M * s} is odd); choose an even degree or an even number "
            "of workers"
        )
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    A = np.zeros((M, M), dtype=bool)
    nodes = np.arange(M)
    for offset in range(1, s // 2 + 1):
        A[nodes, (nodes + offset) % M] = A[(nodes + offset) % M, nodes] = True
    if s % 2:
        A[nodes, (nodes + M // 2) % M] = True
    edges = [tuple(edge) for edge in np.argwhere(np.triu(A))]
    rng = np.random.default_rng(int(seed))
    for _ in range(20 * len(edges) + 100):
        i, j = rng.integers(len(edges), size=2)
        (a, b), (c, d) = edges[i], edges[j]
        if rng.random() < 0.5:
            c, d = d, c
        if i == j or a == d or c == b or A[a, d] or A[c, b]:
            continue
        A[a, b] = A[b, a] = A[c, d] = A[d, c] = False
        A[a, d] = A[d, a] = A[c, b] = A[b, c] = True
        edges[i], edges[j] = (a, d), (c, b)
    return A.astype(np.float64)


# ---------------------------------------------------------------------------
# numpy decoding


def _solve_sets(B: np.ndarray, finished_idx: np.ndarray):
    """Min-norm a_F with a_F·B_F ≈ 1 for each row of finished_idx (T, K).

    Returns (a_F (T, K), singular values (T, r), kept mask (T, r)); the SVD
    cutoff is numpy lstsq's default (max(K, P)·eps·σ_max).
    """
    BF = B[finished_idx]  # (T, K, P)
    u, sv, vt = np.linalg.svd(BF, full_matrices=False)
    cutoff = max(BF.shape[1], BF.shape[2]) * _EPS * sv[:, :1]
    keep = sv > cutoff
    inv = np.where(keep, 1.0 / np.where(keep, sv, 1.0), 0.0)
    a_F = np.einsum("tkr,tr->tk", u, vt.sum(axis=2) * inv)
    return a_F, sv, keep


def _decode_check(B, A):
    """(residual max|a·B − 1|, tolerance) per row of A (T, M).

    A set that cannot decode misses the all-ones vector by O(1); a decodable one
    leaves a rounding residual ~ eps·cond(B_F) or ~ eps·Σ|a||B|. The tolerance is
    the fixed :data:`DECODING_TOLERANCE`: it does not grow with |a|, so huge
    weights cannot hide a wrong decoding.
    """
    residual = np.abs(A @ B - 1.0).max(axis=1)
    return residual, np.full_like(residual, DECODING_TOLERANCE)


def _rounding_level(B, A):
    """Residual a float64 solve leaves by rounding alone, ~ eps·max_p Σ_m |a_m B_mp|."""
    return 1e3 * _EPS * (np.abs(A) @ np.abs(B)).max(axis=1)


def decoding_weights(B, finished) -> np.ndarray:
    """Decoding vector a (M,) with a·B = 1 and a = 0 outside ``finished`` (float64 least squares).

    ``finished`` is a bool mask (M,) or an array of worker indices. Returns the
    minimum-norm solution (for cyclic codes the only one; for fractional
    repetition the weight is spread over a group's survivors). Raises
    ``ValueError`` when the residual shows the finished set cannot decode.

    >>> B = fractional_repetition(4, 1)
    >>> decoding_weights(B, [0, 1, 2])
    array([0.5, 0.5, 1. , 0. ])
    """
    B = _check_matrix(B)
    M = B.shape[0]
    mask = _finished_mask(finished, M)
    rows = np.flatnonzero(mask)
    a = np.zeros(M)
    if rows.size == 0:
        raise ValueError("finished is empty: no worker finished, nothing can be decoded")
    a_F, _, _ = _solve_sets(B, rows[None, :])
    a[rows] = a_F[0]
    residual, tol = _decode_check(B, a[None, :])
    if not residual[0] <= tol[0]:
        raise ValueError(
            f"finished = {rows.tolist()} cannot decode: the least-squares weights leave "
            f"max|a·B − 1| = {residual[0]:.3g} (> tolerance {tol[0]:.3g})"
        )
    return a


def _straggler_sets_colex(num_workers: int, stragglers: int) -> np.ndarray:
    """(C(M,S), S) sorted straggler sets; row r has colex rank r."""
    count = math.comb(num_workers, stragglers)
    if stragglers == 0:
        return np.zeros((1, 0), dtype=np.int64)
    sets = np.fromiter(
        itertools.chain.from_iterable(itertools.combinations(range(num_workers), stragglers)),
        dtype=np.int64,
        count=count * stragglers,
    ).reshape(count, stragglers)
    binom = np.array(
        [[math.comb(m, k) for k in range(stragglers + 1)] for m in range(num_workers)],
        dtype=np.int64,
    )
    ranks = binom[sets, np.arange(1, stragglers + 1)].sum(axis=1)
    out = np.empty_like(sets)
    out[ranks] = sets
    return out


def _finished_sets(num_workers: int, straggler_sets: np.ndarray) -> np.ndarray:
    """(T, M−S) sorted complements of the straggler sets."""
    T = straggler_sets.shape[0]
    mask = np.ones((T, num_workers), dtype=bool)
    mask[np.arange(T)[:, None], straggler_sets] = False
    return np.nonzero(mask)[1].reshape(T, -1)


def _null_space_decoder(B: np.ndarray, stragglers: int):
    """(a0, K) when the left null space {v : v·B = 0} has dimension exactly S, else None.

    Then every decodable straggler set 𝒮 has the unique weights
    a = a0 − K K_𝒮⁻¹ a0_𝒮 (a0: min-norm solution of a·B = 1), an S×S solve
    instead of an SVD of B_F — what makes whole tables cheap.
    """
    u, sv, vt = np.linalg.svd(B)
    rank = int((sv > max(B.shape) * _EPS * sv[0]).sum())
    if B.shape[0] - rank != stragglers:
        return None
    a0 = (u[:, :rank] / sv[:rank]) @ vt[:rank].sum(axis=1)
    return a0, u[:, rank:]


def _all_sets(B: np.ndarray, stragglers: int, max_entries, sets=None):
    """Yield (straggler_sets, finished_sets, A (T, M), residual, tol) in chunks, over
    every straggler set in colex order or over the rows of ``sets`` (T, S) when given.

    A row is the min-norm decoding vector of its set (zero on the stragglers):
    from the null-space formula when it applies, from an SVD of B_F otherwise
    or when the formula's residual is not at rounding level.
    """
    M = B.shape[0]
    if sets is None:
        _check_table_size(M, stragglers, max_entries)
        sets = _straggler_sets_colex(M, stragglers)
    fast = _null_space_decoder(B, stragglers)
    # a small first chunk, so that a code that cannot decode fails fast
    starts = [0, *range(64, sets.shape[0], _CHUNK)] if sets.shape[0] > 64 else [0]
    for start, stop in zip(starts, [*starts[1:], sets.shape[0]]):
        chunk = sets[start:stop]
        fin = _finished_sets(M, chunk)
        rows = np.arange(len(chunk))[:, None]
        A = None
        if fast is not None:
            a0, K = fast
            try:
                coeffs = (
                    np.linalg.solve(K[chunk], a0[chunk][..., None])[..., 0]
                    if stragglers
                    else np.zeros((len(chunk), 0))
                )
            except np.linalg.LinAlgError:
                coeffs = None
            if coeffs is not None:
                A = a0[None, :] - coeffs @ K.T
                A[rows, chunk] = 0.0
        redo = np.ones(len(chunk), dtype=bool)
        if A is not None:
            residual = np.abs(A @ B - 1.0).max(axis=1)
            redo = ~(residual <= 1e-3 * (1e-6 + _rounding_level(B, A)))
        else:
            A = np.zeros((len(chunk), M))
        if redo.any():
            a_F, _, _ = _solve_sets(B, fin[redo])
            A[np.flatnonzero(redo)[:, None], fin[redo]] = a_F
        residual, tol = _decode_check(B, A)
        yield chunk, fin, A, residual, tol


def _require_decodable(sets, residual, tol, what: str) -> None:
    """Raise ValueError naming the first straggler set whose residual exceeds its tolerance."""
    bad = np.flatnonzero(~(residual <= tol))
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"{what}: straggler set {sets[i].tolist()} leaves max|a·B − 1| = "
            f"{residual[i]:.3g} (> {tol[i]:.3g})"
        )


def decoding_table(B, stragglers, *, max_entries=_MAX_TABLE_ENTRIES) -> np.ndarray:
    """Decoding weights for every straggler set of size S: float64 array (C(M,S), M).

    Row r holds :func:`decoding_weights` for the straggler set of colex rank r
    (rank = Σ_i C(s_i, i+1) for sorted stragglers s_0 < s_1 < …), the index
    :func:`straggler_rank` computes inside jit, so the simulator's hot loop
    decodes with one gather. Raises ``ValueError`` if some set cannot decode
    or if the table would exceed ``max_entries`` entries.

    >>> T = decoding_table(cyclic_repetition(4, 1), 1)
    >>> T.shape, bool(np.allclose(T @ cyclic_repetition(4, 1), 1.0))
    ((4, 4), True)
    """
    B = _check_matrix(B)
    M = B.shape[0]
    S = _check_stragglers(stragglers, M)
    table = np.zeros((_check_table_size(M, S, max_entries), M))
    row = 0
    for chunk, _, A, residual, tol in _all_sets(B, S, max_entries):
        _require_decodable(chunk, residual, tol, f"B cannot decode every set of stragglers = {S}")
        table[row : row + len(chunk)] = A
        row += len(chunk)
    return table


def least_squares_table(B, stragglers, *, max_entries=_MAX_TABLE_ENTRIES) -> np.ndarray:
    """The optimal approximate decoder: float64 array (C(M,S), M) whose row r is the
    minimum-norm a_F = argmin_a ‖B_Fᵀ a − 1‖₂ (zero on the stragglers) for the straggler set
    of colex rank r (MODEL.md §10), whether or not that set decodes.

    Where every set decodes it equals :func:`decoding_table` (the same solves). Raises
    ``ValueError`` only if the table would exceed ``max_entries`` entries.

    >>> B = random_regular_graph(6, 2, seed=0) / 2      # load 2, approximate
    >>> T = least_squares_table(B, 1)
    >>> T.shape, np.abs(T @ B - 1).max(axis=1).round(3).tolist()  # no set decodes exactly
    ((6, 6), [0.333, 0.333, 0.333, 0.333, 0.333, 0.333])
    >>> bool(np.allclose(least_squares_table(cyclic_repetition(5, 2), 2),
    ...                  decoding_table(cyclic_repetition(5, 2), 2)))
    True
    """
    B = _check_matrix(B)
    M = B.shape[0]
    S = _check_stragglers(stragglers, M)
    table = np.zeros((_check_table_size(M, S, max_entries), M))
    row = 0
    for chunk, _, A, _, _ in _all_sets(B, S, max_entries):
        table[row : row + len(chunk)] = A
        row += len(chunk)
    return table


def decoding_stats(B, stragglers, *, seed=0, dim=50, max_entries=_MAX_TABLE_ENTRIES) -> dict:
    """Worst case over all C(M,S) straggler sets of how well B decodes (exhaustive, vectorised).

    Returns a dict with
      ``max_abs_weight``     worst max_m |a_F,m|;
      ``max_condition``      worst cond(B_F) (largest / smallest nonzero singular
                             value, i.e. the ordinary 2-norm condition number when
                             B_F has full row rank, as for cyclic codes);
      ``max_float32_error``  worst ‖â_F·(B_F G) − Σ_p G_p‖ / ‖Σ_p G_p‖ when the
                             coded gradients B G and the decoding are computed in
                             float32, for a Gaussian G (P, dim) drawn with ``seed``
                             (G is float32-exact, so only coding error counts);
      ``num_sets``           C(M, S).

    >>> st = decoding_stats(cyclic_repetition(6, 1), 1)
    >>> st["num_sets"], round(st["max_abs_weight"], 6)
    (6, 2.0)
    """
    B = _check_matrix(B)
    M, P = B.shape
    S = _check_stragglers(stragglers, M)
    if isinstance(dim, bool) or not isinstance(dim, Integral) or dim < 1:
        raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    G = np.random.default_rng(seed).standard_normal((P, dim)).astype(np.float32)
    coded = B.astype(np.float32) @ G  # float32 worker messages (M, dim)
    truth = G.astype(np.float64).sum(axis=0)
    norm = np.linalg.norm(truth)
    worst_a = worst_cond = worst_err = 0.0
    count = 0
    for chunk, fin, A, residual, tol in _all_sets(B, S, max_entries):
        if not np.all(residual <= tol):
            i = np.flatnonzero(~(residual <= tol))[0]
            raise ValueError(
                f"B cannot decode every set of stragglers = {S}: straggler set "
                f"{chunk[i].tolist()} leaves max|a·B − 1| = {residual[i]:.3g}"
            )
        worst_a = max(worst_a, float(np.abs(A).max()))
        sv = np.linalg.svd(B[fin], compute_uv=False)
        nonzero = sv > max(fin.shape[1], P) * _EPS * sv[:, :1]
        smallest = np.where(nonzero, sv, np.inf).min(axis=1)
        worst_cond = max(worst_cond, float((sv[:, 0] / smallest).max()))
        decoded = A.astype(np.float32) @ coded  # float32 decoding (T, dim)
        err = np.linalg.norm(decoded.astype(np.float64) - truth, axis=1) / norm
        worst_err = max(worst_err, float(err.max()))
        count += len(chunk)
    return {
        "max_abs_weight": worst_a,
        "max_condition": worst_cond,
        "max_float32_error": worst_err,
        "num_sets": count,
    }


def _sample_straggler_sets(num_workers: int, stragglers: int, count: int, seed) -> np.ndarray:
    """(count, S) sorted straggler sets: uniform random ones plus every window of S
    adjacent workers (the worst case of cyclic codes)."""
    rng = np.random.default_rng(seed)
    random_sets = np.sort(
        np.argsort(rng.random((count, num_workers)), axis=1)[:, :stragglers], axis=1
    )
    windows = np.sort(
        (np.arange(num_workers)[:, None] + np.arange(stragglers)) % num_workers, axis=1
    )
    return np.unique(np.concatenate([windows, random_sets]), axis=0)


def _checked_sets(B, S, samples, seed):
    """(straggler sets or None for all, exhaustive?) under the work cap."""
    M = B.shape[0]
    if isinstance(samples, bool) or not isinstance(samples, Integral) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if math.comb(M, S) * M <= _MAX_EXHAUSTIVE_WORK:
        return None, True
    return _sample_straggler_sets(M, S, int(samples), int(seed)), False


def check_decodable(encoding, stragglers, *, samples: int = 20_000, seed: int = 0) -> dict:
    """Check that every set of M − S finished workers decodes ``encoding`` (M, P).

    Exhaustive (vectorised) when C(M, S)·M ≤ 2·10⁶; otherwise every window of S
    adjacent workers plus ``samples`` uniformly random straggler sets (seeded) —
    then sets not checked here are left to the run-time check, which measures the
    decoding residual inside the compiled step. A set decodes when its float64
    decoding weights leave max|a·B − 1| ≤ :data:`DECODING_TOLERANCE`.

    Raises ``ValueError`` naming the first straggler set that cannot decode.
    Returns a dict: ``exhaustive``, ``sets_checked``, ``num_sets`` (C(M, S)),
    ``max_residual``, ``max_abs_weight`` and ``note`` (what was and was not checked).

    >>> check_decodable(cyclic_repetition(6, 2), 2)["exhaustive"]
    True
    >>> check_decodable(np.eye(4), 1)
    Traceback (most recent call last):
    ...
    ValueError: encoding cannot decode with stragglers = 1: straggler set [0] leaves max|a·B − 1| = 1 (> 1e-08)
    """
    B = _check_matrix(encoding, "encoding")
    M = B.shape[0]
    S = _check_stragglers(stragglers, M)
    sets, exhaustive = _checked_sets(B, S, samples, seed)
    checked, worst_residual, worst_a = 0, 0.0, 0.0
    for chunk, _, A, residual, tol in _all_sets(B, S, None, sets):
        _require_decodable(chunk, residual, tol, f"encoding cannot decode with stragglers = {S}")
        checked += len(chunk)
        worst_residual = max(worst_residual, float(residual.max()))
        worst_a = max(worst_a, float(np.abs(A).max()))
    total = math.comb(M, S)
    if exhaustive:
        note = f"all {total} straggler sets decode"
    else:
        note = (
            f"{checked} of {total} straggler sets checked (every adjacent window and a "
            f"random sample): all decode; the others are checked at run time, where the "
            f"decoding residual is measured in every step"
        )
    return {
        "exhaustive": exhaustive,
        "sets_checked": checked,
        "num_sets": total,
        "max_residual": worst_residual,
        "max_abs_weight": worst_a,
        "note": note,
    }


def float32_decoding_check(
    encoding, stragglers, *, tol: float = 1e-3, samples: int = 20_000, seed: int = 0
) -> dict:
    """Whether float32 can represent ``encoding``'s decoding.

    Decoding multiplies the workers' messages by weights a; in float32 each message
    carries a relative rounding error ~ ε₃₂ ≈ 1.2e-7, which the decoding amplifies
    to ~ max|a|·ε₃₂ relative to the gradient. The check passes when that bound,
    over every straggler set (or the sets :func:`check_decodable` samples), is at
    most ``tol``. Returns a dict: ``ok``, ``max_abs_weight``, ``error_bound``,
    ``exhaustive`` and ``reason`` (a sentence to show a user before a float32 run).

    >>> float32_decoding_check(cyclic_repetition(12, 2), 2)["ok"]
    True
    >>> float32_decoding_check(cyclic_repetition(30, 10), 10)["ok"]
    False
    """
    B = _check_matrix(encoding, "encoding")
    M = B.shape[0]
    S = _check_stragglers(stragglers, M)
    try:
        tol = float(tol)
    except (TypeError, ValueError):
        tol = math.nan
    if not 0 < tol < 1:
        raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")
    sets, exhaustive = _checked_sets(B, S, samples, seed)
    worst_a = max(float(np.abs(A).max()) for _, _, A, _, _ in _all_sets(B, S, None, sets))
    bound = worst_a * _EPS32
    ok = bound <= tol
    reason = (
        f"decoding weights up to max|a| = {worst_a:.3g} amplify float32 rounding "
        f"(eps = {_EPS32:.2g}) to a relative gradient error of ~{bound:.2g}, "
        + (
            f"within tol = {tol:g}"
            if ok
            else f"above tol = {tol:g}: float32 cannot represent this code's decoding; "
            "simulate in float64 (jax_enable_x64) or use fewer stragglers"
        )
    )
    return {
        "ok": ok,
        "max_abs_weight": worst_a,
        "error_bound": bound,
        "exhaustive": exhaustive,
        "reason": reason,
    }


# ---------------------------------------------------------------------------
# jax decoding


def decoding_weights_jax(B, finished_mask) -> jnp.ndarray:
    """Jittable, vmappable decoding vector: pinv solve of a·B_F = 1, zero outside the mask.

    ``finished_mask`` is a bool (or 0/1) array (M,). Returns the minimum-norm
    least-squares weights in B's floating dtype. It cannot raise inside jit:
    for an undecodable set it silently returns the least-squares fit, so check
    sets with :func:`decoding_weights` beforehand. For a fixed number S of
    stragglers the table lookup (:func:`lookup_decoding_weights`) is much faster.

    >>> B = cyclic_repetition(4, 1)
    >>> a = jax.jit(decoding_weights_jax)(B, jnp.array([True, True, False, True]))
    >>> bool(jnp.allclose(a @ B, 1.0, atol=1e-5)), float(a[2])
    (True, 0.0)
    """
    B = jnp.asarray(B)
    if B.ndim != 2:
        raise ValueError(f"B must be a 2-D array of shape (M, P), got shape {B.shape}")
    if not jnp.issubdtype(B.dtype, jnp.floating):
        B = B.astype(jnp.result_type(float))
    mask = _check_jax_mask(finished_mask, B.shape[0])
    masked = jnp.where(mask[:, None], B, jnp.zeros((), B.dtype))
    a = jnp.linalg.pinv(masked.T) @ jnp.ones(B.shape[1], B.dtype)
    return jnp.where(mask, a, jnp.zeros((), B.dtype))


def straggler_rank(finished_mask, stragglers) -> jnp.ndarray:
    """Colex rank of the set of workers NOT finished (jittable, vmappable; int scalar).

    For sorted stragglers s_0 < … < s_{S−1}, rank = Σ_i C(s_i, i+1) — the row
    of :func:`decoding_table` for that set. Returns −1 when the mask does not
    have exactly S stragglers.

    >>> int(straggler_rank(jnp.array([True, False, True, False]), 2))  # {1, 3}
    4
    """
    mask = jnp.asarray(finished_mask)
    if mask.ndim != 1:
        raise ValueError(
            f"finished_mask must be 1-D (one entry per worker), got shape {mask.shape}"
        )
    M = int(mask.shape[0])
    _check_num_workers(M)
    S = _check_stragglers(stragglers, M)
    mask = _check_jax_mask(mask, M)
    total = math.comb(M, S)
    if total > np.iinfo(np.int32).max and not jax.config.jax_enable_x64:
        raise ValueError(
            f"C(num_workers = {M}, stragglers = {S}) = {total} does not fit int32; "
            "enable jax_enable_x64"
        )
    itype = np.int32 if total <= np.iinfo(np.int32).max else np.int64
    binom = np.array([[math.comb(m, k) for k in range(S + 1)] for m in range(M)], dtype=itype)
    late = ~mask
    position = jnp.cumsum(late.astype(itype))  # 1-based rank among stragglers
    terms = jnp.asarray(binom)[jnp.arange(M), jnp.clip(position, 0, S)]
    rank = jnp.sum(jnp.where(late, terms, 0).astype(itype))
    return jnp.where(position[-1] == S, rank, jnp.asarray(-1, itype))


def lookup_decoding_weights(table, finished_mask, stragglers) -> jnp.ndarray:
    """Decoding weights from a :func:`decoding_table`: ``table[straggler_rank(mask, S)]``.

    Jittable and vmappable; the result has the table's dtype (convert the table
    once with ``jnp.asarray(table, dtype)``). Returns NaNs when the mask does
    not have exactly S stragglers.

    >>> B = cyclic_repetition(5, 2)
    >>> mask = jnp.array([True, False, True, True, False])
    >>> a = lookup_decoding_weights(decoding_table(B, 2), mask, 2)
    >>> bool(np.allclose(a, decoding_weights(B, np.asarray(mask))))
    True
    """
    table = jnp.asarray(table)
    if table.ndim != 2:
        raise ValueError(f"table must be 2-D (C(M, S), M), got shape {table.shape}")
    M = int(table.shape[1])
    _check_num_workers(M)
    S = _check_stragglers(stragglers, M)
    if table.shape[0] != math.comb(M, S):
        raise ValueError(
            f"table must have C({M}, {S}) = {math.comb(M, S)} rows for "
            f"stragglers = {S}, got {table.shape[0]}"
        )
    rank = straggler_rank(_check_jax_mask(finished_mask, M), S)
    row = table[jnp.maximum(rank, 0)]
    return jnp.where(rank >= 0, row, jnp.full_like(row, jnp.nan))
