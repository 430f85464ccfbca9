"""The fast engine's public step: one step, scan = runner, vmap over params, gradients, and the
generic solvers against the constant-product closed forms."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from propamm_jax.config import SimConfig
from propamm_jax.errors import PropammError
from propamm_jax.fast import solvers
from propamm_jax.fast.events import market_of, pack_events
from propamm_jax.fast.runner import BatchRunner, run_batch
from propamm_jax.fast.step import Engine
from propamm_jax.fast.types import BUY, FIRST, LAST, ORDER, Event, Market
from propamm_jax.pools.constant_product import ConstantProduct
from propamm_jax.tape import make_tape

pytestmark = pytest.mark.usefixtures("x64")

CONFIG = SimConfig(steps=200, epoch_len=50)
CP = ConstantProduct()


@dataclass(frozen=True)
class BareCP(ConstantProduct):
    """The constant-product curve without any closed form: the generic solvers stand in."""

    arbitrage = None
    demand = None
    route = None
    reference_route = None


def _one_sim_market():
    return Market(jnp.float64(0.003), jnp.float64(1.0))


def _event(flags, size=0.0, factor=1.0, step=0):
    return Event(jnp.int16(step), jnp.uint8(flags), jnp.float64(size), jnp.float64(factor))


def test_one_step_arbitrages_to_the_fair_price_and_books_the_edge():
    engine = Engine((CP, CP), CONFIG, "corrected")
    params = [CP.params(30.0), CP.params(65.0)]
    market = _one_sim_market()
    s0 = engine.init(params, market)
    s1 = engine.step(s0, _event(FIRST | LAST, factor=1.02), params, market)
    assert float(s1.fair) == pytest.approx(CONFIG.initial_price * 1.02, rel=1e-15)
    gamma = 1.0 - np.array([0.003, 0.0065, 0.003])
    dx, dy = np.asarray(s1.rx - s0.rx), np.asarray(s1.ry - s0.ry)
    rx0, ry0 = np.asarray(s0.rx), np.asarray(s0.ry)
    # the arbitrageur bought X (paid Y) from each pool until its marginal output, X per Y
    # after fee, fell to 1 / fair: g rx ry / (ry + g dy)^2 = 1 / fair
    assert np.all(dy > 0) and np.all(dx < 0)
    assert np.allclose(gamma * rx0 * ry0 / (ry0 + gamma * dy) ** 2 * float(s1.fair), 1.0,
                       rtol=1e-12)
    assert np.allclose(np.asarray(s1.epoch_edge), dx * float(s1.fair) + dy, rtol=1e-12)
    assert np.all(np.asarray(s1.epoch_trades) == 1)
    assert np.all(np.asarray(s1.epoch_edge) < 0)  # what the arbitrageur gains, the pools lose


def test_one_retail_order_is_split_and_paid_in():
    engine = Engine((CP, CP), CONFIG, "corrected")
    params = [CP.params(30.0), CP.params(30.0)]
    market = _one_sim_market()
    s0 = engine.init(params, market)
    s1 = engine.step(s0, _event(FIRST | ORDER | BUY | LAST, size=25.0), params, market)
    paid_in = np.asarray(s1.ry - s0.ry)
    assert paid_in.sum() == pytest.approx(25.0, rel=1e-12)
    assert paid_in[0] == pytest.approx(paid_in[1], rel=1e-12)  # same pools, same share
    assert np.all(np.asarray(s1.rx) < np.asarray(s0.rx))


def _batch(seeds=range(3)):
    tape = make_tape(list(seeds), CONFIG.steps)
    return tape, market_of(tape), pack_events(tape)


def test_scan_of_step_equals_the_batch_runner():
    _, market, packed = _batch()
    pools, params = (CP, CP), [CP.params(30.0), CP.params(65.0)]
    engine = Engine(pools, CONFIG, "corrected")

    def scan(market, packed):
        s = engine.init(params, market)
        s, _ = jax.lax.scan(lambda s, ev: (engine.step(s, ev, params, market), None), s, packed)
        return s.cumulative_edge + s.epoch_edge

    mine = np.asarray(jax.jit(scan)(Market(*map(jnp.asarray, market)),
                                    Event(*map(jnp.asarray, packed))))
    out = BatchRunner(pools, CONFIG, "corrected")(*market, packed, params)
    assert np.array_equal(mine.T, out.cumulative_edge)
    # the same step, unbatched and vmapped with simulations first
    one = jax.vmap(scan, in_axes=(0, 1))(Market(*map(jnp.asarray, market)),
                                          Event(*map(jnp.asarray, packed)))
    assert np.allclose(np.asarray(one), out.cumulative_edge, rtol=1e-10, atol=1e-9)


def test_vmap_of_step_over_params():
    _, market, packed = _batch([5])
    engine = Engine((CP, CP), CONFIG, "corrected")
    one_market = Market(*(jnp.asarray(a[0]) for a in market))
    events = Event(*(jnp.asarray(a[:, 0]) for a in packed))
    fees = jnp.array([10.0, 30.0, 90.0])

    def edge(fee):
        params = [CP.params(30.0)._replace(fee_buy_bps=fee, fee_sell_bps=fee), CP.params(65.0)]
        s = engine.init(params, one_market)
        s, _ = jax.lax.scan(lambda s, ev: (engine.step(s, ev, params, one_market), None),
                            s, events)
        return (s.cumulative_edge + s.epoch_edge)[0]

    many = np.asarray(jax.jit(jax.vmap(edge))(fees))
    single = [float(jax.jit(edge)(f)) for f in fees]
    assert np.allclose(many, single, rtol=1e-12)
    assert len(set(np.round(many, 6))) == 3


def test_gradient_through_a_few_steps_is_finite_and_nonzero():
    _, market, packed = _batch([1, 2])
    packed = type(packed)(*(a[:40] for a in packed))
    engine = Engine((CP, CP), CONFIG, "corrected", smooth=0.01)

    def loss(fee):
        final = run_batch(engine, [CP.params(30.0)._replace(fee_buy_bps=fee, fee_sell_bps=fee),
                                   CP.params(65.0)], market, packed)
        return jnp.mean(final.cumulative_edge[:, 0])

    g = float(jax.grad(loss)(jnp.float64(30.0)))
    assert np.isfinite(g) and g != 0.0


def _states(n=64, seed=3):
    rng = np.random.default_rng(seed)
    rx = rng.uniform(20.0, 200.0, (3, n))
    ry = rx * rng.uniform(80.0, 120.0, (1, n)) * rng.uniform(0.97, 1.03, (3, n))
    gamma = 1.0 - rng.choice([0.001, 0.003, 0.0065, 0.01], (3, n))
    fair = rng.uniform(80.0, 120.0, n)
    return jnp.asarray(rx), jnp.asarray(ry), jnp.asarray(gamma), jnp.asarray(fair)


def test_generic_arbitrage_equals_the_closed_form_with_its_gradient():
    rx, ry, gamma, fair = _states()
    bare = BareCP()

    def closed(g):
        return solvers.optimal_arbitrage(rx, ry, fair, g, g)

    def generic(g):
        return solvers.generic_arbitrage(bare.amount_out, None, rx, ry, fair, g, g)

    a, b = closed(gamma), generic(gamma)
    assert np.array_equal(np.asarray(a[0]), np.asarray(b[0]))
    assert np.allclose(np.asarray(a[1]), np.asarray(b[1]), rtol=1e-9, atol=1e-12)
    assert np.allclose(np.asarray(a[3]), np.asarray(b[3]), rtol=1e-9, atol=1e-12)
    assert np.any(np.asarray(a[1]) > 0)
    ga = jax.grad(lambda g: jnp.sum(closed(g)[3]))(gamma)
    gb = jax.grad(lambda g: jnp.sum(generic(g)[3]))(gamma)
    assert np.allclose(np.asarray(ga), np.asarray(gb), rtol=1e-7, atol=1e-9)


def test_generic_route_equals_the_closed_form_router_with_its_gradient():
    rx, ry, gamma, _ = _states(seed=4)
    bare = BareCP()
    total = jnp.asarray(np.random.default_rng(5).lognormal(np.log(20.0), 1.0, rx.shape[1]))
    is_buy = jnp.asarray(np.arange(rx.shape[1]) % 2 == 0)

    def closed(g, t):
        return CP.route(t, rx, ry, is_buy, g)

    def generic(g, t):
        demand = lambda *a: solvers.generic_demand(bare.amount_out, *a)  # noqa: E731
        margin = lambda *a: solvers.router_marginal(bare.amount_out, *a)  # noqa: E731
        args = [(None, rx[i], ry[i], is_buy, g[i]) for i in range(3)]
        return solvers.equimarginal_route([demand] * 3, [margin] * 3, args, t)

    a, b = np.asarray(closed(gamma, total)), np.asarray(generic(gamma, total))
    assert np.allclose(a, b, rtol=1e-8, atol=1e-10 * float(total.max()))
    assert np.allclose(b.sum(axis=0), np.asarray(total), rtol=1e-12)
    weights = jnp.asarray([1.0, 2.0, 3.0])[:, None]
    ga = jax.grad(lambda g: jnp.sum(weights * closed(g, total)))(gamma)
    gb = jax.grad(lambda g: jnp.sum(weights * generic(g, total)))(gamma)
    assert np.allclose(np.asarray(ga), np.asarray(gb), rtol=1e-5, atol=1e-6)


def test_a_family_without_closed_forms_runs_beside_one_with_them():
    """Routing across families: any pool without the group closed form puts every order on
    the generic split; the edges equal the all-closed-form run's."""
    _, market, packed = _batch([0, 1])
    params = [CP.params(30.0), CP.params(65.0)]
    closed = BatchRunner((CP, CP), CONFIG, "corrected")(*market, packed, params)
    mixed = BatchRunner((BareCP(), CP), CONFIG, "corrected")(*market, packed, params)
    assert np.allclose(mixed.cumulative_edge, closed.cumulative_edge, rtol=1e-7, atol=1e-7)


def test_reference_profile_refuses_a_family_without_a_model():
    with pytest.raises(PropammError, match="BareCP.*profile 'reference'"):
        Engine((BareCP(), CP), CONFIG, "reference")
