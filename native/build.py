"""Compiling submissions with plain `rustc`, cached by source hash and rustc version.

The reference builds each strategy with `rustc --edition 2021 --crate-type cdylib -O`; we use
the same flags so that the same machine code is scored. An unchanged source with an unchanged
compiler is never rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from importlib import resources
from pathlib import Path

from propamm_jax.errors import PropammError

RUSTC_FLAGS = ("--edition", "2021", "--crate-type", "cdylib", "-O")
CORE_FLAGS = ("-C", "opt-level=3", "-C", "codegen-units=1")  # the scoring core only


def cache_dir() -> Path:
    """`$PROPAMM_CACHE`, else `~/.cache/propamm-jax`."""
    root = os.environ.get("PROPAMM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "propamm-jax"
    )
    return Path(root)


@lru_cache(maxsize=1)
def rustc_version() -> str:
    """`rustc -vV`, which names the exact compiler build (part of every cache key)."""
    rustc = shutil.which("rustc")
    if rustc is None:
        raise PropammError("rustc not found on PATH: install Rust to compile strategies")
    return subprocess.run([rustc, "-vV"], capture_output=True, text=True, check=True).stdout.strip()


def first_diagnostic(stderr: str, limit: int = 14) -> str:
    """rustc's first error as rustc prints it (its own line breaks and source excerpt), at
    most `limit` lines, with a count of the further errors it reported."""
    lines = stderr.rstrip().splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("error")), None)
    if start is None:
        return "\n".join(lines[:limit]) or "rustc failed without a message"
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    block = lines[start:min(end, start + limit)]
    if end - start > limit:
        block.append(f"  ... ({end - start - limit} more lines)")
    others = sum(1 for ln in lines[end:] if ln.startswith("error") and "aborting" not in ln
                 and not ln.startswith("error: could not compile"))
    if others:
        block.append(f"(and {others} more error{'s' if others > 1 else ''}: run rustc on the "
                     "file for all of them)")
    return "\n".join(block)


def read_source(source: Path) -> bytes:
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise PropammError(f"{source}: cannot read ({exc.strerror})") from None


def compile_rust(source: Path, extra_flags: tuple[str, ...] = (), code: bytes | None = None) -> Path:
    """Returns the cached `.so` for `source` (or for `code`, the bytes to compile in its
    place, e.g. a wrapped safe-form file), compiling it if needed.

    Raises PropammError naming the file and quoting rustc's first error lines on failure.
    """
    source = Path(source)
    code = read_source(source) if code is None else code
    key = hashlib.sha256(
        code + b"\0" + rustc_version().encode() + b"\0" + " ".join(RUSTC_FLAGS + extra_flags).encode()
    ).hexdigest()[:24]
    stem = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in source.stem) or "strategy"
    target = cache_dir() / "build" / key / f"lib{stem}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmp_src = Path(tmp) / f"{stem}.rs"
        tmp_src.write_bytes(code)
        tmp_out = Path(tmp) / target.name
        proc = subprocess.run(
            ["rustc", *RUSTC_FLAGS, *extra_flags, "-o", str(tmp_out), str(tmp_src)],
            capture_output=True,
            text=True,
            cwd=tmp,
        )
        if proc.returncode != 0:
            detail = first_diagnostic(proc.stderr.replace(str(tmp_src), source.name))
            raise PropammError(f"{source}: does not compile: {detail}")
        os.replace(tmp_out, target)
    return target


def core_library() -> Path:
    """The scoring core (`native/core/engine.rs`), compiled on first use and cached."""
    src = resources.files("propamm_jax.native").joinpath("core", "engine.rs")
    with resources.as_file(src) as path:
        return compile_rust(Path(path), CORE_FLAGS)


def starter_strategies() -> list[Path]:
    """The project's own example strategies shipped in `native/strategies/`."""
    folder = resources.files("propamm_jax.native").joinpath("strategies")
    return sorted(Path(str(p)) for p in folder.iterdir() if str(p).endswith(".rs"))


def guard_library() -> Path:
    """The call guard (`native/core/guard.rs`): trampolines that record which strategy is
    being called, so that a crash or hang inside it can be blamed on it."""
    src = resources.files("propamm_jax.native").joinpath("core", "guard.rs")
    with resources.as_file(src) as path:
        return compile_rust(Path(path), CORE_FLAGS)


def resolve_library(path: str | os.PathLike, allow_unsafe_source: bool = False) -> Path:
    """A `.rs` source (source policy checked, safe form wrapped, compiled, cached) or a
    prebuilt `.so`; anything else is an error."""
    from propamm_jax.native.source import prepare_source

    path = Path(path)
    if not path.exists():
        raise PropammError(f"{path}: no such file")
    if path.suffix == ".rs":
        code = prepare_source(read_source(path), str(path), allow_unsafe_source)
        return compile_rust(path, code=code)
    if path.suffix == ".so":
        return path.resolve()
    raise PropammError(f"{path}: not a strategy (expected a .rs source or a compiled .so)")
