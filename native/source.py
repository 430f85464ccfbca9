"""What a submitted `.rs` file may contain, and the safe form's generated C exports.

The source policy is a cheap first gate, not the sandbox: it rejects the constructs that
reach outside the strategy's 1024 bytes of storage by obvious means (files, sockets,
processes, environment, threads, foreign functions, code pulled in from other files).
Isolation of the compiled code (worker processes with resource limits) is what actually
contains a strategy; the policy makes the honest path the only easy one.

The safe form lets an author write

    const NAME: &str = "my strategy";
    fn compute_swap(data: &[u8]) -> u64 { ... }
    fn after_swap(data: &[u8], storage: &mut [u8]) { ... }

with no `unsafe` anywhere (the file is compiled under `#![deny(unsafe_code)]`); the three
`#[no_mangle] extern "C"` functions of the reference ABI are appended here. Raw-ABI files,
like the reference's submissions, are compiled as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from propamm_jax.errors import PropammError

ALLOW_HINT = "pass --allow-unsafe-source to relax the source policy"

# (pattern on comment- and string-free source, what it is, why it is rejected)
_RULES: tuple[tuple[re.Pattern, str], ...] = tuple(
    (re.compile(pattern), why) for pattern, why in (
        (r"\b(include|include_str|include_bytes)\s*!", "reads another file at compile time"),
        (r"\b(env|option_env)\s*!", "reads the build environment"),
        (r"\bextern\s+crate\b", "links another crate"),
        (r"\bmod\s+[A-Za-z_]\w*\s*;", "loads a module from another file"),
        (r"#\s*!?\s*\[\s*path\b", "loads a module from another path"),
        (r"\bextern\s*(\"[^\"\n]*\"\s*)?\{", "imports foreign functions"),
        (r"\b(?:std|core)\s*::\s*(fs|net|process|env|thread)\b", "reaches outside the strategy"),
        (r"\bstd\s+as\b", "aliases std (hides what it uses)"),
        (r"\bstd\s*::\s*\*", "glob-imports std (hides what it uses)"),
        (r"\b(asm|global_asm|naked_asm)\s*!", "inline assembly can make system calls"),
    )
)
_FORBIDDEN_STD = re.compile(r"(?<![:\w])(fs|net|process|env|thread)\b")


@dataclass(frozen=True)
class PolicyViolation:
    """The first forbidden construct of a file: where it is and what it does."""

    line: int
    construct: str
    why: str

    def message(self, label: str) -> str:
        return (f"{label}:{self.line}: source policy: `{self.construct}` is not allowed "
                f"({self.why}); {ALLOW_HINT}")


def strip_comments_and_strings(code: str) -> str:
    """The source with comments, string/char literals' contents blanked (same length and
    line breaks), so that patterns only ever match real code."""
    out = list(code)
    i, n = 0, len(code)

    def blank(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = code[i]
        if code.startswith("//", i):
            j = code.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif code.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if code.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif code.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif (m := re.match(r'b?r(#*)"', code[i:i + 260])) and (i == 0 or not (code[i - 1].isalnum() or code[i - 1] == "_")):
            end = code.find('"' + m.group(1), i + m.end())
            end = n if end < 0 else end + 1 + len(m.group(1))
            blank(i + m.end(), end - 1 - len(m.group(1)))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and code[j] != '"':
                j += 2 if code[j] == "\\" else 1
            blank(i + 1, j)
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}'), or a lifetime ('a) which is left alone.
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'\n])'", code[i:i + 16])
            if m:
                blank(i + 1, i + m.end() - 1)
                i += m.end()
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def _std_groups(clean: str):
    """(offset, body) of every `std::{...}` import group, braces balanced."""
    for m in re.finditer(r"\b(?:std|core)\s*::\s*\{", clean):
        depth, j = 1, m.end()
        while j < len(clean) and depth:
            depth += {"{": 1, "}": -1}.get(clean[j], 0)
            j += 1
        yield m.end(), clean[m.end():j - 1]


def check_policy(code: str) -> PolicyViolation | None:
    """The first construct of `code` that the source policy rejects, or None."""
    clean = strip_comments_and_strings(code)
    hits: list[tuple[int, str, str]] = []
    for pattern, why in _RULES:
        m = pattern.search(clean)
        if m:
            hits.append((m.start(), " ".join(code[m.start():m.end()].split()), why))
    for offset, body in _std_groups(clean):
        # Only first segments count: `std::{fs::File}` is std::fs, `std::{io::Read}` is fine.
        depth = 0
        for k, ch in enumerate(body):
            depth += {"{": 1, "}": -1}.get(ch, 0)
            if depth == 0:
                m = _FORBIDDEN_STD.match(body, k)
                if m and (k == 0 or not (body[k - 1].isalnum() or body[k - 1] in "_:")):
                    hits.append((offset + k, f"std::{m.group(1)}", "reaches outside the strategy"))
                    break
    if not hits:
        return None
    at, construct, why = min(hits)
    return PolicyViolation(clean.count("\n", 0, at) + 1, construct, why)


_SAFE_COMPUTE = re.compile(r"\bfn\s+compute_swap\s*\(")
_SAFE_AFTER = re.compile(r"\bfn\s+after_swap\s*\(")
_SAFE_NAME = re.compile(r"\bconst\s+NAME\s*:")
_RAW_ABI = re.compile(r"\b__prop_amm_(compute_swap|after_swap|get_name)\b")

SAFE_FORM_EXPORTS = """

// ---- generated by propamm-jax: the reference C ABI around the safe form ----
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn __prop_amm_compute_swap(data: *const u8, len: usize) -> u64 {
    if data.is_null() {
        return 0;
    }
    let data: &[u8] = unsafe { ::core::slice::from_raw_parts(data, len) };
    compute_swap(data)
}

#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn __prop_amm_after_swap(data: *const u8, len: usize, storage: *mut u8) {
    if data.is_null() || storage.is_null() {
        return;
    }
    let data: &[u8] = unsafe { ::core::slice::from_raw_parts(data, len) };
    let storage: &mut [u8] = unsafe { ::core::slice::from_raw_parts_mut(storage, 1024) };
    after_swap(data, storage)
}

#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn __prop_amm_get_name(buf: *mut u8, max_len: usize) -> usize {
    let name: &str = NAME;
    let n = name.len().min(max_len);
    if !buf.is_null() {
        unsafe { ::core::ptr::copy_nonoverlapping(name.as_ptr(), buf, n) };
    }
    n
}
"""


SAFE_PARTS = (("const NAME", _SAFE_NAME, "const NAME: &str = \"...\";"),
              ("fn compute_swap", _SAFE_COMPUTE, "fn compute_swap(data: &[u8]) -> u64"),
              ("fn after_swap", _SAFE_AFTER, "fn after_swap(data: &[u8], storage: &mut [u8])"))
_EXPORT_NAME = re.compile(r"#\s*\[\s*export_name\b")


@dataclass(frozen=True)
class Form:
    """Which of the two forms a file is written in, and what that form still lacks.

    `kind` is "raw" (it names the C ABI's exports itself), "safe" (it defines the safe
    form's compute_swap or after_swap and no C export) or "none" (neither)."""

    kind: str
    missing: tuple[str, ...] = ()


def detect_form(code: str) -> Form:
    """The form of `code`, judged from what is present: any C export makes it a raw-ABI
    file (its exports are checked on the compiled library); a `fn compute_swap` or `fn
    after_swap` makes it a safe-form file, whose missing items are named."""
    clean = strip_comments_and_strings(code)
    if _RAW_ABI.search(clean) or _EXPORT_NAME.search(clean):
        return Form("raw")
    present = [name for name, pattern, _ in SAFE_PARTS if pattern.search(clean)]
    if not any(name.startswith("fn ") for name in present):
        return Form("none")  # `const NAME` alone is common in raw-ABI files too
    return Form("safe", tuple(sig for name, _, sig in SAFE_PARTS if name not in present))


def is_safe_form(code: str) -> bool:
    """A file in the safe form defines `compute_swap`, `after_swap` and `NAME` and none of
    the raw ABI's exported names."""
    form = detect_form(code)
    return form.kind == "safe" and not form.missing


def check_form(code: str, label: str) -> Form:
    """`detect_form`, raising one line naming what an incomplete safe-form file lacks
    (without this, such a file compiled as a raw-ABI file and was reported as missing the
    C export `__prop_amm_compute_swap`, which its author never meant to write)."""
    form = detect_form(code)
    if form.kind == "safe" and form.missing:
        raise PropammError(f"{label}: safe-form strategy without "
                           f"{' and '.join(f'`{m}`' for m in form.missing)} (the safe form "
                           "defines NAME, compute_swap and after_swap; the C exports are "
                           "generated)")
    return form


def wrap_safe_form(code: str) -> str:
    """The safe-form file made into a raw-ABI crate: `unsafe` denied in the author's code
    (on line 1, so rustc's line numbers still match the author's file), exports appended."""
    return "#![deny(unsafe_code)] " + code + SAFE_FORM_EXPORTS


def prepare_source(code: bytes, label: str, allow_unsafe_source: bool = False) -> bytes:
    """The bytes to compile for a submitted file: policy checked (unless relaxed), safe form
    wrapped. Raises PropammError with one line naming the file and line."""
    try:
        text = code.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PropammError(f"{label}: not UTF-8 text (byte {exc.start})") from None
    if not allow_unsafe_source:
        violation = check_policy(text)
        if violation is not None:
            raise PropammError(violation.message(label))
    if check_form(text, label).kind == "safe":
        return wrap_safe_form(text).encode("utf-8")
    return code


def wrap_file(source: str | Path, output: str | Path, allow_unsafe_source: bool = False) -> Path:
    """Writes the file that is actually compiled for the safe-form file `source` (policy
    checked, `unsafe` denied, C exports appended) to `output`: build it with plain
    `rustc --edition 2021 --crate-type cdylib -O`, or read what the exports do."""
    from propamm_jax.native.build import read_source

    source, output = Path(source), Path(output)
    if not source.is_file():
        raise PropammError(f"{source}: no such file")
    if output.resolve() == source.resolve():
        raise PropammError(f"{output}: is the input file; choose another output path")
    code = read_source(source)
    wrapped = prepare_source(code, str(source), allow_unsafe_source)
    if detect_form(code.decode("utf-8")).kind != "safe":
        raise PropammError(f"{source}: not in the safe form (it names the C exports itself, or "
                           "defines none of NAME, compute_swap, after_swap): it is compiled as "
                           "it is, there is nothing to wrap")
    try:
        output.write_bytes(wrapped)
    except OSError as exc:
        raise PropammError(f"{output}: cannot write ({exc.strerror or exc})") from None
    return output
