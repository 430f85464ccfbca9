"""The `regime_fee` family's Rust: `dynamic_fee`'s fees plus the regime inputs of
`pools/regime_fee.py` (slots 9-11), computed with the same f64 operations in the same order.
Storage, shared features and ABI: `training/rust_features.py`; this family's slots are updated
by a hook in its `on_trade`, where the quoted fees are known and no slot has changed yet."""

from __future__ import annotations

from propamm_jax import rules
from propamm_jax.pools.regime_fee import PARAM_NAMES, RegimeFee
from propamm_jax.training.rust_features import rust_f64, submission

DOC = """// fee = fee_min + (fee_max - fee_min) * sigmoid(z -/+ tilt), z linear in the features plus
// w_sig 100 sqrt(sig2) + w_age sqrt(age) / 3 + w_adev 100 |dev|, tilt = w_skew skew + w_dev 100 dev,
// dev = ln(spot / fair price revealed by the last arbitrage).
// Slots of this family: 9 step of the last arbitrage, 10 EMA of the squared log change of
// the fair price per step between arbitrages, 11 steps from the last arbitrage to the last trade."""

FEES = r"""
/// (fee when the trader buys X, fee when the trader sells X), as fractions.
fn fees(s: &[u8]) -> (f64, f64) {
    let dev = deviation(s);
    let z = B_BIAS + W_VOL * 100.0 * slot(s, 1) + W_FLOW * slot(s, 2) + W_WEIGHT * slot(s, 3)
        + W_EPOCH * slot(s, 4) + W_GAP * 100.0 * slot(s, 5) + W_SIG * 100.0 * slot(s, 10).sqrt()
        + W_AGE * slot(s, 11).sqrt() / 3.0 + W_ADEV * 100.0 * dev.abs();
    let tilt = W_SKEW * slot(s, 7) + W_DEV * 100.0 * dev;
    (FEE_MIN + FEE_SPAN * sigmoid(z - tilt), FEE_MIN + FEE_SPAN * sigmoid(z + tilt))
}

/// Slots 9-11 after a trade (`RegimeFee.on_trade`), before the shared slots change: slot 8
/// still holds the previous arbitrage's fair price.
fn regime(b: &[u8], s: &mut [u8], spot: f64, is_buy: bool, fee_buy: f64, fee_sell: f64) {
    let step = u64_at(b, AS_STEP) as f64;
    let old = slot(s, 8);
    let had = old > 0.0;
    if f32_at(b, AS_FLOW) == 0.0 {
        if had {
            let fair = if is_buy { spot / (1.0 - fee_buy) } else { spot * (1.0 - fee_sell) };
            let r = (fair / old).ln();
            let dt = (step - slot(s, 9)).max(1.0);
            set_slot(s, 10, 0.9 * slot(s, 10) + 0.1 * r * r / dt);
        }
        set_slot(s, 9, step);
        set_slot(s, 11, 0.0);
    } else {
        set_slot(s, 11, if had { step - slot(s, 9) } else { 0.0 });
    }
}
"""

HOOK = "regime(b, s, spot, is_buy, fee_buy, fee_sell);"

CONST_NAMES = {"bias": "B_BIAS", "w_vol": "W_VOL", "w_flow": "W_FLOW", "w_weight": "W_WEIGHT",
               "w_epoch": "W_EPOCH", "w_gap": "W_GAP", "w_skew": "W_SKEW", "w_dev": "W_DEV",
               "w_sig": "W_SIG", "w_age": "W_AGE", "w_adev": "W_ADEV"}


def render(pool: RegimeFee, params, name: str = "regime_fee") -> str:
    """The submission's source. `params`: {name: float} or RFParams of Python/NumPy f64 (never
    32-bit JAX arrays): each literal is the f64 the policy file holds."""
    values = params if isinstance(params, dict) else params._asdict()
    consts = "\n".join(
        [f"const {CONST_NAMES[k]}: f64 = {rust_f64(values[k])};" for k in PARAM_NAMES]
        + [f"const AS_STEP: usize = {rules.offset(rules.AFTER_SWAP, 'step')};",
           f"const AS_FLOW: usize = {rules.offset(rules.AFTER_SWAP, 'flow')};"])
    return submission("regime_fee", DOC, pool, name, consts, FEES, on_trade_hook=HOOK)
