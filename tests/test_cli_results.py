"""The results commands end to end: sweep, frame, report, submit, verify, leaderboard."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import GOLDEN, STRATEGIES
from test_cli import propamm

RESULTS = str(GOLDEN / "corrected_four_3k.json")


def test_sweep_writes_point_seed_table(tmp_path):
    out = tmp_path / "sweep.parquet"
    proc = propamm("sweep", "--pool", "cpamm", "--fee-bps", "10:30:10", "--simulations", "2",
                   "--steps", "300", "--epoch-len", "100", "--fix", "sigma=0.002", "-o", str(out),
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "profile: corrected" in proc.stdout and "3 grid points x 2 seeds" in proc.stdout
    table = pd.read_parquet(out)
    assert list(table.columns[:3]) == ["point", "seed", "fee_bps"]
    assert len(table) == 6 and sorted(set(table["fee_bps"])) == [10.0, 20.0, 30.0]
    assert (table["market_sigma"] == 0.002).all()


def test_frame_and_report(tmp_path):
    proc = propamm("frame", RESULTS, "-o", str(tmp_path / "e.csv"), "--epochs")
    assert proc.returncode == 0, proc.stderr
    epochs = pd.read_csv(tmp_path / "e.csv")
    assert {"epoch", "capital_weight", "market_sigma"} <= set(epochs.columns)
    proc = propamm("report", RESULTS, "-o", str(tmp_path / "r.html"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r.html").read_text().count("data:image/png;base64,") == 5  # 2 traced


def test_submit_verify_tamper_leaderboard(tmp_path):
    bundle = tmp_path / "bundles" / "one"
    proc = propamm("submit", str(STRATEGIES / "fixed_30bps.rs"), str(STRATEGIES / "fixed_65bps.rs"),
                   "-o", str(bundle), "--simulations", "2", "--steps", "300", "--epoch-len", "100",
                   "--workers", "2", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert (bundle / "receipt.json").exists() and "Mean Edge" in proc.stdout
    proc = propamm("verify", str(bundle), "--workers", "2", "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verified: identical" in proc.stdout
    proc = propamm("leaderboard", str(tmp_path / "bundles"), "-o", str(tmp_path / "lb.csv"))
    assert proc.returncode == 0, proc.stderr
    assert pd.read_csv(tmp_path / "lb.csv")["rank"].tolist() == [1, 2]
    src = bundle / "sources" / "fixed_65bps.rs"
    data = bytearray(src.read_bytes())
    data[-2] = ord("!") if data[-2] != ord("!") else ord("?")
    src.write_bytes(bytes(data))
    proc = propamm("verify", str(bundle), "--no-progress")
    assert proc.returncode == 1
    assert "MISMATCH" in proc.stdout and "fixed_65bps.rs" in proc.stdout
    assert "NOT verified" in proc.stdout


@pytest.mark.parametrize("args, culprit", [
    (["sweep", "--fee-bps", "5:1:1"], "--fee-bps"),
    (["sweep"], "no sweep axis"),
    (["sweep", "--fee-bps", "10", "--fix", "sigma=abc"], "sigma=abc"),
    (["sweep", "--pool", "cpamm:30", "--fee-bps", "10", "--fix", "speed=2"], "speed"),
    (["sweep", "--fee-bps", "10", "-o", "out.xlsx"], "out.xlsx"),
    (["sweep", "--param", "w_vol"], "NAME=RANGE"),
    (["sweep", "--fee-bps", "10", "--param", "fee_bps=20"], "twice"),
    (["sweep", "--param", "w_vol=1", "--simulations", "1", "--steps", "10"], "w_vol"),
    (["frame", RESULTS, "-o", "out.txt"], "out.txt"),
    (["frame", "missing.json", "-o", "out.csv"], "missing.json"),
    (["report", RESULTS, "-o", "r.pdf"], "r.pdf"),
    (["report", RESULTS, "--training-log", "nolog.csv"], "nolog.csv"),
    (["submit", str(STRATEGIES / "fixed_30bps.rs")], "--output"),
    (["verify", "nowhere"], "nowhere"),
    (["leaderboard", "nowhere"], "nowhere"),
])
def test_bad_input_is_one_line_exit_2(args, culprit, tmp_path):
    proc = propamm(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert culprit in lines[0] and "Traceback" not in proc.stderr
