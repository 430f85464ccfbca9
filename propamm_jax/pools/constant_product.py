"""The constant-product curve (x * y = k, fee on the input), and fixed-fee pools on it.

`ConstantProductCurve` is the curve half of a family with every closed form the solvers use:
inherit it and write only a fee policy (`ConstantProduct` below, `DynamicFee`). The math
lives in `propamm_jax.fast.solvers` (pure functions, no engine), shared with the normalizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax.numpy as jnp
from jax import lax

from propamm_jax.pools.base import ROUTER_STEP, Arbitrage, EpochObs, FeeView, TradeObs
from propamm_jax.fast import solvers as cf


def _sides(is_buy, rx, ry):
    """(input reserve, output reserve) of a trade: Y in and X out when the trader buys X."""
    return jnp.where(is_buy, ry, rx), jnp.where(is_buy, rx, ry)


class ConstantProductCurve:
    """x * y = k with the fee taken from the input. Ignores `params` (no curve parameters):
    `parameter_free`, so that the engine evaluates every pool on it, the normalizer
    included, in one call on arrays stacked over pools, and uses the group closed forms."""

    parameter_free = True

    def spot(self, params, rx, ry):
        return ry / rx

    def amount_out(self, params, rx, ry, is_buy, effective_in):
        r_in, r_out = _sides(is_buy, rx, ry)
        return r_out * effective_in / (r_in + effective_in)

    def arbitrage(self, params, rx, ry, fair, gamma_buy, gamma_sell) -> Arbitrage:
        return Arbitrage(*cf.optimal_arbitrage(rx, ry, fair, gamma_buy, gamma_sell))

    def demand(self, params, rx, ry, is_buy, gamma, shadow):
        r_in, r_out = _sides(is_buy, rx, ry)
        x, _ = cf.fd_allocation(lax.rsqrt(shadow), r_in, r_out, gamma, *ROUTER_STEP)
        return x

    def route(self, total, rx, ry, is_buy, gamma):
        r_in, r_out = _sides(is_buy, rx, ry)
        return cf.reference_router_split(total, r_in, r_out, gamma, *ROUTER_STEP)

    def reference_route(self, total, rx, ry, is_buy, gamma):
        r_in, r_out = _sides(is_buy, rx, ry)
        return cf.published_split(total, r_in, r_out, gamma, jnp.floor(ry / rx), ~is_buy)


class CPParams(NamedTuple):
    """Fees in bps for a trader buying X (Y in) and selling X (X in)."""

    fee_buy_bps: jnp.ndarray
    fee_sell_bps: jnp.ndarray


@dataclass(frozen=True)
class ConstantProduct(ConstantProductCurve):
    """A fixed fee on each side; the same pool as a `fixed_NNbps.rs` submission."""

    def params(self, fee_bps: float, fee_sell_bps: float | None = None) -> CPParams:
        sell = fee_bps if fee_sell_bps is None else fee_sell_bps
        return CPParams(jnp.asarray(fee_bps, jnp.float64), jnp.asarray(sell, jnp.float64))

    def init_state(self, params: CPParams) -> tuple:
        return ()

    def fees(self, params: CPParams, state, view: FeeView):
        return params.fee_buy_bps / 10_000.0, params.fee_sell_bps / 10_000.0

    def on_trade(self, params: CPParams, state, obs: TradeObs):
        return state

    def on_epoch(self, params: CPParams, state, obs: EpochObs):
        return state
