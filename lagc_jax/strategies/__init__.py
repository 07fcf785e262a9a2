"""Strategies: pure functions over worker arrays, composed from four kinds of pieces (five
with a compressor).

A strategy follows the protocol of :mod:`~lagc_jax.strategies.protocol`
(``init`` and ``step`` over worker arrays, its state a pytree). The ten strategies
of MODEL.md §6 are compositions (:class:`Strategy`) of

    placement   where data lives (B) and the lazy units      placement.identity / cyclic / fractional / from_encoding
    trigger     who computes and uploads, owning its state    NoTrigger, WorkerTrigger, ServerTrigger,
                                                              LaqTrigger
    wait rule   which messages the server waits for           WaitAll, FirstK, FirstPerGroup, WaitFunction,
                                                              Deadline, FirstKOrEveryGroup
    aggregator  the gradient estimate                         Sum, ScaledSum, Decode, DecodeFreshStale,
                                                              RescaledSum, UnbiasedSum, LeastSquaresDecode
    compressor  what each message becomes before upload       InnovationQuantizer, StochasticQuantizer,
                (optional; MODEL.md §9)                       RandomSparsifier (module compress)

registered by name (:func:`register`, :func:`make`, :func:`names`). The pure kernels behind
the wait rules (``wait_all``, ``wait_fastest``, ``wait_first_per_group``) and LAG's triggers
(``push_step``, ``lazy_threshold``, ``worker_trigger``, ``server_trigger``) are exported too. See
docs/EXTENDING.md for writing your own.

>>> s = make("gc", 5, stragglers=1)
>>> s.encoding.shape, type(s.wait).__name__, s.wait.k
((5, 5), 'FirstK', 4)
"""

from . import compress, placement
from .aggregate import Decode, DecodeFreshStale, Delivered, ScaledSum, Sum
from .approximate import Deadline, FirstKOrEveryGroup, LeastSquaresDecode, RescaledSum, UnbiasedSum
from .asynchronous import AsyncState, KAsync
from .composed import Strategy
from .compress import Compressed, InnovationQuantizer, RandomSparsifier, StochasticQuantizer
from .lazy import (
    STARTS,
    LaqState,
    LaqTrigger,
    LazyState,
    NoTrigger,
    Plan,
    ServerTrigger,
    WorkerTrigger,
    lazy_threshold,
    push_step,
    server_trigger,
    worker_trigger,
)
from .protocol import (
    Knobs,
    Metric,
    Round,
    Stats,
    StrategyProtocol,
    is_strategy,
    pytree_dataclass,
    static,
)
from .registry import Entry, check_workers, info, make, names, register, unregister
from .wait import (
    FirstK,
    FirstPerGroup,
    WaitAll,
    WaitFunction,
    wait_all,
    wait_fastest,
    wait_first_per_group,
)

__all__ = [
    "AsyncState",
    "Decode",
    "DecodeFreshStale",
    "Delivered",
    "Entry",
    "FirstK",
    "FirstPerGroup",
    "KAsync",
    "Knobs",
    "Deadline",
    "FirstKOrEveryGroup",
    "LeastSquaresDecode",
    "RescaledSum",
    "UnbiasedSum",
    "Compressed",
    "InnovationQuantizer",
    "LaqState",
    "LaqTrigger",
    "RandomSparsifier",
    "StochasticQuantizer",
    "compress",
    "LazyState",
    "Metric",
    "NoTrigger",
    "Plan",
    "Round",
    "STARTS",
    "ScaledSum",
    "ServerTrigger",
    "Stats",
    "Strategy",
    "StrategyProtocol",
    "Sum",
    "WaitAll",
    "WaitFunction",
    "WorkerTrigger",
    "check_workers",
    "info",
    "is_strategy",
    "make",
    "names",
    "placement",
    "pytree_dataclass",
    "register",
    "static",
    "unregister",
    # the kernels of the wait rules and of LAG's triggers
    "lazy_threshold",
    "push_step",
    "server_trigger",
    "wait_all",
    "wait_fastest",
    "wait_first_per_group",
    "worker_trigger",
]
