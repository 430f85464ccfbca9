"""What `--ray` costs on one machine, and whether a killed Ray worker changes any result.

    python benchmarks/bench_ray.py                       # score 200 + simulate 4000, 2 rounds
    python benchmarks/bench_ray.py --repeats 3
    python benchmarks/bench_ray.py --faults 5            # only the fault runs

Starts a local Ray cluster (`tests/ray_cluster.py`: `ray start --head`, 2 CPUs by default,
loopback, a temp dir; `--nodes 2` splits them over two nodes) and times whole `propamm`
commands side by side, alternating: `score` (fixed_30bps + adaptive_fee, 10 000 steps,
reference profile) with `--workers 2` against the same with `--ray ADDRESS`, and `simulate`
(cpamm:30 + cpamm:65, 10 000 steps) locally (2 XLA devices) against `--ray`. Each pair's
results files must be identical byte for byte; the ratio is ray time / local time. One
untimed warm-up of each side first (strategies built, tapes and programs cached).

`--faults N`: N `score --ray` runs, each with a Ray worker running a task SIGKILLed at a
random point, each compared byte for byte with the local run.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
STRATEGIES = ROOT / "tests" / "fixtures" / "strategies"
PROPAMM = str(Path(sys.executable).with_name("propamm"))

from ray_cluster import LocalRayCluster  # noqa: E402


def score_cmd(out: Path, simulations: int) -> list[str]:
    return [PROPAMM, "score", str(STRATEGIES / "fixed_30bps.rs"),
            str(STRATEGIES / "adaptive_fee.rs"), "--simulations", str(simulations),
            "--no-progress", "--no-journal", "--output", str(out)]


def simulate_cmd(out: Path, simulations: int) -> list[str]:
    return [PROPAMM, "simulate", "--pool", "cpamm:30", "--pool", "cpamm:65", "--simulations",
            str(simulations), "--no-progress", "--output", str(out)]


def timed(cmd: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"failed ({run.returncode}): {' '.join(cmd)}\n{run.stderr[-2000:]}")
    return elapsed, run.stderr


def side_by_side(name: str, build, simulations: int, address: str, repeats: int,
                 tmp: Path, warmup: bool) -> list[float]:
    """Local and --ray runs alternating (which goes first alternates too); the ratios."""
    local, ray = tmp / f"{name}_local.json", tmp / f"{name}_ray.json"
    if warmup:
        timed(build(local, simulations) + (["--workers", "2"] if name == "score" else []))
        timed(build(ray, simulations) + ["--ray", address])
    ratios = []
    for r in range(repeats):
        runs = {}
        order = ("local", "ray") if r % 2 == 0 else ("ray", "local")
        for side in order:
            extra = ["--ray", address] if side == "ray" else (
                ["--workers", "2"] if name == "score" else [])
            runs[side] = timed(build(local if side == "local" else ray, simulations) + extra)
        same = local.read_bytes() == ray.read_bytes()
        ratio = runs["ray"][0] / runs["local"][0]
        ratios.append(ratio)
        who = [ln for ln in runs["ray"][1].splitlines() if ln.startswith("ray: ")]
        print(f"{name} {simulations}: round {r + 1}: local {runs['local'][0]:.2f} s, ray "
              f"{runs['ray'][0]:.2f} s, ratio {ratio:.2f}x, results "
              f"{'identical' if same else 'DIFFERENT'}  ({who[-1] if who else 'no ray line'})",
              flush=True)
        if not same:
            raise SystemExit(f"{name}: results differ")
    return ratios


def faults(n: int, simulations: int, cluster: LocalRayCluster, tmp: Path) -> int:
    """Runs with a task's Ray worker SIGKILLed at a random point (10-50% of the local run's
    time) until N runs had a kill; how many of those were identical to the local run."""
    local = tmp / "fault_local.json"
    duration, _ = timed(score_cmd(local, simulations) + ["--workers", "2"])
    ok = killed_runs = attempts = 0
    while killed_runs < n and attempts < 2 * n:
        attempts += 1
        out = tmp / f"fault_{attempts}.json"
        run = subprocess.Popen(score_cmd(out, simulations) + ["--ray", cluster.address],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        delay = random.uniform(0.1, 0.5) * duration
        started = time.monotonic()
        killed, at = None, 0.0
        while run.poll() is None and killed is None:
            victims = cluster.task_workers()
            if victims and time.monotonic() - started >= delay:
                killed, at = random.choice(victims), time.monotonic() - started
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.05)
        _, err = run.communicate()
        same = run.returncode == 0 and out.exists() and out.read_bytes() == local.read_bytes()
        if killed is None:
            print(f"attempt {attempts}: finished before a worker was killed (not counted)")
            continue
        killed_runs += 1
        ok += same
        print(f"fault run {killed_runs}: killed Ray worker {killed} at {at:.1f} s of "
              f"{time.monotonic() - started:.1f} s; exit {run.returncode}; results "
              f"{'identical' if same else 'DIFFERENT'}", flush=True)
        if run.returncode != 0:
            print(err[-1000:])
    print(f"faults: {ok} of {killed_runs} runs with a killed worker identical "
          f"({simulations} simulations each)")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--score-simulations", type=int, default=200)
    parser.add_argument("--simulate-simulations", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the Ray cluster in all")
    parser.add_argument("--nodes", type=int, default=1, help="Ray nodes sharing those CPUs")
    parser.add_argument("--faults", type=int, default=0, help="fault runs only (see above)")
    parser.add_argument("--fault-simulations", type=int, default=60)
    parser.add_argument("--no-warmup", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp, \
            LocalRayCluster(cpus_per_node=args.cpus // args.nodes, nodes=args.nodes) as cluster:
        print(f"Ray cluster at {cluster.address}: {args.nodes} node(s), {args.cpus} CPUs",
              flush=True)
        if args.faults:
            faults(args.faults, args.fault_simulations, cluster, Path(tmp))
            return
        results = {}
        for name, build, n in (("score", score_cmd, args.score_simulations),
                               ("simulate", simulate_cmd, args.simulate_simulations)):
            results[name] = side_by_side(name, build, n, cluster.address, args.repeats,
                                         Path(tmp), not args.no_warmup)
        for name, ratios in results.items():
            print(f"{name}: ray / local = " + ", ".join(f"{r:.2f}x" for r in ratios)
                  + f" (best {min(ratios):.2f}x, target 1.3x)")


if __name__ == "__main__":
    main()
