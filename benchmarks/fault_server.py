"""Faults on the competition server: SIGKILL a worker that is running a job, several times
at random points, then kill the whole server and start it again; every job must finish with
results identical to an uninterrupted `score` of the same inputs.

    python benchmarks/fault_server.py --kills 5 --jobs 5 --simulations 12 --steps 6000

Prints one line per kill (when, which job, how far it had come), then per job: attempts,
simulations read back from its journal, and whether its results are identical.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from server_util import STARTERS, Server, add_team, shared_cache, source, wait_job  # noqa: E402


def uninterrupted(config: dict, folder: Path, seed_start: int) -> dict:
    """The library's `score` (what `propamm score` runs) on the job's inputs."""
    from propamm_jax.config import SimConfig
    from propamm_jax.official.scoring import score

    mine = folder / "mine.rs"
    mine.write_text(source("vol_scaled")["text"])
    result = score([mine, STARTERS / "undercut.rs"],
                   config=SimConfig(steps=config["steps"], epoch_len=config["epoch_len"]),
                   simulations=config["simulations"], seed_start=seed_start, progress=False)
    return result.results.to_json()


def running_job(client, headers, ids, killed: dict, timeout: float = 300) -> dict | None:
    """A running job whose current attempt has finished a simulation that no earlier attempt
    had (so a kill interrupts real work of a live worker, and the retry has something new to
    read back). `killed`: job id -> simulations done when its worker was last killed."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        jobs = [client.get(f"/api/jobs/{job_id}", headers=headers).json() for job_id in ids]
        for job in jobs:
            done, total = job["progress"]["done"], job["progress"]["total"]
            if job["state"] == "running" and killed.get(job["id"], 0) < done < total:
                return job
        if all(job["state"] in ("done", "failed") for job in jobs):
            return None
        time.sleep(0.1)
    return None


def main() -> int:
    import httpx

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--kills", type=int, default=5, help="worker SIGKILLs")
    p.add_argument("--jobs", type=int, default=5)
    p.add_argument("--simulations", type=int, default=12)
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--seed", type=int, default=1, help="random seed of the kill times")
    args = p.parse_args()
    rng = random.Random(args.seed)
    shared_cache()
    root = Path(tempfile.mkdtemp(prefix="propamm-faults-"))
    data = root / "data"
    data.mkdir()
    headers = {"Authorization": f"Bearer {add_team(data, 'alpha')}"}
    config = {"simulations": args.simulations, "steps": args.steps, "epoch_len": 500,
              "opponents": ["undercut"]}
    server = Server(data, workers=1, lease=2, extra=("--rate", "1000"))
    client = httpx.Client(base_url=server.url, timeout=60)
    try:
        ids, kills = interrupt(client, server, headers, config, args, rng)
    finally:
        server.stop(signal.SIGKILL)
    print("server killed (SIGKILL to its process group); starting it again", flush=True)
    server = Server(data, workers=1, lease=2, extra=("--rate", "1000"))
    client = httpx.Client(base_url=server.url, timeout=60)
    identical = 0
    try:
        for k, job_id in enumerate(ids):
            job = wait_job(client, job_id, headers, timeout=900)
            lines = [x["line"] for x in client.get(f"/api/jobs/{job_id}/logs",
                                                   headers=headers).json()["lines"]]
            resumed = sum(int(line.split()[1]) for line in lines if line.startswith("resumed "))
            same = (job["state"] == "done" and client.get(f"/api/jobs/{job_id}/results",
                    headers=headers).json() == uninterrupted(config, root, 100 * k))
            identical += same
            print(f"job {job_id[:8]}: {job['state']}, {job['attempts']} attempts, the last one "
                  f"read back {resumed} simulations from its journal, identical: {same}")
    finally:
        server.stop()
    print(f"{kills} worker kills + 1 server restart: {identical} of {len(ids)} jobs finished "
          "identical to an uninterrupted run, 0 lost" if identical == len(ids) else
          f"{kills} kills: only {identical} of {len(ids)} jobs identical")
    return 0 if identical == len(ids) else 1


def interrupt(client, server, headers, config, args, rng) -> tuple[list[str], int]:
    """Submits the jobs, SIGKILLs the worker `args.kills` times at random points of running
    jobs, and returns the job ids and the number of kills (the caller kills the server)."""
    ids = []
    for k in range(args.jobs):
        r = client.post("/api/jobs", headers=headers, json={
            "kind": "score", "sources": [source("vol_scaled", "mine.rs")],
            "config": {**config, "seed_start": 100 * k}})
        r.raise_for_status()
        ids.append(r.json()["id"])
    kills = 0
    killed: dict[str, int] = {}
    t0 = time.time()
    while kills < args.kills and time.time() - t0 < 900:
        job = running_job(client, headers, ids, killed)
        time.sleep(rng.uniform(0.0, 1.5))     # a random point within the job's work
        pids = server.worker_pids()
        if job is None:
            break       # every job finished: fewer kills than asked (printed below)
        if not pids:
            continue
        os.kill(pids[0], signal.SIGKILL)
        kills += 1
        killed[job["id"]] = job["progress"]["done"]
        print(f"kill {kills}: t={time.time() - t0:.1f} s, worker {pids[0]}; chosen while job "
              f"{job['id'][:8]} ran at {job['progress']['done']}/{job['progress']['total']}",
              flush=True)
    running_job(client, headers, ids, killed)
    time.sleep(rng.uniform(0.0, 1.5))   # the server is killed at a random point too
    return ids, kills


if __name__ == "__main__":
    sys.exit(main())
