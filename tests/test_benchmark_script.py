"""The NumPy implementations that scripts/benchmark.py times compute what lagc_jax computes.

Both (a loop over trials and iterations, and one vectorised over trials) must agree
with lagc_jax on replayed unit times: identical counts, loss and wall clock to 1e-6.
Otherwise the benchmark's comparison would not be honest. No timing here.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

import lagc_jax as lj
from lagc_jax import problems, strategies

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import numpy_reference as ref  # noqa: E402


def run_all(name, M, S, d, unit_times):
    T, K = unit_times.shape[:2]
    problem = problems.lag_synthetic(M, dim=d)
    strategy = strategies.make(name, M, S)
    result = lj.simulate(problem, strategy, num_iters=K, num_trials=T, unit_times=unit_times)
    setup = ref.setup(problem, name, M, S, np.float64)
    return (
        result,
        ref.run_loop(setup, K, T, unit_times),
        ref.run_vectorised(setup, K, T, unit_times),
    )


@pytest.mark.parametrize("name", ref.STRATEGIES)
def test_numpy_references_agree_with_lagc_jax(name):
    M, d, T, K = 6, 8, 3, 25
    S = 0 if name in ("gd", "lag-wk") else 1
    rng = np.random.default_rng(3)
    # trial 0 replays integer unit times: the wait rules must break ties by worker index
    unit_times = np.concatenate(
        [rng.integers(1, 4, (1, K, M)).astype(float), rng.exponential(size=(T - 1, K, M))]
    )
    result, loop, vectorised = run_all(name, M, S, d, unit_times)
    assert ref.compare_with(result, loop) == []
    assert ref.compare_with(result, vectorised) == []
    if name in ("lag-wk", "lagc", "g-lag"):  # the lazy triggers were exercised
        units = M // (S + 1) if name == "g-lag" else M
        assert 0 < result.uploads[0, -1] < units * K


@pytest.mark.parametrize("name", ["gc", "lagc"])
def test_numpy_references_decode_like_lagc_jax_at_m12(name):
    unit_times = np.random.default_rng(4).exponential(size=(2, 20, 12))
    result, loop, vectorised = run_all(name, 12, 2, 16, unit_times)
    assert ref.compare_with(result, loop) == []
    assert ref.compare_with(result, vectorised) == []


def test_compare_with_reports_differences():
    unit_times = np.random.default_rng(5).exponential(size=(2, 10, 6))
    result, loop, _ = run_all("fastest-k", 6, 1, 8, unit_times)
    loop["uploads"][0, -1] += 1
    loop["loss"][1, 3] *= 1.001
    problems_found = ref.compare_with(result, loop)
    assert any("uploads" in p for p in problems_found)
    assert any("loss" in p for p in problems_found)


def test_baseline_targets_name_the_right_target():
    """Against the commit before the speed work the target is 2×; against any other commit,
    not slower (the docstring's examples, run here: scripts are not collected as doctests)."""
    import doctest

    import benchmark

    failures, tried = doctest.testmod(benchmark, verbose=False)[:2]
    assert tried >= 3 and failures == 0
