"""lagc_jax: Monte Carlo simulation of straggler-tolerant, communication-efficient
distributed learning (GD, gradient coding, grouping, LAG, LAGC, G-LAG) in JAX."""

from . import analysis, coding, delays, problems, strategies, timing
from .delays import (
    Bimodal,
    Empirical,
    LogNormal,
    MarkovStragglers,
    Pareto,
    ShiftedExponential,
    Weibull,
)
from .engine import simulate, sweep
from .results import Result
from .strategies import make, names, register

__version__ = "0.1.0"

__all__ = [
    "Bimodal",
    "Empirical",
    "LogNormal",
    "MarkovStragglers",
    "Pareto",
    "Result",
    "ShiftedExponential",
    "Weibull",
    "analysis",
    "coding",
    "delays",
    "make",
    "names",
    "problems",
    "register",
    "simulate",
    "strategies",
    "sweep",
    "timing",
]
