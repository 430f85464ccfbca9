"""Benchmark of the fast path: cpamm:30 + cpamm:65 + the normalizer, 10 000 steps.

Prints the time to build tapes and events, compile, and simulate, simulations per second,
peak memory, and (with --official-sims N > 0, on a machine with rustc) the per-simulation
ratio against official scoring of fixed_30bps.rs + fixed_65bps.rs run side by side on the
first N seeds.

    python benchmarks/bench_simulate.py --simulations 1000
    python benchmarks/bench_simulate.py --simulations 100000 --reuse-tapes 10000 --official-sims 0

`--reuse-tapes K` builds K distinct seeds' tapes and tiles them to the requested count: the
simulation's cost does not depend on the values, and tape generation (a CPU job, ~10 ms per
seed) would otherwise dominate a very large GPU run. Results are not written.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--epoch-len", type=int, default=1_000)
    parser.add_argument("--profile", default="corrected", choices=["reference", "corrected"])
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--reuse-tapes", type=int, default=0)
    parser.add_argument("--official-sims", type=int, default=20)
    args = parser.parse_args()

    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    from propamm_jax.config import SimConfig
    from propamm_jax.fast import build_events, build_market, simulate_batch
    from propamm_jax.simulate import _pad, parse_pool
    from propamm_jax.tape_cache import cached_tape

    config = SimConfig(steps=args.steps, epoch_len=args.epoch_len)
    np_dtype = np.float64 if args.dtype == "float64" else np.float32
    specs = [parse_pool("cpamm:30"), parse_pool("cpamm:65")]
    pools = [s.pool for s in specs]
    params = [jax.tree_util.tree_map(lambda a: a.astype(np_dtype), s.params) for s in specs]
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), {args.dtype}, "
          f"profile {args.profile}, {args.simulations} sims x {args.steps} steps, "
          f"batch {args.batch_size}", flush=True)

    distinct = args.reuse_tapes or args.simulations
    start = time.perf_counter()
    tape = cached_tape(range(distinct), config.steps)
    events = build_events(tape, np_dtype)
    market = build_market(tape, config, np_dtype)
    prep = time.perf_counter() - start
    print(f"tapes + events for {distinct} seeds: {prep:.1f} s", flush=True)

    run = jax.jit(lambda m, e, p: simulate_batch(pools, p, config, args.profile, m, e))
    batch = min(args.batch_size, args.simulations)

    def rows(lo: int):
        index = np.arange(lo, lo + batch) % distinct
        take = lambda a: a[index]  # noqa: E731
        return (_pad(jax.tree_util.tree_map(take, market), batch),
                _pad(jax.tree_util.tree_map(take, events), batch))

    m0, e0 = rows(0)
    start = time.perf_counter()
    jax.block_until_ready(run(m0, e0, params))
    compile_and_first = time.perf_counter() - start
    start = time.perf_counter()
    edges = []
    for lo in range(0, args.simulations, batch):
        m, e = rows(lo)
        final = run(m, e, params)
        edges.append(np.asarray(final.cumulative_edge[:, 0]))
    sim_time = time.perf_counter() - start
    per_sim = sim_time / args.simulations
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"compile + first batch: {compile_and_first:.1f} s")
    print(f"simulate: {sim_time:.2f} s  {args.simulations / sim_time:,.0f} sims/s  "
          f"{per_sim * 1e3:.3f} ms/sim  peak host RSS {rss:.0f} MiB")
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        print(f"peak device memory: {stats['peak_bytes_in_use'] / 2**30:.2f} GiB")
    print(f"mean edge cpamm:30 = {np.concatenate(edges).mean():.2f}")

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
        print(f"ratio official / fast path per simulation: {official / per_sim:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
