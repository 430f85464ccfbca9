"""The `regime_fee` family: its regime inputs (fair-price sigma from arbitrage reveals, age of
the estimate), its reduction to `dynamic_fee`, its policy file, and its exact Rust export."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from propamm_jax.errors import PropammError
from test_families import _rust_fees, random_feature_states, validated_fast_and_official

needs_rustc = pytest.mark.skipif(shutil.which("rustc") is None, reason="needs rustc")

# Awkward f64s (none f32-representable) of every sign, every weight non-zero.
VALUES = {"bias": -1.1234567890123457, "w_vol": 2.7316878161877685, "w_flow": 0.61195013316,
          "w_weight": -1.1875940451403875, "w_epoch": 0.1284461429184, "w_gap": -0.0170698379,
          "w_skew": 0.820241609320128, "w_dev": 1.3077363285089839, "w_sig": 0.6172839506172839,
          "w_age": -0.14412345678901234, "w_adev": -0.7281828459045235}


def _obs(step, flow, is_buy, rx, ry, active=True):
    import jax.numpy as jnp

    from propamm_jax.pools.base import TradeObs

    f = lambda v: jnp.asarray(v, jnp.float64)  # noqa: E731
    return TradeObs(active=jnp.asarray(active), is_buy=jnp.asarray(is_buy), amount_in=f(1.0),
                    amount_out=f(1.0), reserve_x=f(rx), reserve_y=f(ry),
                    step=jnp.asarray(step, jnp.int32), epoch_step=jnp.asarray(step, jnp.int32),
                    epoch_number=jnp.asarray(0, jnp.int32), flow=f(flow),
                    capital_weight=f(1.0), competitor_prices=jnp.full(8, jnp.nan))


def test_sigma_and_age_come_from_the_arbitrage_reveals(x64):
    """Arbitrages at steps 3 and 7 reveal fair prices f1, f2 (spot / (1 - quoted buy fee));
    sig2 = 0.1 ln(f2 / f1)^2 / 4; a retail trade at step 12 is 5 steps from the last reveal;
    an inactive observation changes nothing."""
    from propamm_jax.pools.regime_fee import RegimeFee

    pool = RegimeFee(0.0, 300.0, 100)
    params = pool.params(**VALUES)
    state = pool.init_state(params)
    quoted = pool.fees(params, state)
    state = pool.on_trade(params, state, _obs(3, 0.0, True, 100.0, 10_000.0))
    f1 = 100.0 / (1.0 - float(quoted[0]))
    assert float(state.features.fair) == pytest.approx(f1, rel=1e-15)
    assert (float(state.sig2), float(state.arb_step), float(state.age)) == (0.0, 3.0, 0.0)
    quoted = pool.fees(params, state)
    state = pool.on_trade(params, state, _obs(7, 0.0, False, 99.0, 10_050.0))
    f2 = (10_050.0 / 99.0) * (1.0 - float(quoted[1]))
    assert float(state.sig2) == pytest.approx(0.1 * math.log(f2 / f1) ** 2 / 4.0, rel=1e-12)
    retail = pool.on_trade(params, state, _obs(12, 0.3, True, 98.0, 10_150.0))
    assert (float(retail.age), float(retail.arb_step)) == (5.0, 7.0)
    assert float(retail.sig2) == float(state.sig2)
    idle = pool.on_trade(params, retail, _obs(20, 0.0, True, 90.0, 11_000.0, active=False))
    assert all(float(a) == float(b) for a, b in zip(
        (idle.arb_step, idle.sig2, idle.age, idle.features.fair),
        (retail.arb_step, retail.sig2, retail.age, retail.features.fair)))
    # Higher sigma, older estimate: both move the fee level when their weights are non-zero.
    assert pool.fees(params, retail) != pool.fees(params, retail._replace(sig2=retail.sig2 * 4))
    assert pool.fees(params, retail) != pool.fees(params, retail._replace(age=retail.age + 9))


def test_zero_regime_weights_are_dynamic_fee(x64):
    """With w_sig = w_age = w_adev = 0 the family earns exactly what dynamic_fee earns."""
    from propamm_jax.config import SimConfig
    from propamm_jax.pools.dynamic_fee import PARAM_NAMES as DF_NAMES, DynamicFee
    from propamm_jax.pools.regime_fee import RegimeFee
    from propamm_jax.training.objective import Setting, population_values

    config = SimConfig(steps=600, epoch_len=200)
    base = [VALUES[k] for k in DF_NAMES]
    rf, df = RegimeFee(0.0, 300.0, 200), DynamicFee(0.0, 300.0, 200)
    got = population_values(Setting(rf, (), "corrected", config),
                            rf.unflatten(np.array([base + [0.0, 0.0, 0.0]])), [5, 6])
    want = population_values(Setting(df, (), "corrected", config),
                             df.unflatten(np.array([base])), [5, 6])
    assert np.array_equal(got, want)
    moved = population_values(Setting(rf, (), "corrected", config),
                              rf.unflatten(np.array([base + [2.0, 0.5, -1.0]])), [5, 6])
    assert not np.allclose(moved, want)


def test_policy_file_round_trip_and_errors(tmp_path, x64):
    from propamm_jax.pools.families import read_policy
    from propamm_jax.pools.regime_fee import RegimeFee, save_policy

    pool = RegimeFee(0.0, 287.123456789, 1000)
    path = save_policy(tmp_path / "p.json", pool, VALUES)
    fam, got, params = read_policy(path)
    assert fam.name == "regime_fee" and got == pool and params == VALUES
    data = json.loads(path.read_text())
    del data["params"]["w_adev"]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(PropammError, match=r"bad\.json: field 'params\.w_adev' must be a number"):
        read_policy(tmp_path / "bad.json")


@needs_rustc
def test_rust_fees_equal_the_fast_path_fees_on_the_same_states(tmp_path, x64):
    """Random states (fair price known or not, sigma and age of every size): the exported
    `fees` and the fast path's, compared to the last bits."""
    import jax

    from propamm_jax.pools.features import FeatureState
    from propamm_jax.pools.families import load_policy
    from propamm_jax.pools.regime_fee import RegimeFee, RegimeState, save_policy
    from propamm_jax.training.export import export

    path = save_policy(tmp_path / "policy.json", RegimeFee(3.7, 287.123456789, 100), VALUES)
    rs = export(path, tmp_path / "p.rs")
    pool, params = load_policy(path)
    rng = np.random.default_rng(4)
    n = 400
    s = np.column_stack([random_feature_states(rng, n), rng.integers(0, 10_000, n).astype(float),
                         rng.exponential(2e-5, n), rng.integers(0, 40, n).astype(float)])
    fees = jax.jit(jax.vmap(lambda st: pool.fees(params, RegimeState(
        FeatureState(*st[:9]), st[9], st[10], st[11]), None)))(tuple(s.T))
    fast = np.column_stack([np.asarray(f) for f in fees])
    native = _rust_fees(tmp_path, rs, s)
    assert np.all(np.isfinite(native)) and native.shape == fast.shape
    assert np.allclose(native, fast, rtol=1e-14, atol=0.0), np.abs(native / fast - 1).max()


@needs_rustc
def test_export_validates_and_scores_like_the_fast_path(tmp_path, x64):
    """The regime slots evolve in the export as on the fast path: official edges within 1%."""
    from propamm_jax.pools.regime_fee import RegimeFee, save_policy

    path = save_policy(tmp_path / "policy.json", RegimeFee(0.0, 300.0, 100),
                       {**VALUES, "w_sig": 4.0, "w_age": 0.3})
    seeds, fast, official, failed = validated_fast_and_official(path, tmp_path / "regime.rs")
    assert failed == 0
    off = np.array([official[s] for s in seeds])
    assert np.allclose(off, fast, rtol=0.01, atol=0.5), (off, fast)
