"""What a pool family provides, and what the fast engine shows it.

A family is one file: a frozen dataclass (static configuration only, hashable, so that it can
be a static argument of `jit`) with two halves.

- Its **fee policy**: `init_state`, `fees`, `on_trade`, `on_epoch`. `params` and `state` are
  pytrees passed in and returned; nothing is kept in `self`.
- Its **curve**: `spot` and `amount_out` at least. The solvers use the family's closed forms
  `arbitrage` and `demand` where it has them, and otherwise the generic differentiable ones of
  `propamm_jax.fast.solvers` (Newton with implicit differentiation), which need only
  `amount_out`. `ConstantProductCurve` (`pools/constant_product.py`) is the constant-product
  curve with every closed form, to inherit.

Every method sees ONE simulation: the engine vmaps it over its batch. Amounts are unscaled
floats (1.0 = one unit of X or Y, not 1e9 nano-units); reserves are the pool's real reserves.
The observations mirror the reference's after-swap (tag 2) and epoch-boundary (tag 5)
payloads field by field, so a policy sees what a compiled strategy would see (plus, in
`FeeView`, what an oracle family may use: the step's true fair price).

This module imports no engine: the engine imports it.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

import jax.numpy as jnp
import numpy as np

# The published router compares forward-difference marginals (out(x + d) - out(x)) / d with
# d = ROUTER_STEP[0] * x + ROUTER_STEP[1], not derivatives; `demand` is measured the same way.
ROUTER_STEP = (0.001, 0.001)
MAX_IN_FRAC = 0.9  # no trade takes more than this fraction of the input-side reserve


class TradeObs(NamedTuple):
    """The after-swap payload (tag 2) in float units; `active` is False (or, in a smoothed
    engine, a weight below 1) where the pool did not trade."""

    active: jnp.ndarray
    is_buy: jnp.ndarray            # the trader bought X (paid Y)
    amount_in: jnp.ndarray
    amount_out: jnp.ndarray
    reserve_x: jnp.ndarray         # after the trade
    reserve_y: jnp.ndarray
    step: jnp.ndarray
    epoch_step: jnp.ndarray
    epoch_number: jnp.ndarray
    flow: jnp.ndarray              # share of the retail order this pool took; 0 for arbitrage
    capital_weight: jnp.ndarray
    competitor_prices: jnp.ndarray  # [8], NaN where unused (order: `fast.step.competitors`)


class EpochObs(NamedTuple):
    """The epoch-boundary payload (tag 5) in float units, after the rebalance."""

    active: jnp.ndarray
    epoch_number: jnp.ndarray
    reserve_x: jnp.ndarray
    reserve_y: jnp.ndarray
    epoch_edge: jnp.ndarray
    cumulative_edge: jnp.ndarray
    capital_weight: jnp.ndarray


class FeeView(NamedTuple):
    """What `fees` sees besides the pool's params and state, at the moment it quotes.

    `fair` is the step's TRUE fair price, which no compiled strategy can see: it is here for
    oracle families (an upper bound on what a fee policy can earn). Ordinary families must
    ignore it, or their fast-path edges stop matching the official score of their export."""

    fair: jnp.ndarray
    reserve_x: jnp.ndarray
    reserve_y: jnp.ndarray
    step: jnp.ndarray


class Arbitrage(NamedTuple):
    """The profit-maximising arbitrage against one pool at the fair price."""

    is_buy: jnp.ndarray      # the arbitrageur buys X (pays Y)
    amount_in: jnp.ndarray   # before fee, capped at MAX_IN_FRAC of the input reserve
    amount_out: jnp.ndarray
    profit: jnp.ndarray      # in Y


@runtime_checkable
class FeePolicy(Protocol):
    """The fee half of a family. `Any` stands for a family-specific pytree."""

    def init_state(self, params: Any) -> Any:
        """State at the start of a simulation (features reset)."""

    def fees(self, params: Any, state: Any, view: FeeView) -> tuple[Any, Any]:
        """(buy, sell) fee fractions: for a trader buying X (Y in), selling X (X in)."""

    def on_trade(self, params: Any, state: Any, obs: TradeObs) -> Any:
        """State after an own trade (unchanged where `obs.active` is False)."""

    def on_epoch(self, params: Any, state: Any, obs: EpochObs) -> Any:
        """State after an epoch boundary (unchanged where `obs.active` is False)."""


@runtime_checkable
class Curve(Protocol):
    """The curve half of a family: how reserves price a trade (fee already taken out)."""

    def spot(self, params: Any, rx, ry):
        """Marginal price of X in Y at zero size, before fees."""

    def amount_out(self, params: Any, rx, ry, is_buy, effective_in):
        """Output for an input after fee (`(1 - fee) * amount_in`): X out for Y in where
        `is_buy`, Y out for X in otherwise. Differentiable, increasing and concave."""

    # Optional closed forms (the generic solvers stand in where a family lacks one):
    #   arbitrage(params, rx, ry, fair, gamma_buy, gamma_sell) -> Arbitrage
    #   demand(params, rx, ry, is_buy, gamma, shadow) -> amount_in (before fee) at which the
    #       router's forward-difference marginal output (ROUTER_STEP) equals the shadow
    #       price `shadow`, clipped to [0, MAX_IN_FRAC * input reserve]
    # A curve whose methods never read `params` may declare `parameter_free = True`; when
    # every pool of a simulation (the normalizer included) has the same parameter-free
    # curve, the engine calls its methods once on arrays stacked over pools
    # ([pools, sims], params None), and uses its two group closed forms:
    #   route(total, rx, ry, is_buy, gamma) -> inputs: the corrected router's split
    #   reference_route(total, rx, ry, is_buy, gamma) -> inputs: what the published
    #       solvers amount to (`reference` profile; a family without it cannot run there)


class Pool(FeePolicy, Curve, Protocol):
    """A pool family: a fee policy on a curve (both halves above)."""


def has_closed_form(pool: Any, name: str) -> bool:
    """Whether a pool's family supplies the optional closed form `name`."""
    return callable(getattr(pool, name, None))


class NamedVector:
    """The parameter vector training searches, for a family whose params are a NamedTuple of
    scalars (`param_type`, in field order). Mixed into the family's pool class."""

    param_type: ClassVar[type]

    def size(self) -> int:
        return len(self.param_type._fields)

    def vector_names(self) -> list[str]:
        return list(self.param_type._fields)

    def unflatten(self, vec):
        """[..., size] (NumPy or JAX) -> params of [...] arrays."""
        return self.param_type(*(vec[..., i] for i in range(self.size())))

    def flatten(self, params) -> np.ndarray:
        """params or {name: value} -> the f64 vector."""
        get = params.get if isinstance(params, dict) else (lambda k: getattr(params, k))
        return np.array([float(get(k)) for k in self.param_type._fields])

    def params(self, **values: float):
        """The params from scalars by name (missing ones 0); an unknown name is an error."""
        from propamm_jax.errors import PropammError

        names = self.param_type._fields
        unknown = set(values) - set(names)
        if unknown:
            raise PropammError(f"{type(self).__name__}: unknown parameter {sorted(unknown)[0]!r}")
        return self.param_type(*(jnp.asarray(float(values.get(k, 0.0))) for k in names))

    def initial(self, init: dict, seed: int) -> np.ndarray:
        """The search's starting point: `init` by name, the rest 0 (`seed` is not needed)."""
        return self.start(init, {})

    def start(self, init: dict, defaults: dict) -> np.ndarray:
        """The search's starting point: `init` by name, else `defaults`, else 0."""
        from propamm_jax.errors import PropammError

        names = self.param_type._fields
        unknown = set(init) - set(names)
        if unknown:
            raise PropammError(f"--init: unknown parameter {sorted(unknown)[0]!r} "
                               f"(choose from {', '.join(names)})")
        values = {**defaults, **init}
        return np.array([float(values.get(k, 0.0)) for k in names])
