"""The command line: the happy path and one clear line (exit code 2) for each bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import STRATEGIES

MISSING_SYMBOL = """
#[no_mangle]
pub extern "C" fn __prop_amm_compute_swap(_d: *const u8, _l: usize) -> u64 { 0 }
#[no_mangle]
pub extern "C" fn __prop_amm_get_name(_b: *mut u8, _m: usize) -> usize { 0 }
"""


def propamm(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "propamm_jax.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_score_prints_profile_table_and_writes_golden_schema(tmp_path):
    out = tmp_path / "r.json"
    proc = propamm("score", str(STRATEGIES / "fixed_30bps.rs"), str(STRATEGIES / "fixed_65bps.rs"),
                   "--simulations", "3", "--steps", "500", "--epoch-len", "200", "--seed-start",
                   "18446744073709551613", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "profile: reference" in proc.stdout
    for column in ("Strategy", "Mean Edge", "Std Edge", "vs Norm", "Sharpe", "Final Cap%"):
        assert column in proc.stdout
    data = json.loads(out.read_text())
    assert data["engine"] == "reference"
    assert [s["seed"] for s in data["sims"]] == [2**64 - 3, 2**64 - 2, 2**64 - 1]
    assert data["config"]["epoch_len"] == 200
    assert len(data["sims"][0]["strategies"][0]["epochs"]) == 2


@pytest.mark.parametrize("args, culprit", [
    (["score", "no_such_file.rs"], "no_such_file.rs"),
    (["score", "pyproject.toml"], "pyproject.toml"),
    (["score"], "no strategy"),
    (["score", str(STRATEGIES / "fixed_30bps.rs"), "--steps", "0"], "--steps"),
    (["score", str(STRATEGIES / "fixed_30bps.rs"), "--epoch-len", "0"], "--epoch-len"),
    (["score", str(STRATEGIES / "fixed_30bps.rs"), "--seed-start", "18446744073709551616"],
     "18446744073709551616"),
    (["score", str(STRATEGIES / "fixed_30bps.rs"), "--seed-start", "18446744073709551615",
      "--simulations", "2"], "outside u64"),
    (["score", str(STRATEGIES / "fixed_30bps.rs"), "--profile", "fast"], "profile"),
    (["score", *[str(STRATEGIES / "fixed_30bps.rs")] * 17], "16"),
])
def test_bad_input_is_one_line_exit_2(args, culprit):
    proc = propamm(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert culprit in lines[0] and "Traceback" not in proc.stderr


def test_compile_error_names_file_and_quotes_rustc(tmp_path):
    bad = tmp_path / "broken.rs"
    bad.write_text("fn oops( {\n")
    proc = propamm("score", str(bad), "--simulations", "1", "--steps", "10")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert "broken.rs" in lines[0] and "does not compile: error" in lines[0]
    # then rustc's own excerpt, as rustc prints it (tests/test_rust_authors.py)
    assert lines[1].strip() == "--> broken.rs:1:12" and "Traceback" not in proc.stderr


def test_missing_symbol_is_named(tmp_path):
    src = tmp_path / "nohook.rs"
    src.write_text(MISSING_SYMBOL)
    proc = propamm("score", str(src), "--simulations", "1", "--steps", "10")
    assert proc.returncode == 2
    assert "__prop_amm_after_swap" in proc.stderr and "nohook.rs" in proc.stderr
