"""Real data sets as learning problems (scikit-learn's bundled data, no download).

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

import numpy as np

from .problems import Problem, linear_regression, logistic_regression

__all__ = ["diabetes", "breast_cancer", "load_sklearn"]

_INSTALL_HINT = (
    "lagc_jax.datasets needs scikit-learn, an optional dependency: install it with "
    "`pip install -e \".[data]\"` (from the repository) or `pip install scikit-learn`"
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
    return linear_regression(standardize(data.data), y, num_partitions=num_partitions,
                             partitioning=partitioning, seed=seed,
                             name=f"diabetes(P={num_partitions}, {partitioning})")


def breast_cancer(num_partitions: int, l2: float = 1.0, partitioning: str = "contiguous",
                  seed: int = 0) -> Problem:
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
    return logistic_regression(standardize(data.data), y, l2=l2, num_partitions=num_partitions,
                               partitioning=partitioning, seed=seed,
                               name=f"breast_cancer(P={num_partitions}, {partitioning}, l2={l2:g})")
