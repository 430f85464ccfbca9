"""What isolation costs: official scoring in confined worker processes against the same
simulations run in this very process, side by side in one run; with and without the
bubblewrap sandbox; and how fast a quietly exiting or hung strategy is found.

    python benchmarks/bench_isolation.py                      # 40 sims x 10 000 steps
    python benchmarks/bench_isolation.py --simulations 100 --repeats 2

Both sides score fixed_30bps + adaptive_fee (reference profile) on the same seeds, generate
the same tapes (no tape cache on either side) and produce identical records (checked). The
in-process baseline is what scoring cost before isolation: strategies loaded here, called
directly by the core, one simulation after another. The isolated side is `score()` with one
worker: the checks before scoring (a confined child), a worker process with address-space
and CPU limits and a clean environment, a fork per simulation, every strategy call through
the call guard, results streamed back; once without the sandbox (`sandbox="off"`), once in
bubblewrap (`"require"`), and in bubblewrap with the results journal. The ratio is isolated
time / baseline time, so 1.10 means isolation costs 10% of throughput; "bwrap / no sandbox"
is the sandbox's own cost. Runs alternate to share the noise of a busy machine; the best of
`--repeats` is reported for each. Then: the per-simulation overhead on tiny simulations
(fork, messages), and the time from a simulation's start to the report of its failure for
tests/fixtures/hostile/quiet_exit.rs (`_exit(0)` at step 50) and spin_forever.rs (a call
that never returns; call timeout 1 s), with 1 and 4 workers.
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
    from propamm_jax.outputs.results import sim_record
    from propamm_jax.tape.cache import cached_tape

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
    from propamm_jax.official.scoring import score

    files = [STRATEGIES / "fixed_30bps.rs", STRATEGIES / "adaptive_fee.rs"]
    libraries = [str(resolve_library(f)) for f in files]
    labels = [f.name for f in files]
    config = SimConfig(steps=args.steps, epoch_len=args.epoch_len)
    seeds = list(range(args.simulations))
    runs = {"isolated, no sandbox": ("off", False), "isolated, bwrap": ("require", False),
            "isolated, bwrap + journal": ("require", True)}
    best = {"in-process": float("inf"), **{name: float("inf") for name in runs}}
    outputs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            t = time.perf_counter()
            outputs["in-process"] = in_process(libraries, labels, config, seeds)
            best["in-process"] = min(best["in-process"], time.perf_counter() - t)
            for name, (sandbox, journal) in runs.items():
                t = time.perf_counter()
                result = score(files, config=config, seeds=seeds, workers=1, progress=False,
                               journal=Path(tmp) / f"j{r}.jsonl" if journal else None,
                               sandbox=sandbox)
                best[name] = min(best[name], time.perf_counter() - t)
                assert not result.failures
                outputs[name] = result.results.sims
    startup = {mode: _timed(lambda m=mode: score(files, config=SimConfig(steps=10, epoch_len=10),
                                                 seeds=[0], workers=1, progress=False,
                                                 sandbox=m)) for mode in ("off", "require")}
    same = all(out == outputs["in-process"] for out in outputs.values())
    base = best["in-process"]
    print(f"{args.simulations} simulations x {args.steps} steps, fixed_30bps + adaptive_fee, "
          f"reference profile, 1 process each, best of {args.repeats}")
    print(f"{'run':<28}{'seconds':>9}{'sims/s':>9}{'ratio':>8}")
    for name, seconds in best.items():
        print(f"{name:<28}{seconds:>9.2f}{args.simulations / seconds:>9.2f}{seconds / base:>8.3f}")
    print(f"sandbox's own cost, bwrap / no sandbox: "
          f"{best['isolated, bwrap'] / best['isolated, no sandbox']:.3f}")
    for mode, seconds in startup.items():
        print(f"fixed start-up of an isolated run, sandbox {mode} (1 simulation of 10 steps): "
              f"{seconds:.2f} s")
    print(f"records identical on all four: {same}")
    _overhead(files, libraries, labels)
    _fork_cost(libraries)
    _start_cost()
    _detection()
    return 0 if same else 1


def _timed(work) -> float:
    t = time.perf_counter()
    work()
    return time.perf_counter() - t


def _overhead(files, libraries, labels, n: int = 200) -> None:
    """Per-simulation cost that is not simulation: 200 simulations of 10 steps."""
    from propamm_jax.config import SimConfig
    from propamm_jax.official.scoring import score

    tiny = SimConfig(steps=10, epoch_len=10)
    seeds = list(range(n))
    base = _timed(lambda: in_process(libraries, labels, tiny, seeds))
    for mode in ("off", "require"):
        total = _timed(lambda: score(files, config=tiny, seeds=seeds, workers=1, progress=False,
                                     sandbox=mode))
        one = _timed(lambda: score(files, config=tiny, seeds=[0], workers=1, progress=False,
                                   sandbox=mode))
        print(f"per-simulation overhead (fork, messages), sandbox {mode}: "
              f"{1000 * (total - one - base) / (n - 1):.2f} ms")


def _fork_cost(libraries: list[str], n: int = 40) -> None:
    """The fork per simulation alone: the same 10-step simulations called directly and
    through `worker.run_forked` in this process (wall time, and CPU time of parent and
    children together, which the machine's load does not inflate)."""
    import mmap
    import resource

    import numpy as np

    from propamm_jax.config import SimConfig
    from propamm_jax.native.bridge import NativeStrategy, guarded_pools, run_core
    from propamm_jax.tape.cache import cached_tape
    from propamm_jax.official.worker import run_forked

    def cpu() -> float:
        own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    cell = mmap.mmap(-1, 4096)
    pools = guarded_pools([NativeStrategy(Path(p)) for p in libraries],
                          np.frombuffer(cell, dtype=np.uint32, count=2).ctypes.data)
    config = SimConfig(steps=10, epoch_len=10)
    tape = cached_tape(list(range(n)), config.steps)
    fair = tape.fair_prices(config.initial_price)

    def simulate(row: int) -> list:
        lo, hi = tape.order_start[row, 0], tape.order_start[row, -1]
        run = run_core(config, "reference", pools, int(tape.params.norm_fee_bps[row]),
                       float(tape.params.norm_liquidity_mult[row]), fair[row],
                       tape.order_start[row] - lo, tape.order_is_buy[row, lo:hi],
                       tape.order_size[row, lo:hi])
        return [run.final_edge.tolist(), None]

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        costs = []
        for forked in (False, True):
            t, c = time.perf_counter(), cpu()
            for row in range(n):
                if forked:
                    assert run_forked(lambda r=row: simulate(r), cell, 5.0, 300.0)[0] == "done"
                else:
                    simulate(row)
            costs.append(((time.perf_counter() - t) / n, (cpu() - c) / n))
        os.chdir(ROOT)
    (wall0, cpu0), (wall1, cpu1) = costs
    print(f"fork per simulation: {1000 * (wall1 - wall0):.2f} ms wall, "
          f"{1000 * (cpu1 - cpu0):.2f} ms CPU ({n} simulations of 10 steps, direct vs forked)")


def _start_cost(n: int = 10) -> None:
    """What bwrap adds to starting a worker's interpreter (best of `n` starts each)."""
    import subprocess

    from propamm_jax.official.sandbox import bwrap_command, worker_env

    def best(command: list[str]) -> float:
        return min(_timed(lambda: subprocess.run(command, check=True)) for _ in range(n))

    plain = [sys.executable, "-I", "-c", "pass"]
    bare, boxed = best(plain), best(bwrap_command([], worker_env()) + plain)
    print(f"interpreter start: {1000 * bare:.0f} ms plain, {1000 * boxed:.0f} ms in bwrap "
          f"(+{1000 * (boxed - bare):.0f} ms once per worker)")


def _detection() -> None:
    """Seconds from the start of a failing simulation to its failure report."""
    from propamm_jax.config import SimConfig
    from propamm_jax.native.build import compile_rust, resolve_library
    from propamm_jax.official.scoring import ScoreRequest, _native_libraries, run_simulations

    good = STRATEGIES / "fixed_30bps.rs"
    hostile = ROOT / "tests" / "fixtures" / "hostile"
    for name, call_timeout in (("quiet_exit", 5.0), ("spin_forever", 1.0)):
        library = compile_rust(hostile / f"{name}.rs")  # as a prebuilt .so: no policy
        for workers in (1, 4):
            request = ScoreRequest((str(library), str(resolve_library(good))),
                                   (f"{name}.rs", good.name), SimConfig(steps=200, epoch_len=100),
                                   "reference", native=_native_libraries(),
                                   call_timeout=call_timeout)
            started: dict[int, float] = {}
            found: dict[int, float] = {}
            run_simulations(request, [3] * (2 * workers), workers, lambda *a: None,
                            on_failure=lambda f: found.setdefault(len(found), time.monotonic()),
                            on_start=lambda i: started.setdefault(i, time.monotonic()),
                            sandbox="require")
            latencies = [t - s for t, s in zip(sorted(found.values()), sorted(started.values()))]
            print(f"{name} (call timeout {call_timeout:g} s), {workers} worker(s): failure "
                  f"reported {min(latencies):.3f}-{max(latencies):.3f} s after the simulation "
                  f"started ({len(latencies)} simulations)")


if __name__ == "__main__":
    sys.exit(main())
