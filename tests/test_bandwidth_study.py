"""scripts/bandwidth_study.py on a tiny grid (M = 6, S = 1, d = 10, two values of τ): its
numbers against a plain NumPy replay of gd on the shared link (MODEL.md §3, §9), the bit
counts of every quantized strategy, a paired comparison of laq and gd where the link
dominates, and the files it writes."""

import doctest
import sys
from pathlib import Path

import numpy as np
import pytest

import lagc_jax as lj
from lagc_jax.results import median_interval
from lagc_jax.studies.paper import DISTRIBUTIONS, mean_unit_time

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import bandwidth_study as bs  # noqa: E402

M, S, DIM, K = 6, 1, 10, 120
PROBLEM = lj.problems.lag_synthetic(M, dim=DIM)
PLAN = bs.Plan(
    workers=M, stragglers=S, trials=24, iters={"tiny": K}, tau_factors=(0.1, 10.0), bits=(2, 4)
)


@pytest.fixture(scope="module")
def study():
    """(rows, per-trial wall clocks) of the tiny study: compiled and run once."""
    return bs.run_study(PLAN, {"tiny": PROBLEM}, log=lambda text: None)


def row_of(rows, delay, tau, label):
    return next(r for r in rows if (r["delay"], r["tau"], r["strategy"]) == (delay, tau, label))


def numpy_gd_gaps():
    """f(θ^k) − f* of gd at step 1/L on lag_synthetic's least squares, k = 0 … K."""
    (X, y), w = PROBLEM.examples, PROBLEM.weights
    theta, gaps = np.zeros(DIM), []
    for _ in range(K + 1):
        residual = w * (np.einsum("pni,i->pn", X, theta) - y)
        gaps.append(
            0.5 * np.sum(residual * (np.einsum("pni,i->pn", X, theta) - y)) - PROBLEM.optimal_value
        )
        theta = theta - np.einsum("pni,pn->i", X, residual) / PROBLEM.smoothness
    return np.array(gaps)


def numpy_shared_link_rounds(unit_times, tau):
    """(trials, K) round lengths of gd on one FIFO uplink: every worker computes X and
    uploads a full-precision gradient, served in order of compute completion (ties by
    index), each for τ; the round ends with the last upload."""
    rounds = np.empty(unit_times.shape[:2])
    for t, k in np.ndindex(rounds.shape):
        free = -np.inf
        for compute in np.sort(unit_times[t, k], kind="stable"):
            free = max(compute, free) + tau
        rounds[t, k] = free
    return rounds


@pytest.mark.parametrize("delay", ["exponential", "pareto"])
def test_gd_row_is_a_hand_computed_shared_link(study, delay):
    """gd's iterations, uploads and bits to the target, and its wall clock (median and
    interval, in units of E[X]), from NumPy: its iterates and the FIFO link by hand."""
    rows, trial_times = study
    gaps = numpy_gd_gaps()
    target_iteration = int(np.argmax(gaps <= bs.TARGET_FRACTION * gaps[0]))
    assert 0 < target_iteration < K
    unit = mean_unit_time(DISTRIBUTIONS[delay])
    draws = bs.unit_time_draws(PLAN.delays, PLAN.trials, K, M, PLAN.seed)[delay]
    for factor in PLAN.tau_factors:
        rounds = numpy_shared_link_rounds(draws, factor * unit)
        to_target = rounds[:, :target_iteration].sum(axis=1) / unit
        row = row_of(rows, delay, factor, "gd")
        assert row["iterations"] == (target_iteration,) * 3
        assert row["uploads"] == (M * target_iteration,) * 3
        assert row["bits_up"] == (32 * DIM * M * target_iteration,) * 3
        np.testing.assert_allclose(trial_times["tiny", delay, factor, "gd"], to_target, rtol=1e-10)
        np.testing.assert_allclose(row["wall_clock"], median_interval(to_target), rtol=1e-10)
        assert row["reached"] == 1.0 and row["diverged"] == 0


def test_every_upload_carries_its_message_bits(study):
    """bits_up = (b·d + 32)·uploads for the quantized strategies and 32·d·uploads at full
    precision: record by record for qgd, and to the target for every row."""
    group = next(g for g in bs.variant_groups(M, S, PLAN.bits) if g[0].family == "qgd")
    draws = bs.unit_time_draws(PLAN.delays, PLAN.trials, K, M, PLAN.seed)["exponential"]
    for variant, _, result in bs.run_group(PROBLEM, group, PLAN, draws, 1.0, K):
        assert variant.message_bits(DIM) == variant.bits * DIM + 32
        np.testing.assert_array_equal(result.bits_up, (variant.bits * DIM + 32) * result.uploads)
    rows, _ = study
    reached = [r for r in rows if r["reached"] > 0.5]
    assert {r["family"] for r in reached} >= {
        "gd",
        "qgd",
        "lag-wk",
        "laq",
        "g-lag",
        "qg-lag",
        "lagc",
    }
    for r in reached:
        assert r["bits_up"] == tuple(r["message_bits"] * u for u in r["uploads"]), r["strategy"]


@pytest.mark.parametrize("delay", ["exponential", "pareto"])
def test_laq_beats_gd_where_the_link_dominates(study, delay):
    """At τ = 10·E[X] gd's M full-precision uploads a round fill the link (its rounds last
    at least M·τ); laq (b = 4) sends fewer and smaller messages and is faster in (nearly)
    every paired trial."""
    _, trial_times = study
    laq = trial_times["tiny", delay, 10.0, "laq (b = 4)"]
    gd = trial_times["tiny", delay, 10.0, "gd"]
    assert np.isfinite(laq).all()
    assert np.mean(laq < gd) >= 0.9


def test_winners_and_tables_are_written(study, tmp_path):
    rows, trial_times = study
    wins = bs.winners(rows, trial_times)
    assert len(wins) == len(PLAN.delays) * len(PLAN.tau_factors)
    for w in wins:
        block = [r for r in rows if (r["delay"], r["tau"]) == (w["delay"], w["tau"])]
        assert w["fastest_wall_clock"][0] == min(r["wall_clock"][0] for r in block)
    problems = {"tiny": PROBLEM}
    bs.write_markdown(tmp_path / "s.md", rows, wins, problems, PLAN, "cmd", 1.0)
    bs.write_csv(tmp_path / "s.csv", rows)
    bs.plot(tmp_path / "s.png", rows, problems, PLAN)
    text = (tmp_path / "s.md").read_text()
    assert "## Where each wins" in text and "direction as in LAQ" in text
    assert all(f"| {r['strategy']} |" in text for r in rows)
    assert len((tmp_path / "s.csv").read_text().splitlines()) == len(rows) + 1
    assert (tmp_path / "s.png").stat().st_size > 0


def test_docstring_examples():
    failures, tried = doctest.testmod(bs, optionflags=doctest.ELLIPSIS)
    assert failures == 0 and tried >= 10
