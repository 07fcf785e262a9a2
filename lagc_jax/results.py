"""Simulation results: arrays over (trials, records), persistence and summaries.

Every per-run array has shape (num_trials, num_records) with records at
iterations 0, r, 2r, …, K (``Result.iterations``); counts and wall clock are
cumulative and 0 at k = 0.

>>> import numpy as np
>>> r = Result(iterations=np.arange(3), loss=np.array([[3.0, 2.0, 1.0]]),
...            gap=np.array([[2.0, 1.0, 0.0]]), wall_clock=np.array([[0.0, 1.5, 2.5]]),
...            uploads=np.array([[0, 4, 8]]), downloads=np.array([[0, 4, 8]]),
...            computations=np.array([[0, 4, 8]]), diverged=np.array([False]),
...            optimal_value=1.0)
>>> r.to_reach(1.0)["wall_clock"].tolist()
[1.5]

Besides these, a Result holds named metrics (``metrics``), each an array (T, R) read
by name like the core ones: ``bits_up`` and ``bits_down`` (cumulative bits on the
wire, MODEL.md §9), ``grad_error`` (η_k of MODEL.md §10, when recorded; entry k + 1
is round k's, NaN at entry 0), and any a strategy reports.

>>> r.metrics["bits_up"] = np.array([[0, 256, 512]])
>>> int(r.bits_up[0, -1]), r.to_reach(1.0)["bits_up"].tolist()
(512, [256.0])
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from statistics import NormalDist

import numpy as np

_ARRAYS = (
    "iterations",
    "loss",
    "gap",
    "wall_clock",
    "uploads",
    "downloads",
    "computations",
    "diverged",
)
# Quantities reported when a target gap is reached (and every cumulative metric present).
REACH_FIELDS = ("iterations", "wall_clock", "uploads", "downloads", "computations")
# Names a strategy's own metric may not take: the core arrays, the engine's own records and
# the other keys of Result.summary.
CORE_NAMES = frozenset(_ARRAYS) | {
    "upload_mask",
    "decoding_residual",
    "masks",
    "grad_error",
    "optimal_value",
    "config",
    "metrics",
    "duration",
    "loss",
    "final_gap",
    "reached",
}
# Metrics the engine records for every strategy (a strategy may report its own sizes).
BUILTIN_METRICS = ("bits_up", "bits_down")
_METRIC_PREFIX = "metric:"


@functools.lru_cache(maxsize=1)
def _installed_versions() -> tuple:
    """(name, version) pairs, read once per process (importlib.metadata is slow)."""
    versions = []
    for name in ("lagc_jax", "jax", "jaxlib", "optax", "numpy"):
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            versions.append((name, None))
    return tuple(versions)


def package_versions() -> dict:
    """Versions of the packages a result depends on, for the JSON record."""
    return dict(_installed_versions())


def median_interval(values, confidence: float = 0.95):
    """Median and a distribution-free confidence interval from binomial order statistics.

    The interval [x_(lo), x_(hi)] holds the median with probability ≈ ``confidence``
    (any value in (0, 1); ranks n/2 ∓ z·√n/2 from the normal approximation to the
    Binomial(n, ½) count below the median). Valid for heavy tails (no variance
    needed). NaN entries (never reached) count as +inf: the interval is then
    open-ended above.
    """
    confidence = _check_confidence(confidence)
    x = np.sort(np.where(np.isnan(values), np.inf, np.asarray(values, dtype=float)))
    n = len(x)
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    half = z * math.sqrt(n) / 2
    lo = max(int(math.floor(n / 2 - half)), 0)
    hi = min(int(math.ceil(n / 2 + half)), n - 1)
    return float(np.median(x)), float(x[lo]), float(x[hi])


def _check_confidence(confidence) -> float:
    try:
        value = float(confidence)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(confidence, bool) or not 0 < value < 1:
        raise ValueError(
            f"confidence must be a number in (0, 1) (e.g. 0.9, 0.95, 0.99), got {confidence!r}"
        )
    return value


def _stem(path) -> Path:
    """``path`` without a trailing .npz/.json; any other dots belong to the stem."""
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".npz", ".json") else path


def format_median_interval(triple, fmt: str) -> str:
    """``median [lo, hi]`` of a ``summary`` entry; "not reached" for an infinite median.

    >>> format_median_interval((3.0, 2.5, float("inf")), ".1f")
    '3.0 [2.5, ∞]'
    """
    med, lo, hi = triple
    if math.isinf(med):
        return "not reached"
    hi_text = "∞" if math.isinf(hi) else format(hi, fmt)
    return f"{format(med, fmt)} [{format(lo, fmt)}, {hi_text}]"


def format_final_gap(summary: dict) -> str:
    """What a table shows where the median trial did not reach the target: the gap the
    trials ended at, median [95 % interval] (``summary["final_gap"]``); ∞ counts the trials
    that diverged.

    >>> format_final_gap({"final_gap": (0.64, 0.56, 0.71)})
    'not reached; final gap 0.64 [0.56, 0.71]'
    >>> format_final_gap({"final_gap": (float("inf"), 0.5, float("inf"))})
    'not reached; final gap ∞ (most trials diverged)'
    """
    med, lo, hi = summary["final_gap"]
    if math.isinf(med):
        return "not reached; final gap ∞ (most trials diverged)"
    return "not reached; final gap " + format_median_interval((med, lo, hi), ".2g")


@dataclass
class Result:
    """Outcome of :func:`lagc_jax.simulate`."""

    iterations: np.ndarray  # (R,) iteration index of each record
    loss: np.ndarray  # (T, R) f(θ^k)
    gap: np.ndarray  # (T, R) f(θ^k) − f*
    wall_clock: np.ndarray  # (T, R) t_k, cumulative
    uploads: np.ndarray  # (T, R) cumulative
    downloads: np.ndarray  # (T, R) cumulative
    computations: np.ndarray  # (T, R) cumulative
    diverged: np.ndarray  # (T,) bool
    optimal_value: float
    upload_mask: np.ndarray | None = None  # (T, K, U|M) bool, on request
    decoding_residual: np.ndarray | None = None  # (T,) worst max|a_F B − 1| of each trial
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)  # name -> (T, R): bits_up, grad_error, ...

    def __getattr__(self, name):
        """A named metric as an attribute (``result.bits_up``)."""
        metrics = self.__dict__.get("metrics")
        if metrics is not None and name in metrics:
            return metrics[name]
        raise AttributeError(
            f"Result has no field or metric {name!r} (metrics: {sorted(metrics or ())})"
        )

    @property
    def num_trials(self) -> int:
        return self.loss.shape[0]

    def mean(self, name: str) -> np.ndarray:
        """Mean over trials of a per-record array or metric: shape (R,) (NaN entries, e.g.
        ``grad_error`` at entry 0, give NaN). With :meth:`quantiles`, the per-iteration
        statistics of a metric such as the gradient error."""
        return np.mean(getattr(self, name), axis=0)

    def cumulative_metrics(self) -> list[str]:
        """Names of the metrics that accumulate (0 at entry 0, like uploads)."""
        return [name for name, values in self.metrics.items() if not np.isnan(values[:, 0]).any()]

    # -- persistence
    def save(self, path) -> Path:
        """Write ``STEM.npz`` and a JSON record of the configuration, ``STEM.json``, atomically.

        ``path`` is the stem; only a trailing ``.npz`` or ``.json`` is taken as an
        extension, so ``out/pareto_1.5`` writes ``out/pareto_1.5.npz``. The record is
        written first, so an .npz on disk always has its record (a save interrupted in
        between leaves no .npz). Files get the permissions the umask gives new files.
        Returns the .npz path.
        """
        stem = _stem(path)
        npz, record_path = stem.with_name(stem.name + ".npz"), stem.with_name(stem.name + ".json")
        npz.parent.mkdir(parents=True, exist_ok=True)
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        arrays["optimal_value"] = np.float64(self.optimal_value)
        for optional in ("upload_mask", "decoding_residual"):
            if getattr(self, optional) is not None:
                arrays[optional] = getattr(self, optional)
        for name, values in self.metrics.items():
            arrays[_METRIC_PREFIX + name] = values
        record = json.dumps(self.config, indent=2, sort_keys=True, default=str).encode()
        atomic_write(record_path, lambda f: f.write(record))
        atomic_write(npz, lambda f: np.savez_compressed(f, **arrays))
        return npz

    @classmethod
    def load(cls, path) -> "Result":
        """Read a Result written by :meth:`save` (``path``: the stem or the .npz file).

        Raises ValueError when the file is not a saved Result (not an .npz archive, or
        arrays missing) and FileNotFoundError when it does not exist.
        """
        stem = _stem(path)
        npz = stem.with_name(stem.name + ".npz")
        try:
            with np.load(npz) as z:
                if not isinstance(z, np.lib.npyio.NpzFile):
                    raise ValueError("a single .npy array, not an .npz archive")
                arrays = {name: z[name] for name in z.files}
        except FileNotFoundError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
            raise ValueError(f"{npz} is not a saved lagc_jax Result: {error}") from None
        missing = [name for name in (*_ARRAYS, "optimal_value") if name not in arrays]
        if missing:
            raise ValueError(f"{npz} is not a saved lagc_jax Result: arrays {missing} are missing")
        config_path = stem.with_name(stem.name + ".json")
        config = {}
        if config_path.exists():
            try:
                config = json.loads(config_path.read_text())
            except ValueError as error:
                raise ValueError(f"{config_path} is not a Result's JSON record: {error}") from None
        metrics = {
            name[len(_METRIC_PREFIX) :]: arrays.pop(name)
            for name in list(arrays)
            if name.startswith(_METRIC_PREFIX)
        }
        unknown = sorted(
            set(arrays) - set(_ARRAYS) - {"optimal_value", "upload_mask", "decoding_residual"}
        )
        if unknown:
            raise ValueError(f"{npz} is not a saved lagc_jax Result: unknown arrays {unknown}")
        return cls(
            optimal_value=float(arrays.pop("optimal_value")),
            config=config,
            upload_mask=arrays.pop("upload_mask", None),
            decoding_residual=arrays.pop("decoding_residual", None),
            metrics=metrics,
            **arrays,
        )

    # -- summaries
    def quantiles(self, name: str, q=(0.1, 0.5, 0.9)) -> np.ndarray:
        """Quantiles over trials of a per-record array or metric: shape (len(q), R)
        (NaN entries, e.g. ``grad_error`` at entry 0, give NaN)."""
        return np.quantile(getattr(self, name), q, axis=0)

    def on_time_grid(self, name: str, grid) -> np.ndarray:
        """Value of ``name`` at wall-clock times ``grid``: (T, len(grid)).

        The state at time t is the last record with wall_clock ≤ t (a step function).
        """
        grid = np.asarray(grid, dtype=float)
        values = getattr(self, name)
        out = np.empty((self.num_trials, len(grid)), dtype=np.result_type(values, float))
        for i in range(self.num_trials):
            idx = np.searchsorted(self.wall_clock[i], grid, side="right") - 1
            out[i] = values[i, np.clip(idx, 0, None)]
        return out

    def to_reach(self, target_gap: float) -> dict:
        """Per trial, each of REACH_FIELDS and each cumulative metric (bits, ...) at the
        first record with gap ≤ target (NaN: never). A target below the resolution of the
        gap in the run's dtype (``config["gap_resolution"]``, e.g. eps·|f*| in float32 for
        a non-quadratic problem) cannot be claimed: a warning, and NaN for every trial."""
        resolution = float(self.config.get("gap_resolution", 0.0))
        reached = self.gap <= target_gap
        if target_gap < resolution:
            warnings.warn(
                f"target_gap={target_gap:g} is below the resolution of f − f* in this run's "
                f"{self.config.get('dtype', 'dtype')} ({resolution:.2g} = eps·|f*|): whether it "
                "is reached cannot be told, so no trial is counted as reaching it; run in "
                "float64 (JAX_ENABLE_X64=1) or use a larger target",
                RuntimeWarning,
                stacklevel=2,
            )
            reached = np.zeros_like(reached)
        hit = reached.any(axis=1)
        first = np.argmax(reached, axis=1)
        rows = np.arange(self.num_trials)
        out = {}
        for name in (*REACH_FIELDS, *self.cumulative_metrics()):
            values = (
                np.broadcast_to(self.iterations, self.gap.shape)
                if name == "iterations"
                else getattr(self, name)
            )
            out[name] = np.where(hit, values[rows, first].astype(float), np.nan)
        return out

    def summary(self, target_gap: float, confidence: float = 0.95) -> dict:
        """Median and confidence interval of each REACH_FIELDS quantity and cumulative
        metric to reach ``target_gap``, of each per-round metric's mean over the run's
        rounds (e.g. ``grad_error``) and of the gap at the end of the run (``final_gap``,
        where a strategy that does not reach the target stalls; a diverged trial's counts as
        +inf), the fraction of trials that reached the target, and the number that
        diverged."""
        reach = self.to_reach(target_gap)
        out = {name: median_interval(values, confidence) for name, values in reach.items()}
        for name in self.metrics:
            if name not in reach:
                out[name] = median_interval(
                    np.nanmean(self.metrics[name][:, 1:], axis=1), confidence
                )
        out["final_gap"] = median_interval(
            np.where(self.diverged, np.inf, self.gap[:, -1]), confidence
        )
        out["reached"] = float(np.mean(~np.isnan(reach["wall_clock"])))
        out["diverged"] = int(self.diverged.sum())
        return out


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path, write) -> None:
    """Write ``path`` via ``write(binary file)`` to a temporary file in the same directory,
    then ``os.replace`` it: readers see the old file or the new one, never a partial one.
    The file gets the mode a plain ``open`` would give it (0666 less the umask)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
