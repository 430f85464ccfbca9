"""The fast path against official scoring, its gradients, and `propamm simulate`."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import STRATEGIES
from propamm_jax.config import SimConfig
from propamm_jax.errors import PropammError
from propamm_jax.scoring import score
from propamm_jax.simulation import parse_pool, simulate

pytestmark = pytest.mark.usefixtures("x64")




def _relative_errors(profile: str, seeds, config):
    fast = simulate(["cpamm:30", "cpamm:65"], config, seeds, profile, progress=False)
    official = score([STRATEGIES / "fixed_30bps.rs", STRATEGIES / "fixed_65bps.rs"],
                     config=config, seeds=seeds, profile=profile, progress=False).results

    def table(results):
        return np.array([[s["strategies"][0]["final_edge"], s["strategies"][1]["final_edge"],
                          s["normalizer_edge"]] for s in results.sims])

    a, b = table(fast), table(official)
    rel = np.abs(a - b) / np.maximum(np.abs(b), 1.0)
    same_rank = np.mean(np.sign(a[:, 0] - a[:, 1]) == np.sign(b[:, 0] - b[:, 1]))
    return rel.mean(axis=0), same_rank


def test_reference_profile_fast_path_matches_official_scoring():
    # Measured on seeds 0..199 x 10 000 steps: 1.5e-5, 4.4e-6, 9.7e-6 (see the README).
    err, rank = _relative_errors("reference", list(range(12)), SimConfig(steps=3000))
    assert np.all(err <= 1e-3), err
    assert rank == 1.0


def test_corrected_profile_fast_path_is_close_to_official_scoring():
    # Measured on seeds 0..199 x 10 000 steps: 0.31%, 0.79%, 0.64% (target 0.5%, open).
    err, rank = _relative_errors("corrected", list(range(12)), SimConfig(steps=3000))
    assert np.all(err <= 0.02), err
    assert rank >= 11 / 12


def _gradient_check(pools, make_params, theta, profile: str, smooth: float, seeds=8, steps=300):
    """jax.grad of the mean edge of pool 0 against central differences, per coordinate."""
    import jax.numpy as jnp

    from propamm_jax.fast.events import market_of, pack_events
    from propamm_jax.fast.runner import run_batch
    from propamm_jax.fast.step import Engine
    from propamm_jax.tape import make_tape

    config = SimConfig(steps=steps, epoch_len=100)
    tape = make_tape(range(seeds), config.steps)
    events, market = pack_events(tape), market_of(tape)
    engine = Engine(tuple(pools), config, profile, smooth=smooth)

    def mean_edge(th):
        final = run_batch(engine, make_params(th), market, events)
        return jnp.mean(final.cumulative_edge[:, 0])

    theta = jnp.asarray(theta, jnp.float64)
    grad = np.asarray(jax.jit(jax.grad(mean_edge))(theta))
    f = jax.jit(mean_edge)
    h = 1e-5
    fd = np.array([(float(f(theta + h * e)) - float(f(theta - h * e))) / (2 * h)
                   for e in np.eye(len(theta))])
    return grad, fd


@pytest.mark.parametrize("profile", ["reference", "corrected"])
def test_fee_gradients_match_finite_differences(profile):
    from propamm_jax.pools.constant_product import ConstantProduct, CPParams

    cp = ConstantProduct()
    grad, fd = _gradient_check(
        [cp, cp], lambda th: [CPParams(th[0], th[0]), CPParams(th[1], th[1])], [30.0, 65.0],
        profile, smooth=0.01)
    assert np.all(np.isfinite(grad))
    assert np.allclose(grad, fd, rtol=0.01, atol=1e-6), (grad, fd)


@pytest.mark.parametrize("profile", ["reference", "corrected"])
def test_dynamic_fee_gradients_match_finite_differences(profile):
    from propamm_jax.pools.constant_product import ConstantProduct
    from propamm_jax.pools.dynamic_fee import DFParams, DynamicFee

    df, cp = DynamicFee(epoch_len=100), ConstantProduct()
    grad, fd = _gradient_check(
        [df, cp], lambda th: [DFParams(*th), cp.params(30.0)],
        [-2.0, 1.0, -0.5, 0.3, 0.2, 0.5, 1.0, 1.0], profile, smooth=0.01)
    assert np.all(np.isfinite(grad))
    assert np.allclose(grad, fd, rtol=0.01, atol=1e-6), (grad, fd)


def test_hard_floor_gradient_is_finite():
    # Without smoothing the corrected objective jumps where an arbitrage crosses the 0.01 Y
    # floor; the gradient is still finite (it sees the smooth pieces only).
    from propamm_jax.pools.constant_product import ConstantProduct, CPParams

    cp = ConstantProduct()
    grad, _ = _gradient_check([cp, cp], lambda th: [CPParams(th[0], th[0]), CPParams(th[1], th[1])],
                              [30.0, 65.0], "corrected", smooth=0.0, seeds=4, steps=200)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("spec, message", [
    ("uniswap:30", "unknown pool spec"), ("cpamm:abc", "fee must be a number"),
    ("cpamm:10000", "outside [0, 10000)"), ("cpamm:-1", "outside [0, 10000)"),
    ("cpamm:1/2/3", "expected cpamm:FEE"), ("dynamic:", "expected dynamic:PATH"),
    ("dynamic:/no/such/policy.json", "cannot read"),
])
def test_bad_pool_specs(spec, message):
    with pytest.raises(PropammError, match=re.escape(message)):
        parse_pool(spec)


def test_simulate_cli_writes_results(tmp_path):
    out = tmp_path / "sim.json"
    proc = subprocess.run([sys.executable, "-m", "propamm_jax.cli", "simulate", "--pool", "cpamm:30",
                           "--pool", "cpamm:65", "--simulations", "3", "--steps", "300",
                           "--epoch-len", "100", "--profile", "corrected", "--output", str(out)],
                          capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "PROPAMM_CACHE": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "profile: corrected" in proc.stdout and "cpamm:30" in proc.stdout
    data = json.loads(out.read_text())
    assert data["engine"] == "corrected" and len(data["sims"]) == 3
    assert len(data["sims"][0]["strategies"][0]["epochs"]) == 2
    bad = subprocess.run([sys.executable, "-m", "propamm_jax.cli", "simulate", "--pool", "cpamm:99999"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"family": "other", "version": 1, "params": {}}', "family"),
    ('{"family": "dynamic_fee", "version": 7, "params": {}}', "version"),
    ('{"family": "dynamic_fee", "version": 1, "params": {"bias": "x"}}', "params.bias"),
])
def test_malformed_policy_files(tmp_path, content, message):
    path = tmp_path / "policy.json"
    path.write_text(content)
    with pytest.raises(PropammError, match=re.escape(message)) as info:
        parse_pool(f"dynamic:{path}")
    assert str(path) in str(info.value)


def test_dynamic_policy_round_trip_and_simulate(tmp_path):
    from propamm_jax.pools.dynamic_fee import DynamicFee, load_policy, save_policy

    pool = DynamicFee(fee_min_bps=10.0, fee_max_bps=150.0, epoch_len=100)
    path = save_policy(tmp_path / "policy.json", pool, pool.params(bias=-1.0, w_vol=2.0))
    loaded, params = load_policy(path)
    assert loaded == pool and float(params.bias) == -1.0 and float(params.w_vol) == 2.0
    results = simulate([f"dynamic:{path}", "cpamm:30"], SimConfig(steps=300, epoch_len=100),
                       range(3), "corrected", progress=False)
    edges = [s["strategies"][0]["final_edge"] for s in results.sims]
    assert all(np.isfinite(edges)) and len(set(edges)) == 3
