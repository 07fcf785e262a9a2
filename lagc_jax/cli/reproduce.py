"""``lagc-jax reproduce`` (the paper's study: figures, tables, saved runs) and ``lagc-jax
table`` (analytic vs Monte Carlo per-iteration costs); :mod:`lagc_jax.studies.paper` does
the work.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="lagc-jax table")
>>> add_table_arguments(parser)
>>> args = parser.parse_args(["--delay", "pareto:1,1.5"])
>>> args.delay.describe(), args.trials
('pareto(scale=1, shape=1.5)', 200)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import strategies
from ..checks import add_grid_arguments, applicable, check_relations, int_at_least, number
from ..studies import paper


def add_table_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``lagc-jax table``."""
    add_grid_arguments(parser)
    parser.add_argument(
        "--trials", type=int_at_least(2), default=200, help="Monte Carlo trials (default 200)"
    )
    parser.add_argument(
        "--iters", type=int_at_least(1), default=200, help="iterations per trial (default 200)"
    )
    parser.add_argument(
        "--upload-time", type=number(0), default=0.0, help="τ per upload, parallel link (default 0)"
    )
    parser.add_argument("--strategy", default="all", help="a strategy name or 'all'")
    parser.add_argument("--seed", type=int_at_least(0), default=0)


def table_command(args) -> int:
    """``lagc-jax table``: print the analytic vs Monte Carlo per-iteration costs; returns the
    exit status."""
    prog = "lagc-jax table"
    check_relations(prog, args)
    explicit = args.strategy != "all"
    names = (args.strategy,) if explicit else strategies.names()
    names = [
        s.name
        for s in applicable(
            prog,
            names,
            args.workers,
            args.stragglers,
            lambda name: strategies.make(name, args.workers, args.stragglers),
            explicit,
        )
    ]
    delay = args.delay
    rows = paper.iteration_table(
        args.workers,
        args.stragglers,
        delay,
        trials=args.trials,
        iters=args.iters,
        seed=args.seed,
        upload_time=args.upload_time,
        names=names,
    )
    header = (
        f"Expected per-iteration cost, M = {args.workers}, S = {args.stragglers}, "
        f"{delay.describe()}, τ = {args.upload_time:g} (parallel link); Monte Carlo: "
        f"{args.trials} trials × {args.iters} iterations on lag_synthetic({args.workers})"
    )
    print(paper.format_iteration_table(rows, header))
    return 0


def _int_tuple(text):
    return tuple(int(v) for v in text.split(",") if v != "")


def _float_tuple(text):
    return tuple(float(v) for v in text.split(",") if v != "")


def add_reproduce_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``lagc-jax reproduce`` (the grid's overrides are hidden: for the tests)."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="100 trials, 300 iterations, a smaller τ sweep (≈ 1–2 minutes)",
    )
    parser.add_argument(
        "--out", default="figures", help="directory for figures and tables (default figures)"
    )
    parser.add_argument(
        "--runs",
        default="results/reproduce",
        help="directory for the saved runs, npz + json (default results/reproduce)",
    )
    hidden = argparse.SUPPRESS  # test-only overrides of the preset grid
    parser.add_argument("--trials", type=int, help=hidden)
    parser.add_argument("--iters", type=int, help=hidden)
    parser.add_argument("--s-sweep-iters", type=int, help=hidden)
    parser.add_argument("--workers", type=int, help=hidden)
    parser.add_argument("--stragglers", type=int, help=hidden)
    parser.add_argument("--s-values", type=_int_tuple, help=hidden)
    parser.add_argument("--taus", type=_float_tuple, help=hidden)
    parser.add_argument("--seed", type=int, help=hidden)


def config_from_args(args) -> paper.StudyConfig:
    """The study's configuration: the ``--quick`` or the full preset, with the overrides given.

    >>> parser = argparse.ArgumentParser()
    >>> add_reproduce_arguments(parser)
    >>> config = config_from_args(parser.parse_args(["--quick", "--trials", "7"]))
    >>> config.trials, config.iters
    (7, 300)
    """
    overrides = {
        k: getattr(args, k)
        for k in (
            "trials",
            "iters",
            "s_sweep_iters",
            "workers",
            "stragglers",
            "s_values",
            "taus",
            "seed",
        )
        if getattr(args, k, None) is not None
    }
    return (paper.StudyConfig.quick if args.quick else paper.StudyConfig.full)(**overrides)


def reproduce_command(args) -> int:
    """``lagc-jax reproduce``: run the study, write its figures and tables, print the table;
    returns the exit status."""
    config = config_from_args(args)
    out = paper.reproduce(config, args.out, args.runs)
    print(Path(out["table_md"]).read_text())
    return 0
