"""A parametric dynamic-fee policy on a constant-product curve.

The pool keeps the features a compiled strategy can build from its after-swap and epoch
payloads, updated after every trade of its own: an EMA of the absolute log-change of its
spot (volatility), an EMA of the share of retail flow it captured, its capital weight, the
progress through the epoch, the relative gap between its spot and the competitors' mean
spot, its inventory skew (log of reserve_x against the value at the last rebalance), and
its deviation from the fair price as its own trades reveal it.

That last feature (version 2) is the one that pays. An arbitrage trade is the only trade
whose after-swap payload says `flow == 0`, and it stops where the pool's marginal price meets
the fair price: spot / (1 - fee_buy) = fair after the arbitrageur bought X, spot * (1 -
fee_sell) = fair after it sold X. So after each arbitrage the pool knows the fair price
exactly, and until the next one it knows how far retail trades have moved its spot away
from it: `deviation = log(spot / fair_estimate)`. A pool whose spot sits below fair sells X
cheap (its buy side should charge more) and buys X dear (its sell side can charge less and
still earn): the deviation tilts the two fees in opposite directions.

The features and their tracking live in `pools/features.py` (shared with the `mlp` family).
The fee is a smooth, bounded map of the features: fee_min + (fee_max - fee_min) *
sigmoid(z -/+ tilt) for (buy, sell), z = bias + w . features and tilt = w_skew * skew +
w_dev * 100 * deviation. `oracle=True` replaces the estimated deviation by the true one
(the fast path's fee view): a training ceiling that never exports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple

import jax.numpy as jnp
import numpy as np

from propamm_jax.errors import PropammError
from propamm_jax.pools import policy_file
from propamm_jax.pools.base import NamedVector
from propamm_jax.pools.constant_product import ConstantProductCurve
from propamm_jax.pools.features import (  # noqa: F401
    FeatureState, FeatureTracking, FeeBounds, deviation)

FAMILY = "dynamic_fee"
VERSION = 2
VERSIONS = (1, 2)  # version 1 files (no w_dev, no fair estimate) load with w_dev = 0
PARAM_NAMES = ("bias", "w_vol", "w_flow", "w_weight", "w_epoch", "w_gap", "w_skew", "w_dev")


class DFParams(NamedTuple):
    bias: jnp.ndarray
    w_vol: jnp.ndarray
    w_flow: jnp.ndarray
    w_weight: jnp.ndarray
    w_epoch: jnp.ndarray
    w_gap: jnp.ndarray
    w_skew: jnp.ndarray
    w_dev: jnp.ndarray


DFState = FeatureState  # the features (pools/features.py), under the name older code imports


@dataclass(frozen=True)
class DynamicFee(FeeBounds, NamedVector, FeatureTracking, ConstantProductCurve):
    """The static configuration is `FeeBounds`'s (fee bounds, epoch length, oracle)."""

    param_type: ClassVar[type] = DFParams

    def fees_at(self, params: DFParams, state: DFState, dev):
        """(buy, sell) fee fractions for the features and a fair-price deviation `dev`."""
        z = (params.bias + params.w_vol * 100.0 * state.vol + params.w_flow * state.flow
             + params.w_weight * state.weight + params.w_epoch * state.epoch_progress
             + params.w_gap * 100.0 * state.gap)
        tilt = params.w_skew * state.skew + params.w_dev * 100.0 * dev
        # skew > 0: holding more X than at the rebalance; trades that bring X in (sells) pay more
        return self.sided_fees(z, tilt)


def load_policy(path: str | Path) -> tuple[DynamicFee, DFParams]:
    """Reads a `policy.json` of this family as JAX parameters (f32 unless 64-bit JAX is on:
    `export` uses `read_policy` instead, which never rounds)."""
    pool, values = read_policy(path)
    return pool, pool.params(**values)


def read_policy(path: str | Path, data: dict | None = None) -> tuple[DynamicFee, dict[str, float]]:
    """A `policy.json` of this family: the pool and its parameters as the exact Python floats
    (f64) the file holds; every problem is one line naming the file and field. `data`: the
    file's JSON when the caller (the family registry) has read it already."""
    path = Path(path)
    data = policy_file.read_envelope(path) if data is None else data
    version = policy_file.check_family(path, data, FAMILY, VERSIONS)
    params = policy_file.params_object(path, data)
    if version == 1:
        if "w_dev" in params:
            raise PropammError(f"{path}: field 'params.w_dev' needs policy version 2")
        params["w_dev"] = 0.0
    values = {k: policy_file.number(path, params.get(k), f"params.{k}") for k in PARAM_NAMES}
    fee_min, fee_max, epoch_len, oracle = policy_file.bounds(path, data)
    return DynamicFee(fee_min, fee_max, epoch_len, oracle), values


def save_policy(path: str | Path, pool: DynamicFee, params: DFParams, **extra) -> Path:
    """Writes a `policy.json` that `load_policy` reads back."""
    return policy_file.write_envelope(
        path, FAMILY, VERSION, pool, {k: float(getattr(params, k)) for k in PARAM_NAMES}, **extra)
