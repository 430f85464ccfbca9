"""Confinement of a process that runs untrusted strategy code (scoring and validation workers).

A worker calls `confine` first thing, before it loads any strategy: its stderr goes to a file
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
import signal
from dataclasses import dataclass, field

# What a worker's clean environment keeps: only the project's own settings, resolved.
_KEEP = ("PROPAMM_NO_TAPE_CACHE",)


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

    env = {"PROPAMM_CACHE": str(cache_dir().absolute())}
    env.update({k: os.environ[k] for k in _KEEP if k in os.environ})
    return env


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
