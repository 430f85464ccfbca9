"""Untrusted strategies in `score`: each failure class costs only what it must.

Strategies that fail the checks before scoring are left out with one line each and the rest
are scored; strategies that crash, write through null or allocate without bound inside a
simulation cost only the simulations they crash in, each failure naming the strategy, the
seed, the function and the kind; workers see an empty environment and a private directory.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import FIXTURES, STRATEGIES
from propamm_jax.config import SimConfig
from propamm_jax.official.scoring import prepare_strategies, score

BAD = FIXTURES / "bad"
GOOD = STRATEGIES / "fixed_30bps.rs"
CONFIG = SimConfig(steps=200, epoch_len=100)
SEEDS = list(range(6))  # the shared trigger fires in seed 3 only, at step 50


@pytest.mark.parametrize("name, kind, where, text", [
    ("panic_compute.rs", "crash", "in compute_swap", "deliberate panic in compute_swap"),
    ("panic_sometimes.rs", "crash", "in after_swap", "deliberate failure at step 50"),
    ("null_write.rs", "crash", "in after_swap", "SIGSEGV: invalid memory access"),
    ("alloc_forever.rs", "out-of-memory", "in after_swap", "(address-space limit)"),
])
def test_a_crash_inside_a_simulation_costs_only_that_simulation(name, kind, where, text):
    result = score([BAD / name, GOOD], config=CONFIG, seeds=SEEDS, workers=2, progress=False)
    failed = {f.seed: f for f in result.failures}
    done = {s["seed"] for s in result.results.sims}
    assert failed and done and done | set(failed) == set(SEEDS) and not done & set(failed)
    for failure in failed.values():
        assert failure.strategy == name and failure.kind == kind
        assert failure.message.startswith(where) and text in failure.message, failure.line()
        assert failure.line().startswith(f"seed {failure.seed}: strategy {name}: {kind}: ")
    assert not result.rejected


def test_checks_before_scoring_reject_bad_strategies_and_score_the_rest():
    files = [BAD / n for n in ("compile_error.rs", "missing_symbol.rs", "empty_name.rs",
                               "big_output.rs", "non_monotone.rs", "non_concave.rs")] + [GOOD]
    result = score(files, config=CONFIG, seeds=[0, 1], workers=2, progress=False)
    rejected = " | ".join(result.rejected)
    assert len(result.rejected) == 4, rejected
    assert "compile_error.rs: does not compile: error[E0308]: mismatched types" in rejected
    assert "missing_symbol.rs: ABI symbols: missing ABI symbol __prop_amm_after_swap" in rejected
    assert "empty_name.rs: name: get_name returns an empty name" in rejected
    assert "big_output.rs: output within reserve: output 100000000001 > reserve" in rejected
    warnings = " | ".join(result.warnings)
    assert "WARN non_monotone.rs: monotone: output falls" in warnings
    assert "WARN non_concave.rs: concave: marginal output rises" in warnings
    assert result.results.strategies == ["non_monotone.rs", "non_concave.rs", "fixed_30bps.rs"]
    assert len(result.results.sims) == 2 and not result.failures
    strict = prepare_strategies(files, strict=True)
    assert strict.labels == ["fixed_30bps.rs"] and len(strict.rejected) == 6
    assert any(r.startswith("non_concave.rs: concave: ") for r in strict.rejected)


def test_cli_prints_one_line_per_rejection_and_exit_code_1():
    proc = subprocess.run([sys.executable, "-m", "propamm_jax.cli", "score",
                           str(BAD / "empty_name.rs"), str(BAD / "null_write.rs"), str(GOOD),
                           "--steps", "200", "--epoch-len", "100", "--simulations", "5",
                           "--workers", "2", "--no-progress", "--no-journal"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert errors == ["REJECTED empty_name.rs: name: get_name returns an empty name",
                      "FAILED seed 3: strategy null_write.rs: crash: in after_swap: SIGSEGV: "
                      "invalid memory access"], proc.stderr
    assert "4 simulations in" in proc.stdout and "fixed_30bps" in proc.stdout


ENV_PROBE = r"""
// Reports what the worker lets it see through its name: environment size, working directory.
use std::sync::OnceLock;
static NAME: OnceLock<String> = OnceLock::new();

#[no_mangle]
pub extern "C" fn __prop_amm_compute_swap(data: *const u8, len: usize) -> u64 {
    let b = unsafe { std::slice::from_raw_parts(data, len) };
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let (input, rx, ry) = (word(1), word(9), word(17));
    let (r_in, r_out) = if b[0] == 0 { (ry, rx) } else { (rx, ry) };
    if input == 0 || r_in == 0 || r_out == 0 { return 0; }
    (r_out as u128 * input as u128 / (r_in as u128 + input as u128)) as u64
}

#[no_mangle]
pub extern "C" fn __prop_amm_after_swap(_d: *const u8, _l: usize, _s: *mut u8) {}

#[no_mangle]
pub extern "C" fn __prop_amm_get_name(buf: *mut u8, max_len: usize) -> usize {
    let name = NAME.get_or_init(|| {
        let keys: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
        let cwd = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default();
        format!("{}|{}", keys.join(","), cwd)
    });
    let n = name.len().min(max_len);
    unsafe { std::ptr::copy_nonoverlapping(name.as_ptr(), buf, n) };
    n
}
"""


@pytest.mark.parametrize("sandbox", ["auto", "off"])
def test_workers_have_a_clean_environment_and_a_private_directory(tmp_path, monkeypatch, sandbox):
    from propamm_jax.official.sandbox import unavailable

    monkeypatch.setenv("SECRET_TOKEN", "do-not-leak")
    src = tmp_path / "env_probe.rs"
    src.write_text(ENV_PROBE)
    with pytest.raises(Exception, match="source policy: `std::env`"):
        prepare_strategies([src])
    result = score([src], config=SimConfig(steps=20, epoch_len=10), seeds=[0], workers=1,
                   progress=False, allow_unsafe_source=True, sandbox=sandbox)
    keys, cwd = result.results.sims[0]["strategies"][0]["name"].split("|")
    allowed = {"PROPAMM_CACHE", "PROPAMM_NO_TAPE_CACHE", "OPENBLAS_NUM_THREADS"}
    assert set(keys.split(",")) <= allowed, keys
    assert "SECRET_TOKEN" not in keys and cwd != str(tmp_path)
    # In bubblewrap the private directory is the sandbox's own tmpfs at /tmp.
    assert cwd == "/tmp" if sandbox == "auto" and unavailable() is None else "propamm-" in cwd
