"""Sweeps: every grid point on every seed equals `simulate` of that pool on that seed."""

from __future__ import annotations

import numpy as np
import pytest

from propamm_jax.config import SimConfig
from propamm_jax.errors import PropammError

CONFIG = SimConfig(steps=300, epoch_len=100)
SEEDS = [3, 11, 12]


def test_sweep_matches_simulate_per_point(x64):
    from propamm_jax.simulation import simulate
    from propamm_jax.sweeps import sweep

    frame = sweep("cpamm", {"fee_bps": [10.0, 40.0]}, CONFIG, SEEDS, opponents=["cpamm:65"],
                  lanes=4)  # 4 lanes: 2 seeds per chunk, so chunking and padding are exercised
    assert list(frame.index.names) == ["point", "seed"]
    assert len(frame) == 6
    for point, fee in enumerate([10.0, 40.0]):
        expected = simulate([f"cpamm:{fee:g}", "cpamm:65"], CONFIG, SEEDS, progress=False)
        for sim in expected.sims:
            row = frame.loc[(point, sim["seed"])]
            assert row["fee_bps"] == fee
            np.testing.assert_allclose(row["edge"], sim["strategies"][0]["final_edge"],
                                       rtol=1e-12, atol=1e-9)
            np.testing.assert_allclose(row["edge[cpamm:65]"], sim["strategies"][1]["final_edge"],
                                       rtol=1e-12, atol=1e-9)
            np.testing.assert_allclose(row["normalizer_edge"], sim["normalizer_edge"],
                                       rtol=1e-12, atol=1e-9)
            assert row["market_sigma"] == sim["market"]["sigma"]
    # different fees give different edges on the same seed (the grid is really applied)
    assert not np.allclose(frame.xs(0)["edge"], frame.xs(1)["edge"])


def test_fixed_sigma_rebuilds_the_price_path():
    from propamm_jax.sweeps import fix_market
    from propamm_jax.tape.generate import make_tape

    tape = make_tape(SEEDS, 200)
    fixed = fix_market(tape, {"sigma": 0.002, "norm_fee_bps": 50})
    assert np.all(fixed.params.sigma == 0.002) and np.all(fixed.params.norm_fee_bps == 50)
    # sigma back to each seed's own value reproduces the tape's factors
    for i in range(len(SEEDS)):
        one = fix_market(_row(tape, i), {"sigma": float(tape.params.sigma[i])})
        np.testing.assert_allclose(one.gbm_factor, _row(tape, i).gbm_factor, rtol=1e-12)
    # log-returns scale with the new sigma on the same normals
    sigma = tape.params.sigma[:, None]
    z_old = (np.log(tape.gbm_factor) + 0.5 * sigma**2) / sigma
    z_new = (np.log(fixed.gbm_factor) + 0.5 * 0.002 ** 2) / 0.002
    np.testing.assert_allclose(z_old, z_new, rtol=1e-8, atol=1e-8)


def _row(tape, i):
    import jax

    return jax.tree_util.tree_map(lambda a: a[i : i + 1] if np.ndim(a) else a, tape)


@pytest.mark.parametrize("text, expected", [("5:20:5", (5.0, 10.0, 15.0, 20.0)),
                                            ("30", (30.0,)), ("10,20,45", (10.0, 20.0, 45.0))])
def test_parse_range(text, expected):
    from propamm_jax.sweeps import parse_range

    assert parse_range(text) == expected


@pytest.mark.parametrize("text", ["5:1:1", "1:2", "a:b:c", "5:10:0"])
def test_parse_range_rejects(text):
    from propamm_jax.sweeps import parse_range

    with pytest.raises(PropammError, match="--fee-bps"):
        parse_range(text, "--fee-bps")


@pytest.mark.parametrize("item, message", [("lambda=3", "cannot be fixed"), ("sigma", "NAME=VALUE"),
                                           ("sigma=-1", "positive"), ("speed=1", "not a market")])
def test_parse_fixed_rejects(item, message):
    from propamm_jax.sweeps import parse_fixed

    with pytest.raises(PropammError, match=message):
        parse_fixed([item])


def test_sweep_of_a_dynamic_policy_parameter(x64, tmp_path):
    import json

    from propamm_jax.simulation import simulate
    from propamm_jax.sweeps import sweep

    policy = {"family": "dynamic_fee", "version": 1, "fee_min_bps": 5, "fee_max_bps": 200,
              "epoch_len": 100, "params": {"bias": -2.0, "w_vol": 1.0, "w_flow": -0.5,
                                           "w_weight": 0.3, "w_epoch": 0.2, "w_gap": 0.5,
                                           "w_skew": 1.0}}
    base = tmp_path / "p.json"
    base.write_text(json.dumps(policy))
    frame = sweep(f"dynamic:{base}", {"w_vol": [0.0, 3.0]}, CONFIG, SEEDS[:2],
                  opponents=["cpamm:30"])
    for point, w_vol in enumerate([0.0, 3.0]):
        policy["params"]["w_vol"] = w_vol
        path = tmp_path / f"p{point}.json"
        path.write_text(json.dumps(policy))
        expected = simulate([f"dynamic:{path}", "cpamm:30"], CONFIG, SEEDS[:2], progress=False)
        got = frame.xs(point)["edge"].to_numpy()
        want = [s["strategies"][0]["final_edge"] for s in expected.sims]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
    assert not np.allclose(frame.xs(0)["edge"], frame.xs(1)["edge"])
