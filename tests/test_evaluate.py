"""`propamm evaluate` as the effectiveness tool (issue 12, item 4): fresh seeds and the
training opponents by default, --output by extension, --vs-fixed officially scored."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from propamm_jax.cli import main
from propamm_jax.errors import PropammError

needs_rustc = pytest.mark.skipif(shutil.which("rustc") is None, reason="needs rustc")


def _policy(path, *, seeds=True, opponents=("cpamm:30",), profile="corrected", steps=400):
    from propamm_jax.pools.dynamic_fee import DynamicFee, save_policy

    pool = DynamicFee(epoch_len=100)
    extra = {"profile": profile, "config": {"steps": steps, "epoch_len": 100},
             "training": {"opponents": list(opponents)}}
    if seeds:
        extra["seeds"] = {"train": [1000, 1099], "heldout": [0, 9]}
    return save_policy(path, pool, pool.params(bias=-1.2, w_dev=1.0, w_vol=0.5), **extra)


def test_defaults_come_from_the_policy_file(tmp_path):
    from propamm_jax.config import SimConfig
    from propamm_jax.training.evaluate import FAR_SEED_START, plan

    p = plan(_policy(tmp_path / "p.json"), simulations=3)
    assert p.seeds == (1100, 1101, 1102)  # past the train (1000..1099) and held-out ranges
    assert p.opponents == ("cpamm:30",) and p.profile == "corrected" and not p.warnings
    assert p.config == SimConfig(steps=400, epoch_len=100)
    assert plan(tmp_path / "p.json", opponents=()).opponents == ()
    assert plan(tmp_path / "p.json", profile="reference").profile == "reference"

    old = plan(_policy(tmp_path / "old.json", seeds=False), simulations=2)
    assert old.seeds == (FAR_SEED_START, FAR_SEED_START + 1)
    assert len(old.warnings) == 1 and "records no training seed ranges" in old.warnings[0]

    reused = plan(tmp_path / "p.json", seeds=range(5, 15))
    assert len(reused.warnings) == 1
    assert "5 of the 10 seeds are in the policy's heldout range 0..9" in reused.warnings[0]


def test_bad_seed_ranges_are_one_line(tmp_path):
    from propamm_jax.training.evaluate import plan

    path = _policy(tmp_path / "p.json")
    data = json.loads(path.read_text())
    data["seeds"]["train"] = "1000-1099"
    path.write_text(json.dumps(data))
    with pytest.raises(PropammError, match=r"p\.json: field 'seeds.train' must be \[first, last\]"):
        plan(path)


@needs_rustc
def test_cli_evaluates_on_fresh_seeds_against_the_training_opponents(tmp_path, x64, capsys):
    policy = _policy(tmp_path / "p.json")
    out = tmp_path / "run.parquet"
    assert main(["evaluate", str(policy), "--simulations", "3", "--vs-fixed", "20,30,60",
                 "--official-within", "1000", "--workers", "1", "--no-progress",
                 "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 seeds 1100..1102" in text and "opponents: cpamm:30" in text
    frame = pd.read_parquet(out)
    assert sorted(frame.seed.unique()) == [1100, 1101, 1102]
    assert list(frame.strategy_index.unique()) == [0, 1]  # the policy and cpamm:30
    fast = float(text.split("fast path mean edge:")[1].split()[0])
    official = float(text.split("official mean edge:")[1].split()[0])
    assert official == pytest.approx(frame[frame.strategy_index == 0].edge.mean(), abs=5e-4)
    assert official == pytest.approx(fast, rel=0.02, abs=0.1)
    rows = {int(line.split()[0]): line.split()[1:] for line in text.splitlines()
            if line.strip() and line.split()[0] in ("20", "30", "60")}
    assert set(rows) == {20, 30, 60} and all(len(v) == 2 for v in rows.values())
    for fee, (fast_fee, official_fee) in rows.items():  # every fee scored both ways
        assert float(official_fee) == pytest.approx(float(fast_fee), rel=0.02, abs=0.2), fee
    best = max(rows, key=lambda f: float(rows[f][1]))
    assert f"best fixed fee {best} bps (official)" in text


@needs_rustc
def test_vs_fixed_scores_officially_only_the_contenders(x64):
    from propamm_jax.config import SimConfig
    from propamm_jax.training.vs_fixed import compare_fixed

    config = SimConfig(steps=400, epoch_len=100)
    cmp = compare_fixed([10, 40, 90], [3, 4], "corrected", config, ["cpamm:30"],
                        official_within=0.0, workers=1, progress=False)
    assert set(cmp.fast) == {10, 40, 90}
    assert list(cmp.official) == [max(cmp.fast, key=cmp.fast.get)]  # only the fast-path best
    fee = next(iter(cmp.official))
    assert cmp.official[fee] == pytest.approx(cmp.fast[fee], rel=0.02, abs=0.2)
    assert cmp.against(cmp.official[fee] + 10.0).improvement == pytest.approx(
        10.0 / abs(cmp.official[fee]))
    fast_only = compare_fixed([10, 40], [3, 4], "corrected", config, official=False)
    assert fast_only.official == {} and fast_only.best()[0] in (10, 40)


@needs_rustc
def test_evaluate_reports_normalizer_best_fixed_and_a_field(tmp_path, x64, capsys):
    from conftest import STARTERS

    policy = _policy(tmp_path / "p.json", opponents=())
    run, standings = tmp_path / "run.parquet", tmp_path / "field.csv"
    assert main(["evaluate", str(policy), "--simulations", "4", "--vs-fixed", "20,40",
                 "--official-within", "1000", "--workers", "2", "--no-progress",
                 "--output", str(run), "--field", f"{STARTERS / 'flat_45bps.rs'},fixed:30",
                 "--field", "cpamm:60", "--field-output", str(standings)]) == 0
    text = capsys.readouterr().out
    frame = pd.read_parquet(run)
    policy_rows = frame[frame.strategy_index == 0].set_index("seed")
    vs_norm = float(text.split("vs normalizer:")[1].split()[0])
    assert vs_norm == pytest.approx(policy_rows.edge_vs_normalizer.mean(), abs=5e-4)
    official = {int(line.split()[0]): float(line.split()[2]) for line in text.splitlines()
                if line.strip() and line.split()[0] in ("20", "40")}
    best = max(official.values())
    paired = float(text.split("policy - best fixed, paired by seed:")[1].split()[0])
    assert paired == pytest.approx(policy_rows.edge.mean() - best, abs=0.011)
    assert "in the field (4 strategies, the policy as policy_export.rs, official)" in text
    field = pd.read_csv(standings)
    assert sorted(field.strategy) == ["fixed_30bps.rs", "fixed_60bps.rs", "flat_45bps.rs",
                                      "policy_export.rs"]
    assert (field.seeds == 4).all() and field.capital_share.sum() == pytest.approx(1.0)
    assert (field[[f"rank_{r}" for r in range(1, 5)]].sum(axis=1) == 4).all()


def test_bad_evaluate_options_are_one_line_before_any_work(tmp_path, capsys):
    policy = _policy(tmp_path / "p.json")
    cases = [
        (["--output", str(tmp_path / "nope" / "x.json")], "does not exist"),
        (["--output", str(tmp_path / "x.txt")], "unknown extension '.txt'"),
        (["--vs-fixed", "2.5"], "not a whole number of bps"),
        (["--vs-fixed", "a:b"], "--vs-fixed 'a:b'"),
        (["--normalizer-only", "--opponent", "cpamm:30"], "contradict"),
        (["--field", "fixed:30", "--fast-only"], "does not go with --fast-only"),
        (["--field-output", str(tmp_path / "f.csv")], "--field-output goes with --field"),
        (["--field", "fixed:3x", "--fast-only"], "does not go with --fast-only"),
        (["--field", "fixed:3x"], "entry 'fixed:3x': a fixed fee is fixed:BPS"),
        (["--field", ",".join(f"fixed:{b}" for b in range(16))], "17 strategies given"),
        (["--field", "fixed:30", "--field-output", str(tmp_path / "f.txt")], "unknown extension"),
    ]
    for extra, message in cases:
        assert main(["evaluate", str(policy), *extra]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("propamm: error:") and message in err[0], err
    assert main(["evaluate", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
