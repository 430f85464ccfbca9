"""Issue 17's "In a field" measurement: does the league-trained policy win the field?

The field: fixed fees of 20, 30, 40, 50, 70 and 90 bps, the four starter strategies
(native/strategies/*.rs), the baseline policies (trained by earlier runs with other seeds or
objectives; one against the normalizer alone) and the league-trained policy: 6 + 4 + 2 + 1 =
13 strategies with two baselines (the issue calls it a field of 12; one `--baseline` makes
it 12). Each policy
exported to Rust (`training.export`) under the name of its run directory. It is scored
officially as `propamm tournament` scores it (`official.tournament.run`) on held-out seeds
that must lie outside every seed range the policies' training or monitoring used (checked
from their policy.json), and the script prints the standings and the verdict: the league
policy's place by mean edge, its lead over the next in paired SEs (> 2 wanted), its mean
final capital share (the largest wanted) and its median rank (top 3 wanted).

    python benchmarks/league_field.py runs/league/policy.json \\
        --baseline runs/norm/policy.json --baseline runs/risk/policy.json \\
        --simulations 500 --seed-start 500000 --journal runs/field.journal \\
        --output runs/league_field.json

A `--journal` keeps finished simulations; rerunning the command with it resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

FIELD_FEES = (20, 30, 40, 50, 70, 90)


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("league", type=Path, help="the league-trained policy.json")
    p.add_argument("--baseline", type=Path, action="append", default=[],
                   help="a policy.json of an earlier run (repeatable; the issue: two)")
    p.add_argument("--fees", default=",".join(map(str, FIELD_FEES)), help="fixed fees, bps")
    p.add_argument("--simulations", type=int, default=500)
    p.add_argument("--seed-start", type=int, default=500_000)
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--epoch-len", type=int, default=1_000)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--journal", type=Path, default=None, help="keep (and resume) simulations")
    p.add_argument("--output", type=Path, default=None, help="summary JSON")
    return p.parse_args(argv)


def _label(policy: Path) -> str:
    """`runs/norm/policy.json` -> `norm` (the run directory names the strategy)."""
    name = policy.parent.name if policy.name == "policy.json" else policy.stem
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:64] or "policy"


def export_policies(policies: list[Path], seeds: list[int], folder: Path) -> list[str]:
    """Each policy as `<label>.rs`; refuses held-out seeds any of them trained or monitored on."""
    from propamm_jax.errors import PropammError
    from propamm_jax.training.evaluate import policy_setting
    from propamm_jax.training.export import export

    files = []
    for policy in policies:
        clash = policy_setting(policy).overlap(seeds)
        if clash is not None:
            raise PropammError(f"{policy}: {clash.removeprefix('warning: ')}")
        path = folder / f"{_label(policy)}.rs"
        if str(path) in files:
            raise PropammError(f"{policy}: two policies would both be {path.name}; put them in "
                               "run directories with different names")
        files.append(str(export(policy, path)))
    return files


def verdict(standings, index: int) -> dict:
    """The league policy's place, lead (paired SEs), capital share and median rank."""
    order = standings.order()
    place = order.index(index) + 1
    if place == 1:
        margin = standings.margin()
        lead, z = (margin[1], margin[2]) if margin is not None else (float("nan"),) * 2
    else:
        lead = float(standings.diff[index])
        z = lead / float(standings.diff_se[index])
    capital = float(standings.capital[index])
    median = float(standings.median_rank[index])
    wins = {"first_by_mean": place == 1, "lead_over_2_se": place == 1 and z > 2,
            "largest_capital": capital >= float(max(standings.capital)),
            "median_rank_top_3": median <= 3}
    return {"strategy": standings.labels[index], "place": place, "lead": lead, "lead_se": z,
            "capital_share": capital, "median_rank": median,
            "win_share": float(standings.win_share[index]), **wins, "done": all(wins.values())}


def main(argv=None) -> int:
    args = _args(argv)
    from propamm_jax.cli import _configure_jax
    from propamm_jax.config import SimConfig
    from propamm_jax.errors import PropammError
    from propamm_jax.native.build import starter_strategies
    from propamm_jax.official import tournament

    _configure_jax()
    seeds = list(range(args.seed_start, args.seed_start + args.simulations))
    fees = [f"fixed:{int(f)}" for f in args.fees.split(",") if f.strip()]
    try:
        with tempfile.TemporaryDirectory(prefix="league-field-") as tmp:
            policies = export_policies(list(args.baseline) + [args.league], seeds, Path(tmp))
            field = fees + [str(p) for p in starter_strategies()] + policies
            print(f"field of {len(field)}: {', '.join(Path(f).name for f in field)}  |  "
                  f"corrected, {len(seeds)} seeds {seeds[0]}..{seeds[-1]}, {args.steps} steps, "
                  f"epoch {args.epoch_len}", flush=True)
            outcome = tournament.run(field, config=SimConfig(steps=args.steps,
                                                             epoch_len=args.epoch_len),
                                     seeds=seeds, profile="corrected", workers=args.workers,
                                     progress=False, journal=args.journal,
                                     resume=args.journal is not None and args.journal.exists())
    except PropammError as exc:
        print(f"league_field: error: {exc}", file=sys.stderr)
        return 2
    s = outcome.standings
    print("\n".join(tournament.lines(s)))
    v = verdict(s, s.labels.index(Path(policies[-1]).name))
    print(f"\nleague policy {v['strategy']}: place {v['place']} by mean edge, lead "
          f"{v['lead']:+.2f} = {v['lead_se']:+.2f} paired SE, capital share "
          f"{100 * v['capital_share']:.1f}% (largest: {v['largest_capital']}), median rank "
          f"{v['median_rank']:g} (won {100 * v['win_share']:.1f}% of seeds)  ->  "
          f"{'DONE' if v['done'] else 'not done'}")
    if args.output is not None:
        summary = {"seeds": [seeds[0], seeds[-1]], "simulations": s.seeds, "steps": args.steps,
                   "epoch_len": args.epoch_len, "failures": len(outcome.result.failures),
                   "verdict": v,
                   "standings": tournament.frame(s).to_dict(orient="records")}
        args.output.write_text(json.dumps(summary, indent=2, default=float) + "\n")
    return 1 if outcome.result.failures or outcome.result.rejected else 0


if __name__ == "__main__":
    sys.exit(main())
