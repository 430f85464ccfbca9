"""`propamm tournament` (issue 17, item 2): a field scored officially, ranked with standard
errors, paired gaps to the leader, rank distributions over seeds and capital shares."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import GOLDEN, STARTERS
from propamm_jax.cli import main
from propamm_jax.outputs.results import Results
from propamm_jax.official.tournament import Table, lines, standings, table

needs_rustc = pytest.mark.skipif(shutil.which("rustc") is None, reason="needs rustc")
SMALL = ["--steps", "300", "--epoch-len", "100", "--workers", "2", "--no-progress",
         "--no-journal"]


def _synthetic() -> Table:
    """4 seeds x 3 strategies, worked by hand below (seed 2 has a tie for rank 2)."""
    edge = np.array([[10.0, 8.0, 1.0],
                     [2.0, 6.0, 1.0],
                     [9.0, 5.0, 5.0],
                     [7.0, 5.0, 3.0]])
    capital = np.array([[0.5, 0.3, 0.2], [0.2, 0.7, 0.1], [0.6, 0.2, 0.2], [0.4, 0.4, 0.2]])
    return Table(("a.rs", "b.rs", "c.rs"), np.arange(4, dtype=np.uint64), edge, capital,
                 np.array([4.0, 0.0, 5.0, 3.0]))


def test_standings_match_a_hand_computation():
    s = standings(_synthetic())
    assert s.leader == 0 and s.seeds == 4 and s.order() == [0, 1, 2]
    assert s.mean.tolist() == [7.0, 6.0, 2.5]
    # a: deviations 3, -5, 2, 0 -> sum of squares 38; SE = sqrt(38 / 3) / sqrt(4)
    assert s.se[0] == pytest.approx(math.sqrt(38 / 3) / 2)
    # b - a: -2, 4, -4, -2 -> mean -1, squares of deviations 1 + 25 + 9 + 1 = 36
    assert s.diff[1] == -1.0 and s.diff_se[1] == pytest.approx(math.sqrt(36 / 3) / 2)
    # c - a: -9, -1, -4, -4 -> mean -4.5, squares 20.25 + 12.25 + 0.25 + 0.25 = 33
    assert s.diff[2] == -4.5 and s.diff_se[2] == pytest.approx(math.sqrt(33 / 3) / 2)
    assert s.diff[0] == 0.0 and math.isnan(s.diff_se[0])
    # ranks by seed: a 1,2,1,1  b 2,1,2,2  c 3,3,2,3 (b and c tie on seed 2: both rank 2)
    assert s.rank_counts.tolist() == [[3, 1, 0], [1, 3, 0], [0, 1, 3]]
    assert s.median_rank.tolist() == [1.0, 2.0, 3.0]
    assert s.win_share.tolist() == [0.75, 0.25, 0.0]
    assert s.capital == pytest.approx([0.425, 0.4, 0.175])
    # vs normalizer (4, 0, 5, 3): a 6, 2, 4, 4 -> mean 4, squares 4 + 4 + 0 + 0
    assert s.vs_norm[0] == 4.0 and s.vs_norm_se[0] == pytest.approx(math.sqrt(8 / 3) / 2)
    second, lead, z = s.margin()
    assert (second, lead) == (1, 1.0) and z == pytest.approx(1 / math.sqrt(3))
    text = "\n".join(lines(s))
    assert "leader a.rs: 1.00 ahead of b.rs = 0.58 paired SE (not more than 2 SE)" in text


def test_one_seed_has_no_standard_errors_and_a_clear_leader_says_so():
    t = _synthetic()
    one = standings(t._replace(seeds=t.seeds[:1], edge=t.edge[:1], capital=t.capital[:1],
                               normalizer=t.normalizer[:1]))
    assert np.isnan(one.se).all() and one.rank_counts.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    ahead = standings(t._replace(edge=t.edge + np.array([[20.0, 0.0, 0.0]])))
    assert "(more than 2 SE)" in "\n".join(lines(ahead))


def test_table_reads_a_results_file():
    results = Results.load(GOLDEN / "corrected_four_3k.json")
    s = standings(table(results))
    assert s.labels == tuple(results.strategies) and s.seeds == len(results.sims)
    for i, row in enumerate(results.aggregate()):
        assert s.mean[i] == pytest.approx(row["mean_edge"], rel=1e-12)
        assert s.capital[i] == pytest.approx(row["final_cap_pct"] / 100, rel=1e-12)
        assert s.vs_norm[i] == pytest.approx(row["vs_norm"], rel=1e-9, abs=1e-9)
    assert (s.rank_counts.sum(axis=1) == s.seeds).all()  # one rank per strategy and seed
    edges = np.array([[st["final_edge"] for st in sim["strategies"]] for sim in results.sims])
    best = edges == edges.max(axis=1, keepdims=True)
    assert s.rank_counts[:, 0].tolist() == best.sum(axis=0).tolist()


@needs_rustc
def test_cli_scores_three_strategies_officially(tmp_path, capsys):
    out, res, plot = tmp_path / "standings.csv", tmp_path / "results.json", tmp_path / "p.png"
    argv = ["tournament", str(STARTERS / "flat_45bps.rs"), str(STARTERS / "undercut.rs"),
            "fixed:30", "--simulations", "5", "--seed-start", "11", *SMALL,
            "--output", str(out), "--results", str(res), "--plot", str(plot)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "profile: reference (default of propamm tournament" in text
    assert "ranks 1..3" in text and "leader " in text
    frame = pd.read_csv(out)
    assert sorted(frame.strategy) == ["fixed_30bps.rs", "flat_45bps.rs", "undercut.rs"]
    assert frame.place.tolist() == [1, 2, 3] and (frame.seeds == 5).all()
    results = Results.load(res)
    assert results.engine == "reference" and sorted(s["seed"] for s in results.sims) == \
        list(range(11, 16))
    # the standings recomputed from the written results, independently of the module
    per_seed = results.frame().pivot(index="seed", columns="file", values="edge")
    means = per_seed.mean()
    assert frame.set_index("strategy").mean_edge.to_dict() == pytest.approx(means.to_dict())
    leader = means.idxmax()
    for row in frame.itertuples():
        d = per_seed[row.strategy] - per_seed[leader]
        assert row.diff_to_leader == pytest.approx(d.mean(), abs=1e-9)
        if row.strategy != leader:
            assert row.diff_se == pytest.approx(d.std(ddof=1) / math.sqrt(5))
        wins = (per_seed[row.strategy] >= per_seed.max(axis=1)).sum()
        assert row.rank_1 == wins and row.win_share == pytest.approx(wins / 5)
        assert row.rank_1 + row.rank_2 + row.rank_3 == 5
    capital = results.frame().groupby("file").final_capital_weight.mean()
    assert frame.set_index("strategy").capital_share.to_dict() == pytest.approx(capital.to_dict())
    assert plot.read_bytes().startswith(b"\x89PNG")


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


@needs_rustc
def test_a_field_of_sixteen(tmp_path, capsys):
    starters = sorted(str(p) for p in STARTERS.glob("*.rs"))
    field = starters + [f"fixed:{bps}" for bps in range(10, 130, 10)]
    assert len(field) == 16
    out = tmp_path / "standings.json"
    assert main(["tournament", *field, "--simulations", "2", "--steps", "100",
                 "--epoch-len", "50", "--workers", "2", "--no-progress", "--no-journal",
                 "--profile", "corrected", "--output", str(out)]) == 0
    assert "ranks 1..16" in capsys.readouterr().out
    frame = pd.DataFrame(json.loads(out.read_text(), parse_constant=_no_constant))  # strict JSON
    assert len(frame) == 16 and frame.strategy.is_unique
    assert frame.diff_se.isna().sum() == 1  # the leader's gap to itself: null, read as NaN
    ranks = frame[[f"rank_{r}" for r in range(1, 17)]]
    assert (ranks.sum(axis=1) == 2).all()  # fixed fees can tie; then they share a rank
    assert frame.capital_share.sum() == pytest.approx(1.0)


@needs_rustc
def test_journal_and_resume_as_score(tmp_path, capsys):
    journal, out = tmp_path / "field.jsonl", tmp_path / "s.json"
    base = ["tournament", "fixed:30", "fixed:70", "--steps", "200", "--epoch-len", "100",
            "--workers", "1", "--no-progress", "--journal", str(journal), "--output", str(out)]
    assert main([*base, "--simulations", "2"]) == 0
    first = pd.DataFrame(json.loads(out.read_text()))
    assert main([*base, "--simulations", "3", "--resume"]) == 0
    text = capsys.readouterr().out
    assert "3 simulations in" in text and "profile, 2 read back from the journal)" in text
    again = pd.DataFrame(json.loads(out.read_text()))
    assert (again.seeds == 3).all() and (first.seeds == 2).all()
    assert len(journal.read_text().splitlines()) >= 3


@needs_rustc
def test_a_rejected_entrant_is_named_and_the_rest_ranked(tmp_path, capsys):
    from conftest import FIXTURES

    out = tmp_path / "s.csv"
    assert main(["tournament", "fixed:30", str(FIXTURES / "bad" / "compile_error.rs"),
                 "fixed:70", "--simulations", "2", *SMALL, "--output", str(out)]) == 1
    captured = capsys.readouterr()
    rejected = [ln for ln in captured.err.splitlines() if ln.startswith("REJECTED")]
    assert len(rejected) == 1 and "compile_error.rs" in rejected[0]
    assert sorted(pd.read_csv(out).strategy) == ["fixed_30bps.rs", "fixed_70bps.rs"]


@pytest.mark.parametrize("argv, message", [
    (["a.rs"], "a tournament needs at least 2 strategies, got 1"),
    ([f"fixed:{b}" for b in range(17)], "17 strategies given; the engine takes at most 16"),
    (["fixed:abc", "fixed:3"], "entry 'fixed:abc': a fixed fee is fixed:BPS"),
    (["cpamm:30", "fixed:30"], "entry 'fixed_30bps.rs' appears twice"),
    (["fixed:30", "missing_file.rs"], "missing_file.rs"),
    (["fixed:30", "fixed:40", "--output", "standings.txt"], "unknown extension '.txt'"),
    (["fixed:30", "fixed:40", "--plot", "p.jpg"], "--plot p.jpg: unknown extension"),
    (["fixed:30", "fixed:40", "--simulations", "0"], "--simulations must be at least 1"),
])
def test_bad_input_is_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["tournament", *argv, "--no-progress"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("propamm: error:") and message in err[0], err
    if "missing" not in message:  # a missing file is found where score looks for it
        assert captured.out == ""  # refused before anything started: no banner


def test_help_lists_the_command(capsys):
    with pytest.raises(SystemExit):
        main(["tournament", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "cpamm:BPS / fixed:BPS" in text and "--plot" in text and "--seed-start" in text
