"""Training against compiled opponents: one preloaded run per generation vs a compile per member.

Issue 17, item 5. A generation's objective values against compiled opponents, computed two
ways on the same members and seeds (corrected profile, 10 000 steps, epoch 1 000 unless told):

- old: every member exported to Rust, compiled and scored by its own `score` call
  (`training.objective.per_member_values`);
- new: members x seeds as one run of the family's parametric library, each member's
  parameters preloaded in its storage (`training.objective.official_values`).

It prints both times and their ratio on a small case (and checks that the values are equal),
then the time of one generation of `--members` x `--seeds` (default 16 x 64) on the new path
alone. Opponents: the project's starter strategies (the first three unless --opponent).
The market tapes are generated before any timing (both paths read them from the disk cache),
and the one-off preparation of the new path (compiling the family library and the opponents,
score's gate) is timed on its own. Say what load the machine had: the script prints `uptime`.
CPU seconds count this process and its ended children; sandboxed workers (bubblewrap) are
not reaped as children, so only `--sandbox off` counts the simulations' CPU time (the old
path's `score` calls always sandbox as `auto`).

    python benchmarks/bench_opponents.py                 # 4x4 side by side, then 16x64
    python benchmarks/bench_opponents.py --small 2 --members 4 --seeds 8 --steps 2000
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import time

import numpy as np


def _population(pool, members: int, rng: np.random.Generator):
    """Members spread around a middling fee, as an ES population would be."""
    from propamm_jax.pools.dynamic_fee import PARAM_NAMES

    base = pool.params(bias=-1.0, w_dev=1.0)
    values = {k: float(getattr(base, k)) + rng.normal(0.0, 0.5, members) for k in PARAM_NAMES}
    return type(base)(*(np.asarray(values[k], np.float64) for k in PARAM_NAMES))


def _timed(work):
    """(result, wall seconds, CPU seconds of this process and its ended children: the
    sandboxed workers and their simulations, reaped when the generation's pool closes)."""
    def cpu() -> float:
        own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                       resource.RUSAGE_CHILDREN))
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    t, c = time.perf_counter(), cpu()
    result = work()
    return result, time.perf_counter() - t, cpu() - c


def _load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=4, help="members = seeds of the side-by-side case")
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--epoch-len", type=int, default=1_000)
    parser.add_argument("--opponent", action="append", default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--skip-old", action="store_true", help="no side-by-side case")
    parser.add_argument("--sandbox", default="auto", help="auto, require or off (off: the "
                        "workers are plain children, so their CPU time can be counted)")
    parser.add_argument("--skip-big", action="store_true", help="no members x seeds case")
    args = parser.parse_args()

    from propamm_jax.config import SimConfig
    from propamm_jax.native.build import starter_strategies
    from propamm_jax.pools.dynamic_fee import DynamicFee
    from propamm_jax.tape.cache import cached_tape
    from propamm_jax.training.objective import (Setting, _prepared_field, official_values,
                                                per_member_values)

    opponents = tuple(args.opponent or [str(p) for p in starter_strategies()[:3]])
    pool = DynamicFee(epoch_len=args.epoch_len)
    setting = Setting(pool, opponents, "corrected", SimConfig(steps=args.steps,
                                                               epoch_len=args.epoch_len))
    rng = np.random.default_rng(17)
    print(f"corrected, {args.steps} steps, epoch {args.epoch_len}, {os.cpu_count()} CPUs, "
          f"opponents: {', '.join(os.path.basename(o) for o in opponents)}")
    print(f"load before: {_load()}")
    seeds = list(range(1000, 1000 + max(args.seeds, args.small)))
    cached_tape(seeds, args.steps)
    t = time.perf_counter()
    _prepared_field(opponents)
    print(f"new path, once per training run (compile + gate): {time.perf_counter() - t:6.1f} s")

    if not args.skip_old:
        k = args.small
        population = _population(pool, k, rng)
        new, t_new, c_new = _timed(lambda: official_values(
            setting, population, seeds[:k], workers=args.workers, sandbox=args.sandbox))
        old, t_old, c_old = _timed(lambda: per_member_values(setting, population, seeds[:k]))
        same = "identical" if np.array_equal(new, old) else "DIFFERENT"
        print(f"{k} members x {k} seeds: old {t_old:6.1f} s ({c_old:6.1f} CPU s)   new "
              f"{t_new:6.1f} s ({c_new:6.1f} CPU s)   ratio {t_old / t_new:5.1f}x wall, "
              f"{c_old / c_new:5.1f}x CPU   values {same}")

    if not args.skip_big:
        population = _population(pool, args.members, rng)
        values, t_big, c_big = _timed(lambda: official_values(
            setting, population, seeds[:args.seeds], workers=args.workers,
            sandbox=args.sandbox))
        n = args.members * args.seeds
        cores = args.workers or os.cpu_count() or 1
        print(f"{args.members} members x {args.seeds} seeds ({n} simulations): new "
              f"{t_big:6.1f} s wall ({t_big / 60:.2f} min), {c_big:6.1f} CPU s "
              f"({c_big / n * 1000:.0f} ms per simulation; {c_big / cores / 60:.2f} min on "
              f"{cores} idle cores)")
        print(f"  mean value per member: {np.round(values.mean(axis=1), 1).tolist()}")
    print(f"load after: {_load()}")


if __name__ == "__main__":
    main()
