"""The queue never loses a job: a worker SIGKILLed mid-job, and the whole server killed and
started again, still finish the job, resumed from its journal, with results identical to an
uninterrupted `propamm score`."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from server_util import (STARTERS, TINY, Server, add_team, postgres, propamm,  # noqa: E402,F401
                         shared_cache, source, wait_job)

CONFIG = {"simulations": 6, "steps": 2000, "epoch_len": 500, "opponents": ["undercut"]}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    shared_cache()
    folder = tmp_path_factory.mktemp("cli")
    mine = folder / "mine.rs"
    mine.write_text(source("vol_scaled")["text"])
    out = folder / "results.json"
    res = propamm("score", str(mine), str(STARTERS / "undercut.rs"), "--simulations", "6",
                  "--steps", "2000", "--epoch-len", "500", "--no-progress", "--no-journal",
                  "--workers", "1", "--output", str(out), timeout=600)
    assert res.returncode == 0, res.stderr
    return json.loads(out.read_text())


def wait_progress(client, job_id, headers, at_least: int, timeout: float = 240) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/api/jobs/{job_id}", headers=headers).json()
        if job["progress"]["done"] >= at_least or job["state"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"no progress: {job}")


def submit(client, headers) -> str:
    r = client.post("/api/jobs", headers=headers, json={
        "kind": "score", "sources": [source("vol_scaled", "mine.rs")], "config": CONFIG})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def check_finished(client, job_id, headers, uninterrupted) -> list[str]:
    job = wait_job(client, job_id, headers, timeout=300)
    assert job["state"] == "done", job
    assert job["attempts"] >= 2
    assert client.get(f"/api/jobs/{job_id}/results", headers=headers).json() == uninterrupted
    return [x["line"] for x in client.get(f"/api/jobs/{job_id}/logs", headers=headers).json()["lines"]]


def test_worker_killed_mid_job_resumes_from_its_journal(tmp_path, uninterrupted):
    shared_cache()
    data = tmp_path / "data"
    data.mkdir()
    headers = {"Authorization": f"Bearer {add_team(data, 'alpha')}"}
    server = Server(data, workers=1, lease=2)
    try:
        client = httpx.Client(base_url=server.url, timeout=30)
        job_id = submit(client, headers)
        job = wait_progress(client, job_id, headers, 2)
        assert job["state"] == "running", job
        [pid] = server.worker_pids()
        os.kill(pid, signal.SIGKILL)
        lines = check_finished(client, job_id, headers, uninterrupted)
        assert any("expired; retried" in line for line in lines), lines
        resumed = [line for line in lines if line.startswith("resumed ")]
        assert resumed and int(resumed[0].split()[1]) >= 2, lines
        assert server.worker_pids() and server.worker_pids() != [pid]   # replaced
    finally:
        server.stop()


def test_server_killed_and_restarted_finishes_the_job(tmp_path, uninterrupted):
    shared_cache()
    data = tmp_path / "data"
    data.mkdir()
    headers = {"Authorization": f"Bearer {add_team(data, 'alpha')}"}
    server = Server(data, workers=1, lease=2)
    try:
        client = httpx.Client(base_url=server.url, timeout=30)
        job_id = submit(client, headers)
        assert wait_progress(client, job_id, headers, 1)["state"] == "running"
    finally:
        server.stop(signal.SIGKILL)
    server = Server(data, workers=1, lease=2)
    try:
        client = httpx.Client(base_url=server.url, timeout=30)
        lines = check_finished(client, job_id, headers, uninterrupted)
        assert any(line.startswith("resumed ") for line in lines), lines
    finally:
        server.stop()


def test_two_workers_share_a_postgresql_queue(tmp_path, postgres):
    """`serve --db postgresql://...` with two workers: every job runs exactly once."""
    shared_cache()
    url = postgres()
    data = tmp_path / "data"
    data.mkdir()
    headers = {"Authorization": f"Bearer {add_team(data, 'alpha', db=url)}"}
    server = Server(data, workers=2, db=url)
    try:
        client = httpx.Client(base_url=server.url, timeout=30)
        ids = []
        for k in range(4):
            r = client.post("/api/jobs", headers=headers, json={
                "kind": "score", "sources": [source("vol_scaled", "mine.rs")],
                "config": {**TINY, "seed_start": k}})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        jobs = [wait_job(client, job_id, headers) for job_id in ids]
        assert [(j["state"], j["attempts"]) for j in jobs] == [("done", 1)] * 4
        seeds = [client.get(f"/api/jobs/{i}/results", headers=headers).json()["sims"][0]["seed"]
                 for i in ids]
        assert seeds == [0, 1, 2, 3]
        owners = set()
        for job_id in ids:
            lines = client.get(f"/api/jobs/{job_id}/logs", headers=headers).json()["lines"]
            owners.update(x["line"].split()[2] for x in lines if x["line"].startswith("running on"))
        assert len(owners) == 2, owners      # both workers took jobs
    finally:
        server.stop()
