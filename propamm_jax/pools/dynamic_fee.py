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

The fee is a smooth, bounded map of the features: fee_min + (fee_max - fee_min) *
sigmoid(z -/+ tilt) for (buy, sell), z = bias + w . features and tilt = w_skew * skew +
w_dev * 100 * deviation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp

from propamm_jax.errors import PropammError, read_json
from propamm_jax.pools.base import EpochObs, FeeView, TradeObs
from propamm_jax.pools.constant_product import ConstantProductCurve

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


class DFState(NamedTuple):
    last_spot: jnp.ndarray
    vol: jnp.ndarray
    flow: jnp.ndarray
    weight: jnp.ndarray
    epoch_progress: jnp.ndarray
    gap: jnp.ndarray
    ref_rx: jnp.ndarray
    skew: jnp.ndarray
    fair: jnp.ndarray  # the fair price the last arbitrage revealed (0: none yet)


@dataclass(frozen=True)
class DynamicFee(ConstantProductCurve):
    """Static configuration: fee bounds (bps) and the epoch length used for progress."""

    fee_min_bps: float = 5.0
    fee_max_bps: float = 200.0
    epoch_len: int = 1000

    def params(self, **values: float) -> DFParams:
        unknown = set(values) - set(PARAM_NAMES)
        if unknown:
            raise PropammError(f"DynamicFee: unknown parameter {sorted(unknown)[0]!r}")
        return DFParams(*(jnp.asarray(float(values.get(k, 0.0))) for k in PARAM_NAMES))

    def init_state(self, params: DFParams) -> DFState:
        z = jnp.zeros((), jnp.result_type(params.bias))
        return DFState(z, z, z, z, z, z, z, z, z)

    def fees(self, params: DFParams, state: DFState, view: FeeView | None = None):
        """(buy, sell) fee fractions (from the features alone: `view` is not used)."""
        z = (params.bias + params.w_vol * 100.0 * state.vol + params.w_flow * state.flow
             + params.w_weight * state.weight + params.w_epoch * state.epoch_progress
             + params.w_gap * 100.0 * state.gap)
        span = (self.fee_max_bps - self.fee_min_bps) / 10_000.0
        low = self.fee_min_bps / 10_000.0
        tilt = params.w_skew * state.skew + params.w_dev * 100.0 * deviation(state)
        # skew > 0: holding more X than at the rebalance; trades that bring X in (sells) pay more
        return low + span * jax.nn.sigmoid(z - tilt), low + span * jax.nn.sigmoid(z + tilt)

    def on_trade(self, params: DFParams, state: DFState, obs: TradeObs) -> DFState:
        spot = obs.reserve_y / obs.reserve_x
        ret = jnp.where(state.last_spot > 0.0,
                        jnp.abs(jnp.log(spot / jnp.where(state.last_spot > 0.0, state.last_spot, 1.0))),
                        0.0)
        prices = obs.competitor_prices
        finite = jnp.isfinite(prices)
        mean = jnp.sum(jnp.where(finite, prices, 0.0)) / jnp.maximum(jnp.sum(finite), 1)
        gap = jnp.where(jnp.any(finite), jnp.abs(mean - spot) / spot, 0.0)
        ref = jnp.where(state.ref_rx > 0.0, state.ref_rx, obs.reserve_x)
        # The fees this trade was quoted at (the state is still the pre-trade one).
        fee_buy, fee_sell = self.fees(params, state)
        revealed = jnp.where(obs.is_buy, spot / (1.0 - fee_buy), spot * (1.0 - fee_sell))
        new = DFState(
            last_spot=spot, vol=0.95 * state.vol + 0.05 * ret,
            flow=0.9 * state.flow + 0.1 * obs.flow, weight=obs.capital_weight,
            epoch_progress=obs.epoch_step / float(self.epoch_len), gap=gap, ref_rx=ref,
            skew=jnp.log(obs.reserve_x / ref),
            fair=jnp.where(obs.flow == 0.0, revealed, state.fair))
        return _blend(obs.active, new, state)

    def on_epoch(self, params: DFParams, state: DFState, obs: EpochObs) -> DFState:
        new = state._replace(vol=0.5 * state.vol, weight=obs.capital_weight,
                             ref_rx=obs.reserve_x, skew=jnp.zeros_like(state.skew),
                             epoch_progress=jnp.zeros_like(state.epoch_progress))
        return _blend(obs.active, new, state)


def deviation(state: DFState):
    """log(spot / fair price revealed by the last arbitrage); 0 before the first one."""
    known = (state.fair > 0.0) & (state.last_spot > 0.0)
    return jnp.where(known, jnp.log(jnp.where(known, state.last_spot, 1.0)
                                    / jnp.where(known, state.fair, 1.0)), 0.0)


def _blend(active, new: DFState, old: DFState) -> DFState:
    """`new` where the trade happened; with a smoothed engine, the weighted mix."""
    w = jnp.asarray(active).astype(old.vol.dtype)
    return jax.tree_util.tree_map(
        lambda a, b: jnp.where(w > 0.0, w * a.astype(b.dtype) + (1.0 - w) * b, b), new, old)


def load_policy(path: str | Path) -> tuple[DynamicFee, DFParams]:
    """Reads a `policy.json` of this family as JAX parameters (f32 unless 64-bit JAX is on:
    `export` uses `read_policy` instead, which never rounds)."""
    pool, values = read_policy(path)
    return pool, pool.params(**values)


def read_policy(path: str | Path) -> tuple[DynamicFee, dict[str, float]]:
    """A `policy.json` of this family: the pool and its parameters as the exact Python floats
    (f64) the file holds; every problem is one line naming the file."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise PropammError(f"{path}: expected a JSON object")
    if "family" not in data:
        raise PropammError(f"{path}: not a policy file (no 'family' field; `propamm train` "
                           "writes one as policy.json)")
    if data.get("family") != FAMILY:
        raise PropammError(f"{path}: policy family {data.get('family')!r} is not {FAMILY!r}")
    version = data.get("version")
    if version not in VERSIONS or isinstance(version, bool):
        raise PropammError(f"{path}: policy version {version!r} is not one of "
                           f"{', '.join(map(str, VERSIONS))}")
    params = data.get("params")
    if not isinstance(params, dict):
        raise PropammError(f"{path}: field 'params' must be an object")
    params = dict(params)
    if version == 1:
        if "w_dev" in params:
            raise PropammError(f"{path}: field 'params.w_dev' needs policy version 2")
        params["w_dev"] = 0.0
    for key in PARAM_NAMES:
        if not isinstance(params.get(key), (int, float)) or isinstance(params.get(key), bool):
            raise PropammError(f"{path}: field 'params.{key}' must be a number")
    pool = DynamicFee(float(data.get("fee_min_bps", 5.0)), float(data.get("fee_max_bps", 200.0)),
                      int(data.get("epoch_len", 1000)))
    if not 0.0 <= pool.fee_min_bps < pool.fee_max_bps < 10_000.0:
        raise PropammError(f"{path}: need 0 <= fee_min_bps < fee_max_bps < 10000")
    return pool, {k: float(params[k]) for k in PARAM_NAMES}


def save_policy(path: str | Path, pool: DynamicFee, params: DFParams, **extra) -> Path:
    """Writes a `policy.json` that `load_policy` reads back."""
    path = Path(path)
    data = {"family": FAMILY, "version": VERSION, "fee_min_bps": pool.fee_min_bps,
            "fee_max_bps": pool.fee_max_bps, "epoch_len": pool.epoch_len,
            "params": {k: float(getattr(params, k)) for k in PARAM_NAMES}, **extra}
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
