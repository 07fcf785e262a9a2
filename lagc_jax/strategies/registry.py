"""The strategy registry: names → factories, with metadata for figures and analysis.

``register(name, factory, **metadata)`` adds a strategy; ``make(name, M, S, **options)``
builds one (the factory is called as ``factory(num_workers, stragglers, **options)``).
Metadata the package reads, each optional:

- ``style``: matplotlib line keywords (``color``, ``linestyle``, ``marker``, ...)
  for every figure; unregistered keys get defaults.
- ``analytic``: True when :mod:`lagc_jax.analysis` has closed forms for its
  per-iteration costs (``expected_iteration_costs``).
- ``lazy``: True when it has a lazy trigger (plots its uploads on a log scale and
  offers ``xi``).
- ``description``: one line for listings.

>>> "g-lag" in names(), info("g-lag").lazy
(True, True)
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Callable

import numpy as np

from .aggregate import Decode, DecodeFreshStale, ScaledSum, Sum
from .approximate import deadline_strategy, erasurehead, graph_gc, sgc
from .asynchronous import asynchronous, k_async
from .composed import Strategy
from .compress import InnovationQuantizer, check_bits
from .lazy import STARTS, LaqTrigger, NoTrigger, ServerTrigger, WorkerTrigger, check_max_skips
from .placement import cyclic, fractional, identity
from .protocol import is_strategy
from .wait import FirstK, FirstPerGroup, WaitAll


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered strategy: its factory and what figures and analysis need."""

    name: str
    factory: Callable
    style: dict = dataclasses.field(default_factory=dict)
    analytic: bool = False
    lazy: bool = False
    description: str = ""


_REGISTRY: dict[str, Entry] = {}


def register(
    name: str,
    factory: Callable,
    *,
    style: dict | None = None,
    analytic: bool = False,
    lazy: bool = False,
    description: str = "",
    replace: bool = False,
) -> Entry:
    """Register ``factory(num_workers, stragglers, **options) -> strategy`` as ``name``.

    Re-registering a name raises unless ``replace=True``.
    """
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(
            f"name must be a non-empty string without surrounding spaces, got {name!r}"
        )
    if not callable(factory):
        raise ValueError(f"factory must be callable, got {type(factory).__name__}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"strategy {name!r} is already registered (pass replace=True to override)")
    entry = Entry(name, factory, dict(style or {}), bool(analytic), bool(lazy), description)
    _REGISTRY[name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove a registered strategy (e.g. at the end of a test)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown strategy {name!r}")
    del _REGISTRY[name]


def names() -> tuple[str, ...]:
    """Registered strategy names, in registration order (MODEL.md §6 order first)."""
    return tuple(_REGISTRY)


def info(name: str) -> Entry:
    """The registry entry of ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown strategy {name!r}; valid names: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def check_workers(num_workers, stragglers) -> tuple[int, int]:
    """Validate M ≥ 1 and 0 ≤ S < M (integers)."""
    if (
        not isinstance(num_workers, (int, np.integer))
        or isinstance(num_workers, bool)
        or num_workers < 1
    ):
        raise ValueError(f"num_workers must be an integer >= 1, got {num_workers!r}")
    if (
        not isinstance(stragglers, (int, np.integer))
        or isinstance(stragglers, bool)
        or not 0 <= stragglers < num_workers
    ):
        raise ValueError(
            f"stragglers must be an integer in [0, num_workers - 1 = {num_workers - 1}], "
            f"got {stragglers!r}"
        )
    return int(num_workers), int(stragglers)


def make(name: str, num_workers: int, stragglers: int = 0, **options):
    """Build a registered strategy; unknown options raise a ValueError listing the valid ones.

    >>> make("g-lag", 12, 2).num_units
    4
    """
    entry = info(name)
    num_workers, stragglers = check_workers(num_workers, stragglers)
    parameters = inspect.signature(entry.factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        valid = [
            p
            for p in list(parameters)[2:]
            if parameters[p].kind
            in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        ]
        for option in options:
            if option not in valid:
                raise ValueError(
                    f"option {option!r} does not apply to strategy {name!r} "
                    f"(valid: {', '.join(valid) or 'none'})"
                )
    strategy = entry.factory(num_workers, stragglers, **options)
    if not is_strategy(strategy):
        raise ValueError(
            f"the factory of {name!r} returned {type(strategy).__name__}, which "
            "lacks the strategy protocol (name, num_workers, num_partitions, "
            "delay_dependent, init, step)"
        )
    if strategy.num_workers != num_workers:
        raise ValueError(
            f"the factory of {name!r} was asked for num_workers={num_workers} but "
            f"returned a strategy of {strategy.num_workers} workers"
        )
    if strategy.name != name and dataclasses.is_dataclass(strategy):
        strategy = dataclasses.replace(strategy, name=name)
    return strategy


# --------------------------------------------------------------------------- #
# the ten strategies of MODEL.md §6
# --------------------------------------------------------------------------- #
def _lazy_options(xi, history, start):
    """Validated (xi, history, start) of a lazy trigger."""
    if (
        isinstance(xi, bool)
        or not isinstance(xi, (int, float, np.number))
        or not math.isfinite(xi)
        or xi < 0
    ):
        raise ValueError(f"xi must be a finite number >= 0, got {xi!r}")
    if not isinstance(history, (int, np.integer)) or isinstance(history, bool) or history < 1:
        raise ValueError(f"history must be an integer >= 1, got {history!r}")
    if start not in STARTS:
        raise ValueError(f"start must be one of {STARTS}, got {start!r}")
    return dict(xi=float(xi), history=int(history), start=start)


def _gd(M, S):
    return Strategy(identity(M), NoTrigger(), WaitAll(), Sum(), "gd", S)


def _fastest_k(M, S):
    return Strategy(identity(M), NoTrigger(), FirstK(M - S), ScaledSum(M / (M - S)), "fastest-k", S)


def _gc(M, S, encoding=None):
    placement = cyclic(M, S, encoding)
    return Strategy(
        placement, NoTrigger(), FirstK(M - S), Decode.for_code(placement.encoding, S), "gc", S
    )


def _grouping(M, S):
    return Strategy(fractional(M, S), NoTrigger(), FirstPerGroup(S + 1), Sum(), "grouping", S)


def _lag_wk(M, S, xi=1.0, history=10, start="clean"):
    return Strategy(
        identity(M),
        WorkerTrigger(**_lazy_options(xi, history, start)),
        WaitAll(),
        Sum(),
        "lag-wk",
        S,
    )


def _lag_ps(M, S, xi=10.0, history=10, start="clean"):
    return Strategy(
        identity(M),
        ServerTrigger(**_lazy_options(xi, history, start)),
        WaitAll(),
        Sum(),
        "lag-ps",
        S,
    )


def _lagc(M, S, encoding=None, xi=1.0, history=10, start="clean"):
    placement = cyclic(M, S, encoding)
    return Strategy(
        placement,
        WorkerTrigger(**_lazy_options(xi, history, start)),
        FirstK(M - S),
        Decode.for_code(placement.encoding, S),
        "lagc",
        S,
    )


def _lagc_ps(M, S, encoding=None, xi=10.0, history=10, start="clean"):
    placement = cyclic(M, S, encoding, units="partitions")
    return Strategy(
        placement,
        ServerTrigger(**_lazy_options(xi, history, start)),
        FirstK(M - S),
        DecodeFreshStale.for_code(placement.encoding, S),
        "lagc-ps",
        S,
    )


def _g_lag(M, S, xi=10.0, history=10, start="clean"):
    return Strategy(
        fractional(M, S),
        ServerTrigger(**_lazy_options(xi, history, start)),
        FirstPerGroup(S + 1),
        Sum(),
        "g-lag",
        S,
    )


def _g_lag_wk(M, S, xi=1.0, history=10, start="clean"):
    return Strategy(
        fractional(M, S),
        WorkerTrigger(**_lazy_options(xi, history, start)),
        FirstPerGroup(S + 1),
        Sum(),
        "g-lag-wk",
        S,
    )


for _name, _factory, _color, _linestyle, _marker, _analytic, _lazy, _description in (
    ("gd", _gd, "#404040", "-", "o", True, False, "wait for all M workers"),
    (
        "fastest-k",
        _fastest_k,
        "#8c564b",
        ":",
        "x",
        True,
        False,
        "first M−S workers, rescaled sum (approximate)",
    ),
    ("gc", _gc, "#1f77b4", "-", "s", True, False, "cyclic gradient coding, first M−S decode"),
    (
        "grouping",
        _grouping,
        "#17becf",
        "-",
        "D",
        True,
        False,
        "fractional repetition, first arrival per group",
    ),
    ("lag-wk", _lag_wk, "#ff7f0e", "--", "v", False, True, "LAG, worker-side trigger"),
    ("lag-ps", _lag_ps, "#bcbd22", "-.", "^", False, True, "LAG, server-side trigger"),
    (
        "lagc",
        _lagc,
        "#9467bd",
        "--",
        "P",
        False,
        True,
        "LAGC: gradient coding with worker-side LAG on coded gradients",
    ),
    (
        "lagc-ps",
        _lagc_ps,
        "#e377c2",
        "-.",
        "X",
        False,
        True,
        "LAGC-PS: gradient coding with server-side LAG on partitions",
    ),
    ("g-lag", _g_lag, "#d62728", "-.", "*", False, True, "G-LAG: grouping with server-side LAG"),
    (
        "g-lag-wk",
        _g_lag_wk,
        "#2ca02c",
        "--",
        "h",
        False,
        True,
        "G-LAG-WK: grouping with worker-side LAG",
    ),
):
    register(
        _name,
        _factory,
        analytic=_analytic,
        lazy=_lazy,
        description=_description,
        style=dict(
            color=_color,
            linestyle=_linestyle,
            marker=_marker,
            linewidth=2.0 if _name == "g-lag" else 1.5,
        ),
    )

# the asynchronous baselines of MODEL.md §8 (hand-written protocol strategies)
register(
    "async",
    asynchronous,
    style=dict(color="#393b79", linestyle=":", marker="<"),
    description="asynchronous SGD: update on every arrival, stale gradients",
)
register(
    "k-async",
    k_async,
    style=dict(color="#843c39", linestyle=":", marker=">"),
    description="K-async SGD: update on the next k arrivals (option k, default 1)",
)


# communication in bits (MODEL.md §9): LAQ's quantizer of the innovation, alone and with
# LAQ's lazy rule
def _qgd(M, S, bits=4):
    return Strategy(
        identity(M),
        NoTrigger(),
        WaitAll(),
        Sum(),
        "qgd",
        S,
        compressor=InnovationQuantizer(check_bits(bits)),
    )


def _laq(M, S, bits=4, xi=0.8, history=10, max_skips=100):
    trigger = LaqTrigger(
        **_lazy_options(xi, history, "clean"), max_skips=check_max_skips(max_skips)
    )
    return Strategy(
        identity(M),
        trigger,
        WaitAll(),
        Sum(),
        "laq",
        S,
        compressor=InnovationQuantizer(check_bits(bits)),
    )


register(
    "qgd",
    _qgd,
    style=dict(color="#6b6ecf", linestyle="-", marker="p"),
    description="gd uploading LAQ's b-bit quantized innovation (option bits)",
)
register(
    "laq",
    _laq,
    lazy=True,
    style=dict(color="#bd9e39", linestyle="--", marker="d"),
    description="LAQ: LAG-WK's rule on b-bit quantized innovations (bits, xi, max_skips)",
)

# the approximate strategies of MODEL.md §10 (compositions of strategies/approximate.py)
register(
    "deadline",
    deadline_strategy,
    style=dict(color="#9c9ede", linestyle="--", marker="8"),
    description="wait until a deadline T (at least one arrival), rescale (approximate)",
)
register(
    "erasurehead",
    erasurehead,
    style=dict(color="#b5cf6b", linestyle="-.", marker="H"),
    description="ErasureHead: grouping, stop at k arrivals, erase uncovered groups",
)
register(
    "sgc",
    sgc,
    style=dict(color="#e7ba52", linestyle=":", marker="v"),
    description="stochastic gradient coding: deadline T, unbiased rescaling by 1 − p",
)
register(
    "graph-gc",
    graph_gc,
    style=dict(color="#d6616b", linestyle="--", marker="^"),
    description="approximate gradient coding on a random regular graph (or any B)",
)
