"""The integer payloads the reference-solver engine hands to pools (u64 amounts, as the
native core's after-swap (tag 2) and epoch-boundary (tag 5) payloads carry them)."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp


class TradeObs(NamedTuple):
    """The after-swap payload as arrays; `active` is False when no trade happened."""

    active: jnp.ndarray
    is_buy: jnp.ndarray          # trader buys X (pays Y)
    input_amount: jnp.ndarray    # u64
    output_amount: jnp.ndarray   # u64
    reserve_x: jnp.ndarray       # u64, post-trade
    reserve_y: jnp.ndarray       # u64
    sim_step: jnp.ndarray        # u64
    epoch_step: jnp.ndarray      # u32
    epoch_number: jnp.ndarray    # u32
    n_strategies: jnp.ndarray    # u8
    strategy_index: jnp.ndarray  # u8
    flow_captured: jnp.ndarray   # f32
    capital_weight: jnp.ndarray  # f32
    competitor_prices: jnp.ndarray  # f32[8], NaN where unused


class EpochObs(NamedTuple):
    """The epoch-boundary payload as arrays."""

    active: jnp.ndarray
    epoch_number: jnp.ndarray    # u32
    reserve_x: jnp.ndarray       # u64, after the rescale
    reserve_y: jnp.ndarray
    epoch_edge: jnp.ndarray      # f64
    cumulative_edge: jnp.ndarray  # f64
    capital_weight: jnp.ndarray  # f32
