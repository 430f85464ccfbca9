"""propamm train --league (training/league.py): the draw, the snapshot schedule, a tiny run,
resume, the margin objective and bad input. Runs are 300 steps so each test is quick."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import interrupt_training

from propamm_jax.cli import main
from propamm_jax.errors import PropammError
from propamm_jax.training.league import (Entry, LeagueConfig, compiled_pool, draw_field,
                                         monitor_field, snapshot_due, snapshot_labels, specs)

TINY = dict(generations=3, population=4, batch_seeds=2, heldout=2, eval_every=1, steps=300,
            epoch_len=100)


def _cfg(**kw):
    from propamm_jax.training.train import TrainConfig

    return TrainConfig(**{**TINY, **kw})


def test_draw_is_a_pure_function_of_seed_and_generation_and_uses_every_kind():
    lc = LeagueConfig(field=6, snapshots=2, snapshot_every=3, compiled_every=4)
    pool = compiled_pool(lc, ["mine.rs"])
    assert [e.kind for e in pool] == ["starter"] * 4 + ["opponent"]
    fields = [draw_field(lc, 7, g, pool) for g in range(40)]
    assert fields == [draw_field(lc, 7, g, pool) for g in range(40)]
    assert fields != [draw_field(lc, 8, g, pool) for g in range(40)]
    kinds = {e.kind for f in fields for e in f.entries}
    assert kinds == {"fixed", "starter", "opponent", "snapshot"}
    for f in fields:
        assert len(f.entries) == lc.field
        assert f.compiled == ((f.generation + 1) % 4 == 0)
        fees = [int(e.name) for e in f.entries if e.kind == "fixed"]
        assert len(set(fees)) == len(fees) and set(fees) <= set(lc.fees)
        if not f.compiled:  # one make-up (one compiled program) for every fast generation
            assert [e.kind for e in f.entries] == ["fixed"] * 4 + ["snapshot"] * 2
    # with five compiled entries and room for five, every compiled field has them all
    assert all(sum(e.kind != "fixed" and e.kind != "snapshot" for e in f.entries) == 5
               for f in fields if f.compiled)
    # nothing compiled in the pool: every generation is fast
    bare = LeagueConfig(starters=False)
    assert not any(draw_field(bare, 0, g, compiled_pool(bare, [])).compiled for g in range(20))


def test_snapshots_enter_the_pool_on_schedule():
    lc = LeagueConfig(field=4, snapshots=3, snapshot_every=5)
    assert snapshot_labels(lc, 0) == [0]
    assert snapshot_labels(lc, 4) == [0]
    assert snapshot_labels(lc, 5) == [0, 5]
    assert snapshot_labels(lc, 12) == [0, 5, 10]
    assert [g for g in range(20) if snapshot_due(lc, g) is not None] == [4, 9, 14, 19]
    assert snapshot_due(lc, 9) == 10
    for g in range(30):
        snaps = [int(e.name) for e in draw_field(lc, 1, g).entries if e.kind == "snapshot"]
        assert snaps[0] == snapshot_labels(lc, g)[-1]       # the latest is always there
        assert set(snaps) <= set(snapshot_labels(lc, g))     # never one not yet taken
    late = {int(e.name) for g in range(25, 30) for e in draw_field(lc, 1, g).entries
            if e.kind == "snapshot"}
    assert len(late) > 1  # the history is sampled too, not only the latest


def test_monitor_field_spreads_the_fees():
    assert monitor_field(LeagueConfig(field=4)) == ("cpamm:10", "cpamm:40", "cpamm:70",
                                                    "cpamm:100")
    compiled = (Entry("starter", "a.rs"), Entry("opponent", "b.rs"))
    assert monitor_field(LeagueConfig(field=4), compiled) == ("a.rs", "b.rs", "cpamm:10",
                                                              "cpamm:100")
    never = LeagueConfig(field=4, compiled_every=0)  # no compiled generations: fees only
    assert monitor_field(never, compiled) == monitor_field(never)


def test_margin_objective_is_the_lead_over_the_best_other():
    from propamm_jax.pools.dynamic_fee import DynamicFee
    from propamm_jax.training.objective import Setting, per_seed_value

    edges = np.array([[10.0, 4.0, 12.0, 1.0], [5.0, 3.0, 2.0, 9.0]])  # policy, 2 others, norm
    margin = Setting(DynamicFee(), objective="margin")
    assert np.allclose(per_seed_value(edges, margin), [-2.0, 2.0])
    alone = np.array([[10.0, 4.0]])  # no opponents: the normalizer is the other
    assert np.allclose(per_seed_value(alone, margin), [6.0])
    assert np.allclose(per_seed_value(edges, Setting(DynamicFee())), [10.0, 5.0])
    beaten = Setting(DynamicFee(), objective="beaten")
    assert np.allclose(per_seed_value(edges, beaten), [0.5, 1.0])
    placed = Setting(DynamicFee(), objective="placed", rank_weight=10.0)
    assert np.allclose(per_seed_value(edges, placed), [-2.0 + 5.0, 2.0 + 10.0])


def test_tiny_league_run_end_to_end(tmp_path, x64):
    """The CLI with a compiled --opponent, no starters (fewer compilations): fields logged,
    snapshots written on schedule, a compiled generation scored officially, the margin
    objective by default."""
    from conftest import STRATEGIES

    rs = str(STRATEGIES / "fixed_30bps.rs")
    out = tmp_path / "run"
    assert main(["train", "--league", "--no-starters", "--opponent", rs, "--league-field", "3",
                 "--snapshot-every", "2", "--compiled-every", "3", "--generations", "3",
                 "--population", "2", "--batch-seeds", "2", "--heldout", "2",
                 "--eval-every", "3", "--steps", "300", "--epoch-len", "100", "--out", str(out),
                 "--no-progress"]) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["field"]["compiled"] for r in log] == [False, False, True]
    assert [r.get("snapshot") for r in log] == [None, 2, None]
    assert ["opponent", rs] in log[2]["field"]["entries"]
    assert all(np.isfinite(r["best"]) for r in log)
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == [
        "snap_0000.json", "snap_0000.rs", "snap_0002.json", "snap_0002.rs"]
    policy = json.loads((out / "policy.json").read_text())
    assert policy["training"]["objective"] == "margin"
    assert policy["training"]["league"]["compiled_every"] == 3


def test_league_resume_reproduces_the_run(tmp_path, x64, monkeypatch):
    from propamm_jax.training import train as tr

    lc = LeagueConfig(field=3, snapshots=1, snapshot_every=1, compiled_every=0,
                      starters=False)
    full = tr.train(_cfg(league=lc, objective="margin"), tmp_path / "full", progress=False)
    original = interrupt_training(monkeypatch, tr)
    with pytest.raises(KeyboardInterrupt):
        tr.train(_cfg(league=lc, objective="margin"), tmp_path / "run", progress=False)
    monkeypatch.setattr(tr, "population_values", original)
    resumed = tr.train(_cfg(league=lc, objective="margin"), tmp_path / "run", resume=True,
                       progress=False)
    assert resumed["params"] == full["params"]
    drop = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
    logs = [[drop(json.loads(x)) for x in (tmp_path / d / tr.LOG).read_text().splitlines()]
            for d in ("full", "run")]
    assert logs[0] == logs[1]
    assert (tmp_path / "run" / "snapshots" / "snap_0002.json").read_text() == \
        (tmp_path / "full" / "snapshots" / "snap_0002.json").read_text()
    with pytest.raises(PropammError, match="different run"):
        tr.train(_cfg(league=LeagueConfig(field=4, starters=False, compiled_every=0),
                      objective="margin", generations=4), tmp_path / "run", resume=True,
                 progress=False)


def test_missing_snapshot_is_one_line(tmp_path):
    from propamm_jax.training.league import Field

    with pytest.raises(PropammError, match="snapshot 5 is missing") as info:
        specs(Field(5, False, (Entry("snapshot", "5"),)), tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kw, message", [
    (dict(field=1), "--league-field must be 2..15"),
    (dict(field=16), "--league-field must be 2..15"),
    (dict(snapshots=7), "--league-snapshots must be 1..6"),
    (dict(snapshot_every=0), "--snapshot-every"),
    (dict(compiled_every=-1), "--compiled-every"),
    (dict(fees=(10, 20)), "cannot fill"),
    (dict(fees=(10, 20.5, 30, 40, 50)), "20.5"),
])
def test_bad_league_options(kw, message):
    with pytest.raises(PropammError, match=message):
        LeagueConfig(**kw).check()


def test_an_all_compiled_league_needs_fees_only_for_the_room_left():
    """--compiled-every 1 with compiled entries has no fast generation to fill with fees."""
    LeagueConfig(field=12, fees=(20, 30), compiled_every=1).check(n_compiled=6)
    with pytest.raises(PropammError, match="cannot fill"):
        LeagueConfig(field=12, fees=(20, 30), compiled_every=1).check(n_compiled=0)
    with pytest.raises(PropammError, match="cannot fill"):
        LeagueConfig(field=12, fees=(20, 30), compiled_every=2).check(n_compiled=6)


def test_league_cli_errors_are_one_line(tmp_path, capsys):
    out = str(tmp_path / "x")
    assert main(["train", "--league-field", "5", "--out", out]) == 2
    assert main(["train", "--league", "--opponent", "cpamm:30", "--out", out]) == 2
    assert main(["train", "--league", "--opponent", str(tmp_path / "no.rs"), "--out", out]) == 2
    assert main(["train", "--league", "--algorithm", "adam", "--out", out]) == 2
    assert main(["train", "--league", "--league-fees", "10,x", "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 5 and all(line.startswith("propamm: error:") for line in err), err
    assert "goes with --league" in err[0] and "--league-fees" in err[1]
    assert "no such file" in err[2] and "adam" in err[3] and "--league-fees" in err[4]


def test_fields_of_one_make_up_share_one_program(x64):
    """The fast path's program is keyed by the opponents' pool classes, not their specs: a
    league's fast generations (different fees, same make-up) compile once."""
    from propamm_jax.config import SimConfig
    from propamm_jax.pools.dynamic_fee import DynamicFee
    from propamm_jax.training import objective
    from propamm_jax.training.objective import Setting, population_values

    pool = DynamicFee(epoch_len=100)
    members = [pool.params(bias=-1.0), pool.params(bias=-2.0)]
    population = type(members[0])(*(np.array([float(a), float(b)]) for a, b in zip(*members)))
    config = SimConfig(steps=300, epoch_len=100)
    before = len(objective._RUNS)
    a = population_values(Setting(pool, ("cpamm:20", "cpamm:70"), config=config), population,
                          [1, 2])
    b = population_values(Setting(pool, ("cpamm:30", "cpamm:90"), config=config), population,
                          [1, 2])
    assert len(objective._RUNS) == before + 1
    assert not np.array_equal(a, b)  # the fees are arguments: different fields, other values
