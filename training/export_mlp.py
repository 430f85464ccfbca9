"""The `mlp` family's Rust: the network as exact f64 constant arrays and the same operations,
in the same order, as `MLPFee.fees_at` (sequential sums, tanh as 1 - 2 / (exp(2a) + 1),
sigmoid as 1 / (1 + exp(-u))). Storage, features and ABI: `training/rust_features.py`."""

from __future__ import annotations

import numpy as np

from propamm_jax.pools.mlp import INPUT_NAMES, N_IN, MLPFee, MLPParams
from propamm_jax.training.rust_features import rust_f64, submission

DOC = """// h = tanh(W1 x + b1), (u_buy, u_sell) = W2 h + b2, fee = fee_min + (fee_max - fee_min) * sigmoid(u);
// x = (100 vol, flow, weight, epoch progress, 100 gap, skew, 100 ln(spot / fair estimate))."""

FEES = r"""
/// (fee when the trader buys X, fee when the trader sells X), as fractions.
fn fees(s: &[u8]) -> (f64, f64) {
    let x: [f64; N_IN] = [100.0 * slot(s, 1), slot(s, 2), slot(s, 3), slot(s, 4),
                          100.0 * slot(s, 5), slot(s, 7), 100.0 * deviation(s)];
    let mut u = B2;
    for h in 0..HIDDEN {
        let mut a = B1[h];
        for j in 0..N_IN {
            a = a + W1[h][j] * x[j];
        }
        let t = 1.0 - 2.0 / ((2.0 * a).exp() + 1.0);
        u[0] = u[0] + W2[0][h] * t;
        u[1] = u[1] + W2[1][h] * t;
    }
    (FEE_MIN + FEE_SPAN * sigmoid(u[0]), FEE_MIN + FEE_SPAN * sigmoid(u[1]))
}
"""


def _array(values) -> str:
    """A Rust array literal of exact f64s (nested like `values`)."""
    values = np.asarray(values, np.float64)
    if values.ndim == 1:
        return "[" + ", ".join(rust_f64(v) for v in values.tolist()) + "]"
    return "[\n    " + ",\n    ".join(_array(row) for row in values) + ",\n]"


def render(pool: MLPFee, params: MLPParams, name: str = "mlp") -> str:
    """The submission's source; `params` hold NumPy/Python f64 (never 32-bit JAX arrays)."""
    assert len(INPUT_NAMES) == N_IN == 7  # the Rust `x` above lists them
    h = pool.hidden
    consts = "\n".join([
        f"const N_IN: usize = {N_IN};", f"const HIDDEN: usize = {h};",
        f"const W1: [[f64; N_IN]; HIDDEN] = {_array(np.reshape(params.w1, (h, N_IN)))};",
        f"const B1: [f64; HIDDEN] = {_array(np.reshape(params.b1, (h,)))};",
        f"const W2: [[f64; HIDDEN]; 2] = {_array(np.reshape(params.w2, (2, h)))};",
        f"const B2: [f64; 2] = {_array(np.reshape(params.b2, (2,)))};"])
    return submission("mlp", DOC, pool, name, consts, FEES)
