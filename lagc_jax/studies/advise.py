"""``lagc-jax advise``: which remedy should my cluster use, given measured compute times?

Simulates every applicable strategy and number of tolerated stragglers S on
unit times resampled from measurements (``lagc_jax.delays.Empirical``), with
common random numbers (one seed: every strategy sees the same draws), and
ranks them by the median wall clock to reach a target gap.

How the measured times become unit times:

- times are divided by their mean (``normalize="mean"``), so wall clocks and
  ``upload_time`` read in units of the mean measured compute time;
- when the number of workers M equals the number of measured columns: a row
  bootstrap (each iteration replays one measured step, keeping persistent
  stragglers and within-step correlation), with the columns shuffled once per
  trial by default: which data partition or group a slow rank serves is an
  accident of the trace's layout, not a property of the cluster;
- when M differs from the number of columns (or ``pooled=True``): pooled
  i.i.d. draws from all measured times. Worker identity and the correlation
  within a step are lost; to keep them, pass a file with exactly M columns.

Strategies come from ``strategies.names()``; a (name, S) for which
``strategies.make`` raises ValueError does not apply and is skipped, and a
(name, S) whose simulated trials are identical to an earlier one's (e.g. a
strategy that ignores S) is listed once.

>>> import numpy as np
>>> delay, note = delay_from_times(np.array([[1.0, 3.0], [1.0, 5.0]]), 2)
>>> delay.describe(), note.startswith("row bootstrap")
('empirical(2 steps × 2 workers, mean 1, shuffled columns)', True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import delays, strategies
from ..checks import PROBLEMS, default_k
from ..engine import simulate
from ..results import Result, format_final_gap, format_median_interval
from .statistics import ratio_median_interval

__all__ = [
    "PROBLEMS",
    "Candidate",
    "build_problem",
    "delay_from_times",
    "compare",
    "rank",
    "paired_ratio",
    "recommendation",
    "format_table",
    "plot_candidates",
]

DEFAULT_RELATIVE_TARGET = 1e-6


def build_problem(name: str, num_workers: int):
    """The learning problem ``name`` (one of PROBLEMS) split over ``num_workers`` partitions.

    >>> build_problem("lag_synthetic", 4).num_partitions
    4
    """
    if name not in PROBLEMS:
        raise ValueError(f"problem must be one of {', '.join(PROBLEMS)}, got {name!r}")
    if name == "lag_synthetic":
        from ..problems import lag_synthetic

        return lag_synthetic(num_workers)
    from .. import datasets

    try:
        return getattr(datasets, name)(num_workers)
    except ImportError as error:
        raise ValueError(f"problem {name!r}: {error}") from None


def delay_from_times(
    times,
    num_workers: int,
    *,
    normalize: str = "mean",
    shuffle_columns: bool = True,
    pooled: bool = False,
):
    """Build the Empirical delay model ``advise`` uses; return (delay, a one-line note).

    Row bootstrap when ``num_workers`` equals the number of columns (columns
    shuffled per trial unless ``shuffle_columns=False``), else pooled i.i.d.
    draws from all times. ``normalize``: "mean", "median" or "none".

    >>> import numpy as np
    >>> d, note = delay_from_times(np.ones((3, 4)), 6)
    >>> d.pooled, note.split(":")[0]
    (True, 'pooled')
    """
    times = np.asarray(times, dtype=float)
    if normalize not in ("mean", "median", "none"):
        raise ValueError(f"normalize must be 'mean', 'median' or 'none', got {normalize!r}")
    if normalize != "none":
        times = delays.normalize_samples(times, normalize)
    if times.ndim == 1:
        pooled = True
    columns = times.shape[1] if times.ndim == 2 else None
    if not pooled and columns == num_workers:
        delay = delays.Empirical(times, shuffle_columns=shuffle_columns)
        how = "columns shuffled once per trial" if shuffle_columns else "columns as measured"
        return delay, (
            f"row bootstrap of {times.shape[0]} measured steps, worker m = column m ({how})"
        )
    reason = (
        "pooled requested"
        if pooled and columns == num_workers
        else f"{num_workers} workers but {columns} measured columns"
    )
    return delays.Empirical(times.ravel()), (
        f"pooled: i.i.d. draws from all {times.size} measured times ({reason}); worker "
        "identity and within-step correlation are not kept"
    )


@dataclass
class Candidate:
    """One simulated (strategy, S): its summary to the target and per-trial reach values."""

    name: str
    stragglers: int
    summary: dict
    reach: dict
    result: Result = field(repr=False)
    same_as: list = field(default_factory=list)  # (name, S) with identical trials

    @property
    def label(self) -> str:
        return f"{self.name} S={self.stragglers}"

    @property
    def median_time(self) -> float:
        return self.summary["wall_clock"][0]


def _identical(a: Result, b: Result) -> bool:
    return all(
        np.array_equal(getattr(a, f), getattr(b, f))
        for f in ("gap", "wall_clock", "uploads", "downloads", "computations")
    )


def compare(
    problem,
    delay,
    num_workers: int,
    stragglers=None,
    *,
    num_iters: int,
    num_trials: int,
    target_gap=None,
    seed: int = 0,
    upload_time: float = 0.0,
    broadcast_time: float = 0.0,
    latency: float = 0.0,
    link: str = "parallel",
    names=None,
    progress=None,
):
    """Simulate every applicable (strategy, S); return Candidates ranked by median wall clock.

    ``stragglers``: the S values to try (default 0..min(3, M − 1)); ``names``:
    the strategies (default ``strategies.names()``); ``target_gap``: f − f* to
    reach (default 1e-6 × the initial gap). ``upload_time`` τ is the link time of one
    full-precision gradient and ``latency`` is added to every upload (a message of β
    bits takes latency + τ·β/(32d), MODEL.md §9). All runs share ``seed`` (common
    random numbers). Ranked by :func:`rank`. ``progress(label)`` is called before each
    run.

    >>> import lagc_jax as lj
    >>> ranked = compare(lj.problems.lag_synthetic(4), lj.ShiftedExponential(), 4, [0, 1],
    ...                  num_iters=60, num_trials=8, names=["gd", "grouping"])
    >>> [c.label for c in ranked]
    ['grouping S=1', 'gd S=0']
    """
    if stragglers is None:
        stragglers = range(min(3, num_workers - 1) + 1)
    stragglers = [int(s) for s in stragglers]
    names = strategies.names() if names is None else tuple(names)
    candidates = []
    for name in names:
        for s in stragglers:
            # the built-in strategy with a k option (k-async) waits for k = M − S
            # gradients; a user factory keeps its own default (checks.default_k)
            k = default_k(strategies.info(name).factory, num_workers, s)
            try:
                strategy = strategies.make(
                    name, num_workers, s, **({"k": k} if k is not None else {})
                )
            except ValueError:
                continue  # does not apply to (M, S)
            if link not in tuple(getattr(strategy, "links", (link,))):
                continue  # e.g. asynchronous strategies on a shared link
            if progress is not None:
                progress(f"{name} S={s}")
            result = simulate(
                problem,
                strategy,
                delay,
                num_iters=num_iters,
                num_trials=num_trials,
                seed=seed,
                upload_time=upload_time,
                broadcast_time=broadcast_time,
                latency=latency,
                link=link,
            )
            twin = next((c for c in candidates if _identical(c.result, result)), None)
            if twin is not None:
                twin.same_as.append((name, s))
                continue
            target = (
                DEFAULT_RELATIVE_TARGET * float(np.mean(result.gap[:, 0]))
                if target_gap is None
                else target_gap
            )
            candidates.append(
                Candidate(name, s, result.summary(target), result.to_reach(target), result)
            )
    if not candidates:
        raise ValueError(
            f"no strategy applies to num_workers={num_workers} with stragglers {stragglers}"
        )
    return rank(candidates)


def rank(candidates) -> list:
    """Candidates sorted by median wall clock to the target, ties going to fewer bits
    uploaded, then to fewer uploads (medians); never reaching the target ranks last."""
    return sorted(
        candidates, key=lambda c: (c.median_time, c.summary["bits_up"][0], c.summary["uploads"][0])
    )


def paired_ratio(winner: Candidate, other: Candidate, confidence: float = 0.95):
    """Median over trials of other's / winner's wall clock to the target, with an interval.

    The strategies ran on the same draws (common random numbers), so the
    per-trial ratio is a paired comparison; a trial that never reached counts as inf.
    """
    return ratio_median_interval(winner.reach["wall_clock"], other.reach["wall_clock"], confidence)


def _ratio_text(best: Candidate, other: Candidate) -> str:
    """``other``'s wall clock against ``best``'s, in words where a ratio would be inf or NaN.

    A ratio needs the recommended one's median wall clock > 0: both 0 (the target
    is met at the start) prints "both 0", other > 0 prints "ratio —". A runner-up
    that did not reach the target in most trials has no finite ratio: said so.
    """
    if best.median_time == 0:
        if other.median_time == 0:
            return "both 0 (median wall clock 0: the target gap is met at the start)"
        other_text = (
            f"its own is {other.median_time:.4g}"
            if math.isfinite(other.median_time)
            else "it did not reach the target in most trials"
        )
        return f"ratio — (the recommended one's median wall clock is 0; {other_text})"
    med, lo, hi = paired_ratio(best, other)
    if not math.isfinite(med):
        return (
            "did not reach the target in most trials (no finite paired ratio; raise "
            "--iters to compare)"
        )
    hi_text = "∞" if math.isinf(hi) else f"{hi:.3f}"
    return (
        f"its wall clock is {med:.3f}× [{lo:.3f}, {hi_text}] the recommended one's "
        f"(paired median over trials)"
    )


def recommendation(ranked) -> str:
    """The recommended strategy with its paired margin over the runner-up and over gd."""
    best = ranked[0]
    if not math.isfinite(best.median_time):
        return "No strategy reached the target gap in the median: raise --iters."
    lines = [f"Recommended: {best.label} (median wall clock {best.median_time:.4g})."]
    others = [("the runner-up", ranked[1]) if len(ranked) > 1 else None]
    gd = next((c for c in ranked if c.name == "gd"), None)
    if gd is not None and gd is not best and (len(ranked) < 2 or gd is not ranked[1]):
        others.append(("gd", gd))
    for role, other in filter(None, others):
        lines.append(f"  vs {role} {other.label}: {_ratio_text(best, other)}")
    missed = [c.label for c in ranked if not math.isfinite(c.median_time)]
    if missed:
        lines.append(
            f"  Not reached in most trials within the iterations simulated: "
            f"{', '.join(missed)} (raise --iters or relax --target-gap to rank them)."
        )
    return "\n".join(lines)


def format_table(ranked, target_gap_text: str) -> str:
    """Markdown table: rank, strategy, S, medians [95 % intervals] to the target (wall
    clock, uploads, bits uploaded, computations, iterations); where the median trial does
    not reach the target, the gap it ends at and "—"."""

    def cell(triple, fmt):
        return "—" if math.isinf(triple[0]) else format_median_interval(triple, fmt)

    stalled = any(not math.isfinite(c.median_time) for c in ranked)
    lines = [
        f"Median over trials to reach {target_gap_text}, [95 % interval of the median]"
        + ("; not reached: the gap at the end of the run" if stalled else ""),
        "",
        "| rank | strategy | S | wall clock | uploads | bits up | computations | iterations "
        "| reached |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, c in enumerate(ranked, 1):
        s = c.summary
        wall_clock = (
            format_final_gap(s)
            if not math.isfinite(c.median_time)
            else cell(s["wall_clock"], ".4g")
        )
        lines.append(
            f"| {i} | {c.name} | {c.stragglers} | {wall_clock} | "
            f"{cell(s['uploads'], '.0f')} | {cell(s['bits_up'], '.3g')} | "
            f"{cell(s['computations'], '.0f')} | {cell(s['iterations'], '.0f')} | "
            f"{s['reached']:.0%} |"
        )
    twins = [
        f"{c.label} = " + ", ".join(f"{n} S={s}" for n, s in c.same_as) for c in ranked if c.same_as
    ]
    if twins:
        lines += ["", "Identical trials (listed once): " + "; ".join(twins)]
    return "\n".join(lines)


def plot_candidates(ranked, path, title: str = "") -> Path:
    """Horizontal bars: median wall clock and uploads to the target, 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [c for c in ranked if math.isfinite(c.median_time)] or ranked[:1]
    labels = [c.label for c in shown][::-1]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.35 * len(shown) + 1.6), sharey=True)
    for ax, key, xlabel in (
        (axes[0], "wall_clock", "wall clock to target"),
        (axes[1], "uploads", "uploads to target"),
    ):
        med = np.array([c.summary[key][0] for c in shown][::-1])
        lo = np.array([c.summary[key][1] for c in shown][::-1])
        hi = np.array([c.summary[key][2] for c in shown][::-1])
        finite = np.isfinite(med)
        med_f = np.where(finite, med, 0.0)
        err = np.vstack(
            [med_f - np.where(finite, lo, 0.0), np.where(np.isfinite(hi), hi, med_f) - med_f]
        )
        colors = ["C3" if i == len(shown) - 1 else "C0" for i in range(len(shown))]
        ax.barh(labels, med_f, xerr=err, color=colors, capsize=3)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
