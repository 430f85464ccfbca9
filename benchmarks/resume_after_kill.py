"""Kill `propamm score` with SIGKILL at a random point, resume it, compare with a run never
interrupted: every field of every simulation must be equal.

    python benchmarks/resume_after_kill.py --tries 5 --simulations 60 --steps 2000

Prints one line per try (when it was killed, how many simulations the journal held, whether
the resumed results are identical) and the final "identical in K of N tries".
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ROOT / "tests" / "fixtures" / "strategies"


def score_cmd(args, output: Path, journal: Path, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "propamm_jax.cli", "score",
           str(STRATEGIES / "fixed_30bps.rs"), str(STRATEGIES / "adaptive_fee.rs"),
           "--simulations", str(args.simulations), "--steps", str(args.steps),
           "--epoch-len", str(args.epoch_len), "--workers", str(args.workers),
           "--trace-seeds", "1", "--no-progress", "--output", str(output),
           "--journal", str(journal)]
    return cmd + (["--resume"] if resume else [])


def journal_lines(path: Path) -> int:
    try:
        return max(0, path.read_bytes().count(b"\n") - 1)
    except FileNotFoundError:
        return 0


def first_difference(a, b, path="") -> str | None:
    if isinstance(b, dict):
        if not isinstance(a, dict) or set(a) != set(b):
            return f"{path}: keys differ"
        return next((d for k in b if (d := first_difference(a[k], b[k], f"{path}.{k}"))), None)
    if isinstance(b, list):
        if not isinstance(a, list) or len(a) != len(b):
            return f"{path}: lengths differ"
        return next((d for i, (x, y) in enumerate(zip(a, b))
                     if (d := first_difference(x, y, f"{path}[{i}]"))), None)
    return None if (type(a) is type(b) and a == b) else f"{path}: {a!r} != {b!r}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--simulations", type=int, default=60)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--epoch-len", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None, help="seed of the kill times")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        ref_out = tmp / "uninterrupted.json"
        subprocess.run(score_cmd(args, ref_out, tmp / "ref.jsonl", False), check=True,
                       capture_output=True)
        full = time.perf_counter() - started
        reference = json.loads(ref_out.read_text())
        print(f"uninterrupted: {args.simulations} simulations in {full:.1f} s")
        identical = 0
        for t in range(args.tries):
            out, journal = tmp / f"try{t}.json", tmp / f"try{t}.jsonl"
            # A random point of the scoring phase: once the journal holds a random number of
            # simulations (1..N-1), plus a random fraction of one simulation's time.
            target = rng.randint(1, args.simulations - 1)
            t0 = time.perf_counter()
            proc = subprocess.Popen(score_cmd(args, out, journal, False),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while proc.poll() is None and journal_lines(journal) < target:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, full / args.simulations))
            delay = time.perf_counter() - t0
            killed = proc.poll() is None
            if killed:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            held = journal_lines(journal)
            resumed = subprocess.run(score_cmd(args, out, journal, True), capture_output=True,
                                     text=True)
            diff = (f"exit code {resumed.returncode}: {resumed.stderr.strip()}"
                    if resumed.returncode else first_difference(json.loads(out.read_text()),
                                                                reference))
            identical += diff is None
            print(f"try {t + 1}: SIGKILL after {delay:.1f} s ({'killed' if killed else 'had finished'}),"
                  f" journal held {held}/{args.simulations}; resumed results "
                  f"{'identical' if diff is None else 'DIFFER: ' + diff}")
        print(f"identical in {identical} of {args.tries} tries")
        return 0 if identical == args.tries else 1


if __name__ == "__main__":
    sys.exit(main())
