"""The fast path: thousands of simulations of constant-product-family pools as one program.

Reserves are continuous (unscaled f64: 1.0 = one unit) and the solvers are closed forms
(`solvers/closed_form.py`), so a step is a few dozen vector operations and everything is
differentiable with respect to fees and policy parameters.

Orders are not padded per step. Each simulation becomes a sequence of *events*, one per order
(or one per step without orders); the first event of a step also moves the price and runs the
arbitrage, the last one closes the epoch. A seed with T steps and K orders has about
T * P(no order) + K events, and the scan runs over the longest sequence in the batch.

Profiles:
- `corrected`: optimal arbitrage against the fair price (above a 0.01 Y profit floor) and the
  exact equimarginal split of every order.
- `reference`: what the published solvers amount to for this family. The arbitrage searches in
  the wrong direction and never trades. The router's shadow price collapses to zero, so an
  order is split pro rata to the pools' input-side reserves, except a sell order too large for
  the first bisection probe (at 0.75 of the best marginal at zero), which the published router
  drives to a price no pool accepts: it is dropped.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from propamm_jax.config import SimConfig
from propamm_jax.pools.base import EpochObs as FastEpochObs, FeeView, TradeObs as FastObs
from propamm_jax.solvers.closed_form import (
    cpamm_out, optimal_arbitrage, published_split, reference_router_split)

SCALE_F = 1e9


class Events(NamedTuple):
    """Per-simulation event sequences (leading axis: simulations, then events)."""

    step: jnp.ndarray      # int32: the step this event belongs to
    first: jnp.ndarray     # bool: first event of its step (price move + arbitrage)
    order: jnp.ndarray     # bool: carries a retail order
    last: jnp.ndarray      # bool: last event of its step (epoch boundary check)
    is_buy: jnp.ndarray    # bool: the order buys X
    size: jnp.ndarray      # order size in Y


class Market(NamedTuple):
    """Per-simulation inputs besides the events."""

    fair_price: jnp.ndarray         # [T]
    norm_fee: jnp.ndarray           # fraction
    norm_liquidity_mult: jnp.ndarray


class FastState(NamedTuple):
    rx: jnp.ndarray               # [N+1], normalizer last
    ry: jnp.ndarray
    cumulative_edge: jnp.ndarray  # [N+1] (inside the loop: closed epochs only, see `book`)
    epoch_edge: jnp.ndarray
    epoch_trades: jnp.ndarray
    capital_weight: jnp.ndarray   # [N]
    pool_states: tuple
    log_edge: jnp.ndarray         # [N, E]
    log_trades: jnp.ndarray
    log_score: jnp.ndarray
    n_epochs: jnp.ndarray
    fair: jnp.ndarray             # the current step's fair price
    step: jnp.ndarray             # the current step


FIRST, ORDER, LAST, BUY = 1, 2, 4, 8  # bits of a packed event's flags


class Packed(NamedTuple):
    """Events as the loop reads them: [events, sims] (simulations on the minor axis), the four
    flags in one byte, 19-21 bytes an event.

    `price` is the fair price of the event's step, or, from `pack_events`, the step's GBM
    factor on its first event and 1.0 on the others: the loop multiplies them up from the
    initial price, the same products in the same order as `Tape.fair_prices` (x * 1.0 is
    exact), so the host never computes or gathers a price path."""

    step: jnp.ndarray    # int16 (or int32 past 32 767 steps)
    flags: jnp.ndarray   # uint8: FIRST | ORDER | LAST | BUY
    size: jnp.ndarray    # order size in Y (0 without an order)
    price: jnp.ndarray   # fair price, or GBM factor (see above)


def pack_events(tape, config: SimConfig, dtype=np.float64, width: int | None = None,
                rows: int | None = None, block: int = 256) -> Packed:
    """`Packed` events of a `Tape` on the host, built `block` seeds at a time straight into the
    transposed arrays (so a 10 000-seed batch never holds a second copy). `rows` > seeds pads
    the batch by repeating the last seed."""
    s = len(tape.seeds)
    rows = max(rows or s, s)
    width = width or event_width(tape)
    out = Packed(np.empty((width, rows), step_dtype(tape.steps)), np.empty((width, rows), np.uint8),
                 np.empty((width, rows), dtype), np.empty((width, rows), dtype))
    for lo in range(0, s, block):
        hi = min(lo + block, s)
        part = tape_rows(tape, lo, hi)
        ev = build_events(part, dtype, width)
        factor = np.ones(ev.size.shape, dtype)
        factor[ev.first] = part.gbm_factor.ravel()  # one first event per step, in order
        bits = lambda a, k: a.view(np.uint8) << np.uint8(k)  # noqa: E731 (bool -> bit k)
        flags = bits(ev.first, 0) | bits(ev.order, 1) | bits(ev.last, 2) | bits(ev.is_buy, 3)
        out.step[:, lo:hi] = ev.step.T
        out.flags[:, lo:hi] = flags.T
        out.size[:, lo:hi] = ev.size.T
        out.price[:, lo:hi] = factor.T
    for a in out:
        a[:, s:] = a[:, s - 1 : s]
    return out


def step_dtype(steps: int):
    """The packed step index type: int16 while the steps fit."""
    return np.int16 if steps <= np.iinfo(np.int16).max else np.int32


def tape_rows(tape, lo: int, hi: int):
    """Seeds `lo:hi` of a `Tape`, as a `Tape`."""
    p = tape.params
    return type(tape)(tape.seeds[lo:hi], type(p)(*(a[lo:hi] for a in p)),
                      tape.gbm_factor[lo:hi], tape.order_start[lo:hi],
                      tape.order_is_buy[lo:hi], tape.order_size[lo:hi])


def build_events(tape, dtype=np.float64, width: int | None = None) -> Events:
    """Event sequences for every seed of a `Tape`, padded with no-ops to `width` events
    (default: the longest sequence; `event_width` rounds it up so that batches share one
    compiled program). Host numpy arrays, which `simulate_batch` takes as they are. Row by
    row: each row's arrays stay in cache, which beats one vectorised pass (and XLA's gathers
    and cumulative sums on a CPU)."""
    counts = tape.order_count
    per_step = np.maximum(counts, 1)
    lengths = per_step.sum(axis=1)
    width = max(int(lengths.max()), width or 0)
    s = len(tape.seeds)
    out = {k: np.zeros((s, width), bool) for k in ("first", "order", "last", "is_buy")}
    step = np.full((s, width), counts.shape[1] - 1, np.int32)
    size = np.zeros((s, width), dtype)
    arange = np.arange(counts.shape[1], dtype=np.int32)
    for row in range(s):
        n = int(lengths[row])
        steps = np.repeat(arange, per_step[row])
        step[row, :n] = steps
        change = steps[1:] != steps[:-1]          # a new step starts at the next event
        out["first"][row, 0] = True
        out["first"][row, 1:n] = change
        out["last"][row, : n - 1] = change
        out["last"][row, n - 1] = True
        has = counts[row][steps] > 0
        out["order"][row, :n] = has
        at = np.flatnonzero(has)
        out["is_buy"][row, at] = tape.order_is_buy[row, : len(at)]
        size[row, at] = tape.order_size[row, : len(at)]
    return Events(step, out["first"], out["order"], out["last"], out["is_buy"], size)


def event_width(tape, block: int = 1024) -> int:
    """The longest event sequence of a `Tape`, rounded up to a multiple of `block`."""
    longest = int(np.maximum(tape.order_count, 1).sum(axis=1).max())
    return -(-longest // block) * block


def build_market(tape, config: SimConfig, dtype=np.float64) -> Market:
    """Per-seed market inputs of a `Tape` (host numpy arrays)."""
    return Market(np.asarray(tape.fair_prices(config.initial_price), dtype),
                  np.asarray(tape.params.norm_fee_bps / 10_000.0, dtype),
                  np.asarray(tape.params.norm_liquidity_mult, dtype))


def _competitors(after, before, i: int, n: int):
    """Pool i's view of the other pools' spot prices: up to 8, normalizer included, NaN-padded.

    As in the engine, pools are booked and told in index order (the normalizer last), so
    pool i sees the pools before it after their trade and the ones after it before theirs.
    (The payload carries them as f32; rounding them here would make the objective a staircase
    for gradients, and changes the gap feature by ~1e-7.)"""
    others = [j for j in range(n) if j != i][:8]
    if len(others) < 8:
        others.append(n)
    nan = jnp.full_like(after[0], jnp.nan)
    seen = [(after if j < i else before)[j] for j in others]
    return jnp.stack(seen + [nan] * (8 - len(others)))


def _program(pools: Sequence[Any], config: SimConfig, profile: str, smooth: float,
             batch: int, params_batched: bool, absolute_price: bool = True):
    """The initial state and the per-event transition of `batch` simulations.

    Every array carries the simulations on its LAST axis (`rx`: [pools + 1, batch]), so each
    operation of the step is one contiguous vector over simulations; `jax.vmap` would put the
    batch first and leave XLA many 3-element rows (about half the speed on CPU). Only the
    pools' own methods, which see one simulation, are vmapped (over that last axis).
    """
    corrected = profile == "corrected"
    n = len(pools)
    epoch_len, steps = config.epoch_len, config.steps
    n_epochs = max((steps - 1) // epoch_len, 1)
    floor = config.arb_profit_floor
    p_axis = -1 if params_batched else None
    pool_fees = [jax.vmap(p.fees, in_axes=(p_axis, -1, -1), out_axes=-1, axis_size=batch)
                 for p in pools]
    on_trade = [jax.vmap(p.on_trade, in_axes=(p_axis, -1, -1), out_axes=-1, axis_size=batch)
                for p in pools]
    on_epoch = [jax.vmap(p.on_epoch, in_axes=(p_axis, -1, -1), out_axes=-1, axis_size=batch)
                for p in pools]

    def fees(s: FastState, params, norm_fee):
        buy, sell = [], []
        for i in range(n):
            view = FeeView(s.fair, s.rx[i], s.ry[i], s.step)
            fb, fs = pool_fees[i](params[i], s.pool_states[i], view)
            buy.append(fb)
            sell.append(fs)
        buy.append(norm_fee)
        sell.append(norm_fee)
        dtype = s.rx.dtype
        return 1.0 - jnp.stack(buy).astype(dtype), 1.0 - jnp.stack(sell).astype(dtype)

    def book(s: FastState, active, dx, dy, fair):
        """Vector version of the reference's accrue_edge + apply (all pools at once): the pool
        receives `dx` X and `dy` Y (negative: pays out) and earns `dx * fair + dy`.

        `active` is a bool, or with `smooth` a weight in [0, 1] that blends the traded and
        untraded states (a relaxation used for gradients)."""
        w = jnp.asarray(active).astype(s.rx.dtype)
        dx = jnp.where(w > 0.0, dx, 0.0)   # keep NaN/inf of inactive lanes out of gradients
        dy = jnp.where(w > 0.0, dy, 0.0)
        edge = w * (dx * fair + dy)
        # Only the epoch's edge accumulates here; closed epochs move into `cumulative_edge`
        # at the rebalance (and the open one at the end): one consumer fewer of the whole
        # trade computation, which XLA would otherwise evaluate once more.
        return s._replace(rx=s.rx + w * dx, ry=s.ry + w * dy, epoch_edge=s.epoch_edge + edge,
                          epoch_trades=s.epoch_trades + (w > 0.5).astype(s.epoch_trades.dtype))

    def notify(s: FastState, before: FastState, params, active, is_buy, a_in, a_out, step,
               flow):
        spot, spot_before = s.ry / s.rx, before.ry / before.rx
        is_buy = jnp.broadcast_to(is_buy, active.shape)
        states = list(s.pool_states)
        for i in range(n):
            obs = FastObs(active=active[i], is_buy=is_buy[i], amount_in=a_in[i],
                          amount_out=a_out[i], reserve_x=s.rx[i], reserve_y=s.ry[i], step=step,
                          epoch_step=step % epoch_len, epoch_number=step // epoch_len,
                          flow=flow[i], capital_weight=s.capital_weight[i],
                          competitor_prices=_competitors(spot, spot_before, i, n))
            states[i] = on_trade[i](params[i], states[i], obs)
        return s._replace(pool_states=tuple(states))

    def arbitrage(s: FastState, params, norm_fee, fair, step, go):
        if not corrected:
            return s  # the published arbitrage never trades on this family (see module doc)
        gb, gs = fees(s, params, norm_fee)
        buy, a_in, a_out, profit = optimal_arbitrage(s.rx, s.ry, fair, gb, gs)
        if smooth > 0.0:  # a sigmoid instead of the hard profit floor (for gradients)
            active = jnp.where(go & (a_in > 0.0), jax.nn.sigmoid((profit - floor) / smooth), 0.0)
        else:
            active = go & (profit >= floor) & (a_in > 0.0)
        booked = book(s, active, jnp.where(buy, -a_out, a_in), jnp.where(buy, a_in, -a_out), fair)
        return notify(booked, s, params, active[:n], buy[:n], a_in[:n], a_out[:n], step,
                      jnp.zeros_like(s.rx[:n]))

    def retail(s: FastState, params, norm_fee, ev_is_buy, size, fair, step, go):
        gb, gs = fees(s, params, norm_fee)
        gamma = jnp.where(ev_is_buy, gb, gs)
        r_in = jnp.where(ev_is_buy, s.ry, s.rx)
        r_out = jnp.where(ev_is_buy, s.rx, s.ry)
        total = jnp.where(ev_is_buy, size, size / fair)
        if corrected:
            split = reference_router_split(total, r_in, r_out, gamma)
        else:
            spot_floor = jnp.floor(s.ry / s.rx)
            split = published_split(total, r_in, r_out, gamma, spot_floor, ~ev_is_buy)
        out = cpamm_out(split, r_in, r_out, gamma)
        active = go & (split > 0.0)
        booked = book(s, active, jnp.where(ev_is_buy, -out, split),
                      jnp.where(ev_is_buy, split, -out), fair)
        flow = split / jnp.maximum(total, 1e-9)
        return notify(booked, s, params, active[:n], ev_is_buy, split[:n], out[:n], step,
                      flow[:n])

    def rebalance(s: FastState, params, go, step):
        edge = s.epoch_edge[:n]
        score = edge - config.lam * jnp.maximum(0.0, -edge)
        spread = jnp.maximum((jnp.max(score, axis=0) - jnp.min(score, axis=0)) / 40.0, 1.0)
        w = jax.nn.softmax(score / (config.softmax_temperature * spread), axis=0)
        floor_total = config.min_capital_weight * n
        if config.min_capital_weight > 0.0 and floor_total < 1.0:
            w = config.min_capital_weight + (1.0 - floor_total) * w
        w = w / jnp.sum(w, axis=0)
        total = jnp.sum(2.0 * s.ry[:n], axis=0)
        new_ry = jnp.maximum(total * w / 2.0, 1.0)
        new_rx = jnp.maximum(new_ry / (s.ry[:n] / s.rx[:n]), 1.0 / SCALE_F)
        # Only lanes at an epoch end (`go`) change. The log column is a mask rather than a
        # dynamic index, which vmap would turn into a scatter.
        col = (jnp.arange(n_epochs)[:, None] == jnp.minimum(s.n_epochs, n_epochs - 1)[None]) & go
        keep = lambda new, old: jnp.where(go, new, old)  # noqa: E731
        new_rx, new_ry = keep(new_rx, s.rx[:n]), keep(new_ry, s.ry[:n])
        states = list(s.pool_states)
        for i in range(n):
            obs = FastEpochObs(go, (step + 1) // epoch_len - 1, new_rx[i], new_ry[i], edge[i],
                               s.cumulative_edge[i] + edge[i], w[i])
            states[i] = jax.tree_util.tree_map(
                keep, on_epoch[i](params[i], states[i], obs), states[i])
        return s._replace(
            rx=jnp.concatenate([new_rx, s.rx[n:]]), ry=jnp.concatenate([new_ry, s.ry[n:]]),
            capital_weight=keep(w, s.capital_weight),
            cumulative_edge=jnp.concatenate([
                keep(s.cumulative_edge[:n] + edge, s.cumulative_edge[:n]), s.cumulative_edge[n:]]),
            log_edge=jnp.where(col, edge[:, None], s.log_edge),
            log_trades=jnp.where(col, s.epoch_trades[:n, None], s.log_trades),
            log_score=jnp.where(col, score[:, None], s.log_score),
            n_epochs=s.n_epochs + go.astype(s.n_epochs.dtype),
            epoch_edge=jnp.concatenate([keep(0.0, edge), s.epoch_edge[n:]]),
            epoch_trades=jnp.concatenate([keep(0, s.epoch_trades[:n]), s.epoch_trades[n:]]),
            pool_states=tuple(states))

    def body(s: FastState, ev, params, norm_fee):
        step, flags, size, price = ev
        fair = price if absolute_price else s.fair * price
        step = step.astype(jnp.int32)
        s = s._replace(fair=fair, step=step)
        first, order = (flags & FIRST) != 0, (flags & ORDER) != 0
        last, is_buy = (flags & LAST) != 0, (flags & BUY) != 0
        s = arbitrage(s, params, norm_fee, fair, step, first)
        s = retail(s, params, norm_fee, is_buy, size, fair, step, order)
        at_end = last & ((step + 1) % epoch_len == 0) & (step != steps - 1)
        # A real branch: the rebalance runs only on events where some simulation of the batch
        # closes an epoch (about 9 events in 12 000 per simulation).
        return lax.cond(jnp.any(at_end), lambda s: rebalance(s, params, at_end, step),
                        lambda s: s, s)

    def init(params, norm_liquidity_mult, dtype):
        base_x = config.base_reserve_x / SCALE_F
        base_y = config.base_reserve_y / SCALE_F
        mult = norm_liquidity_mult.astype(dtype)
        states = tuple(jax.vmap(p.init_state, in_axes=(p_axis,), out_axes=-1, axis_size=batch)(pp)
                       for p, pp in zip(pools, params))
        zeros = jnp.zeros((n + 1, batch), dtype)
        return FastState(
            rx=jnp.concatenate([jnp.full((n, batch), base_x, dtype), (base_x * mult)[None]]),
            ry=jnp.concatenate([jnp.full((n, batch), base_y, dtype), (base_y * mult)[None]]),
            cumulative_edge=zeros, epoch_edge=zeros,
            epoch_trades=jnp.zeros((n + 1, batch), jnp.int32),
            capital_weight=jnp.full((n, batch), 1.0 / n, dtype), pool_states=states,
            log_edge=jnp.zeros((n, n_epochs, batch), dtype),
            log_trades=jnp.zeros((n, n_epochs, batch), jnp.int32),
            log_score=jnp.zeros((n, n_epochs, batch), dtype),
            n_epochs=jnp.zeros((batch,), jnp.int32),
            fair=jnp.full((batch,), config.initial_price, dtype),
            step=jnp.zeros((batch,), jnp.int32))

    return init, body


def simulate_batch(pools: Sequence[Any], params: Sequence[Any], config: SimConfig,
                   profile: str, market: Market, events: Events, smooth: float = 0.0,
                   params_batched: bool = False) -> FastState:
    """Many simulations on the closed-form solvers, one per row of `market` and `events`.

    `params` are shared by every simulation, or with `params_batched=True` carry the same
    leading axis as the events (population x seeds: repeat and tile onto one axis). Returns
    the final states with that axis leading (`rx`: [sims, pools + 1]).

    `smooth > 0` replaces the arbitrage's hard 0.01 Y profit floor by a sigmoid of that
    width (in Y), blending traded and untraded states: the only discontinuity of the
    corrected profile, so gradients of the smoothed objective agree with finite differences.
    Evaluate with the default 0.
    """
    fair = jnp.take_along_axis(jnp.asarray(market.fair_price), jnp.asarray(events.step), axis=1)
    flags = (jnp.asarray(events.first) * FIRST | jnp.asarray(events.order) * ORDER
             | jnp.asarray(events.last) * LAST | jnp.asarray(events.is_buy) * BUY)
    packed = Packed(*(jnp.swapaxes(jnp.asarray(x), 0, 1) for x in (
        events.step, flags.astype(jnp.uint8), events.size, fair)))
    return simulate_packed(pools, params, config, profile, market.norm_fee,
                           market.norm_liquidity_mult, packed, smooth, params_batched,
                           absolute_price=True)


def simulate_packed(pools: Sequence[Any], params: Sequence[Any], config: SimConfig,
                    profile: str, norm_fee, norm_liquidity_mult, packed: Packed,
                    smooth: float = 0.0, params_batched: bool = False,
                    absolute_price: bool = False) -> FastState:
    """`simulate_batch` on events already packed and transposed (`pack_events`), the form
    the loop reads: what `propamm simulate` uses, so that no device copy of the events is
    ever made. `absolute_price`: `packed.price` holds fair prices rather than GBM factors."""
    batch = packed.step.shape[1]
    init, body = _program(pools, config, profile, smooth, batch, params_batched, absolute_price)
    dtype = packed.price.dtype
    if params_batched:
        params = jax.tree_util.tree_map(lambda a: jnp.moveaxis(jnp.asarray(a), 0, -1), params)
    s0 = init(params, jnp.asarray(norm_liquidity_mult), dtype)
    norm_fee = jnp.asarray(norm_fee, dtype)
    final, _ = lax.scan(lambda s, ev: (body(s, ev, params, norm_fee), None), s0, tuple(packed))
    final = final._replace(cumulative_edge=final.cumulative_edge + final.epoch_edge)
    return jax.tree_util.tree_map(lambda a: jnp.moveaxis(a, -1, 0), final)


def simulate_fast(pools: Sequence[Any], params: Sequence[Any], config: SimConfig, profile: str,
                  market: Market, events: Events, smooth: float = 0.0) -> FastState:
    """One simulation (`market` and `events` without the leading axis): `simulate_batch` of
    one. To run many, call `simulate_batch`, which is faster than `jax.vmap` of this."""
    one = jax.tree_util.tree_map(lambda a: jnp.asarray(a)[None], (market, events))
    final = simulate_batch(pools, params, config, profile, *one, smooth=smooth)
    return jax.tree_util.tree_map(lambda a: a[0], final)
