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
    r = lj.simulate(
        problem,
        lj.strategies.make("g-lag", 6, 1),
        lj.Pareto(1.0, 1.5),
        num_iters=10,
        num_trials=3,
        record_masks=True,
        upload_time=0.1,
    )
    path = r.save(tmp_path / "nested" / "run.npz")
    loaded = Result.load(path)
    for field in (
        "iterations",
        "loss",
        "gap",
        "wall_clock",
        "uploads",
        "downloads",
        "computations",
        "diverged",
        "upload_mask",
    ):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(r, field), err_msg=field)
    assert loaded.optimal_value == r.optimal_value
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["strategy"] == "g-lag" and record["delay"] == {"Pareto": [1.0, 1.5]}
    assert record["versions"]["jax"]
    assert record == loaded.config
    assert not list(tmp_path.glob("nested/*.tmp"))  # atomic writes leave no temporaries


def test_save_keeps_dotted_stems(tmp_path):
    """`out/pareto_1.5` and `out/pareto_1.2` are two runs, not one file `out/pareto_1.npz`."""
    import dataclasses

    a = small_result()
    b = dataclasses.replace(a, optimal_value=2.0)
    assert a.save(tmp_path / "pareto_1.5") == tmp_path / "pareto_1.5.npz"
    b.save(tmp_path / "pareto_1.2")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "pareto_1.2.json",
        "pareto_1.2.npz",
        "pareto_1.5.json",
        "pareto_1.5.npz",
    ]
    assert Result.load(tmp_path / "pareto_1.5").optimal_value == 1.0
    assert Result.load(tmp_path / "pareto_1.2.npz").optimal_value == 2.0
    # only a trailing .npz / .json is an extension
    assert a.save(tmp_path / "x.json") == tmp_path / "x.npz"
    assert a.save(tmp_path / "run.v2.npz") == tmp_path / "run.v2.npz"


def test_an_interrupted_save_leaves_no_npz_without_its_record(tmp_path, monkeypatch):
    """The .npz, the file a reader looks for, is written last: Ctrl-C during a save never
    leaves a result whose configuration record is missing."""
    from lagc_jax import results

    written = []

    def interrupted_after_one(path, write):
        if written:
            raise KeyboardInterrupt
        written.append(path.name)
        real_atomic_write(path, write)

    real_atomic_write = results.atomic_write
    monkeypatch.setattr(results, "atomic_write", interrupted_after_one)
    with pytest.raises(KeyboardInterrupt):
        small_result().save(tmp_path / "r")
    assert written == ["r.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    with pytest.raises(FileNotFoundError):
        Result.load(tmp_path / "r")


def test_save_honours_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        path = small_result().save(tmp_path / "r")
        assert path.stat().st_mode & 0o777 == 0o644
        assert path.with_suffix(".json").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        path = small_result().save(tmp_path / "private")
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


@pytest.mark.parametrize("content", [b"", b"not a zip file at all", b"PK\x03\x04truncated"])
def test_load_of_a_file_that_is_not_a_result_says_so(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"bad\.npz is not a saved lagc_jax Result"):
        Result.load(path)


def test_load_of_an_npz_without_result_arrays_says_so(tmp_path):
    np.savez(tmp_path / "other.npz", weights=np.ones(3))
    with pytest.raises(ValueError, match=r"not a saved lagc_jax Result: arrays \['iterations'"):
        Result.load(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError):
        Result.load(tmp_path / "absent")


@pytest.mark.parametrize("confidence, ranks", [(0.8, (43, 57)), (0.5, (46, 54)), (0.99, (37, 63))])
def test_median_interval_any_confidence(confidence, ranks):
    # n = 100: ranks 50 ∓ z·5 with z = Φ⁻¹((1 + c)/2): 6.41 (0.8), 3.37 (0.5), 12.88 (0.99)
    _, lo, hi = median_interval(np.arange(100.0), confidence)
    assert (lo, hi) == ranks
    s = small_result().summary(0.5, confidence=confidence)
    assert s["uploads"][0] == pytest.approx(6.5)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, "x", None, True])
def test_summary_rejects_bad_confidence(bad):
    with pytest.raises(ValueError, match=r"confidence must be a number in \(0, 1\)"):
        small_result().summary(0.5, confidence=bad)


def test_summary_reports_the_gap_at_the_end_with_diverged_trials_as_inf():
    """final_gap: where a strategy that does not reach the target stalls."""
    s = small_result().summary(0.01)
    assert s["reached"] == 0.0 and s["wall_clock"][0] == np.inf
    assert s["final_gap"][0] == pytest.approx(np.median([0.5, 0.1]))
    diverged = small_result(metrics={})
    diverged.diverged = np.array([True, False])
    med, lo, hi = diverged.summary(0.01)["final_gap"]
    assert (med, lo, hi) == (np.inf, 0.1, np.inf)  # n = 2: the median of {0.1, inf}
    from lagc_jax.results import format_final_gap

    assert format_final_gap(s) == "not reached; final gap 0.3 [0.1, 0.5]"
    assert format_final_gap({"final_gap": (med, lo, hi)}) == (
        "not reached; final gap ∞ (most trials diverged)"
    )


def test_mean_and_quantiles_per_record_of_a_per_round_metric():
    """grad_error: NaN at entry 0 (no round yet), then one value per round and trial."""
    eta = np.array([[np.nan, 0.5, 0.25, 0.0], [np.nan, 1.5, 0.75, 0.5]])
    r = small_result(metrics={"grad_error": eta})
    mean = r.mean("grad_error")
    assert np.isnan(mean[0]) and mean[1:].tolist() == [1.0, 0.5, 0.25]
    low, high = r.quantiles("grad_error", (0.0, 1.0))
    assert np.isnan(low[0]) and low[1:].tolist() == [0.5, 0.25, 0.0]
    assert high[1:].tolist() == [1.5, 0.75, 0.5]
    assert r.mean("wall_clock").tolist() == [0.0, 1.5, 2.75, 5.0]
    # the summary: each trial's mean over its rounds, then the median over trials
    assert r.summary(0.5)["grad_error"][0] == pytest.approx(np.median([0.75 / 3, 2.75 / 3]))
