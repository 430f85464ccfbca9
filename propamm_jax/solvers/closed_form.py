"""Exact optima for the constant-product family with fees on the input, in JAX.

A pool quotes `out(x) = R_out * g * x / (R_in + g * x)` with `g = 1 - fee`. Everything here is
a closed form (square roots and a water-filling active set), so gradients with respect to fees
and reserves are exact and cheap: no gradient ever flows through a bisection loop.

Amounts are unscaled f64 (1.0 = one unit, not 1e9 nano-units). Per-pool arrays have the pool
axis FIRST and may carry trailing batch axes (`[pools, sims]`): the batch engine keeps the
simulations on the minor axis, where every operation is one long contiguous vector.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp


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
    active pool has the same marginal output `lam`; with `s = lam ** -0.5` the allocation is
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
    """The equimarginal optimum's level `s = lam ** -0.5` and the pools' `a`, `b` (see
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
    lam = 0.75 * jnp.max(spot_floor, axis=0)
    safe_lam = jnp.maximum(lam, 1e-300)
    absorb = (jnp.sqrt(gamma * r_out * r_in / safe_lam) - r_in) / gamma
    absorb = jnp.where(spot_floor < lam, 0.0, jnp.clip(absorb, 0.0, 0.9 * r_in))
    dropped = is_sell & (lam > 0.0) & (total >= jnp.sum(absorb, axis=0))
    return jnp.where(dropped, 0.0, pro_rata)


def fd_allocation(level, r_in, r_out, gamma, step_rel: float, step_abs: float):
    """Input at which a pool's forward-difference marginal (step `step_rel * x + step_abs`)
    equals `lam = level ** -2`, clipped to [0, 0.9 * r_in], and its derivative with respect to
    `level` (in which the allocation is nearly linear, so Newton converges in a few steps).

    The marginal is `g R_out R_in / (u (a u - c))` with `u = r_in + g x`, `a = 1 + step_rel`,
    `c = step_rel r_in - g step_abs`: setting it to `lam` is a quadratic in `u`.
    """
    k = gamma * r_out * r_in * (level * level)
    a = 1.0 + step_rel
    c = step_rel * r_in - gamma * step_abs
    root = jnp.sqrt(c * c + 4.0 * a * k)
    u = (c + root) / (2.0 * a)
    x = (u - r_in) / gamma
    # m_zero >= lam  <=>  gamma r_out level^2 >= r_in + gamma step_abs
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
