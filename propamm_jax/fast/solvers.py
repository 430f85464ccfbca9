"""The fast engine's solvers: closed forms for the constant-product family, and generic ones.

Closed forms (first half). A constant-product pool quotes `out(x) = R_out * g * x / (R_in + g * x)` with `g = 1 - fee`. Everything here is
a closed form (square roots and a water-filling active set), so gradients with respect to fees
and reserves are exact and cheap: no gradient ever flows through a bisection loop.

Amounts are unscaled f64 (1.0 = one unit, not 1e9 nano-units). Per-pool arrays have the pool
axis FIRST and may carry trailing batch axes (`[pools, sims]`): the batch engine keeps the
simulations on the minor axis, where every operation is one long contiguous vector.

Generic solvers (second half), for curves that only supply `amount_out`: the arbitrage, a
pool's demand at a shadow price and the equimarginal split, each a bracketed Newton solve
differentiated implicitly (`bracketed_root`). Pure functions of arrays: pool families may use
this module; it imports no engine.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax


def cpamm_out(x, r_in, r_out, gamma):
    """Output of a constant-product pool for input `x` (fee already in `gamma`)."""
    eff = gamma * x
    return r_out * eff / (r_in + eff)


def optimal_arbitrage(rx, ry, fair, gamma_buy, gamma_sell, max_in_frac: float = 0.9):
    """The profit-maximising arbitrage against one pool at the fair price.

    Returns (is_buy, amount_in, amount_out, profit). `is_buy`: the arbitrageur buys X (pays
    Y), which pays only when `gamma_buy * fair > spot`; selling X pays when
    `gamma_sell * spot > fair`. At most one of the two holds, so only that direction is
    computed: with `q` the output's value in input units, `max q out(x) - x` is reached at
    `x = (sqrt(g R_out R_in q) - R_in) / g`. The input is capped at `max_in_frac` of the
    input reserve, as the engine caps every trade.
    """
    spot = ry / rx
    buy = gamma_buy * fair > spot
    sell = gamma_sell * spot > fair
    g = jnp.where(buy, gamma_buy, gamma_sell)
    r_in = jnp.where(buy, ry, rx)
    r_out = jnp.where(buy, rx, ry)
    q = jnp.where(buy, fair, 1.0 / fair)
    x_star = (jnp.sqrt(g * r_out * r_in * q) - r_in) / g
    amount_in = jnp.where(buy | sell, jnp.clip(x_star, 0.0, max_in_frac * r_in), 0.0)
    amount_out = cpamm_out(amount_in, r_in, r_out, g)
    profit = jnp.where(buy, fair * amount_out - amount_in, amount_out - fair * amount_in)
    return buy, amount_in, amount_out, profit


def equimarginal_split(total, r_in, r_out, gamma):
    """Optimal split of `total` input across pools (vectors over pools): water-filling.

    Maximises sum_i out_i(x_i) subject to sum_i x_i = total, x_i >= 0. At the optimum every
    active pool has the same marginal output `shadow`; with `s = shadow ** -0.5` the allocation is
    `x_i = a_i s - b_i`, `a_i = sqrt(R_out R_in / g)`, `b_i = R_in / g`, and pool i is active
    when `s` exceeds its threshold `t_i = b_i / a_i`. Candidate active sets are "every pool
    whose threshold is at most t_j"; the optimum is the largest candidate whose level exceeds
    its own threshold, which is also the candidate with the lowest level. Pairwise masks
    instead of a sort: XLA's CPU sort and scatter cost more
    than the whole rest of a simulation step for a handful of pools.
    """
    s, a, b = water_level(total, r_in, r_out, gamma)
    return jnp.maximum(a * s - b, 0.0)


def water_level(total, r_in, r_out, gamma, shrink=1.0, shift=0.0):
    """The equimarginal optimum's level `s = shadow ** -0.5` and the pools' `a`, `b` (see
    `equimarginal_split`). With `shrink` and `shift` the allocations are
    `(a s - b - shift) / shrink` instead (any affine map of the exact ones)."""
    a = jnp.sqrt(r_out * r_in / gamma) / shrink
    b = (r_in / gamma + shift) / shrink
    t = b / a
    n = t.shape[0]
    idx = jnp.arange(n).reshape((n,) + (1,) * (t.ndim - 1))
    # member[j, i]: pool i belongs to candidate set j (ties broken by index).
    ti, tj = t[None], t[:, None]
    member = (ti < tj) | ((ti == tj) & (idx[None] <= idx[:, None]))
    s_j = (total + jnp.sum(jnp.where(member, b[None], 0.0), axis=1)) / jnp.sum(
        jnp.where(member, a[None], 0.0), axis=1)
    # Every candidate's level is at least the optimum's (its pools alone must absorb `total`,
    # and adding the others' positive parts only overshoots), and the optimum's own set
    # reaches it: the level is the minimum over candidates. No argmax, no gather.
    return jnp.min(s_j, axis=0), a, b


def pro_rata_split(total, r_in):
    """The reference router's split for ordinary orders: pro rata to input-side reserves."""
    return total * r_in / jnp.sum(r_in, axis=0)


def published_split(total, r_in, r_out, gamma, spot_floor, is_sell):
    """The published router on constant-product pools (`reference` profile): pro rata, or
    nothing for a sell order larger than what the pools absorb at 0.75 x the best marginal
    at zero.

    The router's marginal at zero quotes 1 and 2 nano-units: for a sell that is the spot
    truncated to an integer (`spot_floor`: fees vanish in the rounding), for a buy it is 0,
    so a buy is always split pro rata.
    """
    pro_rata = pro_rata_split(total, r_in)
    shadow = 0.75 * jnp.max(spot_floor, axis=0)
    safe_shadow = jnp.maximum(shadow, 1e-300)
    absorb = (jnp.sqrt(gamma * r_out * r_in / safe_shadow) - r_in) / gamma
    absorb = jnp.where(spot_floor < shadow, 0.0, jnp.clip(absorb, 0.0, 0.9 * r_in))
    dropped = is_sell & (shadow > 0.0) & (total >= jnp.sum(absorb, axis=0))
    return jnp.where(dropped, 0.0, pro_rata)


def fd_allocation(level, r_in, r_out, gamma, step_rel: float, step_abs: float):
    """Input at which a pool's forward-difference marginal (step `step_rel * x + step_abs`)
    equals `shadow = level ** -2`, clipped to [0, 0.9 * r_in], and its derivative with respect to
    `level` (in which the allocation is nearly linear, so Newton converges in a few steps).

    The marginal is `g R_out R_in / (u (a u - c))` with `u = r_in + g x`, `a = 1 + step_rel`,
    `c = step_rel r_in - g step_abs`: setting it to `shadow` is a quadratic in `u`.
    """
    k = gamma * r_out * r_in * (level * level)
    a = 1.0 + step_rel
    c = step_rel * r_in - gamma * step_abs
    root = jnp.sqrt(c * c + 4.0 * a * k)
    u = (c + root) / (2.0 * a)
    x = (u - r_in) / gamma
    # m_zero >= shadow  <=>  gamma r_out level^2 >= r_in + gamma step_abs
    open_ = gamma * r_out * (level * level) >= r_in + gamma * step_abs
    inside = open_ & (x > 0.0) & (x < 0.9 * r_in)
    dx_dlevel = jnp.where(inside, 2.0 * k / (gamma * root * level), 0.0)
    return jnp.where(open_, jnp.clip(x, 0.0, 0.9 * r_in), 0.0), dx_dlevel


def reference_router_split(total, r_in, r_out, gamma, step_rel: float = 0.001,
                           step_abs: float = 0.001):
    """Where the corrected reference router lands for constant-product pools.

    That router equalises forward-difference marginals `(f(x + d) - f(x)) / d` with
    `d = 0.001 x + 0.001`, not derivatives, then rescales to the order size; the constant part
    of the step shifts small allocations by several percent. The common level solves
    `sum_i x_i(level) = total` (`fd_level`). Here the allocations at the midpoint rule's
    closed-form level (within ~1e-10 of the root) are moved along their slopes onto
    `sum_i x_i = total`: one Newton step folded into the allocation itself, so each pool takes
    one square root per order. That lands within O(1e-20) of the exact root's allocations,
    and its derivative is the implicit one up to the same order (no loop is differentiated).
    """
    level, _, _ = water_level(total, r_in, r_out, gamma, 1.0 + 0.5 * step_rel, 0.5 * step_abs)
    alloc, slope = fd_allocation(level, r_in, r_out, gamma, step_rel, step_abs)
    slope_sum = jnp.sum(slope, axis=0)
    flat = slope_sum <= 0.0  # no pool strictly inside: nothing to move
    move = jnp.where(flat, 0.0, (total - jnp.sum(alloc, axis=0)) / jnp.where(flat, 1.0, slope_sum))
    caps = 0.9 * r_in
    raw = jnp.clip(alloc + slope * move, 0.0, caps)
    raw = jnp.where(jnp.sum(caps, axis=0) <= total, caps, raw)  # all capped: pro rata to caps
    raw_sum = jnp.sum(raw, axis=0)
    ok = (raw_sum > 0.0) & (total > 0.0)
    return jnp.where(ok, raw * (total / jnp.where(ok, raw_sum, 1.0)), 0.0)


@partial(jax.custom_jvp, nondiff_argnums=(4, 5, 6))
def fd_level(total, r_in, r_out, gamma, step_rel: float, step_abs: float, newton_steps: int):
    """The level at which the forward-difference allocations sum to `total`: Newton steps from
    the midpoint rule's closed form, differentiated implicitly (never through the steps). The
    exact root, against which `reference_router_split`'s single folded step is tested.

    The forward difference is the derivative at `x + d / 2` up to a relative
    O((d / r_in) ** 2), so the exact water level of the allocations
    `(a s - b - step_abs / 2) / (1 + step_rel / 2)` starts within about 1e-10 of the root;
    two steps reach machine precision even where the 0.9 reserve cap binds.
    """
    level, _, _ = water_level(total, r_in, r_out, gamma, 1.0 + 0.5 * step_rel, 0.5 * step_abs)
    for _ in range(newton_steps):
        alloc, slope = fd_allocation(level, r_in, r_out, gamma, step_rel, step_abs)
        slope = jnp.sum(slope, axis=0)
        flat = slope <= 0.0  # no pool strictly inside: nothing to move
        level = level - jnp.where(
            flat, 0.0, (jnp.sum(alloc, axis=0) - total) / jnp.where(flat, 1.0, slope))
    return level


@fd_level.defjvp
def _fd_level_jvp(step_rel, step_abs, newton_steps, primals, tangents):
    # Implicit function theorem on F(level, inputs) = sum_i x_i(level, inputs) - total = 0.
    level = fd_level(*primals, step_rel, step_abs, newton_steps)

    def excess(total, r_in, r_out, gamma):
        alloc, _ = fd_allocation(level, r_in, r_out, gamma, step_rel, step_abs)
        return jnp.sum(alloc, axis=0) - total

    _, d_excess = jax.jvp(excess, primals, tangents)
    _, slope = fd_allocation(level, *primals[1:], step_rel, step_abs)
    slope = jnp.sum(slope, axis=0)
    flat = slope <= 0.0
    return level, jnp.where(flat, 0.0, -d_excess / jnp.where(flat, 1.0, slope))


# Generic solvers, for curves without closed forms. Each is a bracketed Newton solve whose
# derivative is the implicit one (`bracketed_root`): no gradient flows through the loop.

ROUTER_STEP = (0.001, 0.001)  # the published router's forward difference (pools.base)
MAX_IN_FRAC = 0.9
ITERATIONS = 40


@partial(jax.custom_jvp, nondiff_argnums=(0, 4))
def bracketed_root(fn, lo, hi, args, iterations: int = ITERATIONS):
    """The `x` in [lo, hi] with `fn(x, args) == 0`, for `fn` decreasing in `x` (elementwise
    over any batch shape): `lo` where `fn(lo) <= 0`, `hi` where `fn(hi) >= 0`. Newton steps,
    each replaced by bisection when it leaves the shrinking bracket. Differentiated
    implicitly: dx = -(dfn/dargs . dargs) / (dfn/dx) inside, d(lo) or d(hi) at a bound."""
    f_lo, f_hi = fn(lo, args), fn(hi, args)

    def body(_, carry):
        a, b, x = carry
        fx, slope = jax.jvp(lambda x: fn(x, args), (x,), (jnp.ones_like(x),))
        a, b = jnp.where(fx > 0.0, x, a), jnp.where(fx > 0.0, b, x)
        newton = x - fx / jnp.where(slope < 0.0, slope, -1.0)
        ok = (slope < 0.0) & (newton > a) & (newton < b)
        return a, b, jnp.where(ok, newton, 0.5 * (a + b))

    _, _, x = lax.fori_loop(0, iterations, body, (lo, hi, 0.5 * (lo + hi)))
    return jnp.where(f_lo <= 0.0, lo, jnp.where(f_hi >= 0.0, hi, x))


@bracketed_root.defjvp
def _bracketed_root_jvp(fn, iterations, primals, tangents):
    lo, hi, args = primals
    d_lo, d_hi, d_args = tangents
    x = bracketed_root(fn, lo, hi, args, iterations)
    f_lo, f_hi = fn(lo, args), fn(hi, args)
    _, slope = jax.jvp(lambda x: fn(x, args), (x,), (jnp.ones_like(x),))
    _, d_f = jax.jvp(lambda a: fn(x, a), (args,), (d_args,))
    inside = -d_f / jnp.where(slope < 0.0, slope, -1.0)
    d_x = jnp.where(f_lo <= 0.0, d_lo, jnp.where(f_hi >= 0.0, d_hi, inside))
    return x, d_x


def _slope_at(amount_out, params, rx, ry, is_buy, effective_in):
    """d amount_out / d effective_in."""
    return jax.jvp(lambda e: amount_out(params, rx, ry, is_buy, e), (effective_in,),
                   (jnp.ones_like(effective_in),))[1]


def generic_arbitrage(amount_out, params, rx, ry, fair, gamma_buy, gamma_sell):
    """`optimal_arbitrage` for any curve: the direction whose marginal at zero beats the fair
    price, then the input where the marginal meets it (`q g out'(g x) = 1`), capped."""
    zero = jnp.zeros_like(rx)
    buy = fair * gamma_buy * _slope_at(amount_out, params, rx, ry, True, zero) > 1.0
    sell = gamma_sell * _slope_at(amount_out, params, rx, ry, False, zero) > fair
    g = jnp.where(buy, gamma_buy, gamma_sell)
    q = jnp.where(buy, fair, 1.0 / fair)
    cap = MAX_IN_FRAC * jnp.where(buy, ry, rx)

    def excess(x, a):
        params, rx, ry, buy, g, q = a
        return q * g * _slope_at(amount_out, params, rx, ry, buy, g * x) - 1.0

    x = bracketed_root(excess, zero, cap, (params, rx, ry, buy, g, q))
    amount_in = jnp.where(buy | sell, x, 0.0)
    out = amount_out(params, rx, ry, buy, g * amount_in)
    profit = jnp.where(buy, fair * out - amount_in, out - fair * amount_in)
    return buy, amount_in, out, profit


def router_marginal(amount_out, params, rx, ry, is_buy, gamma, x):
    """The router's forward-difference marginal output at input `x` (before fee)."""
    d = ROUTER_STEP[0] * x + ROUTER_STEP[1]
    return (amount_out(params, rx, ry, is_buy, gamma * (x + d))
            - amount_out(params, rx, ry, is_buy, gamma * x)) / d


def generic_demand(amount_out, params, rx, ry, is_buy, gamma, shadow):
    """The input at which the router's marginal equals `shadow`, in [0, 0.9 input reserve]."""
    cap = MAX_IN_FRAC * jnp.where(is_buy, ry, rx)

    def excess(x, a):
        return router_marginal(amount_out, *a[:5], x) - a[5]

    return bracketed_root(excess, jnp.zeros_like(cap), cap, (params, rx, ry, is_buy, gamma, shadow))


def equimarginal_route(demands, margins, pool_args, total):
    """The corrected router's split for any mix of curves: the level `s = shadow ** -0.5` at
    which the pools' demands (`demands[i](*pool_args[i], shadow)`) sum to `total`, then rescaled
    onto `total` as the published router does. `margins[i](*pool_args[i], x)`: pool i's
    router marginal at input x, which brackets the level."""
    caps = [MAX_IN_FRAC * jnp.where(a[3], a[2], a[1]) for a in pool_args]
    at_zero = jnp.stack([m(*a, jnp.zeros_like(c)) for m, a, c in zip(margins, pool_args, caps)])
    at_cap = jnp.stack([m(*a, c) for m, a, c in zip(margins, pool_args, caps)])
    tiny = jnp.finfo(at_zero.dtype).tiny
    lo = lax.rsqrt(jnp.maximum(jnp.max(at_zero, axis=0), tiny))
    # A curve whose output is capped by its real reserve has a zero marginal at its input
    # cap: floor the bracket's shadow price so that the level's bracket stays finite.
    floor = 1e-6 * jnp.max(at_zero, axis=0)
    hi = lax.rsqrt(jnp.maximum(jnp.maximum(jnp.min(at_cap, axis=0), floor), tiny))

    def inputs(level, args):
        shadow = 1.0 / (level * level)
        return [d(*a, shadow) for d, a in zip(demands, args)]

    def excess(level, a):
        args, total = a
        return total - sum(inputs(level, args))

    level = bracketed_root(excess, lo, jnp.maximum(hi, lo), (pool_args, total))
    raw = jnp.stack(inputs(level, pool_args))
    raw_sum = jnp.sum(raw, axis=0)
    ok = (raw_sum > 0.0) & (total > 0.0)
    return jnp.where(ok, raw * (total / jnp.where(ok, raw_sum, 1.0)), 0.0)
