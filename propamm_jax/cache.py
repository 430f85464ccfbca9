"""The disk cache as a whole: its size by kind, clearing it, and a size cap.

Everything this package keeps between runs lives under one folder (`cache_dir()`:
`$PROPAMM_CACHE`, else `~/.cache/propamm-jax`), one subfolder per kind. Tapes and packed
batches are the bulk (a 10 000-step tape is ~0.5 MB, a batch of 1 000 seeds ~290 MB) and are
cheap to make again, so they are what the cap evicts, least recently used first (a tape or
batch read from the cache is marked as used). Builds, stored programs, XLA's cache and
journals are small or expensive to redo; `propamm cache clear --kind K` removes them.

The cap is `$PROPAMM_CACHE_MAX` (bytes, or with a K/M/G suffix, e.g. `8G`; `0` turns it
off), default 4 GiB. It is enforced when a process first writes tapes or a batch, then after
every 1/64 of the cap (at most 64 MiB) it writes.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from propamm_jax.errors import PropammError

# kind -> its subfolder of the cache
KINDS = {
    "tapes": "tapes",
    "batches": "batches",
    "programs": "programs",
    "xla": "jax",
    "builds": "build",
    "journals": "journals",
    "fidelity": "fidelity",
}
EVICTABLE = ("tapes", "batches")
ENV_MAX = "PROPAMM_CACHE_MAX"
DEFAULT_MAX = 4 * 2**30
_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def root() -> Path:
    from propamm_jax.native.build import cache_dir

    return cache_dir()


def max_bytes() -> int | None:
    """The cap from `$PROPAMM_CACHE_MAX` (None: no cap)."""
    text = os.environ.get(ENV_MAX, "").strip().upper().removesuffix("IB").removesuffix("B")
    if not text:
        return DEFAULT_MAX
    number, unit = (text[:-1], text[-1]) if text[-1] in _UNITS else (text, "")
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        raise PropammError(f"{ENV_MAX}={os.environ[ENV_MAX]!r}: expected a size such as "
                           "4G, 500M or 0 (no cap)") from None
    if value < 0:
        raise PropammError(f"{ENV_MAX}={os.environ[ENV_MAX]!r}: a size cannot be negative")
    return int(value) or None


@dataclass(frozen=True)
class Entry:
    """One evictable unit: a tape file or a batch folder, its size and last use."""

    path: Path
    bytes: int
    used: float


def _tree_size(path: Path) -> tuple[int, int]:
    """(bytes, files) under `path` (a file or a folder); vanished files count as nothing."""
    try:
        if not path.is_dir():
            return path.stat().st_size, 1
    except OSError:
        return 0, 0
    total = files = 0
    for folder, _, names in os.walk(path):
        for name in names:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
                files += 1
            except OSError:
                pass
    return total, files


def usage() -> dict[str, tuple[int, int]]:
    """(bytes, files) per kind, plus `other` for anything else under the cache."""
    base = root()
    out = {kind: _tree_size(base / folder) for kind, folder in KINDS.items()}
    known = set(KINDS.values())
    other = [0, 0]
    if base.is_dir():
        for child in base.iterdir():
            if child.name not in known:
                b, f = _tree_size(child)
                other[0] += b
                other[1] += f
    out["other"] = (other[0], other[1])
    return out


def _check_kind(kind: str) -> None:
    if kind not in KINDS and kind != "other":
        raise PropammError(f"cache: unknown kind {kind!r} (choose from "
                           f"{', '.join([*KINDS, 'other'])})")


def clear(kind: str | None = None) -> int:
    """Removes one kind (or everything) from the cache; returns the bytes freed."""
    base = root()
    if kind is not None:
        _check_kind(kind)
    if not base.is_dir():
        return 0
    if kind is None:
        targets = list(base.iterdir())
    elif kind == "other":
        targets = [c for c in base.iterdir() if c.name not in set(KINDS.values())]
    else:
        targets = [base / KINDS[kind]]
    freed = 0
    for target in targets:
        freed += _tree_size(target)[0]
        _remove(target)
    return freed


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass  # another process removed or holds it: best effort


def _evictable() -> list[Entry]:
    """Every tape file and batch folder, least recently used first."""
    base = root()
    entries = []
    for folder, _, names in os.walk(base / KINDS["tapes"]):
        for name in names:
            if name.endswith(".bin"):
                path = Path(folder) / name
                try:
                    st = path.stat()
                except OSError:
                    continue
                entries.append(Entry(path, st.st_size, st.st_mtime))
    batches = base / KINDS["batches"]
    for version in (batches.iterdir() if batches.is_dir() else ()):
        for batch in (version.iterdir() if version.is_dir() else ()):
            if batch.name.startswith("."):
                continue  # being written
            try:
                used = batch.stat().st_mtime
            except OSError:
                continue
            entries.append(Entry(batch, _tree_size(batch)[0], used))
    return sorted(entries, key=lambda e: e.used)


def enforce_cap(limit: int | None = -1) -> int:
    """Evicts the least recently used tapes and batches until the whole cache fits under
    `limit` (default: `max_bytes()`); returns the bytes freed. Other kinds count towards the
    total but are never evicted here."""
    limit = max_bytes() if limit == -1 else limit
    if limit is None:
        return 0
    total = sum(b for b, _ in usage().values())
    if total <= limit:
        return 0
    freed = 0
    for entry in _evictable():
        if total - freed <= limit:
            break
        _remove(entry.path)
        freed += entry.bytes
    return freed


_unchecked = {"bytes": 0, "checked": False}  # written by this process since the last check


def note_written(nbytes: int) -> int:
    """Records `nbytes` just written to the cache and enforces the cap on the first write of
    the process and then once per 1/64 of the cap written (at most 64 MiB), so that a loop of
    small writes (training's tapes each generation) does not walk the cache every time; the
    cache overshoots the cap by at most that much. Returns the bytes evicted."""
    _unchecked["bytes"] += nbytes
    limit = max_bytes()
    if limit is None:
        return 0
    if _unchecked["checked"] and _unchecked["bytes"] < min(limit // 64, 64 * 2**20):
        return 0
    _unchecked.update(bytes=0, checked=True)
    return enforce_cap(limit)


def touch(path: Path) -> None:
    """Marks a cached tape or batch as just used (best effort)."""
    try:
        os.utime(path)
    except OSError:
        pass


def format_usage(sizes: dict[str, tuple[int, int]]) -> str:
    """`usage()` as the table `propamm cache` prints."""
    cap = max_bytes()
    lines = [f"cache: {root()}", f"{'kind':<10} {'size':>10} {'files':>8}"]
    for kind, (b, f) in sizes.items():
        lines.append(f"{kind:<10} {human(b):>10} {f:>8}")
    total = sum(b for b, _ in sizes.values())
    lines.append(f"{'total':<10} {human(total):>10} {sum(f for _, f in sizes.values()):>8}")
    lines.append(f"cap: {'none' if cap is None else human(cap)} ({ENV_MAX}; least recently "
                 f"used {' and '.join(EVICTABLE)} are evicted above it)")
    return "\n".join(lines)


def human(n: int) -> str:
    """A byte count for people: 0 B, 512 B, 1.5 KiB, 2.9 GiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
