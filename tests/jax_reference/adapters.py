"""A package pool (float interface) as a pool of the integer reference-solver engine.

The engine asks for `quote(params, state, is_buy, amount_u64, rx_u64, ry_u64) -> u64` and
tells pools `on_trade` / `on_epoch` with the integer payloads of `obs`. The adapter quotes
as a compiled submission of the family would (constant product: the u128 quote of
`fixed_NNbps.rs`; any other fee policy: its fee fractions in parts per million on the same
curve) and converts the payloads to the float observations the family reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp

from jax_reference.obs import EpochObs, TradeObs
from jax_reference.u64 import cpamm_quote, mul_div_floor
from propamm_jax.pools import base
from propamm_jax.pools.constant_product import ConstantProduct

SCALE = 1e9


def integer_pool(pool: Any) -> "IntegerPool":
    """`pool` with the integer interface (a `NativePool` is returned as it is)."""
    return pool if hasattr(pool, "library") else IntegerPool(pool)


def _view(state) -> base.FeeView:
    """A fee view without the fair price: the integer engine quotes blind, as strategies do."""
    nan = jnp.float64(jnp.nan)
    return base.FeeView(nan, nan, nan, jnp.int32(0))


@dataclass(frozen=True)
class IntegerPool:
    pool: Any

    def init_state(self, params):
        return self.pool.init_state(params)

    def quote(self, params, state, is_buy, amount, reserve_x, reserve_y):
        r_in = jnp.where(is_buy, reserve_y, reserve_x)
        r_out = jnp.where(is_buy, reserve_x, reserve_y)
        if isinstance(self.pool, ConstantProduct):
            fee = jnp.where(is_buy, params.fee_buy_bps, params.fee_sell_bps)
            return cpamm_quote(amount, r_in, r_out, jnp.round(fee).astype(jnp.uint64))
        fee_buy, fee_sell = self.pool.fees(params, state, _view(state))
        gamma_ppm = jnp.floor((1.0 - jnp.where(is_buy, fee_buy, fee_sell)) * 1e6).astype(jnp.uint64)
        amount = jnp.asarray(amount, jnp.uint64)
        eff = mul_div_floor(amount, gamma_ppm, jnp.uint64(1_000_000))
        zero = (amount == 0) | (r_in == 0) | (r_out == 0)
        return jnp.where(zero, jnp.uint64(0), mul_div_floor(r_out, eff, r_in + eff))

    def on_trade(self, params, state, obs: TradeObs):
        f = jnp.float64
        return self.pool.on_trade(params, state, base.TradeObs(
            active=obs.active, is_buy=obs.is_buy,
            amount_in=obs.input_amount.astype(f) / SCALE,
            amount_out=obs.output_amount.astype(f) / SCALE,
            reserve_x=obs.reserve_x.astype(f) / SCALE, reserve_y=obs.reserve_y.astype(f) / SCALE,
            step=obs.sim_step.astype(f), epoch_step=obs.epoch_step.astype(f),
            epoch_number=obs.epoch_number.astype(f), flow=obs.flow_captured.astype(f),
            capital_weight=obs.capital_weight.astype(f),
            competitor_prices=obs.competitor_prices.astype(f)))

    def on_epoch(self, params, state, obs: EpochObs):
        f = jnp.float64
        return self.pool.on_epoch(params, state, base.EpochObs(
            active=obs.active, epoch_number=obs.epoch_number.astype(f),
            reserve_x=obs.reserve_x.astype(f) / SCALE, reserve_y=obs.reserve_y.astype(f) / SCALE,
            epoch_edge=obs.epoch_edge, cumulative_edge=obs.cumulative_edge,
            capital_weight=obs.capital_weight.astype(f)))
