"""Benchmark of official scoring: `fixed_30bps` + `adaptive_fee`, 100 sims x 10 000 steps.

Prints simulations per second, peak memory (the scorer and its worker processes), and the share
of core time spent inside strategy calls. With `--reference-cmd`, the reference engine (which
you build yourself; this project does not ship it) runs the same workload side by side and the
ratio is printed. The command is a template: {libs} (compiled .so files), {sources} (.rs
files), {sims}, {steps}, {epoch_len}, {seed_start}.

    python benchmarks/bench_score.py
    python benchmarks/bench_score.py --simulations 1000
    python benchmarks/bench_score.py --reference-cmd "/tmp/ref/run {libs} --seeds 0:{sims} --steps {steps} --epoch-len {epoch_len} --threads 2"
"""

from __future__ import annotations

import argparse
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ROOT / "tests" / "fixtures" / "strategies"


def peak_rss_mib() -> tuple[float, float]:
    """(this process, largest child) peak resident set size in MiB (Linux reports KiB)."""
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return me, kids


def callback_share(libraries, config, profile: str, sims: int = 5) -> tuple[float, float]:
    """(share of core time inside strategy calls, strategy calls per simulation)."""
    from propamm_jax.native.bridge import NativeStrategy, PoolSpec, run_core
    from propamm_jax.tape import make_tape

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--epoch-len", type=int, default=1_000)
    parser.add_argument("--profile", default="reference", choices=["reference", "corrected"])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--reference-cmd", default=None, help="baseline command template")
    args = parser.parse_args()

    from propamm_jax.config import SimConfig
    from propamm_jax.native.build import resolve_library
    from propamm_jax.scoring import score

    sources = [STRATEGIES / "fixed_30bps.rs", STRATEGIES / "adaptive_fee.rs"]
    libraries = [str(resolve_library(p)) for p in sources]  # compile outside the timing
    config = SimConfig(steps=args.steps, epoch_len=args.epoch_len)
    print(f"workload: fixed_30bps + adaptive_fee, {args.simulations} sims x {args.steps} steps, "
          f"epoch {args.epoch_len}, profile {args.profile}", flush=True)

    start = time.perf_counter()
    result = score(sources, config=config, simulations=args.simulations, profile=args.profile,
                   workers=args.workers, progress=False)
    ours = time.perf_counter() - start
    assert not result.failures, result.failures
    me, kids = peak_rss_mib()
    print(f"propamm score : {ours:7.2f} s wall  {args.simulations / ours:7.1f} sims/s  "
          f"peak RSS scorer {me:.0f} MiB, largest worker {kids:.0f} MiB")

    share, calls = callback_share(libraries, config, args.profile)
    print(f"strategy calls: {calls:,.0f} per simulation, {100 * share:.0f}% of core time "
          f"(measured on 5 sims with per-call timers)")

    if args.reference_cmd:
        cmd = args.reference_cmd.format(
            libs=" ".join(shlex.quote(p) for p in libraries),
            sources=" ".join(shlex.quote(str(p)) for p in sources), sims=args.simulations,
            steps=args.steps, epoch_len=args.epoch_len, seed_start=0)
        start = time.perf_counter()
        proc = subprocess.run(cmd, shell=True, capture_output=True, text=True)
        theirs = time.perf_counter() - start
        if proc.returncode != 0:
            print(f"reference command failed ({proc.returncode}): {proc.stderr.strip()[:300]}")
            return 1
        print(f"reference     : {theirs:7.2f} s wall  {args.simulations / theirs:7.1f} sims/s")
        print(f"ratio propamm / reference wall time: {ours / theirs:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
