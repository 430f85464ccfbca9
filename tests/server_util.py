"""Helpers for the server's tests: a throwaway PostgreSQL cluster, a real `propamm serve`
process on a free loopback port, and waiting for jobs."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
STARTERS = ROOT / "native" / "strategies"
TINY = {"simulations": 2, "steps": 300, "epoch_len": 100}


def need(condition: bool, reason: str) -> None:
    """Skip when a part is missing, except on CI, where every part must be there."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must install it: see .ci/run)")
    pytest.skip(reason)


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextlib.contextmanager
def pg_cluster():
    """A PostgreSQL cluster in a temporary directory, listening only on a Unix socket there;
    yields a function that creates a fresh database and returns its URL. As root, the
    cluster runs as the `postgres` user (PostgreSQL refuses to run as root)."""
    bindir = pg_bin()
    need(bindir is not None, "PostgreSQL is not installed (Debian: apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="propamm-pg-"))
    as_user: list[str] = []
    user = os.environ.get("USER") or "postgres"
    if os.geteuid() == 0:
        as_user, user = ["runuser", "-u", "postgres", "--"], "postgres"
        shutil.chown(root, "postgres")
    run = lambda *cmd: subprocess.run(as_user + list(cmd), check=True, capture_output=True,  # noqa: E731
                                      timeout=120)
    data = root / "data"
    run(str(bindir / "initdb"), "-D", str(data), "-U", user, "-A", "trust", "--no-sync")
    opts = f"-k {root} -c listen_addresses='' -c fsync=off -c max_connections=200"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w",
        "start")
    counter = iter(range(10**6))

    def new_database() -> str:
        name = f"propamm_{os.getpid()}_{next(counter)}"
        run(str(bindir / "createdb"), "-h", str(root), "-U", user, name)
        return f"postgresql://{user}@/{name}?host={root}"

    try:
        yield new_database
    finally:
        subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                  "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres():
    """A module's PostgreSQL cluster: call it for a fresh database URL."""
    with pg_cluster() as new_database:
        yield new_database


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def propamm(*args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "propamm_jax.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def add_team(data: Path, name: str, *extra: str, db: str | None = None) -> str:
    where = ["--db", db] if db else ["--data", str(data)]
    out = propamm("team", "add", name, *where, *extra)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


class Server:
    """`propamm serve` as a real process on a free loopback port."""

    def __init__(self, data: Path, *, workers: int = 1, lease: float = 30.0, db: str | None = None,
                 extra: tuple[str, ...] = ()):
        self.data, self.port = data, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = ["serve", "--data", str(data), "--port", str(self.port), "--workers", str(workers),
                "--lease", str(lease), *extra] + (["--db", db] if db else [])
        self.log = open(data.parent / f"serve-{self.port}.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "propamm_jax.cli", *args],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not start")

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid), "-f", "propamm_jax.cli worker"],
                             capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stops the server and everything it started (its own process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()


def wait_job(client, job_id: str, headers: dict, timeout: float = 300) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/api/jobs/{job_id}", headers=headers).json()
        if job.get("state") in ("done", "failed"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def source(name: str = "flat_45bps", as_name: str | None = None) -> dict:
    return {"name": as_name or f"{name}.rs", "text": (STARTERS / f"{name}.rs").read_text()}


def shared_cache() -> None:
    """Servers started by tests compile into the developer's build cache, not a fresh one per
    data directory (the scoring core would be rebuilt for every test)."""
    from propamm_jax.native.build import cache_dir

    os.environ.setdefault("PROPAMM_CACHE", str(cache_dir().absolute()))
