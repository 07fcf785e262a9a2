"""Strategy contracts, checked once per run, before anything compiles.

:func:`check_strategy` turns the silent wrong answers and raw jax errors a faulty
strategy (or piece) would give into one-line ``ValueError``\\ s that name the strategy
and the piece at fault, with the expected and the actual value:

1. **Structure.** A composed :class:`~lagc_jax.strategies.Strategy` has its four pieces
   (a wait rule and an aggregator are not None, a wait rule says ``delay_dependent``; a
   compressor, if any, has ``init``, ``compress`` and ``acknowledge``);
   every leaf of the strategy is a number or an array (a function or an object that is
   not a registered pytree would be "not a valid JAX type" inside jit).
2. **Shapes, traced once** (``jax.eval_shape``, nothing runs): the aggregate is (d,) of
   the run's float dtype; ``Stats.duration``, ``uploads``, ``downloads``,
   ``computations`` (int32) and ``decoding_residual`` are scalars, ``upload_mask`` is 1-D
   bool, every declared metric is reported as a scalar; ``step`` returns a state of the
   pytree structure, shapes and dtypes ``init`` gave (a scan carry). For a composed
   strategy each piece is checked where it is called: the placement's messages (M, d);
   the trigger's plan ((M,) bool participating/uploads, (M,) loads, (U, d) fresh and
   held, (U,) bool selected) and commit ((U, d) held, (U,) bool updated); the wait rule's
   (used (M,) bool, time scalar); the aggregator's (aggregate (d,), residual scalar); a
   compressor's (values (U, d), errors (U,), bits (U,): one size per message) and, after
   ``acknowledge``, its state of the structure it had. An
   exception raised while tracing a piece is re-raised naming it, with the original
   message's first line. With ``delay_dependent=False`` (the engine then computes θ once
   for all trials) the aggregate and the state must not depend on the unit times or the
   round's key (traced under ``vmap``, as the engine runs it).
3. **Wait rule, evaluated** on a few random arrival vectors: its time is finite, ≥ 0 and
   not before the latest arrival of the messages it uses; with every worker participating
   it uses at least one message (unless it says ``may_use_no_message``, as a hard
   deadline does); if it says ``delay_dependent=False`` the lazy units it
   hears from (the messages it uses, per unit) are the same for every arrival order and
   are all the units with a participating worker — otherwise the iterates computed once
   for all trials would ignore which messages were dropped.
4. **Nothing undelivered is used** (composed strategies, evaluated once, small): one
   round from ``init`` with random partition gradients, for a few random unit-time
   vectors (so a few sets of used messages); its aggregate is computed again with the
   trigger's and the wait rule's decisions kept but (i) the messages the server did not
   receive (not used, or a skip notice) replaced by random values, then (ii) also the
   partition gradients changed by a random δ that no received message sees (B[sent] δ = 0)
   and the trigger's commit redone: the aggregate must not change (relative tolerance
   1e-6 in float64). A decoding aggregator passes (a_F B_F δ = 0); an aggregator reading
   a message or a partition gradient that did not arrive fails, named. These checks use
   the first ``CONCRETE_DIM`` coordinates of θ⁰ (the whole θ⁰ if a piece fails there).
   A compressor is evaluated in the same rounds: its values and errors must be finite,
   the errors ≥ 0 and its bits finite and ≥ 0 (whether a compressor that says it is
   unbiased is cannot be checked cheaply).

Run time: a negative or NaN wait time makes :meth:`Strategy.step`'s duration NaN, which
the engine flags as a non-finite wall clock; check 3 names the wait rule beforehand.

Passing checks are remembered (by the strategy's structure and values, θ⁰, the knobs and
the dtype), so a repeated run costs only a hash; the traced checks by structure and
shapes, so the points of a sweep over one structure are traced once. The evaluated
checks compile two small programs per strategy structure (~0.1–0.5 s on a CPU, on the
host even when an accelerator runs the simulation).

By construction, too: ``NoTrigger`` holds zeros for the units the wait rule did not hear
from, so no aggregator can add a gradient that did not arrive through ``held``.

>>> import jax.numpy as jnp
>>> from lagc_jax import strategies as st
>>> knobs = st.Knobs(step_size=0.1)
>>> check_strategy(st.make("gc", 4, 1), theta0=jnp.zeros(3), num_partitions=4, knobs=knobs,
...                dtype=jnp.zeros(3).dtype)
>>> bad = st.Strategy(st.placement.identity(4), st.NoTrigger(),
...                   st.WaitFunction(lambda a, p: (p, -jnp.max(a))), st.Sum(), name="bad")
>>> try:
...     check_strategy(bad, theta0=jnp.zeros(3), num_partitions=4, knobs=knobs,
...                    dtype=jnp.zeros(3).dtype)
... except ValueError as error:
...     print(error)
strategy 'bad': wait rule WaitFunction(<lambda>) returned time -...; a wait time must be ... >= 0
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .aggregate import Delivered
from .composed import Strategy
from .compress import per_worker
from .protocol import Knobs, Round, Stats
from .wait import WaitFunction

__all__ = ["ContractError", "check_strategy"]

# Random arrival vectors the wait rule is evaluated on (all workers participating), and
# rounds (unit-time vectors) of the perturbation check.
NUM_ARRIVALS = 4
NUM_ROUNDS = 3
# Coordinates of θ the evaluated checks use (the first ones; the shape checks use all d):
# their small programs are then shared by problems of any dimension.
CONCRETE_DIM = 8
_PASSED: dict = {}  # fingerprints (structure and values) of checks passed -> True
_SHAPES_PASSED: dict = {}  # structures and shapes whose traced checks passed -> True
_MAX_REMEMBERED = 512


class ContractError(ValueError):
    """A strategy or piece broke its contract (one line, naming it)."""

    def __init__(self, message):
        super().__init__(message)
        self.line = message  # jax appends a note to errors raised while tracing


def _traced(names, what, function, *arguments):
    """function(*arguments) (a jax transformation): a contract error re-raised as its one
    line, any other error named."""
    try:
        return function(*arguments)
    except ContractError as error:
        raise ContractError(error.line) from None
    except Exception as error:
        raise ContractError(f"{names.prefix}{what}: {_first_line(error)}") from error


def check_strategy(
    strategy,
    *,
    theta0,
    num_partitions=None,
    knobs=None,
    dtype=None,
    union_smoothness: Callable | None = None,
    seed: int = 0,
    evaluate: bool = True,
) -> None:
    """Check ``strategy``'s contracts for a run from ``theta0`` (see the module docstring).

    Args:
      strategy: any object of the strategy protocol; a composed :class:`Strategy` gets
        the per-piece and evaluated checks too.
      theta0: (d,) concrete initial parameters, of the run's compute dtype.
      num_partitions: P of the problem (None: the strategy's).
      knobs: the run's :class:`Knobs` (None: step size 0.1, default link).
      dtype: the compute dtype (None: theta0's).
      union_smoothness: ``union_smoothness(mask)`` for ``init`` (None: 1.0 for any mask;
        the checks do not depend on its values, so None saves computing them twice).
      seed: seed of the random arrivals and gradients (the check is deterministic).
      evaluate: run checks 3 and 4 (small compiled evaluations, ~0.1–0.5 s the first time
        a strategy structure is seen); False: structure and shapes only (no compile).

    Raises:
      ValueError (:class:`ContractError`): one line naming the strategy and the piece.
    """
    theta0 = jnp.asarray(theta0, dtype)
    dtype = theta0.dtype
    if theta0.ndim != 1:
        raise ContractError(f"theta0 must be a (d,) vector, got shape {theta0.shape}")
    knobs = Knobs(step_size=0.1) if knobs is None else knobs
    union_smoothness = (lambda mask: 1.0) if union_smoothness is None else union_smoothness
    names = _Names(strategy)
    composed = isinstance(strategy, Strategy)
    if composed:
        _check_pieces(strategy, names)
    _check_leaves(strategy, names, composed)
    P = strategy.num_partitions if num_partitions is None else num_partitions
    if strategy.num_partitions != P:
        raise ContractError(
            f"{names.prefix}places {strategy.num_partitions} partitions but the problem has {P}"
        )
    fingerprint = _fingerprint(strategy, theta0, P, knobs, dtype, (seed, bool(evaluate)))
    if fingerprint is not None and fingerprint in _PASSED:
        return
    sizes = _Sizes(strategy, theta0)
    shapes = _shapes_key(strategy, theta0, P, knobs)
    if shapes is None or shapes not in _SHAPES_PASSED:  # the traced checks see only shapes
        state = _guarded(names, names.piece("init"), strategy.init, theta0, union_smoothness)
        _check_state_leaves(state, names)
        _abstract_round(strategy, state, theta0, knobs, sizes, names, composed)
        if not bool(strategy.delay_dependent):
            _abstract_delay_independence(strategy, state, theta0, knobs, sizes, names, composed)
        if shapes is not None:
            _remember(_SHAPES_PASSED, shapes)
    if composed and evaluate:
        rng = np.random.default_rng(seed)
        _check_wait_rule(strategy, sizes, names, dtype, rng)
        _check_nothing_undelivered_is_used(strategy, theta0, knobs, sizes, names, rng)
    if fingerprint is not None:
        _remember(_PASSED, fingerprint)


def _remember(passed: dict, key):
    if len(passed) >= _MAX_REMEMBERED:
        passed.clear()
    passed[key] = True


# --------------------------------------------------------------------------- #
# names and errors
# --------------------------------------------------------------------------- #
_KINDS = {
    "placement": "placement",
    "plan": "trigger",
    "commit": "trigger",
    "init": "trigger",
    "wait": "wait rule",
    "aggregate": "aggregate",
    "compress": "compressor",
    "acknowledge": "compressor",
}
_FIELDS = ("placement", "trigger", "wait", "aggregate", "compressor")


def _describe(piece) -> str:
    if inspect.isfunction(piece):
        return piece.__qualname__
    name = type(piece).__name__
    if isinstance(piece, WaitFunction):
        function = piece.function
        name += f"({getattr(function, '__qualname__', type(function).__name__)})"
    return name


class _Names:
    """How errors name the strategy and its pieces."""

    def __init__(self, strategy):
        self.strategy = strategy
        self.composed = isinstance(strategy, Strategy)
        self.prefix = f"strategy {getattr(strategy, 'name', type(strategy).__name__)!r}: "

    def piece(self, role) -> str:
        """'wait rule FirstK', 'aggregate Sum', ...; for a hand-written strategy its class."""
        if not self.composed:
            return f"{type(self.strategy).__name__}.{'init' if role == 'init' else 'step'}"
        owner = {
            "plan": "trigger",
            "commit": "trigger",
            "init": "trigger",
            "compress": "compressor",
            "acknowledge": "compressor",
        }.get(role, role)
        return f"{_KINDS[role]} {_describe(getattr(self.strategy, owner))}"


def _first_line(error) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {line}" if line else type(error).__name__


def _guarded(names, where, function, *arguments):
    """function(*arguments), any exception but a contract error re-raised naming ``where``."""
    try:
        return function(*arguments)
    except ContractError:
        raise
    except Exception as error:  # TypeError, ValueError, jax's errors, the user's own
        raise ContractError(f"{names.prefix}{where} failed: {_first_line(error)}") from error


# --------------------------------------------------------------------------- #
# 1. structure
# --------------------------------------------------------------------------- #
def _check_pieces(strategy, names):
    examples = {
        "placement": ("placement", "lagc_jax.strategies.placement.identity(M)"),
        "trigger": ("trigger", "NoTrigger()"),
        "wait": ("wait rule", "a wait rule such as WaitAll() or FirstK(k)"),
        "aggregate": ("aggregator", "an aggregator such as Sum() or ScaledSum(scale)"),
    }
    for field, (kind, example) in examples.items():
        if getattr(strategy, field) is None:
            raise ContractError(f"{names.prefix}the {kind} is None; give {example}")
    placement = strategy.placement
    for member in ("encoding", "unit_matrix", "units", "round_messages", "unit_grads"):
        if not hasattr(placement, member):
            raise ContractError(
                f"{names.prefix}placement {_describe(placement)} lacks "
                f"{member!r} (use lagc_jax.strategies.placement)"
            )
    for member in ("init", "plan", "commit"):
        if not callable(getattr(strategy.trigger, member, None)):
            raise ContractError(
                f"{names.prefix}trigger {_describe(strategy.trigger)} lacks the "
                f"method {member!r} (plan, commit and init)"
            )
    if inspect.isfunction(strategy.wait):
        raise ContractError(
            f"{names.prefix}wait rule {_describe(strategy.wait)} is a bare "
            "function; wrap it: WaitFunction(function, delay_dependent=...)"
        )
    if not callable(strategy.wait):
        raise ContractError(
            f"{names.prefix}wait rule {_describe(strategy.wait)} is not callable "
            "(arrivals, participating) -> (used, time)"
        )
    if not hasattr(strategy.wait, "delay_dependent"):
        raise ContractError(
            f"{names.prefix}wait rule {_describe(strategy.wait)} lacks the "
            "delay_dependent flag (True when which messages it uses depends on "
            "the arrival times)"
        )
    if not callable(strategy.aggregate):
        raise ContractError(
            f"{names.prefix}aggregate {_describe(strategy.aggregate)} is not "
            "callable (Delivered) -> (aggregate, residual)"
        )
    compressor = getattr(strategy, "compressor", None)
    for member in ("init", "compress", "acknowledge") if compressor is not None else ():
        if not callable(getattr(compressor, member, None)):
            raise ContractError(
                f"{names.prefix}compressor {_describe(compressor)} lacks the "
                f"method {member!r} (init, compress and acknowledge)"
            )


def _is_array_like(leaf) -> bool:
    return isinstance(leaf, (np.ndarray, np.generic, jax.Array, int, float, complex, bool))


def _check_leaves(strategy, names, composed):
    """Every leaf a number or an array: anything else is 'not a valid JAX type' in jit."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(strategy)[0]:
        if _is_array_like(leaf) or isinstance(leaf, jax.core.Tracer):
            continue
        what = getattr(leaf, "__qualname__", None) or type(leaf).__name__
        if leaf is strategy:
            raise ContractError(
                f"{names.prefix}{type(strategy).__name__} is not a registered "
                "pytree; declare it with lagc_jax.strategies.pytree_dataclass"
            )
        field = getattr(path[0], "name", None) if path else None
        if composed and field in _FIELDS and len(path) == 1:
            kind = {"wait": "wait rule"}.get(field, field)
            hint = (
                " (wrap a wait function in WaitFunction)"
                if field == "wait" and inspect.isfunction(leaf)
                else ""
            )
            raise ContractError(
                f"{names.prefix}{kind} {what} is not a registered pytree, so it would be passed "
                f"to jit as a value (not a valid JAX type); declare it with "
                f"lagc_jax.strategies.pytree_dataclass{hint}"
            )
        owner = (
            f"{ {'wait': 'wait rule'}.get(field, field) } {_describe(getattr(strategy, field))}"
            if composed and field in _FIELDS
            else type(strategy).__name__
        )
        raise ContractError(
            f"{names.prefix}{owner} holds {what} at {jax.tree_util.keystr(path)}, a pytree leaf "
            "that is not a number or an array (not a valid JAX type); make it a static() field "
            "of a lagc_jax.strategies.pytree_dataclass"
        )


def _check_state_leaves(state, names):
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        if not _is_array_like(leaf):
            raise ContractError(
                f"{names.prefix}{names.piece('init')} returned a state whose leaf "
                f"{jax.tree_util.keystr(path) or 'root'} is a {type(leaf).__name__}; a state "
                "is a pytree of arrays"
            )


# --------------------------------------------------------------------------- #
# 2. shapes, traced once
# --------------------------------------------------------------------------- #
class _Sizes:
    def __init__(self, strategy, theta0):
        self.M, self.P, self.d = strategy.num_workers, strategy.num_partitions, theta0.shape[0]
        self.U = strategy.num_units if isinstance(strategy, Strategy) else None
        self.dtype = theta0.dtype

    def text(self, letters):
        """'(U, d) = (3, 10)'."""
        values = {"M": self.M, "P": self.P, "U": self.U, "d": self.d}
        if not letters:
            return "a scalar ()"
        shape = tuple(values[letter] for letter in letters)
        return f"({', '.join(letters)}{',' if len(letters) == 1 else ''}) = {shape}"

    def shape(self, letters):
        values = {"M": self.M, "P": self.P, "U": self.U, "d": self.d}
        return tuple(values[letter] for letter in letters)


_KIND_TEXT = {
    "float": "a float dtype",
    "bool": "bool",
    "int32": "int32",
    "number": "a number dtype",
}


def _aval(value):
    """(shape, dtype, weak) of an array, tracer or Python number; None for anything else."""
    if value is None or isinstance(value, (str, bytes, dict, list, tuple)):
        return None
    try:
        aval = jax.typeof(value) if hasattr(jax, "typeof") else jax.core.get_aval(value)
    except Exception:  # not an array
        return None
    dtype = aval.dtype
    try:
        dtype = np.dtype(dtype)
    except TypeError:  # an extended dtype (PRNG keys): kept as it is
        pass
    return tuple(aval.shape), dtype, bool(getattr(aval, "weak_type", False))


def _canonical(dtype):
    """The dtype jit gives an input of ``dtype`` (float64 -> float32 without x64)."""
    try:
        return jax.dtypes.canonicalize_dtype(dtype)
    except Exception:
        return dtype


def _name(dtype) -> str:
    return getattr(dtype, "name", str(dtype))


def _dtype_ok(dtype, weak, kind, run_dtype):
    if kind == "bool":
        return dtype == np.bool_
    if kind == "int32":
        return dtype == np.int32 or (weak and jnp.issubdtype(dtype, jnp.integer))
    if kind == "float":
        return jnp.issubdtype(dtype, jnp.floating)
    if kind == "run float":
        return jnp.issubdtype(dtype, jnp.floating) and (weak or dtype == run_dtype)
    return jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)


def _expect(names, where, what, value, sizes, letters, kind):
    """Raise unless ``value`` is an array of shape ``letters`` (e.g. "Ud") and dtype ``kind``."""
    aval = _aval(value)
    expected = sizes.text(letters)
    if aval is None:
        raise ContractError(
            f"{names.prefix}{where} returned {type(value).__name__} for {what}; "
            f"expected an array of shape {expected}"
        )
    shape, dtype, weak = aval
    if shape != sizes.shape(letters):
        raise ContractError(
            f"{names.prefix}{where} returned shape {shape} for {what}; expected {expected}"
        )
    if not _dtype_ok(dtype, weak, kind, sizes.dtype):
        wanted = (
            f"{np.dtype(sizes.dtype).name} (the run's dtype)"
            if kind == "run float"
            else _KIND_TEXT[kind]
        )
        raise ContractError(
            f"{names.prefix}{where} returned dtype {_name(dtype)} for {what}; expected {wanted}"
        )


def _expect_tuple(names, where, result, length, what):
    if not isinstance(result, tuple) or len(result) != length:
        got = f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__
        raise ContractError(f"{names.prefix}{where} returned {got}; expected {what}")


class _PieceChecks:
    """The ``call`` of :meth:`Strategy.step_with` that checks what each piece returns
    (abstract values, while tracing), naming it."""

    def __init__(self, names, sizes):
        self.names, self.sizes = names, sizes

    def __call__(self, role, function, *arguments):
        where = self.names.piece(role)
        result = _guarded(self.names, where, function, *arguments)
        self.arguments = arguments
        getattr(self, role)(where, result)
        return result

    def expect(self, where, what, value, letters, kind):
        _expect(self.names, where, what, value, self.sizes, letters, kind)

    def placement(self, where, messages):
        self.expect(where, "the messages (round_messages)", messages, "Md", "float")

    def plan(self, where, result):
        _expect_tuple(self.names, where, result, 2, "(Plan, state)")
        plan = result[0]
        for field, letters, kind in (
            ("participating", "M", "bool"),
            ("uploads", "M", "bool"),
            ("loads", "M", "number"),
            ("fresh", "Ud", "float"),
            ("selected", "U", "bool"),
            ("held", "Ud", "float"),
        ):
            if not hasattr(plan, field):
                raise ContractError(
                    f"{self.names.prefix}{where} returned a plan without "
                    f"{field!r}; expected a lagc_jax.strategies.Plan"
                )
            self.expect(where, f"Plan.{field}", getattr(plan, field), letters, kind)

    def wait(self, where, result):
        _expect_tuple(self.names, where, result, 2, "(used (M,) bool, time)")
        self.expect(where, "used", result[0], "M", "bool")
        self.expect(where, "the time", result[1], "", "float")

    def commit(self, where, result):
        _expect_tuple(self.names, where, result, 3, "(state, held (U, d), updated (U,) bool)")
        self.expect(where, "held", result[1], "Ud", "float")
        self.expect(where, "updated", result[2], "U", "bool")

    def aggregate(self, where, result):
        _expect_tuple(self.names, where, result, 2, "(aggregate (d,), decoding residual)")
        self.expect(where, "the aggregate", result[0], "d", "run float")
        self.expect(where, "the decoding residual", result[1], "", "float")

    def compress(self, where, result):
        for field, letters, kind in (
            ("values", "Ud", "run float"),
            ("errors", "U", "float"),
            ("bits", "U", "number"),
        ):
            if not hasattr(result, field):
                raise ContractError(
                    f"{self.names.prefix}{where} returned "
                    f"{type(result).__name__} without {field!r}; expected a "
                    "lagc_jax.strategies.compress.Compressed"
                )
            self.expect(where, f"Compressed.{field}", getattr(result, field), letters, kind)

    def acknowledge(self, where, result):
        state_in = self.arguments[0]
        try:
            same = _abstract(result) == _abstract(state_in)
        except TypeError:
            same = False
        if not same:
            raise ContractError(
                f"{self.names.prefix}{where} returned a state of another "
                "structure, shape or dtype than the one it was given (the "
                "compressor's state is part of the scan carry)"
            )


def _abstract_inputs(theta0, sizes):
    dtype = theta0.dtype
    return dict(
        theta=jax.ShapeDtypeStruct(theta0.shape, dtype),
        grads=jax.ShapeDtypeStruct((sizes.P, sizes.d), dtype),
        unit_times=jax.ShapeDtypeStruct((sizes.M,), dtype),
        k=jax.ShapeDtypeStruct((), jnp.int32),
        key=jax.eval_shape(lambda: jax.random.key(0)),
    )


def _a_round(strategy, theta, grads, unit_times, k, key):
    """A Round as the engine builds it (with ``draw``, the unit times by job index)."""

    def draw(jobs):  # X_{jobs[m], m}: the round's times stand in for any job's
        return unit_times * jnp.ones(jnp.shape(jobs), unit_times.dtype)

    return Round(theta, grads, unit_times, k, key, draw)


def _abstract_round(strategy, state, theta0, knobs, sizes, names, composed):
    """Trace one round (nothing runs) and check every piece and the protocol's outputs."""
    state_in = _abstract(state)
    checks = _PieceChecks(names, sizes)

    def one_round(strategy, state, knobs, theta, grads, unit_times, k, key):
        round = _a_round(strategy, theta, grads, unit_times, k, key)
        if composed:
            out = _guarded(names, "Strategy.step", strategy.step_with, state, round, knobs, checks)
            if type(strategy).step is not Strategy.step:  # a subclass adds to the round
                out = _guarded(
                    names, f"{type(strategy).__name__}.step", strategy.step, state, round, knobs
                )
        else:
            out = _guarded(names, names.piece("step"), strategy.step, state, round, knobs)
        _check_step_outputs(strategy, out, state_in, sizes, names, composed)
        return out[0]

    inputs = _abstract_inputs(theta0, sizes)
    _traced(
        names,
        "one round failed to trace",
        jax.eval_shape,
        one_round,
        strategy,
        state,
        knobs,
        *(inputs[k] for k in ("theta", "grads", "unit_times", "k", "key")),
    )


def _abstract(tree):
    """(structure, [(path, shape, dtype)]) of a state, dtypes as jit sees them."""
    flat, structure = jax.tree_util.tree_flatten_with_path(tree)
    leaves = []
    for path, leaf in flat:
        aval = _aval(leaf)
        if aval is None:
            raise TypeError(f"state leaf {jax.tree_util.keystr(path)} is not an array")
        leaves.append((jax.tree_util.keystr(path), aval[0], _canonical(aval[1])))
    return structure, leaves


def _check_step_outputs(strategy, out, state_in, sizes, names, composed):
    where = names.piece("step") if not composed else "Strategy.step"
    _expect_tuple(names, where, out, 3, "(aggregate, state, Stats)")
    aggregate, state, stats = out
    agg_where = names.piece("aggregate") if composed else where
    _expect(names, agg_where, "the aggregate", aggregate, sizes, "d", "run float")
    # the state is a scan carry: same structure, shapes and dtypes as init's
    owner = names.piece("plan") if composed else where
    structure_in, leaves_in = state_in
    try:
        structure_out, leaves_out = _abstract(state)
    except TypeError:
        raise ContractError(
            f"{names.prefix}{owner} returned a state that is not a pytree of arrays"
        ) from None
    if structure_out != structure_in:
        raise ContractError(
            f"{names.prefix}{owner} returned a state of structure "
            f"{structure_out}; init gave {structure_in} (the state is a scan "
            "carry: its structure cannot change)"
        )
    for (path, shape_in, dtype_in), (_, shape_out, dtype_out) in zip(leaves_in, leaves_out):
        if shape_out != shape_in or dtype_out != dtype_in:
            raise ContractError(
                f"{names.prefix}{owner} returned state{path} of shape {shape_out} and dtype "
                f"{_name(dtype_out)}; init gave {shape_in} and {_name(dtype_in)} "
                "(the state is a scan carry: shapes and dtypes cannot change)"
            )
    if not all(hasattr(stats, field) for field in Stats._fields):
        raise ContractError(
            f"{names.prefix}{where} returned {type(stats).__name__} for the "
            "stats; expected lagc_jax.strategies.Stats"
        )
    _expect(
        names,
        names.piece("wait") if composed else where,
        "Stats.duration",
        stats.duration,
        sizes,
        "",
        "float",
    )
    for field in ("uploads", "downloads", "computations"):
        _expect(names, where, f"Stats.{field}", getattr(stats, field), sizes, "", "int32")
    _expect(names, where, "Stats.decoding_residual", stats.decoding_residual, sizes, "", "float")
    mask = _aval(stats.upload_mask)
    if mask is None or len(mask[0]) != 1 or mask[1] != np.bool_:
        got = "nothing" if mask is None else f"shape {mask[0]} dtype {_name(mask[1])}"
        raise ContractError(
            f"{names.prefix}{where} returned {got} for Stats.upload_mask; "
            "expected a 1-D bool array ((U,) units updated or (M,) messages)"
        )
    metrics = stats.metrics if isinstance(stats.metrics, dict) else None
    declared = [
        getattr(metric, "name", metric) for metric in getattr(strategy, "metrics", ()) or ()
    ]
    if metrics is None or set(metrics) != set(declared):  # the engine's own words
        raise ContractError(
            f"{names.prefix}its step reports the metrics "
            f"{sorted(metrics or ()) or 'none'} but it declares {sorted(declared) or 'none'} "
            "(strategy.metrics: a Metric for each name in Stats.metrics)"
        )
    for metric_name in declared:
        value = _aval(metrics[metric_name])
        if value is None or value[0] != ():
            got = "a non-array" if value is None else f"shape {value[0]}"
            raise ContractError(
                f"{names.prefix}{where} reported {got} for the metric "
                f"{metric_name!r}; expected a scalar ()"
            )


def _abstract_delay_independence(strategy, state, theta0, knobs, sizes, names, composed):
    """delay_dependent=False: θ is computed once for all trials, so the aggregate and the
    state must not depend on the unit times or the key, which differ per trial."""
    inputs = _abstract_inputs(theta0, sizes)
    inputs["unit_times"] = jax.ShapeDtypeStruct((2, sizes.M), theta0.dtype)
    inputs["key"] = jax.eval_shape(lambda: jax.random.split(jax.random.key(0), 2))

    def iterates(strategy, state, knobs, theta, grads, k, unit_times, key):
        aggregate, state, _ = strategy.step(
            state, _a_round(strategy, theta, grads, unit_times, k, key), knobs
        )
        return aggregate, state

    batched = jax.vmap(
        iterates, in_axes=(None, None, None, None, None, None, 0, 0), out_axes=(None, None)
    )
    try:
        jax.eval_shape(
            batched,
            strategy,
            state,
            knobs,
            inputs["theta"],
            inputs["grads"],
            inputs["k"],
            inputs["unit_times"],
            inputs["key"],
        )
    except ContractError as error:
        raise ContractError(error.line) from None
    except ValueError as error:
        if "out_axes" not in str(error):
            raise ContractError(
                f"{names.prefix}one round failed under vmap over trials: {_first_line(error)}"
            ) from error
        who = (
            f"its wait rule {_describe(strategy.wait)} says delay_dependent = False"
            if composed
            else "delay_dependent is False"
        )
        remedy = "declare delay_dependent = True"
        compressor = getattr(strategy, "compressor", None) if composed else None
        if compressor is not None:
            who += f" and its compressor {_describe(compressor)} says stochastic = False"
            remedy += " (the wait rule) or stochastic = True (the compressor)"
        raise ContractError(
            f"{names.prefix}{who}, but the aggregate or the state depends on the unit times or "
            "the round's key, which differ between trials (the engine computes θ once for "
            f"all trials); {remedy}"
        ) from None
    except Exception as error:
        raise ContractError(
            f"{names.prefix}one round failed under vmap over trials: {_first_line(error)}"
        ) from error


# --------------------------------------------------------------------------- #
# 3. the wait rule, evaluated
# --------------------------------------------------------------------------- #
@jax.jit
def _apply_wait(wait, arrivals, participating):
    return jax.vmap(wait)(arrivals, participating)


def _random_arrivals(rng, M, dtype):
    """Distinct positive arrival times in random order."""
    return (rng.permutation(M) + 0.5 + 0.4 * rng.random(M)).astype(dtype)


def _heard_units(strategy, used):
    """numpy twin of Strategy._heard_units: (U,) units with a used message."""
    units = strategy.placement.units
    if units == "workers":
        return np.asarray(used, bool)
    if units == "groups":
        heard = np.zeros(strategy.num_units, bool)
        np.logical_or.at(heard, np.asarray(strategy.placement.unit_of_worker), used)
        return heard
    return np.ones(strategy.num_units, bool)


def _check_wait_rule(strategy, sizes, names, dtype, rng):
    M, wait = sizes.M, strategy.wait
    where = names.piece("wait")
    cases = [(_random_arrivals(rng, M, dtype), np.ones(M, bool)) for _ in range(NUM_ARRIVALS)]
    if M > 1:  # one vector with some workers not participating (lazy rounds)
        participating = rng.random(M) < 0.5
        participating[rng.integers(M)] = True
        participating[rng.integers(M)] = False
        cases.append((_random_arrivals(rng, M, dtype), participating))
    all_arrivals = np.stack([a for a, _ in cases])
    all_participating = np.stack([p for _, p in cases])
    with _on_cpu():
        used_all, time_all = _guarded(
            names, where, _apply_wait, wait, all_arrivals, all_participating
        )
    used_all, time_all = np.asarray(used_all), np.asarray(time_all, np.float64)
    heard = []
    for arrivals, participating, used, time in zip(
        all_arrivals, all_participating, used_all, time_all
    ):
        shown = np.array2string(arrivals, precision=3, separator=", ")
        if not np.isfinite(time) or time < 0:
            raise ContractError(
                f"{names.prefix}{where} returned time {time:g} for arrivals "
                f"{shown}; a wait time must be finite and >= 0"
            )
        got = used & participating
        latest = float(np.max(arrivals[got], initial=0.0))
        if time < latest - 1e-6 * (1.0 + latest):
            raise ContractError(
                f"{names.prefix}{where} returned time {time:g}, before the latest message it "
                f"uses arrives ({latest:g}, arrivals {shown}, used {_bits(used)}); a wait "
                "rule cannot proceed before the messages it uses have arrived"
            )
        if participating.all():
            if not got.any() and not getattr(wait, "may_use_no_message", False):
                raise ContractError(
                    f"{names.prefix}{where} uses no message when all {M} workers participate "
                    f"(used {_bits(used)} for arrivals {shown}); the server would update from "
                    "nothing it received"
                )
            heard.append((_heard_units(strategy, used), used, shown))
    if bool(wait.delay_dependent) or not heard:
        return
    for units, used, shown in heard:
        if not np.array_equal(units, heard[0][0]):
            raise ContractError(
                f"{names.prefix}{where} says delay_dependent = False, but the messages it uses "
                f"depend on the arrival times (used {_bits(heard[0][1])} for arrivals "
                f"{heard[0][2]}, {_bits(used)} for {shown}); declare delay_dependent = True"
            )
    units, used, _ = heard[0]
    if not np.array_equal(units, _heard_units(strategy, np.ones(M, bool))):
        raise ContractError(
            f"{names.prefix}{where} says delay_dependent = False, but does not use every "
            f"participating worker's message (used {_bits(used)} with all {M} participating); "
            "a rule that does not depend on the delays must use them all (one per lazy unit "
            "at least); declare delay_dependent = True"
        )


def _bits(mask) -> str:
    return "".join("1" if m else "0" for m in np.asarray(mask).reshape(-1))


# --------------------------------------------------------------------------- #
# 4. nothing undelivered is used
# --------------------------------------------------------------------------- #
class _Recorder:
    """A ``call`` for :meth:`Strategy.step_with` that records the pieces' arguments."""

    def __init__(self):
        self.records = {}

    def __call__(self, role, function, *arguments):
        result = function(*arguments)
        self.records[role] = (arguments, result)
        return result


def _aggregate_from(strategy, plan_state, plan, heard, used, messages, round, compressing):
    """The aggregate of a round whose messages and partition gradients are replaced, the
    trigger's decisions (plan, heard, used) kept and its unit gradients recomputed (and
    compressed again, ``compressing`` = the compressor's (state, key), or None)."""
    fresh = strategy.placement.unit_grads(round, messages)
    if compressing is not None:
        compressor_state, key = compressing
        fresh = strategy.compressor.compress(compressor_state, fresh, key).values
        messages = per_worker(strategy.placement, fresh)
    if hasattr(plan, "_replace"):  # a Plan: recompute the fresh unit gradients
        plan = plan._replace(fresh=fresh)
    _, held, _ = strategy.trigger.commit(plan_state, plan, heard, round.theta)
    aggregate, _ = strategy.aggregate(
        Delivered(messages, held, used, plan.selected, plan.held, round.grads, strategy.placement)
    )
    return aggregate


@jax.jit
def _perturbed_round(strategy, state, knobs, theta, grads, unit_times, k, key, delta, junk):
    """One round; then its aggregate again, with the trigger's and the wait rule's decisions
    kept, the partition gradients changed by ``delta`` and the messages not received
    replaced by ``junk``. Returns (aggregate, changed aggregate, sent, messages, and the
    compressor's Compressed or None)."""
    recorder = _Recorder()
    round = _a_round(strategy, theta, grads, unit_times, k, key)
    strategy.step_with(state, round, knobs, recorder)
    (plan_state, plan, heard, _), _ = recorder.records["commit"]
    _, (used, _) = recorder.records["wait"]
    _, messages = recorder.records["placement"]
    compressing = compressed = None
    if "compress" in recorder.records:
        (compressor_state, _, compress_key), compressed = recorder.records["compress"]
        compressing = (compressor_state, compress_key)
    sent = used & plan.participating & plan.uploads
    base = _aggregate_from(strategy, plan_state, plan, heard, used, messages, round, compressing)
    changed_round = _a_round(strategy, theta, grads + delta, unit_times, k, key)
    changed = _aggregate_from(
        strategy,
        plan_state,
        plan,
        heard,
        used,
        jnp.where(sent[:, None], messages, junk),
        changed_round,
        compressing,
    )
    return base, changed, sent, messages, compressed


def _check_nothing_undelivered_is_used(strategy, theta0, knobs, sizes, names, rng):
    """Evaluate at CONCRETE_DIM coordinates (programs shared across problems' d); if a
    piece cannot run there (it holds a (d,) array, say), at the full d."""
    d = min(sizes.d, CONCRETE_DIM)
    try:
        _perturbation_check(strategy, theta0[:d], knobs, sizes, names, rng)
    except _PieceFailed:
        if d == sizes.d:
            raise
        _perturbation_check(strategy, theta0, knobs, sizes, names, rng)


class _PieceFailed(ContractError):
    """A piece raised while evaluated (perhaps only because of the reduced d)."""


def _perturbation_check(strategy, theta, knobs, sizes, names, rng):
    M, P = sizes.M, sizes.P
    d = theta.shape[0]
    dtype = theta.dtype
    where = names.piece("aggregate")
    rtol = max(1e-6, 1e4 * float(jnp.finfo(dtype).eps))
    with _on_cpu():
        theta = np.asarray(theta)
        try:
            state = strategy.init(theta, _unit_smoothness)
        except Exception as error:
            raise _PieceFailed(
                f"{names.prefix}{names.piece('init')} failed: {_first_line(error)}"
            ) from error
        grads = rng.standard_normal((P, d)).astype(dtype)
        encoding = np.asarray(strategy.placement.encoding, np.float64)
        for _ in range(NUM_ROUNDS):
            unit_times = _random_arrivals(rng, M, dtype)
            junk = rng.standard_normal((M, d)).astype(dtype)
            delta = np.zeros((P, d), dtype)
            # first the messages not received replaced; then also the gradients changed by
            # δ with B[sent] δ = 0 (sent: what the first evaluation says was received)
            for attempt in range(2):
                try:
                    outputs = _perturbed_round(
                        strategy,
                        state,
                        knobs,
                        theta,
                        grads,
                        unit_times,
                        jnp.int32(0),
                        jax.random.key(0),
                        delta,
                        junk,
                    )
                except Exception as error:
                    raise _PieceFailed(
                        f"{names.prefix}one round failed when evaluated: {_first_line(error)}"
                    ) from error
                base, changed, messages = (np.asarray(outputs[i], np.float64) for i in (0, 1, 3))
                sent = np.asarray(outputs[2], bool)
                if outputs[4] is not None:
                    _check_compressed(outputs[4], names)
                # a non-finite aggregate (a decoding that cannot decode the set used: the
                # engine reports its residual) counts only where it changed
                finite = np.isfinite(base) & np.isfinite(changed)
                scale = (
                    np.max(np.abs(base[finite]), initial=0.0)
                    + np.max(np.abs(changed[finite]), initial=0.0)
                    + P
                    * max(
                        np.max(np.abs(grads)),
                        np.max(np.abs(delta), initial=0.0),
                        np.max(np.abs(messages[np.isfinite(messages)]), initial=0.0),
                        1.0,
                    )
                )
                difference = float(np.max(np.abs(changed - base)[finite], initial=0.0))
                if not np.array_equal(np.isfinite(base), np.isfinite(changed)):
                    difference = np.inf
                if not difference <= rtol * scale:
                    changes = (
                        "the messages not received"
                        if attempt == 0
                        else "the messages not received and the gradients no received "
                        "message depends on"
                    )
                    raise ContractError(
                        f"{names.prefix}{where} uses what the server did not receive: its "
                        f"aggregate changed by {difference:.3g} (tolerance {rtol * scale:.3g}) "
                        f"when only {changes} were changed (sent: {_bits(sent)}); an "
                        "aggregator may only read the messages used (Delivered.used) and the "
                        "held values of the units heard"
                    )
                delta = _null_space_perturbation(encoding, sent, (P, d), rng).astype(dtype)


def _check_compressed(compressed, names):
    """A compressor's evaluated outputs: finite values and errors ≥ 0, bits finite ≥ 0."""
    where = names.piece("compress")
    values, errors, bits = (np.asarray(a, np.float64) for a in compressed)
    if not np.all(np.isfinite(values)):
        raise ContractError(
            f"{names.prefix}{where} returned non-finite values for finite gradients"
        )
    for what, array in (("errors", errors), ("bits", bits)):
        if not np.all(np.isfinite(array) & (array >= 0)):
            raise ContractError(
                f"{names.prefix}{where} returned {what} "
                f"{np.array2string(array, precision=3, separator=', ')}; "
                f"{what} must be finite and >= 0 (one per message)"
            )


def _null_space_perturbation(encoding, sent, shape, rng):
    """Random δ (P, d) with B[sent] δ = 0: invisible to every message received."""
    noise = rng.standard_normal(shape)
    rows = encoding[sent]
    if rows.size:
        noise = noise - np.linalg.pinv(rows) @ (rows @ noise)
    return noise


def _unit_smoothness(mask):
    """L_u = 1 for any union: round 0 does not read it (every lazy unit is forced)."""
    return 1.0


@contextlib.contextmanager
def _on_cpu():
    """Evaluate the small concrete checks on the host (no accelerator compile or sync)."""
    try:
        cpu = jax.local_devices(backend="cpu")[0]
    except RuntimeError:
        yield
        return
    with jax.default_device(cpu):
        yield


def _shapes_key(strategy, theta0, num_partitions, knobs):
    """A hashable key of what the traced checks depend on (structure, shapes, dtypes), or
    None: a sweep's points of one structure are traced once."""
    try:
        leaves, structure = jax.tree_util.tree_flatten((strategy, knobs))
        avals = []
        for leaf in leaves:
            aval = _aval(leaf)
            if aval is None or isinstance(leaf, jax.core.Tracer):
                return None
            avals.append(aval)
        key = (
            structure,
            tuple(avals),
            tuple(theta0.shape),
            np.dtype(theta0.dtype).str,
            int(num_partitions),
        )
        hash(key)
        return key
    except Exception:  # unhashable static metadata: trace every time
        return None


def _fingerprint(strategy, theta0, num_partitions, knobs, dtype, options):
    """A hashable key of everything the checks depend on, or None (not remembered)."""
    try:
        leaves, structure = jax.tree_util.tree_flatten((strategy, knobs))
        digest = hashlib.blake2b(digest_size=16)
        for leaf in [*leaves, theta0]:
            if isinstance(leaf, jax.core.Tracer):
                return None
            array = np.asarray(leaf)
            digest.update(f"{array.shape}{array.dtype.str}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        key = (structure, np.dtype(dtype).str, int(num_partitions), options, digest.hexdigest())
        hash(key)
        return key
    except Exception:  # unhashable static metadata, odd leaves: check every time
        return None
