"""The standard strategy: placement × trigger × wait rule × aggregator (× compressor).

One round (MODEL.md §3–6): workers compute their coded messages, the trigger
decides who computes and who uploads, messages arrive over the link, the wait
rule picks the messages the server uses, the trigger commits what the server now
holds, and the aggregator forms the gradient estimate. With a compressor (MODEL.md
§9) the messages are compressed before the trigger decides, each upload occupies the
link for its size in bits, and the strategy reports ``bits_up``.

>>> import jax.numpy as jnp
>>> from lagc_jax.strategies import FirstK, NoTrigger, Decode, placement
>>> s = Strategy(placement.cyclic(4, 1), NoTrigger(), FirstK(3),
...              Decode.for_code(placement.cyclic(4, 1).encoding, 1), name="my-gc")
>>> s.num_workers, s.delay_dependent
(4, True)
"""

from __future__ import annotations

from functools import partial

import jax.numpy as jnp
import numpy as np

from .aggregate import Delivered
from .compress import check_composition, per_worker
from .lazy import NoTrigger
from .placement import Placement
from .protocol import Metric, Stats, pytree_dataclass, static


def _call(role, function, *arguments):
    """How :meth:`Strategy.step` calls its pieces: directly."""
    return function(*arguments)


@pytree_dataclass
class Strategy:
    """A strategy composed of four pieces (each a pytree; see the submodules).

    Attributes:
      placement: :class:`~lagc_jax.strategies.placement.Placement` (B and lazy units).
      trigger: ``NoTrigger``, ``WorkerTrigger`` or ``ServerTrigger`` (or your own).
      wait: a wait rule ``(arrivals, participating) -> (used, time)`` with ``delay_dependent``.
      aggregate: ``Sum``, ``ScaledSum``, ``Decode``, ``DecodeFreshStale`` (or your own).
      name: registry name (static).
      stragglers: S, the stragglers the placement tolerates (static; informational).
      compressor: None (full-precision messages), or a compressor applied to every
        message before upload (:mod:`~lagc_jax.strategies.compress`).
    """

    placement: Placement
    trigger: object = NoTrigger()
    wait: object = None
    aggregate: object = None
    name: str = static(default="custom")
    stragglers: int = static(default=0)
    compressor: object = None

    # -- the protocol's attributes
    @property
    def num_workers(self) -> int:
        return self.placement.num_workers

    @property
    def num_partitions(self) -> int:
        return self.placement.num_partitions

    @property
    def delay_dependent(self) -> bool:
        """Whether the iterates depend on the delays (the wait rule says so) or differ
        between trials otherwise (a stochastic compressor draws from each trial's key)."""
        return bool(self.wait.delay_dependent) or bool(
            getattr(self.compressor, "stochastic", False)
        )

    @property
    def metrics(self) -> tuple:
        """``bits_up`` when a compressor sets the size of the messages (MODEL.md §9)."""
        return () if self.compressor is None else (Metric("bits_up", "sum"),)

    @property
    def xi(self):
        return None if not self.is_lazy else float(self.trigger.xi)

    # -- conveniences
    @property
    def is_lazy(self) -> bool:
        return bool(getattr(self.trigger, "is_lazy", False))

    @property
    def encoding(self) -> np.ndarray:
        return np.asarray(self.placement.encoding)

    @property
    def num_units(self) -> int:
        return self.placement.num_units

    @property
    def history(self):
        return getattr(self.trigger, "history", None)

    @property
    def start(self):
        return getattr(self.trigger, "start", None)

    # -- the protocol's functions
    def validate(self, *, dtype, link):
        """Raise ValueError for a run this strategy cannot simulate faithfully (each piece
        with a ``validate(strategy, dtype=, link=)`` hook is asked, before compiling; a
        compressor must suit the composition: :func:`~.compress.check_composition`)."""
        if self.compressor is not None:
            check_composition(self)
        for piece in (self.placement, self.trigger, self.wait, self.aggregate, self.compressor):
            check = getattr(piece, "validate", None)
            if check is not None:
                check(self, dtype=dtype, link=link)

    def init(self, theta0, union_smoothness):
        """Initial per-trial state: the trigger's (and the compressor's, in a pair)."""
        state = self.trigger.init(self.placement, theta0, union_smoothness)
        if self.compressor is None:
            return state
        return state, self.compressor.init(self.placement, theta0)

    def step(self, state, round, knobs):
        """One round: (aggregated gradient ĝ^k (d,), new state, Stats)."""
        return self.step_with(state, round, knobs, _call)

    def step_with(self, state, round, knobs, call):
        """:meth:`step`, calling each piece through ``call(role, function, *arguments)``
        (roles: "placement", "compress", "plan", "wait", "commit", "acknowledge",
        "aggregate"). :meth:`step` calls them directly;
        :func:`lagc_jax.strategies.contracts.check_strategy` checks and records what each
        piece returns, tracing exactly this round."""
        dtype = round.grads.dtype
        placement, trigger, compressor = self.placement, self.trigger, self.compressor
        messages = call("placement", placement.round_messages, round)  # (M, d) coded gradients
        if compressor is None:
            plan, state = call("plan", trigger.plan, state, placement, round, messages, knobs)
            arrivals = knobs.link.arrivals(
                plan.loads * round.unit_times, plan.uploads & plan.participating
            )
        else:
            state, compressor_state = state
            compressed = call(
                "compress",
                compressor.compress,
                compressor_state,
                placement.unit_grads(round, messages),
                round.key,
            )
            plan, state = call(
                "plan",
                partial(trigger.plan, compressed=compressed),
                state,
                placement,
                round,
                messages,
                knobs,
            )
            messages = per_worker(placement, compressed.values)  # what each worker uploads
            bits = per_worker(placement, compressed.bits)
            arrivals = knobs.link.arrivals(
                plan.loads * round.unit_times,
                plan.uploads & plan.participating,
                bits=bits,
                dim=round.theta.shape[0],
            )
        used, wait_time = call("wait", self.wait, arrivals, plan.participating)
        sent = used & plan.participating & plan.uploads  # gradient vectors the server used
        # Which units reached the server: stated by the wait rule, not derived from
        # `used`, where it cannot drop a message (so iterates stay delay-independent).
        heard = self._heard_units(used) if self.wait.delay_dependent else None
        state, held, updated = call("commit", trigger.commit, state, plan, heard, round.theta)
        metrics = {}
        if compressor is not None:
            compressor_state = call(
                "acknowledge", compressor.acknowledge, compressor_state, compressed, updated
            )
            state = (state, compressor_state)
            metrics = {"bits_up": jnp.sum(jnp.where(sent, bits, 0))}
        aggregate, residual = call(
            "aggregate",
            self.aggregate,
            Delivered(messages, held, used, plan.selected, plan.held, round.grads, placement),
        )
        # A wait rule cannot run the clock backwards: a negative (or NaN) wait time makes
        # the round's duration NaN, which the engine reports as a non-finite wall clock
        # (check_strategy names the wait rule before compiling).
        duration = jnp.where(wait_time >= 0, knobs.broadcast_time + wait_time, jnp.nan)
        stats = Stats(
            duration=duration,
            uploads=jnp.sum(sent, dtype=jnp.int32),
            downloads=jnp.sum(plan.participating, dtype=jnp.int32),
            computations=jnp.sum(plan.loads).astype(jnp.int32),
            upload_mask=updated if self.is_lazy else sent,
            decoding_residual=residual.astype(dtype),
            metrics=metrics,
        )
        return aggregate, state, stats

    def _heard_units(self, used):
        """(U,) bool: units with a used message (units are what the worker messages carry)."""
        if self.placement.units == "workers":
            return used
        if self.placement.units == "groups":
            groups = np.asarray(self.placement.unit_of_worker)
            return jnp.zeros((self.num_units,), bool).at[groups].max(used)
        return jnp.ones((self.num_units,), bool)  # partitions: decoded, never dropped
