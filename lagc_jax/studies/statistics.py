"""Numeric helpers the studies and the figures share: curves of many trials on a common
grid (:func:`on_grid`, :func:`running_fraction`, :func:`band`), the mean with its Student-t
interval (:func:`mean_interval`, :func:`student_t_quantile`) and the paired ratio of two runs
on the same draws (:func:`ratio_median_interval`). Medians with their intervals are
:func:`lagc_jax.results.median_interval`.

>>> band([[1.0], [2.0], [3.0]], (0.5,)).tolist()
[[2.0]]
"""

from __future__ import annotations

import math

import numpy as np

from ..results import Result, median_interval

__all__ = [
    "on_grid",
    "running_fraction",
    "band",
    "student_t_quantile",
    "mean_interval",
    "ratio_median_interval",
]


def on_grid(result: Result, xname: str, grid, yname: str = "gap") -> np.ndarray:
    """``yname`` at the last record with ``xname`` ≤ grid value, per trial: (T, len(grid)).

    The analogue of :meth:`Result.on_time_grid` for any cumulative counter
    (``xname="wall_clock"`` calls it); past a trial's last record its last
    value is held. A non-finite gap (diverged) becomes +inf.
    """
    grid = np.asarray(grid, dtype=float)
    if xname == "wall_clock":
        out = np.asarray(result.on_time_grid(yname, grid), dtype=float)
    else:
        x, y = getattr(result, xname), getattr(result, yname)
        out = np.empty((result.num_trials, len(grid)))
        for i in range(result.num_trials):
            idx = np.searchsorted(x[i], grid, side="right") - 1
            out[i] = y[i, np.clip(idx, 0, None)]
    return np.where(np.isfinite(out), out, np.inf)


def running_fraction(result: Result, xname: str, grid) -> np.ndarray:
    """Fraction of trials whose run has not ended by each grid value of ``xname``."""
    last = getattr(result, xname)[:, -1:]
    return np.mean(np.asarray(grid, dtype=float)[None, :] <= last, axis=0)


def band(values: np.ndarray, q=(0.1, 0.5, 0.9)) -> np.ndarray:
    """Quantiles over trials (axis 0) without interpolation (+inf entries allowed)."""
    return np.quantile(np.asarray(values, dtype=float), q, axis=0, method="inverted_cdf")


def student_t_quantile(confidence: float, dof: int) -> float:
    """t such that P(|T| <= t) = ``confidence`` for Student's t with integer ``dof`` >= 1
    (bisection on the exact cdf, Abramowitz & Stegun 26.7.3–4).

    >>> [round(student_t_quantile(0.95, n), 3) for n in (1, 2, 9, 39)]
    [12.706, 4.303, 2.262, 2.023]
    """

    def covered(t):
        theta = math.atan(t / math.sqrt(dof))
        c2, s = math.cos(theta) ** 2, math.sin(theta)
        if dof % 2:  # odd
            j = np.arange(1, (dof - 1) // 2)
            series = 1.0 + np.sum(np.cumprod(2 * j / (2 * j + 1) * c2)) if dof > 1 else 0.0
            return 2 / math.pi * (theta + (s * math.cos(theta) * series if dof > 1 else 0.0))
        j = np.arange(1, dof // 2)
        return s * (1.0 + np.sum(np.cumprod((2 * j - 1) / (2 * j) * c2)))

    low, high = 0.0, 1.0
    while covered(high) < confidence:
        high *= 2
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if covered(middle) < confidence else (low, middle)
    return (low + high) / 2


def mean_interval(values, confidence: float = 0.95) -> tuple:
    """(mean, lo, hi): the mean over trials with its Student-t interval, mean ± t·s/√n.

    Any value that is NaN (a trial that never reached) or inf makes the mean +inf and the
    interval (inf, inf); with one value the interval is (NaN, NaN). The interval assumes
    a finite variance: with heavy tails (Pareto shape <= 2) trust the median's.

    >>> mean_interval([1.0, 2.0, 3.0])
    (2.0, -0.4841..., 4.4841...)
    """
    x = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(x)):
        return math.inf, math.inf, math.inf
    mean = float(np.mean(x))
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = student_t_quantile(confidence, len(x) - 1) * float(np.std(x, ddof=1)) / math.sqrt(len(x))
    return mean, mean - half, mean + half


def ratio_median_interval(best, other, confidence: float = 0.95) -> tuple:
    """Median [interval] over trials of the per-trial ratio ``other / best`` of two runs on the
    same draws (a paired comparison); NaN (never reached) counts as inf, and so does 0/0.

    >>> ratio_median_interval([1.0, 2.0, 4.0], [2.0, 3.0, float("nan")])   # ratios 2, 1.5, inf
    (2.0, 1.5, inf)
    """
    a = np.where(np.isnan(best), np.inf, best)
    b = np.where(np.isnan(other), np.inf, other)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = b / a
    return median_interval(np.where(np.isnan(ratio), np.inf, ratio), confidence)
