"""Strategies side by side on one problem (the library behind ``lagc-jax run``).

:func:`run_strategies` simulates each of the chosen strategies on the same draws, saves each
:class:`~lagc_jax.results.Result` and returns its summary to the target gap;
:func:`format_summary_table` is the table ``lagc-jax run`` prints and
:func:`write_run_figures` its ``--figures``.

>>> import tempfile
>>> import lagc_jax as lj
>>> chosen = [lj.strategies.make(name, 4, 1) for name in ("gd", "grouping")]
>>> with tempfile.TemporaryDirectory() as folder:
...     run = run_strategies(lj.problems.lag_synthetic(4), chosen, lj.ShiftedExponential(),
...                          num_iters=20, num_trials=4, target_gap=1e-2, out=f"{folder}/run")
>>> [name for name, summary in run["rows"]], run["rows"][0][1]["reached"]
(['gd', 'grouping'], 1.0)
"""

from __future__ import annotations

import math
import warnings

__all__ = [
    "DEFAULT_TARGET_GAP",
    "NoProgress",
    "run_strategies",
    "format_summary_table",
    "write_run_figures",
]

DEFAULT_TARGET_GAP = 1e-6


class NoProgress:
    """The progress :func:`run_strategies` reports to when given none: it shows nothing.
    Any object with these four methods will do; the command line passes its
    :class:`lagc_jax.cli.progress.Progress` (a bar, or a line per strategy).

    >>> progress = NoProgress()
    >>> progress.start("gd"); progress.report(10, 20); progress.finish("wrote x"); progress.clear()
    """

    def start(self, label: str) -> None:
        """The run of the strategy named ``label`` starts."""

    def report(self, done: int, total: int) -> None:
        """``simulate``'s progress hook: ``done`` of the run's ``total`` iterations are done."""

    def finish(self, message: str) -> None:
        """The run ended; ``message`` says what was written."""

    def clear(self) -> None:
        """What is printed next (a warning) starts a clean line."""


def run_strategies(
    problem,
    chosen,
    delay,
    *,
    num_iters: int,
    num_trials: int,
    seed: int = 0,
    upload_time: float = 0.0,
    broadcast_time: float = 0.0,
    latency: float = 0.0,
    link: str = "parallel",
    target_gap: float = DEFAULT_TARGET_GAP,
    out: str = "results/run",
    grad_error: bool = False,
    curves: bool = False,
    progress=None,
) -> dict:
    """Simulate each strategy of ``chosen`` on ``problem`` (one seed: the same draws for all)
    and save its Result as ``OUT_<strategy>.npz`` / ``.json``. Returns ``{"rows": [(name,
    summary to target_gap)], "bits_curves": {name: ...}, "error_curves": {name: ...}}``; the
    curves (:func:`lagc_jax.plotting.bits_curves`, and with ``grad_error``, which records
    the gradient error of every round, :func:`lagc_jax.plotting.error_curve`) only with
    ``curves``. A run's warnings are shown after it ends (``progress.clear()`` first);
    ``progress``: :class:`NoProgress` by default.
    """
    from .. import simulate

    progress = NoProgress() if progress is None else progress
    rows, bits_curves, error_curves = [], {}, {}
    try:
        for strategy in chosen:
            progress.start(strategy.name)
            with warnings.catch_warnings(record=True) as caught:  # shown below, not over the bar
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
                    chunk_size=max(num_iters // 10, 1),
                    record=("grad_error",) if grad_error else (),
                    progress=progress.report,
                )
            path = result.save(f"{out}_{strategy.name}")
            progress.finish(f"wrote {path}")
            if caught:
                progress.clear()
            for w in caught:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)
            rows.append((strategy.name, result.summary(target_gap)))
            if curves:
                from .. import plotting

                bits_curves[strategy.name] = plotting.bits_curves(result)
                if grad_error:
                    error_curves[strategy.name] = plotting.error_curve(result)
    finally:  # an error or Ctrl-C is reported on a clean line
        progress.clear()
    return {"rows": rows, "bits_curves": bits_curves, "error_curves": error_curves}


def format_summary_table(rows, target_gap: float) -> str:
    """Markdown table of (strategy, summary dict) rows: medians with 95 % intervals, a
    column for every metric present in a row (bits on the wire, gradient error, ...). A
    strategy whose median trial does not reach the target shows the gap it ends at
    (:func:`~lagc_jax.results.format_final_gap`) and "—" for the quantities to the target.

    >>> one, never = (2.0, 1.0, 3.0), (float("inf"), 5.0, float("inf"))
    >>> reached = dict(wall_clock=one, uploads=one, computations=one, iterations=one,
    ...                final_gap=(1e-9, 1e-9, 1e-9), reached=1.0, diverged=0)
    >>> stalled = dict(wall_clock=never, uploads=never, computations=never, iterations=never,
    ...                final_gap=(0.64, 0.56, 0.71), reached=0.0, diverged=0)
    >>> print(format_summary_table([("gd", reached), ("async", stalled)], 1e-6))
    Median over trials to reach f − f* ≤ 1e-06, [95 % interval of the median]; not reached: the gap at the end of the run
    <BLANKLINE>
    | strategy | wall clock | uploads | computations | iterations | reached | diverged |
    |---|---|---|---|---|---|---|
    | gd | 2 [1, 3] | 2 [1, 3] | 2 [1, 3] | 2 [1, 3] | 100% | 0 |
    | async | not reached; final gap 0.64 [0.56, 0.71] | — | — | — | 0% | 0 |
    """
    from ..results import REACH_FIELDS, format_final_gap
    from ..results import format_median_interval as cell

    def reach_cell(triple, fmt):  # "—" where the median trial did not reach the target
        return "—" if math.isinf(triple[0]) else cell(triple, fmt)

    core = (*REACH_FIELDS, "final_gap", "reached", "diverged")
    metrics = sorted(
        {name for _, s in rows for name in s if name not in core},
        key=lambda name: (not name.startswith("bits"), name),
    )
    metric_header = "".join(f" {name.replace('_', ' ')} |" for name in metrics)
    stalled = any(math.isinf(s["wall_clock"][0]) for _, s in rows)
    lines = [
        f"Median over trials to reach f − f* ≤ {target_gap:g}, [95 % interval of the median]"
        + ("; per-round metrics: their mean over the run" if metrics else "")
        + ("; not reached: the gap at the end of the run" if stalled else ""),
        "",
        "| strategy | wall clock | uploads | computations | iterations |"
        + metric_header
        + " reached | diverged |",
        "|---|---|---|---|---|" + "---|" * len(metrics) + "---|---|",
    ]
    for name, s in rows:
        wall_clock = (
            format_final_gap(s) if math.isinf(s["wall_clock"][0]) else cell(s["wall_clock"], ".4g")
        )
        metric_cells = "".join(f" {reach_cell(s[m], '.3g') if m in s else '—'} |" for m in metrics)
        lines.append(
            f"| {name} | {wall_clock} | {reach_cell(s['uploads'], '.0f')} | "
            f"{reach_cell(s['computations'], '.0f')} | {reach_cell(s['iterations'], '.0f')} |"
            f"{metric_cells} {s['reached']:.0%} | {s['diverged']} |"
        )
    return "\n".join(lines)


def write_run_figures(
    problem_name: str,
    bits_curves: dict,
    error_curves: dict,
    *,
    workers: int,
    stragglers: int,
    delay,
    num_trials: int,
    target_gap: float,
    out: str,
) -> list:
    """``lagc-jax run --figures``: OUT_bits.png (gap against bits, every strategy whose
    Result holds bits) and, given ``error_curves``, OUT_grad_error.png, from the curves
    :func:`run_strategies` returns; returns the paths written."""
    from .. import plotting

    title = (
        f"{problem_name}, M = {workers}, S = {stragglers}, {delay.describe()}, {num_trials} trials"
    )
    written = []
    bits_curves = {name: curves for name, curves in bits_curves.items() if curves}
    if bits_curves:
        written.append(plotting.bits_figure(bits_curves, target_gap, title, f"{out}_bits.png")[0])
    if error_curves:
        written.append(plotting.error_figure(error_curves, title, f"{out}_grad_error.png")[0])
    return written
