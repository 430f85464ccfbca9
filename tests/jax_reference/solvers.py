"""The reference engine's solvers in JAX: golden-section arbitrage and bisection routing.

Same control flow, constants, u64 truncations and profile switches as the native core
(`native/core/engine.rs`), written with `lax.while_loop` so that they run on any pool,
parametric or native, under `vmap`. A quote function `quote(i, is_buy, amount_u64) -> u64`
gives pool `i`'s output at its current reserves and storage.

Bit-exact equality with the native core additionally needs XLA to keep `a*b+c` unfused
(`XLA_FLAGS=--xla_cpu_max_isa=AVX` set before jax is imported); official scoring does not go
through here, see the README's architecture section.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
from jax import lax

from jax_reference.u64 import f64_to_u64, u64_to_f64

SCALE_F = 1e9
TINY = 1.0 / SCALE_F
PHI = 1.618033988749895
Quote = Callable[[int, jnp.ndarray, jnp.ndarray], jnp.ndarray]


def golden_section_max(f, lo, hi, corrected: bool):
    """Maximises `f` on [lo, hi] in at most 50 iterations; returns (x, f(x))."""
    r = 2.0 - PHI
    if corrected:
        c, d = lo + r * (hi - lo), hi - r * (hi - lo)
    else:
        c, d = hi - r * (hi - lo), lo + r * (hi - lo)

    def cond(carry):
        it, _, _, _, _, _, _, done = carry
        return (it < 50) & ~done

    def body(carry):
        it, a, b, c, d, fc, fd, _ = carry
        left = fc < fd
        # fc < fd: a = c, c = d, fc = fd, d = <new>; else b = d, d = c, fd = fc, c = <new>
        a2 = jnp.where(left, c, a)
        b2 = jnp.where(left, b, d)
        if corrected:
            new_point = jnp.where(left, b2 - r * (b2 - a2), a2 + r * (b2 - a2))
        else:
            new_point = jnp.where(left, a2 + r * (b2 - a2), b2 - r * (b2 - a2))
        f_new = f(new_point)
        c2 = jnp.where(left, d, new_point)
        d2 = jnp.where(left, new_point, c)
        fc2 = jnp.where(left, fd, f_new)
        fd2 = jnp.where(left, f_new, fc)
        done = (b2 - a2) / (b2 + a2 + 1e-14) < 1e-8
        return it + 1, a2, b2, c2, d2, fc2, fd2, done

    init = (jnp.int32(0), lo, hi, c, d, f(c), f(d), jnp.bool_(False))
    _, a, b, _, _, _, _, _ = lax.while_loop(cond, body, init)
    x = 0.5 * (a + b)
    return x, f(x)


def arbitrage(quote_one, rx, ry, fair, floor, corrected: bool, bracket_scaled: bool,
              scale=SCALE_F):
    """Returns (trade, is_buy, input_u64, output_u64) for one pool at the fair price.

    `scale` is 1e9; pass it as a batched array under `vmap`, because XLA rewrites division
    by a broadcast constant into multiplication by its reciprocal, which rounds differently.
    """
    rx_f, ry_f = u64_to_f64(rx), u64_to_f64(ry)
    spot = ry_f / rx_f
    is_buy = spot < fair if corrected else spot > fair
    reserve_in = jnp.where(is_buy, ry_f, rx_f)
    max_in = reserve_in * 0.9 if bracket_scaled else reserve_in * 0.9 / scale

    def profit(x):
        amount = f64_to_u64(x * SCALE_F)
        out = u64_to_f64(quote_one(is_buy, amount)) / scale
        value = jnp.where(is_buy, out * fair - x, out - x * fair)
        return jnp.where(amount == 0, 0.0, value)

    best_in, best_profit = golden_section_max(profit, jnp.zeros_like(max_in), max_in, corrected)
    trade = ~((best_profit < floor) | (best_in < TINY))
    amount = f64_to_u64(best_in * SCALE_F)
    out = quote_one(is_buy, amount)
    return trade, is_buy, amount, out


def route(quote: Quote, rx, ry, is_buy, total_input, corrected: bool, scale=SCALE_F):
    """Splits one order over the pools (vectors rx, ry); returns (inputs, outputs) u64.

    `scale`: see `arbitrage`."""
    n = rx.shape[-1]
    step_floor = 0.001 if corrected else TINY
    max_in = jnp.where(is_buy, u64_to_f64(ry) * 0.9 / scale, u64_to_f64(rx) * 0.9 / scale)

    def marginal(i, x):
        delta = x * 0.001 + step_floor
        o1 = u64_to_f64(quote(i, is_buy, f64_to_u64(x * SCALE_F))) / scale
        o2 = u64_to_f64(quote(i, is_buy, f64_to_u64((x + delta) * SCALE_F))) / scale
        return (o2 - o1) / delta

    m_tiny = [marginal(i, jnp.float64(TINY)) for i in range(n)]
    m_cap = [marginal(i, max_in[i]) for i in range(n)]

    def absorb(i, lam):
        def cond(c):
            it, lo, hi, done = c
            return (it < 60) & ~done

        def body(c):
            it, lo, hi, _ = c
            mid = 0.5 * (lo + hi)
            up = marginal(i, mid) >= lam
            lo, hi = jnp.where(up, mid, lo), jnp.where(up, hi, mid)
            return it + 1, lo, hi, (hi - lo) / (hi + lo + 1e-12) < 1e-6

        skip = (m_tiny[i] < lam) | (m_cap[i] >= lam)
        # Bisect only where needed: a finished loop is free under vmap's masking.
        _, lo, hi, _ = lax.while_loop(cond, body, (jnp.int32(0), 0.0 * lam, max_in[i] + 0.0 * lam, skip))
        inner = 0.5 * (lo + hi)
        return jnp.where(m_tiny[i] < lam, 0.0, jnp.where(m_cap[i] >= lam, max_in[i], inner))

    def total_at(lam):
        total = jnp.float64(0.0)
        for i in range(n):
            total = total + absorb(i, lam)
        return total

    lambda_max = jnp.float64(0.0)
    for i in range(n):
        lambda_max = jnp.where(jnp.isnan(m_tiny[i]) | (lambda_max >= m_tiny[i]), lambda_max, m_tiny[i])

    def cond(c):
        it, lo, hi, done = c
        return (it < 80) & ~done

    def body(c):
        it, lo, hi, _ = c
        mid = 0.5 * (lo + hi)
        too_much = total_at(mid) > total_input
        lower = too_much != corrected  # reference lowers the price when too much is allocated
        lo, hi = jnp.where(lower, lo, mid), jnp.where(lower, mid, hi)
        return it + 1, lo, hi, (hi - lo) / (hi + lo + 1e-12) < 1e-6

    _, lo, hi, _ = lax.while_loop(cond, body, (jnp.int32(0), jnp.float64(0.0), lambda_max * 1.5,
                                               jnp.bool_(False)))
    lam_star = 0.5 * (lo + hi)
    raw = [absorb(i, lam_star) for i in range(n)]
    raw_sum = jnp.float64(0.0)
    for r in raw:
        raw_sum = raw_sum + r
    scale = jnp.where(raw_sum > 1e-12, total_input / raw_sum, 0.0)
    inputs, outputs = [], []
    for i in range(n):
        amount = f64_to_u64((raw[i] * scale) * SCALE_F)
        out = quote(i, is_buy, amount)
        inputs.append(amount)
        outputs.append(jnp.where(amount == 0, jnp.uint64(0), out))
    return jnp.stack(inputs), jnp.stack(outputs)
