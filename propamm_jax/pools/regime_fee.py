"""`regime_fee`: `dynamic_fee` plus what the policy can learn about the market's regime and
about how stale its fair-price estimate is. Constant-product curve.

Why these three inputs (measured against the normalizer, corrected profile;
benchmarks/results/regime_fee_notes.md has the runs):

- `sig`: the fair price's volatility per step, from successive arbitrage reveals,
  `sig2 <- 0.9 sig2 + 0.1 ln(fair / previous fair)^2 / steps between them`. `dynamic_fee`'s
  `vol` is the EMA of its own spot's moves, which retail trades pollute; the best fee level
  of a seed follows the market's sigma (correlation +0.59 over seeds), and `vol` under-reacts
  to it in the most volatile quarter of the markets.
- `age`: steps from the last arbitrage to the last trade: how long the fair estimate has
  drifted unobserved (0 right after an arbitrage, when it is exact).
- `|dev|`: `dynamic_fee` tilts the two fees apart symmetrically, `sigmoid(z -/+ w_dev u)` with
  `u = 100 dev`. A term `w_adev |u|` in `z` gives each side two slopes: the side that trades
  towards the fair estimate follows the deviation almost one for one (quoting around the fair
  price), the side that protects against it much less (trained: `w_adev < 0`).

    z    = bias + w_vol 100 vol + w_flow flow + w_weight weight + w_epoch epoch + w_gap 100 gap
           + w_sig 100 sqrt(sig2) + w_age sqrt(age) / 3 + w_adev 100 |dev|
    tilt = w_skew skew + w_dev 100 dev
    (fee_buy, fee_sell) = fee_min + (fee_max - fee_min) * sigmoid(z -/+ tilt)

The export (`training/export_regime.py`) keeps the shared features in storage slots 0-8 and
these in slots 9-11, updated by the same formulas in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple

import jax.numpy as jnp
import numpy as np

from propamm_jax.errors import PropammError
from propamm_jax.pools import policy_file
from propamm_jax.pools.base import EpochObs, FeeView, NamedVector, TradeObs
from propamm_jax.pools.constant_product import ConstantProductCurve
from propamm_jax.pools.dynamic_fee import PARAM_NAMES as DF_NAMES
from propamm_jax.pools.features import (FeatureState, FeatureTracking, FeeBounds,
                                        deviation, oracle_deviation)

FAMILY = "regime_fee"
VERSION = 1
PARAM_NAMES = DF_NAMES + ("w_sig", "w_age", "w_adev")


# dynamic_fee's eight weights, then the three regime weights (scalars, in PARAM_NAMES order).
RFParams = NamedTuple("RFParams", [(name, jnp.ndarray) for name in PARAM_NAMES])


class RegimeState(NamedTuple):
    """The shared features, then this family's (storage slots 9-11 of the export)."""

    features: FeatureState
    arb_step: jnp.ndarray  # step of the last arbitrage (meaningful once features.fair > 0)
    sig2: jnp.ndarray      # EMA of the squared log change of the fair price per step
    age: jnp.ndarray       # steps from the last arbitrage to the last trade


@dataclass(frozen=True)
class RegimeFee(FeeBounds, NamedVector, FeatureTracking, ConstantProductCurve):
    """The static configuration is `FeeBounds`'s (fee bounds, epoch length, oracle)."""

    param_type: ClassVar[type] = RFParams

    def fees_at(self, params: RFParams, state: RegimeState, dev):
        """(buy, sell) fee fractions for the state and a fair-price deviation `dev`."""
        f = state.features
        z = (params.bias + params.w_vol * 100.0 * f.vol + params.w_flow * f.flow
             + params.w_weight * f.weight + params.w_epoch * f.epoch_progress
             + params.w_gap * 100.0 * f.gap + params.w_sig * 100.0 * jnp.sqrt(state.sig2)
             + params.w_age * jnp.sqrt(state.age) / 3.0 + params.w_adev * 100.0 * jnp.abs(dev))
        tilt = params.w_skew * f.skew + params.w_dev * 100.0 * dev
        return self.sided_fees(z, tilt)

    def fees(self, params: RFParams, state: RegimeState, view: FeeView | None = None):
        if self.oracle:
            if view is None:
                raise PropammError("RegimeFee(oracle=True) needs the fast engine's fee view "
                                   "(the step's fair price)")
            return self.fees_at(params, state, oracle_deviation(view))
        return self.fees_at(params, state, deviation(state.features))

    def init_state(self, params: RFParams) -> RegimeState:
        features = FeatureTracking.init_state(self, params)
        z = jnp.zeros_like(features.vol)
        return RegimeState(features, z, z, z)

    def on_trade(self, params: RFParams, state: RegimeState, obs: TradeObs) -> RegimeState:
        quoted = self.fees_at(params, state, deviation(state.features))
        old = state.features
        features = FeatureTracking.on_trade(self, params, old, obs, quoted)
        arb, had = obs.flow == 0.0, old.fair > 0.0
        step = jnp.asarray(obs.step).astype(old.vol.dtype)
        seen = arb & had
        ratio = jnp.where(seen, features.fair / jnp.where(had, old.fair, 1.0), 1.0)
        r = jnp.log(ratio)
        dt = jnp.maximum(step - state.arb_step, 1.0)
        sig2 = jnp.where(seen, 0.9 * state.sig2 + 0.1 * r * r / dt, state.sig2)
        arb_step = jnp.where(arb, step, state.arb_step)
        age = jnp.where(arb, 0.0, jnp.where(had, step - state.arb_step, 0.0))
        w = jnp.asarray(obs.active).astype(sig2.dtype)  # as `features.blend`, for smoothing
        mix = lambda new, o: jnp.where(w > 0.0, w * new + (1.0 - w) * o, o)  # noqa: E731
        return RegimeState(features, mix(arb_step, state.arb_step), mix(sig2, state.sig2),
                           mix(age, state.age))

    def on_epoch(self, params: RFParams, state: RegimeState, obs: EpochObs) -> RegimeState:
        return state._replace(features=FeatureTracking.on_epoch(self, params, state.features,
                                                                obs))


def read_policy(path: str | Path, data: dict | None = None) -> tuple[RegimeFee, dict[str, float]]:
    """A `policy.json` of this family: the pool and its parameters as the exact floats the
    file holds; every problem is one line naming the file and the field."""
    path = Path(path)
    data = policy_file.read_envelope(path) if data is None else data
    policy_file.check_family(path, data, FAMILY, (VERSION,))
    params = policy_file.params_object(path, data)
    values = {k: policy_file.number(path, params.get(k), f"params.{k}") for k in PARAM_NAMES}
    return RegimeFee(*policy_file.bounds(path, data)), values


def load_policy(path: str | Path) -> tuple[RegimeFee, RFParams]:
    pool, values = read_policy(path)
    return pool, pool.params(**values)


def save_policy(path: str | Path, pool: RegimeFee, params, **extra) -> Path:
    """Writes a `policy.json` that `read_policy` reads back bit for bit."""
    values = dict(zip(PARAM_NAMES, pool.flatten(params).tolist()))
    return policy_file.write_envelope(path, FAMILY, VERSION, pool, values, **extra)
