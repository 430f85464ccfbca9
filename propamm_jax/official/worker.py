"""The process that runs untrusted strategy code: `python -m propamm_jax.official.worker`.

Started by `sandbox.launch` (inside bubblewrap where it works). It reads one job from stdin
(a pickled dict from the trusted parent), confines itself (`sandbox.confine`: rlimits, empty
environment, private directory) and then:

- `score`: loads the strategies, the scoring core and the call guard once, then scores the
  blocks of seeds the parent sends. Each simulation runs in a child forked for it, so every
  simulation starts from the same process state (a strategy's `static` variables included),
  whatever the number of workers or the order of seeds. The worker watches the child: the
  call guard's cell (shared memory) names the strategy and function being called and counts
  calls, so a call that does not return within `call_timeout` seconds of wall time is killed
  and blamed; a child that ends without a result (exit code 0 included) is found as soon as
  its result pipe closes.
- `validate`: runs one group of `validate` checks (`validate.run_child`).

Everything it sends back is JSON in length-prefixed frames on its original stdout; stray
writes of a strategy to fd 1 go to stderr instead.
"""

from __future__ import annotations

import mmap
import os
import select
import signal
import struct
import sys
import time
import traceback

from propamm_jax.official.sandbox import classify_death, confine, cpu_budget
from propamm_jax.official.wire import MAX_FRAME, from_worker_encode, read_frame, write_all

POLL_SECONDS = 0.05   # how often a running simulation's child is checked


class _Output:
    """The frame channel to the parent (a private copy of the original stdout)."""

    def __init__(self):
        self.fd = os.dup(1)
        os.dup2(2, 1)   # a strategy's println! must not corrupt the frames

    def send(self, obj) -> None:
        write_all(self.fd, from_worker_encode(obj))


def _receive():
    import pickle

    data = read_frame(0)
    return None if data is None else pickle.loads(data)


def main() -> None:
    out = _Output()
    job = _receive()
    if job is None:
        return
    confine(job["limits"])
    if job["kind"] == "score":
        _score(job, out)
    else:
        from propamm_jax.official.validate import run_child

        run_child(job, out.send)


# ─── Scoring ─────────────────────────────────────────────────────────────────────────────

def _score(job: dict, out: _Output) -> None:
    from pathlib import Path

    from propamm_jax.native.bridge import NativeStrategy, guarded_pools, load_native_libraries

    request = job["request"]
    load_native_libraries(*request.native)
    cell = mmap.mmap(job["cell_fd"], 4096)   # shared with the parent and every forked child
    import numpy as np

    address = np.frombuffer(cell, dtype=np.uint32, count=2).ctypes.data
    strategies = [NativeStrategy(Path(p), lbl) for p, lbl in zip(request.libraries, request.labels)]
    pools = guarded_pools(strategies, address)
    if request.pure_quotes:   # training only
        pools = [p.pure() for p in pools]
    names = [s.name for s in strategies]
    out.send(["ready"])
    while True:
        block = _receive()
        if block is None:
            return
        _score_block(request, pools, names, block, cell, out, job.get("in_bwrap", False))
        out.send(["ready"])


def _score_block(request, pools, names, block, cell, out: _Output, job_in_bwrap: bool) -> None:
    from propamm_jax.native.bridge import run_core
    from propamm_jax.outputs.results import sim_record, trace_record
    from propamm_jax.tape.cache import cached_tape

    config = request.config
    tape = cached_tape([seed for _, seed in block], config.steps)
    fair = tape.fair_prices(config.initial_price)
    for row, (index, seed) in enumerate(block):
        def simulate(row=row, seed=seed, index=index):
            lo, hi = tape.order_start[row, 0], tape.order_start[row, -1]
            trace_steps = request.trace_steps if seed in request.trace_seeds else 0
            run = run_core(config, request.profile, pools, int(tape.params.norm_fee_bps[row]),
                           float(tape.params.norm_liquidity_mult[row]), fair[row],
                           tape.order_start[row] - lo, tape.order_is_buy[row, lo:hi],
                           tape.order_size[row, lo:hi], trace_steps,
                           initial_storage=request.preload[index] if request.preload else None)
            record = sim_record(seed, tape.params, row, names, run)
            trace = trace_record(seed, fair[row], tape.order_count[row], run) if trace_steps else None
            return [record, trace]

        out.send(["start", index])
        outcome = run_forked(simulate, cell, request.call_timeout, request.sim_timeout,
                             close=(0, out.fd), sweep=job_in_bwrap)
        out.send([*outcome, index])


def run_forked(work, cell: mmap.mmap, call_timeout: float, sim_timeout: float,
               close: tuple[int, ...] = (), sweep: bool = False) -> list:
    """Runs `work()` in a forked child and returns ["done", result] or
    ["fail", cell value, kind, detail] (cell value: the call guard's slot*4+function, 0 when
    no strategy call was running). The child closes the fds in `close` first (the worker's
    task and frame channels: the simulation's strategies cannot read or forge them) and leads
    its own process group; whatever it leaves behind (processes a strategy forked) is killed
    with that group, and with `sweep` (only inside the sandbox's own PID namespace) every
    other process but this one and the namespace's init."""
    struct.pack_into("<II", cell, 0, 0, 0)
    stderr_path = os.path.abspath("simulation.stderr")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        for fd in (r, *close):
            os.close(fd)
        _child(work, w, stderr_path, sim_timeout)
    os.close(w)
    try:
        data, why, status = _watch(pid, r, cell, call_timeout, sim_timeout)
    finally:
        os.close(r)
        _end_strays(pid, sweep)
    code = os.waitstatus_to_exitcode(status)
    value = struct.unpack_from("<I", cell, 0)[0]
    if why is None and code == 0 and data:
        try:
            import json

            return ["done", json.loads(data)]
        except ValueError:
            why = ("crash", "the simulation's result is corrupt")
    if why is None:
        text = _read_text(stderr_path)
        if code == 0:
            why = ("crash", "exit code 0 without a result (the process was ended from inside)")
        else:
            why = classify_death(code, text)
            if why[0] == "cpu-time-limit":
                why = ("timeout", why[1])
    return ["fail", value, why[0], why[1]]


def _child(work, w: int, stderr_path: str, sim_timeout: float) -> None:
    code = 0
    try:
        os.setpgid(0, 0)
        fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 2)
        os.close(fd)
        signal.signal(signal.SIGXCPU, signal.SIG_DFL)
        cpu_budget(sim_timeout)
        import json

        write_all(w, json.dumps(work()).encode())
    except BaseException:  # noqa: BLE001 - reported through stderr and the exit code
        traceback.print_exc()
        code = 70
    os._exit(code)


def _watch(pid: int, r: int, cell: mmap.mmap, call_timeout: float, sim_timeout: float
           ) -> tuple[bytes, tuple[str, str] | None, int]:
    """(result bytes, why it failed or None, wait status) of the child: reads its result
    while it runs, returns as soon as it has ended (even if a process it forked keeps the
    pipe open), and kills it when one strategy call runs past `call_timeout` or the
    simulation past `sim_timeout` (wall time), or its result grows past MAX_FRAME."""
    chunks: list[bytes] = []
    size = 0
    start = time.monotonic()
    seen, seen_at = (0, 0), start
    exited = _pidfd(pid)   # readable once the child has ended (Linux 5.3+), else polled
    watched = [r] + ([exited] if exited is not None else [])
    try:
        while True:
            ready, _, _ = select.select(watched, [], [], POLL_SECONDS)
            if r in ready:
                chunk = os.read(r, 1 << 20)
                chunks.append(chunk)
                size += len(chunk)
                if not chunk:
                    watched.remove(r)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return b"".join(chunks) + _drain(r), None, status
            now = time.monotonic()
            state = struct.unpack_from("<II", cell, 0)
            if state != seen:
                seen, seen_at = state, now
            elif state[0] and now - seen_at > call_timeout:
                why = ("timeout", f"no return after {now - seen_at:.1f} s "
                                  f"(call timeout {call_timeout:g} s)")
                return b"", why, _kill(pid)
            if now - start > sim_timeout:
                why = ("timeout", f"no result after {sim_timeout:g} s (a strategy loops or "
                                  "is far too slow)")
                return b"", why, _kill(pid)
            if size > MAX_FRAME:
                return b"", ("crash", f"result larger than {MAX_FRAME} bytes"), _kill(pid)
    finally:
        if exited is not None:
            os.close(exited)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _drain(r: int) -> bytes:
    """What is left in the result pipe, without waiting for writers that are not the child."""
    os.set_blocking(r, False)
    chunks = []
    try:
        while chunk := os.read(r, 1 << 20):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    return b"".join(chunks)


def _kill(pid: int) -> int:
    os.kill(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]


def _end_strays(pid: int, sweep: bool) -> None:
    """Kills what a simulation's child left running: its process group, and with `sweep`
    every process of this PID namespace except its init (1) and this worker."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if not sweep:
        return
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in (1, os.getpid()):
            try:
                os.kill(int(entry), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _read_text(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
