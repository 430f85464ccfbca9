"""Confinement of a process that runs untrusted strategy code (scoring and validation workers).

Every such process is started by `launch` as `python -m propamm_jax.official.worker`, inside
bubblewrap (`bwrap`) when it works here: own user, PID, network, IPC, UTS and cgroup
namespaces (no network at all), a read-only view of only the Python runtime, the package,
the scoring core and call guard and the strategy libraries it runs, a private tmpfs as its
only writable directory, a minimal /proc and /dev, no capabilities, no new privileges, killed
with its parent. `unavailable` probes once per process whether that works; where it does not,
`launch` says so once and runs the worker with the confinement below only (or refuses, in
`require` mode). The parent and the worker speak `wire` frames over the worker's stdin/stdout.

Inside, the worker calls `confine` first thing, before it loads any strategy: its stderr goes to a file
the parent reads after a crash (a Rust panic's message names the source file), its address
space is capped (a runaway allocation fails inside the worker, not on the machine), its
environment is emptied (nothing of the user's shell, tokens included, is visible to the
strategy) and its working directory is a private temporary folder. `cpu_budget` arms a CPU
time limit for the next piece of work: past it the kernel sends SIGXCPU, which ends the
worker even when it is stuck inside native code, independently of the parent's wall-clock
watchdog.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

from propamm_jax.errors import PropammError
from propamm_jax.official.wire import Channel, to_worker, write_all

# What a worker's clean environment keeps: only the project's own settings, resolved.
_KEEP = ("PROPAMM_NO_TAPE_CACHE",)
# One thread per worker: workers fork a child per simulation, and a fork copies one thread.
_THREADS = {"OPENBLAS_NUM_THREADS": "1"}

BWRAP = "bwrap"
MODES = ("auto", "require", "off")   # sandbox on where available / refuse without / old confinement
TMPFS_BYTES = 64 * 2**20              # a worker's private /tmp (tmpfs pages are not in RLIMIT_AS)


@dataclass(frozen=True)
class Limits:
    """Resource limits of one worker process (plain data: it pickles into spawned workers)."""

    memory_bytes: int = 4 * 2**30
    workdir: str = "."
    stderr_path: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    parent_pid: int = 0   # the worker dies with this process (0: do not tie them)


def worker_env() -> dict[str, str]:
    """The environment a worker gets: the cache location, resolved to an absolute path, and
    the project's own switches; nothing else."""
    from propamm_jax.native.build import cache_dir

    env = {"PROPAMM_CACHE": str(cache_dir().absolute()), **_THREADS}
    env.update({k: os.environ[k] for k in _KEEP if k in os.environ})
    return env


# ─── Launching a worker, in bubblewrap when it works here ───────────────────────────────

def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise PropammError(f"sandbox mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def _runtime_paths() -> list[str]:
    """What a worker reads: the interpreter, its standard library and site-packages (the
    virtual environment), this package and its native sources' folder, system libraries."""
    import propamm_jax
    import propamm_jax.native

    paths = {os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix),
             os.path.realpath(sys.prefix), os.path.realpath(sys.exec_prefix)}
    paths.update(os.path.realpath(p) for p in propamm_jax.__path__)
    paths.update(os.path.realpath(p) for p in propamm_jax.native.__path__)
    for system in ("/usr/lib", "/usr/lib64", "/usr/lib32", "/etc/ld.so.cache"):
        if os.path.exists(system):
            paths.add(system)
    # A runtime under /usr is covered by /usr/lib; only its binary is bound from /usr/bin.
    return sorted(p for p in paths if os.path.exists(p) and p != "/usr")


def _bind_args(paths: Sequence[str]) -> list[str]:
    """Read-only binds of `paths` at the same place (the real file behind a symlinked
    path), and /lib, /lib64 as on the host (links into /usr on a merged-/usr system)."""
    args: list[str] = []
    for top in ("/lib", "/lib64", "/lib32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for p in sorted(set(paths)):
        args += ["--ro-bind", os.path.realpath(p), os.path.abspath(p)]
    return args


def bwrap_command(readable: Sequence[str], env: dict[str, str]) -> list[str]:
    """The bwrap command line (without the program to run) for a worker that reads
    `readable` (strategy libraries, the core, a tape folder) besides the runtime."""
    size = ["--size", str(TMPFS_BYTES)] if _bwrap_sizes_tmpfs() else []
    args = [shutil.which(BWRAP) or BWRAP, "--unshare-all", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL", "--proc", "/proc", "--dev", "/dev", *size, "--tmpfs", "/tmp",
            "--chdir", "/tmp", "--clearenv"]
    args += _bind_args(_runtime_paths() + [p for p in readable if os.path.exists(p)])
    for key, value in sorted(env.items()):
        args += ["--setenv", key, value]
    return args + ["--remount-ro", "/", "--"]  # the tmpfs at /tmp stays the only writable place


@lru_cache(maxsize=1)
def _bwrap_sizes_tmpfs() -> bool:
    """Whether this bwrap caps a tmpfs (`--size`, bubblewrap 0.8+); older ones leave the
    private /tmp unbounded (it still vanishes with the worker)."""
    try:
        proc = subprocess.run([shutil.which(BWRAP) or BWRAP, "--help"], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--size" in proc.stdout + proc.stderr


@lru_cache(maxsize=1)
def unavailable() -> str | None:
    """None when bubblewrap can start a worker here, else why not (probed once)."""
    if not sys.platform.startswith("linux"):
        return f"no bubblewrap on {sys.platform}"
    if shutil.which(BWRAP) is None:
        return "bwrap not found (Debian/Ubuntu: apt-get install bubblewrap)"
    probe = bwrap_command([], {}) + [sys.executable, "-I", "-c", "import propamm_jax.official.sandbox"]
    try:
        proc = subprocess.run(probe, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap does not start ({exc})"
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        return f"bwrap fails here: {lines[-1] if lines else f'exit code {proc.returncode}'}"
    return None


_NOTICE_SHOWN: list[bool] = []


def sandboxed(mode: str) -> bool:
    """Whether workers run in bubblewrap under `mode`: `off` never; `auto` where it works
    (else one line on stderr, once); `require` where it works, else PropammError."""
    if check_mode(mode) == "off":
        return False
    reason = unavailable()
    if reason is None:
        return True
    if mode == "require":
        raise PropammError(f"sandbox unavailable: {reason} (--require-sandbox)")
    if not _NOTICE_SHOWN:
        _NOTICE_SHOWN.append(True)
        print(f"propamm: sandbox unavailable ({reason}); workers run with rlimits, an empty "
              "environment and a private directory only", file=sys.stderr)
    return False


@dataclass
class Worker:
    """A running worker: its process, its output channel and its stderr file."""

    proc: subprocess.Popen
    channel: Channel
    stderr_path: str
    workdir: str
    in_bwrap: bool = False

    def send(self, obj) -> bool:
        """Sends a pickled frame; False when the worker is gone."""
        try:
            write_all(self.proc.stdin.fileno(), to_worker(obj))
            return True
        except (BrokenPipeError, OSError):
            return False

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.kill()

    def close(self) -> int:
        """Ends the worker (closing its input first lets it exit cleanly) and reaps it.
        Returns its exit code, negative for a signal (bwrap reports a signal as 128 + n)."""
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.wait()
        return 128 - code if self.in_bwrap and 128 < code < 160 else code


def launch(job: dict, readable: Sequence[str], tmpdir: str, name: str, mode: str,
           pass_fds: Sequence[int] = ()) -> Worker:
    """Starts `python -m propamm_jax.official.worker` (in bubblewrap unless `mode` says otherwise or
    it is unavailable) and sends it `job`, a dict with at least `kind` and `limits`."""
    stderr_path = os.path.join(tmpdir, f"{name}.stderr")
    workdir = os.path.join(tmpdir, f"{name}.work")
    os.makedirs(workdir, exist_ok=True)
    env = worker_env()
    program = [sys.executable, "-I", "-m", "propamm_jax.official.worker"]
    in_bwrap = sandboxed(mode)
    command = bwrap_command(readable, env) + program if in_bwrap else program
    limits: Limits = job["limits"]
    job = {**job, "in_bwrap": in_bwrap,
           "limits": Limits(limits.memory_bytes, "/tmp" if in_bwrap else workdir, None, env,
                            0 if in_bwrap else os.getpid())}
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err, env=env, cwd=workdir, pass_fds=tuple(pass_fds),
                                start_new_session=True)
    worker = Worker(proc, Channel(proc.stdout.fileno()), stderr_path, workdir, in_bwrap)
    worker.send(job)
    return worker


def confine(limits: Limits) -> None:
    """Applies `limits` to the calling process (irreversible: call it only in a worker)."""
    if limits.parent_pid:
        die_with_parent(limits.parent_pid)
    if limits.stderr_path:
        fd = os.open(limits.stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 2)
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file behind
    os.environ.clear()  # also unsets the C-level environment the strategy could read
    os.environ.update(limits.env)
    os.chdir(limits.workdir)
    # SIGXCPU's default action ends the process; make sure nothing inherited ignores it.
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent dies (Linux prctl PR_SET_PDEATHSIG): a scorer
    killed with SIGKILL must not leave workers blocked on its queues forever."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: workers then exit when their queue breaks
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def cpu_budget(seconds: float) -> None:
    """From now on, at most `seconds` more CPU time for this process (soft RLIMIT_CPU,
    re-armed before each piece of work; the hard limit is left alone so it can be raised)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + seconds) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def signal_name(exitcode: int) -> str:
    """'SIGSEGV' for a process that died of signal 11, 'exit code 3' otherwise."""
    if exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def classify_death(exitcode: int, stderr_text: str) -> tuple[str, str]:
    """(kind, detail) of a worker that died: kind is one of crash, out-of-memory,
    cpu-time-limit; detail quotes the panic or allocation failure when there is one."""
    import re

    signame = signal_name(exitcode)
    oom = re.search(r"memory allocation of (\d+) bytes failed", stderr_text)
    if oom or "MemoryError" in stderr_text:
        what = f"allocation of {oom.group(1)} bytes failed" if oom else "MemoryError"
        return "out-of-memory", f"{signame}: {what} (address-space limit)"
    if exitcode == -signal.SIGXCPU:
        return "cpu-time-limit", f"{signame}: CPU time limit reached"
    panic = re.search(r"panicked at (?:\S*/)?([^/\s]+\.rs):(\d+):\d+:\s*\n?(.*)", stderr_text)
    if panic:
        source, line, message = panic.groups()
        return "crash", f"{signame}: panicked at {source}:{line}: {message.strip()}"[:300]
    if exitcode == -signal.SIGSEGV or exitcode == -signal.SIGBUS:
        return "crash", f"{signame}: invalid memory access"
    return "crash", signame
