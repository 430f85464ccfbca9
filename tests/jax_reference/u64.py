"""Rust's integer semantics in JAX: saturating `f64 as u64` and exact u128 quotes.

The reference solvers truncate every trade size to integer nano-units and quote through
u128 products. JAX has no u128, so `mul_div_floor` estimates the quotient in f64 and repairs
it with the exact remainder computed modulo 2^64, which is exact while the divisor stays
below 2^62 and the quotient below 2^53 (reserves up to ~9e6 units, far beyond any simulation).

These functions need 64-bit JAX types (`jax.experimental.enable_x64` or `jax_enable_x64`).
"""

from __future__ import annotations

import jax.numpy as jnp

U64_MAX_F = 18446744073709551616.0  # 2^64 as f64


def f64_to_u64(x):
    """`x as u64` in Rust: truncates toward zero, NaN and negatives give 0, saturates at max."""
    x = jnp.asarray(x, jnp.float64)
    safe = jnp.where(jnp.isnan(x) | (x <= 0.0), 0.0, jnp.minimum(x, 1.8446744073709550e19))
    out = safe.astype(jnp.uint64)
    return jnp.where(x >= U64_MAX_F, jnp.uint64(2**64 - 1), out)


def u64_to_f64(v):
    """`v as f64` (round to nearest)."""
    return jnp.asarray(v, jnp.uint64).astype(jnp.float64)


def mul_div_floor(a, b, d):
    """floor(a * b / d) for u64 operands with a 128-bit intermediate product."""
    a = jnp.asarray(a, jnp.uint64)
    b = jnp.asarray(b, jnp.uint64)
    d = jnp.asarray(d, jnp.uint64)
    d_safe = jnp.maximum(d, jnp.uint64(1))
    est = f64_to_u64(jnp.floor(u64_to_f64(a) * u64_to_f64(b) / u64_to_f64(d_safe)))
    # remainder = a*b - est*d, exact modulo 2^64, as a signed value
    rem = (a * b - est * d_safe).astype(jnp.int64)
    d_i = d_safe.astype(jnp.int64)
    for _ in range(2):
        low = rem < 0
        high = rem >= d_i
        est = jnp.where(low, est - 1, jnp.where(high, est + 1, est))
        rem = jnp.where(low, rem + d_i, jnp.where(high, rem - d_i, rem))
    return est


def fee_scaled(amount, fee_bps):
    """floor(amount * (10000 - fee) / 10000) without overflowing u64."""
    amount = jnp.asarray(amount, jnp.uint64)
    g = jnp.uint64(10_000) - jnp.asarray(fee_bps, jnp.uint64)
    q = amount // jnp.uint64(10_000)
    r = amount % jnp.uint64(10_000)
    return q * g + (r * g) // jnp.uint64(10_000)


def cpamm_quote(amount, r_in, r_out, fee_bps):
    """A constant-product submission's quote (`fixed_30bps.rs` style, zero guards)."""
    amount = jnp.asarray(amount, jnp.uint64)
    eff = fee_scaled(amount, fee_bps)
    zero = (amount == 0) | (r_in == 0) | (r_out == 0)
    out = mul_div_floor(r_out, eff, r_in + eff)
    return jnp.where(zero, jnp.uint64(0), out)


def normalizer_quote(amount, r_in, r_out, fee_bps):
    """The reference engine's built-in CPAMM (returns 0 only when r_in + eff == 0)."""
    eff = fee_scaled(amount, fee_bps)
    denom = jnp.asarray(r_in, jnp.uint64) + eff
    return jnp.where(denom == 0, jnp.uint64(0), mul_div_floor(r_out, eff, denom))
