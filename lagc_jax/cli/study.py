"""``lagc-jax study`` (run a study file's points, resumable and shardable; write its table,
summary and figures) and ``lagc-jax study-merge`` (join the shards' folders);
:mod:`lagc_jax.studies.files` does the work.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..checks import check_writable, import_user_modules
from ..studies import files
from .progress import Progress


def _shard_argument(text):
    try:
        return files.parse_shard(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be i/n with integers 0 <= i < n, got {text!r}"
        ) from None


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """``lagc-jax study FILE|NAME [--out DIR] [--shard i/n] [--list] [--import MODULE]``.

    >>> parser = argparse.ArgumentParser(prog="lagc-jax study")
    >>> add_study_arguments(parser)
    >>> args = parser.parse_args(["trace_study", "--shard", "1/2"])
    >>> args.study, args.shard, args.out
    ('trace_study', (1, 2), None)
    """
    parser.add_argument(
        "study",
        metavar="FILE|NAME",
        help=f"a study file (.toml) or a shipped study: {', '.join(files.shipped_studies())}",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="folder of the points, table, summary and figures (default "
        "results/study_<name>); rerunning skips the points done",
    )
    parser.add_argument(
        "--shard",
        type=_shard_argument,
        default=(0, 1),
        metavar="i/n",
        help="run only the points of index i mod n (join with study-merge)",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="check the file and list its points (done or not); run nothing",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print only the results and errors: no progress bar or lines",
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE (a module name or a .py path) first, e.g. one that "
        "registers strategies; repeatable",
    )


def study_command(args) -> int:
    """Run a study file's points not done yet; unsharded, write the table, summary and
    figures and print each group's fastest point. Returns the exit status (2: a bad file, one line).

    >>> from lagc_jax import cli
    >>> cli.main(["study", "no-such-study"])     # one line on stderr
    2
    """

    prog = "lagc-jax study"
    try:
        import_user_modules(args.imports)
        study = files.load_study(args.study)
    except ValueError as error:
        print(f"{prog}: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    out = Path(args.out or f"results/study_{study.name}")
    if args.list:
        for i, p in enumerate(study.points):
            done = (out / "points" / f"{p.id}.csv").exists()
            print(f"{i}\t{p.id}\t{'done' if done else 'to run'}\t{p.describe()}")
        for what, why in study.skipped:
            print(f"skipped\t{what}: {why}")
        return 0
    check_writable(prog, "--out", out / "study.json")
    todo = files.pending_points(study, out, shard=args.shard)
    progress = Progress(len(todo), [p.iterations for p in todo], quiet=args.quiet)
    running = []

    def on_chunk(point, done, total):  # run_study's hook, after each chunk of a point
        if not running or running[-1] is not point:
            running.append(point)
            progress.start(point.label)
        progress.report(done, total)

    try:
        files.run_study(study, out, shard=args.shard, log=progress.note, progress=on_chunk)
    except ValueError as error:
        progress.clear()
        print(f"{prog}: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    progress.clear()
    if args.shard[1] > 1:
        progress.note(
            f"shard {args.shard[0]}/{args.shard[1]} done; when every shard is: lagc-jax "
            f"study-merge DIR... --out DIR"
        )
        return 0
    report = files.write_report(study, out, log=progress.note)
    print("\n".join(files.best_lines(study, report["summary"])))
    progress.note(f"wrote {', '.join(str(f) for f in report['files'])}")
    return 0


def add_merge_arguments(parser: argparse.ArgumentParser) -> None:
    """``lagc-jax study-merge DIR [DIR ...] [--out DIR]``.

    >>> parser = argparse.ArgumentParser(prog="lagc-jax study-merge")
    >>> add_merge_arguments(parser)
    >>> parser.parse_args(["shard0", "shard1", "--out", "all"]).dirs
    ['shard0', 'shard1']
    """
    parser.add_argument(
        "dirs",
        nargs="+",
        metavar="DIR",
        help="folders the shards of one study wrote (lagc-jax study --shard)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="folder for the joined points, table, summary and figures (default: the first DIR)",
    )


def merge_command(args) -> int:
    """Join the shards' folders and write the table, summary and figures; returns the exit
    status (2: a folder that is not a study's, one line).

    >>> import tempfile
    >>> from lagc_jax import cli
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     cli.main(["study-merge", folder])   # no study.json: one line on stderr
    2
    """

    prog = "lagc-jax study-merge"
    out = Path(args.out or args.dirs[0])
    check_writable(prog, "--out", out / "study.json")
    try:
        report = files.merge_studies(args.dirs, out)
    except ValueError as error:
        print(f"{prog}: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print("\n".join(files.best_lines(report["study"], report["summary"])))
    print(f"wrote {', '.join(str(f) for f in report['files'])}", file=sys.stderr, flush=True)
    return 0
