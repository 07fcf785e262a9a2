"""Results: persistence and summaries."""

import json

import numpy as np
import pytest

import lagc_jax as lj
from lagc_jax.problems import lag_synthetic
from lagc_jax.results import Result, median_interval


def small_result(**kwargs):
    return Result(
        iterations=np.arange(4),
        loss=np.array([[4.0, 3.0, 2.0, 1.5], [4.0, 2.5, 1.2, 1.1]]),
        gap=np.array([[3.0, 2.0, 1.0, 0.5], [3.0, 1.5, 0.2, 0.1]]),
        wall_clock=np.array([[0.0, 1.0, 3.0, 4.0], [0.0, 2.0, 2.5, 6.0]]),
        uploads=np.array([[0, 3, 6, 9], [0, 2, 4, 6]]),
        downloads=np.array([[0, 3, 6, 9], [0, 3, 6, 9]]),
        computations=np.array([[0, 6, 12, 18], [0, 6, 12, 18]]),
        diverged=np.array([False, False]),
        optimal_value=1.0,
        **kwargs,
    )


def test_to_reach_first_record_below_target():
    reach = small_result().to_reach(1.0)
    np.testing.assert_array_equal(reach["iterations"], [2, 2])
    np.testing.assert_array_equal(reach["wall_clock"], [3.0, 2.5])
    np.testing.assert_array_equal(reach["uploads"], [6, 4])
    never = small_result().to_reach(0.01)
    assert np.isnan(never["wall_clock"]).all()


def test_on_time_grid_is_a_step_function():
    grid = small_result().on_time_grid("gap", [0.0, 1.5, 2.5, 10.0])
    np.testing.assert_array_equal(grid, [[3.0, 2.0, 2.0, 0.5], [3.0, 3.0, 0.2, 0.1]])


def test_quantiles_shape_and_values():
    q = small_result().quantiles("wall_clock", (0.0, 1.0))
    np.testing.assert_array_equal(q, [[0, 1, 2.5, 4], [0, 2, 3, 6]])


def test_median_interval_order_statistics():
    med, lo, hi = median_interval(np.arange(100.0))
    assert med == 49.5
    # n = 100: ranks 50 ± 1.96·5 = 40.2 and 59.8 -> x[40], x[60]
    assert (lo, hi) == (40.0, 60.0)
    med, lo, hi = median_interval(np.array([1.0, np.nan, np.nan]))
    assert med == np.inf and hi == np.inf


def test_summary_counts_reached_and_diverged():
    s = small_result().summary(0.5)
    assert s["reached"] == 1.0
    assert s["diverged"] == 0
    assert s["uploads"][0] == pytest.approx(6.5)


def test_save_load_roundtrip(tmp_path):
    problem = lag_synthetic(6, dim=12)
    r = lj.simulate(problem, lj.strategies.make("g-lag", 6, 1), lj.Pareto(1.0, 1.5),
                    num_iters=10, num_trials=3, record_masks=True, upload_time=0.1)
    path = r.save(tmp_path / "nested" / "run.npz")
    loaded = Result.load(path)
    for field in ("iterations", "loss", "gap", "wall_clock", "uploads", "downloads",
                  "computations", "diverged", "upload_mask"):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(r, field), err_msg=field)
    assert loaded.optimal_value == r.optimal_value
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["strategy"] == "g-lag" and record["delay"] == {"Pareto": [1.0, 1.5]}
    assert record["versions"]["jax"]
    assert record == loaded.config
    assert not list(tmp_path.glob("nested/*.tmp"))  # atomic writes leave no temporaries
