"""The server's database: tables, engine creation and an ordered list of migrations.

SQLAlchemy Core keeps one schema for SQLite (the default, one file in the data directory)
and PostgreSQL (production, several machines' workers on one database). Migrations are
plain functions applied in order; `schema_version` records how far a database has come, so
a server started on an older database brings it up to date before it serves anything.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from propamm_jax.errors import PropammError

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, nullable=False),
)

teams = sa.Table(
    "teams", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("created", sa.Float, nullable=False),
)

competitions = sa.Table(
    "competitions", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("profile", sa.String(16), nullable=False),
    sa.Column("steps", sa.Integer, nullable=False),
    sa.Column("epoch_len", sa.Integer, nullable=False),
    sa.Column("opponents", sa.Text, nullable=False),      # JSON list of starter names
    sa.Column("seeds", sa.Text, nullable=False),          # JSON list of decimal strings: hidden
    sa.Column("seeds_sha256", sa.String(64), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
)

jobs = sa.Table(
    "jobs", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("config", sa.Text, nullable=False),          # JSON, the CLI's option names
    sa.Column("sources", sa.Text, nullable=False),         # JSON list of file names
    sa.Column("competition_id", sa.String(32), sa.ForeignKey("competitions.id"), nullable=True,
              index=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("started", sa.Float, nullable=True),
    sa.Column("finished", sa.Float, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_expires", sa.Float, nullable=True),
    sa.Column("progress_done", sa.Integer, nullable=False, default=0),
    sa.Column("progress_total", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("summary", sa.Text, nullable=True),          # JSON aggregate of a finished job
    sa.Column("score", sa.Float, nullable=True),           # the team strategy's mean edge
)

job_logs = sa.Table(
    "job_logs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id"), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("line", sa.Text, nullable=False),
)


def _v1(conn: Connection) -> None:
    """The first schema: teams, competitions, jobs and their logs."""
    metadata.create_all(conn, tables=[teams, competitions, jobs, job_logs])


def _v2(conn: Connection) -> None:
    """Lease scans look for queued jobs and expired leases, oldest first."""
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_jobs_state_created ON jobs (state, created)"))


MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2]


def default_url(data: str | Path) -> str:
    """The embedded database: `DATA/propamm.sqlite3`."""
    return f"sqlite:///{Path(data).absolute() / 'propamm.sqlite3'}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets readers (the API) proceed while a worker writes; foreign keys are off by
    # default in SQLite.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for `sqlite:///PATH` or `postgresql://...` (driver psycopg 3)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    try:
        if url.startswith("sqlite"):
            engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise PropammError(f"--db {url!r}: not a usable database URL ({exc})") from None


def current_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0


def migrate(engine: Engine) -> int:
    """Applies the migrations this database lacks, each in its own transaction; returns the
    version reached. Safe to call from several processes: PostgreSQL serialises on a lock,
    SQLite on its write lock."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7411)"))
        metadata.create_all(conn, tables=[schema_version])
        version = current_version(conn)
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            step(conn)
            conn.execute(schema_version.delete())
            conn.execute(schema_version.insert().values(version=number))
        return len(MIGRATIONS)


def connect(url: str) -> Engine:
    """An engine on a migrated database; a database that cannot be reached is one line."""
    engine = make_engine(url)
    try:
        migrate(engine)
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise PropammError(f"database {engine.url.render_as_string(hide_password=True)}: "
                           f"cannot open ({reason})") from None
    return engine


def now() -> float:
    return time.time()
