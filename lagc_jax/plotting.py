"""Figures of the reproduction study (matplotlib, Agg backend, PNG).

One colour per strategy, kept across every figure: :func:`color` (from the
strategy registry's ``style`` metadata) is the only mapping used. Line styles
encode the family: solid = exact, non-lazy; dashed = worker-side lazy (WK);
dash-dot = server-side lazy (PS); dotted = approximate (fastest-k). Each figure function takes
plain numpy data, writes a PNG and returns the path; :func:`line_colors` reads back the colour
of every labelled line of a figure (used by the tests). :func:`bits_curves` and
:func:`error_curve` compute a strategy's data in :func:`bits_figure` (gap against bits on the
wire) and :func:`error_figure` (gradient error against wall clock) from its Result.
"""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from . import strategies  # noqa: E402
from .studies.statistics import band, on_grid, running_fraction  # noqa: E402

DPI = 150

# Colours for strategies registered without a style (none of them used by the ten).
_SPARE_COLORS = (
    "#7f7f7f",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#dbdb8d",
    "#9edae5",
)
_SPARE_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*")

DISTRIBUTION_LABELS = {
    "exponential": "Exponential(rate 1) unit times",
    "pareto": "Pareto(scale 1, shape 1.5) unit times",
}

TIME_LABEL = "wall-clock time (units of E[X])"
UPLOADS_LABEL = "uploads (gradient vectors)"
COMPUTATIONS_LABEL = "computations (partition gradients)"
BITS_LABEL = "bits uploaded (32 per coordinate at full precision)"
BITS_DOWN_LABEL = "bits downloaded (θ sent to workers)"
ERROR_LABEL = "gradient error η = ‖ĝ − ∇f‖² / ‖∇f‖²"
ROUNDING_ERROR = 1e-12  # η below it is an exact strategy's rounding (MODEL.md §10: 0)
GAP_LABEL = "optimality gap f(θ) − f*"

plt.rcParams.update(
    {
        "font.size": 10,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "legend.fontsize": 9,
        "legend.frameon": False,
    }
)


def strategy_style(name: str) -> dict:
    """Colour, line style, marker and width of a strategy: from its registry ``style``,
    with defaults for anything missing (a spare colour chosen by the name, so an
    unregistered or style-less strategy still plots, consistently across figures)."""
    registered = strategies.info(name).style if name in strategies.names() else {}
    index = zlib.crc32(name.encode())
    return {
        "color": _SPARE_COLORS[index % len(_SPARE_COLORS)],
        "linestyle": "-",
        "marker": _SPARE_MARKERS[index % len(_SPARE_MARKERS)],
        "linewidth": 1.5,
        **registered,
    }


def color(name: str) -> str:
    """The one colour of a strategy in every figure."""
    return strategy_style(name)["color"]


def style(name: str) -> dict:
    """Line keyword arguments of a strategy (no marker)."""
    s = strategy_style(name)
    return dict(color=s["color"], linestyle=s["linestyle"], label=name, linewidth=s["linewidth"])


def line_colors(fig) -> dict:
    """{label: hex colour} of every labelled line or errorbar in ``fig``."""
    out = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            label = line.get_label()
            if label and not label.startswith("_"):
                out.setdefault(label, to_hex(line.get_color()))
        for container in ax.containers:
            label = container.get_label()
            if label and not label.startswith("_") and container.lines and container.lines[0]:
                out.setdefault(label, to_hex(container.lines[0].get_color()))
    return out


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _finish(fig, title: str, path, note: str = "", colors=None) -> tuple[Path, dict]:
    """Title, layout, save and close a figure; return (path, colours of its labelled lines)."""
    fig.suptitle(title)
    fig.tight_layout()
    if note:
        fig.text(0.01, -0.01, note, fontsize=8.5, color="0.3", va="top", wrap=True)
    colors = line_colors(fig) if colors is None else colors
    path = _save(fig, path)
    plt.close(fig)
    return path, colors


def _legend_right(fig, names, extra=()):
    handles = [Line2D([], [], **style(n)) for n in names] + list(extra)
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), title="strategy")


def convergence_figure(curves: dict, target_gap: float, title: str, path) -> tuple[Path, dict]:
    """Gap vs wall clock, uploads, computations and, when present, bits uploaded (a panel
    each, shared y).

    ``curves[name] = {"time": (grid, q10, q50, q90), "uploads": (...),
    "computations": (...), "bits_up": (...)}``: medians and 10–90 % bands on a common x
    grid. Returns (path, line colours).
    """
    names = list(curves)
    panels = [
        ("time", TIME_LABEL, "median and 10–90 % band over trials"),
        ("uploads", UPLOADS_LABEL, "median over trials"),
        ("computations", COMPUTATIONS_LABEL, "median over trials"),
        ("bits_up", BITS_LABEL, "median over trials"),
    ]
    panels = [p for p in panels if all(p[0] in c for c in curves.values())]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.6), sharey=True)
    ymax = (
        max(
            float(np.nanmax(np.where(np.isfinite(c["time"][2]), c["time"][2], np.nan)))
            for c in curves.values()
        )
        * 3
    )
    ymin = target_gap * 1e-4
    for ax, (key, xlabel, subtitle) in zip(axes, panels):
        for name in names:
            grid, lo, med, hi = curves[name][key]
            lo, med, hi = (np.clip(v, ymin * 0.5, ymax * 10) for v in (lo, med, hi))
            ax.plot(grid, med, **style(name))
            if key == "time":
                ax.fill_between(grid, lo, hi, color=color(name), alpha=0.12, linewidth=0)
        ax.set_yscale("log")
        ax.set_ylim(ymin, ymax)
        ax.axhline(target_gap, color="0.5", linewidth=0.8, linestyle=(0, (4, 3)), zorder=0)
        ax.set_xlabel(xlabel)
        xmax = max(c[key][0][-1] for c in curves.values())
        if key == "uploads":  # lazy strategies upload 10–30× less: log scale separates them
            ax.set_xscale("log")
            ax.set_xlim(3.0, xmax)
        elif key == "bits_up":  # likewise; from the bits of about three messages
            ax.set_xscale("log")
            ax.set_xlim(xmax * 3e-4, xmax)
        else:
            ax.set_xlim(0, xmax)
        ax.set_title(subtitle, fontsize=10)
    axes[0].set_ylabel(GAP_LABEL)
    target = Line2D(
        [], [], color="0.5", linewidth=0.8, linestyle=(0, (4, 3)), label=f"target {target_gap:g}"
    )
    _legend_right(fig, names, [target])
    return _finish(fig, title, path)


def iteration_time_figure(data: dict, path, title: str = "", note: str = "") -> tuple[Path, dict]:
    """Analytic (lines) vs Monte Carlo (points, 95 % CI of the mean) iteration time vs S.

    ``data[distribution][name] = {"S": [...], "analytic": [...], "mc": [...],
    "ci": [(lo, hi), ...]}`` in units of E[X].
    """
    dists = list(data)
    fig, axes = plt.subplots(1, len(dists), figsize=(5.2 * len(dists), 4.2), squeeze=False)
    names = []
    for ax, dist in zip(axes[0], dists):
        for name, d in data[dist].items():
            if name not in names:
                names.append(name)
            s = np.asarray(d["S"])
            ax.plot(
                s,
                d["analytic"],
                color=color(name),
                linestyle=strategy_style(name)["linestyle"],
                linewidth=1.3,
                label=name,
            )
            mc = np.asarray(d["mc"])
            ci = np.asarray(d["ci"]).T
            ax.errorbar(
                s,
                mc,
                yerr=[mc - ci[0], ci[1] - mc],
                fmt=strategy_style(name)["marker"],
                color=color(name),
                markersize=5,
                capsize=3,
                linestyle="none",
                label="_mc_" + name,
            )
        ax.set_xlabel("stragglers tolerated S")
        ax.set_ylabel("mean iteration time (units of E[X])")
        ax.set_xticks(sorted({int(v) for d in data[dist].values() for v in d["S"]}))
        ax.set_title(DISTRIBUTION_LABELS.get(dist, dist), fontsize=10)
    extra = [
        Line2D([], [], color="0.3", linewidth=1.3, label="analytic (MODEL.md §7)"),
        Line2D(
            [],
            [],
            color="0.3",
            marker="o",
            linestyle="none",
            label="Monte Carlo, 95 % CI\n(bars hidden by the\nmarker when smaller)",
        ),
    ]
    handles = [
        Line2D(
            [],
            [],
            color=color(n),
            linestyle=strategy_style(n)["linestyle"],
            marker=strategy_style(n)["marker"],
            label=n,
        )
        for n in names
    ] + extra
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _finish(fig, title, path, note=note)


def sweep_figure(
    panels: dict,
    xlabel: str,
    title: str,
    path,
    *,
    xscale="linear",
    ylabel="time to reach the target gap\n(median, units of E[X])",
    xticks=None,
) -> tuple[Path, dict]:
    """Median time to target (with 95 % interval of the median) vs a swept parameter.

    ``panels[panel title][name] = (x, median, lo, hi)``; panels laid out in a row
    or, for four, a 2×2 grid.
    """
    keys = list(panels)
    n = len(keys)
    rows, cols = (2, 2) if n == 4 else (1, n)
    fig, axes = plt.subplots(rows, cols, figsize=(5.0 * cols, 3.8 * rows), squeeze=False)
    names = []
    for ax, key in zip(axes.flat, keys):
        reached, missed = False, False
        for line, (name, (x, med, lo, hi)) in enumerate(panels[key].items()):
            if name not in names:
                names.append(name)
            x, med, lo, hi = (np.asarray(v, float) for v in (x, med, lo, hi))
            ax.plot(
                x,
                np.where(np.isfinite(med), med, np.nan),
                marker=strategy_style(name)["marker"],
                markersize=4,
                **style(name),
            )
            finite = np.isfinite(hi)
            ax.fill_between(
                x[finite], lo[finite], hi[finite], color=color(name), alpha=0.15, linewidth=0
            )
            reached |= bool(np.any(np.isfinite(med) & (med > 0)))
            missing = ~np.isfinite(med)
            if missing.any():  # target not reached by the median trial: × at the top
                missed = True
                top = blended_transform_factory(ax.transData, ax.transAxes)
                ax.plot(
                    x[missing],
                    np.full(missing.sum(), 0.96),
                    marker="x",
                    markersize=8,
                    markeredgewidth=2,
                    color=color(name),
                    linestyle="none",
                    transform=top,
                    clip_on=False,
                    label="_missing_" + name,
                )
                # one label per line, inside the axes, one row per line
                xm = x[missing][0]
                left_half = xm <= (np.nanmin(x) + np.nanmax(x)) / 2
                where = ", ".join(f"{v:g}" for v in x[missing])
                ax.annotate(
                    f"{name}: not reached at {where}",
                    (xm, 0.96),
                    xycoords=top,
                    xytext=(6 if left_half else -6, -4 - 10 * line),
                    textcoords="offset points",
                    ha="left" if left_half else "right",
                    va="top",
                    fontsize=8,
                    color=color(name),
                )
        if xscale == "symlog":
            positive = [v for v in (xticks or []) if v > 0]
            ax.set_xscale("symlog", linthresh=min(positive) if positive else 1.0, linscale=0.6)
        else:
            ax.set_xscale(xscale)
        if reached:
            ax.set_yscale("log")
        else:  # no time to show (and a log axis needs a positive one): only the marks
            ax.set_yticks([])
        if reached and missed:
            low, high = ax.get_ylim()
            ax.set_ylim(low, high * 2.0)  # headroom for the marks at the top
        if xticks is not None:
            ax.set_xticks(xticks)
            ax.set_xticklabels([f"{t:g}" for t in xticks])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(key, fontsize=10)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    _legend_right(fig, names)
    return _finish(fig, title, path)


def tradeoff_figure(points: dict, title: str, path) -> tuple[Path, dict]:
    """Per distribution: median uploads vs median wall clock to target, marker area ∝
    computations; error bars = 95 % intervals of the medians.

    ``points[panel][name] = {"time": (med, lo, hi), "uploads": (...), "computations": (...)}``.
    """
    keys = list(points)
    fig, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 4.3), squeeze=False)
    names = []
    all_comp = [
        p["computations"][0]
        for pts in points.values()
        for p in pts.values()
        if np.isfinite(p["computations"][0])
    ]
    cmax = max(all_comp) if all_comp else 1.0
    for ax, key in zip(axes[0], keys):
        for name, p in points[key].items():
            t, u, c = p["time"], p["uploads"], p["computations"]
            if not np.isfinite(t[0]):
                continue
            if name not in names:
                names.append(name)
            xerr = [[u[0] - u[1]], [u[2] - u[0] if np.isfinite(u[2]) else 0]]
            yerr = [[t[0] - t[1]], [t[2] - t[0] if np.isfinite(t[2]) else 0]]
            ax.errorbar(
                [u[0]],
                [t[0]],
                xerr=xerr,
                yerr=yerr,
                color=color(name),
                fmt="none",
                capsize=2,
                linewidth=1,
                label="_err_" + name,
            )
            ax.scatter(
                [u[0]],
                [t[0]],
                s=60 + 240 * c[0] / cmax,
                color=color(name),
                marker=strategy_style(name)["marker"],
                label=name,
                edgecolor="k",
                linewidth=0.4,
                zorder=3,
            )
        ax.set_xscale("log")
        ax.set_xlabel(f"{UPLOADS_LABEL} to target")
        ax.set_ylabel(f"{TIME_LABEL}\nto target")
        ax.set_title(DISTRIBUTION_LABELS.get(key, key), fontsize=10)
    handles = [
        Line2D(
            [],
            [],
            color=color(n),
            marker=strategy_style(n)["marker"],
            linestyle="none",
            markeredgecolor="k",
            markeredgewidth=0.4,
            markersize=8,
            label=n,
        )
        for n in names
    ]
    fig.legend(
        handles=handles,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        title="strategy\n(marker area ∝\ncomputations)",
    )
    colors = {}
    for ax in fig.axes:
        for coll in ax.collections:
            label = coll.get_label()
            if label and not label.startswith("_"):
                colors.setdefault(label, to_hex(coll.get_facecolor()[0]))
    return _finish(fig, title, path, colors=colors)


def bits_curves(result, q=(0.1, 0.5, 0.9), points: int = 300) -> dict:
    """The data of one strategy in :func:`bits_figure`, from its Result: for ``bits_up``
    and ``bits_down`` (those the Result holds), ``(grid, *quantiles)``: the quantiles ``q``
    over trials of the gap at the last record with at most ``grid`` bits (0, then geometric
    from the smallest positive count to the largest). Past the end of the median trial's
    run the curve is NaN (a held last value would draw a false plateau).

    >>> import numpy as np
    >>> from lagc_jax.results import Result
    >>> r = Result(iterations=np.arange(3), loss=np.ones((2, 3)),
    ...            gap=np.array([[4.0, 2.0, 1.0], [4.0, 1.0, 0.5]]), wall_clock=np.zeros((2, 3)),
    ...            uploads=np.zeros((2, 3)), downloads=np.zeros((2, 3)),
    ...            computations=np.zeros((2, 3)), diverged=np.zeros(2, bool), optimal_value=0.0,
    ...            metrics={"bits_up": np.array([[0, 64, 128], [0, 64, 128]])})
    >>> grid, low, median, high = bits_curves(r, points=3)["bits_up"]
    >>> np.round(grid, 2).tolist(), high.tolist()
    ([0.0, 64.0, 90.51, 128.0], [4.0, 2.0, 2.0, 1.0])
    """
    out = {}
    for name in ("bits_up", "bits_down"):
        counts = np.asarray(result.metrics.get(name, ()), dtype=float)
        positive = counts[counts > 0]
        if positive.size == 0:
            continue
        grid = np.concatenate([[0.0], np.geomspace(positive.min(), positive.max(), points)])
        quantiles = band(on_grid(result, name, grid), q)
        quantiles[:, running_fraction(result, name, grid) < 0.5] = np.nan
        out[name] = (grid, *quantiles)
    return out


def error_curve(result, q=(0.1, 0.9), points: int = 300) -> tuple:
    """The data of one strategy in :func:`error_figure`, from its Result (recorded with
    ``record=("grad_error",)``): ``(grid, mean, low, high)``, the mean over trials of the
    gradient error η of the last estimate applied by each wall-clock time in ``grid`` (0 to
    the latest end of a trial) and its quantiles ``q``; NaN before the first round ends
    (η is not defined there) and past the end of the median trial's run.

    >>> import numpy as np
    >>> from lagc_jax.results import Result
    >>> r = Result(iterations=np.arange(3), loss=np.ones((2, 3)), gap=np.ones((2, 3)),
    ...            wall_clock=np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]),
    ...            uploads=np.zeros((2, 3)), downloads=np.zeros((2, 3)),
    ...            computations=np.zeros((2, 3)), diverged=np.zeros(2, bool), optimal_value=0.0,
    ...            metrics={"grad_error": np.array([[np.nan, 0.2, 0.1], [np.nan, 0.4, 0.3]])})
    >>> grid, mean, low, high = error_curve(r, points=5)
    >>> grid.tolist(), np.round(mean, 3).tolist()
    ([0.0, 0.5, 1.0, 1.5, 2.0], [nan, nan, 0.3, 0.3, 0.2])
    """
    grid = np.linspace(0.0, float(np.max(result.wall_clock[:, -1])), points)
    values = np.asarray(result.on_time_grid("grad_error", grid), dtype=float)
    with warnings.catch_warnings():  # all-NaN columns (before the first round): NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis=0)
        low, high = np.nanquantile(values, q, axis=0)
    ended = running_fraction(result, "wall_clock", grid) < 0.5
    return (grid, *(np.where(ended, np.nan, v) for v in (mean, low, high)))


def bits_figure(curves: dict, target_gap: float, title: str, path) -> tuple[Path, dict]:
    """Gap against bits on the wire: a panel for bits uploaded and, when present, one for
    bits downloaded, each the median over trials and its 10–90 % band, log–log.

    ``curves[name] = {"bits_up": (grid, q10, q50, q90), "bits_down": (...)}`` (what
    :func:`bits_curves` returns; each strategy on its own grid). Returns (path, line
    colours).

    >>> import tempfile
    >>> grid = np.geomspace(1e3, 1e6, 20)
    >>> curves = {"gd": {"bits_up": (grid, 0.5 * 1e3 / grid, 1e3 / grid, 2e3 / grid)}}
    >>> path, colors = bits_figure(curves, 1e-2, "demo", Path(tempfile.mkdtemp()) / "b.png")
    >>> path.exists(), colors["gd"] == color("gd")
    (True, True)
    """
    names = list(curves)
    panels = [
        (key, label)
        for key, label in (("bits_up", BITS_LABEL), ("bits_down", BITS_DOWN_LABEL))
        if any(key in c for c in curves.values())
    ]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.5 * len(panels), 4.6), sharey=True, squeeze=False
    )
    for ax, (key, xlabel) in zip(axes[0], panels):
        for name in names:
            if key not in curves[name]:
                continue
            grid, lo, med, hi = curves[name][key]
            ax.plot(grid, med, **style(name))
            ax.fill_between(grid, lo, hi, color=color(name), alpha=0.12, linewidth=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axhline(target_gap, color="0.5", linewidth=0.8, linestyle=(0, (4, 3)), zorder=0)
        ax.set_xlabel(xlabel)
        ax.set_title("median and 10–90 % band over trials", fontsize=10)
    axes[0][0].set_ylabel(GAP_LABEL)
    target = Line2D(
        [], [], color="0.5", linewidth=0.8, linestyle=(0, (4, 3)), label=f"target {target_gap:g}"
    )
    _legend_right(fig, names, [target])
    return _finish(fig, title, path)


def error_figure(
    curves: dict, title: str, path, xlabel: str = "wall-clock time"
) -> tuple[Path, dict]:
    """Gradient error η (MODEL.md §10) against wall clock: the mean over trials and a
    10–90 % band per strategy. The y axis is logarithmic down to the decade of the smallest
    η above rounding (ROUNDING_ERROR) and linear below it, so that exact strategies
    (η = 0 up to rounding) lie on 0.

    ``curves[name] = (grid, mean, low, high)`` (what :func:`error_curve` returns). Returns
    (path, line colours).

    >>> import tempfile
    >>> t = np.linspace(0.0, 10.0, 20)
    >>> curves = {"fastest-k": (t, 0.1 + 0 * t, 0.05 + 0 * t, 0.2 + 0 * t), "gd": (t, 0 * t, 0 * t, 0 * t)}
    >>> path, colors = error_figure(curves, "demo", Path(tempfile.mkdtemp()) / "e.png")
    >>> sorted(colors), path.exists()
    (['fastest-k', 'gd'], True)
    """
    values = np.concatenate([np.ravel(v) for c in curves.values() for v in c[1:]])
    significant = values[np.isfinite(values) & (values > ROUNDING_ERROR)]
    linear_below = 10.0 ** np.floor(np.log10(significant.min())) if significant.size else 1.0
    fig, ax = plt.subplots(figsize=(6.5, 4.4))
    for name, (grid, mean, low, high) in curves.items():
        ax.plot(grid, mean, **style(name))
        ax.fill_between(grid, low, high, color=color(name), alpha=0.12, linewidth=0)
    ax.set_yscale("symlog", linthresh=linear_below, linscale=0.3)
    ax.set_ylim(bottom=-0.05 * linear_below)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ERROR_LABEL)
    ax.set_title(f"mean and 10–90 % band over trials (linear below {linear_below:g})", fontsize=10)
    _legend_right(fig, list(curves))
    return _finish(fig, title, path)
