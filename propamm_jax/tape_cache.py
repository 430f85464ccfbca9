"""A disk cache of market tapes, one file per (seed, steps).

A tape depends only on its seed and length, so it is generated once and reused by every later
run, official or fast path. Files live under `<cache>/tapes/v1/<steps>/<seed>.npz` (see
`propamm_jax.native.build.cache_dir`); set `PROPAMM_NO_TAPE_CACHE=1` to bypass the cache.
A file that fails to load is regenerated.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from propamm_jax.tape import MarketParams, Tape, make_tape, parse_seed

VERSION = "v1"


def _folder(steps: int) -> Path:
    from propamm_jax.native.build import cache_dir

    return cache_dir() / "tapes" / VERSION / str(steps)


def _save(path: Path, tape: Tape, row: int) -> None:
    lo, hi = tape.order_start[row, 0], tape.order_start[row, -1]
    p = tape.params
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        np.savez(fh, params=np.array([p.sigma[row], p.lam[row], p.order_size_mean[row],
                                      p.norm_fee_bps[row], p.norm_liquidity_mult[row]]),
                 gbm_factor=tape.gbm_factor[row], order_start=tape.order_start[row] - lo,
                 order_is_buy=tape.order_is_buy[row, lo:hi], order_size=tape.order_size[row, lo:hi])
    os.replace(tmp, path)


def _load(path: Path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def cached_tape(seeds: Iterable[int], steps: int) -> Tape:
    """`make_tape(seeds, steps)`, reading and writing the disk cache."""
    seed_list = [parse_seed(s) for s in seeds]
    if os.environ.get("PROPAMM_NO_TAPE_CACHE"):
        return make_tape(seed_list, steps)
    folder = _folder(steps)
    rows: dict[int, dict] = {}
    for seed in set(seed_list):
        path = folder / f"{seed}.npz"
        if path.exists():
            try:
                rows[seed] = _load(path)
            except (OSError, ValueError, KeyError):
                pass
    missing = sorted(set(seed_list) - set(rows))
    if missing:
        fresh = make_tape(missing, steps)
        for row, seed in enumerate(missing):
            try:
                _save(folder / f"{seed}.npz", fresh, row)
            except OSError:
                pass  # a read-only cache only costs speed
            lo, hi = fresh.order_start[row, 0], fresh.order_start[row, -1]
            p = fresh.params
            rows[seed] = {
                "params": np.array([p.sigma[row], p.lam[row], p.order_size_mean[row],
                                    p.norm_fee_bps[row], p.norm_liquidity_mult[row]]),
                "gbm_factor": fresh.gbm_factor[row], "order_start": fresh.order_start[row] - lo,
                "order_is_buy": fresh.order_is_buy[row, lo:hi],
                "order_size": fresh.order_size[row, lo:hi]}
    return _assemble(seed_list, [rows[s] for s in seed_list])


def _assemble(seeds: list[int], rows: list[dict]) -> Tape:
    width = max(1, max(len(r["order_size"]) for r in rows))
    is_buy = np.zeros((len(rows), width), bool)
    size = np.zeros((len(rows), width))
    for i, r in enumerate(rows):
        is_buy[i, : len(r["order_is_buy"])] = r["order_is_buy"]
        size[i, : len(r["order_size"])] = r["order_size"]
    p = np.stack([r["params"] for r in rows])
    return Tape(seeds=np.asarray(seeds, dtype=np.uint64),
                params=MarketParams(p[:, 0], p[:, 1], p[:, 2], p[:, 3].astype(np.int64), p[:, 4]),
                gbm_factor=np.stack([r["gbm_factor"] for r in rows]),
                order_start=np.stack([r["order_start"] for r in rows]).astype(np.int64),
                order_is_buy=is_buy, order_size=size)
