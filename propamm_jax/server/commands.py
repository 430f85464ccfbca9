"""`propamm serve`, `propamm worker` and `propamm team add`.

Imports of FastAPI, uvicorn and SQLAlchemy happen inside the commands, so the rest of the
CLI starts as fast as before and works without the `server` extra.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from pathlib import Path

from propamm_jax.errors import PropammError

DEFAULT_LEASE_S = 30.0


def _db_url(args) -> str:
    from propamm_jax.server import db

    if args.db:
        return args.db
    if args.data is None:
        raise PropammError("pass --data DIR (embedded SQLite there) or --db URL")
    return db.default_url(args.data)


def _need_extra() -> None:
    from importlib.util import find_spec

    for name in ("fastapi", "uvicorn", "sqlalchemy"):
        if find_spec(name) is None:
            raise PropammError(f"the server needs the 'server' extra: pip install "
                               f"'propamm-jax[server]' ({name} is missing)")


def add_parsers(sub, positive_int) -> None:
    """Registers the three commands on the `propamm` parser's subcommands."""
    p = sub.add_parser("serve", help="the competition server: API, dashboard and workers",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("propamm-data"),
                   help="data directory: sources, results, reports, receipts, the SQLite file")
    p.add_argument("--db", default=None,
                   help="database URL (postgresql://...); default: SQLite in --data")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=positive_int("--port"), default=8000, help="port")
    p.add_argument("--workers", type=int, default=1, help="worker processes (0: none)")
    p.add_argument("--lease", type=float, default=DEFAULT_LEASE_S,
                   help="seconds a job's lease lasts without a heartbeat")
    p.add_argument("--max-active-jobs", type=positive_int("--max-active-jobs"), default=10,
                   help="jobs one team may have queued or running")
    p.add_argument("--rate", type=float, default=20.0, help="requests per second per team")
    p.set_defaults(run=cmd_serve)

    p = sub.add_parser("worker", help="a job worker against a server's database",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--db", default=None, help="database URL; default: SQLite in --data")
    p.add_argument("--data", type=Path, required=True,
                   help="the server's data directory (shared with it)")
    p.add_argument("--lease", type=float, default=DEFAULT_LEASE_S,
                   help="seconds a job's lease lasts without a heartbeat")
    p.set_defaults(run=cmd_worker)

    p = sub.add_parser("team", help="manage teams of a server")
    tsub = p.add_subparsers(dest="team_command", parser_class=type(p), metavar="ACTION",
                            help="add: create a team and print its token")
    q = tsub.add_parser("add", help="create a team; prints its API token on the last line",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    q.add_argument("name", help="the team's name")
    q.add_argument("--data", type=Path, default=None, help="the server's data directory")
    q.add_argument("--db", default=None, help="database URL; default: SQLite in --data")
    q.add_argument("--admin", action="store_true", help="the token may manage competitions")
    q.set_defaults(run=cmd_team_add)
    p.set_defaults(run=lambda args: (p.print_help(), 2)[1])


def cmd_team_add(args) -> int:
    _need_extra()
    from propamm_jax.server import auth, db

    if args.data is not None:
        args.data.mkdir(parents=True, exist_ok=True)
    team, token = auth.add_team(db.connect(_db_url(args)), args.name, args.admin)
    print(f"team {team.name!r} created{' (admin)' if team.is_admin else ''}; its token "
          "(shown once, the server keeps only its hash):")
    print(token)
    return 0


def cmd_worker(args) -> int:
    _need_extra()
    from propamm_jax.server import worker

    worker.default_cache(args.data)
    stop = threading.Event()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker.work(_db_url(args), args.data, lease_s=args.lease, stop=stop)
    return 0


class WorkerPool:
    """The worker processes of `serve`; one that dies is started again within a second."""

    def __init__(self, url: str, data: Path, count: int, lease_s: float):
        self.argv = [sys.executable, "-m", "propamm_jax.cli", "worker", "--db", url,
                     "--data", str(data), "--lease", str(lease_s)]
        self.procs: list[subprocess.Popen] = []
        self.count = count
        self.stop = threading.Event()

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(self.argv, env=os.environ.copy())

    def start(self) -> None:
        self.procs = [self._spawn() for _ in range(self.count)]
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while not self.stop.wait(1.0):
            for i, proc in enumerate(self.procs):
                if proc.poll() is not None:
                    print(f"worker {proc.pid} exited ({proc.returncode}); starting another",
                          file=sys.stderr, flush=True)
                    self.procs[i] = self._spawn()

    def close(self) -> None:
        self.stop.set()
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()   # its job's lease expires and another worker resumes it


def cmd_serve(args) -> int:
    _need_extra()
    import uvicorn

    from propamm_jax.server import db, worker
    from propamm_jax.server.api import Settings, create_app

    args.data.mkdir(parents=True, exist_ok=True)
    worker.default_cache(args.data)
    url = _db_url(args)
    db.connect(url)   # migrated once, before any worker starts
    app = create_app(Settings(url, args.data.absolute(), max_active_jobs=args.max_active_jobs,
                              rate_per_s=args.rate))
    pool = WorkerPool(url, args.data.absolute(), args.workers, args.lease)
    pool.start()
    print(f"propamm server: dashboard and API at http://{args.host}:{args.port}/ "
          f"({args.workers} workers, data in {args.data})", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        pool.close()
    return 0
