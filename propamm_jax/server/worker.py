"""A worker: lease a job, run it through the library, record the outcome; repeat.

A heartbeat thread renews the lease (and records progress from the results journal) while
the job runs, so a lease only expires when its worker is gone. A worker can be started on
any machine that reaches the database and shares the data directory
(`propamm worker --db URL --data DIR`); `propamm serve` starts its own.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import traceback
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from propamm_jax.server import db, jobs, queue


def _competition(engine: Engine, competition_id: str | None) -> dict | None:
    if competition_id is None:
        return None
    with engine.connect() as conn:
        row = conn.execute(sa.select(db.competitions)
                           .where(db.competitions.c.id == competition_id)).first()
    return dict(row._mapping) if row else None


def _heartbeat(engine: Engine, lease: queue.Lease, owner: str, data: Path, lease_s: float,
               stop: threading.Event) -> None:
    while not stop.wait(max(0.2, lease_s / 3)):
        try:
            if not queue.renew(engine, lease.job_id, owner, lease_s,
                               jobs.progress(data, lease.job_id)):
                print(f"worker {owner}: lost the lease of job {lease.job_id}", file=sys.stderr)
                return
        except sa.exc.SQLAlchemyError as exc:   # the database is back at the next beat
            print(f"worker {owner}: heartbeat: {str(exc).splitlines()[0]}", file=sys.stderr)


def run_leased(engine: Engine, lease: queue.Lease, owner: str, data: Path, lease_s: float,
               job_workers: int = 1) -> None:
    """Runs one leased job to its end and records the outcome (if the lease is still ours)."""
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(engine, lease, owner, data, lease_s, stop),
                            daemon=True)
    beat.start()
    try:
        outcome = jobs.run_job(data, lease.job_id, lease.kind, lease.sources, lease.config,
                               _competition(engine, lease.competition_id), job_workers)
    except Exception as exc:  # a bug of ours: the team gets one line, the operator the trace
        traceback.print_exc()
        outcome = jobs.Outcome(error=f"internal error: {type(exc).__name__}: "
                                     f"{' '.join(str(exc).split())[:300]}")
    finally:
        stop.set()
        beat.join()
    with engine.begin() as conn:
        for line in outcome.lines:
            queue.log(conn, lease.job_id, line)
    queue.finish(engine, lease.job_id, owner, error=outcome.error, summary=outcome.summary,
                 score=outcome.score, done=jobs.progress(data, lease.job_id))


def work(url: str, data: str | Path, *, owner: str | None = None,
         lease_s: float = queue.DEFAULT_LEASE_S, poll_s: float = 0.5,
         max_attempts: int = queue.DEFAULT_MAX_ATTEMPTS, job_workers: int = 1,
         stop: threading.Event | None = None, once: bool = False) -> None:
    """The worker loop (until `stop` is set, or after one job with `once`)."""
    engine = db.connect(url)
    owner = owner or f"{socket.gethostname()}:{os.getpid()}"
    data = Path(data)
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            lease = queue.lease(engine, owner, lease_s, max_attempts)
        except sa.exc.OperationalError as exc:
            print(f"worker {owner}: database: {str(exc).splitlines()[0]}", file=sys.stderr)
            lease = None
        if lease is None:
            if once:
                return
            stop.wait(poll_s)
            continue
        run_leased(engine, lease, owner, data, lease_s, job_workers)
        if once:
            return


def default_cache(data: str | Path) -> None:
    """Compiled libraries live in the data directory unless `$PROPAMM_CACHE` says otherwise
    (the worker owns its process, so it may set its own environment)."""
    os.environ.setdefault("PROPAMM_CACHE", str(Path(data).absolute() / "cache"))
