"""``lagc-jax advise``: which strategy pays on measured compute times (a CSV file or a
shipped trace); :mod:`lagc_jax.studies.advise` does the work.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="lagc-jax advise")
>>> add_arguments(parser)
>>> args = parser.parse_args(["--trace", "ST", "--stragglers", "0,1"])
>>> args.trace, args.stragglers, args.problem, args.iters
('ST', '0,1', 'breast_cancer', 800)
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from .. import datasets, strategies
from ..checks import LINKS, PROBLEMS, import_user_modules
from ..studies import advise


def add_arguments(parser) -> None:
    """The flags of ``lagc-jax advise``."""
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE (a module name, or a path to a .py file) first, e.g. "
        "one that registers strategies with lagc_jax.register; repeatable",
    )
    source = parser.add_argument_group("measured times (exactly one)")
    source.add_argument(
        "--times",
        help="CSV of measured compute times: rows = steps, "
        "columns = workers; an optional header row of names, "
        "where a column named step, iteration, iter or round "
        "is dropped; a file whose layout is ambiguous is "
        "refused (see datasets.load_times_csv)",
    )
    source.add_argument("--trace", help="a shipped trace: AR, SE or ST")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="M (default: the number of measured columns; otherwise the times are pooled)",
    )
    parser.add_argument(
        "--stragglers",
        default=None,
        help="comma-separated S values to try (default 0..min(3, M-1))",
    )
    parser.add_argument(
        "--strategies",
        default=None,
        help="comma-separated strategy names (default: all of strategies.names())",
    )
    parser.add_argument(
        "--pooled",
        action="store_true",
        help="i.i.d. draws from all times even when M equals the columns",
    )
    parser.add_argument(
        "--keep-columns",
        action="store_true",
        help="row bootstrap without the per-trial column shuffle",
    )
    parser.add_argument(
        "--normalize",
        default="mean",
        choices=("mean", "median", "none"),
        help="divide the times by their mean (default), median, or not",
    )
    parser.add_argument(
        "--problem",
        default="breast_cancer",
        choices=PROBLEMS,
        help="learning problem (default breast_cancer; needs scikit-learn)",
    )
    parser.add_argument(
        "--upload-time",
        type=float,
        default=0.0,
        help="τ: link time of one full-precision gradient (32 bits a "
        "coordinate), in units of the mean measured compute time (of the "
        "normalised times); a message of β bits takes latency + "
        "τ·β/(32d) (default 0)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="added to every upload's link time, same units (default 0)",
    )
    parser.add_argument("--broadcast-time", type=float, default=0.0, help="τ_b per iteration")
    parser.add_argument("--link", default="parallel", help="parallel or shared")
    parser.add_argument("--trials", type=int, default=50, help="Monte Carlo trials (default 50)")
    parser.add_argument(
        "--iters",
        type=int,
        default=800,
        help="iterations per trial (default 800: enough for gd to reach the "
        "default target on the shipped traces with breast_cancer)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--target-gap",
        type=float,
        default=None,
        help="f − f* to reach (default 1e-6 × the initial gap)",
    )
    parser.add_argument(
        "--out",
        default="results/advise",
        help="output stem: writes STEM.md (table) and STEM.png (figure)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print only what was read, the table, the advice and errors: no "
        "line per simulated strategy",
    )


def _fail(flag: str, message: str) -> int:
    print(f"lagc-jax advise: {flag}: {message}", file=sys.stderr)
    return 2


def _check_out(stem: str) -> Path | None:
    path = Path(stem)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".{path.name}.write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        return None
    return path


def command(args) -> int:
    """``lagc-jax advise``: rank the strategies on the measured times, print the table and
    the advice, write STEM.md and STEM.png; returns the exit status (2: bad input, one line)."""
    try:
        import_user_modules(args.imports)
    except ValueError as error:  # "--import: ..." in one line
        print(f"lagc-jax advise: {error}", file=sys.stderr)
        return 2
    if (args.times is None) == (args.trace is None):
        return _fail("--times/--trace", "give exactly one of --times FILE.csv or --trace NAME")
    for flag, value in (("--trials", args.trials), ("--iters", args.iters)):
        if value < 1:
            return _fail(flag, f"must be an integer >= 1, got {value}")
    if args.seed < 0:
        return _fail("--seed", f"must be an integer >= 0, got {args.seed}")
    for flag, value in (
        ("--upload-time", args.upload_time),
        ("--latency", args.latency),
        ("--broadcast-time", args.broadcast_time),
    ):
        if not (math.isfinite(value) and value >= 0):
            return _fail(flag, f"must be finite and >= 0, got {value:g}")
    if args.target_gap is not None and not (math.isfinite(args.target_gap) and args.target_gap > 0):
        return _fail("--target-gap", f"must be finite and > 0, got {args.target_gap:g}")
    if args.link not in LINKS:
        return _fail("--link", f"must be one of {', '.join(LINKS)}, got {args.link!r}")
    if args.workers is not None and args.workers < 1:
        return _fail("--workers", f"must be an integer >= 1, got {args.workers}")
    try:
        if args.times is not None:  # refused unless its layout is unambiguous
            times, layout = datasets.load_times_csv_with_layout(args.times)
        else:
            times = datasets.straggler_trace(args.trace)
            layout = (
                f"trace {args.trace.upper()}: {times.shape[0]} steps × {times.shape[1]} workers"
            )
    except ValueError as error:
        return _fail("--times" if args.times is not None else "--trace", str(error))
    M = times.shape[1] if args.workers is None else args.workers
    if args.stragglers is None:
        stragglers = list(range(min(3, M - 1) + 1))
    else:
        try:
            stragglers = sorted({int(v) for v in args.stragglers.split(",")})
        except ValueError:
            return _fail(
                "--stragglers", f"must be comma-separated integers, got {args.stragglers!r}"
            )
        if not all(0 <= s < M for s in stragglers):
            return _fail(
                "--stragglers", f"each S must be in 0..{M - 1} (M - 1), got {args.stragglers!r}"
            )
    names = None
    if args.strategies is not None:
        names = [n.strip() for n in args.strategies.split(",") if n.strip()]
        unknown = [n for n in names if n not in strategies.names()]
        if unknown or not names:
            return _fail(
                "--strategies",
                f"valid names: {', '.join(strategies.names())}, got {args.strategies!r}",
            )
    out = _check_out(args.out)
    if out is None:
        return _fail("--out", f"cannot write to the folder of {args.out!r}")
    try:
        problem = advise.build_problem(args.problem, M)
    except ValueError as error:
        return _fail("--problem", str(error))
    delay, note = advise.delay_from_times(
        times,
        M,
        normalize=args.normalize,
        shuffle_columns=not args.keep_columns,
        pooled=args.pooled,
    )
    source = args.times if args.times is not None else f"trace {args.trace.upper()}"
    print(f"{layout}; {note}", file=sys.stderr)
    if not args.quiet:
        print(
            f"problem {problem.name}, M={M}, S in {stragglers}, {args.trials} trials × "
            f"{args.iters} iterations, τ={args.upload_time:g} ({args.link}), "
            f"latency={args.latency:g}, τ_b={args.broadcast_time:g}, times / "
            f"{args.normalize}",
            file=sys.stderr,
        )

    def progress(label):
        if not args.quiet:
            print(f"  {label}", file=sys.stderr)

    ranked = advise.compare(
        problem,
        delay,
        M,
        stragglers,
        num_iters=args.iters,
        num_trials=args.trials,
        target_gap=args.target_gap,
        seed=args.seed,
        upload_time=args.upload_time,
        broadcast_time=args.broadcast_time,
        latency=args.latency,
        link=args.link,
        names=names,
        progress=progress,
    )
    target_text = (
        "f − f* ≤ 1e-06 × the initial gap"
        if args.target_gap is None
        else f"f − f* ≤ {args.target_gap:g}"
    )
    table = advise.format_table(ranked, target_text)
    advice = advise.recommendation(ranked)
    print(table)
    print()
    print(advice)
    md = out.with_name(out.name + ".md")
    md.write_text(f"{source}: {note}\n\n{table}\n\n{advice}\n", encoding="utf-8")
    png = advise.plot_candidates(
        ranked,
        out.with_name(out.name + ".png"),
        title=f"{source}, M={M}, τ={args.upload_time:g} ({args.link}), "
        f"latency={args.latency:g}, {problem.name}",
    )
    if not args.quiet:
        print(f"wrote {md} and {png}", file=sys.stderr)
    return 0
