"""Compiled opponents at engine speed (issue 17, item 5): the family's one parametric library,
started with a member's parameters in its storage, scores bit-identically to that member's
constant export; a population x seeds is one run; official scoring never preloads."""

from __future__ import annotations

import shutil
import struct

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(shutil.which("rustc") is None, reason="needs rustc")

# Values f32 cannot hold, a negative zero, and a strong fair-price tilt (w_dev).
MEMBERS = [
    {"bias": -4.733783081939409, "w_vol": 0.1, "w_flow": 1.0 / 3.0,
     "w_weight": -1.2345678901234567e-7, "w_epoch": 1.2345678901234567, "w_gap": -0.0,
     "w_skew": 2.0, "w_dev": 0.8127300000000001},
    {"bias": -1.5, "w_vol": 3.0, "w_flow": -0.7, "w_weight": 0.25, "w_epoch": -0.5,
     "w_gap": 1.1, "w_skew": -3.0, "w_dev": 2.5},
]
SEEDS = [3, 11]


def _setting(opponents):
    from conftest import STARTERS, STRATEGIES
    from propamm_jax.config import SimConfig
    from propamm_jax.pools.dynamic_fee import DynamicFee
    from propamm_jax.training.objective import Setting

    opponents = tuple(str(p) for p in (STRATEGIES / "fixed_30bps.rs",
                                       STARTERS / "undercut.rs"))[:opponents]
    pool = DynamicFee(fee_min_bps=3.7, fee_max_bps=287.123456789, epoch_len=100)
    return Setting(pool, opponents, "corrected", SimConfig(steps=800, epoch_len=100))


def _population(pool):
    params = [pool.params(**m) for m in MEMBERS]
    return type(params[0])(*(np.array([m[k] for m in MEMBERS])
                             for k in params[0]._fields))


def test_preloaded_library_is_bit_identical_to_each_constant_export(tmp_path):
    """Every number of every simulation (all strategies' edges and weights, per epoch, and
    the normalizer's) equals the constant export's, scored by `score` on the same seeds. The
    preloaded run also flags the strategies pure (the router's ProbeTree) and uses the
    library's cached fees, so this checks both against the plain official path."""
    from propamm_jax.official.preloaded import PreloadedSim, run_preloaded
    from propamm_jax.official.scoring import score
    from propamm_jax.training.export import render
    from propamm_jax.training.objective import _prepared_field
    from propamm_jax.training.parametric import member_storage

    setting = _setting(2)
    prepared = _prepared_field(setting.opponents)
    sims = [PreloadedSim(seed, (member_storage(setting.pool, m), None, None))
            for seed in SEEDS for m in MEMBERS]
    records, failures = run_preloaded(prepared, sims, setting.config, setting.profile,
                                      workers=2)
    assert not failures
    for k, member in enumerate(MEMBERS):
        rs = tmp_path / f"member_{k}.rs"
        rs.write_text(render(setting.pool, member, f"member_{k}"))
        exported = score([str(rs), *setting.opponents], config=setting.config, seeds=SEEDS,
                         profile=setting.profile, progress=False, workers=2)
        for j, seed in enumerate(SEEDS):
            got, want = records[j * len(MEMBERS) + k], exported.results.sims[j]
            assert got["seed"] == want["seed"] == seed
            assert got["normalizer_edge"] == want["normalizer_edge"]
            for a, b in zip(got["strategies"], want["strategies"]):
                assert {key: v for key, v in a.items() if key != "name"} == \
                       {key: v for key, v in b.items() if key != "name"}, (k, seed)
    edges = [r["strategies"][0]["final_edge"] for r in records]
    assert len(set(edges)) == len(edges)  # the members and seeds really differ


def test_population_values_equal_the_per_member_path():
    """Training's objective through one preloaded run equals exporting, compiling and
    scoring each member separately (the old path), value for value."""
    from propamm_jax.training.objective import official_values, per_member_values

    setting = _setting(1)
    population = _population(setting.pool)
    fast = official_values(setting, population, SEEDS, workers=2)
    slow = per_member_values(setting, population, SEEDS)
    assert fast.shape == (2, 2)
    assert np.array_equal(fast, slow), (fast, slow)


def test_official_scoring_starts_from_zeroed_storage():
    """Without a preload the parametric library runs on zero parameters (a degenerate
    fee): a different result from the same member preloaded, so the preload is what carries
    the parameters, and a simulation without one starts from zeroed storage."""
    from propamm_jax.official.preloaded import PreloadedSim, run_preloaded
    from propamm_jax.training.objective import _prepared_field
    from propamm_jax.training.parametric import member_storage

    setting = _setting(1)
    prepared = _prepared_field(setting.opponents)
    blob = member_storage(setting.pool, MEMBERS[0])
    records, failures = run_preloaded(prepared, [PreloadedSim(3, (blob, None)),
                                                 PreloadedSim(3, (None, None))],
                                      setting.config, setting.profile, workers=1)
    assert not failures
    assert records[0]["strategies"][0]["final_edge"] != records[1]["strategies"][0]["final_edge"]
    assert records[0]["strategies"][1]["final_edge"] != records[1]["strategies"][1]["final_edge"]


def test_member_storage_layout_and_bad_input():
    from propamm_jax.errors import PropammError
    from propamm_jax.official.preloaded import PreloadedSim, run_preloaded
    from propamm_jax.official.scoring import Prepared
    from propamm_jax.training.export import constant_values
    from propamm_jax.training.parametric import PARAM_SLOT, SLOT_NAMES, member_storage

    setting = _setting(1)
    blob = member_storage(setting.pool, MEMBERS[0])
    assert len(blob) == 1024 and not any(blob[:8 * PARAM_SLOT])
    values = constant_values(setting.pool, MEMBERS[0])
    for i, name in enumerate(SLOT_NAMES):
        stored = struct.unpack_from("<d", blob, 8 * (PARAM_SLOT + i))[0]
        assert struct.pack("<d", stored) == struct.pack("<d", values[name]), name
    with pytest.raises(PropammError, match="non-finite parameter B_BIAS"):
        member_storage(setting.pool, {**MEMBERS[0], "bias": float("nan")})
    prepared = Prepared(["a.so", "b.so"], ["a", "b"], [], [])
    with pytest.raises(PropammError, match="simulation 1: initial storage for 1 strategies"):
        run_preloaded(prepared, [PreloadedSim(0, (blob, None)), PreloadedSim(0, (blob,))],
                      setting.config, setting.profile)
    with pytest.raises(PropammError, match="simulation 0: initial storage of 3 bytes"):
        run_preloaded(prepared, [PreloadedSim(0, (b"abc", None))], setting.config,
                      setting.profile)
