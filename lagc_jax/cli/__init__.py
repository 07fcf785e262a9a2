"""The command line, ``lagc-jax``: it parses and checks the flags, calls the library
(:mod:`lagc_jax.studies`) and prints; one module per command.

- ``lagc-jax run`` (:mod:`lagc_jax.cli.run`), also with no subcommand: every strategy (or
  one) on the LAG synthetic problem with M = 12 workers, S = 2, Exponential(1) unit times;
  prints the wall clock, uploads, computations and bits to reach the target gap (for a
  strategy whose median trial does not reach it, the gap it ends at);
- ``lagc-jax reproduce`` and ``lagc-jax table`` (:mod:`lagc_jax.cli.reproduce`);
- ``lagc-jax study`` and ``lagc-jax study-merge`` (:mod:`lagc_jax.cli.study`);
- ``lagc-jax advise`` (:mod:`lagc_jax.cli.advise`).

Simulations run in float64 unless ``--float32`` is given (a float32 gap floors near 1e-6 on
this problem, above the default target). While one runs, a progress bar on a terminal, a
line per strategy otherwise (:class:`lagc_jax.cli.progress.Progress`); ``--quiet`` silences
both. Bad input: one line on stderr naming the flag, exit status 2; Ctrl-C: exit status 130,
files already written kept. ``lagc-jax --version`` prints the version.

>>> main(["run", "--workers", "0"])          # one line on stderr
2
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading

from .. import __version__
from . import advise as advise_command
from . import reproduce as reproduce_commands
from . import run as run_command
from . import study as study_commands
from .progress import INTERRUPTED, raise_if_interrupted


def _on_interrupt(signum, frame):
    INTERRUPTED.set()
    raise KeyboardInterrupt


def _quiet_lost_interrupts(previous_hook):
    def hook(unraisable):
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            previous_hook(unraisable)

    return hook


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, ``PROG: --flag must ...``, exit status 2."""

    def error(self, message):
        flag = re.match(r"argument (\S+): (.*)", message, flags=re.S)
        if flag:
            name, reason = flag.groups()
            message = f"{name} {reason}" if reason.startswith("must") else f"{name}: {reason}"
        self.exit(2, f"{self.prog}: {' '.join(message.split())}\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``lagc-jax`` parser: a subcommand per module of this package, each with its
    ``handler``.

    >>> build_parser().parse_args(["table", "--workers", "4", "--stragglers", "1"]).workers
    4
    """
    parser = _Parser(
        prog="lagc-jax",
        description="Monte Carlo simulation of GD, gradient coding, grouping, LAG, LAGC and G-LAG "
        "in wall-clock time, communication and computation.",
    )
    parser.add_argument("--version", action="version", version=f"lagc-jax {__version__}")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="simulate strategies and summarise (default)")
    run_command.add_arguments(run)
    run.set_defaults(handler=run_command.command)
    table = sub.add_parser("table", help="analytic vs Monte Carlo per-iteration costs")
    reproduce_commands.add_table_arguments(table)
    table.set_defaults(handler=reproduce_commands.table_command)
    reproduce = sub.add_parser("reproduce", help="the paper-reproduction study: figures, tables")
    reproduce_commands.add_reproduce_arguments(reproduce)
    reproduce.set_defaults(handler=reproduce_commands.reproduce_command)

    advise_parser = sub.add_parser(
        "advise", help="which strategy pays on measured compute times (a CSV or a shipped trace)"
    )
    advise_command.add_arguments(advise_parser)
    advise_parser.set_defaults(handler=advise_command.command)

    def one_line_error(message):  # one line on stderr naming the flag, exit status 2
        print(f"lagc-jax advise: {message}", file=sys.stderr)
        sys.exit(2)

    advise_parser.error = one_line_error

    study_parser = sub.add_parser(
        "study",
        help="run a study file (a grid of simulations in "
        "TOML): resumable, shardable, one tidy table",
    )
    study_commands.add_study_arguments(study_parser)
    study_parser.set_defaults(handler=study_commands.study_command)
    merge_parser = sub.add_parser("study-merge", help="join the folders of a study's shards")
    study_commands.add_merge_arguments(merge_parser)
    merge_parser.set_defaults(handler=study_commands.merge_command)
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status (2: bad input, 130: interrupted)."""
    command, as_program = "run", argv is None
    INTERRUPTED.clear()
    previous_handler, previous_hook = None, sys.unraisablehook
    if threading.current_thread() is threading.main_thread():
        previous_handler = signal.signal(signal.SIGINT, _on_interrupt)
        sys.unraisablehook = _quiet_lost_interrupts(previous_hook)
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
            argv = ["run", *argv]
        command = argv[0]
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exit_:  # --help (0) or a one-line error (2)
            return exit_.code if isinstance(exit_.code, int) else 2
        if not getattr(args, "float32", False):
            os.environ.setdefault("JAX_ENABLE_X64", "1")
            import jax

            jax.config.update("jax_enable_x64", True)
        if not hasattr(args, "handler"):
            parser.print_usage(sys.stderr)
            return 2
        try:
            status = args.handler(args)
        except SystemExit as exit_:
            return exit_.code if isinstance(exit_.code, int) else 2
        raise_if_interrupted()  # an interrupt lost in the last steps still counts
        return status
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not print a traceback
        print(f"lagc-jax {command}: interrupted; files already written are kept", file=sys.stderr)
        if as_program:
            # Skip interpreter teardown: with XLA work interrupted mid-flight it can crash
            # (SIGSEGV). Every file written so far is complete (atomic writes).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
    finally:
        if previous_handler is not None and not as_program:  # called from Python: restore
            signal.signal(signal.SIGINT, previous_handler)
            sys.unraisablehook = previous_hook
