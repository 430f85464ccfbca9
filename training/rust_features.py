"""The Rust every feature-driven family's export shares: storage, feature updates, ABI.

The submission keeps `pools/features.py`'s FeatureState in its 1024-byte storage (f64 slots,
in that order) and updates it with the same formulas as `FeatureTracking.on_trade` /
`on_epoch`, reading the after-swap (tag 2) and epoch (tag 5) payloads. The quote is
gamma in parts per million on a constant product in u128. A family supplies only its
constants and `fn fees(s: &[u8]) -> (f64, f64)` (the fee of a trader buying X, selling X),
which may call `slot`, `sigmoid` and `deviation` below.
"""

from __future__ import annotations

import re
from string import Template

from propamm_jax import rules
from propamm_jax.errors import PropammError

STORAGE_DOC = """// Storage (f64, little endian): 0 last spot, 1 vol EMA, 2 flow EMA, 3 capital weight,
// 4 epoch progress, 5 spot gap to competitors, 6 reference reserve_x, 7 inventory skew,
// 8 fair price at the last arbitrage (0 before the first)."""

HELPERS = r"""fn rd8(b: &[u8], at: usize) -> [u8; 8] {
    let mut w = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        w.copy_from_slice(s);
    }
    w
}
fn u64_at(b: &[u8], at: usize) -> u64 { u64::from_le_bytes(rd8(b, at)) }
fn u32_at(b: &[u8], at: usize) -> u32 {
    let w = rd8(b, at);
    u32::from_le_bytes([w[0], w[1], w[2], w[3]])
}
fn f32_at(b: &[u8], at: usize) -> f32 { f32::from_bits(u32_at(b, at)) }
fn slot(s: &[u8], i: usize) -> f64 { f64::from_bits(u64_at(s, 8 * i)) }
fn set_slot(s: &mut [u8], i: usize, v: f64) {
    s[8 * i..8 * i + 8].copy_from_slice(&v.to_bits().to_le_bytes());
}

fn sigmoid(x: f64) -> f64 { 1.0 / (1.0 + (-x).exp()) }

/// ln(spot / fair price revealed by the last arbitrage); 0 before the first one.
fn deviation(s: &[u8]) -> f64 {
    let (last, fair) = (slot(s, 0), slot(s, 8));
    if fair > 0.0 && last > 0.0 { (last / fair).ln() } else { 0.0 }
}

"""

ABI = Template(r"""fn quote(input: u64, r_in: u64, r_out: u64, fee: f64) -> u64 {
    if input == 0 || r_in == 0 || r_out == 0 {
        return 0;
    }
    let g = ((1.0 - fee) * 1e6).floor();
    let gamma = if g.is_finite() && g > 0.0 { g as u128 } else { 0 };
    let eff = input as u128 * gamma / 1_000_000;
    (r_out as u128 * eff / (r_in as u128 + eff)) as u64
}

#[no_mangle]
pub extern "C" fn __prop_amm_compute_swap(data: *const u8, len: usize) -> u64 {
    if data.is_null() || len < ${Q_HEAD} + ${STORAGE} {
        return 0;
    }
    let b = unsafe { std::slice::from_raw_parts(data, len) };
    let (fee_buy, fee_sell) = fees(&b[${Q_HEAD}..${Q_HEAD} + ${STORAGE}]);
    let (input, rx, ry) = (u64_at(b, ${Q_INPUT}), u64_at(b, ${Q_RX}), u64_at(b, ${Q_RY}));
    if b[${Q_SIDE}] == ${BUY} { quote(input, ry, rx, fee_buy) } else { quote(input, rx, ry, fee_sell) }
}

fn on_trade(b: &[u8], s: &mut [u8]) {
    let rx = u64_at(b, ${AS_RX}) as f64 / 1e9;
    let ry = u64_at(b, ${AS_RY}) as f64 / 1e9;
    if !(rx > 0.0) || !(ry > 0.0) {
        return;
    }
    let spot = ry / rx;
    let last = slot(s, 0);
    let ret = if last > 0.0 { (spot / last).ln().abs() } else { 0.0 };
    let mut sum = 0.0f64;
    let mut count = 0u32;
    for k in 0..${SLOTS} {
        let p = f32_at(b, ${AS_PRICES} + 4 * k) as f64;
        if p.is_finite() {
            sum += p;
            count += 1;
        }
    }
    let gap = if count > 0 { (sum / count as f64 - spot).abs() / spot } else { 0.0 };
    let reference = if slot(s, 6) > 0.0 { slot(s, 6) } else { rx };
    // An arbitrage (the only trade with flow 0) stops where the marginal price meets the
    // fair price: at the fees it was quoted, read before the slots change.
    let (fee_buy, fee_sell) = fees(s);
    let is_buy = b[${AS_SIDE}] == ${BUY};
    if f32_at(b, ${AS_FLOW}) == 0.0 {
        set_slot(s, 8, if is_buy { spot / (1.0 - fee_buy) } else { spot * (1.0 - fee_sell) });
    }
    set_slot(s, 0, spot);
    set_slot(s, 1, 0.95 * slot(s, 1) + 0.05 * ret);
    set_slot(s, 2, 0.9 * slot(s, 2) + 0.1 * f32_at(b, ${AS_FLOW}) as f64);
    set_slot(s, 3, f32_at(b, ${AS_WEIGHT}) as f64);
    set_slot(s, 4, u32_at(b, ${AS_EPOCH_STEP}) as f64 / EPOCH_LEN);
    set_slot(s, 5, gap);
    set_slot(s, 6, reference);
    set_slot(s, 7, (rx / reference).ln());
}

fn on_epoch(b: &[u8], s: &mut [u8]) {
    set_slot(s, 1, 0.5 * slot(s, 1));
    set_slot(s, 3, f32_at(b, ${EP_WEIGHT}) as f64);
    set_slot(s, 6, u64_at(b, ${EP_RX}) as f64 / 1e9);
    set_slot(s, 7, 0.0);
    set_slot(s, 4, 0.0);
}

#[no_mangle]
pub extern "C" fn __prop_amm_after_swap(data: *const u8, len: usize, storage: *mut u8) {
    if data.is_null() || storage.is_null() || len < 1 {
        return;
    }
    let b = unsafe { std::slice::from_raw_parts(data, len) };
    let s = unsafe { std::slice::from_raw_parts_mut(storage, ${STORAGE}) };
    match b[${TAG}] {
        ${TAG_AS} if len >= ${AS_LEN} => on_trade(b, s),
        ${TAG_EP} if len >= ${EP_LEN} => on_epoch(b, s),
        _ => {}
    }
}

#[no_mangle]
pub extern "C" fn __prop_amm_get_name(buf: *mut u8, max_len: usize) -> usize {
    let n = NAME.len().min(max_len);
    unsafe { std::ptr::copy_nonoverlapping(NAME.as_ptr(), buf, n) };
    n
}
""").substitute(
    Q_HEAD=rules.QUOTE.itemsize, STORAGE=rules.STORAGE, BUY=rules.TAG_BUY,
    Q_SIDE=rules.offset(rules.QUOTE, "side"), Q_INPUT=rules.offset(rules.QUOTE, "input"),
    Q_RX=rules.offset(rules.QUOTE, "reserve_x"), Q_RY=rules.offset(rules.QUOTE, "reserve_y"),
    SLOTS=rules.COMPETITOR_SLOTS, TAG=0, TAG_AS=rules.TAG_AFTER_SWAP, TAG_EP=rules.TAG_EPOCH,
    AS_LEN=rules.AFTER_SWAP.itemsize, EP_LEN=rules.EPOCH.itemsize,
    **{f"AS_{k.upper()}": rules.offset(rules.AFTER_SWAP, f) for k, f in (
        ("rx", "reserve_x"), ("ry", "reserve_y"), ("prices", "competitor_prices"),
        ("side", "side"), ("flow", "flow"), ("weight", "capital_weight"),
        ("epoch_step", "epoch_step"))},
    EP_WEIGHT=rules.offset(rules.EPOCH, "capital_weight"),
    EP_RX=rules.offset(rules.EPOCH, "reserve_x"))
"""The ABI entry points and feature updates; every payload offset comes from `rules`."""


def rust_f64(value: float) -> str:
    """An f64 literal that parses back to exactly `value` (Python's repr round-trips)."""
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise PropammError(f"cannot export a non-finite parameter {value!r}")
    text = repr(value)
    if "e" not in text and "." not in text:
        text += ".0"
    return text


# Where `submission(..., on_trade_hook=...)` calls a family's own update in `on_trade`: the
# quoted fees are known and no slot has changed yet.
HOOK_AFTER = "    let is_buy = b[%d] == %d;\n" % (rules.offset(rules.AFTER_SWAP, "side"),
                                                  rules.TAG_BUY)


def submission(family: str, doc: str, pool, name: str, consts: str, fees_fn: str,
               on_trade_hook: str = "") -> str:
    """The whole source: header, the pool's bounds, the family's constants and `fees`, then
    the shared storage helpers, feature updates and ABI entry points. `on_trade_hook`: a
    statement run in `on_trade` after the quoted fees (`fee_buy`, `fee_sell`), `spot` and
    `is_buy` are known and before any slot changes (families with slots of their own)."""
    from propamm_jax import __version__

    if not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", name):
        raise PropammError(f"--name {name!r}: use 1-64 letters, digits, '_' or '-'")
    head = (f"// Generated by `propamm export` from a `{family}` policy (propamm-jax "
            f"{__version__}).\n{doc.rstrip()}\n{STORAGE_DOC}\n"
            f'const NAME: &str = "{name}";\n'
            f"const FEE_MIN: f64 = {rust_f64(pool.fee_min_bps / 10_000.0)};\n"
            f"const FEE_SPAN: f64 = {rust_f64((pool.fee_max_bps - pool.fee_min_bps) / 10_000.0)};\n"
            f"const EPOCH_LEN: f64 = {rust_f64(float(pool.epoch_len))};\n")
    abi = ABI
    if on_trade_hook:
        if abi.count(HOOK_AFTER) != 1:
            raise PropammError("rust_features: the on_trade hook's anchor is not in the ABI once")
        abi = abi.replace(HOOK_AFTER, HOOK_AFTER + "    " + on_trade_hook.strip() + "\n")
    return f"{head}{consts.rstrip()}\n\n{HELPERS.strip()}\n\n{fees_fn.strip()}\n\n{abi.lstrip()}"
