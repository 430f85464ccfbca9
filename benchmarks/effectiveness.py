"""Does a trained policy beat every fixed fee, officially scored, on seeds it never saw?

A thin wrapper over `propamm evaluate --vs-fixed` (training/evaluate.py, training/vs_fixed.py)
that writes the summary as JSON (the format of benchmarks/results/effectiveness_*.json):
the policy's official and fast-path means, every fee's fast-path mean, the official means of
the fees within `--official-within` percent of the fast-path best, and the improvement.

    python benchmarks/effectiveness.py runs/main/policy.json --simulations 500 \
        --seed-start 500000 --output runs/main/effectiveness.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("policy", type=Path)
    parser.add_argument("--profile", default=None, choices=["corrected", "reference"],
                        help="default: the policy's")
    parser.add_argument("--opponent", action="append", default=None,
                        help="cpamm:BPS or .rs, repeatable (default: the policy's)")
    parser.add_argument("--simulations", type=int, default=500, help="seeds")
    parser.add_argument("--seed-start", type=int, default=None,
                        help="default: past the policy's training seed ranges")
    parser.add_argument("--fees", default="5:100:5", help="LO:HI:STEP in bps")
    parser.add_argument("--steps", type=int, default=10_000, help="steps per simulation")
    parser.add_argument("--epoch-len", type=int, default=1_000, help="steps per epoch")
    parser.add_argument("--output", type=Path, default=None, help="summary JSON")
    parser.add_argument("--field", action="append", default=[],
                        help="also rank the policy in this field officially (.rs/.so, "
                             "cpamm:BPS; comma-separated or repeated): the summary's 'field'")
    parser.add_argument("--official-within", type=float, default=5.0,
                        help="officially score the fees within this %% of the fast-path best")
    args = parser.parse_args()

    from propamm_jax.cli import _configure_jax, _fee_list
    from propamm_jax.config import SimConfig
    from propamm_jax.official.scoring import seed_list
    from propamm_jax.training.evaluate import evaluate

    _configure_jax()
    seeds = None if args.seed_start is None else seed_list(args.simulations, args.seed_start)
    ev = evaluate(args.policy, seeds, args.profile,
                  SimConfig(steps=args.steps, epoch_len=args.epoch_len), args.opponent,
                  progress=False, vs_fixed=_fee_list(args.fees),
                  official_within=args.official_within, simulations=args.simulations,
                  field=[s.strip() for item in args.field for s in item.split(",") if s.strip()])
    report = {"policy": str(args.policy), **ev.summary()}
    print(json.dumps(report, indent=2))
    print("\n".join(ev.fixed.lines()))
    if ev.in_field is not None:
        from propamm_jax.official.tournament import lines

        print("\n".join(lines(ev.in_field.standings)))
    if args.output is not None:
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
