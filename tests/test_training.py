"""propamm train / export / evaluate (issue #4): tiny runs (300 steps) so each test is quick."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from conftest import interrupt_training

from propamm_jax.cli import main
from propamm_jax.errors import PropammError

TINY = dict(generations=2, population=4, batch_seeds=2, heldout=2, eval_every=1, steps=300,
            epoch_len=100)


def _cfg(**kw):
    from propamm_jax.training.train import TrainConfig

    return TrainConfig(**{**TINY, **kw})


@pytest.mark.parametrize("algorithm", ["cma_es", "snes", "open_es"])
def test_train_writes_log_checkpoint_policy_and_is_reproducible(tmp_path, x64, algorithm):
    from propamm_jax.pools.dynamic_fee import load_policy
    from propamm_jax.training.train import train

    a = train(_cfg(algorithm=algorithm, seed=3), tmp_path / "a", progress=False)
    b = train(_cfg(algorithm=algorithm, seed=3), tmp_path / "b", progress=False)
    c = train(_cfg(algorithm=algorithm, seed=4), tmp_path / "c", progress=False)
    assert a["params"] == b["params"]
    assert a["params"] != c["params"]
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in log] == [0, 1]
    assert all(np.isfinite([r["best"], r["mean"], r["heldout"]]).all() for r in log)
    assert log[0]["seeds"] != log[1]["seeds"]  # the batch is resampled every generation
    assert (tmp_path / "a" / "checkpoint.npz").exists()
    for key in ("family", "version", "profile", "config", "seeds", "package_version", "training"):
        assert key in a
    load_policy(tmp_path / "a" / "policy.json")


def test_resume_continues_to_the_same_policy(tmp_path, x64, monkeypatch):
    """Interrupt a 3-generation run in generation 1, resume it: same policy, same log length."""
    from propamm_jax.training import train as tr

    full = tr.train(_cfg(generations=3), tmp_path / "full", progress=False)
    original = interrupt_training(monkeypatch, tr)
    with pytest.raises(KeyboardInterrupt):
        tr.train(_cfg(generations=3), tmp_path / "run", progress=False)
    monkeypatch.setattr(tr, "population_values", original)
    assert len((tmp_path / "run" / tr.LOG).read_text().splitlines()) == 1
    with pytest.raises(PropammError, match="pass --resume"):
        tr.train(_cfg(generations=3), tmp_path / "run", progress=False)
    resumed = tr.train(_cfg(generations=3), tmp_path / "run", resume=True, progress=False)
    assert resumed["params"] == full["params"]
    assert len((tmp_path / "run" / tr.LOG).read_text().splitlines()) == 3


def test_adam_trains_through_the_smoothed_engine(tmp_path, x64):
    from propamm_jax.training.train import train

    policy = train(_cfg(algorithm="adam", learning_rate=0.1), tmp_path, progress=False)
    assert policy["params"]["bias"] != -1.2  # moved from the initial point
    assert all(np.isfinite(v) for v in policy["params"].values())


@pytest.mark.parametrize("kw, message", [
    (dict(algorithm="pso"), "unknown algorithm 'pso'"),
    (dict(algorithm="open_es", population=5), "open_es needs an even population"),
    (dict(heldout_start=1_000_000), "overlap the training seeds"),
    (dict(objective="sharpe"), "unknown objective"),
])
def test_bad_training_options(kw, message):
    with pytest.raises(PropammError, match=message):
        _cfg(**kw).check()


def test_corrupted_checkpoint_is_one_line(tmp_path, x64):
    from propamm_jax.training.train import train

    train(_cfg(generations=1), tmp_path, progress=False)
    (tmp_path / "checkpoint.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(PropammError, match="corrupted checkpoint") as info:
        train(_cfg(generations=2), tmp_path, resume=True, progress=False)
    assert "\n" not in str(info.value)


def test_checkpoint_from_another_run_is_refused(tmp_path, x64):
    from propamm_jax.training.train import train

    train(_cfg(generations=1), tmp_path, progress=False)
    with pytest.raises(PropammError, match="different run"):
        train(_cfg(generations=2, population=6), tmp_path, resume=True, progress=False)


def _policy(tmp_path, **params):
    from propamm_jax.pools.dynamic_fee import DynamicFee, save_policy

    pool = DynamicFee(epoch_len=100)
    return save_policy(tmp_path / "policy.json", pool, pool.params(**params))


def test_policy_of_another_family_or_version_is_refused(tmp_path):
    path = _policy(tmp_path, bias=-1.0)
    data = json.loads(path.read_text())
    for change, message in (({"family": "other"}, "policy family 'other'"),
                            ({"version": 3}, "policy version 3")):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**data, **change}))
        assert main(["export", str(bad), "-o", str(tmp_path / "x.rs")]) == 2
        with pytest.raises(PropammError, match=message):
            from propamm_jax.training.export import export

            export(bad, tmp_path / "x.rs")


def test_version_1_policy_loads_without_the_fair_price_tilt(tmp_path):
    from propamm_jax.pools.dynamic_fee import load_policy

    data = json.loads(_policy(tmp_path, bias=-1.0, w_skew=0.5).read_text())
    del data["params"]["w_dev"]
    old = tmp_path / "v1.json"
    old.write_text(json.dumps({**data, "version": 1}))
    _, params = load_policy(old)
    assert float(params.w_dev) == 0.0 and float(params.w_skew) == 0.5
    data["params"]["w_dev"] = 1.0
    old.write_text(json.dumps({**data, "version": 1}))
    with pytest.raises(PropammError, match="needs policy version 2"):
        load_policy(old)


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    assert main(["train", "--algorithm", "pso", "--out", str(tmp_path)]) == 2
    assert main(["train", "--algorithm", "open_es", "--population", "7",
                 "--out", str(tmp_path)]) == 2
    assert main(["train", "--heldout-start", "1000000", "--out", str(tmp_path)]) == 2
    assert main(["train", "--init", "w_dev", "--out", str(tmp_path)]) == 2
    assert main(["train", "--init", "w_nope=1", "--out", str(tmp_path)]) == 2
    assert main(["train", "--fee-min-bps", "300", "--fee-max-bps", "200",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 6 and all(line.startswith("propamm: error:") for line in err), err
    assert "--init 'w_dev'" in err[3] and "'w_nope'" in err[4] and "fee-min-bps" in err[5]


@pytest.mark.skipif(shutil.which("rustc") is None, reason="needs rustc")
def test_export_compiles_with_plain_rustc_and_matches_the_fast_path(tmp_path, x64):
    """Fidelity on a few short simulations: the exported submission scored officially is
    within 1% of the fast path (features w_vol/w_flow/w_weight/w_epoch/w_skew/w_dev all
    active)."""
    from propamm_jax.config import SimConfig
    from propamm_jax.training.evaluate import evaluate
    from propamm_jax.training.export import export

    path = _policy(tmp_path, bias=-1.0, w_vol=1.0, w_flow=0.5, w_weight=0.3, w_epoch=0.4,
                   w_skew=2.0, w_dev=1.5)
    rs = export(path, tmp_path / "my_policy.rs")
    text = rs.read_text()
    assert "__prop_amm_compute_swap" in text and "const W_SKEW: f64 = 2.0;" in text
    assert "const W_DEV: f64 = 1.5;" in text
    so = tmp_path / "libmy_policy.so"
    subprocess.run(["rustc", "--edition", "2021", "--crate-type", "cdylib", "-O", str(rs),
                    "-o", str(so)], check=True, capture_output=True)
    from propamm_jax.official.validate import validate_file

    report = validate_file(rs, strict=True)
    assert report.ok, "\n".join(report.lines())
    ev = evaluate(path, range(3), "corrected", SimConfig(steps=2000, epoch_len=100),
                  workers=1, progress=False)
    assert ev.official_failures == 0
    assert abs(ev.gap) < 0.01, ev


def test_export_bad_output_name(tmp_path):
    path = _policy(tmp_path)
    assert main(["export", str(path), "-o", str(tmp_path / "x.txt")]) == 2


@pytest.mark.skipif(shutil.which("rustc") is None, reason="needs rustc")
def test_compiled_opponent_is_scored_officially(tmp_path, x64):
    """A `.rs` opponent: members are exported and scored by the native engine. Against
    fixed_30bps.rs the values agree with the fast path against cpamm:30 (the same curve);
    a training run completes; adam refuses it with one line."""
    from conftest import STRATEGIES
    from propamm_jax.config import SimConfig
    from propamm_jax.pools.dynamic_fee import DynamicFee
    from propamm_jax.training.objective import Setting, population_values
    from propamm_jax.training.train import train

    pool = DynamicFee(epoch_len=100)
    members = [pool.params(bias=-1.0, w_dev=1.0), pool.params(bias=-2.0, w_vol=1.0)]
    population = type(members[0])(*(np.array([float(a), float(b)]) for a, b in zip(*members)))
    config = SimConfig(steps=600, epoch_len=100)
    rs = str(STRATEGIES / "fixed_30bps.rs")
    official = population_values(Setting(pool, (rs,), "corrected", config), population,
                                 [5, 6, 7])
    fast = population_values(Setting(pool, ("cpamm:30",), "corrected", config), population,
                             [5, 6, 7])
    assert official.shape == (2, 3) and not np.array_equal(official[0], official[1])
    assert np.allclose(official, fast, rtol=0.03, atol=1.0), (official, fast)

    policy = train(_cfg(generations=1, opponents=(rs,)), tmp_path / "run", progress=False)
    assert policy["training"]["opponents"] == [rs]
    assert main(["train", "--algorithm", "adam", "--opponent", rs, "--out",
                 str(tmp_path / "adam")]) == 2
    assert main(["train", "--opponent", str(tmp_path / "missing.rs"), "--out",
                 str(tmp_path / "missing")]) == 2
