"""The simulation step in JAX with the reference solvers, generic over pool classes.

`simulate_reference` runs one simulation (vmap it over seeds or parameters) as a `lax.scan`
over steps: price, arbitrage of each strategy then of the normalizer, the step's retail orders
through the N-way router, then the epoch boundary. It follows the native core step for step,
so parametric pools (through `adapters.integer_pool`) and `NativePool`s can be compared on
the reference's own solvers.

Test support only: official scoring runs the same step natively (see the README's
architecture section); with hundreds of dependent quotes per step, per-quote host callbacks
would be ~100x too slow.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from propamm_jax.config import SimConfig
from propamm_jax.errors import PropammError
from jax_reference.adapters import integer_pool
from jax_reference.obs import EpochObs, TradeObs
from jax_reference.solvers import SCALE_F, arbitrage, route
from jax_reference.u64 import f64_to_u64, normalizer_quote, u64_to_f64

U64_MAX = np.uint64(2**64 - 1)


class TapeRow(NamedTuple):
    """One seed's tape as JAX inputs (orders in CSR form, offsets relative to this seed)."""

    fair_price: jnp.ndarray    # f64 [T]
    order_start: jnp.ndarray   # i64 [T+1]
    order_is_buy: jnp.ndarray  # bool [M]
    order_size: jnp.ndarray    # f64 [M]
    norm_fee_bps: jnp.ndarray  # u64 []
    norm_liquidity_mult: jnp.ndarray  # f64 []


def tape_rows(tape, config: SimConfig) -> TapeRow:
    """The batched JAX view of a `propamm_jax.tape.Tape` (leading axis: seeds)."""
    return TapeRow(
        fair_price=jnp.asarray(tape.fair_prices(config.initial_price)),
        order_start=jnp.asarray(tape.order_start - tape.order_start[:, :1]),
        order_is_buy=jnp.asarray(tape.order_is_buy),
        order_size=jnp.asarray(tape.order_size),
        norm_fee_bps=jnp.asarray(tape.params.norm_fee_bps, jnp.uint64),
        norm_liquidity_mult=jnp.asarray(tape.params.norm_liquidity_mult, jnp.float64),
    )


class SimState(NamedTuple):
    """Engine state of one simulation; index N (the last) is the normalizer."""

    rx: jnp.ndarray
    ry: jnp.ndarray
    cumulative_edge: jnp.ndarray
    epoch_edge: jnp.ndarray
    epoch_trades: jnp.ndarray
    capital_weight: jnp.ndarray
    pool_states: tuple
    log_edge: jnp.ndarray      # [N, E]
    log_trades: jnp.ndarray    # [N, E]
    log_score: jnp.ndarray     # [N, E]
    n_epochs: jnp.ndarray


def require_x64() -> None:
    """Engines work in u64/f64; refuse to run silently truncated to 32 bits."""
    if not jax.config.jax_enable_x64:
        raise PropammError("the engine needs 64-bit JAX: call "
                           "jax.config.update('jax_enable_x64', True) before using it")


def _sat_add(a, b):
    s = a + b
    return jnp.where(s < a, U64_MAX, s)


def _sat_sub(a, b):
    return jnp.where(b > a, jnp.uint64(0), a - b)


def _execute(s: SimState, i: int, active, is_buy, amount_in, amount_out, fair, scale) -> SimState:
    """Books a trade on AMM `i` where `active` (the reference's accrue_edge + apply)."""
    ax = u64_to_f64(jnp.where(is_buy, amount_out, amount_in)) / scale
    ay = u64_to_f64(jnp.where(is_buy, amount_in, amount_out)) / scale
    edge = jnp.where(is_buy, ay - ax * fair, ax * fair - ay)
    rx, ry = s.rx[i], s.ry[i]
    new_rx = jnp.where(is_buy, _sat_sub(rx, amount_out), _sat_add(rx, amount_in))
    new_ry = jnp.where(is_buy, _sat_add(ry, amount_in), _sat_sub(ry, amount_out))
    return s._replace(
        rx=s.rx.at[i].set(jnp.where(active, new_rx, rx)),
        ry=s.ry.at[i].set(jnp.where(active, new_ry, ry)),
        cumulative_edge=s.cumulative_edge.at[i].add(jnp.where(active, edge, 0.0)),
        epoch_edge=s.epoch_edge.at[i].add(jnp.where(active, edge, 0.0)),
        epoch_trades=s.epoch_trades.at[i].add(jnp.where(active, 1, 0)),
    )


def _competitors(s: SimState, i: int, n: int) -> jnp.ndarray:
    """Other strategies' spot prices in index order (first 8), then the normalizer's."""
    others = [j for j in range(n) if j != i][:8]
    if len(others) < 8:
        others.append(n)
    spot = (u64_to_f64(s.ry) / u64_to_f64(s.rx)).astype(jnp.float32)
    prices = [spot[j] for j in others] + [jnp.float32(jnp.nan)] * (8 - len(others))
    return jnp.stack(prices)


def _glibc_exp(x):
    """exp as the reference computes it (glibc), via the host: XLA's differs by an ulp."""
    def host(v):
        return np.vectorize(math.exp, otypes=[np.float64])(v)
    return jax.pure_callback(host, jax.ShapeDtypeStruct(x.shape, jnp.float64), x,
                             vmap_method="broadcast_all")


def simulate_reference(pools: Sequence[Any], params: Sequence[Any], config: SimConfig,
                       profile: str, tape: TapeRow, trace_steps: int = 0):
    """One simulation on the reference solvers. Returns (final SimState, trace or None).

    Needs 64-bit JAX (`jax.config.update("jax_enable_x64", True)`), since reserves are u64.
    """
    require_x64()
    pools = [integer_pool(p) for p in pools]
    corrected = profile == "corrected"
    n = len(pools)
    steps, epoch_len = config.steps, config.epoch_len
    n_epochs = max((steps - 1) // epoch_len, 1)
    norm_fee = jnp.asarray(tape.norm_fee_bps, jnp.uint64)
    # Divisors as data, not constants: XLA turns x / const into x * (1 / const).
    opaque_zero = 0.0 * jnp.asarray(tape.norm_liquidity_mult, jnp.float64)
    scale, forty = SCALE_F + opaque_zero, 40.0 + opaque_zero

    def quote_of(s: SimState, i: int):
        def q(is_buy, amount):
            return pools[i].quote(params[i], s.pool_states[i], is_buy, amount, s.rx[i], s.ry[i])
        return q

    def quote_all(s: SimState):
        def q(i, is_buy, amount):
            if i < n:
                return quote_of(s, i)(is_buy, amount)
            r_in = jnp.where(is_buy, s.ry[n], s.rx[n])
            r_out = jnp.where(is_buy, s.rx[n], s.ry[n])
            return normalizer_quote(amount, r_in, r_out, norm_fee)
        return q

    def notify(s: SimState, i: int, active, is_buy, amount_in, amount_out, step, flow, n_field):
        obs = TradeObs(
            active=active, is_buy=is_buy, input_amount=amount_in, output_amount=amount_out,
            reserve_x=s.rx[i], reserve_y=s.ry[i], sim_step=step.astype(jnp.uint64),
            epoch_step=(step.astype(jnp.uint32) % jnp.uint32(epoch_len)),
            epoch_number=(step // epoch_len).astype(jnp.uint32),
            n_strategies=jnp.uint8(n_field), strategy_index=jnp.uint8(i),
            flow_captured=jnp.asarray(flow, jnp.float32),
            capital_weight=s.capital_weight[i].astype(jnp.float32),
            competitor_prices=_competitors(s, i, n))
        new_state = pools[i].on_trade(params[i], s.pool_states[i], obs)
        states = list(s.pool_states)
        states[i] = new_state
        return s._replace(pool_states=tuple(states))

    def retail(k, carry):
        s, step, fair = carry
        is_buy = tape.order_is_buy[k]
        size = tape.order_size[k]
        total_input = jnp.where(is_buy, size, size / fair)
        inputs, outputs = route(quote_all(s), s.rx, s.ry, is_buy, total_input, corrected, scale)
        total_scaled = jnp.maximum(f64_to_u64(total_input * SCALE_F), jnp.uint64(1))
        for i in range(n + 1):
            active = inputs[i] != 0
            s = _execute(s, i, active, is_buy, inputs[i], outputs[i], fair, scale)
            if i < n:
                flow = inputs[i].astype(jnp.float32) / total_scaled.astype(jnp.float32)
                s = notify(s, i, active, is_buy, inputs[i], outputs[i], step, flow, n + 1)
        return s, step, fair

    def rebalance(s: SimState, epoch_number):
        edge = s.epoch_edge[:n]
        score = edge - config.lam * jnp.maximum(0.0, -edge)
        max_s, min_s = jnp.max(score), jnp.min(score)
        spread = jnp.maximum((max_s - min_s) / forty, 1.0)
        denom = config.softmax_temperature * spread
        # Element by element: XLA rewrites vector / broadcast(scalar) as a reciprocal product.
        exps = _glibc_exp(jnp.stack([(score[i] - max_s) / denom for i in range(n)]))
        sum_exp = jnp.float64(0.0)
        for i in range(n):
            sum_exp = sum_exp + exps[i]
        raw = jnp.stack([exps[i] / sum_exp for i in range(n)])
        floor_total = config.min_capital_weight * n
        if config.min_capital_weight > 0.0 and floor_total < 1.0:
            w = config.min_capital_weight + (1.0 - floor_total) * raw
        else:
            w = raw
        total = jnp.float64(0.0)
        for i in range(n):
            total = total + w[i]
        w = jnp.stack([w[i] / total for i in range(n)])
        total_capital = jnp.uint64(0)
        for i in range(n):
            total_capital = total_capital + s.ry[i] * jnp.uint64(2)
        target = f64_to_u64(u64_to_f64(total_capital) * w)
        new_ry = jnp.maximum(target // jnp.uint64(2), jnp.uint64(1_000_000_000))
        spot = u64_to_f64(s.ry[:n]) / u64_to_f64(s.rx[:n])
        new_rx = f64_to_u64(jnp.maximum(u64_to_f64(new_ry) / spot, 1.0))
        e = s.n_epochs
        s = s._replace(
            rx=s.rx.at[:n].set(new_rx), ry=s.ry.at[:n].set(new_ry),
            capital_weight=s.capital_weight.at[:n].set(w),
            log_edge=s.log_edge.at[:, e].set(edge), log_trades=s.log_trades.at[:, e].set(s.epoch_trades[:n]),
            log_score=s.log_score.at[:, e].set(score), n_epochs=e + 1,
            epoch_edge=s.epoch_edge.at[:n].set(0.0), epoch_trades=s.epoch_trades.at[:n].set(0))
        states = list(s.pool_states)
        for i in range(n):
            obs = EpochObs(active=jnp.bool_(True), epoch_number=epoch_number.astype(jnp.uint32),
                           reserve_x=s.rx[i], reserve_y=s.ry[i], epoch_edge=edge[i],
                           cumulative_edge=s.cumulative_edge[i],
                           capital_weight=s.capital_weight[i].astype(jnp.float32))
            states[i] = pools[i].on_epoch(params[i], states[i], obs)
        return s._replace(pool_states=tuple(states))

    def step_fn(s: SimState, step):
        fair = tape.fair_price[step]
        for i in range(n):
            trade, is_buy, a_in, a_out = arbitrage(quote_of(s, i), s.rx[i], s.ry[i], fair,
                                                   config.arb_profit_floor, corrected,
                                                   bracket_scaled=not corrected, scale=scale)
            s = _execute(s, i, trade, is_buy, a_in, a_out, fair, scale)
            s = notify(s, i, trade, is_buy, a_in, a_out, step, 0.0, n + 1 if corrected else n)
        trade, is_buy, a_in, a_out = arbitrage(lambda b, x: quote_all(s)(n, b, x), s.rx[n],
                                               s.ry[n], fair, config.arb_profit_floor,
                                               corrected, bracket_scaled=False, scale=scale)
        s = _execute(s, n, trade, is_buy, a_in, a_out, fair, scale)
        s, _, _ = lax.fori_loop(tape.order_start[step], tape.order_start[step + 1], retail,
                                (s, step, fair))
        at_end = ((step + 1) % epoch_len == 0) & (step != steps - 1)
        s = lax.cond(at_end, lambda s: rebalance(s, (step + 1) // epoch_len - 1), lambda s: s, s)
        out = None
        if trace_steps:
            hashes = jnp.stack([_fnv1a(st) if st is not None and jnp.shape(st) == (1024,)
                                else _fnv1a(jnp.zeros(1024, jnp.uint8)) for st in s.pool_states]
                               + [_fnv1a(jnp.zeros(1024, jnp.uint8))])
            out = (s.rx, s.ry, s.cumulative_edge, s.capital_weight, hashes)
        return s, out

    base_x, base_y = config.base_reserve_x, config.base_reserve_y
    mult = jnp.asarray(tape.norm_liquidity_mult, jnp.float64)
    norm_rx = f64_to_u64(jnp.float64(base_x) * mult)
    norm_ry = f64_to_u64(jnp.float64(base_y) * mult)
    init = SimState(
        rx=jnp.concatenate([jnp.full((n,), base_x, jnp.uint64), norm_rx[None]]),
        ry=jnp.concatenate([jnp.full((n,), base_y, jnp.uint64), norm_ry[None]]),
        cumulative_edge=jnp.zeros(n + 1), epoch_edge=jnp.zeros(n + 1),
        epoch_trades=jnp.zeros(n + 1, jnp.int64),
        capital_weight=jnp.concatenate([jnp.full((n,), 1.0 / n), jnp.ones(1)]),
        pool_states=tuple(p.init_state(pp) for p, pp in zip(pools, params)),
        log_edge=jnp.zeros((n, n_epochs)), log_trades=jnp.zeros((n, n_epochs), jnp.int64),
        log_score=jnp.zeros((n, n_epochs)), n_epochs=jnp.int32(0))
    final, trace = lax.scan(step_fn, init, jnp.arange(steps))
    return final, trace


def _fnv1a(storage):
    def body(k, h):
        h = h ^ storage[k].astype(jnp.uint64)
        return h * jnp.uint64(0x100000001B3)
    return lax.fori_loop(0, storage.shape[0], body, jnp.uint64(0xCBF29CE484222325))
