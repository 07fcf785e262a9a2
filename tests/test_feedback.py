"""Feedback of the command line (progress bar, plain lines, --quiet, --version) and the data of
the figures of bits and gradient error (lagc_jax.plotting), against plain NumPy."""

import io
import math
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

import lagc_jax
from lagc_jax import cli, plotting
from lagc_jax.cli.progress import Progress
from lagc_jax.results import Result


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


def ticking(step=1.0):
    """A clock that moves ``step`` seconds at every reading."""
    readings = iter(range(10**6))
    return lambda: step * next(readings)


# --------------------------------------------------------------------------- #
# Progress
# --------------------------------------------------------------------------- #
def test_plain_lines_one_per_point_and_at_most_one_per_interval():
    out = io.StringIO()
    progress = Progress(1, 100, stream=out, clock=ticking(), every=30)
    progress.start("gd")  # t = 0
    for done in range(1, 101):  # t = done: a report a second
        progress.report(done, 100)
    progress.finish("wrote r_gd.npz")  # t = 101
    lines = out.getvalue().splitlines()
    # lines at t = 30, 60, 90 (not at 100: the point is done), then the point's line
    assert lines == [
        "  gd (1/1): 30/100 iterations, 30 s; total 30/100, ETA 1:10",
        "  gd (1/1): 60/100 iterations, 60 s; total 60/100, ETA 0:40",
        "  gd (1/1): 90/100 iterations, 90 s; total 90/100, ETA 0:10",
        "  gd (1/1): 100 iterations in 101 s; wrote r_gd.npz",
    ]
    assert "\r" not in out.getvalue()


def test_terminal_bar_counts_iterations_and_points_rate_and_eta():
    out = Terminal()
    progress = Progress(2, 10, stream=out, clock=ticking(2.0))
    assert progress.terminal
    progress.start("gd")  # t = 0
    progress.report(5, 10)  # t = 2: 5 of 20 iterations, 2.5 it/s
    drawn = out.getvalue().split("\r")[-1]
    assert drawn == "gd (1/2) █████··············· 5/20 iterations, 2.5 it/s, ETA 0:06\x1b[K"
    progress.report(10, 10)  # t = 4
    progress.finish("wrote r_gd.npz")  # t = 6: erase, line, bar again
    progress.start("gc")  # t = 8
    progress.report(10, 10)  # t = 10: all 20 done
    progress.finish("wrote r_gc.npz")  # t = 12: erase, line, no bar after the last
    progress.clear()
    text = out.getvalue()
    assert "\r\x1b[K  gd (1/2): 10 iterations in 6 s; wrote r_gd.npz\n" in text
    assert text.endswith("\r\x1b[K  gc (2/2): 10 iterations in 4 s; wrote r_gc.npz\n")
    assert "\rgc (2/2) " + "█" * 20 + " 20/20 iterations, 2 it/s, ETA 0:00\x1b[K" in text


def test_quiet_writes_nothing_even_on_a_terminal():
    out = Terminal()
    progress = Progress(1, 10, stream=out, quiet=True, clock=ticking())
    progress.start("gd")
    progress.report(5, 10)
    progress.finish("wrote r_gd.npz")
    progress.clear()
    assert out.getvalue() == "" and not progress.terminal


RUN = [
    "run",
    "--strategy",
    "gd",
    "--workers",
    "4",
    "--stragglers",
    "1",
    "--trials",
    "2",
    "--iters",
    "10",
    "--target-gap",
    "1e-2",
]


def test_run_draws_a_bar_on_a_terminal_and_leaves_a_clean_line(tmp_path, capsys, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert cli.main([*RUN, "--out", str(tmp_path / "r")]) == 0
    err = terminal.getvalue()
    # one redraw per chunk (10 chunks of 1 iteration), the full bar at the end
    assert err.count("\r") >= 10 and "█" * 20 + " 10/10 iterations" in err
    assert re.search(
        r"\r\x1b\[K  gd \(1/1\): 10 iterations in [\d.]+ s; wrote .*r_gd\.npz\n$", err
    ), err[-300:]
    assert "| gd |" in capsys.readouterr().out


def test_run_prints_a_line_per_strategy_when_not_a_terminal(tmp_path, capsys):
    argv = [*RUN, "--out", str(tmp_path / "r")]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("problem lag_synthetic(P=4), M=4, S=1")
    assert re.fullmatch(r"  gd \(1/1\): 10 iterations in [\d.]+ s; wrote .*r_gd\.npz", lines[-1])
    assert len(lines) == 2  # no line per chunk (a run of a few seconds: none in between)
    assert cli.main([*argv, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "| gd |" in captured.out


def test_version_is_the_package_version(capsys):
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert lagc_jax.__version__ == pyproject["project"]["version"]
    assert cli.main(["--version"]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"lagc-jax {lagc_jax.__version__}\n" and captured.err == ""


# --------------------------------------------------------------------------- #
# the figures' data, against NumPy
# --------------------------------------------------------------------------- #
def random_result(seed=0, trials=7, records=30):
    """A Result with random increasing wall clocks and bits, decreasing gaps and a
    per-round error (NaN at entry 0), some trials shorter in bits and time than others."""
    rng = np.random.default_rng(seed)
    wall_clock = np.concatenate(
        [np.zeros((trials, 1)), rng.exponential(size=(trials, records - 1)).cumsum(1)], 1
    )
    bits = np.concatenate(
        [np.zeros((trials, 1), int), rng.integers(0, 3, (trials, records - 1)).cumsum(1) * 64], 1
    )
    gap = np.exp(-rng.uniform(0, 0.5, (trials, records)).cumsum(1))
    error = rng.exponential(size=(trials, records))
    error[:, 0] = np.nan
    zeros = np.zeros((trials, records))
    return Result(
        iterations=np.arange(records),
        loss=gap,
        gap=gap,
        wall_clock=wall_clock,
        uploads=zeros,
        downloads=zeros,
        computations=zeros,
        diverged=np.zeros(trials, bool),
        optimal_value=0.0,
        metrics={"bits_up": bits, "grad_error": error},
    )


def last_record_at_most(x, grid):
    """Per trial and grid value, the index of the last record with x ≤ the value (loops)."""
    index = np.zeros((x.shape[0], len(grid)), int)
    for i in range(x.shape[0]):
        for g, value in enumerate(grid):
            index[i, g] = max(j for j in range(x.shape[1]) if x[i, j] <= value)
    return index


def order_statistic(values, q):
    """The inverted-cdf quantile: the smallest x with F(x) >= q."""
    ordered = np.sort(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


@pytest.mark.parametrize("seed", [0, 1])
def test_bits_curves_are_the_quantiles_of_the_gap_at_each_bit_count(seed):
    r = random_result(seed)
    curves = plotting.bits_curves(r, q=(0.1, 0.5, 0.9), points=40)
    assert set(curves) == {"bits_up"}  # no bits_down in this Result
    grid, *quantiles = curves["bits_up"]
    bits = r.bits_up
    assert grid[0] == 0 and grid[1] == bits[bits > 0].min() and grid[-1] == bits.max()
    index = last_record_at_most(bits, grid)
    for g, value in enumerate(grid):
        gaps = r.gap[np.arange(r.num_trials), index[:, g]]
        running = np.mean(value <= bits[:, -1])
        for q, curve in zip((0.1, 0.5, 0.9), quantiles):
            expected = order_statistic(gaps, q) if running >= 0.5 else np.nan
            np.testing.assert_equal(curve[g], expected)


@pytest.mark.parametrize("seed", [0, 1])
def test_error_curve_is_the_mean_and_quantiles_of_the_error_at_each_time(seed):
    r = random_result(seed)
    grid, mean, low, high = plotting.error_curve(r, q=(0.1, 0.9), points=50)
    assert grid[0] == 0 and grid[-1] == r.wall_clock[:, -1].max()
    index = last_record_at_most(r.wall_clock, grid)
    for g, t in enumerate(grid):
        eta = r.grad_error[np.arange(r.num_trials), index[:, g]]
        eta = eta[~np.isnan(eta)]  # trials whose first round has not ended
        ended = np.mean(t <= r.wall_clock[:, -1]) < 0.5
        if ended or eta.size == 0:
            assert np.isnan([mean[g], low[g], high[g]]).all()
            continue
        np.testing.assert_allclose(mean[g], eta.mean(), rtol=1e-12)
        np.testing.assert_allclose([low[g], high[g]], np.quantile(eta, [0.1, 0.9]), rtol=1e-12)


def test_figures_are_written_with_each_strategy_in_its_colour(tmp_path):
    r = random_result()
    bits = {"gd": plotting.bits_curves(r), "qgd": plotting.bits_curves(random_result(1))}
    path, colors = plotting.bits_figure(bits, 0.1, "bits", tmp_path / "bits.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert colors == {"gd": plotting.color("gd"), "qgd": plotting.color("qgd")}
    errors = {"fastest-k": plotting.error_curve(r), "gd": plotting.error_curve(random_result(2))}
    path, colors = plotting.error_figure(errors, "error", tmp_path / "error.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert colors == {"fastest-k": plotting.color("fastest-k"), "gd": plotting.color("gd")}
