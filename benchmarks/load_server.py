"""Load on the competition server over loopback: many teams submit jobs at once while they
poll their jobs' status; every job must finish and none may be lost.

    python benchmarks/load_server.py --teams 10 --jobs-per-team 5 --workers 2

Prints the wall time, how many jobs finished / failed / were lost, the job durations and
the latency of status requests (GET /api/jobs/ID) made during the run: p50, p99, max.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from server_util import Server, add_team, shared_cache, source  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def team_run(url: str, token: str, jobs: int, config: dict, poll: float, latencies: list[float],
             outcome: dict, start: threading.Barrier, lock: threading.Lock) -> None:
    """Submits `jobs` jobs at the barrier, then polls them until each is done or failed."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=60) as client:
        start.wait()
        ids = []
        for k in range(jobs):
            r = client.post("/api/jobs", headers=headers, json={
                "kind": "score", "sources": [source("vol_scaled", "mine.rs")],
                "config": {**config, "seed_start": 1000 * k}})
            r.raise_for_status()
            ids.append(r.json()["id"])
        pending = set(ids)
        while pending:
            for job_id in list(pending):
                t0 = time.perf_counter()
                r = client.get(f"/api/jobs/{job_id}", headers=headers)
                elapsed = time.perf_counter() - t0
                job = r.json()
                with lock:
                    latencies.append(elapsed)
                if job["state"] in ("done", "failed"):
                    pending.discard(job_id)
                    with lock:
                        outcome[job_id] = job
            time.sleep(poll)


def idle_latencies(url: str, token: str, outcome: dict, requests: int = 300) -> list[float]:
    """Status requests of one team on an idle server: the baseline for the figures above."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=60) as client:
        ids = [j for j in outcome if client.get(f"/api/jobs/{j}", headers=headers).status_code == 200]
        out = []
        for k in range(requests):
            t0 = time.perf_counter()
            client.get(f"/api/jobs/{ids[k % len(ids)]}", headers=headers)
            out.append(time.perf_counter() - t0)
            time.sleep(0.05)   # within the team's rate limit
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--teams", type=int, default=10)
    p.add_argument("--jobs-per-team", type=int, default=5)
    p.add_argument("--workers", type=int, default=2, help="server worker processes")
    p.add_argument("--simulations", type=int, default=2)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--db", default=None, help="database URL (default: SQLite in a temp dir)")
    p.add_argument("--poll", type=float, default=0.5,
                   help="seconds each team waits between rounds of status requests")
    args = p.parse_args()
    shared_cache()
    data = Path(tempfile.mkdtemp(prefix="propamm-load-")) / "data"
    data.mkdir()
    tokens = [add_team(data, f"team{i}", db=args.db) for i in range(args.teams)]
    server = Server(data, workers=args.workers, db=args.db)
    config = {"simulations": args.simulations, "steps": args.steps, "epoch_len": 100}
    latencies: list[float] = []
    outcome: dict = {}
    lock = threading.Lock()
    start = threading.Barrier(args.teams)
    threads = [threading.Thread(target=team_run, args=(server.url, t, args.jobs_per_team, config,
                                                       args.poll, latencies, outcome, start, lock))
               for t in tokens]
    t0 = time.perf_counter()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        idle = idle_latencies(server.url, tokens[0], outcome)
    finally:
        server.stop()
    submitted = args.teams * args.jobs_per_team
    done = sum(1 for j in outcome.values() if j["state"] == "done")
    failed = [j for j in outcome.values() if j["state"] == "failed"]
    durations = [j["timings"]["finished"] - j["timings"]["created"] for j in outcome.values()]
    print(f"{submitted} jobs from {args.teams} teams ({args.simulations} simulations x "
          f"{args.steps} steps each), {args.workers} workers: wall {wall:.1f} s")
    print(f"finished: {done} done, {len(failed)} failed, {submitted - len(outcome)} lost")
    for j in failed[:5]:
        print(f"  failed {j['id']}: {j['error']}")
    print(f"job time from submission to finish: median {statistics.median(durations):.1f} s, "
          f"max {max(durations):.1f} s")
    ms = [x * 1000 for x in latencies]
    print(f"status requests during the run: {len(ms)}, latency p50 {percentile(ms, 0.5):.1f} ms, "
          f"p99 {percentile(ms, 0.99):.1f} ms, max {max(ms):.1f} ms")
    base = [x * 1000 for x in idle]
    print(f"baseline, the same requests once the queue is empty: p50 "
          f"{percentile(base, 0.5):.1f} ms, p99 {percentile(base, 0.99):.1f} ms "
          f"(under load: {percentile(ms, 0.5) / percentile(base, 0.5):.1f}x p50)")
    return 0 if done == submitted else 1


if __name__ == "__main__":
    sys.exit(main())
