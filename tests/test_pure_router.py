"""The router's shortcut for pure pools (training only) changes how often a strategy is
called, never a result: every number of a simulation equals the plain path's, which calls
every strategy exactly as the reference does, whichever pools are flagged pure."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(shutil.which("rustc") is None, reason="needs rustc")

SEEDS = [5, 19]
STEPS = 1_500


def _run(pools, seed: int, profile: str):
    from propamm_jax.config import SimConfig
    from propamm_jax.native.bridge import run_core
    from propamm_jax.tape.cache import cached_tape

    config = SimConfig(steps=STEPS, epoch_len=300)
    tape = cached_tape([seed], STEPS)
    lo, hi = tape.order_start[0, 0], tape.order_start[0, -1]
    return run_core(config, profile, pools, int(tape.params.norm_fee_bps[0]),
                    float(tape.params.norm_liquidity_mult[0]),
                    tape.fair_prices(config.initial_price)[0], tape.order_start[0] - lo,
                    tape.order_is_buy[0, lo:hi], tape.order_size[0, lo:hi],
                    trace_steps=STEPS, measure_calls=True)


@pytest.fixture(scope="module")
def field():
    from conftest import STARTERS
    from propamm_jax.native.bridge import NativeStrategy, PoolSpec
    from propamm_jax.native.build import compile_rust

    names = ["inventory_skew.rs", "undercut.rs", "vol_scaled.rs", "flat_45bps.rs"]
    strategies = [NativeStrategy(compile_rust(STARTERS / n), n) for n in names]
    return [PoolSpec.native(s) for s in strategies] + [PoolSpec.cpamm(30, 70)]


def _same(a, b) -> None:
    for name in ("final_edge", "final_capital_weight", "epoch_edge", "epoch_trade_count",
                 "epoch_score", "trace_u64", "trace_f64"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.normalizer_edge == b.normalizer_edge


@pytest.mark.parametrize("profile", ["reference", "corrected"])
@pytest.mark.parametrize("flagged", ["all", "alternate"])
def test_pure_pools_give_the_plain_result_with_fewer_calls(field, profile, flagged):
    plain = field
    pure = [p.pure() if flagged == "all" or k % 2 == 0 else p for k, p in enumerate(field)]
    for seed in SEEDS:
        a, b = _run(plain, seed, profile), _run(pure, seed, profile)
        _same(a, b)
        assert a.calls > 0 and b.calls < a.calls * (0.5 if flagged == "all" else 0.9), \
            (seed, a.calls, b.calls)
