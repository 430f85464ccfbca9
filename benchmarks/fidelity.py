"""Fidelity of the fast path against official scoring, the issue's acceptance measurement.

Fast-path `cpamm:30` + `cpamm:65` against official scoring of `fixed_30bps.rs` +
`fixed_65bps.rs` on the same seeds, in each profile. Prints, per strategy and for the
normalizer, the mean over seeds of |edge_fast - edge_official| / max(|edge_official|, 1), the
share of seeds where both rank the strategies the same, and the worst seeds; then ("of
means") the relative difference of the mean edges over all seeds.

    python benchmarks/fidelity.py                      # seeds 0..199, both profiles
    python benchmarks/fidelity.py --seeds 50 --profile corrected

Official results are kept in `<cache>/fidelity/` (keyed by profile, seeds, steps, epoch) so a
rerun after a fast-path change only re-runs the fast path; `--fresh` ignores them.

`--noise-floor` adds a row: the fast path against itself with official-like arbitrage noise.
The official corrected arbitrage is a golden-section search on a profit quantised to 1e-9 Y;
near its optimum the profit is flat to within that quantum over +/- w = sqrt(1e-9 / c)
(c = half the profit's curvature), so the search stops anywhere in about +/- 7 w, unbiased
(measured on random states). Capital reweighting (softmax with a temperature of ~1 Y of
score) amplifies such differences chaotically, so this row shows how far two engines that
differ only by that noise land apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ROOT / "tests" / "fixtures" / "strategies"


def edges(results) -> tuple[np.ndarray, np.ndarray]:
    """[sims, strategies] final edges and [sims] normalizer edges, in seed order."""
    sims = sorted(results.sims, key=lambda s: s["seed"])
    return (np.array([[st["final_edge"] for st in s["strategies"]] for s in sims]),
            np.array([s["normalizer_edge"] for s in sims]))


def compare(fast, official) -> dict:
    fe, fn = edges(fast)
    oe, on = edges(official)
    rel = lambda f, o: np.abs(f - o) / np.maximum(np.abs(o), 1.0)  # noqa: E731
    per_strategy = rel(fe, oe)
    norm = rel(fn, on)
    same_rank = np.all(np.argsort(-fe, axis=1) == np.argsort(-oe, axis=1), axis=1)
    worst = np.argsort(-per_strategy.max(axis=1))[:5]
    seeds = sorted(s["seed"] for s in official.sims)
    mean_gap = lambda f, o: abs(f.mean() - o.mean()) / max(abs(o.mean()), 1.0)  # noqa: E731
    return {"mean": list(per_strategy.mean(axis=0)) + [norm.mean()],
            "mean_edge": [mean_gap(fe[:, k], oe[:, k]) for k in range(fe.shape[1])]
            + [mean_gap(fn, on)],
            "same_rank": same_rank.mean(),
            "worst": [(seeds[i], per_strategy[i].max()) for i in worst]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--epoch-len", type=int, default=1_000)
    parser.add_argument("--profile", choices=["reference", "corrected", "both"], default="both")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--fresh", action="store_true", help="re-run official scoring")
    parser.add_argument("--noise-floor", action="store_true",
                        help="also compare the fast path with itself plus arbitrage noise")
    args = parser.parse_args()

    import jax

    jax.config.update("jax_enable_x64", True)
    from propamm_jax.config import SimConfig
    from propamm_jax.native.build import cache_dir
    from propamm_jax.outputs.results import Results
    from propamm_jax.official.scoring import score
    from propamm_jax.simulation import simulate

    config = SimConfig(steps=args.steps, epoch_len=args.epoch_len)
    profiles = ["reference", "corrected"] if args.profile == "both" else [args.profile]
    files = [STRATEGIES / "fixed_30bps.rs", STRATEGIES / "fixed_65bps.rs"]
    print(f"seeds 0..{args.seeds - 1}, {args.steps} steps, epoch {args.epoch_len}")
    print(f"{'profile':10s} {'cpamm:30':>9s} {'cpamm:65':>9s} {'normalizer':>10s} "
          f"{'same rank':>9s}  worst seeds (max relative difference)")
    for profile in profiles:
        stored = (cache_dir() / "fidelity" /
                  f"official_{profile}_{args.seeds}_{args.steps}_{args.epoch_len}.json")
        if stored.exists() and not args.fresh:
            official = Results.load(stored)
        else:
            official = score(files, config=config, simulations=args.seeds, profile=profile,
                             workers=args.workers).results
            stored.parent.mkdir(parents=True, exist_ok=True)
            official.save(stored)
        fast = simulate(["cpamm:30", "cpamm:65"], config, range(args.seeds), profile=profile)
        c = compare(fast, official)
        worst = ", ".join(f"{seed}: {d:.2%}" for seed, d in c["worst"])
        print(f"{profile:10s} {c['mean'][0]:9.3%} {c['mean'][1]:9.3%} {c['mean'][2]:10.3%} "
              f"{c['same_rank']:9.1%}  {worst}", flush=True)
        m = c["mean_edge"]
        print(f"{'  of means':10s} {m[0]:9.3%} {m[1]:9.3%} {m[2]:10.3%}  (|mean fast - mean "
              "official| / |mean official|)", flush=True)
        if args.noise_floor and profile == "corrected":
            noisy = with_arbitrage_noise(lambda: simulate(
                ["cpamm:30", "cpamm:65"], config, range(args.seeds), profile=profile))
            c = compare(noisy, fast)
            print(f"{'  floor':10s} {c['mean'][0]:9.3%} {c['mean'][1]:9.3%} {c['mean'][2]:10.3%} "
                  f"{c['same_rank']:9.1%}  (fast + official-like arbitrage noise vs fast)",
                  flush=True)
    return 0


def with_arbitrage_noise(run):
    """Runs `run()` with the fast path's arbitrage moved off its optimum by a deterministic
    pseudo-random u * 7 w, u in [-1, 1] (see the module doc)."""
    import jax.numpy as jnp

    from propamm_jax.fast import solvers as cf

    exact = cf.optimal_arbitrage

    def noisy(rx, ry, fair, gamma_buy, gamma_sell, max_in_frac=0.9):
        buy, a_in, a_out, profit = exact(rx, ry, fair, gamma_buy, gamma_sell, max_in_frac)
        g = jnp.where(buy, gamma_buy, gamma_sell)
        r_in, r_out = jnp.where(buy, ry, rx), jnp.where(buy, rx, ry)
        value = jnp.where(buy, fair, 1.0)
        curvature = value * g * g * r_out * r_in / (r_in + g * a_in) ** 3
        w = jnp.sqrt(1e-9 / curvature)
        u = jnp.sin(fair * 1e6 + rx * 7.0) * 43758.5453
        u = 2.0 * (u - jnp.floor(u)) - 1.0
        moved = jnp.clip(a_in + 7.0 * w * u, 0.0, max_in_frac * r_in)
        a_in2 = jnp.where(a_in > 0.0, moved, a_in)
        out = cf.cpamm_out(a_in2, r_in, r_out, g)
        profit2 = jnp.where(buy, fair * out - a_in2, out - fair * a_in2)
        return buy, a_in2, out, jnp.where(a_in > 0.0, profit2, profit)

    import os

    cf.optimal_arbitrage = noisy
    # The stored-program cache is keyed by the package's source, which this patch leaves
    # alone: compile the patched program instead of loading the exact one.
    previous = os.environ.get("PROPAMM_NO_PROGRAM_CACHE")
    os.environ["PROPAMM_NO_PROGRAM_CACHE"] = "1"
    try:
        return run()
    finally:
        cf.optimal_arbitrage = exact
        if previous is None:
            os.environ.pop("PROPAMM_NO_PROGRAM_CACHE", None)
        else:
            os.environ["PROPAMM_NO_PROGRAM_CACHE"] = previous


if __name__ == "__main__":
    sys.exit(main())
