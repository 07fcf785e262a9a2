"""Studies as files: a grid of simulations written in TOML, run point by point (``lagc-jax study``).

A study file names a grid — strategies with their options × M × S × delay × link × τ ×
problem × seeds × step sizes — with the trials, iterations and target gaps. Its points
(the grid's cartesian product) are run one ``simulate`` call each; every point writes
its rows (one per trial) into ``DIR/points/<id>.csv`` atomically, where ``<id>`` hashes
the point's parameters, so a rerun skips the points already done, and an edited file
runs only its new points. ``--shard i/n`` runs the points whose index is i mod n;
``lagc-jax study-merge DIR...`` joins the shards. The outputs, in ``DIR``:

- ``table.csv`` (and ``table.parquet`` when pyarrow is installed): the tidy table, a
  row per point and trial: the point's parameters, the mean unit time E[X], the initial
  and final gap, ``diverged``, and, for each target t, the iterations, wall clock,
  uploads, computations and bits uploaded to reach it (``wall_clock_to_<t>``; NaN:
  never reached; wall clock raw, in the delay model's time);
- ``summary.csv``: a row per point and target: the median over trials with its 95 %
  distribution-free interval (:func:`lagc_jax.results.median_interval`) and the mean
  with its 95 % Student-t interval (:func:`lagc_jax.studies.statistics.mean_interval`) of
  each quantity, the fraction reached, the rank within the point's comparison group and
  the paired ratio of its wall clock to the group's best, and the median final gap;
  ``summary.md`` (the same as tables per group);
- ``wall_clock.png`` (median wall clock to the first target per group) and
  ``sweep_<axis>.png`` for each numeric axis that takes several values.

A *comparison group* is the points that differ only in strategy, options, S and
iterations: they run on the same unit-time draws (common random numbers), so the
per-trial ratio of two of their wall clocks is a paired comparison.

The schema (every key optional unless marked required; a scalar stands for a list of one):

    [study]
    name = "my_study"             # default: the file name
    description = "..."
    trials = 40                   # required here or in each [[grid]]; an integer >= 1
    iterations = 400              # required here or in each [[grid]]; an integer >= 1
    targets = [1e-6]              # f − f* to reach, each > 0 (default [1e-6])
    target_scale = "absolute"     # or "initial_gap": each target × the point's mean initial gap
    time_unit = "mean"            # or "raw": τ, τ_b, latency and wall clocks in units of E[X]
    record_every = 1              # record every r-th iterate (r divides every iterations)
    chunk_size = 100              # optional: points run in checkpointed chunks (resume mid-point)
    # any grid key here is a default for every [[grid]]

    [[grid]]                      # one or more; the points are the union of their products
    strategies = ["gd", {name = "lag-wk", xi = 0.5}, {name = "async", iterations = 4800}]
    workers = [12]                # M, required
    stragglers = [0, 2]           # S (default 0)
    delay = ["exp:1", "pareto:1,1.5", "trace:AR"]   # default "exp:1"
    link = ["parallel"]           # or "shared"
    upload_time = [0.0]           # τ; also broadcast_time (τ_b) and latency
    problem = ["lag_synthetic"]   # lag_synthetic, breast_cancer, diabetes
    seed = [0]
    step_size_times_L = [1.0]     # α·L
    trials = 40                   # overrides [study]; also iterations

A strategy is a registered name or a table with ``name``, its options (those of
``lagc_jax.strategies.make``; a built-in strategy with a ``k`` option, such as ``k-async``,
gets k = M − S unless given, as in ``lagc-jax run``) and optionally its own ``iterations``.
Delays are the forms of :func:`lagc_jax.delays.parse_delay` and
``trace:NAME`` (a shipped trace, ``lagc_jax.datasets.straggler_trace``) or
``times:FILE.csv`` (measured times, relative to the study file): normalised to mean 1, a
row bootstrap with the columns shuffled once per trial (M must equal the columns), or
with ``,keep-columns`` unshuffled, or with ``,pooled`` i.i.d. draws from all times.
A point that cannot be built (grouping needs (S + 1) | M, S < M, a trace's columns, an
asynchronous strategy on a shared link) is skipped with a note; a value that applies to
no point of its grid is an error. Points with equal parameters run once.

A point's id hashes its parameters, its targets and ``record_every`` — not the package's
code: after changing the package, rerun in a new directory.

>>> study = parse_study({"study": {"trials": 4, "iterations": 20},
...                      "grid": [{"strategies": ["gd", "grouping"], "workers": 4,
...                                "stragglers": [1, 2]}]})
>>> [p.label for p in study.points]
['gd S=1', 'gd S=2', 'grouping S=1']
>>> study.skipped[0][0], Study.from_dict(study.to_dict()) == study
('grouping S=2, M=4, exp:1', True)
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import importlib.resources
import io
import itertools
import json
import math
import re
import shutil
import sys
import time
import tomllib
import warnings
from pathlib import Path

import numpy as np

from .. import delays, strategies
from ..checks import LINKS, PROBLEMS, accepts_option, default_k
from ..results import atomic_write, format_median_interval, median_interval
from .advise import build_problem
from .statistics import mean_interval, ratio_median_interval

__all__ = [
    "Point",
    "Study",
    "shipped_studies",
    "load_study",
    "parse_study",
    "build_delay",
    "run_study",
    "merge_studies",
    "read_rows",
    "summarize",
    "write_report",
    "best_lines",
    "parse_shard",
]

TARGET_SCALES = ("absolute", "initial_gap")
TIME_UNITS = ("mean", "raw")
TRACE_FLAGS = ("keep-columns", "pooled")
# Quantities to each target in the table and the summary (wall clock in the time unit).
QUANTITIES = ("iterations", "wall_clock", "uploads", "computations", "bits_up")
# Grid axes: their order is the order of the cartesian product (strategies outermost).
AXES = (
    "strategies",
    "workers",
    "stragglers",
    "delay",
    "link",
    "upload_time",
    "broadcast_time",
    "latency",
    "problem",
    "seed",
    "step_size_times_L",
)
AXIS_DEFAULTS = {
    "stragglers": [0],
    "delay": ["exp:1"],
    "link": ["parallel"],
    "upload_time": [0.0],
    "broadcast_time": [0.0],
    "latency": [0.0],
    "problem": ["lag_synthetic"],
    "seed": [0],
    "step_size_times_L": [1.0],
}
RUN_KEYS = ("trials", "iterations")  # in [study] or in a [[grid]]
STUDY_KEYS = (
    "name",
    "description",
    "targets",
    "target_scale",
    "time_unit",
    "record_every",
    "chunk_size",
    *RUN_KEYS,
    *AXES,
)
GRID_KEYS = (*AXES, *RUN_KEYS)
# Parameters of a point, as columns of the table and the summary.
PARAMETERS = (
    "point",
    "strategy",
    "options",
    "workers",
    "stragglers",
    "delay",
    "link",
    "upload_time",
    "broadcast_time",
    "latency",
    "problem",
    "seed",
    "step_size_times_L",
    "trials",
    "iterations",
)
TIME_PARAMETERS = ("upload_time", "broadcast_time", "latency")
# Numeric axes a sweep figure can be drawn against.
SWEEP_AXES = (
    "stragglers",
    "workers",
    "upload_time",
    "broadcast_time",
    "latency",
    "step_size_times_L",
)
PANELS_PER_FIGURE = 4


# --------------------------------------------------------------------------- #
# points and studies
# --------------------------------------------------------------------------- #
@dataclasses.dataclass(frozen=True)
class Point:
    """One simulation of a study: everything that determines its rows.

    ``options`` is the strategy's options as canonical JSON; ``upload_time``,
    ``broadcast_time`` and ``latency`` are absolute (the study's ``time_unit`` applied);
    ``delay_digest`` is the sha256 of a ``times:`` file (empty otherwise).

    >>> p = Point("lag-wk", '{"xi": 0.5}', 4, 0, "exp:1", "parallel", 0.0, 0.0, 0.0,
    ...           "lag_synthetic", 0, 1.0, 8, 20, (1e-6,), "absolute", 1)
    >>> p.label, len(p.id)
    ('lag-wk xi=0.5 S=0', 16)
    """

    strategy: str
    options: str
    workers: int
    stragglers: int
    delay: str
    link: str
    upload_time: float
    broadcast_time: float
    latency: float
    problem: str
    seed: int
    step_size_times_L: float
    trials: int
    iterations: int
    targets: tuple
    target_scale: str
    record_every: int
    delay_digest: str = ""

    @property
    def id(self) -> str:
        """16 hex digits of the sha256 of the point's fields (canonical JSON)."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def option_values(self) -> dict:
        """The options as keyword arguments (lists become arrays, e.g. an ``encoding``)."""
        return {
            name: np.asarray(value) if isinstance(value, list) else value
            for name, value in json.loads(self.options).items()
        }

    @property
    def strategy_label(self) -> str:
        """The strategy and its options, e.g. ``lag-wk xi=0.5``."""
        options = json.loads(self.options)
        shown = [f"{k}={'matrix' if isinstance(v, list) else v}" for k, v in options.items()]
        return " ".join([self.strategy, *shown])

    @property
    def label(self) -> str:
        """The strategy label with S, e.g. ``lag-wk xi=0.5 S=0``."""
        return f"{self.strategy_label} S={self.stragglers}"

    def describe(self) -> str:
        """A one-line description of every parameter that sets the point apart."""
        return (
            f"{self.label}, M={self.workers}, {self.delay}, {self.link} τ="
            f"{self.upload_time:g}, {self.problem}, seed {self.seed}, α·L="
            f"{self.step_size_times_L:g}, {self.trials} trials × {self.iterations} "
            "iterations"
        )

    def group(self) -> tuple:
        """The comparison group: every parameter but strategy, options, S and iterations."""
        return (
            self.workers,
            self.delay,
            self.delay_digest,
            self.link,
            self.upload_time,
            self.broadcast_time,
            self.latency,
            self.problem,
            self.seed,
            self.step_size_times_L,
            self.trials,
            self.targets,
            self.target_scale,
            self.record_every,
        )

    def build_strategy(self):
        """The strategy (``lagc_jax.strategies.make``; a built-in factory with a ``k`` option
        gets k = M − S unless given, as in ``lagc-jax run``); ValueError when it does not
        apply."""
        options = self.option_values
        k = default_k(strategies.info(self.strategy).factory, self.workers, self.stragglers)
        if "k" not in options and k is not None:
            options["k"] = k
        strategy = strategies.make(self.strategy, self.workers, self.stragglers, **options)
        supported = tuple(getattr(strategy, "links", LINKS))
        if self.link not in supported:
            raise ValueError(
                f"link {self.link!r} does not apply to strategy "
                f"{self.strategy!r} (supported: {', '.join(supported)})"
            )
        return strategy


@dataclasses.dataclass(frozen=True)
class Study:
    """A parsed study file: its points (in file order, without duplicates), the grid
    points skipped as not applicable with the reason, and the settings the outputs need.

    >>> s = parse_study({"study": {"trials": 2, "iterations": 10, "time_unit": "raw"},
    ...                  "grid": {"strategies": "gd", "workers": [2, 4]}})
    >>> s.name, len(s.points), s.time_unit
    ('study', 2, 'raw')
    """

    name: str
    description: str
    points: tuple
    skipped: tuple
    targets: tuple
    target_scale: str
    time_unit: str
    chunk_size: int | None
    base_dir: str = "."

    def to_dict(self) -> dict:
        """A JSON-able form (``study.json`` of a study's folder); :meth:`from_dict` reads it."""
        return {
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
            "points": [dataclasses.asdict(p) for p in self.points],
            "skipped": [list(s) for s in self.skipped],
            "targets": list(self.targets),
        }

    @classmethod
    def from_dict(cls, record: dict) -> "Study":
        """The Study of :meth:`to_dict`; ValueError when ``record`` is not one."""
        try:
            fields = {f.name: record[f.name] for f in dataclasses.fields(cls)}
            fields["points"] = tuple(
                Point(**{**p, "targets": tuple(p["targets"])}) for p in record["points"]
            )
            fields["skipped"] = tuple(tuple(s) for s in record["skipped"])
            fields["targets"] = tuple(record["targets"])
            return cls(**fields)
        except (KeyError, TypeError) as error:
            raise ValueError(f"not a study record ({type(error).__name__}: {error})") from None


# --------------------------------------------------------------------------- #
# reading a study file
# --------------------------------------------------------------------------- #
def _studies_folder():
    return importlib.resources.files("lagc_jax") / "data" / "studies"


def shipped_studies() -> tuple:
    """Names of the study files that ship with the package (``lagc-jax study NAME``).

    >>> shipped_studies()
    ('reproduce', 'trace_study')
    """
    return tuple(
        sorted(f.name[:-5] for f in _studies_folder().iterdir() if f.name.endswith(".toml"))
    )


def load_study(source) -> Study:
    """Read and check a study file: a path, or the name of a shipped study.

    Raises ValueError (naming the key and the valid values) for a file that is not valid
    TOML or breaks the schema, and for a name that is neither a file nor shipped.

    >>> len(load_study("trace_study").points)
    102
    """
    text = str(source)
    path = Path(text)
    if not path.is_file():
        if text in shipped_studies():
            path = Path(str(_studies_folder() / f"{text}.toml"))
        else:
            raise ValueError(
                f"study: {text!r} is neither a file nor a shipped study "
                f"(shipped: {', '.join(shipped_studies())})"
            )
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot be read ({error})") from None
    try:
        return parse_study(document, name=path.stem, base_dir=path.parent)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def _values(value) -> list:
    return list(value) if isinstance(value, list) else [value]


def _integers(key: str, value, low: int, high: float = math.inf) -> list:
    values = _values(value)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            bound = f"in [{low}, {high}]" if math.isfinite(high) else f">= {low}"
            raise ValueError(f"{key}: must be integers {bound}, got {v!r}")
    return values


def _numbers(key: str, value, *, positive: bool) -> list:
    values = _values(value)
    for v in values:
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not math.isfinite(v)
            or (v <= 0 if positive else v < 0)
        ):
            raise ValueError(
                f"{key}: must be finite numbers {'> 0' if positive else '>= 0'}, got {v!r}"
            )
    return [float(v) for v in values]


def _choices(key: str, value, valid) -> list:
    values = _values(value)
    for v in values:
        if v not in valid:
            raise ValueError(f"{key}: must be one of {', '.join(valid)}, got {v!r}")
    return values


def _one(key: str, value, check):
    if isinstance(value, list):
        raise ValueError(f"{key}: must be a single value, got a list")
    return check(key, value)[0]


def _check_keys(where: str, table, valid) -> None:
    if not isinstance(table, dict):
        raise ValueError(f"{where}: must be a table, got {type(table).__name__}")
    unknown = [k for k in table if k not in valid]
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: unknown key; valid keys: {', '.join(valid)}")


def _check_option_value(key: str, value):
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list) and all(
        isinstance(v, (int, float))
        and not isinstance(v, bool)
        or isinstance(v, list)
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
        for v in value
    ):
        return value
    raise ValueError(
        f"{key}: an option must be a number, string, boolean or an array of numbers, got {value!r}"
    )


def _strategy_entries(key: str, value) -> list:
    """[(name, options dict, iterations or None)] of a ``strategies`` list."""
    entries = []
    valid_names = strategies.names()
    for i, entry in enumerate(_values(value)):
        where = f"{key}[{i}]"
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ValueError(
                f"{where}: must be a strategy name or a table with a name, got {entry!r}"
            )
        options = dict(entry)
        name = options.pop("name")
        if name not in valid_names:
            raise ValueError(
                f"{where}.name: unknown strategy {name!r}; valid: {', '.join(valid_names)}"
            )
        iterations = options.pop("iterations", None)
        if iterations is not None:
            iterations = _one(f"{where}.iterations", iterations, lambda k, v: _integers(k, v, 1))
        factory = strategies.info(name).factory
        for option, option_value in options.items():
            if not accepts_option(factory, option):
                raise ValueError(f"{where}.{option}: strategy {name!r} has no option {option!r}")
            _check_option_value(f"{where}.{option}", option_value)
        entries.append((name, options, iterations))
    if not entries:
        raise ValueError(f"{key}: must name at least one strategy")
    return entries


def _delay_specs(key: str, value) -> list:
    specs = _values(value)
    for spec in specs:
        if not isinstance(spec, str):
            raise ValueError(f"{key}: must be strings such as 'exp:1' or 'trace:AR', got {spec!r}")
    return specs


def _axis_values(where: str, key: str, value) -> list:
    """The checked values of one grid axis."""
    name = f"{where}.{key}"
    if key == "strategies":
        return _strategy_entries(name, value)
    if key == "workers":
        return _integers(name, value, 1)
    if key == "stragglers":
        return _integers(name, value, 0)
    if key == "seed":
        return _integers(name, value, 0, 2**63 - 1)
    if key == "delay":
        return _delay_specs(name, value)
    if key == "link":
        return _choices(name, value, LINKS)
    if key == "problem":
        return _choices(name, value, PROBLEMS)
    if key == "step_size_times_L":
        return _numbers(name, value, positive=True)
    return _numbers(name, value, positive=False)  # upload_time, broadcast_time, latency


class _ColumnsDiffer(ValueError):
    """A replayed trace whose columns are not the M workers: the point does not apply."""


def build_delay(spec: str, workers: int, base_dir="."):
    """The delay model of a study's ``delay`` string for M = ``workers``.

    ``trace:NAME`` and ``times:FILE.csv`` (relative to ``base_dir``) are measured times
    normalised to mean 1: a row bootstrap with the columns shuffled once per trial (M
    must equal the columns), ``,keep-columns`` unshuffled, ``,pooled`` i.i.d. draws from
    all times. Anything else is :func:`lagc_jax.delays.parse_delay`'s.

    >>> build_delay("trace:ST", 8).describe()
    'empirical(32 steps × 8 workers, mean 1, shuffled columns)'
    >>> build_delay("trace:ST,pooled", 5).pooled, build_delay("exp:2,0.5", 5).mean
    (True, 1.0)
    """
    from .. import datasets

    kind, _, rest = spec.partition(":")
    if kind not in ("trace", "times"):
        return delays.parse_delay(spec)
    source, *flags = rest.split(",")
    unknown = [f for f in flags if f not in TRACE_FLAGS]
    if unknown or len(set(flags)) > 1 or not source:
        raise ValueError(
            f"delay {spec!r}: must be {kind}:{'NAME' if kind == 'trace' else 'FILE'}"
            f" optionally followed by one of ,{', ,'.join(TRACE_FLAGS)}"
        )
    times = (
        datasets.straggler_trace(source)
        if kind == "trace"
        else datasets.load_times_csv(Path(base_dir) / source)
    )
    times = delays.normalize_samples(times)
    if "pooled" in flags:
        return delays.Empirical(times.ravel())
    if times.shape[1] != workers:
        raise _ColumnsDiffer(
            f"delay {spec!r} replays {times.shape[1]} columns (one per worker) "
            f"but M = {workers}; add ',pooled' for i.i.d. draws"
        )
    return delays.Empirical(times, shuffle_columns="keep-columns" not in flags)


def _delay_digest(spec: str, base_dir) -> str:
    """sha256 of a ``times:`` file (so an edited file gives new points); '' otherwise."""
    kind, _, rest = spec.partition(":")
    if kind != "times":
        return ""
    path = Path(base_dir) / rest.split(",")[0]
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise ValueError(
            f"delay {spec!r}: cannot read {path} ({error.strerror or error})"
        ) from None


def parse_study(document: dict, *, name: str = "study", base_dir=".") -> Study:
    """Check a study's tables (as :mod:`tomllib` reads them) and expand the grid.

    Nothing is simulated or compiled: strategies and delay models are only built, to
    find the points that do not apply. Raises ValueError naming the key (``study.trials``,
    ``grid[1].strategies[0].xi``, …) and the valid values.

    >>> parse_study({"study": {"trials": 0, "iterations": 5}, "grid": {}})
    Traceback (most recent call last):
    ...
    ValueError: study.trials: must be integers >= 1, got 0
    """
    _check_keys("file", document, ("study", "grid"))
    settings = document.get("study", {})
    _check_keys("study", settings, STUDY_KEYS)
    if "grid" not in document:
        raise ValueError("grid: missing; add at least one [[grid]] table")
    grids = document["grid"]
    grids = [grids] if isinstance(grids, dict) else grids
    if not isinstance(grids, list) or not grids:
        raise ValueError("grid: must be one or more [[grid]] tables")
    study_name = settings.get("name", name)
    if not isinstance(study_name, str) or not re.fullmatch(r"[\w.-]+", study_name):
        raise ValueError(
            f"study.name: must be a non-empty string of letters, digits, '_', '-' "
            f"and '.' (it names the default output folder), got {study_name!r}"
        )
    description = settings.get("description", "")
    if not isinstance(description, str):
        raise ValueError(f"study.description: must be a string, got {description!r}")
    targets = tuple(_numbers("study.targets", settings.get("targets", [1e-6]), positive=True))
    if not targets:
        raise ValueError("study.targets: must hold at least one target gap")
    if len(set(targets)) != len(targets):
        raise ValueError(f"study.targets: must be distinct, got {list(targets)}")
    target_scale = _one(
        "study.target_scale",
        settings.get("target_scale", "absolute"),
        lambda k, v: _choices(k, v, TARGET_SCALES),
    )
    time_unit = _one(
        "study.time_unit",
        settings.get("time_unit", "mean"),
        lambda k, v: _choices(k, v, TIME_UNITS),
    )
    record_every = _one(
        "study.record_every", settings.get("record_every", 1), lambda k, v: _integers(k, v, 1)
    )
    chunk_size = settings.get("chunk_size")
    if chunk_size is not None:
        chunk_size = _one("study.chunk_size", chunk_size, lambda k, v: _integers(k, v, 1))
        if chunk_size % record_every:
            raise ValueError(
                f"study.chunk_size: must be a multiple of study.record_every = "
                f"{record_every}, got {chunk_size}"
            )
    defaults = {key: settings[key] for key in GRID_KEYS if key in settings}
    for key in RUN_KEYS:
        if key in defaults:
            _one(f"study.{key}", defaults[key], lambda k, v: _integers(k, v, 1))
    for key in AXES:
        if key in defaults:
            _axis_values("study", key, defaults[key])

    points, skipped = {}, []
    for g, grid in enumerate(grids):
        where = f"grid[{g}]"
        _check_keys(where, grid, GRID_KEYS)
        merged = {**AXIS_DEFAULTS, **defaults, **grid}
        for key in ("strategies", "workers", *RUN_KEYS):
            if key not in merged:
                raise ValueError(f"{where}.{key}: missing; set it in this [[grid]] or in [study]")
        axes = {
            key: _axis_values(
                where if key in grid else "study" if key in defaults else where, key, merged[key]
            )
            for key in AXES
        }
        trials, iterations = (
            _one(f"{where}.{key}", merged[key], lambda k, v: _integers(k, v, 1)) for key in RUN_KEYS
        )
        grid_points, reasons = _expand(
            where,
            axes,
            trials,
            iterations,
            targets,
            target_scale,
            record_every,
            time_unit,
            base_dir,
        )
        for point, reason in grid_points:
            if reason is None:
                points.setdefault(point.id, point)
            else:
                skipped.append((point, reason))
        _check_every_value_applies(where, axes, reasons)
    return Study(
        study_name,
        description,
        tuple(points.values()),
        tuple(skipped),
        targets,
        target_scale,
        time_unit,
        chunk_size,
        str(base_dir),
    )


def _expand(
    where, axes, trials, iterations, targets, target_scale, record_every, time_unit, base_dir
):
    """[(point, None) or (description, the reason it does not apply)] of one grid, and for
    each (axis, value index) the reason of its first point that does not apply (None: one
    applies)."""
    out, reasons = [], {}
    ranges = [range(len(axes[key])) for key in AXES]
    for index in itertools.product(*ranges):
        values = {key: axes[key][i] for key, i in zip(AXES, index)}
        name, options, own_iterations = values["strategies"]
        point, reason = _make_point(
            where,
            values,
            name,
            options,
            own_iterations or iterations,
            trials,
            targets,
            target_scale,
            record_every,
            time_unit,
            base_dir,
        )
        out.append((point, reason))
        for key, i in zip(AXES, index):
            if reason is None:
                reasons[key, i] = None
            elif reasons.get((key, i), "") is not None:
                reasons.setdefault((key, i), reason)
    return out, reasons


def _make_point(
    where,
    values,
    name,
    options,
    iterations,
    trials,
    targets,
    target_scale,
    record_every,
    time_unit,
    base_dir,
):
    """(Point, None), or (a description, why the point does not apply)."""
    M, S, spec = values["workers"], values["stragglers"], values["delay"]
    shown = " ".join([name, *(f"{k}={v}" for k, v in options.items())])
    description = f"{shown} S={S}, M={M}, {spec}"
    if iterations % record_every:
        raise ValueError(
            f"{where}: study.record_every = {record_every} must divide the "
            f"iterations, got {iterations} (strategy {name!r})"
        )
    if S >= M:
        return description, f"stragglers S = {S} must be < workers M = {M}"
    try:
        delay = build_delay(spec, M, base_dir)
    except _ColumnsDiffer as error:
        return description, str(error)
    except ValueError as error:
        raise ValueError(f"{where}.delay: {error}") from None
    unit = 1.0
    if time_unit == "mean":
        unit = float(delay.mean)
        if not math.isfinite(unit):
            raise ValueError(
                f"{where}.delay: {spec!r} has an infinite mean unit time; set "
                'study.time_unit = "raw" to give times as they are'
            )
    point = Point(
        strategy=name,
        options=json.dumps(options, sort_keys=True),
        workers=M,
        stragglers=S,
        delay=spec,
        link=values["link"],
        **{key: values[key] * unit for key in TIME_PARAMETERS},
        problem=values["problem"],
        seed=values["seed"],
        step_size_times_L=values["step_size_times_L"],
        trials=trials,
        iterations=iterations,
        targets=targets,
        target_scale=target_scale,
        record_every=record_every,
        delay_digest=_delay_digest(spec, base_dir),
    )
    try:
        point.build_strategy()
    except ValueError as error:
        return description, str(error)
    return point, None


def _check_every_value_applies(where, axes, reasons) -> None:
    if all(reason is not None for reason in reasons.values()):
        raise ValueError(f"{where}: no point of this grid applies ({next(iter(reasons.values()))})")
    for (key, i), reason in reasons.items():
        if reason is not None:
            value = axes[key][i]
            if key == "strategies":
                key, value = f"strategies[{i}]", value[0]
            raise ValueError(
                f"{where}.{key}: {value!r} applies to no point of this grid ({reason})"
            )


# --------------------------------------------------------------------------- #
# running
# --------------------------------------------------------------------------- #
def parse_shard(text: str) -> tuple:
    """``"i/n"`` as (i, n) with 0 <= i < n: this process runs the points of index i mod n.

    >>> parse_shard("1/4")
    (1, 4)
    """
    try:
        index, count = (int(v) for v in str(text).split("/"))
    except ValueError:
        index, count = -1, 0
    if not 0 <= index < count:
        raise ValueError(f"shard must be 'i/n' with integers 0 <= i < n, got {text!r}")
    return index, count


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _columns(targets) -> tuple:
    per_target = tuple(f"{q}_to_{t:g}" for t in targets for q in QUANTITIES)
    return (
        *PARAMETERS,
        "trial",
        "mean_unit_time",
        "initial_gap",
        "final_gap",
        "diverged",
        *per_target,
    )


def _point_rows(point: Point, result, mean_unit_time: float) -> list:
    """The rows of one point: a dict per trial, in the table's columns."""
    initial = result.gap[:, 0]
    scale = float(np.mean(initial)) if point.target_scale == "initial_gap" else 1.0
    reach = {t: result.to_reach(t * scale) for t in point.targets}
    fields = dataclasses.asdict(point)
    base = {name: fields[name] for name in PARAMETERS[1:]}
    rows = []
    for i in range(result.num_trials):
        row = {
            "point": point.id,
            **base,
            "trial": i,
            "mean_unit_time": mean_unit_time,
            "initial_gap": float(initial[i]),
            "final_gap": float(result.gap[i, -1]),
            "diverged": bool(result.diverged[i]),
        }
        for t in point.targets:
            for q in QUANTITIES:
                row[f"{q}_to_{t:g}"] = float(reach[t][q][i])
        rows.append(row)
    return rows


def _format(value) -> str:
    return repr(float(value)) if isinstance(value, (float, np.floating)) else str(value)


def _csv_text(rows, columns) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_format(row[c]) for c in columns])
    return buffer.getvalue()


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _run_point(point: Point, problem, delay, chunk_size, checkpoint_dir, progress, log):
    from ..engine import simulate

    chunked = chunk_size is not None and chunk_size < point.iterations
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        result = simulate(
            problem,
            point.build_strategy(),
            delay,
            num_iters=point.iterations,
            num_trials=point.trials,
            seed=point.seed,
            step_size=point.step_size_times_L / problem.smoothness,
            upload_time=point.upload_time,
            broadcast_time=point.broadcast_time,
            latency=point.latency,
            link=point.link,
            record_every=point.record_every,
            chunk_size=chunk_size if chunked else None,
            checkpoint_dir=checkpoint_dir if chunked else None,
            progress=None if progress is None else functools.partial(progress, point),
        )
    for message in dict.fromkeys(str(w.message) for w in caught):
        log(f"  note: {point.label}: {message}")
    return result


def pending_points(study: Study, out_dir, *, shard=(0, 1)) -> list:
    """The points of ``study`` in shard ``(i, n)`` (index i mod n) that ``out_dir`` does not
    hold yet, in the order :func:`run_study` runs them.

    >>> study = parse_study({"study": {"trials": 4, "iterations": 10},
    ...                      "grid": {"strategies": ["gd", "gc"], "workers": 4}})
    >>> [p.strategy for p in pending_points(study, "no-such-folder", shard=(1, 2))]
    ['gc']
    """
    index, count = shard
    points_dir = Path(out_dir) / "points"
    return [
        p
        for i, p in enumerate(study.points)
        if i % count == index and not (points_dir / f"{p.id}.csv").exists()
    ]


def run_study(study: Study, out_dir, *, shard=(0, 1), log=_log, progress=None) -> dict:
    """Run the points of ``study`` (those of index i mod n for ``shard=(i, n)``) that
    ``out_dir`` does not hold yet; return the ids of the points run now and of the shard's
    points: ``{"ran": [...], "shard": [...]}``.

    Each point's rows are written atomically to ``out_dir/points/<id>.csv`` when it ends;
    with ``study.chunk_size`` a point runs in chunks checkpointed in
    ``out_dir/checkpoints/<id>`` (removed when the point ends), so an interrupted point
    resumes after its last chunk with identical rows. The problems are built first, so a
    missing optional dependency fails before anything runs. ``progress(point, done,
    total)`` is called after each chunk.

    >>> import tempfile
    >>> study = parse_study({"study": {"trials": 4, "iterations": 10},
    ...                      "grid": {"strategies": ["gd", "grouping"], "workers": 4,
    ...                               "stragglers": 1}})
    >>> with tempfile.TemporaryDirectory() as out:
    ...     first = run_study(study, out, log=lambda message: None)
    ...     again = run_study(study, out, log=lambda message: None)
    >>> len(first["ran"]), again["ran"]
    (2, [])
    """
    index, count = shard
    out = Path(out_dir)
    points_dir = out / "points"
    points_dir.mkdir(parents=True, exist_ok=True)
    _write_text(out / "study.json", json.dumps(study.to_dict(), indent=1) + "\n")
    mine = [p for i, p in enumerate(study.points) if i % count == index]
    todo = pending_points(study, out, shard=shard)
    log(
        f"study {study.name}: {len(study.points)} points"
        + (f", shard {index}/{count}: {len(mine)}" if count > 1 else "")
        + f"; {len(mine) - len(todo)} done, {len(todo)} to run"
    )
    problems = {}
    for p in todo:
        if (p.problem, p.workers) not in problems:
            try:
                problems[p.problem, p.workers] = build_problem(p.problem, p.workers)
            except ValueError as error:
                raise ValueError(f"problem {p.problem!r} with M = {p.workers}: {error}") from None
    ran = []
    for n, p in enumerate(todo, 1):
        start = time.perf_counter()
        delay = build_delay(p.delay, p.workers, study.base_dir)
        checkpoint = out / "checkpoints" / p.id
        result = _run_point(
            p, problems[p.problem, p.workers], delay, study.chunk_size, checkpoint, progress, log
        )
        rows = _point_rows(p, result, float(delay.mean))
        _write_text(points_dir / f"{p.id}.csv", _csv_text(rows, _columns(p.targets)))
        shutil.rmtree(checkpoint, ignore_errors=True)
        ran.append(p.id)
        log(f"  [{n}/{len(todo)}] {p.describe()}: {time.perf_counter() - start:.1f}s")
    return {"ran": ran, "shard": [p.id for p in mine]}


# --------------------------------------------------------------------------- #
# reading rows back, merging
# --------------------------------------------------------------------------- #
_INTEGER_COLUMNS = ("workers", "stragglers", "seed", "trials", "iterations", "trial")
_TEXT_COLUMNS = ("point", "strategy", "options", "delay", "link", "problem")


def _parse_cell(column: str, text: str):
    if column in _TEXT_COLUMNS:
        return text
    if column in _INTEGER_COLUMNS:
        return int(text)
    if column == "diverged":
        return text == "True"
    return float(text)


def read_rows(out_dir, study: Study) -> tuple:
    """(the rows of the points done, in study order; the ids of the points not done) from
    the point files in ``out_dir/points``, numbers parsed (floats exactly as written).

    >>> import tempfile
    >>> study = parse_study({"study": {"trials": 4, "iterations": 10},
    ...                      "grid": {"strategies": ["gd", "grouping"], "workers": 4,
    ...                               "stragglers": 1}})
    >>> with tempfile.TemporaryDirectory() as out:
    ...     _ = run_study(study, out, shard=(0, 2), log=lambda message: None)
    ...     rows, missing = read_rows(out, study)
    >>> len(rows), missing == [study.points[1].id], rows[0]["strategy"], rows[0]["trial"]
    (4, True, 'gd', 0)
    """
    rows, missing = [], []
    for p in study.points:
        path = Path(out_dir) / "points" / f"{p.id}.csv"
        if not path.exists():
            missing.append(p.id)
            continue
        with path.open(newline="", encoding="utf-8") as f:
            rows += [{k: _parse_cell(k, v) for k, v in row.items()} for row in csv.DictReader(f)]
    return rows, missing


def _saved_study(out_dir) -> Study:
    path = Path(out_dir) / "study.json"
    try:
        return Study.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ValueError(f"{out_dir}: not a study folder (no study.json)") from None
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def merge_studies(out_dirs, out, *, log=_log) -> dict:
    """Join the folders of a study's shards into ``out``: every point file copied there,
    then :func:`write_report`. The folders must hold the same study (same points).
    Returns the report with the study: ``{"study", "rows", "summary", "missing", "files"}``.

    >>> import tempfile
    >>> study = parse_study({"study": {"trials": 4, "iterations": 10},
    ...                      "grid": {"strategies": ["gd", "grouping"], "workers": 4,
    ...                               "stragglers": 1}})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     for i in (0, 1):
    ...         _ = run_study(study, f"{tmp}/{i}", shard=(i, 2), log=lambda message: None)
    ...     merged = merge_studies([f"{tmp}/0", f"{tmp}/1"], f"{tmp}/all")
    ...     rows, missing = read_rows(f"{tmp}/all", study)
    >>> merged["study"] == study, len(rows), missing
    (True, 8, [])
    """
    out_dirs = [Path(d) for d in out_dirs]
    studies = [_saved_study(d) for d in out_dirs]
    ids = [p.id for p in studies[0].points]
    for d, s in zip(out_dirs[1:], studies[1:]):
        if [p.id for p in s.points] != ids:
            raise ValueError(f"{d}: holds another study than {out_dirs[0]} (its points differ)")
    study = studies[0]
    out = Path(out)
    (out / "points").mkdir(parents=True, exist_ok=True)
    for d in out_dirs:
        for source in sorted((d / "points").glob("*.csv")):
            target = out / "points" / source.name
            if not target.exists():
                _write_text(target, source.read_text(encoding="utf-8"))
    if not (out / "study.json").exists():
        shutil.copyfile(out_dirs[0] / "study.json", out / "study.json")
    return {"study": study, **write_report(study, out, log=log)}


# --------------------------------------------------------------------------- #
# summary
# --------------------------------------------------------------------------- #
def summarize(study: Study, rows) -> list:
    """A row per (point, target) from the table's rows: parameters (times in the study's
    unit), the target gap, the fraction reached, the number diverged, for each quantity
    its median [95 % interval] and mean [95 % t-interval], the rank in the comparison group
    (by median wall clock, then median uploads) and the paired ratio of the wall clock to
    the group's best, and the median [95 % interval] of the final gap.

    >>> import tempfile
    >>> study = parse_study({"study": {"trials": 4, "iterations": 10},
    ...                      "grid": {"strategies": ["gd", "grouping"], "workers": 4,
    ...                               "stragglers": 1}})
    >>> with tempfile.TemporaryDirectory() as out:
    ...     _ = run_study(study, out, log=lambda message: None)
    ...     summary = summarize(study, read_rows(out, study)[0])
    >>> [(s["label"], s["group"]) for s in summary], sorted(s["rank"] for s in summary)
    ([('gd', 1), ('grouping', 1)], [1, 2])
    """
    by_point = {}
    for row in rows:
        by_point.setdefault(row["point"], []).append(row)
    summary = []
    for p in study.points:
        trials = by_point.get(p.id)
        if not trials:
            continue
        unit = trials[0]["mean_unit_time"] if study.time_unit == "mean" else 1.0
        initial = float(np.mean([r["initial_gap"] for r in trials]))
        final = median_interval([r["final_gap"] for r in trials])
        for t in p.targets:
            out = {name: trials[0][name] for name in PARAMETERS}
            out.update({name: out[name] / unit for name in TIME_PARAMETERS})
            out.update(
                label=p.strategy_label,
                target=t,
                target_gap=t * initial if p.target_scale == "initial_gap" else t,
                reached=float(np.mean([not math.isnan(r[f"wall_clock_to_{t:g}"]) for r in trials])),
                diverged=sum(r["diverged"] for r in trials),
            )
            for q in QUANTITIES:
                values = np.array([r[f"{q}_to_{t:g}"] for r in trials])
                if q == "wall_clock":
                    values = values / unit
                for suffix, triple in (
                    ("", median_interval(values)),
                    ("_mean", mean_interval(values)),
                ):
                    out.update(
                        {
                            f"{q}{suffix or '_median'}": triple[0],
                            f"{q}{suffix}_lo": triple[1],
                            f"{q}{suffix}_hi": triple[2],
                        }
                    )
            out.update(final_gap_median=final[0], final_gap_lo=final[1], final_gap_hi=final[2])
            out["_reach"] = np.array([r[f"wall_clock_to_{t:g}"] for r in trials])
            out["_group"] = (p.group(), t)
            summary.append(out)
    numbers = {}
    for s in summary:
        numbers.setdefault(s["_group"][0], len(numbers) + 1)
    for key in dict.fromkeys(s["_group"] for s in summary):
        ranked = sorted(
            (s for s in summary if s["_group"] == key),
            key=lambda s: (s["wall_clock_median"], s["uploads_median"]),
        )
        for rank, s in enumerate(ranked, 1):
            ratio = ratio_median_interval(ranked[0]["_reach"], s["_reach"])
            s.update(
                group=numbers[key[0]],
                rank=rank,
                ratio_to_best_median=ratio[0],
                ratio_to_best_lo=ratio[1],
                ratio_to_best_hi=ratio[2],
            )
    return [{name: s[name] for name in _summary_columns()} for s in summary]


def _summary_columns() -> tuple:
    per_quantity = tuple(
        f"{q}{name}"
        for q in QUANTITIES
        for name in ("_median", "_lo", "_hi", "_mean", "_mean_lo", "_mean_hi")
    )
    return (
        "group",
        "rank",
        "label",
        *PARAMETERS,
        "target",
        "target_gap",
        "reached",
        "diverged",
        *per_quantity,
        "ratio_to_best_median",
        "ratio_to_best_lo",
        "ratio_to_best_hi",
        "final_gap_median",
        "final_gap_lo",
        "final_gap_hi",
    )


# --------------------------------------------------------------------------- #
# outputs: table, summary, figures
# --------------------------------------------------------------------------- #
def _group_fields(s: dict) -> list:
    """(name, value) of the parameters that make a summary row's comparison group."""
    return [
        ("M", s["workers"]),
        ("delay", s["delay"]),
        ("link", s["link"]),
        ("τ", f"{s['upload_time']:g}"),
        ("τ_b", f"{s['broadcast_time']:g}"),
        ("latency", f"{s['latency']:g}"),
        ("problem", s["problem"]),
        ("seed", s["seed"]),
        ("α·L", f"{s['step_size_times_L']:g}"),
        ("trials", s["trials"]),
    ]


def _varying(keys: list) -> list:
    """Indices of the fields that differ between the (name, value) lists ``keys``."""
    return [i for i in range(len(keys[0])) if len({k[i][1] for k in keys}) > 1]


def _target_text(study: Study, target: float) -> str:
    return (
        f"f − f* ≤ {target:g} × the initial gap"
        if study.target_scale == "initial_gap"
        else f"f − f* ≤ {target:g}"
    )


def _ratio_cell(s: dict) -> str:
    if s["rank"] == 1:
        return "best"
    if not math.isfinite(s["ratio_to_best_median"]):
        return "—"
    hi = "∞" if math.isinf(s["ratio_to_best_hi"]) else f"{s['ratio_to_best_hi']:.3f}"
    return f"{s['ratio_to_best_median']:.3f}× [{s['ratio_to_best_lo']:.3f}, {hi}]"


def _markdown(study: Study, summary: list, missing: list) -> str:
    cell = format_median_interval
    unit = (
        "wall clock, τ, τ_b and latency in units of E[X], the mean unit time of each point's delay"
        if study.time_unit == "mean"
        else "times as simulated"
    )
    lines = [f"# Study {study.name}", ""]
    if study.description:
        lines += [study.description, ""]
    lines += [
        f"{len(study.points)} points, {len(study.points) - len(missing)} done; targets: "
        + "; ".join(_target_text(study, t) for t in study.targets)
        + f"; {unit}. "
        "Medians over trials [95 % distribution-free interval of the median]; means "
        "[95 % Student-t interval] (+inf unless every trial reached); × best: the "
        "median over trials of the wall clock's ratio to the group's best on the same "
        "draws (paired) [95 % interval]. A group is the points that differ only in "
        "strategy, options, S and iterations (common random numbers).",
        "",
    ]
    if missing:
        lines += [f"Not done yet ({len(missing)}): " + ", ".join(missing), ""]
    if study.skipped:
        lines += [f"Skipped, do not apply ({len(study.skipped)}):", ""]
        lines += [f"- {what}: {why}" for what, why in study.skipped]
        lines.append("")
    for key in dict.fromkeys((s["group"], s["target"]) for s in summary):
        rows = sorted(
            (s for s in summary if (s["group"], s["target"]) == key), key=lambda s: s["rank"]
        )
        fields = ", ".join(f"{name} = {value}" for name, value in _group_fields(rows[0]))
        lines += [
            f"## Group {key[0]}: {fields}; to {_target_text(study, key[1])}",
            "",
            "| rank | strategy | S | iterations run | wall clock | mean wall clock | "
            "× best (paired) | uploads | computations | bits up | iterations | "
            "reached | final gap | diverged |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in rows:
            triple = {q: (s[f"{q}_median"], s[f"{q}_lo"], s[f"{q}_hi"]) for q in QUANTITIES}
            triple["mean"] = tuple(s[f"wall_clock_mean{b}"] for b in ("", "_lo", "_hi"))
            lines.append(
                f"| {s['rank']} | {s['label']} | {s['stragglers']} | "
                f"{s['iterations']} | {cell(triple['wall_clock'], '.4g')} | "
                f"{cell(triple['mean'], '.4g')} | {_ratio_cell(s)} | "
                f"{cell(triple['uploads'], '.0f')} | {cell(triple['computations'], '.0f')} | "
                f"{cell(triple['bits_up'], '.3g')} | {cell(triple['iterations'], '.0f')} | "
                f"{s['reached']:.0%} | {s['final_gap_median']:.3g} | {s['diverged']} |"
            )
        lines.append("")
    return "\n".join(lines)


def best_lines(study: Study, summary: list) -> list:
    """A line per group and target of a :func:`summarize` summary: its fastest point and the
    runner-up's paired ratio (what ``lagc-jax study`` prints)."""
    lines = []
    for key in dict.fromkeys((s["group"], s["target"]) for s in summary):
        ranked = sorted(
            (s for s in summary if (s["group"], s["target"]) == key), key=lambda s: s["rank"]
        )
        best = ranked[0]
        fields = ", ".join(f"{n} = {v}" for n, v in _group_fields(best))
        wall = format_median_interval(
            tuple(best[f"wall_clock{b}"] for b in ("_median", "_lo", "_hi")), ".4g"
        )
        text = (
            f"group {key[0]} ({fields}), to {_target_text(study, key[1])}: "
            f"{best['label']} S={best['stragglers']}, wall clock {wall}"
        )
        if len(ranked) > 1:
            text += (
                f"; runner-up {ranked[1]['label']} S={ranked[1]['stragglers']}: "
                f"{_ratio_cell(ranked[1])} (paired)"
            )
        lines.append(text)
    return lines


def _write_parquet(path: Path, rows: list, columns) -> bool:
    """table.parquet when pyarrow is installed; returns whether it was written."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        return False
    table = pyarrow.table({c: [row[c] for row in rows] for c in columns})
    atomic_write(path, lambda f: pyarrow.parquet.write_table(table, f))
    return True


def _bar_figures(study: Study, summary: list, out: Path) -> list:
    """wall_clock.png (then _2, _3, …): median wall clock to the first target per group,
    95 % intervals, six groups per figure."""
    import matplotlib.pyplot as plt

    from .. import plotting

    first = [s for s in summary if s["target"] == study.targets[0]]
    groups = list(dict.fromkeys(s["group"] for s in first))
    if not groups:
        return []
    titles = {g: next(_group_fields(s) for s in first if s["group"] == g) for g in groups}
    shown = _varying(list(titles.values())) if len(groups) > 1 else []
    paths = []
    for page in range(0, len(groups), 6):
        chosen = groups[page : page + 6]
        cols = min(len(chosen), 3)
        rows_ = -(-len(chosen) // cols)
        height = max(len([s for s in first if s["group"] == g]) for g in chosen)
        fig, axes = plt.subplots(
            rows_, cols, figsize=(5.2 * cols, (0.3 * height + 1.4) * rows_), squeeze=False
        )
        for ax, g in zip(axes.flat, chosen):
            members = sorted((s for s in first if s["group"] == g), key=lambda s: s["rank"])[::-1]
            med = np.array([s["wall_clock_median"] for s in members])
            lo = np.array([s["wall_clock_lo"] for s in members])
            hi = np.array([s["wall_clock_hi"] for s in members])
            ok = np.isfinite(med)
            m = np.where(ok, med, 0.0)
            err = np.vstack(
                [np.where(ok, m - lo, 0.0), np.where(ok & np.isfinite(hi), hi - m, 0.0)]
            )
            labels = [
                f"{s['label']} S={s['stragglers']}" + ("" if f else " (not reached)")
                for s, f in zip(members, ok)
            ]
            ax.barh(
                np.arange(len(members)),
                m,
                xerr=err,
                capsize=2,
                color=[plotting.color(s["strategy"]) for s in members],
            )
            ax.set_yticks(np.arange(len(members)), labels, fontsize=8)
            ax.set_xlabel(
                "wall clock to target (median"
                + (", units of E[X])" if study.time_unit == "mean" else ")")
            )
            fields = titles[g]
            ax.set_title(
                f"group {g}: "
                + (", ".join(f"{fields[i][0]} = {fields[i][1]}" for i in shown) or study.name),
                fontsize=9,
            )
            ax.grid(axis="x", alpha=0.3)
        for ax in list(axes.flat)[len(chosen) :]:
            ax.set_visible(False)
        fig.suptitle(
            f"{study.name}: wall clock to {_target_text(study, study.targets[0])} "
            "(95 % intervals of the medians)",
            fontsize=10,
        )
        fig.tight_layout()
        path = out / ("wall_clock.png" if page == 0 else f"wall_clock_{page // 6 + 1}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _sweep_figures(study: Study, summary: list, out: Path) -> list:
    """sweep_<axis>.png for each numeric axis with a line of several values: median
    wall clock to the first target against it, a line per strategy (in its colour), a panel
    per value of the other parameters, S included (four panels per figure). Lines that do
    not reach the target everywhere are drawn last."""
    from .. import plotting

    first = [s for s in summary if s["target"] == study.targets[0]]
    names = {
        "stragglers": "S",
        "workers": "M",
        "upload_time": "τ",
        "broadcast_time": "τ_b",
        "latency": "latency",
        "step_size_times_L": "α·L",
    }
    paths = []
    for axis in SWEEP_AXES:
        panels = {}
        for s in first:
            fields = tuple(
                f for f in [("S", s["stragglers"]), *_group_fields(s)] if f[0] != names[axis]
            )
            panels.setdefault(fields, {}).setdefault(s["label"], {}).setdefault(s[axis], s)
        panels = {
            k: {line: pts for line, pts in v.items() if len(pts) > 1} for k, v in panels.items()
        }
        panels = {k: v for k, v in panels.items() if v}
        if not panels:
            continue
        keys = list(panels)
        shown = _varying([list(k) for k in keys]) if len(keys) > 1 else []
        for page in range(0, len(keys), PANELS_PER_FIGURE):
            figure_panels = {}
            for k in keys[page : page + PANELS_PER_FIGURE]:
                title = ", ".join(f"{k[i][0]} = {k[i][1]}" for i in shown) or study.name
                lines = sorted(
                    panels[k].items(),
                    key=lambda item: (
                        not all(math.isfinite(p["wall_clock_median"]) for p in item[1].values())
                    ),
                )
                figure_panels[title] = {
                    line: tuple(
                        list(v)
                        for v in zip(
                            *[
                                (x, p["wall_clock_median"], p["wall_clock_lo"], p["wall_clock_hi"])
                                for x, p in sorted(pts.items())
                            ]
                        )
                    )
                    for line, pts in lines
                }
            xs = sorted({x for k in keys for pts in panels[k].values() for x in pts})
            suffix = "" if page == 0 else f"_{page // PANELS_PER_FIGURE + 1}"
            path, _ = plotting.sweep_figure(
                figure_panels,
                names[axis],
                f"{study.name}: wall clock to {_target_text(study, study.targets[0])} vs "
                f"{names[axis]}",
                out / f"sweep_{axis}{suffix}.png",
                xscale="symlog" if axis in TIME_PARAMETERS else "linear",
                xticks=xs,
                ylabel="wall clock to target\n(median"
                + (", units of E[X])" if study.time_unit == "mean" else ")"),
            )
            paths.append(Path(path))
    return paths


def write_report(study: Study, out_dir, *, log=_log) -> dict:
    """Write the tidy table (``table.csv``, ``table.parquet`` with pyarrow), the summary
    (``summary.csv``, ``summary.md``) and the figures into ``out_dir`` from its point
    files. Returns ``{"rows", "summary", "missing", "files"}``.

    >>> import tempfile
    >>> study = parse_study({"study": {"trials": 4, "iterations": 10},
    ...                      "grid": {"strategies": ["gd", "grouping"], "workers": 4,
    ...                               "stragglers": 1}})
    >>> with tempfile.TemporaryDirectory() as out:
    ...     _ = run_study(study, out, log=lambda message: None)
    ...     report = write_report(study, out)
    >>> len(report["rows"]), len(report["summary"]), report["missing"]
    (8, 2, [])
    >>> {"table.csv", "summary.md", "wall_clock.png"} <= {f.name for f in report["files"]}
    True
    """
    out = Path(out_dir)
    rows, missing = read_rows(out, study)
    columns = _columns(study.targets)
    files = [out / "table.csv"]
    _write_text(files[0], _csv_text(rows, columns))
    if _write_parquet(out / "table.parquet", rows, columns):
        files.append(out / "table.parquet")
    summary = summarize(study, rows)
    _write_text(out / "summary.csv", _csv_text(summary, _summary_columns()))
    _write_text(out / "summary.md", _markdown(study, summary, missing))
    files += [out / "summary.csv", out / "summary.md"]
    files += _bar_figures(study, summary, out) + _sweep_figures(study, summary, out)
    if missing:
        log(
            f"note: {len(missing)} of {len(study.points)} points are not done yet (rerun the "
            "study, or merge the other shards): the table and summary hold the others"
        )
    return {"rows": rows, "summary": summary, "missing": missing, "files": files}
