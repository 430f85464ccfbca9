"""`propamm export` writes the f64 parameters of policy.json bit for bit (issue 12, item 3).

The export used to read the policy through JAX arrays, which are f32 unless 64-bit JAX is on,
so -4.733783081939409 became -4.73378324508667. Here the export runs in a fresh interpreter
with JAX in its default 32-bit mode and every f64 literal of the Rust file is compared with
the JSON's value, bit for bit; then the exported file is scored officially against the fast
path on the same seeds.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

# Values f32 cannot hold, of every magnitude, a negative zero and an integer-valued float.
AWKWARD = {"bias": -4.733783081939409, "w_vol": 0.1, "w_flow": 1.0 / 3.0,
           "w_weight": -1.2345678901234567e-7, "w_epoch": 12345.678901234567,
           "w_gap": -0.0, "w_skew": 2.0, "w_dev": 0.8127300000000001}
LITERAL = re.compile(r"^const (\w+): f64 = (\S+);$", re.M)


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def _write_policy(path, params, fee_min=3.7, fee_max=287.123456789, epoch_len=100):
    path.write_text(json.dumps({"family": "dynamic_fee", "version": 2, "fee_min_bps": fee_min,
                                "fee_max_bps": fee_max, "epoch_len": epoch_len,
                                "params": params}))
    return path


def _expected(policy: dict) -> dict[str, float]:
    """The f64 each constant of the export must hold, from the JSON alone."""
    from propamm_jax.training.export import CONST_NAMES

    out = {CONST_NAMES[k]: float(v) for k, v in policy["params"].items()}
    out["FEE_MIN"] = policy["fee_min_bps"] / 10_000.0
    out["FEE_SPAN"] = (policy["fee_max_bps"] - policy["fee_min_bps"]) / 10_000.0
    out["EPOCH_LEN"] = float(policy["epoch_len"])
    return out


def test_every_literal_is_the_json_f64_bit_for_bit_with_32_bit_jax(tmp_path):
    policy = _write_policy(tmp_path / "policy.json", AWKWARD)
    out = tmp_path / "exported.rs"
    # A fresh interpreter: JAX in its default (32-bit) mode, as after `pip install`.
    run = subprocess.run([sys.executable, "-c", "import sys; from propamm_jax.cli import main; "
                          "import jax; assert not jax.config.jax_enable_x64; "
                          "sys.exit(main(sys.argv[1:]))", "export", str(policy), "-o", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    literals = dict(LITERAL.findall(out.read_text()))
    expected = _expected(json.loads(policy.read_text()))
    assert set(literals) == set(expected)  # every f64 constant is a policy value, none missed
    wrong = {name: (text, expected[name]) for name, text in literals.items()
             if _bits(float(text)) != _bits(expected[name])}
    assert not wrong, wrong
    assert literals["B_BIAS"] == "-4.733783081939409" and literals["W_GAP"] == "-0.0"


def test_random_policies_round_trip_exactly(tmp_path):
    from propamm_jax.pools.dynamic_fee import PARAM_NAMES
    from propamm_jax.training.export import export

    rng = np.random.default_rng(12)
    mismatches = total = 0
    for k in range(40):
        scale = 10.0 ** rng.integers(-12, 6)
        params = {name: float(rng.normal() * scale) for name in PARAM_NAMES}
        policy = _write_policy(tmp_path / f"p{k}.json", params,
                               fee_min=float(rng.uniform(0, 50)),
                               fee_max=float(rng.uniform(60, 9000)))
        text = export(policy, tmp_path / f"p{k}.rs").read_text()
        literals = dict(LITERAL.findall(text))
        for name, value in _expected(json.loads(policy.read_text())).items():
            total += 1
            mismatches += _bits(float(literals[name])) != _bits(value)
    assert total == 40 * 11 and mismatches == 0


@pytest.mark.skipif(shutil.which("rustc") is None, reason="needs rustc")
def test_export_scored_officially_matches_the_fast_path_seed_by_seed(tmp_path, x64):
    """The exported policy (awkward f64 parameters, every feature active) scored by the native
    engine against the same policy on the fast path, seed by seed."""
    from propamm_jax.config import SimConfig
    from propamm_jax.training.evaluate import fast_edges, official_edges

    params = dict(AWKWARD, bias=-1.1234567890123457, w_epoch=0.4123456789012345,
                  w_weight=0.3000000000000001, w_flow=0.05)
    policy = _write_policy(tmp_path / "policy.json", params)
    seeds, config = [11, 12, 13], SimConfig(steps=1500, epoch_len=100)
    fast = fast_edges(policy, seeds, "corrected", config)
    official, failed = official_edges(policy, seeds, "corrected", config, workers=1,
                                      progress=False)
    assert failed == 0 and sorted(official) == seeds
    off = np.array([official[s] for s in seeds])
    assert np.allclose(off, fast, rtol=0.01, atol=0.5), (off, fast)
