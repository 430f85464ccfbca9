"""For Rust authors: the README's payload tables match the code byte for byte, a safe-form
file gets errors about the safe form, `propamm wrap` writes the file that is compiled, and
rustc's errors arrive as rustc prints them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import STRATEGIES
from propamm_jax.errors import PropammError

ROOT = Path(__file__).parents[1]
BAD = Path(__file__).parent / "fixtures" / "bad"

SAFE = """// fixed 30 bps in the safe form
const NAME: &str = "safe_30bps";

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
NO_AFTER = SAFE.replace("fn after_swap(_data: &[u8], _storage: &mut [u8]) {}\n", "")


def propamm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "propamm_jax.cli", *args], capture_output=True,
                          text=True, timeout=600)


# ─── Payload tables ─────────────────────────────────────────────────────────────────────

TYPES = {"u8": ("u", 1), "u32": ("u", 4), "u64": ("u", 8), "f32": ("f", 4), "f64": ("f", 8)}


def _readme_table(title: str) -> tuple[int, list[tuple[int, int, str]]]:
    """(total bytes from the heading, [(offset, size, type)]) of one payload table."""
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"^#### {re.escape(title)}[^\n]*?(\d+) bytes\)\n"
                      r"(?:[^|\n][^\n]*\n|\n)*((?:\|[^\n]*\n)+)", text, re.M)
    assert match, f"README has no '#### {title} ... (N bytes)' table"
    rows = re.findall(r"^\| (\d+) \| (\d+) \| `?([\w\[\]; ]+?)`? \|", match.group(2), re.M)
    return int(match.group(1)), [(int(o), int(s), t) for o, s, t in rows]


def _dtype_rows(dtype) -> list[tuple[int, int, str]]:
    out = []
    for name in dtype.names:
        sub, offset = dtype.fields[name][:2]
        base = sub.subdtype[0] if sub.subdtype else sub
        out.append((offset, sub.itemsize, (base.kind, base.itemsize)))
    return sorted(out)


@pytest.mark.parametrize("title, layout", [("Quote payload", "QUOTE"),
                                           ("After-swap payload", "AFTER_SWAP"),
                                           ("Epoch payload", "EPOCH")])
def test_readme_payload_tables_match_the_code(title, layout):
    from propamm_jax import rules

    header = getattr(rules, layout)
    dtype = np.dtype(header.descr + [("storage", "u1", (rules.STORAGE,))])
    total, rows = _readme_table(title)
    assert total == dtype.itemsize
    expected = _dtype_rows(dtype)
    assert [(o, s) for o, s, _ in rows] == [(o, s) for o, s, _ in expected]
    for (offset, _, typ), (_, _, kind) in zip(rows, expected):
        element = typ.split(";")[0].strip("[ ")
        assert TYPES[element] == kind, (title, offset, typ)


@pytest.mark.parametrize("title, function", [("After-swap payload", "after_swap_payload"),
                                             ("Epoch payload", "epoch_payload")])
def test_readme_offsets_are_the_scoring_cores(title, function):
    """Every offset the Rust core writes (`b[a..b]`, `b[i] =`) starts a README row."""
    source = (ROOT / "native" / "core" / "engine.rs").read_text()
    body = source.split(f"fn {function}(", 1)[1].split("\n}\n", 1)[0]
    starts = {int(a) for a, b in re.findall(r"b\[(\d+)\.\.(\d+)\]", body)}
    starts |= {int(a) for a in re.findall(r"b\[(\d+)\] =", body)}
    _, rows = _readme_table(title)
    assert starts and starts <= {o for o, _, _ in rows}


# ─── The safe form ──────────────────────────────────────────────────────────────────────

def test_safe_form_missing_after_swap_says_so(tmp_path):
    from propamm_jax.native.build import resolve_library

    src = tmp_path / "no_after.rs"
    src.write_text(NO_AFTER)
    with pytest.raises(PropammError) as info:
        resolve_library(src)
    message = str(info.value)
    assert message.startswith(f"{src}: safe-form strategy without `fn after_swap(")
    assert "__prop_amm" not in message and "\n" not in message


def test_safe_form_missing_two_items_names_both(tmp_path):
    from propamm_jax.native.source import check_form

    code = NO_AFTER.replace('const NAME: &str = "safe_30bps";\n', "")
    with pytest.raises(PropammError, match=r"without `const NAME.*` and `fn after_swap"):
        check_form(code, "x.rs")
    assert check_form(SAFE, "x.rs").kind == "safe"
    assert check_form((STRATEGIES / "fixed_30bps.rs").read_text(), "x.rs").kind == "raw"
    assert check_form("fn helper() {}\n", "x.rs").kind == "none"


def test_score_and_validate_name_the_missing_safe_form_item(tmp_path):
    from propamm_jax.official.validate import validate_file

    src = tmp_path / "no_after.rs"
    src.write_text(NO_AFTER)
    proc = propamm("score", str(src), "--simulations", "1", "--steps", "10")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"propamm: error: {src}: safe-form strategy without `fn after_swap(data: &[u8], "
        "storage: &mut [u8])` (the safe form defines NAME, compute_swap and after_swap; the C "
        "exports are generated)"]
    report = validate_file(src)
    failed = [c for c in report.checks if c.status == "FAIL"]
    assert [c.name for c in failed] == ["form"] and "fn after_swap" in failed[0].detail


def test_wrap_writes_what_is_compiled_and_plain_rustc_builds_it(tmp_path):
    from propamm_jax.native.bridge import NativeStrategy
    from propamm_jax.native.source import prepare_source

    src = tmp_path / "safe.rs"
    src.write_text(SAFE)
    out = tmp_path / "safe_raw.rs"
    proc = propamm("wrap", str(src), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == prepare_source(SAFE.encode(), str(src))
    lib = tmp_path / "libsafe_raw.so"
    subprocess.run(["rustc", "--edition", "2021", "--crate-type", "cdylib", "-O", "-o", str(lib),
                    str(out)], check=True, capture_output=True)
    strategy = NativeStrategy(lib)
    assert strategy.name == "safe_30bps"
    payload = np.zeros(1049, np.uint8)
    payload[0] = 1  # sell 1 X into 100 X / 10 000 Y: about 98.7 Y after the 30 bps fee
    payload[1:9] = np.frombuffer(np.uint64(10**9).tobytes(), np.uint8)
    payload[9:17] = np.frombuffer(np.uint64(100 * 10**9).tobytes(), np.uint8)
    payload[17:25] = np.frombuffer(np.uint64(10_000 * 10**9).tobytes(), np.uint8)
    assert strategy.call_compute(payload) == (10_000 * 10**9 * 997_000_000) // (
        100 * 10**9 + 997_000_000)


def test_plain_rustc_on_a_safe_form_file_exports_nothing_and_says_how(tmp_path):
    from propamm_jax.native.bridge import NativeStrategy

    src = tmp_path / "safe.rs"
    src.write_text(SAFE)
    lib = tmp_path / "libsafe.so"
    subprocess.run(["rustc", "--edition", "2021", "--crate-type", "cdylib", "-O", "-o", str(lib),
                    str(src)], check=True, capture_output=True)
    with pytest.raises(PropammError, match=r"exports none of .*propamm wrap"):
        NativeStrategy(lib)


@pytest.mark.parametrize("setup, message", [
    (lambda d: (shutil.copy(STRATEGIES / "fixed_30bps.rs", d / "raw.rs"), d / "raw.rs")[1],
     "not in the safe form"),
    (lambda d: (d / "evil.rs").write_text(SAFE + "\nfn f() { let _ = std::fs::read(\"x\"); }\n")
     and d / "evil.rs", "source policy"),
    (lambda d: d / "missing.rs", "no such file"),
])
def test_wrap_bad_input_is_one_line(tmp_path, setup, message):
    src = setup(tmp_path)
    proc = propamm("wrap", str(src), "-o", str(tmp_path / "out.rs"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and src.name in lines[0], proc.stderr
    assert not (tmp_path / "out.rs").exists()


def test_wrap_refuses_to_overwrite_its_input(tmp_path):
    src = tmp_path / "safe.rs"
    src.write_text(SAFE)
    proc = propamm("wrap", str(src), "-o", str(src))
    assert proc.returncode == 2 and "is the input file" in proc.stderr
    assert src.read_text() == SAFE


# ─── rustc's errors ─────────────────────────────────────────────────────────────────────

def test_rustc_errors_are_shown_as_rustc_prints_them():
    proc = propamm("score", str(BAD / "compile_error.rs"), "--simulations", "1", "--steps", "10")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.rstrip().splitlines()
    assert lines[0] == (f"propamm: error: {BAD / 'compile_error.rs'}: does not compile: "
                        "error[E0308]: mismatched types")
    assert lines[1] == "  --> compile_error.rs:31:5"  # rustc's own layout, the author's name
    assert "31 |     n" in lines and any("expected `usize`, found `u64`" in ln for ln in lines)
    assert 3 < len(lines) <= 16


def test_first_diagnostic_counts_further_errors():
    from propamm_jax.native.build import first_diagnostic

    stderr = ("warning: unused\n --> a.rs:1:1\n\nerror[E0425]: cannot find value `x`\n"
              " --> a.rs:2:5\n  |\n2 |     x\n  |     ^ not found\n\n"
              "error[E0425]: cannot find value `y`\n --> a.rs:3:5\n\n"
              "error: aborting due to 2 previous errors\n")
    text = first_diagnostic(stderr)
    assert text.splitlines()[0] == "error[E0425]: cannot find value `x`"
    assert text.splitlines()[1:5] == [" --> a.rs:2:5", "  |", "2 |     x", "  |     ^ not found"]
    assert text.splitlines()[-1].startswith("(and 1 more error:")
