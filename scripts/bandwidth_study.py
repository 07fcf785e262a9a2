"""When bandwidth is the bottleneck: wall clock, uploads and bits to a target of full-precision,
quantized, lazy and lazy-quantized strategies against the upload time τ on a shared uplink
(issue 21).

- Strategies (M = 12, S = 2): gd, qgd (b = 2, 4, 8), lag-wk, laq (b = 2, 4, 8), g-lag,
  qg-lag (g-lag whose group messages go through LAQ's innovation quantizer,
  ``strategies.InnovationQuantizer(b)``, b = 2, 4, 8) and lagc. Default options otherwise
  (laq: ξ = 0.8, D = 10, C = 100; LAG: D = 10, default ξ), step 1/L.
- Problems: ``lag_synthetic(12)`` (least squares, d = 50) and L2-logistic regression on
  scikit-learn's breast-cancer data (``datasets.breast_cancer(12)``, l2 = 1, d = 31; needs
  ``pip install -e ".[data]"``), P = M = 12 partitions.
- Unit times: Exponential(1) and Pareto(1, 1.5), the quantile transforms of one array of
  uniforms (so the two laws are paired too), drawn once per problem and replayed for every
  strategy and τ: every comparison is paired (common random numbers).
- Link: one shared FIFO uplink; a message of β bits holds it for τ·β/(32d) (MODEL.md §9):
  b·d + 32 bits for a quantized message, 32·d at full precision. τ = c·E[X] for c in
  TAU_FACTORS; no latency, τ_b = 0.
- Target: f − f* ≤ 1e-6·(f(θ⁰) − f*), a fraction of the initial gap, so that one target
  means the same on both problems. The LAQ authors stop at a loss residual of 1e-6 on a loss
  that starts near ln 10 ≈ 2.3 (their MNIST code), about 4e-7 of their initial gap: the same
  order. A strategy that stalls is reported with the gap it ends at (same scale).
- Reported (medians over trials, 95 % distribution-free intervals): wall clock to the target
  in units of E[X], uploads, bits uploaded (``bits_up``) and iterations to it; where each
  strategy wins (the lowest median wall clock at each τ, with the paired fraction of trials
  in which it beats the runner-up).

Usage:
  python scripts/bandwidth_study.py            # full: 200 trials, 7 values of τ
  python scripts/bandwidth_study.py --quick    # 16 trials, τ/E[X] in {0.01, 1, 10}

Writes into --out (default figures): bandwidth_study.md (the tables, with the command that
produced them), bandwidth_study.csv (every point) and bandwidth_study.png (wall clock to the
target against τ, and bits to the target).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import lagc_jax as lj  # noqa: E402
from lagc_jax import datasets, plotting  # noqa: E402
from lagc_jax import strategies as st  # noqa: E402
from lagc_jax.results import format_median_interval  # noqa: E402
from lagc_jax.studies.paper import DISTRIBUTIONS, mean_unit_time  # noqa: E402
from lagc_jax.timing import BITS_PER_COORDINATE  # noqa: E402

TARGET_FRACTION = 1e-6  # the target gap, as a fraction of the initial gap f(θ⁰) − f*
TAU_FACTORS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # τ in units of E[X]
BITS = (2, 4, 8)
DELAYS = ("exponential", "pareto")
DELAY_LABELS = {"exponential": "Exponential(1)", "pareto": "Pareto(1, 1.5)"}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run of the study simulates. ``iters`` maps each problem's name to its
    iterations (enough for every strategy that converges to reach the target)."""

    workers: int
    stragglers: int
    trials: int
    iters: dict
    tau_factors: tuple = TAU_FACTORS
    bits: tuple = BITS
    delays: tuple = DELAYS
    seed: int = 0

    @property
    def reference_tau(self) -> float:
        """The τ / E[X] of the plan closest to 1 (log scale), at which the tables show uploads
        and bits (these depend on τ for lagc only).

        >>> Plan(12, 2, 10, {}, tau_factors=(0.01, 0.3, 10.0)).reference_tau
        0.3
        """
        return min(self.tau_factors, key=lambda tau: abs(math.log(tau)))


# Iterations measured to suffice: the slowest strategy to reach the target, qg-lag with b = 2,
# needs 218 (lag_synthetic) and 522 (breast cancer); laq with b = 2 stalls on both.
FULL = Plan(
    workers=12, stragglers=2, trials=200, iters={"lag_synthetic": 400, "breast_cancer": 800}
)
QUICK = dataclasses.replace(FULL, trials=16, tau_factors=(0.01, 1.0, 10.0))


def study_problems(workers: int) -> dict:
    """The two problems, by name: the LAG paper's least squares and logistic regression on
    real data (P = M partitions)."""
    return {
        "lag_synthetic": lj.problems.lag_synthetic(workers),
        "breast_cancer": datasets.breast_cancer(workers),
    }


def initial_gap(problem) -> float:
    """f(θ⁰) − f*, the scale of the target and of the final gaps.

    >>> round(initial_gap(lj.problems.lag_synthetic(12)), 4)
    248.4224
    """
    return problem.loss(problem.initial_params()) - problem.optimal_value


def unit_time_draws(delays, trials: int, iters: int, workers: int, seed: int) -> dict:
    """{delay name: (trials, iters, workers) unit times}: each law's quantile transform of
    one array of uniforms (paired across laws).

    >>> x = unit_time_draws(("exponential", "pareto"), 2, 3, 4, seed=0)
    >>> x["pareto"].shape, bool(np.allclose(x["pareto"], np.exp(x["exponential"] / 1.5)))
    ((2, 3, 4), True)
    """
    uniforms = np.random.default_rng(seed).uniform(size=(trials, iters, workers))
    return {name: DISTRIBUTIONS[name].quantile(uniforms) for name in delays}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One line of the study: a strategy and the precision of its messages."""

    label: str
    family: str
    bits: int | None  # b of LAQ's quantizer; None: full precision
    strategy: object

    def message_bits(self, dim: int) -> int:
        """Bits of one upload: b·d + 32 quantized (the levels and the radius), 32·d otherwise.

        >>> [Variant(n, n, b, None).message_bits(50) for n, b in (("qgd", 2), ("gd", None))]
        [132, 1600]
        """
        if self.bits is None:
            return BITS_PER_COORDINATE * dim
        return self.bits * dim + BITS_PER_COORDINATE


def quantized_g_lag(workers: int, stragglers: int, bits: int):
    """g-lag whose group messages are LAQ-quantized against what the server holds."""
    return dataclasses.replace(
        lj.make("g-lag", workers, stragglers),
        compressor=st.InnovationQuantizer(bits),
        name="qg-lag",
    )


def variant_groups(workers: int, stragglers: int, bits=BITS) -> list[list[Variant]]:
    """The strategies in groups of one pytree structure (a group and all τ run as one
    :func:`lagc_jax.sweep`: the quantizer's b is a leaf).

    >>> [[v.label for v in group] for group in variant_groups(12, 2, (2, 8))][:2]
    [['gd'], ['qgd (b = 2)', 'qgd (b = 8)']]
    """
    M, S = workers, stragglers

    def quantized(family, make):
        return [Variant(f"{family} (b = {b})", family, b, make(b)) for b in bits]

    return [
        [Variant("gd", "gd", None, lj.make("gd", M))],
        quantized("qgd", lambda b: lj.make("qgd", M, bits=b)),
        [Variant("lag-wk", "lag-wk", None, lj.make("lag-wk", M))],
        quantized("laq", lambda b: lj.make("laq", M, bits=b)),
        [Variant("g-lag", "g-lag", None, lj.make("g-lag", M, S))],
        quantized("qg-lag", lambda b: quantized_g_lag(M, S, b)),
        [Variant("lagc", "lagc", None, lj.make("lagc", M, S))],
    ]


# --------------------------------------------------------------------------- #
# running and summarising
# --------------------------------------------------------------------------- #
def run_group(problem, group: list, plan: Plan, times: np.ndarray, unit: float, iters: int):
    """Every variant of ``group`` at every τ of the plan, in one sweep on replayed unit times:
    [(variant, τ factor, Result)]."""
    points = [(variant, factor) for factor in plan.tau_factors for variant in group]
    results = lj.sweep(
        problem,
        [v.strategy for v, _ in points],
        upload_time=[factor * unit for _, factor in points],
        link="shared",
        unit_times=times,
        num_iters=iters,
        num_trials=plan.trials,
    )
    return [
        (variant, factor, result) for (variant, factor), result in zip(points, results, strict=True)
    ]


def summary_row(
    result,
    variant: Variant,
    problem_name: str,
    dim: int,
    delay: str,
    tau_factor: float,
    gap0: float,
) -> tuple[dict, np.ndarray]:
    """The study's numbers of one point and its per-trial wall clocks to the target (units
    of E[X], NaN where not reached)."""
    unit = mean_unit_time(DISTRIBUTIONS[delay])
    target = TARGET_FRACTION * gap0
    summary = result.summary(target)
    reach = result.to_reach(target)
    row = dict(
        problem=problem_name,
        delay=delay,
        tau=tau_factor,
        strategy=variant.label,
        family=variant.family,
        quantizer_bits=variant.bits or 0,
        message_bits=variant.message_bits(dim),
        trials=result.num_trials,
        iterations_run=int(result.iterations[-1]),
    )
    row["wall_clock"] = tuple(v / unit for v in summary["wall_clock"])
    for field in ("uploads", "bits_up", "iterations"):
        row[field] = summary[field]
    row["final_gap"] = tuple(v / gap0 for v in summary["final_gap"])
    row["reached"] = summary["reached"]
    row["diverged"] = summary["diverged"]
    return row, reach["wall_clock"] / unit


def run_study(plan: Plan, problems: dict, log=print) -> tuple[list, dict]:
    """Every point of the plan: (rows, {(problem, delay, τ, label): per-trial wall clocks})."""
    rows, trial_times = [], {}
    for problem_name, problem in problems.items():
        iters = plan.iters[problem_name]
        draws = unit_time_draws(plan.delays, plan.trials, iters, plan.workers, plan.seed)
        gap0 = initial_gap(problem)
        for delay in plan.delays:
            unit = mean_unit_time(DISTRIBUTIONS[delay])
            for group in variant_groups(plan.workers, plan.stragglers, plan.bits):
                start = time.perf_counter()
                for variant, factor, result in run_group(
                    problem, group, plan, draws[delay], unit, iters
                ):
                    row, times = summary_row(
                        result, variant, problem_name, problem.dim, delay, factor, gap0
                    )
                    rows.append(row)
                    trial_times[problem_name, delay, factor, variant.label] = times
                log(
                    f"  {problem_name} {delay} {group[0].family} ×{len(group)}×"
                    f"{len(plan.tau_factors)} τ: {time.perf_counter() - start:.1f}s"
                )
    return rows, trial_times


def winners(rows: list, trial_times: dict) -> list[dict]:
    """Per (problem, delay, τ): the strategy with the lowest median wall clock to the target,
    the runner-up, the fraction of trials (paired) in which the winner is faster (a trial
    that does not reach the target counts as infinitely slow), gd's median over the
    winner's, and the fastest registered strategy (qg-lag is not) and the fastest that
    sends full-precision messages.

    >>> rows = [dict(problem="p", delay="d", tau=1.0, strategy=s, family=s, quantizer_bits=b,
    ...              wall_clock=(m, m, m)) for s, b, m in (("gd", 0, 4.0), ("qg-lag", 2, 1.0),
    ...                                                    ("laq", 2, 2.0), ("lag-wk", 0, 3.0))]
    >>> times = {("p", "d", 1.0, row["strategy"]): np.array(values) for row, values in
    ...          zip(rows, ([4.0, 4.0], [1.0, 3.0], [2.0, 2.0], [3.0, 3.0]))}
    >>> w = winners(rows, times)[0]
    >>> w["fastest"], w["runner_up"], w["paired_fraction"], w["speedup_over_gd"]
    ('qg-lag', 'laq', 0.5, 4.0)
    >>> w["fastest_registered"]["strategy"], w["fastest_full_precision"]["strategy"]
    ('laq', 'lag-wk')
    """
    registered = set(lj.names())
    out = []
    keys = dict.fromkeys((r["problem"], r["delay"], r["tau"]) for r in rows)
    for problem, delay, tau in keys:
        block = sorted(point_rows(rows, problem, delay, tau), key=lambda r: r["wall_clock"][0])
        first, second = block[0], block[1]
        gd = next(r for r in block if r["strategy"] == "gd")
        first_times, second_times = (
            np.nan_to_num(trial_times[problem, delay, tau, r["strategy"]], nan=np.inf)
            for r in (first, second)
        )
        out.append(
            dict(
                problem=problem,
                delay=delay,
                tau=tau,
                fastest=first["strategy"],
                fastest_wall_clock=first["wall_clock"],
                runner_up=second["strategy"],
                runner_up_wall_clock=second["wall_clock"],
                paired_fraction=float(np.mean(first_times < second_times)),
                speedup_over_gd=gd["wall_clock"][0] / first["wall_clock"][0],
                fastest_registered=next(r for r in block if r["family"] in registered),
                fastest_full_precision=next(r for r in block if not r["quantizer_bits"]),
            )
        )
    return out


def tau_dependent_counts(rows: list) -> list[str]:
    """The strategies whose uploads or bits to the target change with τ (medians): those
    whose iterates depend on the arrival order of messages.

    >>> rows = [dict(problem="p", delay="d", strategy="x", tau=t, uploads=(u, u, u),
    ...              bits_up=(u, u, u)) for t, u in ((1.0, 5.0), (2.0, 6.0))]
    >>> tau_dependent_counts(rows)
    ['x']
    """
    seen, changing = {}, []
    for r in rows:
        key = (r["problem"], r["delay"], r["strategy"])
        counts = (r["uploads"][0], r["bits_up"][0])
        if seen.setdefault(key, counts) != counts and r["strategy"] not in changing:
            changing.append(r["strategy"])
    return changing


# --------------------------------------------------------------------------- #
# tables
# --------------------------------------------------------------------------- #
def cell(triple, fmt: str) -> str:
    return format_median_interval(triple, fmt)


def reach_cell(row: dict, field: str, fmt: str) -> str:
    """The median [interval] to the target, or the gap the trials end at."""
    if math.isinf(row[field][0]):
        return f"not reached (final gap {row['final_gap'][0]:.1e})"
    return cell(row[field], fmt)


def point_rows(rows, problem, delay, tau=None) -> list:
    return [
        r
        for r in rows
        if r["problem"] == problem and r["delay"] == delay and (tau is None or r["tau"] == tau)
    ]


def wall_clock_table(rows: list, problem: str, delay: str, plan: Plan) -> list[str]:
    """Strategies × τ: median wall clock to the target [95 % interval], units of E[X]."""
    header = " | ".join(f"τ = {t:g}" for t in plan.tau_factors)
    lines = [f"| strategy | {header} |", "|---|" + "---|" * len(plan.tau_factors)]
    for label in dict.fromkeys(r["strategy"] for r in point_rows(rows, problem, delay)):
        cells = [
            reach_cell(r, "wall_clock", ".4g")
            for r in point_rows(rows, problem, delay)
            if r["strategy"] == label
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def counts_table(rows: list, problem: str, delay: str, tau: float) -> list[str]:
    """Strategies: message size, iterations, uploads and bits to the target at one τ."""
    lines = [
        "| strategy | bits per upload | iterations | uploads | bits uploaded | reached | "
        "final gap | diverged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in point_rows(rows, problem, delay, tau):
        lines.append(
            f"| {r['strategy']} | {r['message_bits']} | {reach_cell(r, 'iterations', '.0f')} | "
            f"{reach_cell(r, 'uploads', '.0f')} | {reach_cell(r, 'bits_up', '.3g')} | "
            f"{r['reached']:.0%} | {r['final_gap'][0]:.1e} | {r['diverged']} |"
        )
    return lines


def winners_table(wins: list) -> list[str]:
    lines = [
        "| problem | unit times | τ / E[X] | fastest: wall clock (E[X]) | runner-up | "
        "fastest first in (paired) | gd / fastest | fastest registered | fastest at full "
        "precision |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w in wins:
        registered, full = w["fastest_registered"], w["fastest_full_precision"]
        lines.append(
            f"| {w['problem']} | {DELAY_LABELS[w['delay']]} | {w['tau']:g} | **{w['fastest']}**: "
            f"{cell(w['fastest_wall_clock'], '.4g')} | {w['runner_up']}: "
            f"{w['runner_up_wall_clock'][0]:.4g} | {w['paired_fraction']:.0%} | "
            f"{w['speedup_over_gd']:.2f}× | {registered['strategy']}: "
            f"{registered['wall_clock'][0]:.4g} | {full['strategy']}: "
            f"{full['wall_clock'][0]:.4g} |"
        )
    return lines


def laq_comparison(rows: list, problems: dict, plan: Plan) -> list[str]:
    """Our bits and uploads to the target of laq (b = 4, LAQ's default) against gd, qgd
    (b = 4) and lag-wk, per problem (exponential unit times, τ = E[X]), and whether the
    direction agrees with the LAQ paper's (fewest bits for LAQ; fewer uploads than GD and
    QGD)."""
    lines = [
        "| problem | bits: gd | qgd (b = 4) | lag-wk | laq (b = 4) | gd / laq | qgd / laq | "
        "lag-wk / laq | uploads: gd | lag-wk | laq (b = 4) | direction as in LAQ |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    labels = ("gd", "qgd (b = 4)", "lag-wk", "laq (b = 4)")
    for problem in problems:
        block = point_rows(rows, problem, plan.delays[0], plan.reference_tau)
        bits = {r["strategy"]: r["bits_up"][0] for r in block if r["strategy"] in labels}
        uploads = {r["strategy"]: r["uploads"][0] for r in block if r["strategy"] in labels}
        agrees = (
            bits["laq (b = 4)"] < min(bits["gd"], bits["qgd (b = 4)"], bits["lag-wk"])
            and uploads["laq (b = 4)"] < min(uploads["gd"], uploads["qgd (b = 4)"])
            and bits["qgd (b = 4)"] < bits["gd"]
        )
        laq = bits["laq (b = 4)"]
        lines.append(
            f"| {problem} | {bits['gd']:.3g} | {bits['qgd (b = 4)']:.3g} | {bits['lag-wk']:.3g} | "
            f"{laq:.3g} | {bits['gd'] / laq:.0f}× | {bits['qgd (b = 4)'] / laq:.1f}× | "
            f"{bits['lag-wk'] / laq:.1f}× | {uploads['gd']:.0f} | {uploads['lag-wk']:.0f} | "
            f"{uploads['laq (b = 4)']:.0f} | {'yes' if agrees else 'no'} |"
        )
    return lines


def write_markdown(
    path: Path, rows: list, wins: list, problems: dict, plan: Plan, command: str, seconds: float
) -> None:
    taus = ", ".join(f"{t:g}" for t in plan.tau_factors)
    described = "; ".join(
        f"{name}: d = {p.dim}, L = {p.smoothness:.4g}, f(θ⁰) − f* = "
        f"{initial_gap(p):.4g}, {plan.iters[name]} iterations"
        for name, p in problems.items()
    )
    changing = tau_dependent_counts(rows)
    lines = [
        "# When bandwidth is the bottleneck (scripts/bandwidth_study.py)",
        "",
        f"Generated by `{command}` in {seconds:.0f} s (2 shared CPU cores). M = {plan.workers}, "
        f"S = {plan.stragglers} (g-lag, qg-lag, lagc), {plan.trials} trials per point, seed "
        f"{plan.seed}, float64, step 1/L, default options. Problems: {described}. Unit times "
        "replayed, the same for every strategy and τ (paired); the Pareto times are the "
        "quantile transform of the exponential ones' uniforms. One shared FIFO uplink: a "
        "message of β bits holds it for τ·β/(32d); quantized messages (LAQ's innovation "
        "quantizer) are b·d + 32 bits, full-precision ones 32·d; no latency, τ_b = 0. "
        f"τ in units of E[X] (1 for Exponential(1), 3 for Pareto(1, 1.5)): {taus}.",
        "",
        f"Target: f − f* ≤ {TARGET_FRACTION:g}·(f(θ⁰) − f*). Medians over trials [95 % "
        'distribution-free interval of the median]; wall clock in units of E[X]; "not '
        'reached" when the median trial does not reach the target, with the median gap the '
        "trials end at (as a fraction of the initial gap). qg-lag is g-lag whose group "
        "messages are LAQ-quantized (`strategies.InnovationQuantizer(b)`). Uploads and bits "
        "count the messages the server used (MODEL.md §9); the other members of a g-lag or "
        "qg-lag group and lagc's late workers send too, and their messages hold the shared "
        "link (delaying a round when they queue ahead of one the server waits for), but are "
        "not counted.",
        "",
        "## Where each wins",
        "",
        "The fastest strategy (lowest median wall clock to the target) at each τ, the "
        "runner-up, the fraction of trials in which the fastest is faster than the runner-up "
        "on the same unit times, gd's median over the fastest's, the fastest registered "
        "strategy (all but qg-lag) and the fastest that sends full-precision messages (gd, "
        "lag-wk, g-lag, lagc).",
        "",
        *winners_table(wins),
        "",
        "## Bits to the target, and the LAQ paper",
        "",
        f"Bits and uploads to the target, {DELAY_LABELS[plan.delays[0]]} unit times, "
        f"τ = {plan.reference_tau:g}·E[X] (medians):",
        "",
        *laq_comparison(rows, problems, plan),
        "",
        "Uploads and bits to the target do not depend on τ or the delays for any strategy "
        "whose iterates do not depend on arrival order; they change with τ for: "
        f"{', '.join(changing) if changing else 'none'}.",
        "",
    ]
    for problem in problems:
        for delay in plan.delays:
            lines += [
                f"## {problem}, {DELAY_LABELS[delay]} unit times",
                "",
                "Wall clock to the target (units of E[X]) against τ / E[X]:",
                "",
                *wall_clock_table(rows, problem, delay, plan),
                "",
                f"Iterations, uploads and bits to the target at τ = {plan.reference_tau:g}·E[X]:",
                "",
                *counts_table(rows, problem, delay, plan.reference_tau),
                "",
            ]
    path.write_text("\n".join(lines), encoding="utf-8")


CSV_TRIPLES = ("wall_clock", "uploads", "bits_up", "iterations", "final_gap")


def write_csv(path: Path, rows: list) -> None:
    """One line per point; each (median, lo, hi) triple as three columns (wall clock in
    units of E[X], final gap as a fraction of the initial gap)."""
    scalars = [k for k in rows[0] if k not in CSV_TRIPLES]
    header = scalars + [f"{k}_{part}" for k in CSV_TRIPLES for part in ("median", "lo", "hi")]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row[k] for k in scalars] + [v for k in CSV_TRIPLES for v in row[k]])


# --------------------------------------------------------------------------- #
# the figure
# --------------------------------------------------------------------------- #
BITS_LINESTYLES = {2: ":", 4: "-.", 8: "--"}


def line_style(row: dict) -> dict:
    """The family's colour (qg-lag: g-lag's, with square markers); the quantizer's b sets
    the line style (full precision: solid)."""
    family = "g-lag" if row["family"] == "qg-lag" else row["family"]
    return dict(
        color=plotting.color(family),
        label=row["strategy"],
        marker="s" if row["family"] == "qg-lag" else "o",
        markersize=3.5,
        linewidth=1.3,
        linestyle=BITS_LINESTYLES.get(row["quantizer_bits"], "-"),
    )


def plot(path: Path, rows: list, problems: dict, plan: Plan) -> None:
    """A row per problem: wall clock to the target against τ under each delay law (median
    and 95 % interval, log–log), then bits to the target per strategy."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    columns = len(plan.delays) + 1
    fig, axes = plt.subplots(
        len(problems), columns, squeeze=False, figsize=(4.8 * columns, 4.0 * len(problems))
    )
    handles = {}
    for i, problem in enumerate(problems):
        for j, delay in enumerate(plan.delays):
            ax = axes[i][j]
            block = point_rows(rows, problem, delay)
            for label in dict.fromkeys(r["strategy"] for r in block):
                points = [r for r in block if r["strategy"] == label]
                taus = np.array([r["tau"] for r in points])
                med, lo, hi = (np.array([r["wall_clock"][n] for r in points]) for n in range(3))
                style = line_style(points[0])
                ax.plot(taus, np.where(np.isfinite(med), med, np.nan), **style)
                ax.fill_between(
                    taus,
                    np.where(np.isfinite(lo), lo, np.nan),
                    np.where(np.isfinite(hi), hi, np.nan),
                    color=style["color"],
                    alpha=0.08,
                    linewidth=0,
                )
                handles.setdefault(label, Line2D([], [], **style))
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("upload time τ of a full-precision gradient (units of E[X])")
            ax.set_ylabel("wall clock to target (units of E[X])")
            ax.set_title(f"{problem}, {DELAY_LABELS[delay]} unit times", fontsize=9)
        ax = axes[i][-1]
        block = point_rows(rows, problem, plan.delays[0], plan.reference_tau)
        for y, r in enumerate(block):
            style = line_style(r)
            if math.isinf(r["bits_up"][0]):
                ax.text(
                    0.02,
                    y,
                    f"not reached (final gap {r['final_gap'][0]:.0e})",
                    va="center",
                    fontsize=7,
                    transform=ax.get_yaxis_transform(),
                )
                continue
            ax.barh(
                y,
                r["bits_up"][0],
                color=style["color"],
                alpha=0.8,
                hatch="//" if r["quantizer_bits"] else None,
            )
        ax.set_yticks(range(len(block)), [r["strategy"] for r in block], fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("bits uploaded to target (median)")
        ax.set_title(
            f"{problem}: bits to target ({DELAY_LABELS[plan.delays[0]]}, "
            f"τ = {plan.reference_tau:g}·E[X])",
            fontsize=9,
        )
    fig.legend(
        handles=list(handles.values()),
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        title="strategy",
    )
    fig.suptitle(
        f"When bandwidth is the bottleneck: M = {plan.workers}, shared uplink, "
        f"target f − f* ≤ {TARGET_FRACTION:g}·(f(θ⁰) − f*), {plan.trials} trials"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=plotting.DPI, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small check run (16 trials, τ/E[X] in {0.01, 1, 10})",
    )
    parser.add_argument("--out", default="figures", help="output folder (default figures)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    problems = study_problems(plan.workers)
    rows, trial_times = run_study(plan, problems, log=lambda text: print(text, file=sys.stderr))
    wins = winners(rows, trial_times)
    plot(out / "bandwidth_study.png", rows, problems, plan)
    write_csv(out / "bandwidth_study.csv", rows)
    command = "python scripts/bandwidth_study.py" + (" --quick" if args.quick else "")
    seconds = time.perf_counter() - start
    write_markdown(out / "bandwidth_study.md", rows, wins, problems, plan, command, seconds)
    print(f"wrote {out}/bandwidth_study.{{md,csv,png}} in {seconds:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
