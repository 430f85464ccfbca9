"""Constant-product pools with fees on the input: fixed-fee strategies and the normalizer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax.numpy as jnp

from propamm_jax.pools.base import EpochObs, TradeObs
from propamm_jax.u64 import cpamm_quote


class CPParams(NamedTuple):
    """Fees in bps for a trader buying X (Y in) and selling X (X in)."""

    fee_buy_bps: jnp.ndarray
    fee_sell_bps: jnp.ndarray


@dataclass(frozen=True)
class ConstantProduct:
    """x*y=k with an input fee; the same quote as a `fixed_NNbps.rs` submission."""

    def params(self, fee_bps: float, fee_sell_bps: float | None = None) -> CPParams:
        sell = fee_bps if fee_sell_bps is None else fee_sell_bps
        return CPParams(jnp.asarray(fee_bps, jnp.float64), jnp.asarray(sell, jnp.float64))

    def init_state(self, params: CPParams) -> tuple:
        return ()

    def fees(self, params: CPParams, state) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Fee fractions (buy, sell) for the closed-form solvers."""
        return params.fee_buy_bps / 10_000.0, params.fee_sell_bps / 10_000.0

    def quote(self, params: CPParams, state, is_buy, amount, reserve_x, reserve_y):
        fee = jnp.where(is_buy, params.fee_buy_bps, params.fee_sell_bps)
        fee_u = jnp.round(fee).astype(jnp.uint64)
        r_in = jnp.where(is_buy, reserve_y, reserve_x)
        r_out = jnp.where(is_buy, reserve_x, reserve_y)
        return cpamm_quote(amount, r_in, r_out, fee_u)

    def on_trade(self, params: CPParams, state, obs: TradeObs):
        return state

    def on_epoch(self, params: CPParams, state, obs: EpochObs):
        return state

    def fast_on_trade(self, params: CPParams, state, obs):
        return state

    def fast_on_epoch(self, params: CPParams, state, obs):
        return state
