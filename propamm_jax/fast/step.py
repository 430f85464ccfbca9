"""The fast engine's step, in the gymnax manner: `init` a typed `State`, then `step` it.

    engine = Engine(pools, config, "corrected")
    state = engine.init(params, market)             # or init(engine, params, market)
    state = engine.step(state, event, params, market)

`Engine` is a frozen dataclass holding what is static (pools, config, profile, smoothing, and
whether `params` carry the simulations' axis), so `engine.step` is a plain function of pytrees
that `jit`, `lax.scan` (`fast.runner`) and `jax.vmap` take as they are. A state, event and
market may carry simulations on their LAST axis (`rx`: [pools + 1, sims]: the layout the
runner uses, each operation one contiguous vector), or have no such axis (one simulation:
vmap `step` over it, simulations first; about half the speed on a CPU).

One step, as the native core: the price moves and every pool (then the normalizer) is
arbitraged on the step's first event; each event with a retail order routes it across the
pools; the rebalance closes the epoch on its last event. Pools are told of every own trade
(`on_trade`) and epoch end (`on_epoch`). The solvers are the pool family's closed forms where
it has them and the generic ones of `fast.solvers` otherwise; `curves.py` picks.

Profiles:
- `corrected`: optimal arbitrage against the fair price (above a 0.01 Y profit floor) and the
  equimarginal split of every order as the corrected published router measures marginals.
- `reference`: what the published solvers amount to for the constant-product family. The
  arbitrage searches in the wrong direction and never trades. The router's shadow price
  collapses to zero, so an order is split pro rata to the pools' input-side reserves, except a
  sell order too large for the first bisection probe (at 0.75 of the best marginal at zero),
  which the published router drives to a price no pool accepts: it is dropped. A family
  without such a model (`reference_route`) cannot run in this profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from propamm_jax.config import SimConfig, check_profile
from propamm_jax.fast import curves
from propamm_jax.fast.curves import per_sim
from propamm_jax.fast.types import BUY, FIRST, LAST, ORDER, Event, Market, State
from propamm_jax.pools.base import EpochObs, FeeView, TradeObs

SCALE_F = 1e9


@dataclass(frozen=True)
class Engine:
    """What a step holds static. `smooth > 0` replaces the arbitrage's hard profit floor by a
    sigmoid of that width (in Y), blending traded and untraded states (for gradients; score
    with 0). `batched_params`: every leaf of `params` carries the simulations' last axis
    (a population or a grid: one parameter set per simulation)."""

    pools: tuple
    config: SimConfig = SimConfig()
    profile: str = "corrected"
    smooth: float = 0.0
    batched_params: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "pools", tuple(self.pools))
        object.__setattr__(self, "profile", check_profile(self.profile))
        curves.check_profile_support(self.pools, self.profile)

    @property
    def n_epochs(self) -> int:
        return max((self.config.steps - 1) // self.config.epoch_len, 1)

    def init(self, params, market: Market) -> State:
        return init(self, params, market)

    def step(self, state: State, event: Event, params, market: Market) -> State:
        return step(self, state, event, params, market)


def init(eng: Engine, params, market: Market) -> State:
    """The state before the first event: base reserves (the normalizer's times its liquidity
    multiplier), equal capital weights, each pool's `init_state`."""
    config, n = eng.config, len(eng.pools)
    mult = jnp.asarray(market.norm_liquidity_mult)
    dtype, batch = mult.dtype, mult.shape
    base_x, base_y = config.base_reserve_x / SCALE_F, config.base_reserve_y / SCALE_F
    states = tuple(per_sim(eng, p.init_state, batch, 0)(pp) for p, pp in zip(eng.pools, params))
    zeros = jnp.zeros((n + 1,) + batch, dtype)
    logs = jnp.zeros((n, eng.n_epochs) + batch, dtype)
    return State(
        rx=jnp.concatenate([jnp.full((n,) + batch, base_x, dtype), (base_x * mult)[None]]),
        ry=jnp.concatenate([jnp.full((n,) + batch, base_y, dtype), (base_y * mult)[None]]),
        cumulative_edge=zeros, epoch_edge=zeros,
        epoch_trades=jnp.zeros((n + 1,) + batch, jnp.int32),
        capital_weight=jnp.full((n,) + batch, 1.0 / n, dtype), pool_states=states,
        log_edge=logs, log_trades=jnp.zeros(logs.shape, jnp.int32), log_score=logs,
        n_epochs=jnp.zeros(batch, jnp.int32), fair=jnp.full(batch, config.initial_price, dtype),
        step=jnp.zeros(batch, jnp.int32))


def step(eng: Engine, s: State, ev: Event, params, market: Market) -> State:
    """One event of every simulation (see the module doc)."""
    config = eng.config
    step_ = jnp.asarray(ev.step).astype(jnp.int32)
    s = s._replace(fair=s.fair * ev.price, step=step_)
    first, order = (ev.flags & FIRST) != 0, (ev.flags & ORDER) != 0
    last, is_buy = (ev.flags & LAST) != 0, (ev.flags & BUY) != 0
    norm_fee = jnp.asarray(market.norm_fee, s.rx.dtype)
    s = arbitrage(eng, s, params, norm_fee, first)
    s = retail(eng, s, params, norm_fee, is_buy, ev.size, order)
    at_end = last & ((step_ + 1) % config.epoch_len == 0) & (step_ != config.steps - 1)
    # A real branch: the rebalance runs only on events where some simulation of the batch
    # closes an epoch (about 9 events in 12 000 per simulation).
    return lax.cond(jnp.any(at_end), lambda s: rebalance(eng, s, params, at_end),
                    lambda s: s, s)


def gammas(eng: Engine, s: State, params, norm_fee):
    """(1 - buy fee, 1 - sell fee) of every pool, the normalizer last: [N+1, ...]."""
    buy, sell = [], []
    for i, pool in enumerate(eng.pools):
        view = FeeView(s.fair, s.rx[i], s.ry[i], s.step)
        fb, fs = per_sim(eng, pool.fees, s.fair.shape, 2)(params[i], s.pool_states[i], view)
        buy.append(fb)
        sell.append(fs)
    buy.append(norm_fee)
    sell.append(norm_fee)
    dtype = s.rx.dtype
    return 1.0 - jnp.stack(buy).astype(dtype), 1.0 - jnp.stack(sell).astype(dtype)


def book(eng: Engine, s: State, active, dx, dy) -> State:
    """Every pool at once (the reference's accrue_edge + apply): pool i receives `dx[i]` X and
    `dy[i]` Y (negative: pays out) and earns `dx * fair + dy`. `active` is a bool, or with
    smoothing a weight in [0, 1] that blends the traded and untraded states."""
    w = jnp.asarray(active).astype(s.rx.dtype)
    dx = jnp.where(w > 0.0, dx, 0.0)   # keep NaN/inf of inactive lanes out of gradients
    dy = jnp.where(w > 0.0, dy, 0.0)
    edge = w * (dx * s.fair + dy)
    # Only the epoch's edge accumulates here; closed epochs move into `cumulative_edge` at
    # the rebalance (and the open one at `close`): one consumer fewer of the whole trade
    # computation, which XLA would otherwise evaluate once more.
    return s._replace(rx=s.rx + w * dx, ry=s.ry + w * dy, epoch_edge=s.epoch_edge + edge,
                      epoch_trades=s.epoch_trades + (w > 0.5).astype(s.epoch_trades.dtype))


def competitors(after, before, i: int, n: int):
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


def notify(eng: Engine, s: State, before: State, params, active, is_buy, a_in, a_out,
           flow) -> State:
    """Each pool's `on_trade` with its after-swap observation (arrays over pools [N, ...])."""
    n, epoch_len = len(eng.pools), eng.config.epoch_len
    spot, spot_before = s.ry / s.rx, before.ry / before.rx
    is_buy = jnp.broadcast_to(is_buy, active.shape)
    states = list(s.pool_states)
    for i, pool in enumerate(eng.pools):
        obs = TradeObs(active=active[i], is_buy=is_buy[i], amount_in=a_in[i],
                       amount_out=a_out[i], reserve_x=s.rx[i], reserve_y=s.ry[i], step=s.step,
                       epoch_step=s.step % epoch_len, epoch_number=s.step // epoch_len,
                       flow=flow[i], capital_weight=s.capital_weight[i],
                       competitor_prices=competitors(spot, spot_before, i, n))
        states[i] = per_sim(eng, pool.on_trade, s.fair.shape, 2)(params[i], states[i], obs)
    return s._replace(pool_states=tuple(states))


def arbitrage(eng: Engine, s: State, params, norm_fee, go) -> State:
    """The step's arbitrage of every pool at the fair price (on its first event, `go`)."""
    if eng.profile == "reference":
        return s  # the published arbitrage never trades on this family (see module doc)
    n, floor = len(eng.pools), eng.config.arb_profit_floor
    gb, gs = gammas(eng, s, params, norm_fee)
    buy, a_in, a_out, profit = curves.arbitrage(eng, s, params, gb, gs)
    if eng.smooth > 0.0:  # a sigmoid instead of the hard profit floor (for gradients)
        active = jnp.where(go & (a_in > 0.0),
                           jax.nn.sigmoid((profit - floor) / eng.smooth), 0.0)
    else:
        active = go & (profit >= floor) & (a_in > 0.0)
    booked = book(eng, s, active, jnp.where(buy, -a_out, a_in), jnp.where(buy, a_in, -a_out))
    return notify(eng, booked, s, params, active[:n], buy[:n], a_in[:n], a_out[:n],
                  jnp.zeros_like(s.rx[:n]))


def retail(eng: Engine, s: State, params, norm_fee, is_buy, size, go) -> State:
    """The event's retail order (where `go`), split across the pools by the router."""
    n = len(eng.pools)
    gb, gs = gammas(eng, s, params, norm_fee)
    gamma = jnp.where(is_buy, gb, gs)
    total = jnp.where(is_buy, size, size / s.fair)
    split = curves.route(eng, s, params, is_buy, total, gamma)
    out = curves.amount_out(eng, s, params, is_buy, gamma * split)
    active = go & (split > 0.0)
    booked = book(eng, s, active, jnp.where(is_buy, -out, split), jnp.where(is_buy, split, -out))
    flow = split / jnp.maximum(total, 1e-9)
    return notify(eng, booked, s, params, active[:n], is_buy, split[:n], out[:n], flow[:n])


def capital_weights(eng: Engine, edge):
    """The epoch's risk scores and the softmax capital weights they earn (the rebalance rule
    of the native core)."""
    config, n = eng.config, edge.shape[0]
    score = edge - config.lam * jnp.maximum(0.0, -edge)
    spread = jnp.maximum((jnp.max(score, axis=0) - jnp.min(score, axis=0)) / 40.0, 1.0)
    w = jax.nn.softmax(score / (config.softmax_temperature * spread), axis=0)
    floor_total = config.min_capital_weight * n
    if config.min_capital_weight > 0.0 and floor_total < 1.0:
        w = config.min_capital_weight + (1.0 - floor_total) * w
    return score, w / jnp.sum(w, axis=0)


def rebalance(eng: Engine, s: State, params, go) -> State:
    """Closes the epoch where `go`: capital moves to the pools by softmax of their risk
    scores (each keeps its spot), the epoch is logged, and pools are told (`on_epoch`)."""
    n, epoch_len, n_epochs = len(eng.pools), eng.config.epoch_len, eng.n_epochs
    edge = s.epoch_edge[:n]
    score, w = capital_weights(eng, edge)
    total = jnp.sum(2.0 * s.ry[:n], axis=0)
    new_ry = jnp.maximum(total * w / 2.0, 1.0)
    new_rx = jnp.maximum(new_ry / (s.ry[:n] / s.rx[:n]), 1.0 / SCALE_F)
    # Only lanes at an epoch end (`go`) change. The log column is a mask rather than a
    # dynamic index, which vmap would turn into a scatter.
    epochs = jnp.arange(n_epochs).reshape((n_epochs,) + (1,) * go.ndim)
    col = (epochs == jnp.minimum(s.n_epochs, n_epochs - 1)[None]) & go
    keep = lambda new, old: jnp.where(go, new, old)  # noqa: E731
    new_rx, new_ry = keep(new_rx, s.rx[:n]), keep(new_ry, s.ry[:n])
    states = list(s.pool_states)
    for i, pool in enumerate(eng.pools):
        obs = EpochObs(go, (s.step + 1) // epoch_len - 1, new_rx[i], new_ry[i], edge[i],
                       s.cumulative_edge[i] + edge[i], w[i])
        told = per_sim(eng, pool.on_epoch, go.shape, 2)(params[i], states[i], obs)
        states[i] = jax.tree_util.tree_map(keep, told, states[i])
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
