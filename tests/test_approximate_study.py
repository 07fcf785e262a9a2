"""scripts/approximate_study.py (issue 22): its --quick plan (M = 6, S = 1, 16 trials × 150
iterations, Exponential and trace unit times) through the study's core and writers, checked
against plain NumPy: gd's iterations and wall clock to each target, sgc's p, the trace's row
bootstrap; and the study's invariants: the exact strategies have η = 0 up to rounding and
reach 1e-6, the approximate ones have η > 0 and stall, and deadline with T = ∞ is gd.
"""

import doctest
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import approximate_study as study  # noqa: E402

PLAN = study.QUICK
M, S = PLAN.settings[0]
EXACT = ("gd", "gc", "grouping")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The --quick run's rows and the folder its outputs were written to."""
    rows, curves, errors = study.run_study(PLAN, log=lambda text: None)
    out = tmp_path_factory.mktemp("approximate_study")
    study.write_outputs(
        out, PLAN, rows, curves, errors, "python scripts/approximate_study.py --quick", seconds=1.0
    )
    return rows, out


def row_of(rows, delay, strategy, option=""):
    matches = [
        r for r in rows if (r["delay"], r["strategy"], r["option"]) == (delay, strategy, option)
    ]
    assert len(matches) == 1, (delay, strategy, option)
    return matches[0]


def test_script_docstring_examples():
    failures, tried = doctest.testmod(study, optionflags=doctest.ELLIPSIS)
    assert failures == 0 and tried >= 5


def numpy_gd_iterations(problem, target):
    """Iterations of θ ← θ − ∇f(θ)/L from θ = 0 until f − f* ≤ target, in NumPy."""
    X, y = (np.asarray(a) for a in problem.examples)
    X, y = X.reshape(-1, X.shape[-1]), y.reshape(-1)
    L = np.linalg.eigvalsh(X.T @ X)[-1]
    residual_star = X @ np.linalg.lstsq(X, y, rcond=None)[0] - y
    f_star = 0.5 * residual_star @ residual_star
    theta = np.zeros(X.shape[1])
    assert 0.5 * y @ y - f_star == pytest.approx(1.0, rel=1e-12)  # gaps are relative
    assert problem.optimal_value == pytest.approx(f_star, rel=1e-12)
    for k in range(PLAN.iters + 1):
        residual = X @ theta - y
        if 0.5 * residual @ residual - f_star <= target:
            return k
        theta = theta - X.T @ residual / L
    return None


@pytest.mark.parametrize("delay", PLAN.delays)
def test_gd_matches_numpy_on_the_replayed_unit_times(quick, delay):
    """gd reaches both targets in every trial, after NumPy's iteration count, at the time of
    the sum of the slowest unit time of each round (τ = 0)."""
    rows, _ = quick
    gd = row_of(rows, delay, "gd")
    problem = study.study_problem(M)
    slowest = np.max(study.unit_time_draws(delay, M, PLAN.trials, PLAN.iters, PLAN.seed), axis=2)
    for target in study.TARGETS:
        k = numpy_gd_iterations(problem, target)
        assert k is not None and gd[f"reached_{target:g}"] == 1.0
        assert gd[f"iterations_{target:g}"] == (k, k, k)
        assert gd[f"computations_{target:g}"] == (k * M, k * M, k * M)
        np.testing.assert_allclose(
            gd[f"wall_clock_{target:g}"][0], np.median(slowest[:, :k].sum(axis=1)), rtol=1e-12
        )


@pytest.mark.parametrize("delay", PLAN.delays)
def test_exact_strategies_are_exact_and_approximate_ones_stall(quick, delay):
    rows, _ = quick
    for row in rows:
        if row["delay"] != delay:
            continue
        _, eta_low, eta_high = row["eta_early"]  # the 95 % interval of the mean η
        if study.is_exact(row):
            assert row["strategy"] in EXACT or math.isinf(row["deadline"])
            assert eta_high < 1e-20, row["strategy"]
            assert row["reached_1e-06"] == 1.0 and row["final_gap"][2] < 1e-8
        else:  # every approximate variant errs visibly while far from θ*
            assert eta_low > 1e-3, (row["strategy"], row["option"])
    stalling = [
        row_of(rows, delay, "fastest-k"),
        row_of(rows, delay, "sgc", "p = 0.25"),
        row_of(rows, delay, "deadline", "p = 0.25"),
        row_of(rows, delay, "graph-gc", "optimal, seed 1"),
        row_of(rows, delay, "graph-gc", "fixed, seed 1"),
    ]
    for row in stalling:  # their floors are ~1e-4 here, 4 decades above gd's final gap
        assert row["reached_1e-06"] < 0.5 and row["final_gap"][0] > 1e-5, row["strategy"]


@pytest.mark.parametrize("delay", PLAN.delays)
def test_deadline_without_a_deadline_is_gd(quick, delay):
    rows, _ = quick
    gd, no_deadline = row_of(rows, delay, "gd"), row_of(rows, delay, "deadline", "T = ∞")
    for field in [
        f for f in gd if f not in ("strategy", "option", "deadline", "straggle_probability")
    ]:
        assert no_deadline[field] == gd[field], field


def test_sgc_probability_is_the_miss_frequency(quick):
    """p = P((S+1)·X > T): e^(−T/(S+1)) for Exponential(1); on the trace, the fraction of its
    measured times (every rank of every step) that miss."""
    rows, _ = quick
    exponential = row_of(rows, "exponential", "sgc", "p = 0.25")
    assert exponential["straggle_probability"] == pytest.approx(
        math.exp(-exponential["deadline"] / (S + 1)), rel=1e-12
    )
    assert exponential["straggle_probability"] == pytest.approx(0.25, rel=1e-12)
    trace = row_of(rows, "trace", "sgc", "p = 0.25")
    times = study.trace_times().ravel()
    assert trace["straggle_probability"] == np.mean((S + 1) * times > trace["deadline"])
    assert 0.2 < trace["straggle_probability"] <= 0.25


def test_trace_draws_are_measured_steps_of_distinct_random_ranks():
    """Per trial: `workers` distinct ranks, fixed for the trial; per iteration: one measured
    step of those ranks."""
    times = study.trace_times()
    draws = study.unit_time_draws("trace", 12, 4, 30, seed=1)
    chosen = []
    for trial in draws:
        ranks = [
            int(
                np.flatnonzero(
                    [np.isin(trial[:, m], times[:, c]).all() for c in range(times.shape[1])]
                )[0]
            )
            for m in range(trial.shape[1])
        ]
        assert len(set(ranks)) == len(ranks)
        for unit_times in trial:
            assert (times[:, ranks] == unit_times).all(axis=1).any()
        chosen.append(ranks)
    assert len({tuple(r) for r in chosen}) == len(chosen)  # other ranks in every trial


def test_outputs(quick):
    rows, out = quick
    text = (out / "approximate_study.md").read_text()
    assert "`python scripts/approximate_study.py --quick`" in text
    variants = len(rows) // len(PLAN.delays)
    for delay in PLAN.delays:
        assert f"## {study.setting_title(M, S, delay)}" in text
    assert text.count("\n| ") == len(PLAN.delays) * (variants + 1)  # headers and rows
    assert text.count("Fastest to 1e-3: exact ") == len(PLAN.delays)
    lines = (out / "approximate_study.csv").read_text().strip().splitlines()
    assert len(lines) == len(rows) + 1 and lines[0].startswith("workers,stragglers,delay")
    for name in ("approximate_study.png", "approximate_study_error.png"):
        assert (out / name).stat().st_size > 10_000
