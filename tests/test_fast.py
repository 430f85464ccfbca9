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
from propamm_jax.simulate import parse_pool, simulate

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


@pytest.mark.parametrize("profile", ["reference", "corrected"])
def test_gradient_of_mean_edge_against_finite_differences(profile):
    import jax.numpy as jnp

    from propamm_jax.fast import build_events, build_market, simulate_fast
    from propamm_jax.pools.constant_product import ConstantProduct, CPParams
    from propamm_jax.tape import make_tape

    config = SimConfig(steps=400, epoch_len=100)
    tape = make_tape(range(8), config.steps)
    events, market = build_events(tape), build_market(tape, config)
    cp = ConstantProduct()

    def mean_edge(fee):
        params = [CPParams(fee, fee), CPParams(jnp.float64(65.0), jnp.float64(65.0))]
        final = jax.vmap(lambda m, e: simulate_fast([cp, cp], params, config, profile, m, e))(
            market, events)
        return jnp.mean(final.cumulative_edge[:, 0])

    grad = float(jax.jit(jax.grad(mean_edge))(jnp.float64(30.0)))
    f = jax.jit(mean_edge)
    fd = (float(f(jnp.float64(31.0))) - float(f(jnp.float64(29.0)))) / 2.0
    assert np.isfinite(grad)
    if profile == "reference":  # no arbitrage, pro-rata routing: smooth in the fee
        assert abs(grad - fd) <= 0.01 * abs(fd), (grad, fd)
    else:
        # The hard 0.01 Y profit floor of the arbitrage makes the corrected objective
        # piecewise; AD sees only the smooth part. The 1% target of the issue is open here.
        assert np.sign(grad) == np.sign(fd), (grad, fd)


@pytest.mark.parametrize("spec, message", [
    ("uniswap:30", "unknown pool spec"), ("cpamm:abc", "fee must be a number"),
    ("cpamm:10000", "outside [0, 10000)"), ("cpamm:-1", "outside [0, 10000)"),
    ("cpamm:1/2/3", "expected cpamm:FEE"),
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
