"""lagc_jax: Monte Carlo simulation of straggler-tolerant, communication-efficient
distributed learning (GD, gradient coding, grouping, LAG, LAGC, G-LAG) in JAX."""

from . import analysis, coding, delays, problems, strategies, timing, triggers
from .delays import Empirical, MarkovStragglers, Pareto, ShiftedExponential
from .engine import simulate, sweep
from .results import Result
from .strategies import make, names, register

__version__ = "0.1.0"

__all__ = [
    "Empirical",
    "MarkovStragglers",
    "Pareto",
    "Result",
    "ShiftedExponential",
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
    "triggers",
]
