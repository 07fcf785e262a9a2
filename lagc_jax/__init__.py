"""lagc_jax: Monte Carlo simulation of straggler-tolerant, communication-efficient
distributed learning (GD, gradient coding, grouping, LAG, LAGC, G-LAG) in JAX."""

from . import coding, delays, problems, strategies, timing, triggers
from .delays import Empirical, MarkovStragglers, Pareto, ShiftedExponential
from .engine import simulate, sweep
from .results import Result

__version__ = "0.1.0"

__all__ = [
    "Empirical",
    "MarkovStragglers",
    "Pareto",
    "Result",
    "ShiftedExponential",
    "coding",
    "delays",
    "problems",
    "simulate",
    "strategies",
    "sweep",
    "timing",
    "triggers",
]
