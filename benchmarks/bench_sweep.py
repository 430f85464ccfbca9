"""Benchmark: a fee sweep against the same simulations run as one `simulate` batch.

The sweep runs `--points` fees x `--seeds` seeds (cpamm swept against a fixed cpamm:65 and the
normalizer). The baseline is `simulate` of cpamm:50 + cpamm:65 over the same seeds, each
repeated `--points` times in the sweep's seed-major order and batch size, so both run the
same event sequences in the same batches; only the per-simulation fees differ. Tapes are
cached on disk before timing (both read them from the cache). Each side is timed twice,
alternating, compilation included (both compile one program per distinct event length); the
ratio sweep / simulate is printed per round.

    python benchmarks/bench_sweep.py                         # 20 x 200, 10 000 steps
    python benchmarks/bench_sweep.py --steps 2000 --seeds 50 # quicker
"""

from __future__ import annotations

import argparse
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--epoch-len", type=int, default=1_000)
    parser.add_argument("--lanes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    from propamm_jax.config import SimConfig
    from propamm_jax.simulation import simulate
    from propamm_jax.sweeps import sweep
    from propamm_jax.tape.cache import cached_tape

    config = SimConfig(steps=args.steps, epoch_len=args.epoch_len)
    seeds = list(range(args.seeds))
    fees = [5.0 * (i + 1) for i in range(args.points)]
    chunk = max(1, args.lanes // args.points)
    repeated = [s for s in seeds for _ in range(args.points)]
    batch = chunk * args.points
    print(f"device: {jax.devices()[0].device_kind}, {args.points} fees x {args.seeds} seeds x "
          f"{args.steps} steps = {len(repeated)} simulations, batches of {batch}", flush=True)
    cached_tape(seeds, config.steps)  # warm the disk cache for both sides

    def run_sweep():
        return sweep("cpamm", {"fee_bps": fees}, config, seeds, opponents=["cpamm:65"],
                     lanes=args.lanes, progress=False)

    def run_simulate():
        return simulate(["cpamm:50", "cpamm:65"], config, repeated, batch_size=batch,
                        progress=False)

    for r in range(1, args.rounds + 1):
        t0 = time.perf_counter()
        frame = run_sweep()
        t_sweep = time.perf_counter() - t0
        t0 = time.perf_counter()
        results = run_simulate()
        t_sim = time.perf_counter() - t0
        assert len(frame) == len(results.sims) == len(repeated)
        print(f"round {r}: sweep {t_sweep:.2f} s, simulate {t_sim:.2f} s, "
              f"ratio sweep/simulate {t_sweep / t_sim:.3f}", flush=True)
    # sanity: the sweep's 50 bps point equals simulate's cpamm:50 on the same seed
    point = fees.index(50.0) if 50.0 in fees else None
    if point is not None:
        mine = frame.xs(point)["edge"].to_numpy()
        theirs = np.array([s["strategies"][0]["final_edge"] for s in results.sims])[::args.points]
        print(f"check: 50 bps point vs simulate, max |diff| {np.max(np.abs(mine - theirs)):.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
