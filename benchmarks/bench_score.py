"""Benchmark of official scoring: `fixed_30bps` + `adaptive_fee`, 100 sims x 10 000 steps.

Prints simulations per second, wall and CPU time (user + system, the scorer and all its
child processes), peak memory, and the share of core time spent inside strategy calls. With
`--reference-cmd`, the reference engine (which you build yourself; this project does not ship
it) runs the same workload side by side and both ratios are printed; `--repeat N` alternates
the two N times (the wall-time ratio moves with the load of a shared machine, the CPU-time
ratio much less). The command is a template: {libs} (compiled .so files), {sources} (.rs
files), {sims}, {steps}, {epoch_len}, {seed_start}.

    python benchmarks/bench_score.py
    python benchmarks/bench_score.py --simulations 1000
    python benchmarks/bench_score.py --repeat 3 --reference-cmd "/tmp/ref/run {libs} --seeds 0:{sims} --steps {steps} --epoch-len {epoch_len} --threads 2"
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ROOT / "tests" / "fixtures" / "strategies"


def cpu_seconds() -> float:
    """User + system time of this process and of its waited-for children so far."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(run) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of `run()`."""
    cpu, start = cpu_seconds(), time.perf_counter()
    run()
    return time.perf_counter() - start, cpu_seconds() - cpu


def peak_rss_mib() -> tuple[float, float]:
    """(this process, largest child) peak resident set size in MiB (Linux reports KiB)."""
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return me, kids


def callback_share(libraries, config, profile: str, sims: int = 5) -> tuple[float, float]:
    """(share of core time inside strategy calls, strategy calls per simulation)."""
    from propamm_jax.native.bridge import NativeStrategy, PoolSpec, run_core
    from propamm_jax.tape.generate import make_tape

    pools = [PoolSpec.native(NativeStrategy(Path(p))) for p in libraries]
    tape = make_tape(range(sims), config.steps)
    fair = tape.fair_prices(config.initial_price)
    total = inside = calls = 0.0
    for b in range(sims):
        lo, hi = tape.order_start[b, 0], tape.order_start[b, -1]
        start = time.perf_counter()
        run = run_core(config, profile, pools, int(tape.params.norm_fee_bps[b]),
                       float(tape.params.norm_liquidity_mult[b]), fair[b],
                       tape.order_start[b] - lo, tape.order_is_buy[b, lo:hi],
                       tape.order_size[b, lo:hi], measure_calls=True)
        total += time.perf_counter() - start
        inside += run.call_seconds
        calls += run.calls
    return inside / total, calls / sims


def run_ours(sources, config, args) -> None:
    from propamm_jax.official.scoring import score

    result = score(sources, config=config, simulations=args.simulations, profile=args.profile,
                   workers=args.workers, progress=False)
    assert not result.failures, [f.line() for f in result.failures]


def run_reference(cmd: str) -> None:
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"reference command failed ({proc.returncode}): {proc.stderr.strip()[:300]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--simulations", type=int, default=100, help="simulations per run")
    parser.add_argument("--steps", type=int, default=10_000, help="steps per simulation")
    parser.add_argument("--epoch-len", type=int, default=1_000, help="steps per epoch")
    parser.add_argument("--profile", default="reference", choices=["reference", "corrected"],
                        help="scoring profile (give the matching reference build)")
    parser.add_argument("--workers", type=int, default=None, help="scoring workers (None: one per CPU)")
    parser.add_argument("--reference-cmd", default=None, help="baseline command template")
    parser.add_argument("--repeat", type=int, default=1,
                        help="alternating runs of ours and the reference")
    parser.add_argument("--cold-tape", action="store_true",
                        help="generate every market tape (PROPAMM_NO_TAPE_CACHE=1)")
    args = parser.parse_args()
    if args.cold_tape:
        os.environ["PROPAMM_NO_TAPE_CACHE"] = "1"

    from propamm_jax.config import SimConfig
    from propamm_jax.native.build import resolve_library

    sources = [STRATEGIES / "fixed_30bps.rs", STRATEGIES / "adaptive_fee.rs"]
    libraries = [str(resolve_library(p)) for p in sources]  # compile outside the timing
    config = SimConfig(steps=args.steps, epoch_len=args.epoch_len)
    print(f"workload: fixed_30bps + adaptive_fee, {args.simulations} sims x {args.steps} steps, "
          f"epoch {args.epoch_len}, profile {args.profile}"
          f"{', tapes generated' if args.cold_tape else ''}", flush=True)
    cmd = None
    if args.reference_cmd:
        cmd = args.reference_cmd.format(
            libs=" ".join(shlex.quote(p) for p in libraries),
            sources=" ".join(shlex.quote(str(p)) for p in sources), sims=args.simulations,
            steps=args.steps, epoch_len=args.epoch_len, seed_start=0)

    walls, cpus = [], []
    for k in range(args.repeat):
        wall, cpu = timed(lambda: run_ours(sources, config, args))
        print(f"[{k + 1}] propamm score : {wall:7.2f} s wall {cpu:7.2f} s CPU  "
              f"{args.simulations / wall:7.1f} sims/s", flush=True)
        if cmd:
            ref_wall, ref_cpu = timed(lambda: run_reference(cmd))
            walls.append(wall / ref_wall)
            cpus.append(cpu / ref_cpu)
            print(f"[{k + 1}] reference     : {ref_wall:7.2f} s wall {ref_cpu:7.2f} s CPU  "
                  f"{args.simulations / ref_wall:7.1f} sims/s   ratio propamm / reference: "
                  f"{walls[-1]:.2f}x wall, {cpus[-1]:.2f}x CPU", flush=True)
    me, kids = peak_rss_mib()
    print(f"peak RSS scorer {me:.0f} MiB, largest child {kids:.0f} MiB")
    share, calls = callback_share(libraries, config, args.profile)
    print(f"strategy calls: {calls:,.0f} per simulation, {100 * share:.0f}% of core time "
          f"(measured on 5 sims with per-call timers)")
    if walls:
        print(f"ratio propamm / reference, median of {len(walls)}: "
              f"{statistics.median(walls):.2f}x wall, {statistics.median(cpus):.2f}x CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
