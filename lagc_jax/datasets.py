"""Real data: learning problems and measured straggler traces (no download).

Measured compute times (``straggler_trace``, ``load_times_csv``) ship with the
package (no optional dependency); they feed ``lagc_jax.delays.Empirical``.
The learning problems below use scikit-learn's bundled data sets.

Both loaders read the small data sets that ship inside scikit-learn (an
optional dependency: ``pip install -e ".[data]"``), standardise them and
return a :class:`~lagc_jax.problems.Problem` split into ``num_partitions``
partitions with the package's partitionings:

- ``"contiguous"``: rows in the data set's order;
- ``"random"``: a permutation drawn from ``seed`` (i.i.d.-like, homogeneous partitions);
- ``"sorted"``: rows sorted by the target / label, so each partition sees a
  different slice of the data (heterogeneous partitions, where lazy aggregation
  saves most uploads: partitions differ in smoothness L_p and in how fast their
  gradients change).

Scaling (fixed, so that results are comparable across runs): every feature is
centred and divided by its population standard deviation (numpy ``std``,
ddof = 0) over all rows, then a column of ones (intercept) is appended last.
The losses are sums over examples (MODEL.md §1), so L grows with the number of
rows.

>>> from lagc_jax import datasets
>>> p = datasets.diabetes(4)                                  # doctest: +SKIP
>>> p.num_partitions, p.dim                                   # doctest: +SKIP
(4, 11)
"""

from __future__ import annotations

import csv
import importlib.resources
import math
import os

import numpy as np

from .problems import Problem, linear_regression, logistic_regression

__all__ = [
    "diabetes",
    "breast_cancer",
    "load_sklearn",
    "load_times_csv",
    "load_times_csv_with_layout",
    "standardize",
    "straggler_trace",
    "STRAGGLER_TRACES",
]

_INSTALL_HINT = (
    "lagc_jax.datasets needs scikit-learn, an optional dependency: install it with "
    '`pip install -e ".[data]"` (from the repository) or `pip install scikit-learn`'
)


def load_sklearn(name: str):
    """Return scikit-learn's ``load_<name>`` (imported lazily, with an install hint)."""
    try:
        from sklearn import datasets as sk_datasets
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from error
    return getattr(sk_datasets, f"load_{name}")


def standardize(X) -> np.ndarray:
    """Centre each column and divide by its (population) standard deviation; append ones.

    Constant columns are only centred. Returns an (N, d + 1) float64 array.

    >>> standardize(np.array([[1.0, 5.0], [3.0, 5.0]])).tolist()
    [[-1.0, 0.0, 1.0], [1.0, 0.0, 1.0]]
    """
    X = np.asarray(X, dtype=np.float64)
    std = X.std(axis=0)
    Z = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return np.concatenate([Z, np.ones((len(Z), 1))], axis=1)


def diabetes(num_partitions: int, partitioning: str = "contiguous", seed: int = 0) -> Problem:
    """Least squares on scikit-learn's diabetes data (442 patients, 10 features).

    f(θ) = Σ_p ½‖X_p θ − y_p‖² with X the standardised features plus an intercept
    column (d = 11) and y the disease-progression target, also standardised
    (zero mean, unit variance), so f* = ½·442·(1 − R²) ≈ 107 and the optimal
    intercept is 0. ``partitioning="sorted"`` sorts the rows by target.
    The raw (unscaled) features are used: ``load_diabetes(scaled=False)``.

    L = λ_max(XᵀX) ≈ 1779 and cond(XᵀX) ≈ 470, so gradient descent with α = 1/L
    needs about 3000 iterations to reach a relative gap of 1e-6.
    """
    data = load_sklearn("diabetes")(scaled=False)
    target = np.asarray(data.target, dtype=np.float64)
    y = (target - target.mean()) / target.std()
    return linear_regression(
        standardize(data.data),
        y,
        num_partitions=num_partitions,
        partitioning=partitioning,
        seed=seed,
        name=f"diabetes(P={num_partitions}, {partitioning})",
    )


def breast_cancer(
    num_partitions: int, l2: float = 1.0, partitioning: str = "contiguous", seed: int = 0
) -> Problem:
    """L2-regularised logistic regression on scikit-learn's breast-cancer data.

    569 tumours, 30 standardised features plus an intercept column (d = 31);
    labels y = +1 for benign (sklearn's target 1), −1 for malignant (target 0).
    f(θ) = Σ_p [Σ_{i∈p} log(1 + exp(−y_i x_iᵀθ)) + (l2/2)‖θ‖²]: every partition
    carries the ridge term, so the total ridge is P·l2 (it also applies to the
    intercept). The data are nearly separable, so l2 sets the conditioning:
    μ ≥ P·l2 against L ≈ λ_max(XᵀX)/4 ≈ 1900. ``partitioning="sorted"`` sorts
    rows by label (partitions then hold one class, except one mixed partition).
    """
    data = load_sklearn("breast_cancer")()
    y = np.where(np.asarray(data.target) == 1, 1.0, -1.0)
    return logistic_regression(
        standardize(data.data),
        y,
        l2=l2,
        num_partitions=num_partitions,
        partitioning=partitioning,
        seed=seed,
        name=f"breast_cancer(P={num_partitions}, {partitioning}, l2={l2:g})",
    )


# --------------------------------------------------------------------------- #
# measured compute times
# --------------------------------------------------------------------------- #
STRAGGLER_TRACES = {
    "AR": "one worker artificially slowed (≈ 2.35× the median, persistent); 44 steps × 16 ranks",
    "SE": "sequence-length imbalance varying step to step; 43 steps × 64 ranks",
    "ST": "a slow pipeline stage (last stage ≈ 1.6× the others, persistent); 32 steps × 8 ranks",
}
"""The shipped traces (ByteDance-Seed/StragglerAnalysis, Apache-2.0; see
``lagc_jax/data/straggler_traces/README.md`` for attribution and derivation)."""


STEP_NAMES = ("step", "iteration", "iter", "round")


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _names(fields):
    """Header fields with the commas inside parentheses put back: ``rank0(dp0,pp0)`` is one
    name (a parenthesis that never closes groups nothing)."""
    names, group, depth = [], [], 0
    for field in fields:
        group.append(field)
        depth += field.count("(") - field.count(")")
        if depth <= 0:
            names.append(",".join(group))
            group, depth = [], 0
    names += group  # an unclosed parenthesis: its fields stay apart
    return [name.strip() for name in names]


def _looks_like_index(fields) -> bool:
    """Consecutive integers from 0 or 1, written as integers, over at least two rows."""
    if len(fields) < 2 or not all(f.isdigit() and f.isascii() for f in fields):
        return False
    start = int(fields[0])
    return start in (0, 1) and all(int(f) == start + i for i, f in enumerate(fields))


def _read_times(text: str, source: str, num_workers, step_column):
    """Parse CSV text of times (see :func:`load_times_csv`) into an (N, M) array.

    Returns (times, layout): layout is one line, ``SOURCE: N steps × M workers (how)``,
    saying where the header was and which column was dropped as the step index.
    """
    if text.startswith("\ufeff"):  # a byte order mark ("CSV UTF-8" from spreadsheets)
        text = text[1:]
    header = header_line = None  # a row of names, before any data
    comments = []  # (line, fields) of "#" lines before the data: a commented header?
    rows, lines = [], []
    for line_number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if not rows and header is None:
                names = next(csv.reader([stripped[1:].strip()]), [])
                comments.append((line_number, _names([f.strip() for f in names])))
            continue
        fields = [f.strip() for f in next(csv.reader([stripped]))]
        if not rows and header is None:
            numeric = [_is_number(f) for f in fields]
            if not any(numeric):  # every field a name: the header
                header, header_line = _names(fields), line_number
                continue
            # some numbers: data, and a field that is not a number is a typo (checked below)
        rows.append(fields)
        lines.append(line_number)
    if not rows:
        raise ValueError(
            f"{source}: no rows of times "
            + (
                "(empty file?)"
                if header is None
                else f"after the header on line {header_line} (fields separated by commas?)"
            )
        )
    width = len(rows[0])
    for fields, line_number in zip(rows, lines):
        if len(fields) != width:
            raise ValueError(
                f"{source}: ragged rows: line {line_number} has {len(fields)} "
                f"fields, the first row has {width}"
            )
    if header is None:  # a "# name,name,..." comment naming every column (the shipped traces)
        header_line, header = next(
            (
                (n, names)
                for n, names in comments
                if len(names) == width and not any(_is_number(f) for f in names)
            ),
            (None, None),
        )
        if header is None and step_column is None:
            for n, names in comments:  # "# step,..." meant as a header, of another width
                if names and names[0].lower() in STEP_NAMES:
                    raise ValueError(
                        f"{source}: line {n} looks like a commented header (its "
                        f"first name is {names[0]!r}) but names {len(names)} "
                        f"columns, the rows have {width}"
                    )
    elif len(header) != width:
        raise ValueError(
            f"{source}: the header (line {header_line}) names {len(header)} "
            f"columns, the rows have {width}"
        )
    names = header if header is not None else [""] * width
    if step_column is None:
        steps = [j for j, name in enumerate(names) if name.lower() in STEP_NAMES]
        if len(steps) > 1:
            raise ValueError(
                f"{source}: two step index columns in the header (line "
                f"{header_line}): " + ", ".join(repr(names[j]) for j in steps) + "; keep one"
            )
        if (
            not steps
            and not names[0]
            and width > 1
            and _looks_like_index([fields[0] for fields in rows])
        ):
            raise ValueError(
                f"{source}: column 1 looks like a step index ({rows[0][0]}, {rows[1][0]}, ...) "
                f"and has no name: name it 'step' in a header row (e.g. step,w0,w1,...), or "
                f"pass step_column=True to drop it (False to keep it as a worker)"
            )
    else:
        steps = [0] if step_column else []
    dropped = steps[0] if steps else None
    if header is None:
        how = "no header"
    else:
        how = f"header on line {header_line}"
    if dropped is not None:
        how += (
            f"; column {dropped + 1} {names[dropped]!r} dropped as the step index"
            if step_column is None
            else f"; column {dropped + 1} dropped: step_column=True"
        )
    keep = [j for j in range(width) if j != dropped]
    times = np.empty((len(rows), len(keep)))
    for i, (fields, line_number) in enumerate(zip(rows, lines)):
        for out, j in enumerate(keep):
            field = fields[j]
            try:
                value = float(field)
            except ValueError:
                hint = (
                    " (a header row names every column, none with a number)"
                    if i == 0 and header is None
                    else ""
                )
                raise ValueError(
                    f"{source}: line {line_number}, column {j + 1}: {field!r} is not a number{hint}"
                ) from None
            if not (math.isfinite(value) and value > 0):
                raise ValueError(
                    f"{source}: line {line_number}, column {j + 1}: "
                    f"times must be finite and > 0, got {field!r}"
                )
            times[i, out] = value
    if times.shape[1] < 1:
        raise ValueError(f"{source}: no time columns (only the step column)")
    if num_workers is not None:
        if times.shape[1] < num_workers:
            raise ValueError(
                f"{source}: {times.shape[1]} columns of times, fewer than "
                f"num_workers={num_workers} (one column per worker)"
            )
    layout = f"{source}: {times.shape[0]} steps × {times.shape[1]} workers ({how})"
    return times, layout


def load_times_csv(path, *, num_workers=None, step_column=None) -> np.ndarray:
    """Measured compute times from a CSV file: one row per step, one column per worker.

    A file is read only when its layout is unambiguous:

    - a UTF-8 byte order mark is ignored; so are blank lines and lines starting
      with ``#``, wherever they are;
    - the header is a first row of names, none of them a number. A first row
      with some numbers is data, and a field in it that is not a number is an
      error (a typo), like anywhere else. Without such a row, the first ``#``
      line before the data that names every column (as many names as the rows
      have fields, none a number) is the header: ``# step,w0,w1``. A header
      must name as many columns as the rows have;
    - ``step_column=None`` (default): a column whose header name is ``step``,
      ``iteration``, ``iter`` or ``round`` (any case) is the step index and is
      dropped. An unnamed first column of consecutive integers from 0 or 1
      looks like an index and is refused: name it ``step`` in a header, or
      pass ``step_column=True`` (drop the first column) or ``False`` (keep
      every column as a worker).

    Returns a float64 (steps, workers) array. Raises a ValueError naming the
    file (and the line and column) for an empty file, ragged rows, a field that
    is not a number, a time that is not finite and > 0, a header of another
    width, an unnamed index column, two step columns, or fewer columns than
    ``num_workers``.

    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "times.csv"
    >>> _ = f.write_text("w0,w1,w2\\n1.0,1.1,3.0\\n0.9,1.2,2.8\\n")
    >>> load_times_csv(f, num_workers=3).shape
    (2, 3)
    """
    return load_times_csv_with_layout(path, num_workers=num_workers, step_column=step_column)[0]


def load_times_csv_with_layout(path, *, num_workers=None, step_column=None):
    """:func:`load_times_csv` (same rules and errors), returning (times, layout): layout
    is one line saying how the file was read, which ``lagc-jax advise`` prints.

    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "times.csv"
    >>> _ = f.write_text("step,w0,w1\\n0,1.0,3.0\\n1,1.1,2.9\\n")
    >>> times, layout = load_times_csv_with_layout(f)
    >>> times.shape, layout.split(": ", 1)[1]
    ((2, 2), "2 steps × 2 workers (header on line 1; column 1 'step' dropped as the step index)")
    """
    if step_column is not None and not isinstance(step_column, bool):
        raise ValueError(f"step_column must be True, False or None, got {step_column!r}")
    if num_workers is not None and (
        isinstance(num_workers, bool)
        or not isinstance(num_workers, (int, np.integer))
        or num_workers < 1
    ):
        raise ValueError(f"num_workers must be an integer >= 1, got {num_workers!r}")
    try:
        text = open(os.fspath(path), encoding="utf-8").read()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read times from {path}: {error}") from None
    return _read_times(text, str(path), num_workers, step_column)


def straggler_trace(name: str) -> np.ndarray:
    """A shipped trace of measured per-step, per-rank compute times, (steps, ranks) float64.

    ``name`` (case-insensitive): ``"AR"`` (44 × 16, one persistently slowed
    worker), ``"SE"`` (43 × 64, step-to-step sequence-length imbalance) or
    ``"ST"`` (32 × 8, a slow pipeline stage). See ``STRAGGLER_TRACES``. Units
    as recorded; only ratios matter (``lagc_jax.delays.normalize_samples``).

    >>> straggler_trace("st").shape
    (32, 8)
    """
    key = name.upper() if isinstance(name, str) else None
    if key not in STRAGGLER_TRACES:
        raise ValueError(
            f"name must be one of {', '.join(STRAGGLER_TRACES)} (any case), got {name!r}"
        )
    resource = importlib.resources.files("lagc_jax").joinpath(
        "data", "straggler_traces", f"compute_{key}.csv"
    )
    return _read_times(resource.read_text(encoding="utf-8"), f"compute_{key}.csv", None, None)[0]
