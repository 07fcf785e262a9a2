"""Tests for lagc_jax.coding: placements, decoders, conformance with the GC authors' outputs."""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lagc_jax import coding
from lagc_jax.coding import (
    cyclic_repetition,
    decoding_stats,
    decoding_table,
    decoding_weights,
    decoding_weights_jax,
    fractional_repetition,
    group_ids,
    identity,
    lookup_decoding_weights,
    straggler_rank,
    tandon_cyclic,
)

GC_REFERENCE = Path(__file__).parent / "data" / "reference" / "gradient_coding"


def _fixture(name):
    return np.load(GC_REFERENCE / f"{name}.npz")


def _cyclic_support(M, S):
    support = np.zeros((M, M), dtype=bool)
    for m in range(M):
        support[m, (m + np.arange(S + 1)) % M] = True
    return support


def _colex_sets(M, S):
    """Straggler sets in colex order, by brute force (independent of the module)."""
    sets = list(itertools.combinations(range(M), S))
    return sorted(sets, key=lambda s: tuple(reversed(s)))


def _masks(M, sets):
    masks = np.ones((len(sets), M), dtype=bool)
    for i, s in enumerate(sets):
        masks[i, list(s)] = False
    return masks


ALL_SMALL = [(M, S) for M in range(1, 13) for S in range(M)]


# ---------------------------------------------------------------------------
# placements: structure


def test_identity_and_s0_are_identity():
    np.testing.assert_array_equal(identity(5), np.eye(5))
    for M in range(1, 13):
        np.testing.assert_array_equal(cyclic_repetition(M, 0), np.eye(M))
        np.testing.assert_array_equal(fractional_repetition(M, 0), np.eye(M))
        np.testing.assert_array_equal(tandon_cyclic(M, 0, 0), np.eye(M))


@pytest.mark.parametrize("M", range(1, 51))
def test_cyclic_support_exact_and_fast(M):
    for S in range(M):
        start = time.perf_counter()
        B = cyclic_repetition(M, S)
        assert time.perf_counter() - start < 1.0
        assert B.shape == (M, M) and B.dtype == np.float64
        np.testing.assert_array_equal(B != 0, _cyclic_support(M, S))
        # nonzero "for real": no support entry is a rounding residue
        assert np.abs(B[B != 0]).min() > 1e-9 * np.abs(B).max()
        assert np.all(np.isfinite(B)) and np.abs(B).max() < 1.01


def test_cyclic_deterministic_and_no_global_rng():
    np.random.seed(1234)
    state = np.random.get_state()[1].copy()
    first = cyclic_repetition(20, 3)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    np.testing.assert_array_equal(first, cyclic_repetition(20, 3))
    np.random.seed(99)
    np.testing.assert_array_equal(first, cyclic_repetition(20, 3))


@pytest.mark.parametrize("M,S", [(M, S) for M in range(2, 31) for S in range(1, M) if (M - S) % 2])
def test_cyclic_is_raviv_bch_when_m_minus_s_odd(M, S):
    """M − S odd: circulant, generator vanishing at the S M-th roots of unity nearest −1."""
    B = cyclic_repetition(M, S)
    np.testing.assert_allclose(B, np.roll(np.roll(B, 1, axis=0), 1, axis=1), atol=1e-14)
    roots = np.exp(2j * np.pi * (M / 2 + np.arange(S) - (S - 1) / 2) / M)
    g = np.real(np.poly(roots))
    np.testing.assert_allclose(B[0, : S + 1], g / g.sum(), atol=1e-12)
    np.testing.assert_allclose(B.sum(axis=0), 1.0, atol=1e-12)
    np.testing.assert_allclose(B.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("M,S", [(M, S) for (M, S) in ALL_SMALL if S > 0])
def test_cyclic_left_null_space_is_the_trig_system(M, S):
    """K[m] = (−1)^m T(m) spans {v : v·B = 0}; decoding = a0 − K K_S⁻¹ a0_S."""
    B = cyclic_repetition(M, S)
    K = (-1.0) ** np.arange(M)[:, None] * coding._haar_trig(np.arange(M), S, M)
    np.testing.assert_allclose(K.T @ B, 0.0, atol=1e-12)
    assert np.linalg.matrix_rank(B) == M - S
    a0 = np.ones(M)
    if (M - S) % 2 == 0 and S % 2 == 1:
        a0[0] = 0.0
    np.testing.assert_allclose(a0 @ B, 1.0, atol=1e-13)
    # independent closed-form decoder vs the table (every straggler set)
    sets = np.array(_colex_sets(M, S))
    coeffs = np.linalg.solve(K[sets], a0[sets][..., None])[..., 0]
    expected = a0[None] - coeffs @ K.T
    np.testing.assert_allclose(
        decoding_table(B, S), expected, atol=1e-10 * max(1.0, np.abs(expected).max())
    )


def test_fractional_structure_and_groups():
    B = fractional_repetition(6, 2)
    expected = np.zeros((6, 6))
    expected[:3, :3] = 1.0
    expected[3:, 3:] = 1.0
    np.testing.assert_array_equal(B, expected)
    np.testing.assert_array_equal(group_ids(6, 2), [0, 0, 0, 1, 1, 1])
    assert group_ids(6, 2).dtype.kind == "i"
    np.testing.assert_array_equal(fractional_repetition(4, 3), np.ones((4, 4)))
    for M, S in ALL_SMALL:
        if M % (S + 1) == 0:
            ids = group_ids(M, S)
            np.testing.assert_array_equal(ids, np.arange(M) // (S + 1))
            np.testing.assert_array_equal(fractional_repetition(M, S), ids[:, None] == ids[None, :])


@pytest.mark.parametrize(
    "call",
    [
        lambda: identity(0),
        lambda: identity(2.0),
        lambda: cyclic_repetition(0, 0),
        lambda: cyclic_repetition(5, -1),
        lambda: cyclic_repetition(5, 5),
        lambda: cyclic_repetition(5, 1.0),
        lambda: cyclic_repetition(True, 0),
        lambda: tandon_cyclic(5, 1, -1),
        lambda: tandon_cyclic(5, 5, 0),
    ],
)
def test_bad_sizes_raise(call):
    with pytest.raises(ValueError, match="num_workers|stragglers|seed"):
        call()


def test_fractional_divisibility_error_names_rule():
    for call in (fractional_repetition, group_ids):
        with pytest.raises(
            ValueError, match=r"stragglers \+ 1 = 3 does not divide num_workers = 7"
        ):
            call(7, 2)
        with pytest.raises(ValueError, match="stragglers"):
            call(6, 6)


def test_decoder_input_errors():
    B = cyclic_repetition(5, 1)
    with pytest.raises(ValueError, match="B must be a 2-D"):
        decoding_weights(np.ones(5), [0, 1, 2, 3])
    with pytest.raises(ValueError, match="finite"):
        decoding_weights(np.full((3, 3), np.nan), [0, 1])
    with pytest.raises(ValueError, match=r"finished must be a bool mask of shape \(5,\)"):
        decoding_weights(B, np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match=r"finished indices must lie in \[0, 4\]"):
        decoding_weights(B, [0, 5])
    with pytest.raises(ValueError, match="distinct"):
        decoding_weights(B, [0, 0, 1, 2])
    with pytest.raises(ValueError, match="integer index"):
        decoding_weights(B, [0.0, 1.0])
    with pytest.raises(ValueError, match="finished"):
        decoding_weights(B, np.zeros(5, dtype=bool))
    with pytest.raises(ValueError, match="finished_mask must have shape"):
        decoding_weights_jax(B, jnp.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="stragglers must be an integer in"):
        straggler_rank(jnp.ones(5, dtype=bool), 5)
    with pytest.raises(ValueError, match="table must have C"):
        lookup_decoding_weights(np.zeros((4, 5)), jnp.ones(5, dtype=bool), 1)
    with pytest.raises(ValueError, match="finished_mask must have shape"):
        lookup_decoding_weights(decoding_table(B, 1), jnp.ones(6, dtype=bool), 1)
    with pytest.raises(ValueError, match="dim"):
        decoding_stats(B, 1, dim=0)
    with pytest.raises(ValueError, match="max_entries"):
        decoding_table(np.eye(50), 25)


def test_undecodable_sets_raise():
    B = fractional_repetition(6, 1)
    with pytest.raises(ValueError, match=r"finished = \[2, 3, 4, 5\] cannot decode"):
        decoding_weights(B, [2, 3, 4, 5])  # group 0 lost entirely
    with pytest.raises(ValueError, match="cannot decode every set of stragglers = 2"):
        decoding_table(B, 2)
    with pytest.raises(ValueError, match="cannot decode"):
        decoding_table(np.eye(4), 1)


# ---------------------------------------------------------------------------
# exhaustive exact decoding


@pytest.mark.parametrize("M,S", ALL_SMALL)
def test_cyclic_decodes_every_straggler_set(M, S):
    B = cyclic_repetition(M, S)
    table = decoding_table(B, S)
    sets = _colex_sets(M, S)
    masks = _masks(M, sets)
    assert table.shape == (math.comb(M, S), M)
    assert np.all(table[~masks] == 0.0)
    np.testing.assert_allclose(table @ B, 1.0, rtol=0, atol=1e-9)
    # rows agree with the one-set decoder, for masks and index arrays alike
    for r in range(0, len(sets), max(1, len(sets) // 7)):
        np.testing.assert_allclose(
            decoding_weights(B, masks[r]),
            table[r],
            rtol=0,
            atol=1e-12 * max(1.0, np.abs(table[r]).max()),
        )
        np.testing.assert_array_equal(
            decoding_weights(B, np.flatnonzero(masks[r])), decoding_weights(B, masks[r])
        )


@pytest.mark.parametrize("M,S", [(M, S) for (M, S) in ALL_SMALL if M % (S + 1) == 0])
def test_fractional_decodes_every_straggler_set(M, S):
    B = fractional_repetition(M, S)
    table = decoding_table(B, S)
    masks = _masks(M, _colex_sets(M, S))
    assert np.all(table[~masks] == 0.0)
    np.testing.assert_allclose(table @ B, 1.0, rtol=0, atol=1e-12)
    ids = group_ids(M, S)
    for g in range(M // (S + 1)):  # min-norm: each group's weight spread evenly over survivors
        in_group = table[:, ids == g]
        np.testing.assert_allclose(in_group.sum(axis=1), 1.0, atol=1e-12)
        alive = masks[:, ids == g]
        np.testing.assert_allclose(in_group, alive / alive.sum(axis=1, keepdims=True), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 16).flatmap(
        lambda M: st.tuples(st.just(M), st.integers(0, M - 1), st.integers(0, 2**32 - 1))
    )
)
def test_property_any_superset_of_survivors_decodes(args):
    M, S, seed = args
    rng = np.random.default_rng(seed)
    finished = np.sort(rng.choice(M, size=rng.integers(M - S, M + 1), replace=False))
    for B in (cyclic_repetition(M, S), tandon_cyclic(M, S, seed % 1000)):
        a = decoding_weights(B, finished)
        outside = np.setdiff1d(np.arange(M), finished)
        assert np.all(a[outside] == 0.0)
        scale = max(1.0, np.abs(a).max() * np.abs(B).max())
        np.testing.assert_allclose(a @ B, 1.0, rtol=0, atol=1e-9 * scale)
    if M % (S + 1) == 0:  # grouping: decodes iff every group has a survivor
        B = fractional_repetition(M, S)
        mask = np.zeros(M, dtype=bool)
        mask[finished] = True
        groups = group_ids(M, S)
        if all(mask[groups == g].any() for g in range(M // (S + 1))):
            np.testing.assert_allclose(decoding_weights(B, mask) @ B, 1.0, atol=1e-12)
        else:
            with pytest.raises(ValueError, match="cannot decode"):
                decoding_weights(B, mask)


# ---------------------------------------------------------------------------
# conformance with the Gradient Coding authors' outputs


@pytest.mark.parametrize(
    "name,seed", [("cyclic_n5_s1", 0), ("cyclic_n6_s2", 1), ("cyclic_n10_s3", 2)]
)
def test_reference_cyclic_fixtures(name, seed):
    ref = _fixture(name)
    B, sets, A_ref = ref["B"], ref["straggler_sets"], ref["A_ref"]
    M, S = B.shape[0], sets.shape[1]
    tol = 1e-10 * np.abs(A_ref).max()
    for s, a_ref in zip(sets, A_ref):
        finished = np.setdiff1d(np.arange(M), s)
        np.testing.assert_allclose(decoding_weights(B, finished), a_ref, rtol=0, atol=tol)
    # the same vectors through the colex table
    table = decoding_table(B, S)
    ranks = [sum(math.comb(int(x), i + 1) for i, x in enumerate(sorted(s))) for s in sets]
    np.testing.assert_allclose(table[ranks], A_ref, rtol=0, atol=tol)
    # our Tandon construction is theirs, seed for seed
    np.testing.assert_allclose(tandon_cyclic(M, S, seed), B, rtol=0, atol=1e-14)
    stats = decoding_stats(B, S)
    assert stats["num_sets"] == len(sets)
    np.testing.assert_allclose(stats["max_condition"], ref["cond_BF"].max(), rtol=1e-6)


@pytest.mark.parametrize("name", ["frac_n6_s1", "frac_n6_s2", "frac_n10_s1", "frac_n10_s4"])
def test_reference_fractional_fixtures(name):
    ref = _fixture(name)
    B, sets = ref["B"], ref["straggler_sets"]
    M, S = B.shape[0], sets.shape[1]
    np.testing.assert_array_equal(B, fractional_repetition(M, S))
    for s, pick_one, min_norm in zip(sets, ref["A_pick_one"], ref["A_min_norm"]):
        a = decoding_weights(B, np.setdiff1d(np.arange(M), s))
        assert np.all(a[s] == 0.0)
        np.testing.assert_allclose(a @ B, 1.0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(pick_one @ B, 1.0)  # their pick-one decodes too
        np.testing.assert_allclose(a, min_norm, atol=1e-12)  # and min-norm is ours


def test_reference_paper_toy():
    ref = _fixture("paper_toy_n3_s1")
    B, A = ref["B"], ref["A"].astype(float)
    for straggler in range(3):
        a = decoding_weights(B, np.arange(3) != straggler)
        np.testing.assert_allclose(a, A[straggler], rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------
# jax decoders


@pytest.mark.parametrize(
    "B,S",
    [
        (cyclic_repetition(7, 2), 2),
        (cyclic_repetition(8, 3), 3),
        (fractional_repetition(6, 2), 2),
        (tandon_cyclic(6, 1, 3), 1),
    ],
)
def test_jax_decoders_match_numpy_under_jit_and_vmap(B, S):
    M = B.shape[0]
    sets = _colex_sets(M, S)
    masks = _masks(M, sets)
    expected = np.stack([decoding_weights(B, m) for m in masks])
    scale = np.abs(expected).max()
    with jax.enable_x64(True):
        table = jnp.asarray(decoding_table(B, S))
        Bj = jnp.asarray(B, jnp.float64)
        solved = jax.jit(jax.vmap(decoding_weights_jax, in_axes=(None, 0)))(Bj, jnp.asarray(masks))
        assert solved.dtype == jnp.float64
        np.testing.assert_allclose(solved, expected, rtol=0, atol=1e-10 * scale)
        ranks = jax.jit(jax.vmap(lambda m: straggler_rank(m, S)))(jnp.asarray(masks))
        np.testing.assert_array_equal(ranks, np.arange(len(sets)))  # colex order
        looked = jax.jit(jax.vmap(lambda m: lookup_decoding_weights(table, m, S)))(
            jnp.asarray(masks)
        )
        np.testing.assert_allclose(looked, expected, rtol=0, atol=1e-12 * scale)
        one = jax.jit(lookup_decoding_weights, static_argnums=2)(table, jnp.asarray(masks[-1]), S)
        np.testing.assert_allclose(one, expected[-1], rtol=0, atol=1e-12 * scale)


def test_jax_decoder_keeps_float32_and_accepts_numeric_masks():
    B = cyclic_repetition(6, 1)
    mask = np.array([1, 1, 0, 1, 1, 1])
    a32 = jax.jit(decoding_weights_jax)(jnp.asarray(B, jnp.float32), jnp.asarray(mask))
    assert a32.dtype == jnp.float32
    expected = decoding_weights(B, mask.astype(bool))
    np.testing.assert_allclose(
        np.asarray(a32), expected, rtol=0, atol=1e-5 * np.abs(expected).max()
    )
    assert float(a32[2]) == 0.0
    t32 = jnp.asarray(decoding_table(B, 1), jnp.float32)
    assert lookup_decoding_weights(t32, jnp.asarray(mask), 1).dtype == jnp.float32


def test_rank_and_lookup_flag_wrong_straggler_count():
    B = cyclic_repetition(5, 2)
    table = decoding_table(B, 2)
    wrong = jnp.array([True, False, True, True, True])  # one straggler, S = 2
    assert int(straggler_rank(wrong, 2)) == -1
    assert bool(jnp.all(jnp.isnan(lookup_decoding_weights(table, wrong, 2))))
    assert int(straggler_rank(jnp.ones(5, dtype=bool), 0)) == 0
    # colex: {0,1}, {0,2}, {1,2}, {0,3}, ...
    assert int(straggler_rank(jnp.array([True, False, True, False, True]), 2)) == 4  # {1, 3}
    assert int(straggler_rank(jnp.array([True, True, True, False, False]), 2)) == 9  # {3, 4}


# ---------------------------------------------------------------------------
# conditioning: our construction vs Tandon et al.'s random one


def test_decoding_stats_matches_brute_force():
    B, S = cyclic_repetition(7, 2), 2
    stats = decoding_stats(B, S, seed=3, dim=20)
    G = np.random.default_rng(3).standard_normal((7, 20)).astype(np.float32)
    coded = B.astype(np.float32) @ G
    truth = G.astype(np.float64).sum(axis=0)
    worst_a = worst_cond = worst_err = 0.0
    for s in itertools.combinations(range(7), S):
        F = np.setdiff1d(np.arange(7), s)
        a = decoding_weights(B, F)
        worst_a = max(worst_a, np.abs(a).max())
        worst_cond = max(worst_cond, np.linalg.cond(B[F]))
        decoded = a.astype(np.float32)[F] @ coded[F]
        worst_err = max(worst_err, np.linalg.norm(decoded - truth) / np.linalg.norm(truth))
    assert stats["num_sets"] == 21
    np.testing.assert_allclose(stats["max_abs_weight"], worst_a, rtol=1e-10)
    np.testing.assert_allclose(stats["max_condition"], worst_cond, rtol=1e-8)
    # float32 rounding errors depend on the summation order: same magnitude only
    assert 0.5 * worst_err < stats["max_float32_error"] < 2.0 * worst_err < 1e-6


def _adjacent_bound(M, S):
    """max|a| for S adjacent stragglers, from the interpolation picture.

    a_m = h_m − f(m) with h = (−1)^m and f the interpolant of h at the
    stragglers in the trig system T. S = 2: f = A cos(πx/M) + B sin(πx/M) with
    f(0) = 1, f(1) = −1 has amplitude 1/sin(π/(2M)), so |a| ≤ 1 + 1/sin(π/(2M)).
    S = 3: f = α + β cos(2π(x−1)/M) with f(0) = f(2) = 1, f(1) = −1 gives
    β = −2/(1 − cos(2π/M)) and |a| at the antipode = 4/(1 − cos(2π/M)).
    """
    if S == 2:
        return 1.0 + 1.0 / np.sin(np.pi / (2 * M))
    return 4.0 / (1.0 - np.cos(2 * np.pi / M))


@pytest.mark.parametrize("S", [2, 3])
def test_worst_case_weight_within_adjacent_straggler_bound(S):
    # adjacent stragglers are the worst case: the bound is attained (S = 3,
    # M even) or nearly so, for every M
    for M in range(S + 1, 25):
        worst = decoding_stats(cyclic_repetition(M, S), S)["max_abs_weight"]
        bound = _adjacent_bound(M, S)
        assert worst <= bound * (1 + 1e-9)
        assert worst >= 0.74 * bound  # measured ratios 0.75 … 1


def test_worst_case_weights_at_12_2_and_20_3():
    # Measured: 8.596 at (12, 2) (bound 8.661) and 81.727 at (20, 3) (bound
    # attained, 4/(1 − cos(π/10)) = 81.727), i.e. ~2M/π and ~2M²/π².
    start = time.perf_counter()
    s20 = decoding_stats(cyclic_repetition(20, 3), 3)
    assert time.perf_counter() - start < 1.0
    s12 = decoding_stats(cyclic_repetition(12, 2), 2)
    assert s12["max_abs_weight"] < _adjacent_bound(12, 2) < 8.67
    assert s20["max_abs_weight"] < _adjacent_bound(20, 3) * (1 + 1e-9) < 81.73
    assert s12["max_float32_error"] < 1e-6 and s20["max_float32_error"] < 5e-6
    assert s20["num_sets"] == 1140
    assert s20["max_condition"] < 500.0  # measured 370


def test_beats_best_of_20_tandon_draws():
    ours = decoding_stats(cyclic_repetition(20, 3), 3)
    tandon = [decoding_stats(tandon_cyclic(20, 3, seed), 3) for seed in range(20)]
    best_err = min(t["max_float32_error"] for t in tandon)
    best_weight = min(t["max_abs_weight"] for t in tandon)
    # measured: ours 1.9e-6 vs best Tandon 3.0e-4 (median 2.5e-3)
    assert ours["max_float32_error"] < best_err / 10
    assert ours["max_abs_weight"] < best_weight


# ---------------------------------------------------------------------------
# decodability is verified, with a tolerance that does not grow with |a|


def test_decoding_weights_tolerance_does_not_grow_with_the_weights():
    """Half of cyclic_repetition(100, 50) finished: the least-squares weights are huge
    and miss a·B = 1 by 1; a tolerance proportional to |a| used to accept them."""
    B = cyclic_repetition(100, 50)
    with pytest.raises(
        ValueError, match=r"cannot decode: .*max\|a·B − 1\| = 1 \(> tolerance 1e-08\)"
    ):
        decoding_weights(B, range(50, 100))
    a = decoding_weights(cyclic_repetition(30, 5), range(5, 30))  # large weights that decode
    assert np.abs(a).max() > 100 and np.abs(a @ cyclic_repetition(30, 5) - 1).max() < 1e-8


def test_check_decodable_exhaustive_small_codes():
    out = coding.check_decodable(cyclic_repetition(12, 2), 2)
    assert out["exhaustive"] and out["sets_checked"] == out["num_sets"] == 66
    assert out["max_residual"] < 1e-12 and out["max_abs_weight"] == pytest.approx(8.596, abs=1e-3)
    # a code with one bad straggler set among C(8, 2) = 28: found by the exhaustive check
    B = cyclic_repetition(8, 2)
    B[3] = B[4]  # workers 3 and 4 send the same message: 5 distinct rows cannot decode
    with pytest.raises(ValueError, match=r"cannot decode with stragglers = 2: straggler set \["):
        coding.check_decodable(B, 2)


def test_check_decodable_rejects_the_identity_at_any_size():
    """np.eye(64), S = 4: C(64, 4)·64 = 4e7 entries, beyond the table; sampled, still rejected."""
    with pytest.raises(ValueError, match=r"straggler set \[0, 1, 2, 3\] leaves max\|a·B − 1\| = 1"):
        coding.check_decodable(np.eye(64), 4)


def test_check_decodable_samples_large_codes_and_says_so():
    out = coding.check_decodable(cyclic_repetition(64, 4), 4, samples=3000)
    assert not out["exhaustive"] and out["num_sets"] == math.comb(64, 4)
    assert 3000 <= out["sets_checked"] <= 3064
    assert "checked at run time" in out["note"] and out["max_residual"] < 1e-8
    # a defect in one worker pair: found because every adjacent window is checked
    B = cyclic_repetition(64, 4)
    B[10] = B[11]
    with pytest.raises(ValueError, match="cannot decode"):
        coding.check_decodable(B, 4, samples=10)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_check_decodable_validates_samples(bad):
    with pytest.raises(ValueError, match="samples must be an integer >= 1"):
        coding.check_decodable(cyclic_repetition(64, 4), 4, samples=bad)


def test_float32_decoding_check():
    """(12, 2): max|a| = 8.6, error ~1e-6: fine. (30, 10): max|a| = 7e5, error ~0.08: not."""
    ok = coding.float32_decoding_check(cyclic_repetition(12, 2), 2)
    assert (
        ok["ok"]
        and ok["exhaustive"]
        and ok["error_bound"] == pytest.approx(8.596 * 2**-23, rel=1e-3)
    )
    bad = coding.float32_decoding_check(cyclic_repetition(30, 10), 10)
    assert not bad["ok"] and not bad["exhaustive"] and bad["max_abs_weight"] > 5e5
    assert "float32 cannot represent this code's decoding" in bad["reason"]
    # the bound predicts the measured float32 decoding error's order of magnitude
    measured = decoding_stats(cyclic_repetition(12, 2), 2)["max_float32_error"]
    assert measured < ok["error_bound"]
    with pytest.raises(ValueError, match=r"tol must be a number in \(0, 1\)"):
        coding.float32_decoding_check(cyclic_repetition(12, 2), 2, tol=0)
