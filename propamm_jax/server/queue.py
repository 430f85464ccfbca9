"""The job queue: leases with expiry, so that no job is ever lost.

A worker takes a job by writing its name and an expiry time on it (the lease), renews the
lease while it works, and finishes the job only while it still holds the lease. A worker that
dies stops renewing; once the lease has expired any worker may take the job again and resume
it from its results journal. PostgreSQL picks the job with `FOR UPDATE SKIP LOCKED`, so
workers on many machines never wait on each other; SQLite has one writer at a time, and the
conditional UPDATE inside the transaction makes a lost race a harmless miss.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from propamm_jax.server import db

DEFAULT_LEASE_S = 30.0
DEFAULT_MAX_ATTEMPTS = 10
ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class Lease:
    """A job held by one worker: what the worker needs to run it."""

    job_id: str
    team_id: str
    kind: str
    config: dict
    sources: list[str]
    competition_id: str | None
    attempt: int


def enqueue(engine: Engine, job_id: str, team_id: str, kind: str, config: dict,
            sources: list[str], competition_id: str | None, total: int) -> None:
    with engine.begin() as conn:
        conn.execute(db.jobs.insert().values(
            id=job_id, team_id=team_id, kind=kind, state="queued", config=json.dumps(config),
            sources=json.dumps(sources), competition_id=competition_id, created=db.now(),
            attempts=0, progress_done=0, progress_total=total))
        log(conn, job_id, f"queued: {kind} of {', '.join(sources)}")


def log(conn: Connection, job_id: str, line: str) -> None:
    """One line in the job's log (what the team sees); never more than one line."""
    line = " ".join(str(line).split())[:2000]
    conn.execute(db.job_logs.insert().values(job_id=job_id, at=db.now(), line=line))


def _eligible(now: float):
    j = db.jobs.c
    return sa.or_(j.state == "queued", sa.and_(j.state == "running", j.lease_expires < now))


def lease(engine: Engine, owner: str, lease_s: float = DEFAULT_LEASE_S,
          max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Lease | None:
    """Takes the oldest job that is queued or whose lease expired, or returns None. A job
    whose workers died `max_attempts` times is failed instead of retried forever."""
    j = db.jobs.c
    with engine.begin() as conn:
        now = db.now()
        query = (sa.select(db.jobs).where(_eligible(now)).order_by(j.created).limit(1))
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        row = conn.execute(query).first()
        if row is None:
            return None
        if row.attempts >= max_attempts:
            conn.execute(db.jobs.update().where(j.id == row.id).values(
                state="failed", finished=now, lease_owner=None,
                error=f"its worker was lost {row.attempts} times; giving up"))
            log(conn, row.id, f"failed: its worker was lost {row.attempts} times")
            return None
        taken = conn.execute(db.jobs.update().where(j.id == row.id).where(_eligible(now)).values(
            state="running", lease_owner=owner, lease_expires=now + lease_s,
            attempts=row.attempts + 1, started=row.started or now))
        if taken.rowcount != 1:
            return None
        if row.state == "running":
            log(conn, row.id, f"lease of {row.lease_owner} expired; retried by {owner}")
        log(conn, row.id, f"running on {owner} (attempt {row.attempts + 1})")
    return Lease(row.id, row.team_id, row.kind, json.loads(row.config), json.loads(row.sources),
                 row.competition_id, row.attempts + 1)


def renew(engine: Engine, job_id: str, owner: str, lease_s: float, done: int | None = None) -> bool:
    """Extends the lease (and records progress); False if the lease is no longer ours."""
    values: dict = {"lease_expires": db.now() + lease_s}
    if done is not None:
        values["progress_done"] = done
    with engine.begin() as conn:
        return _update_held(conn, job_id, owner, values)


def _update_held(conn, job_id: str, owner: str, values: dict) -> bool:
    """Writes `values` to the job only while `owner` holds its lease (the fence: a worker
    whose lease expired and was taken over changes nothing); True if it did."""
    res = conn.execute(db.jobs.update().where(db.jobs.c.id == job_id)
                       .where(db.jobs.c.lease_owner == owner)
                       .where(db.jobs.c.state == "running").values(**values))
    return res.rowcount == 1


def finish(engine: Engine, job_id: str, owner: str, *, error: str | None = None,
           summary: dict | list | None = None, score: float | None = None,
           done: int | None = None) -> bool:
    """Marks the job done (or failed, with its one-line reason) if we still hold it."""
    values: dict = {"state": "failed" if error else "done", "finished": db.now(),
                    "lease_owner": None, "lease_expires": None, "error": error,
                    "summary": json.dumps(summary) if summary is not None else None,
                    "score": score}
    if done is not None:
        values["progress_done"] = done
    with engine.begin() as conn:
        held = _update_held(conn, job_id, owner, values)
        if held:
            log(conn, job_id, f"failed: {error}" if error else "done")
    return held


def active_count(conn: Connection, team_id: str) -> int:
    """Jobs of a team that are queued or running (the per-team queue limit counts these)."""
    return conn.execute(sa.select(sa.func.count()).select_from(db.jobs)
                        .where(db.jobs.c.team_id == team_id)
                        .where(db.jobs.c.state.in_(ACTIVE))).scalar() or 0
