"""A disk cache of packed event batches, for running many pools on the same seeds.

`propamm simulate` turns each batch of seeds into `fast.Packed` events (~19 bytes an event,
~290 MB for 1 000 seeds of 10 000 steps). Building them from the tapes is most of a warm
command's host time, and researchers evaluate one seed set over and over, so a finished
batch is kept under `<cache>/batches/v1/<key>/` as plain `.npy` files, memory-mapped on the
next run. The key hashes the seed list, the steps, the padded shape and the dtype; only the
`KEEP` most recently used batches stay, and batches over `MAX_BYTES` (a 10 000-seed batch is
~3 GB) are not stored; the cache's size cap (`propamm_jax.cache`) may evict them sooner.
`PROPAMM_NO_TAPE_CACHE=1` bypasses this cache too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

VERSION = "v1"
KEEP = 4
MAX_BYTES = 2**30
FIELDS = ("step", "flags", "size", "price")


def _folder() -> Path:
    from propamm_jax.native.build import cache_dir

    return cache_dir() / "batches" / VERSION


def key(seeds: list[int], steps: int, rows: int, block: int, dtype) -> str:
    text = f"{steps}:{rows}:{block}:{np.dtype(dtype).name}:" + ",".join(map(str, seeds))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load(name: str):
    """(packed fields, market params [seeds, 5]) memory-mapped, or None."""
    if os.environ.get("PROPAMM_NO_TAPE_CACHE"):
        return None
    folder = _folder() / name
    try:
        arrays = {f: np.load(folder / f"{f}.npy", mmap_mode="r") for f in FIELDS + ("params",)}
        os.utime(folder)  # most recently used
    except (OSError, ValueError):
        return None
    return tuple(arrays[f] for f in FIELDS), np.asarray(arrays["params"])


def save(name: str, packed, params: np.ndarray) -> None:
    """Stores a batch (best effort: a full or read-only disk only costs speed)."""
    if os.environ.get("PROPAMM_NO_TAPE_CACHE") or sum(a.nbytes for a in packed) > MAX_BYTES:
        return
    root = _folder()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp"))
    except OSError:
        return
    try:
        for f, a in zip(FIELDS, packed):
            np.save(tmp / f"{f}.npy", a)
        np.save(tmp / "params.npy", params)
        os.replace(tmp, root / name)
    except OSError:  # full disk, or another process stored the same batch first
        shutil.rmtree(tmp, ignore_errors=True)
        return
    entries = sorted((p for p in root.iterdir() if not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime)
    for old in entries[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    from propamm_jax.cache import note_written

    note_written(sum(a.nbytes for a in packed) + params.nbytes)
