"""The fast engine's typed pytrees: what a step reads (`Event`, `Market`) and keeps (`State`).

Simulations sit on the LAST axis of every array (`rx`: [pools + 1, sims]; an unbatched
simulation simply has no such axis), so each operation of a step is one contiguous vector
over simulations. Measured against `jax.vmap` of the unbatched step (which puts the batch
first and leaves XLA many (pools + 1)-element rows): 2 000 simulations x 3 000 steps of
cpamm:30 + cpamm:65, f64, corrected, one CPU device: see `tests/test_step.py` and the
README (`fast.step` docstring) for the figure; it was ~2x in favour of the last axis.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

FIRST, ORDER, LAST, BUY = 1, 2, 4, 8  # bits of `Event.flags`


class Event(NamedTuple):
    """One event of every simulation of a batch (arrays over simulations); a scanned sequence
    (`Packed`) has a leading event axis. One event per retail order, or one per step without
    orders; the first event of a step also moves the price and runs the arbitrage, the last
    one may close the epoch. 19-21 bytes an event.

    `price` is the step's GBM factor on its first event and 1.0 on the others: the step
    multiplies it into `State.fair`, the same products in the same order as
    `Tape.fair_prices` (x * 1.0 is exact), so the host never builds a price path."""

    step: jnp.ndarray    # int16 (int32 past 32 767 steps)
    flags: jnp.ndarray   # uint8: FIRST | ORDER | LAST | BUY
    size: jnp.ndarray    # retail order size in Y (0 without an order)
    price: jnp.ndarray   # GBM factor (see above)


Packed = Event  # [events, sims]: what `lax.scan` runs over


class Market(NamedTuple):
    """Per-simulation inputs besides the events: the normalizer's fee and liquidity."""

    norm_fee: jnp.ndarray              # fraction (bps / 10 000)
    norm_liquidity_mult: jnp.ndarray


class State(NamedTuple):
    """Per-simulation engine state; pool axis first, the normalizer last (index N)."""

    rx: jnp.ndarray               # [N+1] real reserves, in units
    ry: jnp.ndarray
    cumulative_edge: jnp.ndarray  # [N+1] closed epochs only (`close` adds the open one)
    epoch_edge: jnp.ndarray       # [N+1] the open epoch
    epoch_trades: jnp.ndarray     # [N+1]
    capital_weight: jnp.ndarray   # [N]
    pool_states: tuple            # each pool's own pytree
    log_edge: jnp.ndarray         # [N, epochs] per closed epoch
    log_trades: jnp.ndarray
    log_score: jnp.ndarray
    n_epochs: jnp.ndarray         # epochs closed so far
    fair: jnp.ndarray             # the current step's fair price
    step: jnp.ndarray             # the current step


def close(state: State) -> State:
    """The state as results report it: the open epoch's edge added to `cumulative_edge`."""
    return state._replace(cumulative_edge=state.cumulative_edge + state.epoch_edge)
