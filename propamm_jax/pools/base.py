"""What every pool class provides, and the observations the engine hands to pools.

Pools are stateless: a pool object holds only static configuration (hashable, so it can be a
static argument of `jit`); its `params` and `state` pytrees are passed in and returned. The
observations mirror the reference's after-swap and epoch-boundary payloads field by field,
so a parametric policy sees what a compiled strategy would see.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax.numpy as jnp


class TradeObs(NamedTuple):
    """The after-swap payload (tag 2) as arrays; `active` is False when no trade happened."""

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
    """The epoch-boundary payload (tag 5) as arrays."""

    active: jnp.ndarray
    epoch_number: jnp.ndarray    # u32
    reserve_x: jnp.ndarray       # u64, after the rescale
    reserve_y: jnp.ndarray
    epoch_edge: jnp.ndarray      # f64
    cumulative_edge: jnp.ndarray  # f64
    capital_weight: jnp.ndarray  # f32


class Pool(Protocol):
    """The interface the engines use. `Any` stands for a pool-specific pytree."""

    def init_state(self, params: Any) -> Any:
        """State at the start of a simulation (storage zeroed, features reset)."""

    def quote(self, params: Any, state: Any, is_buy, amount, reserve_x, reserve_y):
        """Exact u64 output for a u64 input, as a compiled strategy would return it."""

    def on_trade(self, params: Any, state: Any, obs: TradeObs) -> Any:
        """State after an own trade (only where `obs.active`)."""

    def on_epoch(self, params: Any, state: Any, obs: EpochObs) -> Any:
        """State after an epoch boundary (only where `obs.active`)."""
