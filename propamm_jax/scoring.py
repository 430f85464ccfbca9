"""Official scoring of compiled strategies: the native core fed by the market tape.

Compiled strategies are untrusted native code, so they never run in the caller's process:
sandboxed worker processes (`sandbox.launch`, `propamm_jax.worker`; new processes, so no JAX
state leaks in and no `__main__` guard is needed) load them, generate the tape for a block
of seeds and stream each finished simulation back. Each simulation runs in a child forked
for it; one that crashes, ends quietly or hangs in a call is reported as a failure naming the
strategy, the function and the kind, never silently lost, and the worker goes on.
"""

from __future__ import annotations

import os
import re
import selectors
import tempfile
import time
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from propamm_jax.config import MAX_STRATEGIES, SimConfig, check_profile
from propamm_jax.errors import Interrupted, PropammError
from propamm_jax.results import Results, aggregate_table
from propamm_jax.sandbox import Limits, Worker, check_mode, classify_death, launch, sandboxed
from propamm_jax.tape import parse_seed

DEFAULT_TRACE_STEPS = 300
DEFAULT_SIM_TIMEOUT = 300.0          # seconds of wall time for one simulation
DEFAULT_MEMORY_LIMIT = 4 * 2**30     # address space of one worker process, bytes
DEFAULT_CALL_TIMEOUT = 5.0           # seconds of wall time for one strategy call


@dataclass(frozen=True)
class ScoreRequest:
    """Everything a worker needs; plain data so that it pickles into a worker process."""

    libraries: tuple[str, ...]
    labels: tuple[str, ...]
    config: SimConfig
    profile: str
    trace_seeds: frozenset[int] = frozenset()
    trace_steps: int = DEFAULT_TRACE_STEPS
    sim_timeout: float = DEFAULT_SIM_TIMEOUT
    memory_limit: int = DEFAULT_MEMORY_LIMIT
    native: tuple[str, str] = ("", "")       # compiled scoring core and call guard
    call_timeout: float = DEFAULT_CALL_TIMEOUT


@dataclass
class Failure:
    """A simulation that produced no result, and why."""

    seed: int
    strategy: str | None
    kind: str
    message: str

    def line(self) -> str:
        who = f"strategy {self.strategy}: " if self.strategy else ""
        return f"seed {self.seed}: {who}{self.kind}: {self.message}"


@dataclass
class ScoreResult:
    """Results in the golden schema plus convenient views."""

    results: Results
    failures: list[Failure] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)   # one line per strategy not scored
    warnings: list[str] = field(default_factory=list)   # checks that did not stop a strategy
    resumed: int = 0                                     # simulations read back from a journal

    @property
    def frame(self):
        """One row per (simulation, strategy), market parameters as columns."""
        return self.results.frame()

    @property
    def summary(self):
        """The reference CLI's table as a DataFrame."""
        return self.results.summary()


def seed_list(simulations: int, seed_start: int = 0, seed_stride: int = 1) -> list[int]:
    """Seeds `seed_start + i * seed_stride`; every one must be a u64."""
    if isinstance(simulations, bool) or not isinstance(simulations, int) or simulations < 1:
        raise PropammError(f"--simulations must be a positive integer, got {simulations!r}")
    start = parse_seed(seed_start)
    if isinstance(seed_stride, bool) or not isinstance(seed_stride, int) or seed_stride < 1:
        raise PropammError(f"--seed-stride must be a positive integer, got {seed_stride!r}")
    last = start + (simulations - 1) * seed_stride
    if last > 2**64 - 1:
        raise PropammError(f"seed {last} is outside u64 (0..18446744073709551615)")
    return [start + i * seed_stride for i in range(simulations)]


@dataclass(frozen=True)
class Prepared:
    """The strategies that passed the checks before scoring, and what happened to the rest."""

    libraries: list[str]
    labels: list[str]
    rejected: list[str]
    warnings: list[str]


def prepare_strategies(paths: Sequence[str | os.PathLike], *, strict: bool = False,
                       allow_unsafe_source: bool = False, sandbox: str = "auto") -> Prepared:
    """Compiles (or accepts) each strategy, then runs score's gate on it in a confined child
    (`validate.preflight`: ABI symbols, name, output within reserve, monotone and concave
    curves; the last two reject only when `strict`). A strategy that fails is left out with
    one line naming its file; if none is left, that is an error.
    """
    from propamm_jax.native.build import resolve_library
    from propamm_jax.validate import preflight

    if not paths:
        raise PropammError("no strategy given: pass at least one .rs or .so file")
    if len(paths) > MAX_STRATEGIES:
        raise PropammError(f"{len(paths)} strategies given; the engine takes at most {MAX_STRATEGIES}")
    libraries, labels, rejected = [], [], []
    for p in paths:
        if not Path(p).exists() or Path(p).suffix not in (".rs", ".so"):
            from propamm_jax.pools.families import refuse_policy_file

            refuse_policy_file(p)  # a policy.json: export it first (an oracle: never)
            resolve_library(p)  # a mistyped path is a usage error, not a bad strategy
        try:
            libraries.append(str(resolve_library(p, allow_unsafe_source)))
            labels.append(Path(p).name)
        except PropammError as exc:
            rejected.append(str(exc))
    warnings: list[str] = []
    if libraries:
        kept = []
        for k, verdict in enumerate(preflight(libraries, labels, strict, sandbox=sandbox)):
            if verdict.rejected:
                rejected.append(verdict.rejected)
            else:
                warnings.extend(verdict.warnings)
                kept.append(k)
        libraries = [libraries[k] for k in kept]
        labels = [labels[k] for k in kept]
    if not libraries:
        raise PropammError("; ".join(rejected))
    return Prepared(libraries, labels, rejected, warnings)


def _blocks(seeds: list[int], workers: int, max_block: int = 8) -> list[list[tuple[int, int]]]:
    """Blocks of (index, seed), taken in order by whichever worker is free. Sizes shrink
    towards the end (a share of what is left, at most `max_block`: the tape is generated per
    block), so the workers finish together instead of one running a whole last block alone."""
    indexed = list(enumerate(seeds))
    blocks, at = [], 0
    while at < len(indexed):
        size = max(1, min(max_block, -(-(len(indexed) - at) // (2 * workers))))
        blocks.append(indexed[at : at + size])
        at += size
    return blocks


def _blame(value: int, labels: tuple[str, ...]) -> tuple[str | None, str]:
    """(strategy label, 'in compute_swap') from the call guard's cell value."""
    slot, kind = divmod(int(value), 4)
    if value == 0 or slot >= len(labels) or kind not in (1, 2):
        return None, ""
    return labels[slot], "in compute_swap" if kind == 1 else "in after_swap"


def _failure(seed: int, value: int, kind: str, detail: str, labels: tuple[str, ...]) -> Failure:
    """The failure of one simulation: the call guard's cell names the strategy and function
    that was running; a Rust panic also names its source file, which identifies the strategy
    when the cell cannot."""
    who, where = _blame(value, labels)
    if who is None:
        match = re.search(r"panicked at (?:\S*/)?([^/\s]+\.rs):", detail)
        if match:
            who = next((lbl for lbl in labels if Path(lbl).stem == Path(match.group(1)).stem), None)
    return Failure(seed, who, kind, f"{where}: {detail}" if where else detail)


def _last_line(path: str) -> str:
    try:
        lines = [ln.strip() for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    return lines[-1][:200] if lines else "no output"


@dataclass
class _Slot:
    """One worker as the scheduler sees it."""

    worker: Worker
    block: list[tuple[int, int]] | None = None  # the block it is working on
    index: int | None = None                    # the simulation running now
    since: float = 0.0                          # when that simulation started
    ready: bool = False                         # it loaded the strategies at least once
    idle: bool = False                          # waiting for a block of a later run (kept pool)
    cell_path: str = ""                         # the call guard's cell, shared with it

    def cell(self) -> int:
        """The call guard's cell now: who was running when the worker died."""
        try:
            with open(self.cell_path, "rb") as f:
                return int.from_bytes(f.read(4), "little")
        except OSError:
            return 0


class _Pool:
    """Sandboxed worker processes (`sandbox.launch`), each fed one block of seeds at a time;
    a worker that dies or breaks the protocol is replaced. A `kept` pool outlives one
    `run_simulations` (its workers wait, loaded, for the next one's blocks: a Ray task's
    block then costs no worker start)."""

    def __init__(self, request: ScoreRequest, tmpdir: str, sandbox: str, kept: bool = False):
        self.request = request
        self.tmpdir = tmpdir
        self.sandbox = sandbox
        self.kept = kept
        self.selector = selectors.DefaultSelector()
        self.slots: dict[int, _Slot] = {}   # stdout fd -> slot
        self.spawned = 0
        self.readable = [*request.libraries, *request.native, _tape_folder(request.config.steps)]

    def spawn(self) -> None:
        name = f"worker{self.spawned}"
        self.spawned += 1
        cell_path = os.path.join(self.tmpdir, f"{name}.cell")
        with open(cell_path, "wb") as f:
            f.write(bytes(4096))  # the call guard's cell: the worker maps it through an fd
        cell_fd = os.open(cell_path, os.O_RDWR)
        try:
            worker = launch({"kind": "score", "limits": Limits(self.request.memory_limit),
                             "request": self.request, "cell_fd": cell_fd},
                            self.readable, self.tmpdir, name, self.sandbox, pass_fds=(cell_fd,))
        finally:
            os.close(cell_fd)
        fd = worker.channel.fd
        self.slots[fd] = _Slot(worker, cell_path=cell_path)
        self.selector.register(fd, selectors.EVENT_READ)

    def remove(self, slot: _Slot) -> int:
        """Takes a worker out of the pool; returns its exit code."""
        self.selector.unregister(slot.worker.channel.fd)
        del self.slots[slot.worker.channel.fd]
        if slot.index is not None:
            slot.worker.kill()
        return slot.worker.close()

    def close(self) -> None:
        for slot in list(self.slots.values()):
            slot.worker.send(None)
        for slot in list(self.slots.values()):
            self.remove(slot)
        self.selector.close()


def _tape_folder(steps: int) -> str:
    from propamm_jax.tape_cache import _folder

    return str(_folder(steps))


def run_simulations(request: ScoreRequest, seeds: list[int], workers: int,
                    on_result: Callable[[int, dict, dict | None], None],
                    on_progress: Callable[[int], None] | None = None,
                    on_failure: Callable[[Failure], None] | None = None,
                    sandbox: str = "auto",
                    on_start: Callable[[int], None] | None = None,
                    pool: _Pool | None = None) -> list[Failure]:
    """Scores `seeds` in `workers` sandboxed processes, calling `on_result(index, record,
    trace)` for each finished simulation as it arrives (and `on_start(index)` as each
    starts: benchmarks time failure detection with it). A simulation whose child dies or
    hangs, or whose worker dies, is reported as a failure; the worker goes on (or is
    replaced) and every other simulation still runs. Returns the failures. `pool`: a kept
    `_Pool` of `request` to use (and leave open) instead of a pool of this call's own."""
    todo = deque(_blocks(seeds, workers))
    pending = set(range(len(seeds)))
    failures: list[Failure] = []
    startup_failures = 0

    def fail(index: int, failure: Failure) -> None:
        if index in pending:
            pending.discard(index)
            failures.append(failure)
            if on_failure:
                on_failure(failure)
            if on_progress:
                on_progress(1)

    def feed(slot: _Slot) -> None:
        slot.block = todo.popleft() if todo else None
        slot.idle = slot.block is None and pool.kept
        if not slot.idle:
            slot.worker.send(slot.block)

    def lost(slot: _Slot, why: tuple[str, str] | None = None) -> None:
        """A worker that died or broke the protocol: its simulation fails, the rest of its
        block goes back to the queue, and a replacement starts if work is left."""
        nonlocal startup_failures
        code = pool.remove(slot)
        if not slot.ready:
            startup_failures += 1
            if startup_failures > workers:
                raise PropammError("scoring workers fail to start: " +
                                   _last_line(slot.worker.stderr_path))
        if slot.index is not None:
            text = Path(slot.worker.stderr_path).read_text(errors="replace") if os.path.exists(
                slot.worker.stderr_path) else ""
            kind, detail = why or classify_death(code, text)
            if not why:
                detail = f"{detail} (the scoring worker itself ended)"
            fail(slot.index, _failure(seeds[slot.index], slot.cell(), kind, detail,
                                      request.labels))
        rest = [(i, s) for i, s in slot.block or [] if i in pending and i != slot.index]
        if rest:
            todo.appendleft(rest)
        if todo:
            pool.spawn()

    with tempfile.TemporaryDirectory(prefix="propamm-") as tmpdir:
        pool = pool or _Pool(request, tmpdir, sandbox)
        for slot in list(pool.slots.values()):  # a kept pool's loaded workers
            slot.block = slot.index = None
            if slot.idle and todo:
                feed(slot)
        for _ in range(min(workers, len(todo)) - len(pool.slots)):
            pool.spawn()
        try:
            while pending:
                for key, _ in pool.selector.select(timeout=0.2):
                    slot = pool.slots.get(key.fd)
                    if slot is None:
                        continue
                    try:
                        for message in slot.worker.channel.feed():
                            _handle(slot, message, seeds, request, pending, on_result,
                                    on_progress, fail, feed, on_start)
                    except ValueError as exc:  # a bad frame, or _ProtocolError
                        lost(slot, ("crash", f"protocol violation from the worker: {exc}"))
                        continue
                    if slot.worker.channel.eof:
                        lost(slot)
                now = time.monotonic()
                for slot in list(pool.slots.values()):  # a worker wedged outside any child
                    if slot.index is not None and now - slot.since > request.sim_timeout + 10:
                        lost(slot, ("timeout", f"no result after {request.sim_timeout:g} s"))
                if not pool.slots and pending:
                    pool.spawn()
        finally:
            if not pool.kept:
                pool.close()
    return failures


class _ProtocolError(ValueError):
    """A worker sent something it may not: it is treated as failed."""


def _parse(slot: _Slot, message) -> tuple:
    """(kind, index, payload) of a worker's message, checked against what the worker was
    given; raises _ProtocolError otherwise (the worker runs hostile code)."""
    try:
        kind = message[0]
        block = {i for i, _ in slot.block or []}
        if kind == "ready" and len(message) == 1:
            return kind, None, None
        if kind == "start" and len(message) == 2 and message[1] in block:
            return kind, message[1], None
        if kind == "done" and len(message) == 3 and message[2] == slot.index is not None:
            record, trace = message[1]
            if isinstance(record, dict) and (trace is None or isinstance(trace, dict)):
                return kind, message[2], (record, trace)
        if kind == "fail" and len(message) == 5 and message[4] == slot.index is not None:
            return kind, message[4], (int(message[1]), str(message[2]), str(message[3])[:400])
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise _ProtocolError(f"malformed message ({type(exc).__name__})") from None
    raise _ProtocolError(f"unexpected message {str(message)[:60]!r}")


def _handle(slot: _Slot, message, seeds: list[int], request: ScoreRequest,
            pending: set[int], on_result, on_progress, fail, feed, on_start=None) -> None:
    """One message of a worker: ready for a block, a simulation started, done or failed."""
    kind, index, payload = _parse(slot, message)
    if kind == "ready":
        if any(i in pending for i, _ in slot.block or []):
            raise _ProtocolError("ready before its block was finished")
        slot.index = None
        slot.ready = True
        feed(slot)
    elif kind == "start":
        slot.index, slot.since = index, time.monotonic()
        if on_start:
            on_start(index)
    else:
        slot.index = None
        if index not in pending:
            return
        if kind == "done":
            pending.discard(index)
            on_result(index, *payload)
            if on_progress:
                on_progress(1)
        else:
            value, what, detail = payload
            fail(index, _failure(seeds[index], value, what, detail, request.labels))


def score(strategies: Sequence[str | os.PathLike], *, config: SimConfig | None = None,
          simulations: int = 100, seed_start: int = 0, seed_stride: int = 1,
          seeds: Iterable[int] | None = None, profile: str = "reference",
          workers: int | None = None, trace_seeds: Iterable[int] = (),
          trace_steps: int = DEFAULT_TRACE_STEPS, progress: bool | None = None,
          sim_timeout: float = DEFAULT_SIM_TIMEOUT,
          memory_limit: int = DEFAULT_MEMORY_LIMIT, strict: bool = False,
          allow_unsafe_source: bool = False, journal: str | os.PathLike | None = None,
          resume: bool = False, call_timeout: float = DEFAULT_CALL_TIMEOUT,
          sandbox: str = "auto", ray: str | None = None) -> ScoreResult:
    """Scores compiled strategies officially, bit-identical to the reference engine.

    `strategies`: `.rs` sources (source policy checked, compiled with the reference's flags,
    cached) or `.so` files. `seeds` overrides `simulations`/`seed_start`/`seed_stride`.
    `profile` is `reference` (official) or `corrected`. Returns results in the golden schema
    and DataFrames.

    A strategy that fails the checks before scoring (compile error, missing symbol, bad name,
    output above the reserve; non-monotone or non-concave curves when `strict`) is left out
    and listed in `rejected`. A simulation that crashes, exceeds `sim_timeout` seconds (wall
    or CPU) or makes its worker exceed `memory_limit` bytes becomes a `Failure` naming the
    strategy; every other simulation still completes.

    `call_timeout`: seconds of wall time one strategy call may take before its simulation
    is ended as a timeout (found within about 2x that). `sandbox`: `auto` (bubblewrap where
    it works, else one line on stderr and the rlimit confinement only), `require` (refuse
    without it) or `off`.

    `journal`: a path, or "auto" (`<cache>/journals/<run key>.jsonl`), to which every
    finished simulation is appended as it arrives; with `resume`, simulations already in it
    are read back instead of run again.

    `ray`: a Ray cluster's address (`auto`, `HOST:PORT`, or `local` to start one) to fan
    blocks of seeds out to (`propamm_jax.cluster`; `workers` is then the cluster's CPUs).
    The results are the same, byte for byte.
    """
    config = config or SimConfig()
    profile = check_profile(profile)
    seed_values = [parse_seed(s) for s in seeds] if seeds is not None else seed_list(
        simulations, seed_start, seed_stride)
    if not seed_values:
        raise PropammError("no seeds to score")
    sandboxed(check_mode(sandbox))  # refuses now, before any work, under `require`
    if ray is not None:
        from propamm_jax import cluster

        cluster.check_address(ray)
    if not call_timeout > 0:
        raise PropammError(f"--call-timeout must be positive, got {call_timeout!r}")
    workers = workers or os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise PropammError(f"--workers must be a positive integer, got {workers!r}")
    prepared = prepare_strategies(strategies, strict=strict,
                                  allow_unsafe_source=allow_unsafe_source, sandbox=sandbox)
    traced = frozenset(parse_seed(s) for s in trace_seeds)
    request = ScoreRequest(tuple(prepared.libraries), tuple(prepared.labels), config, profile,
                           traced, trace_steps, float(sim_timeout), int(memory_limit),
                           _native_libraries(), float(call_timeout))

    records: dict[int, dict] = {}
    traces: dict[int, dict] = {}
    writer = None
    if journal is not None:
        from propamm_jax import journal as jr

        identity = jr.run_identity(profile, config.to_json(), prepared.labels,
                                   prepared.libraries, seed_values, traced, trace_steps,
                                   request.native)
        path = jr.default_path(identity) if str(journal) == "auto" else Path(journal)
        if resume:
            for entry in jr.usable(path, jr.read(path, identity), seed_values):
                records[entry.index] = entry.record
                if entry.trace is not None:
                    traces[entry.index] = entry.trace
        writer = jr.Writer(path, identity, fresh=not resume)
    elif resume:
        raise PropammError("--resume needs a journal (pass --journal PATH or journal='auto')")
    resumed = len(records)
    todo = [i for i in range(len(seed_values)) if i not in records]

    def keep(k: int, record: dict, trace: dict | None) -> None:
        index = todo[k]
        records[index] = record
        if trace is not None:
            traces[index] = trace
        if writer is not None:
            writer.append(index, seed_values[index], record, trace)

    failures: list[Failure] = []
    bar = _progress_bar(len(seed_values), progress, initial=resumed)
    try:
        update = bar.update if bar is not None else None
        if todo and ray is None:
            failures = run_simulations(request, [seed_values[i] for i in todo], workers, keep,
                                       update, sandbox=sandbox)
        elif todo:
            failures = cluster.run_simulations(request, [seed_values[i] for i in todo], ray,
                                               keep, update, sandbox=sandbox)
    except KeyboardInterrupt:
        where = f"in the journal {writer.path}" if writer is not None else "nowhere (no journal)"
        raise Interrupted(f"{len(records)} of {len(seed_values)} simulations finished, kept "
                          f"{where}", writer is not None) from None
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
    results = Results(
        engine=profile, config=config, strategies=prepared.labels,
        sims=[records[i] for i in sorted(records)],
        traces=[traces[i] for i in sorted(traces)] or None,
    )
    return ScoreResult(results, failures, prepared.rejected, prepared.warnings, resumed)


def _native_libraries() -> tuple[str, str]:
    from propamm_jax.native.build import core_library, guard_library

    return str(core_library()), str(guard_library())


def _progress_bar(total: int, progress: bool | None, initial: int = 0):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="sim", file=sys.stderr, dynamic_ncols=True,
                smoothing=0.1)


def format_table(result: ScoreResult | Results) -> str:
    """The reference CLI's table."""
    results = result.results if isinstance(result, ScoreResult) else result
    return aggregate_table(results)


__all__ = ["score", "ScoreResult", "Failure", "format_table", "seed_list"]
