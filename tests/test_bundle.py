"""Submission bundles: submit writes hashes and results, verify re-runs them identically and
catches any changed byte, leaderboard ranks bundles."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import STRATEGIES
from propamm_jax.config import SimConfig
from propamm_jax.errors import PropammError

CONFIG = SimConfig(steps=400, epoch_len=200)
SEEDS = [5, 6, 2**64 - 1]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from propamm_jax.outputs.bundle import submit

    out = tmp_path_factory.mktemp("bundles") / "a"
    sub = submit([STRATEGIES / "fixed_30bps.rs", STRATEGIES / "adaptive_fee.rs"], out,
                 config=CONFIG, seeds=SEEDS, workers=2, progress=False)
    assert not sub.failures
    return out


def test_receipt_records_hashes_versions_and_results(bundle):
    from propamm_jax import __version__
    from propamm_jax.outputs.bundle import sha256_file
    from propamm_jax.native.build import compile_rust, rustc_version
    from propamm_jax.outputs.results import Results

    receipt = json.loads((bundle / "receipt.json").read_text())
    assert receipt["package_version"] == __version__
    assert receipt["rustc_version"] == rustc_version()
    assert receipt["profile"] == "reference" and receipt["config"] == CONFIG.to_json()
    assert [int(s) for s in receipt["seeds"]] == SEEDS
    for st, name in zip(receipt["strategies"], ["fixed_30bps.rs", "adaptive_fee.rs"]):
        assert st["name"] == name
        assert (bundle / st["source"]).read_bytes() == (STRATEGIES / name).read_bytes()
        assert st["source_sha256"] == sha256_file(STRATEGIES / name)
        assert st["library_sha256"] == sha256_file(compile_rust(STRATEGIES / name))
    results = Results.load(bundle / "results.json")
    assert len(results.sims) == 3
    assert receipt["aggregate"] == json.loads(json.dumps(results.aggregate()))


def test_verify_confirms_an_untouched_bundle(bundle):
    from propamm_jax.outputs.bundle import verify

    report = verify(bundle, workers=2, progress=False)
    assert report.ok, report.problems
    assert any("identical" in c for c in report.checks)


def test_any_single_byte_change_of_a_source_is_caught(bundle, tmp_path):
    from propamm_jax.outputs.bundle import check_sources, load_receipt, verify

    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    receipt = load_receipt(copy)
    src = copy / receipt["strategies"][1]["source"]
    original = src.read_bytes()
    for i in range(len(original)):  # every position, each byte changed to another value
        changed = bytearray(original)
        changed[i] = (changed[i] + 1) % 256
        src.write_bytes(bytes(changed))
        problems = check_sources(copy, receipt)
        assert len(problems) == 1 and "adaptive_fee.rs" in problems[0], i
    changed = bytearray(original)
    changed[len(original) // 2] ^= 0x20
    src.write_bytes(bytes(changed))
    report = verify(copy, progress=False)
    assert not report.ok and "source was changed" in report.problems[0]


def test_verify_catches_edited_results(bundle, tmp_path):
    from propamm_jax.outputs.bundle import verify

    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    receipt = json.loads((copy / "receipt.json").read_text())
    receipt["aggregate"][0]["mean_edge"] += 1e-9
    (copy / "receipt.json").write_text(json.dumps(receipt))
    report = verify(copy, workers=2, progress=False)
    assert not report.ok
    assert any("aggregate[0].mean_edge" in p for p in report.problems)


def test_leaderboard_ranks_bundles(bundle, tmp_path):
    """A bundle written without opponents: its strategies are all submissions, ranked against
    each other; a bundle of one submission and one opponent is another field."""
    from propamm_jax.outputs.bundle import format_leaderboard, leaderboard, submit

    root = tmp_path / "all"
    shutil.copytree(bundle, root / "a")
    submit([STRATEGIES / "fixed_65bps.rs"], root / "b", config=CONFIG, seeds=SEEDS, workers=2,
           progress=False, opponents=[STRATEGIES / "fixed_30bps.rs"])
    (root / "a" / "sources" / "fixed_30bps.rs").write_text("// changed\n")
    board = leaderboard(root)
    assert len(board) == 3 and board["group"].nunique() == 2
    pair = board[board["bundle"] == "a"]
    assert list(pair["rank"]) == [1, 2] and pair["group"].nunique() == 1
    assert list(pair["mean_edge"]) == sorted(pair["mean_edge"], reverse=True)
    assert "2 submissions per bundle" in pair["field"].iloc[0]
    assert dict(zip(board["strategy"], board["sources_ok"])) == {
        "fixed_30bps": False, "adaptive_fee": False, "fixed_65bps": True}
    text = format_leaderboard(board)
    assert "MODIFIED" in text and "fixed_65bps" in text


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """Bundles for the leaderboard: three submissions against the same two opponents, one
    against a different opponent, and one on other seeds."""
    from propamm_jax.outputs.bundle import submit

    root = tmp_path_factory.mktemp("field")
    opponents = [STRATEGIES / "fixed_30bps.rs", STRATEGIES / "adaptive_fee.rs"]
    for name, sub in (("x", "fixed_65bps.rs"), ("y", "fixed_100bps.rs"), ("z", "fixed_10bps.rs")):
        submit([STRATEGIES / sub], root / name, config=CONFIG, seeds=SEEDS, workers=2,
               progress=False, opponents=opponents)
    submit([STRATEGIES / "fixed_150bps.rs"], root / "other_field", config=CONFIG, seeds=SEEDS,
           workers=2, progress=False, opponents=[STRATEGIES / "fixed_50bps.rs"])
    submit([STRATEGIES / "fixed_50bps.rs"], root / "other_seeds", config=CONFIG, seeds=[7, 8],
           workers=2, progress=False, opponents=opponents)
    return root


def test_receipt_records_roles(field):
    receipt = json.loads((field / "x" / "receipt.json").read_text())
    assert receipt["format"] == "propamm-bundle/2"
    assert [(st["name"], st["role"]) for st in receipt["strategies"]] == [
        ("fixed_65bps.rs", "submission"), ("fixed_30bps.rs", "opponent"),
        ("adaptive_fee.rs", "opponent")]


def test_leaderboard_ranks_only_submissions_within_their_field(field):
    from propamm_jax.outputs.bundle import format_leaderboard, leaderboard
    from propamm_jax.outputs.results import Results

    board = leaderboard(field)
    assert sorted(board["strategy"]) == ["fixed_100bps", "fixed_10bps", "fixed_150bps",
                                         "fixed_50bps", "fixed_65bps"]  # no opponent ranked
    groups = board.groupby("group")["bundle"].apply(sorted).tolist()
    assert sorted(groups) == [["other_field"], ["other_seeds"], ["x", "y", "z"]]
    same = board[board["bundle"].isin(["x", "y", "z"])]
    assert list(same["rank"]) == [1, 2, 3]
    assert list(same["mean_edge"]) == sorted(same["mean_edge"], reverse=True)
    for _, row in same.iterrows():  # SE from the bundle's own simulations
        frame = Results.load(field / row["bundle"] / "results.json").frame()
        edges = frame.loc[frame["strategy"] == row["strategy"], "edge"].to_numpy()
        assert row["se_edge"] == pytest.approx(edges.std(ddof=1) / len(edges) ** 0.5, rel=1e-9)
        assert row["field"] == "adaptive_fee.rs, fixed_30bps.rs"
    text = format_leaderboard(board)
    assert "against: adaptive_fee.rs, fixed_30bps.rs" in text and " SE " in text


def test_old_bundles_without_roles_still_load(bundle, tmp_path):
    from propamm_jax.outputs.bundle import leaderboard, verify

    old = tmp_path / "old"
    shutil.copytree(bundle, old)
    receipt = json.loads((old / "receipt.json").read_text())
    receipt["format"] = "propamm-bundle/1"
    for st in receipt["strategies"]:
        del st["role"]
    (old / "receipt.json").write_text(json.dumps(receipt))
    board = leaderboard(tmp_path)
    assert sorted(board["strategy"]) == ["adaptive_fee", "fixed_30bps"]
    assert verify(old, workers=2, progress=False).ok


def test_submit_and_verify_bad_input(tmp_path):
    from propamm_jax.outputs.bundle import leaderboard, submit, verify

    with pytest.raises(PropammError, match="x.so: a submission is Rust source"):
        submit([tmp_path / "x.so"], tmp_path / "out")
    with pytest.raises(PropammError, match="same file name"):
        (tmp_path / "d").mkdir()
        shutil.copy(STRATEGIES / "fixed_30bps.rs", tmp_path / "d")
        submit([STRATEGIES / "fixed_30bps.rs", tmp_path / "d" / "fixed_30bps.rs"], tmp_path / "o")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(PropammError, match="not an empty directory"):
        submit([STRATEGIES / "fixed_30bps.rs"], tmp_path / "full")
    with pytest.raises(PropammError, match="no receipt.json"):
        verify(tmp_path / "full")
    with pytest.raises(PropammError, match="no submissions found"):
        leaderboard(tmp_path / "d")
    with pytest.raises(PropammError, match="x.so: a submission is Rust source"):
        submit([STRATEGIES / "fixed_30bps.rs"], tmp_path / "o2", opponents=[tmp_path / "x.so"])
    with pytest.raises(PropammError, match="same file name"):
        submit([STRATEGIES / "fixed_30bps.rs"], tmp_path / "o3",
               opponents=[tmp_path / "d" / "fixed_30bps.rs"])
