"""Virtual reserves (concentrated liquidity): constant product on a price range.

The pool's liquidity sits on the price range [P0 k^2, P0 / k^2] around a centre price P0 (the
config's initial price), k = 1 - 1 / concentration. Its curve is the constant product of its
real reserves shifted by virtual offsets, (x + a)(y + b) = L^2 with a = k L / sqrt(P0) and
b = k L sqrt(P0): Uniswap v3's single range position. L is the positive root of that
quadratic in the real reserves alone, so

- the curve needs no state: the quote depends only on the reserves that the quote payload
  carries, which is what a compiled strategy sees (the Rust export below computes the same L);
- a trade moves along one curve (L is unchanged by it), and the epoch rebalance, which scales
  both reserves by one factor, scales L and the offsets with them: the range stays put;
- every solver has a closed form: constant product on (x + a, y + b), with the output capped
  at the real reserve above a floor: the pool stops paying out at the inner range
  [P0 k, P0 / k] (half the range in log price) and keeps what it holds there.

Near the centre the pool quotes `concentration` times deeper than a constant-product pool
with the same reserves (concentration 1 is constant product). Fees: a fixed fee on the input
per side, in bps, like `ConstantProduct`. Parameters: fee_buy_bps, fee_sell_bps,
concentration in [1, max_concentration].

Why not "real reserves times L": a quote on (L x, L y) re-centres the curve after every trade,
so the real spot moves L times as far as the curve's marginal price and every arbitrage
overshoots; the next one trades back against the pool.

Why the floor: the engines value a pool's capital as 2 * reserve_y and rescale both reserves
by one factor at each epoch, keeping ry / rx (exact for constant product, where ry / rx is
the price). A range position's ratio ry / rx runs from 0 to infinity across its range: a
pool drained of Y would come out of a rebalance with X worth orders of magnitude more than
its capital (measured: edges of -1e9 Y). At the inner range's ends the ratio is within
(1 - sqrt k) / (1 - k^1.5) of the price (0.38 at concentration 4), which bounds that error.
The official arbitrageur also picks its direction by ry / rx against the fair price, not by
the curve's price; `arbitrage` follows it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import lax

from propamm_jax.errors import PropammError
from propamm_jax.pools.base import (MAX_IN_FRAC, ROUTER_STEP, Arbitrage, EpochObs, FeeView,
                                    NamedVector, TradeObs)
from propamm_jax.fast import solvers as cf
from propamm_jax.pools.policy_file import (bounds, check_family, number, params_object,
                                           read_envelope, write_envelope)

FAMILY = "virtual_reserves"
VERSION = 1
PARAM_NAMES = ("fee_buy_bps", "fee_sell_bps", "concentration")
DUST = 1e-9  # one nano-unit: what the pool always keeps of each reserve


class VRParams(NamedTuple):
    """Fees in bps for a trader buying X (Y in) and selling X (X in); the concentration."""

    fee_buy_bps: jnp.ndarray
    fee_sell_bps: jnp.ndarray
    concentration: jnp.ndarray


@dataclass(frozen=True)
class VirtualReserves(NamedVector):
    """Static configuration: the bounds the fees are clipped to, the epoch length and the
    oracle flag (the registry's shared fields: this family's fees ignore the fair price), the
    range's centre price and the largest concentration."""

    param_type: ClassVar[type] = VRParams
    fee_min_bps: float = 0.0
    fee_max_bps: float = 1000.0
    epoch_len: int = 1000
    oracle: bool = False
    center_price: float = 100.0
    max_concentration: float = 10.0

    def params(self, fee_bps: float, fee_sell_bps: float | None = None,
               concentration: float = 2.0) -> VRParams:
        sell = fee_bps if fee_sell_bps is None else fee_sell_bps
        return VRParams(*(jnp.asarray(v, jnp.float64) for v in (fee_bps, sell, concentration)))

    # ─── Fee policy: fixed fees ──────────────────────────────────────────────────────────

    def init_state(self, params: VRParams) -> tuple:
        return ()

    def fees(self, params: VRParams, state, view: FeeView):
        clip = lambda bps: jnp.clip(bps, self.fee_min_bps, self.fee_max_bps) / 10_000.0  # noqa: E731
        return clip(params.fee_buy_bps), clip(params.fee_sell_bps)

    def on_trade(self, params: VRParams, state, obs: TradeObs):
        return state

    def on_epoch(self, params: VRParams, state, obs: EpochObs):
        return state

    # ─── The parameter vector (what training searches): PARAM_NAMES in order ───────────

    def initial(self, init: dict, seed: int) -> np.ndarray:
        """The search's start: `init` by name, else 30 bps each side and concentration 2."""
        return self.start(init, {"fee_buy_bps": 30.0, "fee_sell_bps": 30.0, "concentration": 2.0})

    # ─── Curve ───────────────────────────────────────────────────────────────────────────

    def kappa(self, params: VRParams):
        """k = 1 - 1 / concentration, the concentration clipped to [1, max_concentration]."""
        c = jnp.clip(params.concentration, 1.0, self.max_concentration)
        return 1.0 - 1.0 / c

    def virtual(self, params: VRParams, rx, ry):
        """Virtual reserves (x + a, y + b) of the position holding real reserves (rx, ry)."""
        return position(self.kappa(params), self.center_price ** 0.5, rx, ry)[:2]

    def spot(self, params: VRParams, rx, ry):
        vx, vy = self.virtual(params, rx, ry)
        return vy / vx

    def amount_out(self, params: VRParams, rx, ry, is_buy, effective_in):
        v_in, v_out, _, cap_out = self._sides(params, rx, ry, is_buy)
        # No clip at zero: the generic solvers read the slope at a zero input.
        return jnp.minimum(v_out * effective_in / (v_in + effective_in), cap_out)

    def arbitrage(self, params: VRParams, rx, ry, fair, gamma_buy, gamma_sell) -> Arbitrage:
        """The best trade in the direction the official arbitrageur picks: it buys X when
        the reserve ratio ry / rx is below the fair price (not the curve's marginal price),
        else sells; in the wrong direction the best trade is none. Constant product on the
        virtual reserves, the input capped at MAX_IN_FRAC of the real input reserve and where
        the output reaches the real reserve."""
        buy = ry / rx < fair
        g = jnp.where(buy, gamma_buy, gamma_sell)
        v_in, v_out, r_in, cap_out = self._sides(params, rx, ry, buy)
        q = jnp.where(buy, fair, 1.0 / fair)
        x_star = (jnp.sqrt(g * v_out * v_in * q) - v_in) / g
        cap = jnp.minimum(MAX_IN_FRAC * r_in, input_cap(v_in, v_out, cap_out, g))
        amount_in = jnp.clip(x_star, 0.0, cap)
        amount_out = self.amount_out(params, rx, ry, buy, g * amount_in)
        profit = jnp.where(buy, fair * amount_out - amount_in, amount_out - fair * amount_in)
        return Arbitrage(buy, amount_in, amount_out, profit)

    def demand(self, params: VRParams, rx, ry, is_buy, gamma, shadow):
        """Input (before fee) at which the router's forward-difference marginal output equals
        `shadow`: the constant-product solution on the virtual reserves, unless its step
        reaches past the output cap; then the root of (cap - out(x)) / d(x) = shadow, a
        quadratic. Clipped to [0, MAX_IN_FRAC * real input reserve]."""
        v_in, v_out, r_in, cap_out = self._sides(params, rx, ry, is_buy)
        x, _ = cf.fd_allocation(lax.rsqrt(shadow), v_in, v_out, gamma, *ROUTER_STEP)
        rel, step = ROUTER_STEP
        past_cap = x + rel * x + step > input_cap(v_in, v_out, cap_out, gamma)
        a = shadow * rel * gamma
        b = shadow * (rel * v_in + step * gamma) + gamma * (v_out - cap_out)
        c = v_in * (shadow * step - cap_out)
        root = 2.0 * -c / (b + jnp.sqrt(jnp.maximum(b * b - 4.0 * a * c, 0.0)))
        return jnp.clip(jnp.where(past_cap, root, x), 0.0, MAX_IN_FRAC * r_in)

    def _sides(self, params, rx, ry, is_buy):
        """(virtual in, virtual out, real in, payable out): Y in and X out where `is_buy`.
        Payable: the real output reserve above its floor."""
        vx, vy, fx, fy = position(self.kappa(params), self.center_price ** 0.5, rx, ry)
        cap_x, cap_y = jnp.maximum(rx - fx, 0.0), jnp.maximum(ry - fy, 0.0)
        return (jnp.where(is_buy, vy, vx), jnp.where(is_buy, vx, vy),
                jnp.where(is_buy, ry, rx), jnp.where(is_buy, cap_x, cap_y))


def position(kappa, sqrt_p0, rx, ry):
    """(x + a, y + b, floor_x, floor_y): the virtual reserves, (x + a)(y + b) = L^2 with
    a = kappa L / sqrt_p0, b = kappa L sqrt_p0, L the positive root of
    (1 - kappa^2) L^2 - kappa (x sqrt_p0 + y / sqrt_p0) L - x y; and the real reserves the
    pool keeps (what it holds at the inner range's ends P0 kappa and P0 / kappa, plus DUST)."""
    d = 1.0 - kappa * kappa
    u = kappa * (rx * sqrt_p0 + ry / sqrt_p0)
    liquidity = (u + jnp.sqrt(u * u + 4.0 * d * rx * ry)) / (2.0 * d)
    inner = liquidity * (jnp.sqrt(kappa) - kappa)
    return (rx + kappa * liquidity / sqrt_p0, ry + kappa * liquidity * sqrt_p0,
            inner / sqrt_p0 + DUST, inner * sqrt_p0 + DUST)


def input_cap(v_in, v_out, cap_out, gamma):
    """Input (before fee) at which the output reaches `cap_out`."""
    return cap_out * v_in / ((v_out - cap_out) * gamma)


# ─── Policy files (the shared envelope of `pools/policy_file.py`) ────────────────────────


def read_policy(path: str | Path, data: dict | None = None
                ) -> tuple[VirtualReserves, dict[str, float]]:
    """A `policy.json` of this family: the pool and its parameters as exact Python floats;
    every problem is one line naming the file and the field."""
    path = Path(path)
    data = read_envelope(path) if data is None else data
    check_family(path, data, FAMILY, (VERSION,))
    fee_min, fee_max, epoch_len, oracle = bounds(path, data)
    center = number(path, data.get("center_price", 100.0), "center_price")
    most = number(path, data.get("max_concentration", 10.0), "max_concentration")
    if not 0.0 < center < 1e12:
        raise PropammError(f"{path}: field 'center_price' must be in (0, 1e12)")
    if not 1.0 <= most <= 100.0:
        raise PropammError(f"{path}: field 'max_concentration' must be in [1, 100]")
    pool = VirtualReserves(fee_min, fee_max, epoch_len, oracle, center, most)
    params = params_object(path, data)
    values = {k: number(path, params.get(k), f"params.{k}") for k in PARAM_NAMES}
    return pool, values


def load_policy(path: str | Path) -> tuple[VirtualReserves, VRParams]:
    pool, values = read_policy(path)
    return pool, pool.unflatten(jnp.asarray(pool.flatten(values)))


def save_policy(path: str | Path, pool: VirtualReserves, params, **extra) -> Path:
    """Writes a `policy.json` that `read_policy` reads back."""
    values = dict(zip(PARAM_NAMES, pool.flatten(params).tolist()))
    return write_envelope(path, FAMILY, VERSION, pool, values, center_price=pool.center_price,
                          max_concentration=pool.max_concentration, **extra)


# ─── Rust export ──────────────────────────────────────────────────────────────────────────

TEMPLATE = r"""// Generated by `propamm export` from a `virtual_reserves` policy (propamm-jax {version}).
// Concentrated liquidity: constant product on virtual reserves (x + a)(y + b) = L^2 with
// a = K L / sqrt(P0), b = K L sqrt(P0), K = 1 - 1 / {concentration}: the price range
// [P0 K^2, P0 / K^2] around P0 = {center}. L is computed from the quote payload's reserves.
// The pool stops paying out at the inner range [P0 K, P0 / K]: it keeps what it holds there
// (plus one nano-unit). Fees on the input, in parts per billion.
const NAME: &str = "{name}";
const K: f64 = {kappa};
const SQRT_K: f64 = {sqrt_k};
const SQRT_P0: f64 = {sqrt_p0};
const GAMMA_BUY: u128 = {gamma_buy};
const GAMMA_SELL: u128 = {gamma_sell};

fn u64_at(b: &[u8], at: usize) -> u64 {{
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}}

/// Virtual offsets (a on X, b on Y) and reserve floors (X, Y) of the range position holding
/// real reserves (x, y).
fn position(x: u64, y: u64) -> ((u128, u128), (u64, u64)) {{
    let (x, y) = (x as f64, y as f64);
    let d = 1.0 - K * K;
    let u = K * (x * SQRT_P0 + y / SQRT_P0);
    let l = (u + (u * u + 4.0 * d * x * y).sqrt()) / (2.0 * d);
    let inner = l * (SQRT_K - K);
    let offsets = ((K * l / SQRT_P0) as u128, (K * l * SQRT_P0) as u128);
    (offsets, ((inner / SQRT_P0) as u64 + 1, (inner * SQRT_P0) as u64 + 1))
}}

fn quote(input: u64, r_in: u64, r_out: u64, off: (u128, u128), floor_out: u64, gamma: u128) -> u64 {{
    let eff = input as u128 * gamma / 1_000_000_000;
    let payable = r_out.saturating_sub(floor_out) as u128;
    if eff == 0 || payable == 0 {{
        return 0;
    }}
    let (v_in, v_out) = (r_in as u128 + off.0, r_out as u128 + off.1);
    let out = match v_out.checked_mul(eff) {{
        Some(p) => p / (v_in + eff),
        None => 0,
    }};
    out.min(payable) as u64
}}

#[no_mangle]
pub extern "C" fn __prop_amm_compute_swap(data: *const u8, len: usize) -> u64 {{
    if data.is_null() || len < 25 {{
        return 0;
    }}
    let b = unsafe {{ std::slice::from_raw_parts(data, len) }};
    let (input, rx, ry) = (u64_at(b, 1), u64_at(b, 9), u64_at(b, 17));
    let ((ax, ay), (fx, fy)) = position(rx, ry);
    if b[0] == 0 {{
        quote(input, ry, rx, (ay, ax), fx, GAMMA_BUY)
    }} else {{
        quote(input, rx, ry, (ax, ay), fy, GAMMA_SELL)
    }}
}}

#[no_mangle]
pub extern "C" fn __prop_amm_after_swap(_data: *const u8, _len: usize, _storage: *mut u8) {{}}

#[no_mangle]
pub extern "C" fn __prop_amm_get_name(buf: *mut u8, max_len: usize) -> usize {{
    let n = NAME.len().min(max_len);
    unsafe {{ std::ptr::copy_nonoverlapping(NAME.as_ptr(), buf, n) }};
    n
}}
"""


def render(pool: VirtualReserves, params: dict[str, float], name: str = FAMILY) -> str:
    """The submission's source for exact Python floats (`read_policy`'s values)."""
    from propamm_jax import __version__
    from propamm_jax.training.export import rust_f64

    if not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", name):
        raise PropammError(f"--name {name!r}: use 1-64 letters, digits, '_' or '-'")
    c = min(max(float(params["concentration"]), 1.0), pool.max_concentration)
    fee = lambda key: min(max(float(params[key]), pool.fee_min_bps), pool.fee_max_bps)  # noqa: E731
    gamma = lambda key: round(1e9 - fee(key) * 1e5)  # noqa: E731 (1 - fee, in ppb)
    return TEMPLATE.format(
        version=__version__, name=name, concentration=rust_f64(c),
        center=rust_f64(pool.center_price), kappa=rust_f64(1.0 - 1.0 / c),
        sqrt_k=rust_f64(math.sqrt(1.0 - 1.0 / c)),
        sqrt_p0=rust_f64(pool.center_price ** 0.5), gamma_buy=gamma("fee_buy_bps"),
        gamma_sell=gamma("fee_sell_bps"))
