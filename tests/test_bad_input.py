"""Bad input as a new user types it: every case must end in ONE line `propamm: error: ...`
naming the culprit, exit code 2, and no traceback. Each case runs the real command line
(`python -m propamm_jax.cli`, the console script's `entry`) in a folder of purpose-made bad
files. To cover a new command, add its cases to CASES."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

STARTERS = Path(__file__).parents[1] / "native" / "strategies"
POLICY = {"family": "dynamic_fee", "version": 2, "fee_min_bps": 0, "fee_max_bps": 300,
          "epoch_len": 1000, "params": {"bias": -1.2, "w_vol": 0.0, "w_flow": 0.0,
                                        "w_weight": 0.0, "w_epoch": 0.0, "w_gap": 0.0,
                                        "w_skew": 0.0, "w_dev": 1.0}}
SMALL = ["--steps", "100", "--epoch-len", "50", "--simulations", "1"]

# (id, argv, a piece of the one-line message: the file, field or value at fault)
CASES = [
    # score
    ("score-missing-file", ["score", "missing.rs"], "missing.rs: no such file"),
    ("score-wrong-extension", ["score", "notes.txt"], "notes.txt: not a strategy"),
    ("score-no-file", ["score"], "no strategy given"),
    ("score-output-missing-dir", ["score", "ok.rs", "--output", "nodir/x.json"],
     "--output nodir/x.json: nodir does not exist"),
    ("score-output-bad-extension", ["score", "ok.rs", "--output", "x.txt"],
     "--output x.txt: unknown extension '.txt'"),
    ("score-output-is-directory", ["score", "ok.rs", "--output", "emptydir"],
     "--output emptydir: is a directory"),
    ("score-output-under-a-file", ["score", "ok.rs", "--output", "notes.txt/x.json"],
     "notes.txt is not a directory"),
    ("score-journal-missing-dir", ["score", "ok.rs", "--journal", "nodir/j.jsonl"],
     "--journal nodir/j.jsonl: nodir does not exist"),
    ("score-zero-simulations", ["score", "ok.rs", "--simulations", "0"],
     "--simulations must be at least 1, got 0"),
    ("score-simulations-not-int", ["score", "ok.rs", "--simulations", "abc"],
     "--simulations must be an integer, got 'abc'"),
    ("score-negative-seed", ["score", "ok.rs", "--seed-start", "-1"], "seed -1 is outside u64"),
    ("score-seed-over-u64", ["score", "ok.rs", "--seed-start", "18446744073709551616"],
     "outside u64"),
    ("score-seed-float", ["score", "ok.rs", "--seed-start", "1e3"], "seed '1e3' is not an integer"),
    ("score-trace-seed-text", ["score", "ok.rs", "--trace-seeds", "abc"], "seed 'abc'"),
    ("score-unknown-profile", ["score", "ok.rs", "--profile", "foo"], "invalid choice: 'foo'"),
    ("score-zero-workers", ["score", "ok.rs", "--workers", "0"], "--workers must be at least 1"),
    ("score-zero-timeout", ["score", "ok.rs", "--sim-timeout", "0"], "--sim-timeout"),
    ("score-resume-without-journal", ["score", "ok.rs", "--resume", "--no-journal", *SMALL],
     "--resume needs a journal"),
    ("score-not-a-library", ["score", "fake.so", *SMALL], "fake.so"),
    ("score-does-not-compile", ["score", "broken.rs", *SMALL], "broken.rs: does not compile"),
    ("score-17-strategies", ["score", *[f"s{i}.rs" for i in range(17)]], "at most 16"),
    ("unknown-option", ["score", "ok.rs", "--bogus"], "unrecognized arguments: --bogus"),
    ("unknown-command", ["scroe"], "invalid choice: 'scroe'"),
    # simulate
    ("simulate-no-pool", ["simulate"], "no pool given"),
    ("simulate-unknown-pool", ["simulate", "--pool", "foo:30"], "unknown pool spec 'foo:30'"),
    ("simulate-fee-not-number", ["simulate", "--pool", "cpamm:abc"], "pool 'cpamm:abc'"),
    ("simulate-negative-fee", ["simulate", "--pool", "cpamm:-5"], "fee -5 bps is outside"),
    ("simulate-policy-missing", ["simulate", "--pool", "dynamic:missing.json"],
     "missing.json: cannot read"),
    ("simulate-policy-not-json", ["simulate", "--pool", "dynamic:bad.json"],
     "bad.json: not valid JSON"),
    ("simulate-policy-parquet", ["simulate", "--pool", "dynamic:real.parquet"],
     "real.parquet: a Parquet table"),
    ("simulate-policy-not-a-policy", ["simulate", "--pool", "dynamic:other.json"],
     "other.json: not a policy file"),
    ("simulate-policy-wrong-family", ["simulate", "--pool", "dynamic:family.json"],
     "family.json: policy family 'other'"),
    ("simulate-output-missing-dir", ["simulate", "--pool", "cpamm:30", "--output", "nodir/r.json"],
     "nodir does not exist"),
    ("simulate-zero-batch", ["simulate", "--pool", "cpamm:30", "--batch-size", "0"],
     "--batch-size must be at least 1"),
    ("simulate-zero-epoch", ["simulate", "--pool", "cpamm:30", "--epoch-len", "0"],
     "--epoch-len must be at least 1"),
    ("simulate-bad-dtype", ["simulate", "--pool", "cpamm:30", "--dtype", "float16"],
     "invalid choice: 'float16'"),
    # sweep
    ("sweep-no-axis", ["sweep"], "no sweep axis"),
    ("sweep-bad-range", ["sweep", "--fee-bps", "5:x:5"], "--fee-bps '5:x:5'"),
    ("sweep-empty-range", ["sweep", "--fee-bps", "5:1:1"], "need start <= stop"),
    ("sweep-unknown-param", ["sweep", "--param", "nosuch=1:2:1"], "'nosuch'"),
    ("sweep-fix-lambda", ["sweep", "--fee-bps", "10", "--fix", "lambda=3"], "--fix lambda"),
    ("sweep-fix-not-number", ["sweep", "--fee-bps", "10", "--fix", "sigma=abc"], "'abc'"),
    ("sweep-output-xlsx", ["sweep", "--fee-bps", "10", "-o", "out.xlsx"], "'.xlsx'"),
    ("sweep-output-missing-dir", ["sweep", "--fee-bps", "10", "-o", "nodir/s.parquet"],
     "nodir does not exist"),
    # frame, report
    ("frame-missing", ["frame", "missing.json", "-o", "x.csv"], "missing.json: cannot read"),
    ("frame-parquet-as-json", ["frame", "real.parquet", "-o", "x.csv"],
     "real.parquet: a Parquet table"),
    ("frame-parquet-named-json", ["frame", "real.json", "-o", "x.csv"],
     "real.json: a Parquet table"),
    ("frame-not-json", ["frame", "bad.json", "-o", "x.csv"], "bad.json: not valid JSON"),
    ("frame-binary", ["frame", "fake.so", "-o", "x.csv"], "fake.so: not valid JSON"),
    ("frame-not-results", ["frame", "other.json", "-o", "x.csv"], "other.json: missing field"),
    ("frame-output-txt", ["frame", "other.json", "-o", "x.txt"], "'.txt'"),
    ("report-not-json", ["report", "bad.json"], "bad.json: not JSON, Parquet or CSV"),
    ("report-missing", ["report", "missing.json"], "missing.json: no such file"),
    ("report-output-pdf", ["report", "other.json", "-o", "r.pdf"], "'.pdf'"),
    ("report-output-missing-dir", ["report", "other.json", "-o", "nodir/r.html"],
     "nodir does not exist"),
    # submit, verify, leaderboard
    ("submit-no-file", ["submit", "-o", "newbundle"], "no strategy given"),
    ("submit-output-is-file", ["submit", "ok.rs", "-o", "notes.txt"], "not a directory"),
    ("verify-missing", ["verify", "nobundle"], "nobundle: not a bundle directory"),
    ("verify-not-bundle", ["verify", "emptydir"], "emptydir: no receipt.json"),
    ("verify-a-file", ["verify", "policy.json"], "policy.json: not a bundle directory"),
    ("leaderboard-missing", ["leaderboard", "nodir"], "nodir: not a directory"),
    ("leaderboard-empty", ["leaderboard", "emptydir"], "no submissions found"),
    ("leaderboard-output-txt", ["leaderboard", "emptydir", "-o", "x.txt"], "'.txt'"),
    # validate
    ("validate-seed-text", ["validate", "ok.rs", "--seed", "abc"], "seed 'abc'"),
    ("validate-budget-zero", ["validate", "ok.rs", "--call-budget-ms", "0"],
     "--call-budget-ms must be at least 1"),
    ("validate-no-file", ["validate"], "no strategy given"),
    # train, export, evaluate
    ("train-no-out", ["train"], "--out"),
    ("train-unknown-algorithm", ["train", "--out", "run", "--algorithm", "foo"],
     "unknown algorithm 'foo'"),
    ("train-unknown-objective", ["train", "--out", "run", "--objective", "foo"],
     "unknown objective 'foo'"),
    ("train-unknown-opponent", ["train", "--out", "run", "--opponent", "foo:1"], "'foo:1'"),
    ("train-missing-opponent", ["train", "--out", "run", "--opponent", "missing.rs"],
     "missing.rs"),
    ("train-init-not-number", ["train", "--out", "run", "--init", "w_dev=abc"], "w_dev=abc"),
    ("train-init-unknown", ["train", "--out", "run", "--init", "nosuch=1"], "'nosuch'"),
    ("train-fee-bounds", ["train", "--out", "run", "--fee-min-bps", "300", "--fee-max-bps", "10"],
     "--fee-min-bps"),
    ("train-seed-negative", ["train", "--out", "run", "--seed", "-3"],
     "--seed must be at least 0, got -3"),
    ("train-sigma-nan", ["train", "--out", "run", "--sigma-init", "nan"],
     "--sigma-init must be finite"),
    ("train-sigma-text", ["train", "--out", "run", "--sigma-init", "big"],
     "--sigma-init must be a number"),
    ("train-out-under-a-file", ["train", "--out", "notes.txt/run"], "notes.txt is not a directory"),
    ("train-resume-nothing", ["train", "--out", "run", "--resume"], "no checkpoint"),
    ("train-seed-ranges-overlap",
     ["train", "--out", "run", "--heldout-start", "1000000", "--train-seed-start", "1000000"],
     "overlap"),
    ("export-missing", ["export", "missing.json", "-o", "x.rs"], "missing.json: cannot read"),
    ("export-not-policy", ["export", "other.json", "-o", "x.rs"], "other.json: not a policy file"),
    ("export-parquet", ["export", "real.parquet", "-o", "x.rs"], "real.parquet: a Parquet table"),
    ("export-output-py", ["export", "policy.json", "-o", "x.py"], "'.py'"),
    ("export-output-missing-dir", ["export", "policy.json", "-o", "nodir/x.rs"],
     "nodir does not exist"),
    ("export-empty-name", ["export", "policy.json", "-o", "x.rs", "--name", ""], "--name"),
    ("evaluate-missing", ["evaluate", "missing.json"], "missing.json: cannot read"),
    ("evaluate-parquet", ["evaluate", "real.parquet"], "real.parquet: a Parquet table"),
    ("evaluate-zero-simulations", ["evaluate", "policy.json", "--simulations", "0"],
     "--simulations must be at least 1"),
    # demo
    ("demo-zero-steps", ["demo", "--steps", "0"], "--steps must be at least 1"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A working folder holding one of each kind of bad file (and one good strategy)."""
    import pandas as pd

    d = tmp_path_factory.mktemp("bad")
    shutil.copy(STARTERS / "flat_45bps.rs", d / "ok.rs")
    for i in range(17):
        shutil.copy(STARTERS / "flat_45bps.rs", d / f"s{i}.rs")
    (d / "broken.rs").write_text("fn broken( {\n")
    (d / "notes.txt").write_text("hello\n")
    (d / "bad.json").write_text("not json\n")
    (d / "other.json").write_text('{"a": 1}\n')
    (d / "fake.so").write_bytes(b"\x7fELF\xff\xfe not a library")
    (d / "policy.json").write_text(json.dumps(POLICY))
    (d / "family.json").write_text(json.dumps({**POLICY, "family": "other"}))
    pd.DataFrame({"a": [1, 2]}).to_parquet(d / "real.parquet")
    shutil.copy(d / "real.parquet", d / "real.json")
    (d / "emptydir").mkdir()
    return d


@pytest.mark.parametrize("argv, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(argv, expected, folder):
    before = sorted(p.name for p in folder.iterdir())
    proc = subprocess.run([sys.executable, "-m", "propamm_jax.cli", *argv], cwd=folder,
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    # The one multi-line error: rustc's diagnostic, quoted as rustc prints it, under the line.
    assert len(lines) == 1 or "does not compile" in lines[0], proc.stderr
    assert lines[0].startswith("propamm: error: ") and lines[0].count("propamm:") == 1, lines[0]
    assert expected in lines[0], lines[0]
    assert sorted(p.name for p in folder.iterdir()) == before, "a failed command left files"


def test_case_ids_are_unique():
    assert len({c[0] for c in CASES}) == len(CASES) >= 30
