"""Does a trained policy beat every fixed fee, officially scored, on seeds it never saw?

Exports `policy.json` to Rust, scores it officially (the native engine, bit-identical to the
reference) on `--simulations` seeds from `--seed-start`, and scores fixed-fee submissions at
every fee of `--fees` (default 5, 10, ..., 100 bps) on the *same* seeds and against the same
opponents, side by side in one run. The best fixed fee is chosen on those seeds, which
favours the baseline. Also prints the policy's fast-path mean on the same seeds (export
fidelity). Results go to `--output` (JSON) as they arrive.

    python benchmarks/effectiveness.py runs/main/policy.json --simulations 500 \
        --seed-start 500000 --output runs/main/effectiveness.json
    python benchmarks/effectiveness.py runs/field/policy.json --opponent cpamm:30 \
        --opponent cpamm:50 --opponent cpamm:80 ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", type=Path)
    parser.add_argument("--profile", default="corrected", choices=["corrected", "reference"])
    parser.add_argument("--opponent", action="append", default=[], help="cpamm:BPS, repeatable")
    parser.add_argument("--simulations", type=int, default=500)
    parser.add_argument("--seed-start", type=int, default=500_000)
    parser.add_argument("--fees", default="5:100:5", help="LO:HI:STEP in bps")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--epoch-len", type=int, default=1_000)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={cores or 1}")
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    from propamm_jax.config import SimConfig
    from propamm_jax.scoring import score
    from propamm_jax.training.evaluate import fast_edges, official_edges, opponent_files
    from propamm_jax.training.export import fixed_fee_rust

    lo, hi, step = (int(x) for x in args.fees.split(":"))
    fees = list(range(lo, hi + 1, step))
    config = SimConfig(steps=args.steps, epoch_len=args.epoch_len)
    seeds = list(range(args.seed_start, args.seed_start + args.simulations))
    report: dict = {"policy": str(args.policy), "profile": args.profile,
                    "opponents": args.opponent, "seeds": [seeds[0], seeds[-1]],
                    "steps": args.steps, "epoch_len": args.epoch_len, "fixed": {}}

    def save() -> None:
        if args.output is not None:
            args.output.write_text(json.dumps(report, indent=2) + "\n")

    print(f"profile: {args.profile}  |  {len(seeds)} seeds {seeds[0]}..{seeds[-1]}  |  "
          f"opponents: {', '.join(args.opponent) or 'normalizer only'}", flush=True)
    started = time.perf_counter()
    edges, failed = official_edges(args.policy, seeds, args.profile, config, args.opponent,
                                   progress=False)
    fast = fast_edges(args.policy, seeds, args.profile, config, args.opponent)
    report["policy_official"] = float(np.mean(list(edges.values())))
    report["policy_fast"] = float(fast.mean())
    report["policy_failures"] = failed
    print(f"policy: official {report['policy_official']:.2f}, fast path "
          f"{report['policy_fast']:.2f} (official vs fast "
          f"{100 * (report['policy_official'] / report['policy_fast'] - 1):+.3f}%), "
          f"{failed} failed  [{time.perf_counter() - started:.0f} s]", flush=True)
    save()
    with tempfile.TemporaryDirectory(prefix="propamm-fixed-") as tmp:
        others = [str(f) for f in opponent_files(args.opponent, Path(tmp) / "opp")] \
            if args.opponent else []
        for fee in fees:
            path = Path(tmp) / f"baseline_{fee}bps.rs"
            path.write_text(fixed_fee_rust(fee))
            result = score([str(path)] + others, config=config, seeds=seeds,
                           profile=args.profile, progress=False)
            frame = result.frame
            mean = float(frame[frame.strategy_index == 0].edge.mean())
            report["fixed"][str(fee)] = mean
            print(f"fixed {fee:4d} bps: official {mean:9.2f}  [{time.perf_counter() - started:.0f} s]",
                  flush=True)
            save()
    best_fee = max(report["fixed"], key=report["fixed"].get)
    best = report["fixed"][best_fee]
    report["best_fixed_bps"] = int(best_fee)
    report["best_fixed"] = best
    report["improvement"] = report["policy_official"] / best - 1.0
    save()
    print(f"\nbest fixed fee {best_fee} bps: {best:.2f}  |  policy {report['policy_official']:.2f}"
          f"  |  policy vs best fixed: {100 * report['improvement']:+.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
