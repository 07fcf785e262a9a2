"""``lagc-jax run``: simulate the chosen strategies on one problem and print their medians
to the target gap (:mod:`lagc_jax.studies.compare` runs them).

With no flags: every strategy on the LAG synthetic problem with M = 12 workers, S = 2,
Exponential(1) unit times; the wall clock, uploads, computations and bits to reach the target
gap (for a strategy whose median trial does not reach it, the gap it ends at).

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="lagc-jax run")
>>> add_arguments(parser)
>>> args = parser.parse_args(["--strategy", "gd", "--workers", "4"])
>>> args.strategy, args.workers, args.stragglers, args.target_gap
('gd', 4, 2, 1e-06)
"""

from __future__ import annotations

import argparse
import sys

from .. import strategies
from ..checks import (
    LINKS,
    add_grid_arguments,
    PROBLEMS,
    accepts_option,
    applicable,
    check_options,
    check_relations,
    check_writable,
    default_k,
    default_straggle_probability,
    import_user_modules,
    int_at_least,
    number,
    one_of,
    probability_below_one,
)
from ..studies import advise, compare
from .progress import Progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``lagc-jax run``."""
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE (a module name, or a path to a .py file) first, e.g. "
        "one that registers strategies with lagc_jax.register; repeatable",
    )
    parser.add_argument("--strategy", default="all", help="a strategy name or 'all' (default: all)")
    add_grid_arguments(parser)
    parser.add_argument(
        "--trials", type=int_at_least(1), default=200, help="Monte Carlo trials (default 200)"
    )
    parser.add_argument(
        "--iters", type=int_at_least(1), default=400, help="iterations per trial (default 400)"
    )
    parser.add_argument("--seed", type=int_at_least(0), default=0)
    parser.add_argument(
        "--upload-time",
        type=number(0),
        default=0.0,
        help="τ: link time of a full-precision gradient (default 0)",
    )
    parser.add_argument(
        "--latency",
        type=number(0),
        default=0.0,
        help="added to every upload's link time (default 0)",
    )
    parser.add_argument("--broadcast-time", type=number(0), default=0.0, help="τ_b per iteration")
    parser.add_argument("--link", type=one_of(LINKS), default="parallel", help="parallel or shared")
    parser.add_argument(
        "--xi",
        type=number(0),
        default=None,
        help="LAG threshold ξ of strategies with an xi option (default per rule)",
    )
    parser.add_argument(
        "--k",
        type=int_at_least(1),
        default=None,
        help="k of strategies with a k option, e.g. k-async: the gradients per "
        "server update (default M − S for k-async; a user strategy keeps "
        "its own default)",
    )
    parser.add_argument(
        "--bits",
        type=int_at_least(1),
        default=None,
        help="bits per coordinate b of strategies with a bits option (qgd, laq; "
        "a message is b·d + 32 bits; default per strategy)",
    )
    parser.add_argument(
        "--deadline",
        type=number(0, strict=True),
        default=None,
        help="deadline T, in wall-clock units, of strategies with a deadline "
        "option (deadline, sgc)",
    )
    parser.add_argument(
        "--straggle-probability",
        type=probability_below_one,
        default=None,
        help="p of strategies with a straggle_probability option (sgc); with "
        "--deadline alone, sgc gets p = P((S+1)·X + link time > T) from "
        "--delay",
    )
    parser.add_argument(
        "--target-gap",
        type=number(0, strict=True),
        default=compare.DEFAULT_TARGET_GAP,
        help=f"f − f* to reach (default {compare.DEFAULT_TARGET_GAP:g})",
    )
    parser.add_argument(
        "--grad-error",
        action="store_true",
        help="record the gradient error η = ‖ĝ − ∇f‖²/‖∇f‖² of every round "
        "(MODEL.md §10): a column (its mean over the run) and, with "
        "--figures, STEM_grad_error.png",
    )
    parser.add_argument(
        "--figures",
        action="store_true",
        help="also write STEM_bits.png (gap against bits on the wire) and, with "
        "--grad-error, STEM_grad_error.png (gradient error against wall "
        "clock)",
    )
    parser.add_argument(
        "--out",
        default="results/run",
        help="output stem: writes STEM_<strategy>.npz/.json (default results/run)",
    )
    parser.add_argument("--float32", action="store_true", help="simulate in float32")
    parser.add_argument(
        "--problem",
        default="lag_synthetic",
        choices=PROBLEMS,
        help="learning problem (default lag_synthetic; the others need scikit-learn)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print only the table, notes and errors: no progress bar or lines",
    )


# The flags passed to a strategy's factory as the option of the same name, when it has one.
OPTION_FLAGS = (
    ("--xi", "xi"),
    ("--k", "k"),
    ("--bits", "bits"),
    ("--deadline", "deadline"),
    ("--straggle-probability", "straggle_probability"),
)


def command(args) -> int:
    """``lagc-jax run``: simulate the chosen strategies and print the table; returns the exit
    status (2: bad input, one line on stderr)."""

    prog = "lagc-jax run"
    try:
        import_user_modules(args.imports)
    except ValueError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    check_relations(prog, args)
    delay = args.delay

    explicit = args.strategy != "all"
    names = (args.strategy,) if explicit else strategies.names()
    given = [(flag, option, getattr(args, option)) for flag, option in OPTION_FLAGS]
    check_options(prog, names, explicit, given)

    def build(name):
        # an option goes to a factory only when given and accepted (checked above); a
        # built-in factory with a k option (k-async) gets k = M − S by default, and sgc
        # given only --deadline the probability of missing it
        factory = strategies.info(name).factory
        options = {
            option: value
            for _, option, value in given
            if value is not None and accepts_option(factory, option)
        }
        if "k" not in options and default_k(factory, args.workers, args.stragglers) is not None:
            options["k"] = default_k(factory, args.workers, args.stragglers)
        if "straggle_probability" not in options:
            p = default_straggle_probability(
                factory,
                delay,
                options.get("deadline"),
                stragglers=args.stragglers,
                upload_time=args.upload_time,
                latency=args.latency,
            )
            if p is not None:
                if not p < 1:
                    raise ValueError(
                        f"--deadline {args.deadline:g}: every message misses it "
                        f"(P({args.stragglers + 1}·X + link time > T) = 1); raise "
                        "it or give --straggle-probability"
                    )
                options["straggle_probability"] = p
                print(
                    f"{prog}: note: {name} gets straggle_probability {p:.4g} = "
                    f"P({args.stragglers + 1}·X + link time > --deadline {args.deadline:g})",
                    file=sys.stderr,
                )
        strategy = strategies.make(name, args.workers, args.stragglers, **options)
        links = tuple(getattr(strategy, "links", LINKS))
        if args.link not in links:
            raise ValueError(
                f"--link {args.link} does not apply to strategy {name!r} "
                f"(supported: {', '.join(links)})"
            )
        return strategy

    built = applicable(prog, names, args.workers, args.stragglers, build, explicit)
    try:
        problem = advise.build_problem(args.problem, args.workers)
    except ValueError as error:  # too many workers for the data, or scikit-learn missing
        print(
            f"{prog}: --problem {args.problem} with --workers {args.workers}: {error}",
            file=sys.stderr,
        )
        return 2
    check_writable(prog, "--out", f"{args.out}_x.npz")
    if not args.quiet:
        print(
            f"problem {problem.name}, M={args.workers}, S={args.stragglers}, "
            f"delay {delay.describe()}, {args.trials} trials × {args.iters} iterations, "
            f"τ={args.upload_time:g} ({args.link}), latency={args.latency:g}, "
            f"τ_b={args.broadcast_time:g}",
            file=sys.stderr,
        )
    progress = Progress(len(built), args.iters, quiet=args.quiet)
    run = compare.run_strategies(
        problem,
        built,
        delay,
        num_iters=args.iters,
        num_trials=args.trials,
        seed=args.seed,
        upload_time=args.upload_time,
        broadcast_time=args.broadcast_time,
        latency=args.latency,
        link=args.link,
        target_gap=args.target_gap,
        out=args.out,
        grad_error=args.grad_error,
        curves=args.figures,
        progress=progress,
    )
    if args.figures:
        written = compare.write_run_figures(
            problem.name,
            run["bits_curves"],
            run["error_curves"],
            workers=args.workers,
            stragglers=args.stragglers,
            delay=delay,
            num_trials=args.trials,
            target_gap=args.target_gap,
            out=args.out,
        )
        if not args.quiet:
            for path in written:
                print(f"  wrote {path}", file=sys.stderr)
    print(compare.format_summary_table(run["rows"], args.target_gap))
    return 0
