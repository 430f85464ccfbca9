"""The README is executable: every fenced ```bash and ```python block runs, in file order, in
one scratch folder, against the installed `propamm` (the venv's bin first on PATH).

Rules, applied by this file and nowhere else:
- Sizes shrink so the whole README runs in a few minutes. In a shell command run by `propamm`
  or `python`, every option of SMALL that the command accepts (read from its `--help`) is set
  to SMALL's value, whether or not the block gives it. In Python blocks, `steps=`,
  `epoch_len=` and a bare `SimConfig()` get the same small steps, `simulations=` 3 and a seed
  `range(N)` 50 seeds.
- The scratch folder starts with the files a user brings: strategies `my_strategy.rs`,
  `other.rs`, `mine.rs`, `theirs.rs`, `mine_v2.rs` (the starter strategies), `my.rs` (a
  safe-form strategy) and `lib_prebuilt.so` (one of them compiled). Everything else a block reads, an earlier block must write.
- Paths into the checkout's `benchmarks/` are made absolute (the folder is elsewhere).
- A block preceded by `<!-- not-run: reason -->` is skipped, with the reason shown.
- A block matched by KNOWN_BROKEN runs as a strict xfail (a known bug fixed elsewhere).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
SMALL = {"--steps": "300", "--epoch-len": "100", "--simulations": "3", "--generations": "2",
         "--population": "4", "--batch-seeds": "2", "--heldout": "2", "--eval-every": "1"}
PY_SMALL = [(r"\bsteps=[\d_]+", "steps=300"), (r"\bepoch_len=[\d_]+", "epoch_len=100"),
            (r"\bSimConfig\(\)", "SimConfig(steps=300, epoch_len=100)"),
            (r"\bsimulations=[\d_]+", "simulations=3"), (r"\brange\([\d_]+\)", "range(50)")]
FENCE = re.compile(r"^```(\w*)\s*$")
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.+?)\s*-->\s*$")


def blocks(text: str) -> list[tuple[int, str, str, str | None]]:
    """(line, language, code, not-run reason) of every fenced block, in order."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or not m.group(1):
            i += 1
            continue
        start, j = i, i + 1
        while not lines[j].startswith("```"):
            j += 1
        before = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        reason = NOT_RUN.match(before)
        out.append((start + 1, m.group(1), "\n".join(lines[start + 1:j]),
                    reason.group(1) if reason else None))
        i = j + 1
    return out


RUNNABLE = [b for b in blocks(README.read_text()) if b[1] in ("bash", "python")]
# Blocks known to fail for a reason being fixed elsewhere: a piece of their code -> why. They
# run as strict xfails, so the fix turns them into failures until the entry is removed.
KNOWN_BROKEN: dict[str, str] = {}


def _params() -> list:
    out = []
    for block in RUNNABLE:
        why = next((w for code, w in KNOWN_BROKEN.items() if code in block[2]), None)
        marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
        out.append(pytest.param(*block, marks=marks, id=f"L{block[0]}-{block[1]}"))
    return out


@lru_cache(maxsize=None)
def accepted_options(command: tuple[str, ...]) -> frozenset[str]:
    """The long options a command accepts, read from its own --help."""
    proc = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=120,
                          env=_env())
    return frozenset(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", proc.stdout))


def shrink_command(tokens: list[str]) -> list[str]:
    """A `propamm ...` or `python script ...` command with SMALL's sizes."""
    if tokens[0] == "propamm":
        sub = next((t for t in tokens[1:] if not t.startswith("-")), None)
        command = ("propamm", sub) if sub else ("propamm",)
    elif tokens[0] in ("python", "python3") and len(tokens) > 1:
        tokens = [tokens[0]] + [str(ROOT / t) if t.startswith("benchmarks/") else t
                                for t in tokens[1:]]
        command = (sys.executable, tokens[1])
    else:
        return tokens
    accepted = accepted_options(command)
    out, i = [], 0
    while i < len(tokens):
        if tokens[i] in SMALL and tokens[i] in accepted:
            i += 2  # dropped here, added back with the small value below
            continue
        out.append(tokens[i])
        i += 1
    for option, value in SMALL.items():
        if option in accepted:
            out += [option, value]
    return out


def shrink_bash(code: str) -> str:
    """Each command line of a bash block, continuation lines joined, comments dropped."""
    lines = code.replace("\\\n", " ").splitlines()
    out = []
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        tokens = shlex.split(line, comments=True)
        out.append(shlex.join(shrink_command(tokens)) if tokens else "")
    return "\n".join(out)


def shrink_python(code: str) -> str:
    for pattern, small in PY_SMALL:
        code = re.sub(pattern, small, code)
    return code


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


SAFE_FORM = """const NAME: &str = "readme_safe";
fn compute_swap(data: &[u8]) -> u64 {
    let side = data[0];
    let input = u64::from_le_bytes(data[1..9].try_into().unwrap()) as u128;
    let rx = u64::from_le_bytes(data[9..17].try_into().unwrap()) as u128;
    let ry = u64::from_le_bytes(data[17..25].try_into().unwrap()) as u128;
    let net = input * 9970 / 10000;
    let (r_in, r_out) = if side == 0 { (ry, rx) } else { (rx, ry) };
    (r_out * net / (r_in + net)) as u64
}
fn after_swap(_data: &[u8], _storage: &mut [u8]) {}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """The user's own files; see the module docstring."""
    from propamm_jax.native.build import compile_rust, starter_strategies

    d = tmp_path_factory.mktemp("readme")
    starters = starter_strategies()
    for name, source in zip(("my_strategy.rs", "other.rs", "mine.rs", "theirs.rs", "mine_v2.rs"),
                            starters + starters):
        shutil.copy(source, d / name)
    (d / "my.rs").write_text(SAFE_FORM)
    shutil.copy(compile_rust(d / "my_strategy.rs"), d / "lib_prebuilt.so")
    return d


def test_readme_has_runnable_blocks():
    runnable = [b for b in RUNNABLE if b[3] is None]
    assert len(runnable) >= 8 and any(b[1] == "python" for b in runnable)
    skipped = [b for b in RUNNABLE if b[3] is not None]
    assert len(skipped) <= 4, [b[0] for b in skipped]  # keep the not-run set minimal


@pytest.mark.parametrize("line, language, code, reason", _params())
def test_readme_block_runs(line, language, code, reason, folder):
    if reason is not None:
        pytest.skip(f"README line {line}: not-run: {reason}")
    if language == "bash":
        argv = ["bash", "-euo", "pipefail", "-c", shrink_bash(code)]
    else:
        script = folder / f"readme_line_{line}.py"
        script.write_text(shrink_python(code) + "\n")
        argv = [sys.executable, script.name]
    proc = subprocess.run(argv, cwd=folder, env=_env(), capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, (
        f"README block at line {line} failed (exit {proc.returncode}):\n{argv[-1]}\n"
        f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-5000:]}")
