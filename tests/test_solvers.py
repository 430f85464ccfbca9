"""The closed-form solvers against the reference solvers, on random constant-product states.

The fast path's router lands where the corrected published router's bisection lands (same
forward-difference marginals), and its arbitrage where the golden-section search lands, up to
the published solvers' own tolerances and integer truncations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_reference import solvers as reference
from propamm_jax.fast.solvers import (
    fd_allocation, fd_level, optimal_arbitrage, reference_router_split)
from jax_reference.u64 import cpamm_quote

pytestmark = pytest.mark.usefixtures("x64")


def _states(n_cases: int, seed: int = 7):
    """Random 3-pool states (reserves in units), fees in bps, orders in input units."""
    rng = np.random.default_rng(seed)
    rx = rng.uniform(20.0, 200.0, (n_cases, 3))
    price = rng.uniform(80.0, 120.0, (n_cases, 1)) * rng.uniform(0.98, 1.02, (n_cases, 3))
    ry = rx * price
    fees = rng.choice([10, 30, 45, 65, 100], (n_cases, 3)).astype(float)
    is_buy = rng.random(n_cases) < 0.5
    size_y = rng.lognormal(np.log(20.0), 1.0, n_cases)
    total = np.where(is_buy, size_y, size_y / price[:, 0])
    return rx, ry, fees, is_buy, total


def _reference_split(rx_u, ry_u, fee_u, is_buy, total):
    """The corrected published router (bisection) on integer pools, as input units."""

    def quote(i, buy, amount):
        r_in = jnp.where(buy, ry_u[i], rx_u[i])
        r_out = jnp.where(buy, rx_u[i], ry_u[i])
        return cpamm_quote(amount, r_in, r_out, fee_u[i])

    inputs, _ = reference.route(quote, rx_u, ry_u, jnp.bool_(is_buy), jnp.float64(total), True,
                                scale=jnp.float64(1e9))
    return inputs


def test_router_closed_form_matches_published_bisection():
    rx, ry, fees, is_buy, total = _states(40)
    rx_u, ry_u = np.floor(rx * 1e9).astype(np.uint64), np.floor(ry * 1e9).astype(np.uint64)
    ref = jax.jit(jax.vmap(_reference_split))(rx_u, ry_u, fees.astype(np.uint64), is_buy, total)
    ref = np.asarray(ref, np.float64) / 1e9
    rx, ry = rx_u / 1e9, ry_u / 1e9
    gamma = 1.0 - fees.T / 10_000.0
    r_in = np.where(is_buy, ry.T, rx.T)
    r_out = np.where(is_buy, rx.T, ry.T)
    fast = np.asarray(reference_router_split(total, r_in, r_out, gamma)).T
    err = (np.abs(fast - ref) / np.maximum(total[:, None], 1e-9)).max(axis=1)
    # Sells (X in): the bisection stops at 1e-6 relative on the shadow price, which moves an
    # allocation by up to ~3e-4 of a typical order (measured max 1.7e-4).
    assert is_buy.sum() >= 10 and (~is_buy).sum() >= 10
    assert err[~is_buy].max() < 5e-4, err[~is_buy].max()
    # Buys (Y in, X out): the published marginal differences X quotes truncated to nano-X over
    # a step of ~0.001 Y, a noise of ~1e-4 of the marginal itself, so the published split
    # wanders by up to ~1% of the order around the exact one (measured max 1.4%, mean 0.11%).
    assert err[is_buy].max() < 0.03 and err[is_buy].mean() < 3e-3, err[is_buy]
    assert np.array_equal(fast > 1e-6, ref > 1e-6)


def test_router_single_step_equals_exact_root():
    """One folded Newton step lands on the exact forward-difference root (two steps and the
    implicit derivative), also where the 0.9 reserve cap binds on the shallowest pool."""
    rx, ry, fees, is_buy, total = _states(400, seed=3)
    total = total.copy()
    total[:40] = 0.95 * rx[:40, 0]  # orders that cap a pool
    gamma = 1.0 - fees.T / 10_000.0
    r_in = np.where(is_buy, ry.T, rx.T)
    r_out = np.where(is_buy, rx.T, ry.T)
    fast = np.asarray(reference_router_split(total, r_in, r_out, gamma))
    level = fd_level(total, r_in, r_out, gamma, 0.001, 0.001, 4)
    exact, _ = fd_allocation(level, r_in, r_out, gamma, 0.001, 0.001)
    exact = np.asarray(exact * (total / jnp.sum(exact, axis=0)))
    assert np.max(np.abs(fast - exact) / total) < 1e-11


def test_arbitrage_closed_form_matches_golden_section():
    """The golden-section search on integer quotes stops within its profit plateau (quotes
    truncate to nano-units) around the closed form's optimum."""
    rng = np.random.default_rng(11)
    cases = 30
    rx = rng.uniform(50.0, 150.0, cases)
    fair = rng.uniform(90.0, 110.0, cases)
    ry = rx * fair * rng.choice([0.97, 0.99, 1.01, 1.03], cases)
    fee = rng.choice([30, 65], cases).astype(float)

    def one(rx_f, ry_f, fair_f, fee_f):
        rx_u, ry_u = reference.f64_to_u64(rx_f * 1e9), reference.f64_to_u64(ry_f * 1e9)

        def quote_one(buy, amount):
            r_in = jnp.where(buy, ry_u, rx_u)
            r_out = jnp.where(buy, rx_u, ry_u)
            return cpamm_quote(amount, r_in, r_out, fee_f.astype(jnp.uint64))

        trade, buy, amount, _ = reference.arbitrage(quote_one, rx_u, ry_u, fair_f, 0.01, True,
                                                    False, scale=jnp.float64(1e9))
        return trade, buy, amount

    trade, buy, amount = jax.jit(jax.vmap(one))(*(jnp.asarray(a) for a in (rx, ry, fair, fee)))
    g = 1.0 - fee / 10_000.0
    f_buy, f_in, _, profit = optimal_arbitrage(rx, ry, fair, g, g)
    trade, buy = np.asarray(trade), np.asarray(buy)
    amount = np.asarray(amount, np.float64) / 1e9
    f_in, profit = np.asarray(f_in), np.asarray(profit)
    assert np.array_equal(trade, profit >= 0.01)
    assert np.array_equal(buy[trade], np.asarray(f_buy)[trade])
    rel = np.abs(amount[trade] - f_in[trade]) / f_in[trade]
    assert trade.sum() >= 10 and rel.max() < 0.05, rel.max()
