"""Benchmark of the fast path: cpamm:30 + cpamm:65 + the normalizer, 10 000 steps.

Three measurements, side by side in one run:

1. the engine in this process (all local devices; on a CPU one XLA device per core): compile
   and first batch, then steady-state simulations per second and peak memory;
2. the whole `propamm simulate` command for the same simulations, cold (empty compilation
   cache, tapes already cached) and warm (after that run), as a user would run it;
3. official scoring of fixed_30bps.rs + fixed_65bps.rs on the first `--official-sims` seeds
   (needs rustc), and the ratios of its seconds per simulation to (1) and (2).

    python benchmarks/bench_simulate.py --simulations 1000
    python benchmarks/bench_simulate.py --simulations 100000 --reuse-tapes 10000 --official-sims 0 --no-cli

`--reuse-tapes K` builds K distinct seeds' tapes and tiles them to the requested count: the
simulation's cost does not depend on the values, and tape generation (a CPU job, ~10 ms per
seed) would otherwise dominate a very large GPU run. Results are not written.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def time_cli(args, cache: Path) -> float:
    """Wall seconds of one `propamm simulate` command with PROPAMM_CACHE=cache."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "propamm_jax.cli", "simulate", "--pool", "cpamm:30",
               "--pool", "cpamm:65", "--simulations", str(args.simulations),
               "--steps", str(args.steps), "--epoch-len", str(args.epoch_len),
               "--profile", args.profile, "--dtype", args.dtype,
               "--output", str(Path(tmp) / "r.json")]
        env = dict(os.environ, PROPAMM_CACHE=str(cache))
        env.pop("XLA_FLAGS", None)
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--epoch-len", type=int, default=1_000)
    parser.add_argument("--profile", default="corrected", choices=["reference", "corrected"])
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--reuse-tapes", type=int, default=0)
    parser.add_argument("--official-sims", type=int, default=40)
    parser.add_argument("--no-cli", action="store_true", help="skip the whole-command timing")
    parser.add_argument("--warm-runs", type=int, default=5,
                        help="warm runs of the whole command (the median is reported)")
    args = parser.parse_args()

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={cores or 1}")
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    from propamm_jax.config import SimConfig
    from propamm_jax.fast.events import event_width, market_of, pack_events
    from propamm_jax.native.build import cache_dir
    from propamm_jax.fast.runner import BatchRunner
    from propamm_jax.simulation import parse_pool
    from propamm_jax.tape_cache import cached_tape

    config = SimConfig(steps=args.steps, epoch_len=args.epoch_len)
    np_dtype = np.float64 if args.dtype == "float64" else np.float32
    specs = [parse_pool("cpamm:30"), parse_pool("cpamm:65")]
    params = [jax.tree_util.tree_map(lambda a: np.asarray(a, np_dtype), s.params) for s in specs]
    devices = jax.local_devices()
    print(f"device: {len(devices)} x {devices[0].device_kind} ({jax.default_backend()}), "
          f"{args.dtype}, profile {args.profile}, {args.simulations} sims x {args.steps} steps, "
          f"batch {args.batch_size}", flush=True)

    distinct = args.reuse_tapes or args.simulations
    start = time.perf_counter()
    tape = cached_tape(range(distinct), config.steps)
    batch = min(args.batch_size, args.simulations)
    width = event_width(tape)
    market = market_of(tape, np_dtype)
    packed = pack_events(tape, np_dtype, width)
    prep = time.perf_counter() - start
    print(f"tapes + events for {distinct} seeds: {prep:.1f} s", flush=True)

    run = BatchRunner([s.pool for s in specs], config, args.profile)

    def rows(lo: int):
        index = np.arange(lo, lo + batch) % distinct
        return (market.norm_fee[index], market.norm_liquidity_mult[index],
                type(packed)(*(np.ascontiguousarray(a[:, index]) for a in packed)))

    start = time.perf_counter()
    jax.block_until_ready(run(*rows(0), params))
    compile_and_first = time.perf_counter() - start
    sim_time, edges = 0.0, []
    for lo in range(0, args.simulations, batch):
        batch_rows = rows(lo)  # gathering the batch's columns is host work, not timed
        start = time.perf_counter()
        final = run(*batch_rows, params)
        sim_time += time.perf_counter() - start
        edges.append(np.asarray(final.cumulative_edge)[:, 0])
    per_sim = sim_time / args.simulations
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"engine, compile + first batch: {compile_and_first:.1f} s")
    print(f"engine: {sim_time:.2f} s  {args.simulations / sim_time:,.0f} sims/s  "
          f"{per_sim * 1e3:.3f} ms/sim  peak host RSS {rss:.0f} MiB")
    stats = devices[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        print(f"peak device memory: {stats['peak_bytes_in_use'] / 2**30:.2f} GiB")
    print(f"mean edge cpamm:30 = {np.concatenate(edges).mean():.2f}", flush=True)

    cli_warm = None
    if not args.no_cli:
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp)
            tapes = cache_dir() / "tapes"
            if tapes.exists():
                (cache / "tapes").symlink_to(tapes)  # tapes warm, compilation cache empty
            cold = time_cli(args, cache)
            warm = sorted(time_cli(args, cache) for _ in range(args.warm_runs))
            cli_warm = float(np.median(warm))
            shutil.rmtree(cache / "jax", ignore_errors=True)
        print(f"propamm simulate, whole command: cold {cold:.2f} s (empty caches but the tapes), "
              f"warm median {cli_warm:.2f} s = {cli_warm / args.simulations * 1e3:.2f} ms/sim "
              f"(runs: {', '.join(f'{t:.2f}' for t in warm)})", flush=True)

    if args.official_sims > 0:
        from propamm_jax.scoring import score

        files = [ROOT / "tests/fixtures/strategies/fixed_30bps.rs",
                 ROOT / "tests/fixtures/strategies/fixed_65bps.rs"]
        n = args.official_sims
        score(files, config=SimConfig(steps=50, epoch_len=10), simulations=2, progress=False)
        start = time.perf_counter()
        score(files, config=config, simulations=n, profile=args.profile, progress=False)
        official = (time.perf_counter() - start) / n
        print(f"official scoring, same workload: {official * 1e3:.1f} ms/sim on {n} sims")
        print(f"ratio official / engine per simulation: {official / per_sim:.1f}x")
        if cli_warm is not None:
            print(f"ratio official / whole command (warm median) per simulation: "
                  f"{official / (cli_warm / args.simulations):.1f}x")
    print(f"ratio 70 ms (the reference engine, issue's figure) / whole command (warm median): "
          f"{0.070 / (cli_warm / args.simulations):.1f}x" if cli_warm else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
