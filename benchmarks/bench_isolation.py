"""What isolation costs official scoring: the same `propamm score` run with and without it,
alternating, side by side.

"With" is the default: checks before scoring, confined worker processes (address-space
limit, clean environment, private directory), a CPU budget per simulation and the call guard
around every strategy call. "Without" sets PROPAMM_BENCH_NO_ISOLATION=1, which skips all of
that (the workers are still processes). Prints each run's wall time and the overhead of the
best isolated run over the best bare run.

    python benchmarks/bench_isolation.py --simulations 200 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ROOT / "tests" / "fixtures" / "strategies"


def run(args, isolated: bool) -> float:
    env = dict(os.environ)
    env.pop("PROPAMM_BENCH_NO_ISOLATION", None)
    if not isolated:
        env["PROPAMM_BENCH_NO_ISOLATION"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "propamm_jax.cli", "score",
               str(STRATEGIES / "fixed_30bps.rs"), str(STRATEGIES / "adaptive_fee.rs"),
               "--simulations", str(args.simulations), "--steps", str(args.steps),
               "--epoch-len", str(args.epoch_len), "--profile", args.profile, "--no-progress",
               "--no-journal", "--output", str(Path(tmp) / "r.json")]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--epoch-len", type=int, default=1_000)
    parser.add_argument("--profile", default="reference", choices=["reference", "corrected"])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    run(args, True)  # compile and cache the strategies and tapes first
    times: dict[bool, list[float]] = {True: [], False: []}
    for r in range(args.rounds):
        for isolated in (False, True):
            t = run(args, isolated)
            times[isolated].append(t)
            print(f"round {r + 1} {'isolated' if isolated else 'bare    '}: {t:.2f} s "
                  f"({args.simulations / t:.1f} sims/s)", flush=True)
    bare, isolated = min(times[False]), min(times[True])
    print(f"isolation costs {100 * (isolated / bare - 1):+.1f}% of the bare run's time "
          f"(best of {args.rounds}: {isolated:.2f} s vs {bare:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
