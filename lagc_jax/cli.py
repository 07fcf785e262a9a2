"""Command line: ``lagc-jax run`` (one study), ``table``, ``reproduce``, ``advise``.

``lagc-jax run`` with no arguments simulates every strategy on the LAG
synthetic problem with M = 12 workers, S = 2, Exponential(1) unit times, and
prints the wall clock, uploads, computations and bits to reach the target gap
(for a strategy whose median trial does not reach it, the gap it ends at).
Simulations run in float64 unless ``--float32`` is given (a float32 gap floors
near 1e-6 on this problem, above the default target). While it runs, a progress
bar on a terminal, a line per strategy otherwise (:class:`Progress`); ``--quiet``
silences both. ``lagc-jax --version`` prints the version.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import signal
import sys
import threading
import time
import warnings

from .checks import (
    LINKS,
    PROBLEMS,
    accepts_option,
    applicable,
    check_options,
    check_relations,
    check_writable,
    default_k,
    default_straggle_probability,
    delay_spec,
    import_user_modules,
    int_at_least,
    number,
    one_of,
    probability_below_one,
)

DEFAULT_TARGET_GAP = 1e-6

# Set by Ctrl-C. The KeyboardInterrupt the handler raises can be lost: jax runs a Python
# hook inside the garbage collector, where Python reports an exception as "ignored" (with
# a traceback) and drops it. Progress reports and the end of a command check the flag,
# so the interrupt still stops the run, and such a report is not printed.
_INTERRUPTED = threading.Event()


def _on_interrupt(signum, frame):
    _INTERRUPTED.set()
    raise KeyboardInterrupt


def _quiet_lost_interrupts(previous_hook):
    def hook(unraisable):
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            previous_hook(unraisable)

    return hook


def _raise_if_interrupted() -> None:
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, ``PROG: --flag must ...``, exit status 2."""

    def error(self, message):
        flag = re.match(r"argument (\S+): (.*)", message, flags=re.S)
        if flag:
            name, reason = flag.groups()
            message = f"{name} {reason}" if reason.startswith("must") else f"{name}: {reason}"
        self.exit(2, f"{self.prog}: {' '.join(message.split())}\n")


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--workers", type=int_at_least(1), default=12, help="M (default 12)")
    parser.add_argument("--stragglers", type=int_at_least(0), default=2, help="S (default 2)")
    parser.add_argument(
        "--delay",
        type=delay_spec,
        default="exp:1",
        help="exp:RATE[,SHIFT], pareto:SCALE,SHAPE, weibull:SCALE,SHAPE[,SHIFT], "
        "lognormal:MU,SIGMA or bimodal:RATE,SLOW_FACTOR,P_SLOW (default exp:1)",
    )
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
        default=DEFAULT_TARGET_GAP,
        help=f"f − f* to reach (default {DEFAULT_TARGET_GAP:g})",
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


def _duration(seconds: float) -> str:
    """``M:SS`` or ``H:MM:SS``."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Feedback while the command line simulates ``points`` runs of ``iterations`` each.

    On a terminal (``stream.isatty()``) one line redrawn in place: a bar over the
    iterations of all points, the point running, the rate and the time left. Otherwise
    plain lines: one when a point ends (:meth:`finish`) and, while one runs, at most one
    every ``every`` seconds. ``quiet``: nothing. :meth:`report` is the engine's progress
    hook (``simulate(progress=...)``); it also stops the run at Ctrl-C.

    >>> import io
    >>> out, ticks = io.StringIO(), iter(range(0, 1000, 20))   # the clock moves 20 s a reading
    >>> progress = Progress(2, 100, stream=out, clock=lambda: float(next(ticks)), every=30)
    >>> progress.start("gd")
    >>> progress.report(50, 100)            # 20 s after the start: no line yet
    >>> progress.report(100, 100)           # 40 s: the point ends, no line mid-run
    >>> progress.finish("wrote r_gd.npz")
    >>> progress.start("gc"); progress.report(25, 100); progress.report(50, 100)
    >>> print(out.getvalue(), end="")
      gd (1/2): 100 iterations in 60 s; wrote r_gd.npz
      gc (2/2): 50/100 iterations, 40 s; total 150/200, ETA 0:40
    """

    BAR_WIDTH = 20

    def __init__(
        self,
        points: int,
        iterations: int,
        *,
        stream=None,
        quiet: bool = False,
        every: float = 30.0,
        clock=time.perf_counter,
    ):
        self.points, self.iterations = points, iterations
        self.stream = sys.stderr if stream is None else stream
        self.quiet, self.every, self.clock = quiet, every, clock
        isatty = getattr(self.stream, "isatty", None)
        self.terminal = not quiet and callable(isatty) and isatty()
        self.label, self.point, self.done = "", 0, 0  # done: iterations of the current point
        self.started = self.point_started = self.last_line = None
        self.bar_shown = False

    @property
    def total(self) -> int:
        return self.points * self.iterations

    def _overall(self) -> int:
        return max(self.point - 1, 0) * self.iterations + self.done

    def _eta(self, now: float) -> str:
        elapsed, done = now - self.started, self._overall()
        if done <= 0 or elapsed <= 0:
            return "?"
        return _duration((self.total - done) * elapsed / done)

    def _rate(self, now: float) -> str:
        elapsed = now - self.started
        return f"{self._overall() / elapsed:.3g} it/s" if elapsed > 0 else "? it/s"

    def start(self, label: str) -> None:
        """The next point, named ``label``, starts."""
        now = self.clock()
        self.started = now if self.started is None else self.started
        self.label, self.point, self.done = label, self.point + 1, 0
        self.point_started = self.last_line = now
        if self.terminal:
            self._draw(now)

    def report(self, done: int, total: int) -> None:
        """The engine's hook: ``done`` of the point's ``total`` iterations are done."""
        _raise_if_interrupted()
        self.done = done
        if self.quiet:
            return
        now = self.clock()
        if self.terminal:
            self._draw(now)
        elif done < total and now - self.last_line >= self.every:
            self._line(
                f"  {self.label} ({self.point}/{self.points}): {done}/{total} "
                f"iterations, {now - self.point_started:.0f} s; total "
                f"{self._overall()}/{self.total}, ETA {self._eta(now)}",
                now,
            )

    def finish(self, message: str) -> None:
        """The point ended: one line with its duration and ``message`` (on a terminal, above
        the bar)."""
        now = self.clock()
        self.done = self.iterations
        if not self.quiet:
            self._line(
                f"  {self.label} ({self.point}/{self.points}): {self.iterations} "
                f"iterations in {now - self.point_started:.3g} s; {message}",
                now,
            )

    def clear(self) -> None:
        """Erase the bar, so that what is printed next starts a clean line (the bar comes
        back at the next report)."""
        if self.bar_shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.bar_shown = False

    def _line(self, text: str, now: float) -> None:
        self.clear()
        print(text, file=self.stream, flush=True)
        self.last_line = now
        if self.terminal and self._overall() < self.total:
            self._draw(now)

    def _draw(self, now: float) -> None:
        overall = self._overall()
        filled = self.BAR_WIDTH * overall // max(self.total, 1)
        bar = "█" * filled + "·" * (self.BAR_WIDTH - filled)
        text = (
            f"{self.label} ({self.point}/{self.points}) {bar} {overall}/{self.total} "
            f"iterations, {self._rate(now)}, ETA {self._eta(now)}"
        )
        width = shutil.get_terminal_size((80, 24)).columns
        self.stream.write("\r" + text[: max(width - 1, 10)] + "\x1b[K")
        self.stream.flush()
        self.bar_shown = True


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
    from .results import REACH_FIELDS, format_final_gap
    from .results import format_median_interval as cell

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


# The flags passed to a strategy's factory as the option of the same name, when it has one.
OPTION_FLAGS = (
    ("--xi", "xi"),
    ("--k", "k"),
    ("--bits", "bits"),
    ("--deadline", "deadline"),
    ("--straggle-probability", "straggle_probability"),
)


def cmd_run(args) -> int:
    from . import advise, simulate, strategies

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
    rows, bits_curves, error_curves = [], {}, {}
    try:
        for strategy in built:
            _raise_if_interrupted()
            progress.start(strategy.name)
            with warnings.catch_warnings(record=True) as caught:  # shown below, not over the bar
                result = simulate(
                    problem,
                    strategy,
                    delay,
                    num_iters=args.iters,
                    num_trials=args.trials,
                    seed=args.seed,
                    upload_time=args.upload_time,
                    broadcast_time=args.broadcast_time,
                    latency=args.latency,
                    link=args.link,
                    chunk_size=max(args.iters // 10, 1),
                    record=("grad_error",) if args.grad_error else (),
                    progress=progress.report,
                )
            path = result.save(f"{args.out}_{strategy.name}")
            progress.finish(f"wrote {path}")
            if caught:
                progress.clear()
            for w in caught:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)
            rows.append((strategy.name, result.summary(args.target_gap)))
            if args.figures:
                from . import plotting

                bits_curves[strategy.name] = plotting.bits_curves(result)
                if args.grad_error:
                    error_curves[strategy.name] = plotting.error_curve(result)
    finally:  # an error or Ctrl-C is reported on a clean line
        progress.clear()
    if args.figures:
        write_run_figures(args, problem.name, bits_curves, error_curves)
    print(format_summary_table(rows, args.target_gap))
    return 0


def write_run_figures(args, problem_name: str, bits_curves: dict, error_curves: dict) -> list:
    """``lagc-jax run --figures``: STEM_bits.png (gap against bits, every strategy whose
    Result holds bits) and, with ``--grad-error``, STEM_grad_error.png; returns the paths
    written (each also printed on stderr unless ``--quiet``)."""
    from . import plotting

    title = (
        f"{problem_name}, M = {args.workers}, S = {args.stragglers}, "
        f"{args.delay.describe()}, {args.trials} trials"
    )
    written = []
    bits_curves = {name: curves for name, curves in bits_curves.items() if curves}
    if bits_curves:
        written.append(
            plotting.bits_figure(bits_curves, args.target_gap, title, f"{args.out}_bits.png")[0]
        )
    if error_curves:
        written.append(plotting.error_figure(error_curves, title, f"{args.out}_grad_error.png")[0])
    if not args.quiet:
        for path in written:
            print(f"  wrote {path}", file=sys.stderr)
    return written


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog="lagc-jax",
        description="Monte Carlo simulation of GD, gradient coding, grouping, LAG, LAGC and G-LAG "
        "in wall-clock time, communication and computation.",
    )
    parser.add_argument("--version", action="version", version=f"lagc-jax {__version__}")
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
        "advise", help="which strategy pays on measured compute times (a CSV or a shipped trace)"
    )
    advise.add_advise_arguments(advise_parser)
    advise_parser.set_defaults(handler=advise.cmd_advise)

    def one_line_error(message):  # one line on stderr naming the flag, exit status 2
        print(f"lagc-jax advise: {message}", file=sys.stderr)
        sys.exit(2)

    advise_parser.error = one_line_error
    from . import study_files

    study_parser = sub.add_parser(
        "study",
        help="run a study file (a grid of simulations in "
        "TOML): resumable, shardable, one tidy table",
    )
    study_files.add_study_arguments(study_parser)
    study_parser.set_defaults(handler=study_files.cmd_study)
    merge_parser = sub.add_parser("study-merge", help="join the folders of a study's shards")
    study_files.add_merge_arguments(merge_parser)
    merge_parser.set_defaults(handler=study_files.cmd_study_merge)
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status (2: bad input, 130: interrupted)."""
    command, as_program = "run", argv is None
    _INTERRUPTED.clear()
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
        _raise_if_interrupted()  # an interrupt lost in the last steps still counts
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


if __name__ == "__main__":
    sys.exit(main())
