"""`propamm validate`, the source policy and the safe form.

Each bad fixture in tests/fixtures/bad must get its own specific FAIL (or WARN) line, and
sound strategies must pass every check, strictly.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import FIXTURES, STRATEGIES
from propamm_jax.config import SimConfig
from propamm_jax.errors import PropammError
from propamm_jax.native.source import check_policy, is_safe_form, prepare_source
from propamm_jax.official.validate import FAIL, PASS, WARN, validate_file

BAD = FIXTURES / "bad"

# fixture -> (check that must not pass, its status, text that the line must contain)
EXPECTED = {
    "compile_error.rs": ("compiles", FAIL, "mismatched types"),
    "missing_symbol.rs": ("ABI symbols", FAIL, "__prop_amm_after_swap"),
    "empty_name.rs": ("name", FAIL, "empty name"),
    "panic_compute.rs": ("simulated trade histories", FAIL,
                         "panicked at panic_compute.rs:29: deliberate panic in compute_swap) on "
                         "history 4, step 51: compute_swap("),
    "panic_sometimes.rs": ("simulated trade histories", FAIL,
                           "panicked at panic_sometimes.rs:30"),
    "null_write.rs": ("simulated trade histories", FAIL,
                      "SIGSEGV: invalid memory access) on history"),
    "loops_forever.rs": ("simulated trade histories", FAIL,
                         "(per-call budget 100 ms) from history 0, step 40: after_swap"),
    "alloc_forever.rs": ("simulated trade histories", FAIL,
                         "out-of-memory"),
    "big_output.rs": ("output within reserve", FAIL, "> reserve"),
    "non_monotone.rs": ("monotone", WARN, "output falls from"),
    "non_concave.rs": ("concave", WARN, "marginal output rises"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_bad_fixture_gets_its_specific_line(name):
    check, status, text = EXPECTED[name]
    report = validate_file(BAD / name)
    lines = {c.name: c for c in report.checks}
    assert check in lines, report.lines()
    assert lines[check].status == status and text in lines[check].detail, report.lines()
    # The failing input is named, and nothing before it failed for another reason.
    first_bad = next(c for c in report.checks if c.status != PASS)
    assert first_bad.name == check, report.lines()
    assert report.ok == (status != FAIL)


@pytest.mark.parametrize("name", ["non_monotone.rs", "non_concave.rs"])
def test_strict_turns_curve_warnings_into_failures(name):
    report = validate_file(BAD / name, strict=True)
    assert not report.ok
    assert report.first_failure().name == EXPECTED[name][0]


@pytest.mark.parametrize("path", [STRATEGIES / "adaptive_fee.rs", STRATEGIES / "skewed_curve.rs"])
def test_sound_strategies_pass_every_check_strictly(path):
    report = validate_file(path, strict=True)
    assert all(c.status == PASS for c in report.checks), report.lines()
    names = [c.name for c in report.checks]
    for check in ("source policy", "compiles", "ABI symbols", "name", "output within reserve",
                  "monotone", "concave", "deterministic", "after_swap survives random payloads",
                  "epoch hook survives random payloads", "call time budget"):
        assert check in names


def test_a_quote_that_depends_on_hidden_state_is_not_deterministic(tmp_path):
    src = tmp_path / "counter.rs"
    src.write_text((STRATEGIES / "fixed_30bps.rs").read_text().replace(
        "pub extern \"C\" fn __prop_amm_compute_swap(data: *const u8, len: usize) -> u64 {",
        "static mut CALLS: u64 = 0;\n#[no_mangle]\n"
        "pub extern \"C\" fn __prop_amm_compute_swap(data: *const u8, len: usize) -> u64 {\n"
        "    unsafe { CALLS += 1; if CALLS % 7 == 0 { return 0; } }", 1).replace(
        "#[no_mangle]\nstatic mut", "static mut"))
    report = validate_file(src)
    check = {c.name: c for c in report.checks}["deterministic"]
    assert check.status == FAIL and "gave" in check.detail, report.lines()


def test_cli_prints_one_line_per_check_and_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "propamm_jax.cli", "validate",
                           str(STRATEGIES / "fixed_30bps.rs"), str(BAD / "empty_name.rs")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert all(ln.split()[0] in ("PASS", "FAIL", "WARN", "SKIP") for ln in lines)
    assert "PASS fixed_30bps.rs: call time budget" in proc.stdout
    assert "FAIL empty_name.rs: name: get_name returns an empty name" in proc.stdout
    assert "Traceback" not in proc.stderr
    none = subprocess.run([sys.executable, "-m", "propamm_jax.cli", "validate"],
                          capture_output=True, text=True, timeout=60)
    assert none.returncode == 2 and len(none.stderr.strip().splitlines()) == 1


# ─── Source policy ─────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("snippet, construct", [
    ('const A: &str = include_str!("/etc/passwd");', "include_str!"),
    ('const B: &[u8] = include_bytes!("x");', "include_bytes!"),
    ('include!("other.rs");', "include!"),
    ('const H: &str = env!("HOME");', "env!"),
    ('const H: Option<&str> = option_env!("HOME");', "option_env!"),
    ("extern crate alloc;", "extern crate"),
    ("mod helpers;", "mod helpers;"),
    ('#[path = "x.rs"]\nmod m {}', "#[path"),
    ('extern "C" { fn system(cmd: *const u8) -> i32; }', 'extern "C" {'),
    ("extern { fn abort(); }", "extern {"),
    ('fn f() { let _ = std::fs::read("/etc/passwd"); }', "std::fs"),
    ("use std::net::TcpStream;", "std::net"),
    ("fn f() { std::process::exit(0); }", "std::process"),
    ('fn f() -> String { ::std::env::var("X").unwrap() }', "std::env"),
    ("use std::thread;", "std::thread"),
    ("use std::{io, fs::File};", "std::fs"),
    ("use std :: { collections::HashMap, process };", "std::process"),
    ("use std as s;", "std as"),
    ("use std::*;", "std::*"),
    ('fn f() { unsafe { core::arch::asm!("nop") } }', "asm!"),
])
def test_policy_rejects_with_the_line(snippet, construct):
    code = "// a strategy\nconst NAME: &str = \"x\";\n" + snippet + "\n"
    violation = check_policy(code)
    assert violation is not None and violation.construct == construct
    assert violation.line == 3
    with pytest.raises(PropammError, match=r"^f\.rs:3: source policy: .*--allow-unsafe-source"):
        prepare_source(code.encode(), "f.rs")
    assert prepare_source(code.encode(), "f.rs", allow_unsafe_source=True) == code.encode()


def test_policy_ignores_comments_strings_and_harmless_uses():
    code = '''
// std::fs in a comment, include!("x") too
/* extern crate nested /* std::process */ still comment */
const NAME: &str = "std::env::var and mod x; and extern \\"C\\" {";
const RAW: &str = r#"std::thread "quoted" include_bytes!"#;
const C: char = '"';
use std::collections::HashMap;
use std::{io::Read, cmp};
pub struct Lifetime<'a> { s: &'a [u8] }
mod inline { pub fn f() {} }
#[no_mangle]
pub extern "C" fn __prop_amm_get_name(buf: *mut u8, max_len: usize) -> usize { 0 }
fn environment() {}
'''
    assert check_policy(code) is None


# ─── Safe form ─────────────────────────────────────────────────────────────────────────

SAFE_30BPS = """// fixed_30bps in the safe form: no unsafe, no C exports.
const NAME: &str = "fixed_30bps";

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn compute_swap(data: &[u8]) -> u64 {
    let (input, rx, ry) = (u64_at(data, 1), u64_at(data, 9), u64_at(data, 17));
    let (r_in, r_out) = if data[0] == 0 { (ry, rx) } else { (rx, ry) };
    if input == 0 || r_in == 0 || r_out == 0 {
        return 0;
    }
    let eff = input as u128 * 9_970 / 10_000;
    (r_out as u128 * eff / (r_in as u128 + eff)) as u64
}

fn after_swap(_data: &[u8], _storage: &mut [u8]) {}
"""


def test_safe_form_scores_like_the_raw_abi_file(tmp_path):
    from propamm_jax.official.scoring import score

    assert is_safe_form(SAFE_30BPS) and not is_safe_form((STRATEGIES / "fixed_30bps.rs").read_text())
    safe = tmp_path / "fixed_30bps.rs"
    safe.write_text(SAFE_30BPS)
    report = validate_file(safe, strict=True)
    assert report.ok and "safe form" in {c.name: c for c in report.checks}["compiles"].detail
    config = SimConfig(steps=300, epoch_len=100)
    ours = score([safe, STRATEGIES / "fixed_65bps.rs"], config=config, seeds=[3, 4], progress=False)
    raw = score([STRATEGIES / "fixed_30bps.rs", STRATEGIES / "fixed_65bps.rs"], config=config,
                seeds=[3, 4], progress=False)
    assert ours.results.sims == raw.results.sims


def test_safe_form_denies_unsafe_code(tmp_path):
    src = tmp_path / "sneaky.rs"
    src.write_text(SAFE_30BPS.replace("fn after_swap(_data: &[u8], _storage: &mut [u8]) {}",
                                      "fn after_swap(_data: &[u8], storage: &mut [u8]) {\n"
                                      "    unsafe { *storage.as_mut_ptr() = 1 };\n}"))
    report = validate_file(src)
    failure = report.first_failure()
    assert failure.name == "compiles" and "unsafe" in failure.detail
    assert "sneaky.rs:21" in failure.detail  # rustc's line numbers are the author's
