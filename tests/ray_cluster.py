"""A real two-node Ray cluster on loopback for tests and benchmarks.

`ray start --head` plus a second node joined with `ray start --address`, each with one CPU
(two in all, so tasks land on both), a small object store, no dashboard and their own temp
directory. Both run with `--block` in their own process group, so stopping them ends exactly
the processes they started (`ray stop` would end every Ray on the machine).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OBJECT_STORE = 200 * 10**6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRayCluster:
    """`with LocalRayCluster() as c:` ... `c.address` is `127.0.0.1:PORT`."""

    def __init__(self, cpus_per_node: int = 1, nodes: int = 2, env: dict | None = None):
        self.cpus, self.nodes = cpus_per_node, nodes
        self.env = dict(os.environ if env is None else env)
        self.env["RAY_USAGE_STATS_ENABLED"] = "0"
        # Loopback only: no token (Ray turns token authentication on when it finds
        # ~/.ray/auth_token, which `ray.init(address="local")` may have left behind).
        self.env.setdefault("RAY_AUTH_MODE", "disabled")
        self.procs: list[subprocess.Popen] = []
        self.tmp = tempfile.mkdtemp(prefix="propamm-ray-")
        self.address = ""

    def _ray(self) -> str:
        return str(Path(sys.executable).with_name("ray"))

    def _start(self, args: list[str], log: str) -> None:
        out = open(os.path.join(self.tmp, log), "wb")
        common = ["--num-cpus", str(self.cpus), "--object-store-memory", str(OBJECT_STORE),
                  "--node-ip-address", "127.0.0.1", "--block", "--disable-usage-stats"]
        self.procs.append(subprocess.Popen([self._ray(), "start", *args, *common], env=self.env,
                                           stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True))

    def start(self) -> "LocalRayCluster":
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        # A short Unix-socket path: the default temp dir may be too long for AF_UNIX.
        self._start(["--head", "--port", str(port), "--include-dashboard", "false",
                     "--temp-dir", os.path.join(self.tmp, "t")], "head.log")
        self._wait_nodes(1)
        for k in range(1, self.nodes):
            self._start(["--address", self.address], f"node{k}.log")
        self._wait_nodes(self.nodes)
        return self

    def _wait_nodes(self, n: int, timeout: float = 180.0) -> None:
        script = ("import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR');"
                  "print(sum(1 for x in ray.nodes() if x['Alive']))")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"ray start ended early; see {self.tmp}/*.log")
            r = subprocess.run([sys.executable, "-c", script, self.address], env=self.env,
                               capture_output=True, text=True, timeout=timeout)
            if r.returncode == 0 and r.stdout.strip() and int(r.stdout.split()[-1]) >= n:
                return
            time.sleep(1.0)
        raise RuntimeError(f"Ray cluster did not reach {n} nodes in {timeout:g} s")

    def task_workers(self, name: str = "ray::_traced") -> list[int]:
        """Process ids of this cluster's Ray workers running a task now (their title names
        the task; each is in its own process group, its parent a raylet of ours)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if cmd.startswith(name) and os.getpgid(parent) in self._groups():
                    pids.append(int(entry.name))
            except (OSError, ProcessLookupError):
                continue
        return pids

    def _groups(self) -> set[int]:
        return {p.pid for p in self.procs}

    def stop(self) -> None:
        for p in reversed(self.procs):
            _signal_group(p.pid, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(p.pid, signal.SIGKILL)
        self.procs.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "LocalRayCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
