"""The paper-reproduction study (``lagc-jax reproduce``) and the analytic-vs-Monte-Carlo
per-iteration table (``lagc-jax table``).

``reproduce`` follows Zhang & Simeone (LAGC, IEEE TNNLS 2021): M = 12 workers,
S = 2 (4 groups), the LAG synthetic problem, α = 1/L, D = 10, default ξ, unit
times Exponential(rate 1) and Pareto(scale 1, shape 1.5), every strategy on
the same delays (common random numbers: one seed for all strategies), float64.
It writes, into ``--out`` (default ``figures``):

- ``convergence_<dist>.png``: gap vs wall clock / uploads / computations;
- ``tradeoff.png``: uploads vs wall clock to the target gap, per strategy;
- ``iteration_time_vs_S.png``: analytic vs Monte Carlo mean iteration time;
- ``sweep_tau.png``, ``sweep_S.png``: time to target vs upload time τ and vs S;
- ``table.md`` / ``table.csv``: wall clock, uploads, computations to reach the
  target (medians with 95 % intervals) and the one-line conclusions;
- ``sweep_tau.csv``, ``sweep_S.csv``: the sweeps' numbers;
- ``async_k.png``, ``sweep_k.csv``, ``table_async.md`` (also appended to ``table.md``): k-async (MODEL.md §8) time to a looser target gap
  against k, at α = 1/L and the best α of a small grid, and the gap it ends at
  (k-async in the main table uses k = M − S; asynchronous runs get ⌈iters·M/k⌉ updates);

and each main-study run's :class:`~lagc_jax.results.Result` (npz + json) into
``--runs`` (default ``results/reproduce``, ignored by git). Sweep runs are
summarised in the CSVs rather than saved whole (hundreds of runs).

Time is reported in units of E[X], the mean unit time (1 for Exponential(1),
3 for Pareto(1, 1.5)); τ in the sweep is likewise a multiple of E[X].
"""

from __future__ import annotations

import csv
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import analysis, delays, problems, strategies
from ..engine import simulate
from ..results import Result, median_interval
from .statistics import band, on_grid, running_fraction

TARGET_GAP = 1e-6
DISTRIBUTIONS = {
    "exponential": delays.ShiftedExponential(shift=0.0, rate=1.0),
    "pareto": delays.Pareto(scale=1.0, shape=1.5),
}
NON_LAZY = tuple(n for n in strategies.names() if strategies.info(n).analytic)  # gd … grouping
S_SWEEP_STRATEGIES = ("gd", "lag-wk", "gc", "grouping", "lagc", "lagc-ps", "g-lag", "g-lag-wk")
TAU_SWEEP_STRATEGIES = ("gd", "gc", "grouping", "lag-wk", "lag-ps", "g-lag", "lagc")
# Strategies whose runs do not depend on S: S-sweep values come from the main study.
S_INDEPENDENT = ("gd", "lag-wk", "lag-ps")
TABLE_FIELDS = ("wall_clock", "uploads", "computations", "downloads", "iterations", "final_gap")
# Asynchronous baselines (MODEL.md §8): with a constant step they do not converge to f*
# (each update applies k of the M partition gradients, stale), so besides TARGET_GAP the
# study reports the time to this looser gap and the gap at the end of the run.
ASYNC_TARGET_GAP = 1e-1
ASYNC_STEP_GRID = (0.25, 0.5, 1.0, 2.0)  # multiples of 1/L tried for k-async


@dataclass(frozen=True)
class StudyConfig:
    """Everything that defines a reproduction run (``full()`` and ``quick()`` presets)."""

    workers: int = 12
    stragglers: int = 2
    trials: int = 1000
    iters: int = 400  # measured: every converging strategy reaches 1e-6 by k = 290
    target_gap: float = TARGET_GAP
    seed: int = 0
    distributions: tuple = ("exponential", "pareto")
    strategies: tuple = field(default_factory=strategies.names)
    # Sweeps: trials per run (None: as the main study, whose runs are then reused)
    sweep_trials: int | None = 300
    # S sweep (analytic vs MC iteration time, and time to target vs S)
    s_values: tuple = (0, 1, 2, 3, 5)
    s_sweep_iters: int = 500  # lagc at S = 5: median 309 iterations, a few % need > 500
    s_sweep_strategies: tuple = S_SWEEP_STRATEGIES
    # τ sweep (multiples of E[X])
    taus: tuple = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)
    links: tuple = ("parallel", "shared")
    tau_distributions: tuple = ("exponential", "pareto")
    tau_strategies: tuple = TAU_SWEEP_STRATEGIES
    # k sweep of k-async (k ≤ M kept): time to ASYNC_TARGET_GAP at α = 1/L and the best
    # α of ASYNC_STEP_GRID (multiples of 1/L)
    k_values: tuple = (1, 2, 4, 6, 8, 10, 12)
    async_step_grid: tuple = ASYNC_STEP_GRID
    async_target_gap: float = ASYNC_TARGET_GAP

    @classmethod
    def full(cls, **overrides) -> "StudyConfig":
        return cls(**overrides)

    @property
    def sweep_trial_count(self) -> int:
        return self.trials if self.sweep_trials is None else self.sweep_trials

    @classmethod
    def quick(cls, **overrides) -> "StudyConfig":
        base = dict(
            trials=100,
            iters=300,
            sweep_trials=None,
            s_values=(0, 2, 5),
            s_sweep_iters=400,
            taus=(0.0, 0.5, 2.0),
            tau_distributions=("exponential",),
            k_values=(1, 10, 12),
            async_step_grid=(0.25, 1.0),
        )
        base.update(overrides)
        return cls(**base)


def mean_unit_time(delay) -> float:
    """E[X] of a unit-time distribution (the study's time unit): the delay model's mean.

    >>> mean_unit_time(delays.Pareto(scale=1.0, shape=1.5))
    3.0
    """
    return float(delay.mean)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def strategy_options(name, workers, stragglers) -> dict:
    """Options the study builds a strategy with: k-async uses k = M − S (it sums as many
    gradients per update as gc and fastest-k wait for); every other one its defaults.

    >>> strategy_options("k-async", 12, 2), strategy_options("gc", 12, 2)
    ({'k': 10}, {})
    """
    return {"k": workers - stragglers} if name == "k-async" else {}


def study_updates(name, workers, stragglers, iters) -> int:
    """Server updates of a main-study run: ``iters`` for the synchronous strategies and
    ⌈iters·M/k⌉ for the asynchronous ones, so that every run can apply iters·M partition
    gradients (an asynchronous update applies k of them).

    >>> study_updates("gd", 12, 2, 400), study_updates("async", 12, 2, 400)
    (400, 4800)
    """
    strategy = strategies.make(
        name, workers, stragglers, **strategy_options(name, workers, stragglers)
    )
    if isinstance(strategy, strategies.KAsync):
        return -(-iters * workers // strategy.k)
    return iters


def _run(
    problem,
    name,
    workers,
    stragglers,
    delay,
    *,
    trials,
    iters,
    seed,
    upload_time=0.0,
    link="parallel",
    record_every=1,
) -> Result:
    """One simulate() call; divergence warnings are recorded in the Result, not printed."""
    strategy = strategies.make(
        name, workers, stragglers, **strategy_options(name, workers, stragglers)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # One compiled call per run: chunking compiles a second program (batched
        # carry) and memory is already small (records are (trials, iters+1) scalars).
        return simulate(
            problem,
            strategy,
            delay,
            num_iters=iters,
            num_trials=trials,
            seed=seed,
            upload_time=upload_time,
            link=link,
            record_every=record_every,
            chunk_size=iters,
        )


def _applicable(name, workers, stragglers) -> bool:
    """Whether the strategy can be built for (M, S) (grouping needs (S+1) | M)."""
    try:
        strategies.make(name, workers, stragglers, **strategy_options(name, workers, stragglers))
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- #
# table
# --------------------------------------------------------------------------- #
def summarize(result: Result, target_gap: float, time_unit: float) -> dict:
    """Result.summary with wall clock converted to units of E[X]."""
    s = result.summary(target_gap)
    s["wall_clock"] = tuple(v / time_unit for v in s["wall_clock"])
    s["trials"] = result.num_trials
    return s


def _cell(triple, fmt):
    med, lo, hi = triple
    if not math.isfinite(med):
        return "not reached"
    hi_text = "∞" if not math.isfinite(hi) else format(hi, fmt)
    return f"{format(med, fmt)} [{format(lo, fmt)}, {hi_text}]"


def conclusions(rows: dict) -> dict:
    """The fastest strategy and the one with fewest uploads (medians, reached ones only).

    Ties in uploads are broken by wall clock. Returns {"fastest": name,
    "fewest_uploads": name}.
    """
    reached = {n: s for n, s in rows.items() if math.isfinite(s["wall_clock"][0])}
    if not reached:
        return {"fastest": None, "fewest_uploads": None}
    fastest = min(reached, key=lambda n: reached[n]["wall_clock"][0])
    fewest = min(reached, key=lambda n: (reached[n]["uploads"][0], reached[n]["wall_clock"][0]))
    return {"fastest": fastest, "fewest_uploads": fewest}


def conclusion_line(dist: str, rows: dict) -> str:
    c = conclusions(rows)
    if c["fastest"] is None:
        return f"- **{dist}**: no strategy reached the target."
    f, u = c["fastest"], c["fewest_uploads"]
    return (
        f"- **{dist}**: fastest: **{f}** (median {rows[f]['wall_clock'][0]:.4g} E[X]); "
        f"fewest uploads: **{u}** (median {rows[u]['uploads'][0]:.0f})."
    )


def format_table(tables: dict, config: StudyConfig) -> str:
    """Markdown: one table per distribution, then the conclusion lines."""
    lines = [
        f"# Reproduction: M = {config.workers}, S = {config.stragglers}, lag_synthetic"
        f"({config.workers}), α = 1/L, D = 10, default ξ, {config.trials} trials, float64",
        "",
        f"Median over trials to reach f − f* ≤ {config.target_gap:g} "
        "[95 % distribution-free interval of the median]. Wall clock in units of E[X] "
        "(mean unit time). Common random numbers across strategies.",
    ]
    for dist, rows in tables.items():
        lines += [
            "",
            f"## {dist}: {DISTRIBUTIONS[dist].describe()}, E[X] = "
            f"{mean_unit_time(DISTRIBUTIONS[dist]):g}",
            "",
            "| strategy | wall clock (E[X]) | uploads | computations | iterations "
            "| reached | diverged | final gap |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, s in rows.items():
            lines.append(
                f"| {name} | {_cell(s['wall_clock'], '.4g')} | {_cell(s['uploads'], '.0f')} | "
                f"{_cell(s['computations'], '.0f')} | {_cell(s['iterations'], '.0f')} | "
                f"{s['reached']:.0%} | {s['diverged']} | {_cell(s['final_gap'], '.2g')} |"
            )
    lines += ["", "## Conclusions", ""]
    lines += [conclusion_line(dist, rows) for dist, rows in tables.items()]
    return "\n".join(lines) + "\n"


def write_table_csv(tables: dict, path) -> Path:
    path = Path(path)
    header = ["distribution", "strategy", "time_unit"]
    for f in TABLE_FIELDS:
        header += [f"{f}_median", f"{f}_lo", f"{f}_hi"]
    header += ["reached", "diverged", "trials"]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for dist, rows in tables.items():
            for name, s in rows.items():
                row = [dist, name, mean_unit_time(DISTRIBUTIONS[dist])]
                for f in TABLE_FIELDS:
                    row += [f"{v:.10g}" for v in s[f]]
                row += [s["reached"], s["diverged"], s["trials"]]
                w.writerow(row)
    return path


def read_table_csv(path) -> dict:
    """{distribution: {strategy: row dict of floats}} from ``table.csv``."""
    out: dict = {}
    with Path(path).open() as fh:
        for row in csv.DictReader(fh):
            dist, name = row.pop("distribution"), row.pop("strategy")
            out.setdefault(dist, {})[name] = {k: float(v) for k, v in row.items()}
    return out


def _write_rows(path, rows: list[dict]) -> Path:
    path = Path(path)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in r.items()})
    return path


# --------------------------------------------------------------------------- #
# the study
# --------------------------------------------------------------------------- #
def _reach_row(summary: dict) -> dict:
    row = {}
    for f in ("wall_clock", "uploads", "computations"):
        med, lo, hi = summary[f]
        row.update({f"{f}_median": med, f"{f}_lo": lo, f"{f}_hi": hi})
    row["reached"] = summary["reached"]
    row["diverged"] = summary["diverged"]
    return row


class _Memo(dict):
    """(distribution, strategy, S, τ, link, trials) → (summary, iteration-time stats).

    Strategies in S_INDEPENDENT are stored under S = None. Iteration counts are
    not part of the key: a reused run had at least as many iterations as needed
    to reach the target (its `reached` fraction says so)."""

    @staticmethod
    def key(dist, name, S, tau, link, trials):
        return (
            dist,
            name,
            None if name in S_INDEPENDENT else S,
            float(tau),
            link if tau else "parallel",
            trials,
        )


def _main_study(config, problem, runs_dir, timer, memo):
    """Every strategy on every distribution: summaries, curves and runs saved."""
    tables, curves = {}, {}
    for dist in config.distributions:
        delay = DISTRIBUTIONS[dist]
        unit = mean_unit_time(delay)
        results, rows = {}, {}
        for name in config.strategies:
            if not _applicable(name, config.workers, config.stragglers):
                continue
            t0 = time.perf_counter()
            r = _run(
                problem,
                name,
                config.workers,
                config.stragglers,
                delay,
                trials=config.trials,
                seed=config.seed,
                iters=study_updates(name, config.workers, config.stragglers, config.iters),
            )
            r.save(Path(runs_dir) / f"main_{dist}_{name}.npz")
            results[name] = r
            rows[name] = summarize(r, config.target_gap, unit)
            memo[_Memo.key(dist, name, config.stragglers, 0.0, "parallel", config.trials)] = (
                rows[name],
                _mean_iteration_time(r),
            )
            timer(f"main {dist} {name}", t0)
        tables[dist] = rows
        curves[dist] = _curves(results, rows, unit, config.target_gap)
    return tables, curves


def _sweep_point(
    config, problem, memo, timer, dist, name, S, *, tau=0.0, link="parallel", iters=None
):
    """Summary and iteration-time stats of one sweep point (from memo, or simulated)."""
    trials = config.sweep_trial_count
    key = _Memo.key(dist, name, S, tau, link, trials)
    if key in memo:
        return (*memo[key], True)
    delay = DISTRIBUTIONS[dist]
    unit = mean_unit_time(delay)
    t0 = time.perf_counter()
    r = _run(
        problem,
        name,
        config.workers,
        config.stragglers if key[2] is None else S,
        delay,
        trials=trials,
        iters=iters or config.iters,
        seed=config.seed,
        upload_time=tau * unit,
        link=link,
    )
    memo[key] = (summarize(r, config.target_gap, unit), _mean_iteration_time(r))
    timer(f"sweep {dist} S={S} τ={tau:g} {link} {name}", t0)
    return (*memo[key], False)


def _curves(results: dict, rows: dict, unit: float, target_gap: float) -> dict:
    """Median and 10–90 % band of the gap on common grids of time, uploads, computations
    and bits uploaded."""
    reached = [n for n in rows if math.isfinite(rows[n]["wall_clock"][0])]
    ref = reached or list(rows)

    def limit(field_name):
        values = [rows[n][field_name][0] for n in reached]
        if values:
            return 1.15 * max(values)
        return max(float(np.max(getattr(results[n], field_name))) for n in ref)

    t_max = limit("wall_clock")  # in E[X]
    grids = {
        "time": np.linspace(0, t_max, 400),
        "uploads": np.concatenate([[0.0], np.geomspace(1.0, limit("uploads"), 400)]),
        "computations": np.linspace(0, limit("computations"), 400),
        "bits_up": np.concatenate([[0.0], np.geomspace(1.0, limit("bits_up"), 400)]),
    }
    fields = {
        "time": "wall_clock",
        "uploads": "uploads",
        "computations": "computations",
        "bits_up": "bits_up",
    }
    out = {}
    for name, r in results.items():
        out[name] = {}
        for key, field_name in fields.items():
            x = grids[key] * (unit if key == "time" else 1.0)
            q = band(on_grid(r, field_name, x))
            # Past the end of the median trial's run, the held last value would
            # draw a misleading plateau: stop the curve there.
            q[:, running_fraction(r, field_name, x) < 0.5] = np.nan
            out[name][key] = (grids[key], *q)
    return out


def _mean_iteration_time(result: Result) -> dict:
    """Mean iteration time over all iterations: trial means are i.i.d. across trials,
    so the CI is mean ± 1.96 · sd(trial means)/√T."""
    per_trial = result.wall_clock[:, -1] / result.iterations[-1]
    mean = float(per_trial.mean())
    se = float(per_trial.std(ddof=1) / math.sqrt(len(per_trial))) if len(per_trial) > 1 else 0.0
    return {"mean": mean, "se": se, "ci": (mean - 1.96 * se, mean + 1.96 * se)}


def _s_sweep(config, problem, memo, timer):
    """Analytic vs MC iteration time of the non-lazy strategies, and time to target vs S."""
    rows = []
    for dist in config.distributions:
        unit = mean_unit_time(DISTRIBUTIONS[dist])
        for S in config.s_values:
            for name in dict.fromkeys((*NON_LAZY, *config.s_sweep_strategies)):
                if not _applicable(name, config.workers, S):
                    continue
                summary, stats, reused = _sweep_point(
                    config, problem, memo, timer, dist, name, S, iters=config.s_sweep_iters
                )
                row = dict(distribution=dist, S=S, strategy=name, reused_run=reused)
                row.update(_reach_row(summary))
                row.update(
                    mc_iteration_time=stats["mean"] / unit, mc_iteration_time_se=stats["se"] / unit
                )
                row["analytic_iteration_time"] = (
                    analysis.expected_iteration_time(name, config.workers, S, DISTRIBUTIONS[dist])
                    / unit
                    if name in NON_LAZY
                    else float("nan")
                )
                row["trials"] = summary["trials"]
                rows.append(row)
    return rows


def _tau_sweep(config, problem, memo, timer):
    rows = []
    for dist in config.tau_distributions:
        for link in config.links:
            for tau in config.taus:
                for name in config.tau_strategies:
                    if not _applicable(name, config.workers, config.stragglers):
                        continue
                    summary, _, reused = _sweep_point(
                        config,
                        problem,
                        memo,
                        timer,
                        dist,
                        name,
                        config.stragglers,
                        tau=tau,
                        link=link,
                    )
                    row = dict(
                        distribution=dist,
                        link=link,
                        tau=float(tau),
                        strategy=name,
                        reused_run=reused,
                    )
                    row.update(_reach_row(summary))
                    row["trials"] = summary["trials"]
                    rows.append(row)
    return rows


def _k_sweep(config, problem, timer):
    """k-async for every k in config.k_values (k ≤ M) on the main-study delays and trials of
    the sweeps: one compiled sweep over the step-size grid per k, ⌈iters·M/k⌉ updates.
    A row per (distribution, k, α): time, uploads and computations to the loose target
    ASYNC_TARGET_GAP, the fraction reaching TARGET_GAP, and the final gap (median and
    95 % interval); gd (= k-async with k = M) as the reference row."""
    from ..engine import sweep

    rows = []
    trials = config.sweep_trial_count
    ks = [k for k in config.k_values if 1 <= k <= config.workers]
    for dist in config.distributions:
        delay = DISTRIBUTIONS[dist]
        unit = mean_unit_time(delay)
        for k in ks:
            t0 = time.perf_counter()
            updates = -(-config.iters * config.workers // k)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                results = sweep(
                    problem,
                    strategies.make("k-async", config.workers, k=k),
                    delay,
                    step_size=[c / problem.smoothness for c in config.async_step_grid],
                    num_iters=updates,
                    num_trials=trials,
                    seed=config.seed,
                    chunk_size=updates,
                )
            for factor, r in zip(config.async_step_grid, results):
                row = dict(distribution=dist, k=k, step_size_times_L=float(factor), updates=updates)
                row.update(_reach_row(summarize(r, config.async_target_gap, unit)))
                final = median_interval(r.gap[:, -1])
                row.update(
                    final_gap_median=final[0],
                    final_gap_lo=final[1],
                    final_gap_hi=final[2],
                    reached_target=float(np.mean(r.to_reach(config.target_gap)["wall_clock"] >= 0)),
                    trials=trials,
                )
                rows.append(row)
            timer(f"k sweep {dist} k={k} ({len(config.async_step_grid)} step sizes)", t0)
    return rows


def best_step_rows(k_rows: list[dict]) -> list[dict]:
    """Per (distribution, k): the row of the step size with the lowest median time to the
    loose target (ties and not-reached: the highest fraction reached, then the lowest
    median final gap).

    >>> rows = [dict(distribution="e", k=1, step_size_times_L=a, wall_clock_median=t,
    ...              reached=1.0, final_gap_median=0.0) for a, t in ((0.5, 9.0), (1.0, 7.0))]
    >>> [r["step_size_times_L"] for r in best_step_rows(rows)]
    [1.0]
    """
    best = {}
    for r in k_rows:
        key = (r["distribution"], r["k"])
        rank = (r["wall_clock_median"], -r["reached"], r["final_gap_median"])
        if key not in best or rank < best[key][0]:
            best[key] = (rank, r)
    return [r for _, r in best.values()]


def format_async_table(k_rows: list[dict], config: StudyConfig) -> str:
    """Markdown: k-async per k at α = 1/L and at the best α of the grid."""
    best = {(r["distribution"], r["k"]): r for r in best_step_rows(k_rows)}
    grid = ", ".join(f"{c:g}" for c in config.async_step_grid)
    lines = [
        "",
        "## Asynchronous baselines (MODEL.md §8): k-async, k = 1 … M (k = 1 is async, k = M is gd)",
        "",
        f"{config.sweep_trial_count} trials, ⌈{config.iters}·M/k⌉ updates (the partition "
        f"gradients of {config.iters} gd iterations). With a constant step size k < M does "
        f"not converge to f*: time to f − f* ≤ {config.async_target_gap:g} (median, 95 % "
        f"interval, units of E[X]), the fraction of trials reaching "
        f"{config.target_gap:g}, and the gap at the end (median [95 % interval]). "
        f"Step size α = 1/L and the best of α·L ∈ {{{grid}}} (lowest median time).",
        "",
    ]
    for dist in config.distributions:
        lines += [
            f"### {dist}",
            "",
            "| k | α·L | wall clock to "
            f"{config.async_target_gap:g} | uploads | "
            f"reached {config.async_target_gap:g} | reached {config.target_gap:g} | "
            "final gap |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in k_rows:
            if r["distribution"] != dist:
                continue
            if r["step_size_times_L"] != 1.0 and best.get((dist, r["k"])) is not r:
                continue
            mark = " (best)" if best.get((dist, r["k"])) is r else ""
            lines.append(
                f"| {r['k']} | {r['step_size_times_L']:g}{mark} | "
                f"{_cell((r['wall_clock_median'], r['wall_clock_lo'], r['wall_clock_hi']), '.4g')} | "
                f"{_cell((r['uploads_median'], r['uploads_lo'], r['uploads_hi']), '.0f')} | "
                f"{r['reached']:.0%} | {r['reached_target']:.0%} | "
                f"{r['final_gap_median']:.3g} [{r['final_gap_lo']:.3g}, {r['final_gap_hi']:.3g}] |"
            )
        lines.append("")
    return "\n".join(lines)


def plot_k_sweep(config: StudyConfig, k_rows: list[dict], out_dir) -> dict:
    """async_k.png: time to the loose target against k, at α = 1/L and the best α."""
    from .. import plotting

    best = best_step_rows(k_rows)
    panels = {}
    for dist in config.distributions:
        at_default = [
            r for r in k_rows if r["distribution"] == dist and r["step_size_times_L"] == 1.0
        ]
        tuned = sorted((r for r in best if r["distribution"] == dist), key=lambda r: r["k"])
        panel = {}
        for label, rows in (("k-async", at_default), ("k-async, best α", tuned)):
            if rows:
                panel[label] = tuple(
                    [r[f] for r in rows]
                    for f in ("k", "wall_clock_median", "wall_clock_lo", "wall_clock_hi")
                )
        gd = [r for r in at_default if r["k"] == config.workers]
        if gd:  # the reference: k = M is gd
            ks = [r["k"] for r in at_default]
            panel["gd"] = (
                [min(ks), max(ks)],
                *([gd[0][f]] * 2 for f in ("wall_clock_median", "wall_clock_lo", "wall_clock_hi")),
            )
        panels[plotting.DISTRIBUTION_LABELS[dist]] = panel
    path, colors = plotting.sweep_figure(
        panels,
        "k: gradients per server update (k = 1: async, k = M: gd)",
        f"k-async: time to reach f − f* ≤ {config.async_target_gap:g} vs k (M = "
        f"{config.workers}, α = 1/L and the best α·L of "
        f"{{{', '.join(f'{c:g}' for c in config.async_step_grid)}}})",
        Path(out_dir) / "async_k.png",
        xticks=sorted({r["k"] for r in k_rows}),
    )
    return {str(path): colors}


def _sweep_series(rows, strategies_, **match):
    """{strategy: (x, median, lo, hi)} of wall clock to target, from sweep rows."""
    panel = {}
    xname = "S" if "link" not in match else "tau"
    for name in strategies_:
        pts = [
            r for r in rows if r["strategy"] == name and all(r[k] == v for k, v in match.items())
        ]
        if pts:
            panel[name] = tuple(
                [r[f] for r in pts]
                for f in (xname, "wall_clock_median", "wall_clock_lo", "wall_clock_hi")
            )
    return panel


def plot_s_sweep(config: StudyConfig, s_rows: list[dict], out_dir) -> dict:
    """iteration_time_vs_S.png and sweep_S.png from the S-sweep rows."""
    from .. import plotting

    figures, data = {}, {}
    for dist in config.distributions:
        data[dist] = {}
        for name in NON_LAZY:
            pts = [r for r in s_rows if r["distribution"] == dist and r["strategy"] == name]
            if pts:
                data[dist][name] = {
                    "S": [r["S"] for r in pts],
                    "analytic": [r["analytic_iteration_time"] for r in pts],
                    "mc": [r["mc_iteration_time"] for r in pts],
                    "ci": [
                        (
                            r["mc_iteration_time"] - 1.96 * r["mc_iteration_time_se"],
                            r["mc_iteration_time"] + 1.96 * r["mc_iteration_time_se"],
                        )
                        for r in pts
                    ],
                }
    path, colors = plotting.iteration_time_figure(
        data,
        Path(out_dir) / "iteration_time_vs_S.png",
        title=f"Mean iteration time: analysis vs Monte Carlo (M = {config.workers}, "
        f"{config.sweep_trial_count} trials × {config.s_sweep_iters} iterations)",
        note="Analytic: MODEL.md §7 (lagc_jax.analysis). Monte Carlo: mean over trials of each "
        "trial's mean iteration time, error bars 95 % CI. Common random numbers: at S = 0 "
        "all four strategies are gd.\nPareto(shape 1.5): an iteration time that waits for "
        "the slowest worker (gd, and every strategy at S = 0) has infinite variance, so its "
        "CI is only nominal and its sample mean typically falls below the expectation."
        if "pareto" in config.distributions
        else "",
    )
    figures[str(path)] = colors
    panels = {
        plotting.DISTRIBUTION_LABELS[dist]: _sweep_series(
            s_rows, config.s_sweep_strategies, distribution=dist
        )
        for dist in config.distributions
    }
    path, colors = plotting.sweep_figure(
        panels,
        "stragglers tolerated S (groups of S + 1)",
        f"Time to reach f − f* ≤ {config.target_gap:g} vs S (M = {config.workers}, τ = 0)",
        Path(out_dir) / "sweep_S.png",
        xticks=list(config.s_values),
    )
    figures[str(path)] = colors
    return figures


def plot_tau_sweep(config: StudyConfig, tau_rows: list[dict], out_dir) -> dict:
    """sweep_tau.png from the τ-sweep rows."""
    from .. import plotting

    panels = {
        f"{dist}, {link} uplink": _sweep_series(
            tau_rows, config.tau_strategies, distribution=dist, link=link
        )
        for dist in config.tau_distributions
        for link in config.links
    }
    path, colors = plotting.sweep_figure(
        panels,
        "upload time τ per gradient vector (units of E[X])",
        f"Time to reach f − f* ≤ {config.target_gap:g} vs upload time "
        f"(M = {config.workers}, S = {config.stragglers})",
        Path(out_dir) / "sweep_tau.png",
        xscale="symlog",
        xticks=list(config.taus),
    )
    return {str(path): colors}


def read_rows(path) -> list[dict]:
    """Rows of a sweep CSV with numbers parsed (for re-plotting without re-running)."""

    def parse(v):
        if v in ("True", "False"):
            return v == "True"
        try:
            f = float(v)
        except ValueError:
            return v
        return int(f) if f.is_integer() and "." not in v and "e" not in v else f

    with Path(path).open() as fh:
        return [{k: parse(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def async_baselines(
    config: StudyConfig, out_dir="figures", *, log=_log, problem=None, start=None
) -> dict:
    """The asynchronous baselines alone (also part of :func:`reproduce`): the k sweep of
    k-async at α = 1/L and the grid ``config.async_step_grid``, written as
    ``sweep_k.csv``, ``async_k.png`` and ``table_async.md`` in ``out_dir``. Returns
    ``{"k_sweep": rows, "figures": {path: {label: colour}}, "table_md": path}``."""
    start = time.perf_counter() if start is None else start
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    problem = problems.lag_synthetic(config.workers) if problem is None else problem

    def timer(label, t0):
        log(
            f"  {label}: {time.perf_counter() - t0:.1f}s (total {time.perf_counter() - start:.0f}s)"
        )

    rows = _k_sweep(config, problem, timer)
    _write_rows(out_dir / "sweep_k.csv", rows)
    figures = plot_k_sweep(config, rows, out_dir)
    table_md = out_dir / "table_async.md"
    table_md.write_text(format_async_table(rows, config))
    return {"k_sweep": rows, "figures": figures, "table_md": table_md}


def reproduce(
    config: StudyConfig, out_dir="figures", runs_dir="results/reproduce", log=_log
) -> dict:
    """Run the study and write figures, tables and runs. Returns what was written:
    ``{"tables", "table_md", "table_csv", "figures": {path: {label: colour}},
    "s_sweep", "tau_sweep", "elapsed"}``."""
    from .. import plotting  # matplotlib only when plotting

    start = time.perf_counter()
    out_dir, runs_dir = Path(out_dir), Path(runs_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs_dir.mkdir(parents=True, exist_ok=True)
    problem = problems.lag_synthetic(config.workers)

    def timer(label, t0):
        log(
            f"  {label}: {time.perf_counter() - t0:.1f}s (total {time.perf_counter() - start:.0f}s)"
        )

    log(
        f"reproduce: M={config.workers}, S={config.stragglers}, {config.trials} trials × "
        f"{config.iters} iterations, distributions {', '.join(config.distributions)}"
    )
    memo = _Memo()
    tables, curves = _main_study(config, problem, runs_dir, timer, memo)
    table_md = out_dir / "table.md"
    table_md.write_text(format_table(tables, config))
    table_csv = write_table_csv(tables, out_dir / "table.csv")

    figures = {}
    for dist in config.distributions:
        path, colors = plotting.convergence_figure(
            curves[dist],
            config.target_gap,
            f"M = {config.workers}, S = {config.stragglers}, lag_synthetic, "
            f"{config.trials} trials — {plotting.DISTRIBUTION_LABELS[dist]}",
            out_dir / f"convergence_{dist}.png",
        )
        figures[str(path)] = colors
    path, colors = plotting.tradeoff_figure(
        {
            d: {
                n: {
                    "time": s["wall_clock"],
                    "uploads": s["uploads"],
                    "computations": s["computations"],
                }
                for n, s in tables[d].items()
            }
            for d in config.distributions
        },
        f"Cost to reach f − f* ≤ {config.target_gap:g} (medians, 95 % intervals; "
        f"M = {config.workers}, S = {config.stragglers})",
        out_dir / "tradeoff.png",
    )
    figures[str(path)] = colors

    s_rows = []
    if config.s_values:
        s_rows = _s_sweep(config, problem, memo, timer)
        _write_rows(out_dir / "sweep_S.csv", s_rows)
        figures.update(plot_s_sweep(config, s_rows, out_dir))
    tau_rows = []
    if config.taus:
        tau_rows = _tau_sweep(config, problem, memo, timer)
        _write_rows(out_dir / "sweep_tau.csv", tau_rows)
        figures.update(plot_tau_sweep(config, tau_rows, out_dir))

    k_rows = []
    if config.k_values:
        baselines = async_baselines(config, out_dir, log=log, problem=problem, start=start)
        k_rows = baselines["k_sweep"]
        figures.update(baselines["figures"])
        with table_md.open("a") as fh:
            fh.write(baselines["table_md"].read_text())

    elapsed = time.perf_counter() - start
    log(f"reproduce: wrote {out_dir}/ (figures, table) and {runs_dir}/ in {elapsed:.0f}s")
    return {
        "tables": tables,
        "table_md": table_md,
        "table_csv": table_csv,
        "figures": figures,
        "s_sweep": s_rows,
        "tau_sweep": tau_rows,
        "k_sweep": k_rows,
        "elapsed": elapsed,
        "config": config,
    }


# --------------------------------------------------------------------------- #
# lagc-jax table: analytic vs Monte Carlo per-iteration costs
# --------------------------------------------------------------------------- #
QUANTITIES = ("time", "uploads", "downloads", "computations")
_RESULT_FIELD = {
    "time": "wall_clock",
    "uploads": "uploads",
    "downloads": "downloads",
    "computations": "computations",
}


def _active_units(name: str, result: Result, stragglers: int) -> np.ndarray:
    """Per-iteration number of active lazy units n, (T, K), from the recorded counts.

    lagc-ps: partitions selected = computations / (S+1) (each is evaluated by its
    S+1 holders); the other lazy strategies: n = uploads that iteration.
    """
    if name == "lagc-ps":
        per = np.diff(result.computations, axis=1)
        return per // (stragglers + 1)
    return np.diff(result.uploads, axis=1)


def iteration_table(
    workers: int,
    stragglers: int,
    delay,
    *,
    trials: int,
    iters: int,
    seed: int = 0,
    upload_time: float = 0.0,
    names=None,
) -> list[dict]:
    """Analytic vs Monte Carlo expected per-iteration time and counts.

    Monte Carlo: the per-trial mean over K iterations (i.i.d. across trials);
    mean ± 1.96 SE. Analytic: non-lazy strategies from
    :func:`analysis.expected_iteration_costs`; lazy ones from
    :func:`analysis.expected_lazy_iteration_costs` averaged over the *observed*
    distribution of the number of active units n (E[cost] = E_n[cost | n], exact
    when which units are active does not depend on the current delays — true of
    the triggers, which depend on iterates only). lagc-ps's time, uploads and
    downloads (and lagc's time when τ > 0) are upper bounds (kind "bound").
    """
    problem = problems.lag_synthetic(workers)
    names = strategies.names() if names is None else names
    rows = []
    for name in names:
        if not _applicable(name, workers, stragglers):
            continue
        r = _run(
            problem,
            name,
            workers,
            stragglers,
            delay,
            trials=trials,
            iters=iters,
            seed=seed,
            upload_time=upload_time,
        )
        if name in NON_LAZY:
            analytic = analysis.expected_iteration_costs(
                name, workers, stragglers, delay, upload_time=upload_time
            )
            kinds = dict.fromkeys(QUANTITIES, "exact")
        elif name not in analysis.LAZY_STRATEGIES:  # no analysis: Monte Carlo only
            analytic = dict.fromkeys(QUANTITIES, math.nan)
            kinds = dict.fromkeys(QUANTITIES, "none")
        else:  # lazy: the conditional analysis averaged over the observed n
            n = _active_units(name, r, stragglers)
            values, counts = np.unique(n, return_counts=True)
            weights = counts / counts.sum()
            analytic = dict.fromkeys(QUANTITIES, 0.0)
            for v, w in zip(values, weights):
                c = analysis.expected_lazy_iteration_costs(
                    name, workers, stragglers, delay, int(v), upload_time=upload_time
                )
                for q in QUANTITIES:
                    analytic[q] += w * c[q]
            kinds = dict.fromkeys(QUANTITIES, "given n")
            if name == "lagc-ps":
                kinds.update(time="bound", uploads="bound", downloads="bound")
            if name == "lagc" and upload_time > 0:
                kinds["time"] = "bound"
        for q in QUANTITIES:
            per_trial = getattr(r, _RESULT_FIELD[q])[:, -1] / iters
            mean = float(np.mean(per_trial))
            se = float(np.std(per_trial, ddof=1) / math.sqrt(trials)) if trials > 1 else 0.0
            a = float(analytic[q])
            if se <= 1e-9 * max(1.0, abs(mean)):  # deterministic count (round-off spread)
                se = 0.0
                z = (
                    0.0
                    if math.isclose(mean, a, rel_tol=1e-9, abs_tol=1e-12)
                    else math.copysign(math.inf, mean - a)
                )
            else:
                z = (mean - a) / se
            rows.append(
                dict(
                    strategy=name,
                    quantity=q,
                    analytic=a,
                    kind=kinds[q],
                    mc_mean=mean,
                    ci_lo=mean - 1.96 * se,
                    ci_hi=mean + 1.96 * se,
                    se=se,
                    z=z,
                )
            )
    return rows


def format_iteration_table(rows: list[dict], header: str) -> str:
    lines = [
        header,
        "",
        "| strategy | quantity | analytic | kind | Monte Carlo mean | 95 % CI | (MC − analytic)/SE |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["kind"] == "bound":
            check = "bound holds" if r["z"] <= 4 else "BOUND VIOLATED"
        elif r["kind"] == "none":
            check = "—"
        else:
            check = f"{r['z']:+.2f}"
        lines.append(
            f"| {r['strategy']} | {r['quantity']} | {r['analytic']:.4f} | {r['kind']} | "
            f"{r['mc_mean']:.4f} | [{r['ci_lo']:.4f}, {r['ci_hi']:.4f}] | {check} |"
        )
    lines += [
        "",
        "kind: exact = closed form (MODEL.md §7); given n = analysis conditional on "
        "the number n of active lazy units (uploads that iteration; for lagc-ps, "
        "partitions selected), averaged over the n observed in the run — so the count "
        "that defines n agrees by construction and the check is on the others and on "
        "time; bound = upper bound (see analysis.expected_lazy_iteration_costs); none = "
        "a registered strategy without analysis (Monte Carlo only). "
        "SE = standard error of the mean of per-trial averages (0 for deterministic "
        "counts). Strategies share the unit-time draws, so their deviations correlate.",
    ]
    return "\n".join(lines)


__all__ = [
    "StudyConfig",
    "reproduce",
    "async_baselines",
    "best_step_rows",
    "format_async_table",
    "plot_k_sweep",
    "strategy_options",
    "study_updates",
    "iteration_table",
    "format_iteration_table",
    "conclusions",
    "mean_unit_time",
    "read_table_csv",
]
