"""Figures where a strategy never reaches its target: marks, not a crash."""

from lagc_jax import plotting


def test_sweep_figure_with_panels_where_nothing_or_part_reaches_the_target(tmp_path):
    nan = float("nan")
    panels = {
        # the median trial reaches the target nowhere (a tiny grid): only × marks
        "none reached": {"gd": ([0, 2, 5], [nan] * 3, [nan] * 3, [nan] * 3)},
        # reached at S = 0 and 2 only: a log axis with headroom for the mark at S = 5
        "some reached": {
            "gd": ([0, 2, 5], [3.0, 2.0, nan], [2.5, 1.5, nan], [3.5, 2.5, nan]),
            "gc": ([0, 2, 5], [3.0, 1.0, 0.5], [2.5, 0.8, 0.4], [3.5, 1.2, 0.6]),
        },
    }
    path, colors = plotting.sweep_figure(
        panels, "S", "time to target", tmp_path / "sweep.png", xticks=[0, 2, 5]
    )
    assert path.exists() and path.stat().st_size > 10_000
    assert set(colors) == {"gd", "gc"}
    assert colors == {"gd": plotting.color("gd"), "gc": plotting.color("gc")}
