"""Strategies: pure functions over worker arrays, composed from four kinds of pieces.

A strategy follows the protocol of :mod:`~lagc_jax.strategies.protocol`
(``init`` and ``step`` over worker arrays, its state a pytree). The ten strategies
of MODEL.md §6 are compositions (:class:`Strategy`) of

    placement   where data lives (B) and the lazy units      placement.identity / cyclic / fractional / from_encoding
    trigger     who computes and uploads, owning its state    NoTrigger, WorkerTrigger, ServerTrigger
    wait rule   which messages the server waits for           WaitAll, FirstK, FirstPerGroup, WaitFunction
    aggregator  the gradient estimate                         Sum, ScaledSum, Decode, DecodeFreshStale

registered by name (:func:`register`, :func:`make`, :func:`names`). See
docs/EXTENDING.md for writing your own.

>>> s = make("gc", 5, stragglers=1)
>>> s.encoding.shape, type(s.wait).__name__, s.wait.k
((5, 5), 'FirstK', 4)
"""

from . import placement
from .aggregate import Decode, DecodeFreshStale, Delivered, ScaledSum, Sum
from .asynchronous import AsyncState, KAsync
from .composed import Strategy
from .lazy import STARTS, LazyState, NoTrigger, Plan, ServerTrigger, WorkerTrigger
from .protocol import (Knobs, Metric, Round, Stats, StrategyProtocol, is_strategy, pytree_dataclass,
                       static)
from .registry import Entry, check_workers, info, make, names, register, unregister
from .wait import FirstK, FirstPerGroup, WaitAll, WaitFunction

__all__ = [
    "AsyncState", "Decode", "DecodeFreshStale", "Delivered", "Entry", "FirstK", "FirstPerGroup", "KAsync", "Knobs",
    "LazyState", "Metric", "NoTrigger", "Plan", "Round", "STARTS", "ScaledSum", "ServerTrigger", "Stats",
    "Strategy", "StrategyProtocol", "Sum", "WaitAll", "WaitFunction", "WorkerTrigger",
    "check_workers", "info", "is_strategy", "make", "names", "placement", "pytree_dataclass",
    "register", "static", "unregister",
]
