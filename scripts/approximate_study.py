"""Exact or approximate? Wall clock to a gap of 1e-3 and 1e-6 of the exact strategies and the
approximate ones of MODEL.md §10, at M = 12 (S = 2) and M = 48 (S = 3), under Exponential and
Pareto unit times and a measured straggler trace (issue 22).

- Strategies: exact gd, gc, grouping; approximate fastest-k, erasurehead (k = M/2 and 3M/4:
  every k ≥ M − S is grouping), sgc (deadline T = (S+1)·q_{1−p}, p computed by
  ``analysis.straggle_probability``, target miss probabilities 0.5, 0.25, 0.1), graph-gc
  (degree S + 1, both decoders, the graphs of seeds 0 and 1; at M = 12 seed 0's graph
  decodes every straggler set exactly, seed 1's none) and deadline (T = q_{1−p}, the same
  p, and T = ∞, which is gd). q_u is the u-quantile of one worker's unit time.
- Problem: least squares on one fixed synthetic data set (N = 384 rows, d = 20 features,
  column scales 1…4 so cond(XᵀX) ≈ 19, labels linear plus noise with R² ≈ 0.9), split into
  P = M contiguous partitions, scaled so that f(θ⁰) − f* = 1: a gap is a fraction of the
  initial gap. lag_synthetic(M) would need P ≤ d = 50 and is badly conditioned at P = 48.
- Unit times (mean 1, replayed, the same for every strategy of a setting: paired):
  Exponential(1); Pareto(scale 1/3, shape 1.5); the SE trace (sequence-length imbalance,
  43 steps × 64 ranks, normalised to mean 1): per trial M of its 64 ranks at random, in
  random positions, and per iteration one measured step at random (a row bootstrap).
- Step 1/L, τ = τ_b = 0, float64. Medians over trials with 95 % intervals.

Usage:
  python scripts/approximate_study.py            # full: 200 trials × 300 iterations, ~4 min
  python scripts/approximate_study.py --quick    # M = 6, S = 1, 16 trials × 150 iterations

Writes into --out (default figures): approximate_study.md (tables), approximate_study.csv,
approximate_study.png (gap against wall clock, every setting) and approximate_study_error.png
(gradient error η against wall clock, M = 12, Exponential); in both, graph-gc is seed 1's.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import lagc_jax as lj  # noqa: E402
from lagc_jax import analysis, datasets, delays, plotting  # noqa: E402
from lagc_jax.results import format_median_interval  # noqa: E402
from lagc_jax.studies.statistics import band, on_grid  # noqa: E402

TARGETS = (1e-3, 1e-6)
TARGET_LABELS = {1e-3: "1e-3", 1e-6: "1e-6"}
EARLY_ROUNDS = 20  # the tables report η over the first rounds, far from θ*
TRACE = "SE"
DELAYS = ("exponential", "pareto", "trace")
DELAY_LABELS = {
    "exponential": "Exponential(1)",
    "pareto": "Pareto(scale 1/3, shape 1.5)",
    "trace": f"{TRACE} trace (row bootstrap)",
}
EXACT = ("gd", "gc", "grouping")
# the lines of the gap figure: (strategy, option) of one variant per strategy
FIGURE_VARIANTS = (
    ("gd", ""),
    ("gc", ""),
    ("grouping", ""),
    ("fastest-k", ""),
    ("erasurehead", "k = M/2"),
    ("sgc", "p = 0.25"),
    ("graph-gc", "optimal, seed 1"),
    ("graph-gc", "fixed, seed 1"),
    ("deadline", "p = 0.25"),
)


@dataclass(frozen=True)
class Plan:
    """What one run of the study simulates."""

    settings: tuple  # (M, S) pairs; (S + 1) | M
    delays: tuple
    trials: int
    iters: int
    miss_probabilities: tuple = (0.5, 0.25, 0.1)
    graph_seeds: tuple = (0, 1)
    seed: int = 0
    error_setting: tuple = (12, 2, "exponential")  # the setting of the η figure


FULL = Plan(settings=((12, 2), (48, 3)), delays=DELAYS, trials=200, iters=300)
QUICK = Plan(
    settings=((6, 1),),
    delays=("exponential", "trace"),
    trials=16,
    iters=150,
    miss_probabilities=(0.25,),
    graph_seeds=(1,),
    error_setting=(6, 1, "exponential"),
)


# --------------------------------------------------------------------------- #
# the problem and the unit times
# --------------------------------------------------------------------------- #
def study_problem(num_workers: int, rows: int = 384, dim: int = 20, seed: int = 0):
    """The least-squares problem: the same data for every M, P = M contiguous partitions,
    scaled so that f(0) − f* = 1.

    >>> p = study_problem(12)
    >>> p.num_partitions, p.dim, round(p.loss(np.zeros(20)) - p.optimal_value, 12)
    (12, 20, 1.0)
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, dim)) * np.geomspace(1.0, 4.0, dim)
    signal = X @ rng.standard_normal(dim)
    y = signal + rng.standard_normal(rows) * signal.std() / 3.0  # R² ≈ 0.9
    theta_star = np.linalg.lstsq(X, y, rcond=None)[0]
    initial_gap = 0.5 * (y @ y) - 0.5 * np.sum((X @ theta_star - y) ** 2)
    scale = 1.0 / math.sqrt(initial_gap)
    return lj.problems.linear_regression(
        X * scale,
        y * scale,
        num_partitions=num_workers,
        name=f"least squares (N={rows}, d={dim}, P={num_workers})",
    )


def trace_times() -> np.ndarray:
    """The measured trace, (steps, ranks), normalised to mean 1."""
    return delays.normalize_samples(datasets.straggler_trace(TRACE))


def marginal_law(delay: str):
    """The law of one worker's unit time (mean 1): for the trace, its pooled times (a
    uniformly random rank of a uniformly random step)."""
    if delay == "exponential":
        return lj.ShiftedExponential(rate=1.0)
    if delay == "pareto":
        return lj.Pareto(scale=1.0 / 3.0, shape=1.5)
    return delays.Empirical(trace_times().ravel())


def unit_time_draws(delay: str, workers: int, trials: int, iters: int, seed: int) -> np.ndarray:
    """(trials, iters, workers) unit times. The trace: per trial ``workers`` of its ranks
    at random, in random positions; per iteration one of its steps at random.

    >>> x = unit_time_draws("trace", 12, 3, 5, seed=0)
    >>> x.shape, bool(np.isin(x, trace_times()).all())
    ((3, 5, 12), True)
    """
    rng = np.random.default_rng([seed, workers, DELAYS.index(delay)])
    if delay == "trace":
        times = trace_times()
        ranks = np.stack([rng.permutation(times.shape[1])[:workers] for _ in range(trials)])
        steps = rng.integers(0, times.shape[0], (trials, iters))
        return times[steps[:, :, None], ranks[:, None, :]]
    return marginal_law(delay).quantile(rng.uniform(size=(trials, iters, workers)))


# --------------------------------------------------------------------------- #
# the strategies
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class Variant:
    """One row of the study: a strategy with its options."""

    name: str
    option: str  # the row's option label ("" for none)
    strategy: object
    deadline: float = math.nan
    straggle_probability: float = math.nan


def variant_groups(workers: int, stragglers: int, delay: str, plan: Plan) -> list[list[Variant]]:
    """The variants of one setting, in groups of one pytree structure (a group runs as one
    :func:`lagc_jax.sweep`: deadlines, p and graphs are leaves).

    >>> groups = variant_groups(12, 2, "exponential", FULL)
    >>> [v.option for v in groups[-1]]
    ['p = 0.5', 'p = 0.25', 'p = 0.1', 'T = ∞']
    >>> round(groups[-1][1].deadline, 4), round(groups[6][1].straggle_probability, 4)
    (1.3863, 0.25)
    """
    M, S = workers, stragglers
    law = marginal_law(delay)
    groups = [[Variant(name, "", lj.make(name, M, S))] for name in (*EXACT, "fastest-k")]
    for fraction, label in ((1 / 2, "k = M/2"), (3 / 4, "k = 3M/4")):
        k = int(M * fraction)
        groups.append([Variant("erasurehead", label, lj.make("erasurehead", M, S, k=k))])
    sgc = []
    for p in plan.miss_probabilities:
        T = (S + 1) * float(law.quantile(1.0 - p))
        p_true = analysis.straggle_probability(law, T, load=S + 1)
        sgc.append(
            Variant(
                "sgc",
                f"p = {p:g}",
                lj.make("sgc", M, S, deadline=T, straggle_probability=p_true),
                T,
                p_true,
            )
        )
    groups.append(sgc)
    for decoder in ("optimal", "fixed"):
        groups.append(
            [
                Variant(
                    "graph-gc",
                    f"{decoder}, seed {seed}",
                    lj.make("graph-gc", M, S, decoder=decoder, seed=seed),
                )
                for seed in plan.graph_seeds
            ]
        )
    deadline = []
    for p in plan.miss_probabilities:
        T = float(law.quantile(1.0 - p))
        deadline.append(
            Variant(
                "deadline",
                f"p = {p:g}",
                lj.make("deadline", M, S, deadline=T),
                T,
                analysis.straggle_probability(law, T),
            )
        )
    deadline.append(Variant("deadline", "T = ∞", lj.make("deadline", M, S), math.inf, 0.0))
    groups.append(deadline)
    return groups


# --------------------------------------------------------------------------- #
# running and summarising
# --------------------------------------------------------------------------- #
def mean_interval(values) -> tuple:
    """Mean and its 95 % normal interval (1.96 standard errors) over trials.

    >>> mean_interval([1.0, 2.0, 3.0])
    (2.0, 0.868..., 3.131...)
    """
    values = np.asarray(values, dtype=float)
    mean = float(np.mean(values))
    half = 1.96 * float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def summary_row(result, variant: Variant, workers: int, stragglers: int, delay: str) -> dict:
    """The study's numbers of one run: to each target the wall clock, computations and
    iterations (median, 95 % interval) and the fraction of trials that reached it; the gap
    at the end; η over the first rounds (mean, 95 % interval) and over the whole run
    (median of the trials' means, as ``Result.summary``)."""
    row = dict(
        workers=workers,
        stragglers=stragglers,
        delay=delay,
        strategy=variant.name,
        option=variant.option,
        deadline=variant.deadline,
        straggle_probability=variant.straggle_probability,
        trials=result.num_trials,
        iterations_run=int(result.iterations[-1]),
    )
    summaries = {target: result.summary(target) for target in TARGETS}
    for target, summary in summaries.items():
        for field in ("wall_clock", "computations", "iterations"):
            row[f"{field}_{target:g}"] = summary[field]
        row[f"reached_{target:g}"] = summary["reached"]
    whole_run = summaries[TARGETS[0]]  # the final gap and η do not depend on the target
    row["final_gap"] = whole_run["final_gap"]
    row["diverged"] = whole_run["diverged"]
    row["eta_early"] = mean_interval(np.mean(result.grad_error[:, 1 : EARLY_ROUNDS + 1], axis=1))
    row["eta_run"] = whole_run["grad_error"]
    return row


def run_setting(workers: int, stragglers: int, delay: str, plan: Plan, log=print) -> list:
    """Every variant of one setting on the same unit times: [(Variant, Result)]."""
    problem = study_problem(workers)
    times = unit_time_draws(delay, workers, plan.trials, plan.iters, plan.seed)
    runs = []
    for group in variant_groups(workers, stragglers, delay, plan):
        start = time.perf_counter()
        results = lj.sweep(
            problem,
            [v.strategy for v in group],
            num_iters=plan.iters,
            num_trials=plan.trials,
            unit_times=times,
            record=("grad_error",),
        )
        runs += list(zip(group, results))
        log(
            f"  M={workers} {delay} {group[0].name} ×{len(group)}: "
            f"{time.perf_counter() - start:.1f}s"
        )
    return runs


def gap_curves(runs: list, points: int = 300) -> dict:
    """{(strategy, option): (grid, q10, median, q90)} of the gap on a common wall-clock grid
    up to 1.3 × the slowest exact strategy's median time to the smallest target."""
    horizon = max(r.summary(TARGETS[-1])["wall_clock"][0] for v, r in runs if v.name in EXACT)
    if not math.isfinite(horizon):
        horizon = max(float(np.median(r.wall_clock[:, -1])) for _, r in runs)
    grid = np.linspace(0.0, 1.3 * horizon, points)
    return {(v.name, v.option): (grid, *band(on_grid(r, "wall_clock", grid))) for v, r in runs}


def run_study(plan: Plan, log=print) -> tuple[list, dict, dict]:
    """The whole study: (rows, gap curves per setting, η curves of ``plan.error_setting``
    keyed by strategy name: one variant each, the fixed decoder left out)."""
    rows, curves, errors = [], {}, {}
    for workers, stragglers in plan.settings:
        for delay in plan.delays:
            runs = run_setting(workers, stragglers, delay, plan, log)
            rows += [summary_row(r, v, workers, stragglers, delay) for v, r in runs]
            curves[workers, stragglers, delay] = gap_curves(runs)
            if (workers, stragglers, delay) == plan.error_setting:
                errors = {
                    v.name: plotting.error_curve(r)
                    for v, r in runs
                    if (v.name, v.option) in FIGURE_VARIANTS and not v.option.startswith("fixed")
                }
    return rows, curves, errors


# --------------------------------------------------------------------------- #
# tables and figures
# --------------------------------------------------------------------------- #
def figure_label(name: str, option: str) -> str:
    return f"{name} ({option})" if option else name


def cell(triple, fmt: str) -> str:
    return format_median_interval(triple, fmt)


def setting_title(workers, stragglers, delay) -> str:
    return f"M = {workers}, S = {stragglers}, {DELAY_LABELS[delay]}"


def option_text(row: dict) -> str:
    """The row's option with its deadline T and probability p where it has them."""
    if row["strategy"] in ("sgc", "deadline") and math.isfinite(row["deadline"]):
        return f"{row['option']} (T = {row['deadline']:.3g}, p = {row['straggle_probability']:.3g})"
    return row["option"]


TABLE_HEADER = (
    "| strategy | option | time to 1e-3 | reached 1e-3 | time to 1e-6 | reached 1e-6 | "
    "final gap | η, first 20 rounds | computations to 1e-3 | computations to 1e-6 |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def table_lines(rows: list) -> list[str]:
    lines = [TABLE_HEADER]
    for row in rows:
        eta, eta_lo, eta_hi = row["eta_early"]
        lines.append(
            f"| {row['strategy']} | {option_text(row)} | {cell(row['wall_clock_0.001'], '.4g')} | "
            f"{row['reached_0.001']:.0%} | {cell(row['wall_clock_1e-06'], '.4g')} | "
            f"{row['reached_1e-06']:.0%} | {cell(row['final_gap'], '.2g')} | "
            f"{eta:.2g} [{max(eta_lo, 0.0):.2g}, {eta_hi:.2g}] | "
            f"{cell(row['computations_0.001'], '.0f')} | "
            f"{cell(row['computations_1e-06'], '.0f')} |"
        )
    return lines


def is_exact(row: dict) -> bool:
    """gd, gc, grouping, and deadline with T = ∞ (gd)."""
    return row["strategy"] in EXACT or (
        row["strategy"] == "deadline" and math.isinf(row["deadline"])
    )


def fastest(rows: list, target: float) -> dict | None:
    """The row with the smallest median time to ``target`` (None if no median trial reaches it)."""
    key = f"wall_clock_{target:g}"
    best = min(rows, key=lambda r: r[key][0])
    return best if math.isfinite(best[key][0]) else None


def headline(rows: list) -> str:
    """One setting in a sentence: the fastest exact and approximate strategy to each target
    (with the gap the approximate one ends at), and how the approximate ones fare at 1e-6."""
    gd = next(r for r in rows if r["strategy"] == "gd")
    exact = [r for r in rows if is_exact(r)]
    approx = [r for r in rows if not is_exact(r)]

    def describe(row, target, with_floor):
        if row is None:
            return "none"
        time_to = row[f"wall_clock_{target:g}"][0]
        floor = f", final gap {row['final_gap'][0]:.1g}" if with_floor else ""
        return (
            f"{figure_label(row['strategy'], row['option'])} {time_to:.4g} "
            f"({gd[f'wall_clock_{target:g}'][0] / time_to:.2f}× gd's speed{floor})"
        )

    parts = [
        f"to {TARGET_LABELS[target]}: exact "
        f"{describe(fastest(exact, target), target, False)}, approximate "
        f"{describe(fastest(approx, target), target, True)}"
        for target in TARGETS
    ]
    reached = [r["reached_1e-06"] for r in approx]
    floors = [r["final_gap"][0] for r in approx]
    return (
        f"Fastest {'; '.join(parts)}. Approximate variants reaching 1e-6 in at least half "
        f"the trials: {sum(f >= 0.5 for f in reached)} of {len(approx)}; the approximate "
        f"variants' median final gaps range over {min(floors):.1g} – {max(floors):.1g}."
    )


def condition_number(problem) -> float:
    eigenvalues = np.linalg.eigvalsh(np.asarray(problem.quadratic.hessians).sum(axis=0))
    return float(eigenvalues[-1] / eigenvalues[0])


def write_markdown(path: Path, rows: list, plan: Plan, command: str, seconds: float) -> None:
    problem = study_problem(plan.settings[0][0])
    setup = (
        f"Generated by `{command}` in {seconds:.0f} s (2 shared CPU cores). {plan.trials} "
        f"trials × {plan.iters} iterations per strategy, seed {plan.seed}; medians over trials "
        "[95 % interval of the median]; wall clock in units of E[X] (every law has mean 1); "
        "least squares, N = 384 rows, d = 20, P = M partitions, cond(XᵀX) ≈ "
        f"{condition_number(problem):.0f}, scaled so that f(θ⁰) − f* = 1; step 1/L, "
        "τ = τ_b = 0, float64; unit times replayed, the same for every strategy of a setting."
    )
    columns = (
        "Columns: time (and computations) to f − f* ≤ 1e-3 and 1e-6, the first record at or "
        'below the target ("not reached" when the median trial never gets there); the '
        "fraction of trials that get there; the gap at the end of the run (where a strategy "
        "that stalls ends); η = ‖ĝ − ∇f‖²/‖∇f‖², the mean over trials of each trial's mean "
        f"over its first {EARLY_ROUNDS} rounds (far from θ*; over the whole run, in the CSV, η "
        "grows without bound as ∇f → 0 for every approximate strategy), with a 95 % normal "
        "interval. deadline and sgc: T = q_(1−p), the (1−p)-quantile of one worker's unit "
        "time (sgc: (S+1)·q_(1−p), for its load S+1), and p as computed by "
        "analysis.straggle_probability; erasurehead: k of the M workers (k ≥ M − S would be "
        "grouping); graph-gc: the decoder and the random graph's seed (degree S + 1). "
        "deadline with T = ∞ is gd, row for row."
    )
    lines = ["# Exact or approximate? (scripts/approximate_study.py)", "", setup, "", columns, ""]
    for workers, stragglers in plan.settings:
        for delay in plan.delays:
            block = [r for r in rows if (r["workers"], r["delay"]) == (workers, delay)]
            lines += [
                f"## {setting_title(workers, stragglers, delay)}",
                "",
                *table_lines(block),
                "",
                headline(block),
                "",
            ]
    path.write_text("\n".join(lines), encoding="utf-8")


CSV_TRIPLES = (
    "wall_clock_0.001",
    "wall_clock_1e-06",
    "computations_0.001",
    "computations_1e-06",
    "iterations_0.001",
    "iterations_1e-06",
    "final_gap",
    "eta_early",
    "eta_run",
)


def write_csv(path: Path, rows: list) -> None:
    """One line per row; each (estimate, lo, hi) triple as three columns."""
    scalars = [k for k in rows[0] if k not in CSV_TRIPLES]
    header = scalars + [f"{k}_{part}" for k in CSV_TRIPLES for part in ("estimate", "lo", "hi")]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row[k] for k in scalars] + [v for k in CSV_TRIPLES for v in row[k]])


def line_style(name: str, option: str) -> dict:
    """The registry's colour and line style; graph-gc's fixed decoder dotted."""
    style = plotting.style(name)
    style["label"] = figure_label(name, option)
    if option.startswith("fixed"):
        style["linestyle"] = ":"
    return style


def plot_gaps(path: Path, curves: dict, plan: Plan) -> None:
    """Median gap (10–90 % band) against wall clock: a panel per setting."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(
        len(plan.settings),
        len(plan.delays),
        squeeze=False,
        figsize=(4.6 * len(plan.delays), 3.6 * len(plan.settings)),
    )
    handles = [Line2D([], [], **line_style(*variant)) for variant in FIGURE_VARIANTS]
    for row, (M, S) in zip(axes, plan.settings):
        for ax, delay in zip(row, plan.delays):
            for name, option in FIGURE_VARIANTS:
                grid, low, median, high = curves[M, S, delay][name, option]
                line = line_style(name, option)
                ax.plot(grid, median, **line)
                ax.fill_between(grid, low, high, color=line["color"], alpha=0.08, linewidth=0)
            for target in TARGETS:
                ax.axhline(target, color="0.5", linewidth=0.8, linestyle=(0, (4, 3)))
            ax.set_yscale("log")
            ax.set_ylim(1e-9, 2.0)
            ax.set_title(setting_title(M, S, delay), fontsize=9)
            ax.set_xlabel(plotting.TIME_LABEL)
            ax.set_ylabel(plotting.GAP_LABEL)
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), title="strategy")
    fig.suptitle(
        "Exact or approximate: median gap and 10–90 % band over trials "
        "(dashed: the targets 1e-3 and 1e-6)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=plotting.DPI, bbox_inches="tight")
    plt.close(fig)


def write_outputs(
    out: Path, plan: Plan, rows: list, curves: dict, errors: dict, command: str, seconds: float
) -> None:
    """approximate_study.md, .csv, .png and approximate_study_error.png into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    M, S, delay = plan.error_setting
    plotting.error_figure(
        errors,
        f"Gradient error, {setting_title(M, S, delay)}",
        out / "approximate_study_error.png",
        xlabel=plotting.TIME_LABEL,
    )
    plot_gaps(out / "approximate_study.png", curves, plan)
    write_csv(out / "approximate_study.csv", rows)
    write_markdown(out / "approximate_study.md", rows, plan, command, seconds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small check run (M = 6, S = 1, 16 trials × 150 iterations)",
    )
    parser.add_argument("--out", default="figures", help="output folder (default figures)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    start = time.perf_counter()
    rows, curves, errors = run_study(plan, log=lambda text: print(text, file=sys.stderr))
    command = "python scripts/approximate_study.py" + (" --quick" if args.quick else "")
    write_outputs(Path(args.out), plan, rows, curves, errors, command, time.perf_counter() - start)
    print(
        f"wrote {args.out}/approximate_study.{{md,csv,png}} and approximate_study_error.png "
        f"in {time.perf_counter() - start:.0f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
