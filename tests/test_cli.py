"""The lagc-jax command line."""

import numpy as np
import pytest

from lagc_jax import cli
from lagc_jax.results import Result


def test_run_writes_results_and_prints_table(tmp_path, capsys):
    stem = tmp_path / "study"
    code = cli.main(["run", "--strategy", "gc", "--workers", "6", "--stragglers", "1",
                     "--delay", "pareto:1,2", "--trials", "8", "--iters", "300",
                     "--target-gap", "1e-4", "--out", str(stem)])
    assert code == 0
    out = capsys.readouterr().out
    assert "| gc |" in out and "f − f* ≤ 0.0001" in out
    result = Result.load(tmp_path / "study_gc.npz")
    assert result.loss.shape == (8, 301)
    assert result.config["delay"] == {"Pareto": [1.0, 2.0]}
    # the printed median uploads are the median over trials of the saved run
    uploads = np.median(result.to_reach(1e-4)["uploads"])
    assert f"| {uploads:.0f} [" in out


def test_run_all_strategies_small(tmp_path, capsys):
    assert cli.main(["--workers", "4", "--stragglers", "1", "--trials", "3", "--iters", "20",
                     "--out", str(tmp_path / "all")]) == 0
    out = capsys.readouterr().out
    for name in ("gd", "fastest-k", "gc", "grouping", "lag-wk", "lag-ps", "lagc", "lagc-ps",
                 "g-lag", "g-lag-wk", "async", "k-async"):
        assert f"| {name} |" in out
    assert len(list(tmp_path.glob("all_*.npz"))) == 12


@pytest.mark.parametrize("argv, message", [
    (["run", "--strategy", "nope"], "unknown strategy 'nope'"),
    (["run", "--delay", "exp:-1"], "rate must be finite and > 0"),
    (["run", "--workers", "4", "--stragglers", "4"], "stragglers must be an integer in"),
])
def test_run_reports_bad_input(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
