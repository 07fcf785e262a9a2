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
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

_ARRAYS = ("iterations", "loss", "gap", "wall_clock", "uploads", "downloads", "computations",
           "diverged")
# Quantities reported when a target gap is reached.
REACH_FIELDS = ("iterations", "wall_clock", "uploads", "downloads", "computations")


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

    Valid for heavy tails (no variance needed). NaN entries (never reached)
    count as +inf: the interval is then open-ended above.
    """
    x = np.sort(np.where(np.isnan(values), np.inf, np.asarray(values, dtype=float)))
    n = len(x)
    z = {0.9: 1.6449, 0.95: 1.96, 0.99: 2.5758}[confidence]
    half = z * math.sqrt(n) / 2
    lo = max(int(math.floor(n / 2 - half)), 0)
    hi = min(int(math.ceil(n / 2 + half)), n - 1)
    return float(np.median(x)), float(x[lo]), float(x[hi])


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

    @property
    def num_trials(self) -> int:
        return self.loss.shape[0]

    # -- persistence
    def save(self, path) -> Path:
        """Write ``path`` (.npz) and a JSON record of the configuration beside it, atomically."""
        path = Path(path).with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        arrays["optimal_value"] = np.float64(self.optimal_value)
        for optional in ("upload_mask", "decoding_residual"):
            if getattr(self, optional) is not None:
                arrays[optional] = getattr(self, optional)
        _atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
        record = json.dumps(self.config, indent=2, sort_keys=True, default=str).encode()
        _atomic_write(path.with_suffix(".json"), lambda f: f.write(record))
        return path

    @classmethod
    def load(cls, path) -> "Result":
        path = Path(path).with_suffix(".npz")
        with np.load(path) as z:
            arrays = {name: z[name] for name in z.files}
        config_path = path.with_suffix(".json")
        config = json.loads(config_path.read_text()) if config_path.exists() else {}
        return cls(optimal_value=float(arrays.pop("optimal_value")), config=config,
                   upload_mask=arrays.pop("upload_mask", None),
                   decoding_residual=arrays.pop("decoding_residual", None), **arrays)

    # -- summaries
    def quantiles(self, name: str, q=(0.1, 0.5, 0.9)) -> np.ndarray:
        """Quantiles over trials of a per-record array: shape (len(q), R)."""
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
        """Per trial, each of REACH_FIELDS at the first record with gap ≤ target (NaN: never)."""
        reached = self.gap <= target_gap
        hit = reached.any(axis=1)
        first = np.argmax(reached, axis=1)
        rows = np.arange(self.num_trials)
        out = {}
        for name in REACH_FIELDS:
            values = (np.broadcast_to(self.iterations, self.gap.shape) if name == "iterations"
                      else getattr(self, name))
            out[name] = np.where(hit, values[rows, first].astype(float), np.nan)
        return out

    def summary(self, target_gap: float, confidence: float = 0.95) -> dict:
        """Median and confidence interval of each REACH_FIELDS quantity to reach ``target_gap``,
        the fraction of trials that reached it, and the number that diverged."""
        reach = self.to_reach(target_gap)
        out = {name: median_interval(values, confidence) for name, values in reach.items()}
        out["reached"] = float(np.mean(~np.isnan(reach["wall_clock"])))
        out["diverged"] = int(self.diverged.sum())
        return out


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
