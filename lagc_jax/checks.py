"""Argument and value checks shared by the command line and the library modules behind it
(study files, advise, the paper's study): argparse types that fail with one line, checks
between flags, the user's ``--import`` modules, which options a strategy factory accepts.

It imports no jax, so parsing a command line stays fast; the names of the links and of the
built-in problems are defined here once.

>>> int_at_least(1)("3")
3
>>> accepts_option(lambda M, S, xi=1.0: None, "xi")
True
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import math
import os
import sys
import tempfile
import traceback
from pathlib import Path

# The uplinks of MODEL.md §3 (lagc_jax.timing.LINKS is this tuple).
LINKS = ("parallel", "shared")
# The learning problems the command line, advise and study files build by name
# (lagc_jax.studies.advise.build_problem).
PROBLEMS = ("breast_cancer", "diabetes", "lag_synthetic")


def int_at_least(low: int):
    """argparse type: an integer >= low."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
        return value

    return parse


def number(low: float = 0.0, *, strict: bool = False):
    """argparse type: a finite number >= low (> low when strict)."""
    relation = ">" if strict else ">="

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < low or strict and value == low:
            raise argparse.ArgumentTypeError(
                f"must be a finite number {relation} {low:g}, got {text!r}"
            )
        return value

    return parse


def probability_below_one(text):
    """argparse type: a number in [0, 1).

    >>> probability_below_one("0.25")
    0.25
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}")
    return value


def one_of(choices):
    """argparse type: one of ``choices``."""

    def parse(text):
        if text not in choices:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(choices)}, got {text!r}")
        return text

    return parse


def delay_spec(text):
    """argparse type: a delay model in one of the forms of :func:`lagc_jax.delays.parse_delay`."""
    from . import delays

    try:
        return delays.parse_delay(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    """``--workers``, ``--stragglers`` and ``--delay``, as every simulating command takes them.

    >>> parser = argparse.ArgumentParser()
    >>> add_grid_arguments(parser)
    >>> args = parser.parse_args(["--workers", "6"])
    >>> args.workers, args.stragglers
    (6, 2)
    """
    parser.add_argument("--workers", type=int_at_least(1), default=12, help="M (default 12)")
    parser.add_argument("--stragglers", type=int_at_least(0), default=2, help="S (default 2)")
    parser.add_argument(
        "--delay",
        type=delay_spec,
        default="exp:1",
        help="exp:RATE[,SHIFT], pareto:SCALE,SHAPE, weibull:SCALE,SHAPE[,SHIFT], "
        "lognormal:MU,SIGMA or bimodal:RATE,SLOW_FACTOR,P_SLOW (default exp:1)",
    )


def check_writable(prog: str, flag: str, path) -> None:
    """Exit 2 with one line unless files can be created in ``path``'s directory (created here)."""
    directory = Path(path).parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        print(
            f"{prog}: {flag}: cannot write to {directory} ({error.strerror or error})",
            file=sys.stderr,
        )
        raise SystemExit(2) from None


def applicable(prog: str, names, workers: int, stragglers: int, build, explicit: bool):
    """Strategies ``build(name)`` accepts; the others are skipped with a one-line note on
    stderr (or are an error when the user named the strategy). Exits 2 when none apply."""
    built, reasons = [], []
    for name in names:
        try:
            built.append(build(name))
        except ValueError as error:
            if explicit:
                print(f"{prog}: --strategy {name}: {error}", file=sys.stderr)
                raise SystemExit(2) from None
            reasons.append(str(error))
            print(f"{prog}: note: skipping {name}: {error}", file=sys.stderr)
    if not built:
        print(
            f"{prog}: no strategy applies to M = {workers}, S = {stragglers}: {reasons[0]}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return built


def check_relations(prog: str, args) -> None:
    """Checks between flags argparse cannot make alone: S < M, the seed's range."""
    if args.stragglers >= args.workers:
        print(
            f"{prog}: --stragglers must be an integer in [0, --workers - 1 = "
            f"{args.workers - 1}], got {args.stragglers}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    bits = 32 if getattr(args, "float32", False) else 63
    if args.seed >= 2**bits:
        print(
            f"{prog}: --seed must be an integer in [0, 2**{bits} - 1], got {args.seed}",
            file=sys.stderr,
        )
        raise SystemExit(2)


def _same_file(a, b) -> bool:
    if not a or not b or a.startswith("<") or b.startswith("<"):
        return False
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def describe_import_error(error: BaseException, path) -> str:
    """One line, ``FILE:LINE: Type: message``, for an exception raised importing ``path``.

    FILE:LINE is the innermost traceback frame inside ``path`` (for a SyntaxError in
    ``path``: the offending line); where the exception came from elsewhere (a module
    it imports, a function it calls), ``(raised at FILE:LINE)`` follows.
    """
    message = " ".join(
        str(getattr(error, "msg", None) if isinstance(error, SyntaxError) else error).split()
    )
    origin = None  # where it was raised, when that is a real file
    if isinstance(error, SyntaxError) and error.filename:
        origin = (error.filename, error.lineno)
    else:
        frames = [
            f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith("<")
        ]
        if frames:
            origin = (frames[-1].filename, frames[-1].lineno)
    inside = [f for f in traceback.extract_tb(error.__traceback__) if _same_file(f.filename, path)]
    if origin is not None and _same_file(origin[0], path):
        where, origin = f"{path}:{origin[1]}", None
    elif inside:
        where = f"{path}:{inside[-1].lineno}"
    elif path is None and origin is not None:
        where, origin = f"{origin[0]}:{origin[1]}", None
    else:
        where = str(path)
    text = f"{where}: {type(error).__name__}" + (f": {message}" if message else "")
    if origin is not None:
        text += f" (raised at {origin[0]}:{origin[1]})"
    return text


def import_user_modules(modules) -> None:
    """Import each module name or .py path (relative to the working directory).

    Raises a one-line ValueError starting ``--import:`` for a missing module or file,
    and, for a module that fails to import (a SyntaxError, an exception raised at
    import), one naming its file and line (:func:`describe_import_error`).
    """
    for module in modules:
        if module.endswith(".py"):
            path = os.path.abspath(module)
            if not os.path.isfile(path):
                raise ValueError(f"--import: no such file {module!r}")
            name = os.path.splitext(os.path.basename(path))[0]
            spec = importlib.util.spec_from_file_location(name, path)
            loaded = importlib.util.module_from_spec(spec)
            previous = sys.modules.get(name)
            sys.modules[name] = loaded
            try:
                spec.loader.exec_module(loaded)
            except Exception as error:
                if previous is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = previous
                raise ValueError(f"--import: {describe_import_error(error, path)}") from None
            continue
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            spec = importlib.util.find_spec(module)
        except ImportError as error:  # a parent package that does not exist
            raise ValueError(f"--import: cannot import {module!r} ({error})") from None
        except Exception as error:  # a parent package that fails to import
            raise ValueError(
                f"--import: cannot import {module!r} ({describe_import_error(error, None)})"
            ) from None
        if spec is None:
            raise ValueError(f"--import: cannot import {module!r} (No module named {module!r})")
        try:
            importlib.import_module(module)
        except Exception as error:
            raise ValueError(
                f"--import: {describe_import_error(error, spec.origin or module)}"
            ) from None


def accepts_option(factory, option: str) -> bool:
    """Whether ``factory(M, S, **{option: ...})`` is a valid call by its signature: a
    keyword parameter named ``option`` after (M, S), or ``**kwargs``."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return False
    named = [p for p in parameters[2:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return any(p.name == option for p in named) or any(p.kind is p.VAR_KEYWORD for p in parameters)


def is_builtin(factory) -> bool:
    """Whether ``factory`` is one of the package's own (not a user's)."""
    return str(getattr(factory, "__module__", "") or "").startswith("lagc_jax.")


def default_k(factory, workers: int, stragglers: int):
    """The k the command line gives a built-in factory with a k option (k-async): M − S.
    None for a user factory: it keeps its own default unless --k is given."""
    if is_builtin(factory) and accepts_option(factory, "k"):
        return workers - stragglers
    return None


def default_straggle_probability(
    factory, delay, deadline, *, stragglers: int, upload_time: float = 0.0, latency: float = 0.0
):
    """The p the command line gives a built-in factory with both a ``deadline`` and a
    ``straggle_probability`` option (sgc) when only ``--deadline`` is given: the
    probability that a worker's message misses the deadline, P((S+1)·X + latency + τ > T)
    (load S + 1, one full-precision upload; ``analysis.straggle_probability``). None when
    no deadline is given, and for any other factory (a user factory keeps its own default).

    >>> import lagc_jax as lj
    >>> sgc, gd = lj.strategies.info("sgc").factory, lj.strategies.info("gd").factory
    >>> round(default_straggle_probability(sgc, lj.ShiftedExponential(), 3.0, stragglers=2), 4)
    0.3679
    >>> default_straggle_probability(gd, lj.ShiftedExponential(), 3.0, stragglers=2) is None
    True
    """
    if deadline is None or not (
        is_builtin(factory)
        and accepts_option(factory, "deadline")
        and accepts_option(factory, "straggle_probability")
    ):
        return None
    from .analysis import straggle_probability

    return float(
        straggle_probability(
            delay, deadline, load=stragglers + 1, upload_time=upload_time, latency=latency
        )
    )


def check_options(prog: str, names, explicit: bool, given) -> None:
    """Refuse (one line, exit 2) an option flag no selected strategy accepts.

    ``given``: (flag, option, value) triples; value None means not given. With one
    named strategy it must accept each given option; with ``all``, at least one must,
    and a note on stderr names those that do when not all of them do.
    """
    from . import strategies

    factories = {}
    for name in names:
        try:
            factories[name] = strategies.info(name).factory
        except ValueError:
            return  # an unknown name: reported where the strategies are built
    for flag, option, value in given:
        if value is None:
            continue
        takers = [n for n, f in factories.items() if accepts_option(f, option)]
        if explicit and not takers:
            print(
                f"{prog}: {flag} does not apply to strategy {names[0]!r} (it has no "
                f"{option} option)",
                file=sys.stderr,
            )
            raise SystemExit(2)
        if not takers:
            print(
                f"{prog}: {flag} applies to none of the strategies (none has a {option} option)",
                file=sys.stderr,
            )
            raise SystemExit(2)
        if len(takers) < len(factories):
            print(
                f"{prog}: note: {flag} applies only to {', '.join(takers)} (the others have "
                f"no {option} option)",
                file=sys.stderr,
            )
