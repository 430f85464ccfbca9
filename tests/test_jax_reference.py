"""The JAX engine on the reference solvers equals the native core, bit for bit.

conftest.py sets XLA_FLAGS before jax is imported so that XLA does not fuse a*b+c into FMA.
"""

from __future__ import annotations

import jax

import numpy as np
import pytest

from conftest import STRATEGIES, load_golden
from jax_reference.engine import simulate_reference, tape_rows
from jax_reference.native import NativePool
from propamm_jax.config import SimConfig
from propamm_jax.native.bridge import PoolSpec, run_core
from propamm_jax.native.build import compile_rust
from propamm_jax.pools.constant_product import ConstantProduct
from propamm_jax.tape import make_tape

pytestmark = pytest.mark.usefixtures("x64")




@pytest.mark.parametrize("profile", ["reference", "corrected"])
def test_constant_product_pools_match_native_core(profile):
    config = SimConfig(steps=240, epoch_len=70)
    fees = [30, 65, 100]
    seeds = [3, 2**64 - 5]
    tape = make_tape(seeds, config.steps)
    cp = ConstantProduct()
    run = jax.jit(jax.vmap(lambda row: simulate_reference(
        [cp] * 3, [cp.params(f) for f in fees], config, profile, row)[0]))
    final = run(tape_rows(tape, config))
    fair = tape.fair_prices(config.initial_price)
    for b in range(len(seeds)):
        lo, hi = tape.order_start[b, 0], tape.order_start[b, -1]
        ref = run_core(config, profile, [PoolSpec.cpamm(f) for f in fees],
                       int(tape.params.norm_fee_bps[b]), float(tape.params.norm_liquidity_mult[b]),
                       fair[b], tape.order_start[b] - lo, tape.order_is_buy[b, lo:hi],
                       tape.order_size[b, lo:hi])
        assert list(np.asarray(final.cumulative_edge[b, :3])) == list(ref.final_edge)
        assert float(final.cumulative_edge[b, 3]) == ref.normalizer_edge
        assert list(np.asarray(final.capital_weight[b, :3])) == list(ref.final_capital_weight)
        e = ref.epoch_edge.shape[1]
        assert np.array_equal(np.asarray(final.log_edge[b])[:, :e], ref.epoch_edge)
        assert np.array_equal(np.asarray(final.log_trades[b])[:, :e], ref.epoch_trade_count.astype(np.int64))


def test_native_pools_through_callbacks_match_golden_trace():
    golden = load_golden("reference_four_3k.json")
    steps = 12
    config = SimConfig(steps=steps, epoch_len=golden["config"]["epoch_len"])
    pools = [NativePool(str(compile_rust(STRATEGIES / f))) for f in golden["strategies"]]
    seeds = [t["seed"] for t in golden["traces"]]
    tape = make_tape(seeds, steps)
    run = jax.jit(jax.vmap(lambda row: simulate_reference(pools, [None] * len(pools), config,
                                                          "reference", row, trace_steps=steps)[1]))
    rx, ry, edge, weight, digest = (np.asarray(a) for a in run(tape_rows(tape, config)))
    for b, trace in enumerate(golden["traces"]):
        for t in range(steps):
            mine = [[int(rx[b, t, j]), int(ry[b, t, j]), float(edge[b, t, j]), float(weight[b, t, j]),
                     f"{int(digest[b, t, j]):016x}"] for j in range(len(pools) + 1)]
            assert mine == trace["steps"][t]["amms"], f"seed {trace['seed']} step {t}"


def test_parametric_and_native_pools_in_one_simulation():
    """A DynamicFee policy against a compiled strategy, on the reference solvers."""
    from propamm_jax.pools.dynamic_fee import DynamicFee

    steps = 8
    config = SimConfig(steps=steps, epoch_len=4)
    df = DynamicFee(epoch_len=4)
    pools = [df, NativePool(str(compile_rust(STRATEGIES / "fixed_30bps.rs")))]
    params = [df.params(bias=-1.0, w_vol=5.0), None]
    tape = make_tape([11, 12], steps)
    run = jax.jit(jax.vmap(lambda row: simulate_reference(pools, params, config, "corrected", row)[0]))
    final = run(tape_rows(tape, config))
    assert np.all(np.isfinite(np.asarray(final.cumulative_edge)))
    assert np.asarray(final.n_epochs).tolist() == [1, 1]
    # the policy observed its own trades: its spot memory is set
    assert np.all(np.asarray(final.pool_states[0].last_spot) > 0)
