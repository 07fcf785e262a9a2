"""Command line: ``lagc-jax run`` (one study), ``table``, ``reproduce``, ``advise``.

``lagc-jax run`` with no arguments simulates every strategy on the LAG
synthetic problem with M = 12 workers, S = 2, Exponential(1) unit times, and
prints the wall clock, uploads and computations to reach the target gap.
Simulations run in float64 unless ``--float32`` is given (a float32 gap floors
near 1e-6 on this problem, above the default target).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

DEFAULT_TARGET_GAP = 1e-6


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strategy", default="all",
                        help="a strategy name or 'all' (default: all)")
    parser.add_argument("--workers", type=int, default=12, help="M (default 12)")
    parser.add_argument("--stragglers", type=int, default=2, help="S (default 2)")
    parser.add_argument("--delay", default="exp:1",
                        help="exp:RATE[,SHIFT] or pareto:SCALE,SHAPE (default exp:1)")
    parser.add_argument("--trials", type=int, default=200, help="Monte Carlo trials (default 200)")
    parser.add_argument("--iters", type=int, default=400, help="iterations per trial (default 400)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--upload-time", type=float, default=0.0, help="τ per upload (default 0)")
    parser.add_argument("--broadcast-time", type=float, default=0.0, help="τ_b per iteration")
    parser.add_argument("--link", default="parallel", help="parallel or shared")
    parser.add_argument("--xi", type=float, default=None, help="LAG threshold ξ (default per rule)")
    parser.add_argument("--target-gap", type=float, default=DEFAULT_TARGET_GAP,
                        help=f"f − f* to reach (default {DEFAULT_TARGET_GAP:g})")
    parser.add_argument("--out", default="results/run",
                        help="output stem: writes STEM_<strategy>.npz/.json (default results/run)")
    parser.add_argument("--float32", action="store_true", help="simulate in float32")
    parser.add_argument("--problem", default="lag_synthetic",
                        choices=("lag_synthetic", "diabetes", "breast_cancer"),
                        help="learning problem (default lag_synthetic; the others need "
                             "scikit-learn)")


def _progress_printer(label: str):
    """Report chunk progress on stderr once a run has taken more than ~2 s."""
    start = time.perf_counter()

    def report(done: int, total: int) -> None:
        elapsed = time.perf_counter() - start
        if elapsed > 2.0 or done < total and elapsed > 1.0:
            print(f"  {label}: {done}/{total} iterations, {elapsed:.1f}s", file=sys.stderr)
    return report


def format_summary_table(rows, target_gap: float) -> str:
    """Markdown table of (strategy, summary dict) rows: medians with 95 % intervals."""
    def cell(triple, fmt):
        med, lo, hi = triple
        if med == float("inf"):
            return "not reached"
        hi_text = "∞" if hi == float("inf") else format(hi, fmt)
        return f"{format(med, fmt)} [{format(lo, fmt)}, {hi_text}]"

    lines = [
        f"Median over trials to reach f − f* ≤ {target_gap:g}, [95 % interval of the median]",
        "",
        "| strategy | wall clock | uploads | computations | iterations | reached | diverged |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in rows:
        lines.append(
            f"| {name} | {cell(s['wall_clock'], '.4g')} | {cell(s['uploads'], '.0f')} | "
            f"{cell(s['computations'], '.0f')} | {cell(s['iterations'], '.0f')} | "
            f"{s['reached']:.0%} | {s['diverged']} |")
    return "\n".join(lines)


def cmd_run(args) -> int:
    from . import advise, delays, simulate, strategies

    try:
        delay = delays.parse_delay(args.delay)
        names = strategies.names() if args.strategy == "all" else (args.strategy,)
        built = []
        for name in names:
            options = {}
            if args.xi is not None and name.startswith(("lag", "g-lag")):
                options["xi"] = args.xi
            built.append(strategies.make(name, args.workers, args.stragglers, **options))
        problem = advise.build_problem(args.problem, args.workers)
    except ValueError as error:
        print(f"lagc-jax run: {error}", file=sys.stderr)
        return 2
    print(f"problem {problem.name}, M={args.workers}, S={args.stragglers}, "
          f"delay {delay.describe()}, {args.trials} trials × {args.iters} iterations, "
          f"τ={args.upload_time:g} ({args.link}), τ_b={args.broadcast_time:g}", file=sys.stderr)
    rows = []
    for strategy in built:
        if strategy.wait == "group" and args.workers % (args.stragglers + 1):
            continue
        result = simulate(
            problem, strategy, delay, num_iters=args.iters, num_trials=args.trials,
            seed=args.seed, upload_time=args.upload_time, broadcast_time=args.broadcast_time,
            link=args.link, chunk_size=max(args.iters // 10, 1),
            progress=_progress_printer(strategy.name))
        path = result.save(f"{args.out}_{strategy.name}.npz")
        print(f"  {strategy.name}: wrote {path}", file=sys.stderr)
        rows.append((strategy.name, result.summary(args.target_gap)))
    print(format_summary_table(rows, args.target_gap))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lagc-jax",
        description="Monte Carlo simulation of GD, gradient coding, grouping, LAG, LAGC and G-LAG "
                    "in wall-clock time, communication and computation.")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="simulate strategies and summarise (default)")
    _add_run_arguments(run)
    run.set_defaults(handler=cmd_run)
    from . import study
    table = sub.add_parser("table", help="analytic vs Monte Carlo per-iteration costs")
    study.add_table_arguments(table)
    table.set_defaults(handler=study.cmd_table)
    reproduce = sub.add_parser("reproduce", help="the paper-reproduction study: figures, tables")
    study.add_reproduce_arguments(reproduce)
    reproduce.set_defaults(handler=study.cmd_reproduce)
    from . import advise
    advise_parser = sub.add_parser(
        "advise", help="which strategy pays on measured compute times (a CSV or a shipped trace)")
    advise.add_advise_arguments(advise_parser)
    advise_parser.set_defaults(handler=advise.cmd_advise)

    def one_line_error(message):  # one line on stderr naming the flag, exit status 2
        print(f"lagc-jax advise: {message}", file=sys.stderr)
        sys.exit(2)
    advise_parser.error = one_line_error
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["run", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "float32", False):
        os.environ.setdefault("JAX_ENABLE_X64", "1")
        import jax
        jax.config.update("jax_enable_x64", True)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
