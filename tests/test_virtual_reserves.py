"""The virtual-reserves family (concentrated liquidity): its closed forms against brute force,
its Rust export (compiles, validates, quotes what the fast path quotes), and its fast-path
edges against the official score of its export."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

needs_rustc = pytest.mark.skipif(shutil.which("rustc") is None, reason="needs rustc")


def _states(n=60, seed=3):
    """Random pools: reserves around and away from the range's centre, random fees and
    concentrations (1 = constant product, up to the family's maximum)."""
    rng = np.random.default_rng(seed)
    rx = 100.0 * np.exp(rng.uniform(-2.0, 2.0, n))
    price = 100.0 * np.exp(rng.uniform(-0.4, 0.4, n))
    ry = rx * price * np.exp(rng.uniform(-0.5, 0.5, n))
    conc = np.where(rng.uniform(size=n) < 0.15, 1.0, rng.uniform(1.0, 10.0, n))
    fee_b, fee_s = rng.uniform(1.0, 200.0, n), rng.uniform(1.0, 200.0, n)
    fair = (ry / rx) * np.exp(rng.uniform(-0.2, 0.2, n))
    return rx, ry, conc, fee_b, fee_s, fair


def _pool():
    from propamm_jax.pools.virtual_reserves import VirtualReserves

    return VirtualReserves()


def test_curve_is_the_range_position(x64):
    """L is the same before and after a trade (one curve), at rescaled reserves the price is
    unchanged, concentration 1 is constant product, and the marginal at zero is `spot`."""
    from propamm_jax.fast.solvers import cpamm_out

    pool = _pool()
    rx, ry, conc, fb, fs, _ = _states()
    p = pool.params(fb, fs, conc)
    vx, vy = map(np.asarray, pool.virtual(p, rx, ry))
    spot = np.asarray(pool.spot(p, rx, ry))
    for is_buy in (True, False):
        r_in, r_out = (ry, rx) if is_buy else (rx, ry)
        e = 0.05 * r_in
        out = np.asarray(pool.amount_out(p, rx, ry, is_buy, e))
        nx, ny = (rx - out, ry + e) if is_buy else (rx + e, ry - out)
        wx, wy = map(np.asarray, pool.virtual(p, nx, ny))
        payable = np.asarray(pool._sides(p, rx, ry, is_buy)[3])
        free = out < payable - 1e-6  # the cap not reached: the trade stays on one curve
        assert free.sum() > 40
        np.testing.assert_allclose((wx * wy)[free], (vx * vy)[free], rtol=1e-10)
        h = 1e-7 * r_in
        marginal = np.asarray(pool.amount_out(p, rx, ry, is_buy, h)) / h
        np.testing.assert_allclose(marginal, 1.0 / spot if is_buy else spot, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(pool.spot(p, 3.0 * rx, 3.0 * ry)), vy / vx, rtol=1e-12)
    one = pool.params(30.0, 30.0, 1.0)
    assert float(pool.amount_out(one, 100.0, 9000.0, True, 50.0)) == pytest.approx(
        float(cpamm_out(50.0, 9000.0, 100.0, 1.0)), rel=1e-14)


def test_concentration_deepens_the_pool_and_the_output_is_capped(x64):
    pool = _pool()
    outs = [float(pool.amount_out(pool.params(30.0, 30.0, c), 100.0, 10_000.0, True, 500.0))
            for c in (1.0, 2.0, 5.0, 10.0)]
    slippage = [5.0 - o for o in outs]  # against 500 Y at the spot price 100
    assert outs == sorted(outs) and slippage[-1] < slippage[0] / 5.0
    # A large buy takes the X above the floor, no more, and leaves the pool at the inner
    # range's upper end P0 / k, where the reserve ratio is (1 - k^1.5) / (1 - sqrt k) of it.
    for c in (2.0, 4.0, 10.0):
        p, k = pool.params(30.0, 30.0, c), 1.0 - 1.0 / c
        out = float(pool.amount_out(p, 100.0, 10_000.0, True, 1e9))
        assert out == float(pool.amount_out(p, 100.0, 10_000.0, True, 1e12)) < 100.0
        vx, vy = pool.virtual(p, 100.0, 10_000.0)
        e = (out - 1e-9) * float(vy) / (float(vx) - out + 1e-9)  # the input that pays `out`
        assert float(pool.spot(p, 100.0 - out, 10_000.0 + e)) == pytest.approx(100.0 / k, rel=1e-6)
        ratio = (10_000.0 + e) / (100.0 - out) / (100.0 / k)
        assert ratio == pytest.approx((1 - k ** 1.5) / (1 - k ** 0.5), rel=1e-6)


def test_arbitrage_matches_brute_force(x64):
    """Against the official arbitrageur on a fine grid: direction by ry / rx, profit
    maximised over [0, 0.9 * real input reserve]."""
    pool = _pool()
    rx, ry, conc, fb, fs, fair = _states(80, seed=5)
    p = pool.params(fb, fs, conc)
    g_b, g_s = 1.0 - fb / 1e4, 1.0 - fs / 1e4
    arb = pool.arbitrage(p, rx, ry, fair, g_b, g_s)
    buy = ry / rx < fair
    g, r_in = np.where(buy, g_b, g_s), np.where(buy, ry, rx)
    grid = np.linspace(0.0, 0.9, 100_001)[:, None] * r_in
    out = np.asarray(pool.amount_out(p, rx, ry, buy, g * grid))
    profit = np.where(buy, fair * out - grid, out - fair * grid)
    k = np.argmax(profit, axis=0)
    best, x = profit[k, np.arange(len(rx))], grid[k, np.arange(len(rx))]
    assert np.array_equal(np.asarray(arb.is_buy), buy)
    assert np.all(np.asarray(arb.profit) >= best - 1e-9 * np.maximum(1.0, np.abs(best)))
    np.testing.assert_allclose(np.asarray(arb.amount_in), x, rtol=0, atol=2e-5 * r_in.max())
    assert np.all(np.abs(np.asarray(arb.amount_in) - x) <= 2.0 * 0.9e-5 * r_in)
    traded = np.asarray(arb.amount_in) > 0.0
    assert 10 < traded.sum() < len(rx)  # both trading and idle states were exercised


def _fd(pool, p, rx, ry, is_buy, g, x):
    from propamm_jax.pools.base import ROUTER_STEP

    d = ROUTER_STEP[0] * x + ROUTER_STEP[1]
    out = lambda v: np.asarray(pool.amount_out(p, rx, ry, is_buy, g * v))  # noqa: E731
    return (out(x + d) - out(x)) / d


def test_demand_matches_bisection_on_the_forward_difference(x64):
    """`demand` against the router's own method: bisection on the forward-difference
    marginal over [0, 0.9 * real input reserve], including states where the step reaches
    past the output cap (a pool near the end of its range)."""
    pool = _pool()
    rx, ry, conc, fb, fs, _ = _states(60, seed=7)
    # Two pools a little short of the floor on X: the router's step reaches past the cap.
    edge = []
    for c, left in ((8.0, 0.01), (4.0, 0.05)):
        q = pool.params(30.0, 30.0, c)
        vx, vy = map(float, pool.virtual(q, 100.0, 10_000.0))
        out = float(pool._sides(q, 100.0, 10_000.0, True)[3]) - left
        edge.append((100.0 - out, 10_000.0 + out * vy / (vx - out), c))
    rx = np.concatenate([rx, [e[0] for e in edge]])
    ry = np.concatenate([ry, [e[1] for e in edge]])
    conc = np.concatenate([conc, [e[2] for e in edge]])
    fb, fs = np.concatenate([fb, [30.0, 30.0]]), np.concatenate([fs, [30.0, 30.0]])
    p = pool.params(fb, fs, conc)
    capped = 0
    for is_buy in (True, False):
        g = 1.0 - (fb if is_buy else fs) / 1e4
        r_in, r_out = (ry, rx) if is_buy else (rx, ry)
        m0 = _fd(pool, p, rx, ry, is_buy, g, np.zeros_like(rx))
        for scale in (0.3, 0.7, 0.95, 1.2):
            lam = scale * m0
            got = np.asarray(pool.demand(p, rx, ry, is_buy, g, lam))
            lo, hi = np.zeros_like(rx), 0.9 * r_in
            hi = np.where(m0 < lam, 0.0, hi)
            lo = np.where(_fd(pool, p, rx, ry, is_buy, g, hi) >= lam, hi, lo)
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                up = _fd(pool, p, rx, ry, is_buy, g, mid) >= lam
                lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
            np.testing.assert_allclose(got, 0.5 * (lo + hi), rtol=1e-9, atol=1e-12)
            step_end = np.asarray(pool.amount_out(p, rx, ry, is_buy, g * (got * 1.001 + 0.001)))
            payable = np.asarray(pool._sides(p, rx, ry, is_buy)[3])
            capped += int(np.sum((step_end >= payable - 1e-12) & (got > 0)))
    assert capped >= 2


def test_policy_file_round_trip_registry_and_one_line_errors(tmp_path, x64):
    from propamm_jax.errors import PropammError
    from propamm_jax.pools import families
    from propamm_jax.pools.virtual_reserves import load_policy, read_policy, save_policy

    pool = _pool()
    path = save_policy(tmp_path / "policy.json", pool, pool.params(12.5, 40.0, 3.25))
    got_pool, values = read_policy(path)
    assert got_pool == pool
    assert values == {"fee_buy_bps": 12.5, "fee_sell_bps": 40.0, "concentration": 3.25}
    assert float(load_policy(path)[1].concentration) == 3.25
    family, reg_pool, reg_values = families.read_policy(path)  # the registry knows the family
    assert family.name == "virtual_reserves" and reg_pool == pool and reg_values == values
    assert families.family_of(pool) is family
    data = json.loads(path.read_text())
    for field, value in [("fee_sell_bps", "x"), ("concentration", None)]:
        bad = dict(data, params=dict(data["params"], **{field: value}))
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(PropammError, match=f"params.{field}") as err:
            families.read_policy(tmp_path / "bad.json")
        assert "\n" not in str(err.value) and "bad.json" in str(err.value)
    (tmp_path / "other.json").write_text(json.dumps(dict(data, version=7)))
    with pytest.raises(PropammError, match="version"):
        read_policy(tmp_path / "other.json")


def test_out_of_bounds_parameters_are_clipped_alike_in_the_fast_path_and_the_export(x64):
    """A search may leave the bounds: fees clip to [fee_min_bps, fee_max_bps] and the
    concentration to [1, max_concentration], in the fast path and in the export."""
    from propamm_jax.pools.base import FeeView
    from propamm_jax.pools.virtual_reserves import VirtualReserves, render

    pool = VirtualReserves(fee_min_bps=5.0, fee_max_bps=100.0, max_concentration=6.0)
    wild = {"fee_buy_bps": -3.0, "fee_sell_bps": 250.0, "concentration": 40.0}
    p = pool.unflatten(pool.flatten(wild))
    fb, fs = pool.fees(p, (), FeeView(100.0, 100.0, 10_000.0, 0))
    assert (float(fb), float(fs)) == (5e-4, 1e-2)
    assert float(pool.kappa(p)) == 1.0 - 1.0 / 6.0
    text = render(pool, wild)
    assert "GAMMA_BUY: u128 = 999500000;" in text and "GAMMA_SELL: u128 = 990000000;" in text
    assert f"const K: f64 = {1.0 - 1.0 / 6.0!r};" in text


def _export(tmp_path, fee_b=25.0, fee_s=35.0, conc=4.0, name="vr"):
    from propamm_jax.pools.virtual_reserves import save_policy
    from propamm_jax.training.export import export

    pool = _pool()
    policy = save_policy(tmp_path / f"{name}.json", pool, pool.params(fee_b, fee_s, conc))
    return export(policy, tmp_path / f"{name}.rs")


@needs_rustc
def test_export_quotes_what_the_fast_path_quotes(tmp_path, x64):
    """The compiled export's integer quote against `amount_out` on random states, within a
    few nano-units plus the truncation of the effective input."""
    from propamm_jax.native.bridge import NativeStrategy
    from propamm_jax.native.build import compile_rust
    from propamm_jax.official.validate import compute_payload

    pool = _pool()
    strategy = NativeStrategy(compile_rust(_export(tmp_path)))
    p = pool.params(25.0, 35.0, 4.0)
    rx, ry, *_ = _states(200, seed=11)
    rng = np.random.default_rng(2)
    worst = 0.0
    for i in range(len(rx)):
        for is_buy in (True, False):
            r_in = ry[i] if is_buy else rx[i]
            amount = int(r_in * 1e9 * 10.0 ** rng.uniform(-6, 0))
            payload = np.frombuffer(compute_payload(is_buy, amount, int(rx[i] * 1e9),
                                                    int(ry[i] * 1e9), bytes(1024)), np.uint8)
            got = strategy.call_compute(payload.copy())
            g = 1.0 - (25.0 if is_buy else 35.0) / 1e4
            want = float(pool.amount_out(p, int(rx[i] * 1e9) / 1e9, int(ry[i] * 1e9) / 1e9,
                                         is_buy, g * amount / 1e9)) * 1e9
            worst = max(worst, abs(got - want) / max(want, 1.0))
            # The effective input is truncated to a nano-unit, as in every integer quote.
            tolerance = 3.0 + want * (1e-9 + 1.0 / (g * amount))
            assert abs(got - want) <= tolerance, (i, is_buy, amount, got, want)
    assert worst > 0.0  # integer arithmetic: some difference, so the comparison is live


@needs_rustc
def test_export_passes_validate(tmp_path, x64):
    from propamm_jax.cli import main

    path = _export(tmp_path, conc=10.0)
    assert main(["validate", str(path)]) == 0


def test_closed_forms_agree_with_the_generic_solvers(x64):
    """`demand` equals the engine's generic Newton solve on `amount_out`; `arbitrage` equals
    the generic one wherever both pick the same direction. They differ where the reserve
    ratio ry / rx and the curve's price lie on opposite sides of the fair price: the official
    arbitrageur (and `arbitrage`) goes by the ratio, the generic solver by the curve."""
    from propamm_jax.fast import solvers

    pool = _pool()
    rx, ry, conc, fb, fs, fair = _states(80, seed=9)
    p = pool.params(fb, fs, conc)
    g_b, g_s = 1.0 - fb / 1e4, 1.0 - fs / 1e4
    for is_buy in (True, False):
        g = g_b if is_buy else g_s
        m0 = _fd(pool, p, rx, ry, is_buy, g, np.zeros_like(rx))
        for scale in (0.5, 0.9, 0.99):
            args = (p, rx, ry, is_buy, g, scale * m0)
            np.testing.assert_allclose(np.asarray(pool.demand(*args)),
                                       np.asarray(solvers.generic_demand(pool.amount_out, *args)),
                                       rtol=1e-8, atol=1e-12)
    closed = pool.arbitrage(p, rx, ry, fair, g_b, g_s)
    generic = solvers.generic_arbitrage(pool.amount_out, p, rx, ry, fair, g_b, g_s)
    spot = np.asarray(pool.spot(p, rx, ry))
    same = (ry / rx < fair) == (spot < fair)
    trades = same & (np.asarray(closed.amount_in) > 0.0)
    assert trades.sum() >= 10 and (~same).sum() >= 5
    np.testing.assert_allclose(np.asarray(closed.amount_in)[trades],
                               np.asarray(generic[1])[trades], rtol=1e-7)
    np.testing.assert_allclose(np.asarray(closed.profit)[trades],
                               np.asarray(generic[3])[trades], rtol=1e-7, atol=1e-12)


def test_reference_profile_is_refused_on_the_fast_path(x64):
    from propamm_jax.config import SimConfig
    from propamm_jax.errors import PropammError
    from propamm_jax.fast.step import Engine

    with pytest.raises(PropammError, match="VirtualReserves.*reference.*corrected"):
        Engine((_pool(), ), SimConfig(steps=10), "reference")


@needs_rustc
def test_export_scored_officially_matches_the_fast_path(tmp_path, x64):
    """The export scored by the native core against the same pool on the fast path, seed by
    seed, next to a fixed-fee pool (corrected profile, where the fast path models the
    official solvers)."""
    from propamm_jax.config import SimConfig
    from propamm_jax.official.scoring import score
    from propamm_jax.simulation import PoolSpec, simulate
    from propamm_jax.training.export import fixed_fee_rust

    pool, seeds, config = _pool(), [11, 12, 13], SimConfig(steps=1500, epoch_len=100)
    path = _export(tmp_path, fee_b=25.0, fee_s=35.0, conc=3.0)
    fixed = tmp_path / "fixed_30bps.rs"
    fixed.write_text(fixed_fee_rust(30))
    official = score([path, fixed], config=config, seeds=seeds, profile="corrected",
                     workers=1, progress=False).results
    fast = simulate([PoolSpec(pool, pool.params(25.0, 35.0, 3.0), "vr"), "cpamm:30"], config,
                    seeds, profile="corrected", progress=False)

    def edges(results):
        sims = sorted(results.sims, key=lambda s: s["seed"])
        return np.array([[st["final_edge"] for st in s["strategies"]] + [s["normalizer_edge"]]
                         for s in sims])

    off, got = edges(official), edges(fast)
    assert np.abs(off).max() > 5.0  # the pools traded
    np.testing.assert_allclose(got, off, rtol=0.01, atol=0.5)


@needs_rustc
def test_published_solvers_never_arbitrage_this_curve_and_split_buys_pro_rata(tmp_path, x64):
    """What the `reference` profile's model says for constant product holds for this curve
    too, on the official core: the published arbitrage (its bracket is the raw reserve, 1e9
    times too wide, and the output is bounded by the reserves) never trades, and a buy order
    is split pro rata to the pools' Y reserves. The fast path still refuses the profile: its
    model of the published router is a group closed form for constant-product pools only."""
    from propamm_jax.config import SimConfig
    from propamm_jax.official.scoring import score
    from propamm_jax.tape.generate import make_tape
    from propamm_jax.training.export import fixed_fee_rust

    seed, config = 5, SimConfig(steps=600, epoch_len=100)
    fixed = tmp_path / "fixed_30bps.rs"
    fixed.write_text(fixed_fee_rust(30))
    run = score([_export(tmp_path, conc=4.0), fixed], config=config, seeds=[seed],
                profile="reference", workers=1, progress=False, trace_seeds=[seed],
                trace_steps=config.steps).results
    steps = run.traces[0]["steps"]
    tape = make_tape([seed], config.steps)
    rx = np.array([[a[0] for a in s["amms"]] for s in steps], float)
    ry = np.array([[a[1] for a in s["amms"]] for s in steps], float)
    start, quiet, split = tape.order_start[0], 0, 0
    for t in range(1, config.steps):
        if (t + 1) % config.epoch_len == 0:
            continue  # the rebalance moves reserves at the end of step t
        moved = (rx[t] != rx[t - 1]) | (ry[t] != ry[t - 1])
        count = start[t + 1] - start[t]
        if count == 0:
            assert not moved.any(), t  # no arbitrage, on any pool
            quiet += 1
        elif count == 1 and tape.order_is_buy[0, start[t]]:
            size = tape.order_size[0, start[t]] * 1e9
            np.testing.assert_allclose((ry[t] - ry[t - 1]) / size, ry[t - 1] / ry[t - 1].sum(),
                                       rtol=1e-6, atol=1e-9)
            split += 1
    assert quiet > 50 and split > 50
