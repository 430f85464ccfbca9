"""Official scoring of compiled strategies: the native core fed by the market tape.

Compiled strategies are untrusted native code, so they never run in the caller's process:
worker processes (spawned, never forked, so no JAX state leaks in) load them, generate the
tape for a block of seeds and stream each finished simulation back. A worker that dies takes
only its unfinished simulations with it; they are reported as failures, never silently lost.
"""

from __future__ import annotations

import mmap
import multiprocessing as mp
import os
import queue
import re
import tempfile
import time
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from propamm_jax.config import MAX_STRATEGIES, SimConfig, check_profile
from propamm_jax.errors import Interrupted, PropammError
from propamm_jax.results import Results, aggregate_table, sim_record, trace_record
from propamm_jax.sandbox import Limits, classify_death, confine, cpu_budget, worker_env
from propamm_jax.tape import parse_seed

DEFAULT_TRACE_STEPS = 300
DEFAULT_SIM_TIMEOUT = 300.0          # seconds of wall time for one simulation
DEFAULT_MEMORY_LIMIT = 4 * 2**30     # address space of one worker process, bytes


@dataclass(frozen=True)
class ScoreRequest:
    """Everything a worker needs; plain data so that it pickles into a spawned process."""

    libraries: tuple[str, ...]
    labels: tuple[str, ...]
    config: SimConfig
    profile: str
    trace_seeds: frozenset[int] = frozenset()
    trace_steps: int = DEFAULT_TRACE_STEPS
    sim_timeout: float = DEFAULT_SIM_TIMEOUT
    memory_limit: int = DEFAULT_MEMORY_LIMIT
    env: tuple[tuple[str, str], ...] = ()   # the workers' whole environment
    native: tuple[str, str] = ("", "")       # compiled scoring core and call guard
    parent_pid: int = 0                      # workers die with this process


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
                       allow_unsafe_source: bool = False) -> Prepared:
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
            resolve_library(p)  # a mistyped path is a usage error, not a bad strategy
        try:
            libraries.append(str(resolve_library(p, allow_unsafe_source)))
            labels.append(Path(p).name)
        except PropammError as exc:
            rejected.append(str(exc))
    warnings: list[str] = []
    if libraries:
        kept = []
        for k, verdict in enumerate(preflight(libraries, labels, strict)):
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


def _worker(request: ScoreRequest, tasks, results, stderr_path: str) -> None:
    """Worker process: confined first (sandbox.confine: stderr to a file the parent reads,
    address-space cap, empty environment, private working directory), then loads the
    strategies once and scores blocks of seeds until told to stop. Each simulation runs under
    a CPU-time limit; every strategy call goes through the call guard, whose cell (a file
    mapped next to the stderr file) tells the parent who was running if the worker dies."""
    workdir = os.path.dirname(stderr_path)
    confine(Limits(request.memory_limit, workdir, stderr_path, dict(request.env),
                   request.parent_pid))
    from propamm_jax.native.bridge import (NativeStrategy, guarded_pools, load_native_libraries,
                                           run_core)
    from propamm_jax.tape_cache import cached_tape
    import numpy as np

    load_native_libraries(*request.native)

    with open(stderr_path[: -len(".stderr")] + ".cell", "r+b") as f:
        cell_map = mmap.mmap(f.fileno(), 4096)
    cell = np.frombuffer(cell_map, dtype=np.uint32, count=1)
    strategies = [NativeStrategy(Path(p), lbl) for p, lbl in zip(request.libraries, request.labels)]
    pools = guarded_pools(strategies, cell.ctypes.data)
    names = [s.name for s in strategies]
    config = request.config
    while True:
        task = tasks.get()
        if task is None:
            return
        block_id, block = task
        results.put(("take", block_id, os.getpid()))
        seeds = [seed for _, seed in block]
        tape = cached_tape(seeds, config.steps)
        fair = tape.fair_prices(config.initial_price)
        for row, (index, seed) in enumerate(block):
            results.put(("start", index, os.getpid()))
            cpu_budget(request.sim_timeout)
            lo, hi = tape.order_start[row, 0], tape.order_start[row, -1]
            trace_steps = request.trace_steps if seed in request.trace_seeds else 0
            run = run_core(
                config, request.profile, pools,
                int(tape.params.norm_fee_bps[row]), float(tape.params.norm_liquidity_mult[row]),
                fair[row], tape.order_start[row] - lo,
                tape.order_is_buy[row, lo:hi], tape.order_size[row, lo:hi], trace_steps,
            )
            record = sim_record(seed, tape.params, row, names, run)
            trace = trace_record(seed, fair[row], tape.order_count[row], run) if trace_steps else None
            results.put(("done", index, (record, trace)))


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


def _blame(cell_path: str, labels: tuple[str, ...]) -> tuple[str | None, str]:
    """(strategy label, 'in compute_swap') from the call guard's cell of a dead worker."""
    try:
        value = int.from_bytes(Path(cell_path).read_bytes()[:4], "little")
    except OSError:
        return None, ""
    slot, kind = divmod(value, 4)
    if value == 0 or slot >= len(labels) or kind not in (1, 2):
        return None, ""
    return labels[slot], "in compute_swap" if kind == 1 else "in after_swap"


def _death(exitcode: int, stderr_path: str, labels: tuple[str, ...], timed_out: float | None
           ) -> tuple[str | None, str, str]:
    """(strategy or None, kind, message) for a worker that died in a simulation.

    The call guard's cell names the strategy (and the function) that was running; a Rust
    panic also names its source file, which identifies the strategy when the cell cannot.
    """
    try:
        text = Path(stderr_path).read_text(errors="replace")
    except OSError:
        text = ""
    who, where = _blame(stderr_path[: -len(".stderr")] + ".cell", labels)
    if timed_out is not None:
        kind, detail = "timeout", (f"no result after {timed_out:g} s (a strategy loops or is "
                                   "far too slow)")
    else:
        kind, detail = classify_death(exitcode, text)
        if kind == "cpu-time-limit":
            kind = "timeout"
    if who is None:
        match = re.search(r"panicked at (?:\S*/)?([^/\s]+\.rs):", text)
        if match:
            who = next((lbl for lbl in labels if Path(lbl).stem == Path(match.group(1)).stem), None)
    return who, kind, f"{where}: {detail}" if where else detail


def _last_line(path: str) -> str:
    try:
        lines = [ln.strip() for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    return lines[-1][:200] if lines else "no output"


class _Pool:
    """Worker processes fed from one task queue; dead workers are replaced."""

    def __init__(self, request: ScoreRequest, workers: int, tmpdir: str):
        self.ctx = mp.get_context("spawn")
        self.tasks = self.ctx.Queue()
        self.results = self.ctx.Queue()
        self.request = request
        self.tmpdir = tmpdir
        self.procs: dict[int, tuple] = {}  # pid -> (process, stderr path)
        self.spawned = 0
        for _ in range(workers):
            self.spawn()

    def spawn(self) -> None:
        path = os.path.join(self.tmpdir, f"worker{self.spawned}.stderr")
        with open(path[: -len(".stderr")] + ".cell", "wb") as f:
            f.write(bytes(4096))  # the call guard's cell, mapped by the worker
        self.spawned += 1
        proc = self.ctx.Process(target=_worker, args=(self.request, self.tasks, self.results, path),
                                daemon=True)
        proc.start()
        self.procs[proc.pid] = (proc, path)

    def dead(self) -> list[tuple[int, int, str]]:
        """(pid, exit code, stderr path) of workers that died, removed from the pool."""
        out = []
        for pid, (proc, path) in list(self.procs.items()):
            if not proc.is_alive() and proc.exitcode not in (None, 0):
                out.append((pid, proc.exitcode, path))
                del self.procs[pid]
        return out

    def close(self) -> None:
        for proc, _ in self.procs.values():
            if proc.is_alive():
                proc.terminate()
        for proc, _ in self.procs.values():
            proc.join(timeout=5)


def run_simulations(request: ScoreRequest, seeds: list[int], workers: int,
                    on_result: Callable[[int, dict, dict | None], None],
                    on_progress: Callable[[int], None] | None = None,
                    on_failure: Callable[[Failure], None] | None = None) -> list[Failure]:
    """Scores `seeds` in `workers` processes, calling `on_result(index, record, trace)` for
    each finished simulation as it arrives. A simulation whose worker dies is reported as a
    failure; the worker is replaced and every other simulation still runs. Returns failures."""
    blocks = dict(enumerate(_blocks(seeds, workers)))
    pending = set(range(len(seeds)))
    started: set[int] = set()
    running: dict[int, int] = {}  # pid -> index being simulated
    since: dict[int, float] = {}  # pid -> when that simulation started
    timed_out: set[int] = set()   # pids killed by the watchdog
    taken: dict[int, int] = {}    # pid -> block being worked on
    failures: list[Failure] = []
    startup_failures = 0
    with tempfile.TemporaryDirectory(prefix="propamm-") as tmpdir:
        pool = _Pool(request, min(workers, len(blocks)), tmpdir)
        for block_id, block in blocks.items():
            pool.tasks.put((block_id, block))
        try:
            while pending:
                try:
                    kind, key, payload = pool.results.get(timeout=0.2)
                except queue.Empty:
                    now = time.monotonic()
                    for pid, started_at in list(since.items()):
                        if now - started_at > request.sim_timeout and pid in pool.procs:
                            timed_out.add(pid)
                            pool.procs[pid][0].kill()
                            pool.procs[pid][0].join(timeout=5)
                            since.pop(pid)
                    for pid, code, path in pool.dead():
                        if pid not in taken:
                            startup_failures += 1
                            if startup_failures > workers:
                                raise PropammError(
                                    "scoring workers fail to start: " + _last_line(path) +
                                    " (a script that calls score() needs an "
                                    "`if __name__ == '__main__':` guard)")
                        index = running.pop(pid, None)
                        if index is not None and index in pending:
                            pending.discard(index)
                            who, kind, reason = _death(
                                code, path, request.labels,
                                request.sim_timeout if pid in timed_out else None)
                            failures.append(Failure(seeds[index], who, kind, reason))
                            if on_failure:
                                on_failure(failures[-1])
                            if on_progress:
                                on_progress(1)
                        # The rest of the dead worker's block goes back in the queue.
                        block = blocks.get(taken.pop(pid, -1), [])
                        rest = [(i, s) for i, s in block if i in pending and i not in started]
                        if rest:
                            blocks[len(blocks)] = rest
                            pool.tasks.put((len(blocks) - 1, rest))
                        pool.spawn()
                    continue
                if kind == "take":
                    taken[payload] = key
                elif kind == "start":
                    running[payload] = key
                    since[payload] = time.monotonic()
                    started.add(key)
                else:
                    for pid in [p for p, i in running.items() if i == key]:
                        since.pop(pid, None)  # the watchdog times simulations, not idle workers
                    pending.discard(key)
                    on_result(key, *payload)
                    if on_progress:
                        on_progress(1)
        finally:
            for _ in pool.procs:
                pool.tasks.put(None)
            pool.close()
    return failures


def score(strategies: Sequence[str | os.PathLike], *, config: SimConfig | None = None,
          simulations: int = 100, seed_start: int = 0, seed_stride: int = 1,
          seeds: Iterable[int] | None = None, profile: str = "reference",
          workers: int | None = None, trace_seeds: Iterable[int] = (),
          trace_steps: int = DEFAULT_TRACE_STEPS, progress: bool | None = None,
          sim_timeout: float = DEFAULT_SIM_TIMEOUT,
          memory_limit: int = DEFAULT_MEMORY_LIMIT, strict: bool = False,
          allow_unsafe_source: bool = False, journal: str | os.PathLike | None = None,
          resume: bool = False) -> ScoreResult:
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

    `journal`: a path, or "auto" (`<cache>/journals/<run key>.jsonl`), to which every
    finished simulation is appended as it arrives; with `resume`, simulations already in it
    are read back instead of run again.
    """
    config = config or SimConfig()
    profile = check_profile(profile)
    seed_values = [parse_seed(s) for s in seeds] if seeds is not None else seed_list(
        simulations, seed_start, seed_stride)
    if not seed_values:
        raise PropammError("no seeds to score")
    workers = workers or os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise PropammError(f"--workers must be a positive integer, got {workers!r}")
    prepared = prepare_strategies(strategies, strict=strict,
                                  allow_unsafe_source=allow_unsafe_source)
    traced = frozenset(parse_seed(s) for s in trace_seeds)
    request = ScoreRequest(tuple(prepared.libraries), tuple(prepared.labels), config, profile,
                           traced, trace_steps, float(sim_timeout), int(memory_limit),
                           tuple(sorted(worker_env().items())), _native_libraries(), os.getpid())

    records: dict[int, dict] = {}
    traces: dict[int, dict] = {}
    writer = None
    if journal is not None:
        from propamm_jax import journal as jr

        identity = jr.run_identity(profile, config.to_json(), prepared.labels,
                                   prepared.libraries, seed_values, traced, trace_steps)
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
        if todo:
            failures = run_simulations(request, [seed_values[i] for i in todo], workers, keep,
                                       bar.update if bar is not None else None)
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
