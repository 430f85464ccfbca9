"""`propamm compare` (issue 12, item 5): paired differences by seed, ranking changes, and the
refusal of files that cannot be paired."""

from __future__ import annotations

import copy
import json
import math
import statistics

import pytest

from conftest import GOLDEN
from propamm_jax.cli import main
from propamm_jax.outputs.comparison import compare
from propamm_jax.errors import PropammError
from propamm_jax.outputs.frames import read_frame

FOUR = GOLDEN / "corrected_four_3k.json"


def _shifted(tmp_path, name="b.json", strategy=2, delta=lambda k: 5.0 + k % 3):
    """B: A with strategy `strategy`'s edge raised by delta(k) on the k-th simulation."""
    data = json.loads(FOUR.read_text())
    for k, sim in enumerate(data["sims"]):
        sim["strategies"][strategy]["final_edge"] += delta(k)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path, data


def test_paired_difference_standard_error_and_interval(tmp_path):
    path, _ = _shifted(tmp_path)
    result = compare(FOUR, path)
    row = result.frame.iloc[2]
    deltas = [5.0 + k % 3 for k in range(20)]  # the seeds' own order: golden files are sorted
    assert row["diff"] == pytest.approx(statistics.mean(deltas))
    se = statistics.stdev(deltas) / math.sqrt(20)
    assert row["std_err"] == pytest.approx(se)
    assert row["ci_high"] - row["diff"] == pytest.approx(2.093024 * se, rel=1e-5)  # t(0.975, 19)
    others = result.frame.drop(index=2)
    assert (others["diff"] == 0).all() and (others["std_err"] == 0).all()
    assert list(result.frame.strategy_a) == ["fixed_30bps", "fixed_65bps", "adaptive_fee",
                                             "skewed_curve"]


def test_ranking_changes_per_seed_and_by_mean(tmp_path):
    base = json.loads(FOUR.read_text())
    # Lift fixed_30bps above every other strategy on seeds 0, 3 and 7 only.
    lift = {0: 1e6, 3: 1e6, 7: 1e6}
    path, data = _shifted(tmp_path, strategy=0, delta=lambda k: lift.get(k, 0.0))

    def order(sim):
        edges = [s["final_edge"] for s in sim["strategies"]]
        return sorted(range(len(edges)), key=lambda i: (-edges[i], i))

    expected = sum(order(x) != order(y) for x, y in zip(base["sims"], data["sims"]))
    result = compare(FOUR, path)
    assert 1 <= expected <= 3
    assert result.rank_changed_share == pytest.approx(expected / 20)
    assert result.order_b[0] == "fixed_30bps"
    assert result.rank_changed_by_mean == (result.order_a != result.order_b)
    same = compare(FOUR, FOUR)
    assert same.rank_changed_share == 0.0 and not same.rank_changed_by_mean


def _edit(tmp_path, name, change):
    data = json.loads(FOUR.read_text())
    change(data)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("name, change, message", [
    ("seeds.json", lambda d: d["sims"].pop(), "ran different seeds"),
    ("seed.json", lambda d: d["sims"][0].update(seed=10**9), r"seed \d+ is only in"),
    ("config.json", lambda d: d["config"].update(steps=4000), r"different configs \(steps"),
    ("profile.json", lambda d: d.update(engine="reference"), "different profiles"),
    ("count.json", lambda d: [s["strategies"].pop() for s in d["sims"]], "paired by position"),
    ("twice.json", lambda d: d["sims"].append(copy.deepcopy(d["sims"][0])), "appears twice"),
])
def test_unpairable_files_are_refused_with_one_line(tmp_path, capsys, name, change, message):
    path = _edit(tmp_path, name, change)
    with pytest.raises(PropammError, match=message):
        compare(FOUR, path)
    assert main(["compare", str(FOUR), str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("propamm: error:") and name in err[0], err


def test_cli_prints_and_writes_the_table(tmp_path, capsys):
    path, _ = _shifted(tmp_path)
    out = tmp_path / "cmp.csv"
    assert main(["compare", str(FOUR), str(path), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "20 seeds, paired" in text and "ranking per seed: changed on" in text
    assert "adaptive_fee" in text and "[" in text
    table = read_frame(out)
    assert list(table.columns[:5]) == ["strategy_a", "strategy_b", "mean_a", "mean_b", "diff"]
    assert table["diff"].iloc[2] == pytest.approx(statistics.mean(5.0 + k % 3 for k in range(20)))
    assert main(["compare", str(FOUR), str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
