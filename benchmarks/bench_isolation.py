"""What isolation costs: official scoring in confined worker processes against the same
simulations run in this very process, side by side in one run.

    python benchmarks/bench_isolation.py                      # 40 sims x 10 000 steps
    python benchmarks/bench_isolation.py --simulations 100 --repeats 2

Both sides score fixed_30bps + adaptive_fee (reference profile) on the same seeds, generate
the same tapes (no tape cache on either side) and produce identical records (checked). The
in-process baseline is what scoring cost before isolation: strategies loaded here, called
directly by the core, one simulation after another. The isolated side is `score()` with one
worker: the checks before scoring (a confined child), a spawned worker with address-space
and CPU limits and a clean environment, every strategy call through the call guard, results
streamed back, and (second row) the results journal. The ratio is isolated time / baseline
time, so 1.10 means isolation costs 10% of throughput. Runs alternate to share the noise of
a busy machine; the best of `--repeats` is reported for each.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ROOT / "tests" / "fixtures" / "strategies"


def in_process(libraries: list[str], labels: list[str], config, seeds: list[int],
               block: int = 8) -> list[dict]:
    """The baseline: the worker's loop without the worker (no spawn, limits or guard)."""
    from propamm_jax.native.bridge import NativeStrategy, PoolSpec, run_core
    from propamm_jax.results import sim_record
    from propamm_jax.tape_cache import cached_tape

    strategies = [NativeStrategy(Path(p), lbl) for p, lbl in zip(libraries, labels)]
    pools = [PoolSpec.native(s) for s in strategies]
    names = [s.name for s in strategies]
    records = []
    for i in range(0, len(seeds), block):
        chunk = seeds[i:i + block]
        tape = cached_tape(chunk, config.steps)
        fair = tape.fair_prices(config.initial_price)
        for row, seed in enumerate(chunk):
            lo, hi = tape.order_start[row, 0], tape.order_start[row, -1]
            run = run_core(config, "reference", pools, int(tape.params.norm_fee_bps[row]),
                           float(tape.params.norm_liquidity_mult[row]), fair[row],
                           tape.order_start[row] - lo, tape.order_is_buy[row, lo:hi],
                           tape.order_size[row, lo:hi])
            records.append(sim_record(seed, tape.params, row, names, run))
    return records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=40)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--epoch-len", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ["PROPAMM_NO_TAPE_CACHE"] = "1"  # both sides generate their tapes

    from propamm_jax.config import SimConfig
    from propamm_jax.native.build import resolve_library
    from propamm_jax.scoring import score

    files = [STRATEGIES / "fixed_30bps.rs", STRATEGIES / "adaptive_fee.rs"]
    libraries = [str(resolve_library(f)) for f in files]
    labels = [f.name for f in files]
    config = SimConfig(steps=args.steps, epoch_len=args.epoch_len)
    seeds = list(range(args.simulations))
    best = {"in-process": float("inf"), "isolated": float("inf"), "isolated + journal": float("inf")}
    outputs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            t = time.perf_counter()
            outputs["in-process"] = in_process(libraries, labels, config, seeds)
            best["in-process"] = min(best["in-process"], time.perf_counter() - t)
            for name, journal in (("isolated", None),
                                  ("isolated + journal", Path(tmp) / f"j{r}.jsonl")):
                t = time.perf_counter()
                result = score(files, config=config, seeds=seeds, workers=1, progress=False,
                               journal=journal)
                best[name] = min(best[name], time.perf_counter() - t)
                assert not result.failures
                outputs[name] = result.results.sims
    # The fixed part of isolation: checks before scoring, spawning, loading (1 tiny simulation).
    t = time.perf_counter()
    score(files, config=SimConfig(steps=10, epoch_len=10), seeds=[0], workers=1, progress=False)
    startup = time.perf_counter() - t
    same = outputs["in-process"] == outputs["isolated"] == outputs["isolated + journal"]
    base = best["in-process"]
    print(f"{args.simulations} simulations x {args.steps} steps, fixed_30bps + adaptive_fee, "
          f"reference profile, 1 process each, best of {args.repeats}")
    print(f"{'run':<22}{'seconds':>9}{'sims/s':>9}{'ratio':>8}")
    for name, seconds in best.items():
        print(f"{name:<22}{seconds:>9.2f}{args.simulations / seconds:>9.2f}{seconds / base:>8.3f}")
    print(f"fixed start-up of an isolated run (1 simulation of 10 steps): {startup:.2f} s")
    per_sim = (best["isolated"] - startup) / base
    print(f"isolated without that fixed start-up / in-process: {per_sim:.3f}")
    print(f"records identical on all three: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
