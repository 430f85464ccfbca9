"""The lease queue on SQLite and PostgreSQL: concurrent workers never take the same job, an
expired lease is taken over, and only the lease holder can finish a job."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("sqlalchemy")

from server_util import postgres  # noqa: E402,F401


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    from propamm_jax.server import auth, db

    url = db.default_url(tmp_path) if request.param == "sqlite" else request.getfixturevalue("postgres")()
    eng = db.connect(url)
    team, _ = auth.add_team(eng, "alpha")
    eng.team_id = team.id
    yield eng
    eng.dispose()


def enqueue(engine, n: int) -> list[str]:
    from propamm_jax.server import auth, queue

    ids = []
    for _ in range(n):
        job_id = auth.new_id()
        queue.enqueue(engine, job_id, engine.team_id, "score", {}, ["a.rs"], None, 1)
        ids.append(job_id)
        time.sleep(0.002)   # distinct creation times: leases go oldest first
    return ids


def test_concurrent_workers_never_share_a_job(engine):
    from propamm_jax.server import queue

    ids = enqueue(engine, 24)
    taken: list[tuple[str, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def worker(name: str) -> None:
        start.wait()
        misses = 0
        while misses < 3:
            lease = queue.lease(engine, name, lease_s=60)
            if lease is None:
                misses += 1
                continue
            with lock:
                taken.append((lease.job_id, name))
            time.sleep(0.01)   # "work", so that the others get their turn

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(j for j, _ in taken) == sorted(ids)        # each job exactly once
    assert len({w for _, w in taken}) > 1                     # and really concurrently


def test_expired_lease_is_taken_over_and_the_old_holder_is_fenced_off(engine):
    from propamm_jax.server import queue

    [job_id] = enqueue(engine, 1)
    first = queue.lease(engine, "dead", lease_s=0.3)
    assert first.job_id == job_id and first.attempt == 1
    assert queue.lease(engine, "other", lease_s=0.3) is None       # still held
    time.sleep(0.5)
    second = queue.lease(engine, "alive", lease_s=30)
    assert second.job_id == job_id and second.attempt == 2
    assert not queue.renew(engine, job_id, "dead", 30)
    assert not queue.finish(engine, job_id, "dead", summary=[])
    assert queue.renew(engine, job_id, "alive", 30, done=1)
    assert queue.finish(engine, job_id, "alive", summary=[], score=1.5)
    assert queue.lease(engine, "late", lease_s=30) is None          # done jobs stay done


def test_a_job_whose_workers_keep_dying_fails_with_the_reason(engine):
    import sqlalchemy as sa

    from propamm_jax.server import db, queue

    [job_id] = enqueue(engine, 1)
    for k in range(2):
        assert queue.lease(engine, f"w{k}", lease_s=0.05, max_attempts=2) is not None
        time.sleep(0.1)
    assert queue.lease(engine, "w3", lease_s=30, max_attempts=2) is None
    with engine.connect() as conn:
        row = conn.execute(sa.select(db.jobs).where(db.jobs.c.id == job_id)).first()
    assert row.state == "failed" and row.error == "its worker was lost 2 times; giving up"
