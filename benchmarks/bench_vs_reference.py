"""The whole `propamm simulate` command against the reference engine's `run`, side by side.

Issue 16's speed bar: per simulation, warm, fixed_30bps + fixed_65bps (cpamm:30 + cpamm:65 on
the fast path) + the normalizer, 10 000 steps, epoch 1 000; `reference` against the published
build, `corrected` against a corrected build. The reference engine is third-party code and is
not part of this project: build it yourself and pass the binaries and the two strategy
libraries it loads.

    python benchmarks/bench_vs_reference.py --engine /tmp/refbuild/refengine \
        --engine-corrected /tmp/refbuild/refengine_corrected \
        --libs /tmp/refbuild/so/libfixed_30bps.so /tmp/refbuild/so/libfixed_65bps.so

The machine is shared, so both sides are timed alternately in the same run, in CPU time
(user + system of the child processes; wall time is printed beside it) and the ratios use
the best of `--repeats` runs of each. The first `propamm` run of each profile warms the caches
(tapes, packed batches, the compiled program) and is not counted.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """(CPU seconds of the child processes, wall seconds) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def propamm(profile: str, sims: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "propamm_jax.cli", "simulate", "--pool", "cpamm:30",
            "--pool", "cpamm:65", "--simulations", str(sims), "--steps", "10000",
            "--epoch-len", "1000", "--profile", profile, "--output", str(out)]


def engine(binary: str, libs: list[str], sims: int) -> list[str]:
    return [binary, *libs, "--seeds", f"0:{sims}", "--steps", "10000", "--epoch-len", "1000",
            "--threads", str(os.cpu_count() or 1), "--quiet"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", required=True, help="the published reference build")
    parser.add_argument("--engine-corrected", required=True, help="a corrected build")
    parser.add_argument("--libs", nargs=2, required=True, help="fixed_30bps and fixed_65bps .so")
    parser.add_argument("--simulations", type=int, default=10_000)
    parser.add_argument("--engine-sims", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    for path in [args.engine, args.engine_corrected, *args.libs]:
        if not Path(path).exists():
            parser.error(f"{path}: no such file")
    env = dict(os.environ, PROPAMM_CACHE_MAX=os.environ.get("PROPAMM_CACHE_MAX", "16G"))
    out = Path("/tmp") / f"bench_vs_reference_{os.getpid()}.parquet"
    print(f"uptime: {Path('/proc/loadavg').read_text().split()[:3]}  |  "
          f"{args.simulations} simulations (engine: {args.engine_sims}), 10 000 steps")
    print(f"{'profile':10s} {'side':28s} {'CPU ms/sim':>11s} {'wall ms/sim':>12s}")
    for profile, binary in (("reference", args.engine), ("corrected", args.engine_corrected)):
        timed(propamm(profile, args.simulations, out), env)  # warm-up
        ours, theirs = [], []
        for _ in range(args.repeats):
            cpu, wall = timed(propamm(profile, args.simulations, out), env)
            ours.append((cpu / args.simulations, wall / args.simulations))
            cpu, wall = timed(engine(binary, args.libs, args.engine_sims))
            theirs.append((cpu / args.engine_sims, wall / args.engine_sims))
        for side, rows in (("propamm simulate (warm)", ours), (Path(binary).name, theirs)):
            for cpu, wall in rows:
                print(f"{profile:10s} {side:28s} {1e3 * cpu:11.3f} {1e3 * wall:12.3f}")
        best_ours, best_theirs = min(r[0] for r in ours), min(r[0] for r in theirs)
        print(f"{profile:10s} ratio (best CPU per simulation): {best_theirs / best_ours:.0f}x  "
              f"(bar: {100 if profile == 'reference' else 300}x)", flush=True)
    out.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
