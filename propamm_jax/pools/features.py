"""The features a fee policy can build from its own after-swap and epoch payloads.

Written once, used by every feature-driven family (`dynamic_fee`, `mlp`), and mirrored by the
Rust the exports share (`training/rust_features.py`, same slots, same formulas):

- `vol`: EMA of the absolute log-change of the pool's spot between its own trades;
- `flow`: EMA of the share of retail flow it captured;
- `weight`: its capital weight; `epoch_progress`: progress through the epoch;
- `gap`: the relative gap between its spot and the competitors' mean spot;
- `skew`: log of reserve_x against its value at the last rebalance;
- `fair`: the fair price the last arbitrage revealed. An arbitrage is the only trade whose
  payload says `flow == 0`, and it stops where the marginal price meets the fair price:
  spot / (1 - fee_buy) after the arbitrageur bought X, spot * (1 - fee_sell) after it sold.
  `deviation(state) = log(spot / fair)` is then how far retail trades have moved the spot
  since. Reading it needs the fees the trade was quoted at, so a family that tracks features
  (`FeatureTracking`) supplies `fees(params, state, view)`.

An oracle family (`oracle=True`) sees the step's true fair price through the fee view instead
of the estimate: `oracle_deviation(view)`. No submission can see it, so it never exports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from propamm_jax.pools.base import EpochObs, FeeView, TradeObs


class FeatureState(NamedTuple):
    last_spot: jnp.ndarray
    vol: jnp.ndarray
    flow: jnp.ndarray
    weight: jnp.ndarray
    epoch_progress: jnp.ndarray
    gap: jnp.ndarray
    ref_rx: jnp.ndarray
    skew: jnp.ndarray
    fair: jnp.ndarray  # the fair price the last arbitrage revealed (0: none yet)


# The policy inputs, in order, each scaled to order one (what `inputs` returns).
INPUT_NAMES = ("vol", "flow", "weight", "epoch", "gap", "skew", "dev")


def deviation(state: FeatureState):
    """log(spot / fair price revealed by the last arbitrage); 0 before the first one."""
    known = (state.fair > 0.0) & (state.last_spot > 0.0)
    return jnp.where(known, jnp.log(jnp.where(known, state.last_spot, 1.0)
                                    / jnp.where(known, state.fair, 1.0)), 0.0)


def oracle_deviation(view):
    """log(spot / TRUE fair price) at the moment of the quote: what `deviation` estimates."""
    return jnp.log((view.reserve_y / view.reserve_x) / view.fair)


def inputs(state: FeatureState, dev) -> tuple:
    """The policy inputs (INPUT_NAMES): vol and gap x 100, the deviation `dev` x 100."""
    return (100.0 * state.vol, state.flow, state.weight, state.epoch_progress,
            100.0 * state.gap, state.skew, 100.0 * dev)


def blend(active, new: FeatureState, old: FeatureState) -> FeatureState:
    """`new` where the trade happened; with a smoothed engine, the weighted mix."""
    w = jnp.asarray(active).astype(old.vol.dtype)
    return jax.tree_util.tree_map(
        lambda a, b: jnp.where(w > 0.0, w * a.astype(b.dtype) + (1.0 - w) * b, b), new, old)


@dataclass(frozen=True)
class FeeBounds:
    """The static configuration of a feature family: fee bounds (bps), the epoch length used
    for progress, and whether the policy is the oracle (sees the true fair price; fast path
    only). Families add their own fields after these (mlp: `hidden`)."""

    fee_min_bps: float = 5.0
    fee_max_bps: float = 200.0
    epoch_len: int = 1000
    oracle: bool = False

    def sided_fees(self, z, tilt):
        """(buy, sell) = fee_min + (fee_max - fee_min) * sigmoid(z -/+ tilt), as fractions."""
        span = (self.fee_max_bps - self.fee_min_bps) / 10_000.0
        low = self.fee_min_bps / 10_000.0
        return low + span * jax.nn.sigmoid(z - tilt), low + span * jax.nn.sigmoid(z + tilt)


class FeatureTracking:
    """Mixin: the feature state, its updates and `fees` for a family whose fees are a
    function `fees_at(params, state, dev)` of the features and a fair-price deviation. Needs
    `epoch_len` and `oracle` on the dataclass: an oracle's deviation is the true one, from
    the fee view; otherwise it is the estimate `deviation(state)`."""

    # Where training starts without --init: ~50 bps at no deviation, tilted by the
    # fair-price deviation (README). mlp embeds this dynamic_fee start.
    DEFAULT_INIT: ClassVar[dict] = {"bias": -1.2, "w_dev": 1.0}

    def fees(self, params, state: FeatureState, view: FeeView | None = None):
        """(buy, sell) fee fractions at the moment of a quote."""
        if self.oracle:
            if view is None:
                from propamm_jax.errors import PropammError

                raise PropammError(f"{type(self).__name__}(oracle=True) needs the fast engine's "
                                   "fee view (the step's fair price)")
            return self.fees_at(params, state, oracle_deviation(view))
        return self.fees_at(params, state, deviation(state))

    def init_state(self, params) -> FeatureState:
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(params)[:1])
        z = jnp.zeros((), dtype)
        return FeatureState(z, z, z, z, z, z, z, z, z)

    def on_trade(self, params, state: FeatureState, obs: TradeObs,
                 quoted: tuple | None = None) -> FeatureState:
        """`quoted`: the (buy, sell) fees this trade was quoted at, for a family whose fees
        read more state than the features (default: `fees_at` on these features)."""
        spot = obs.reserve_y / obs.reserve_x
        ret = jnp.where(state.last_spot > 0.0,
                        jnp.abs(jnp.log(spot / jnp.where(state.last_spot > 0.0, state.last_spot, 1.0))),
                        0.0)
        prices = obs.competitor_prices
        finite = jnp.isfinite(prices)
        mean = jnp.sum(jnp.where(finite, prices, 0.0)) / jnp.maximum(jnp.sum(finite), 1)
        gap = jnp.where(jnp.any(finite), jnp.abs(mean - spot) / spot, 0.0)
        ref = jnp.where(state.ref_rx > 0.0, state.ref_rx, obs.reserve_x)
        # The fees this trade was quoted at (the state is still the pre-trade one). An
        # oracle was quoted other fees, but never reads its estimate.
        fee_buy, fee_sell = (self.fees_at(params, state, deviation(state)) if quoted is None
                             else quoted)
        revealed = jnp.where(obs.is_buy, spot / (1.0 - fee_buy), spot * (1.0 - fee_sell))
        new = FeatureState(
            last_spot=spot, vol=0.95 * state.vol + 0.05 * ret,
            flow=0.9 * state.flow + 0.1 * obs.flow, weight=obs.capital_weight,
            epoch_progress=obs.epoch_step / float(self.epoch_len), gap=gap, ref_rx=ref,
            skew=jnp.log(obs.reserve_x / ref),
            fair=jnp.where(obs.flow == 0.0, revealed, state.fair))
        return blend(obs.active, new, state)

    def on_epoch(self, params, state: FeatureState, obs: EpochObs) -> FeatureState:
        new = state._replace(vol=0.5 * state.vol, weight=obs.capital_weight,
                             ref_rx=obs.reserve_x, skew=jnp.zeros_like(state.skew),
                             epoch_progress=jnp.zeros_like(state.epoch_progress))
        return blend(obs.active, new, state)
