"""Official scoring of compiled strategies: the native core fed by the market tape.

Compiled strategies are untrusted native code, so they never run in the caller's process:
worker processes (spawned, never forked, so no JAX state leaks in) load them, generate the
tape for a block of seeds and stream each finished simulation back. A worker that dies takes
only its unfinished simulations with it; they are reported as failures, never silently lost.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import resource
import re
import signal
import tempfile
import time
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from propamm_jax.config import MAX_STRATEGIES, SimConfig, check_profile
from propamm_jax.errors import PropammError
from propamm_jax.results import Results, aggregate_table, sim_record, trace_record
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


def prepare_strategies(paths: Sequence[str | os.PathLike]) -> tuple[list[str], list[str]]:
    """Compiles (or accepts) each strategy and checks its ABI in a throwaway process.

    Returns (library paths, labels). Errors name the file.
    """
    from propamm_jax.native.build import resolve_library

    if not paths:
        raise PropammError("no strategy given: pass at least one .rs or .so file")
    if len(paths) > MAX_STRATEGIES:
        raise PropammError(f"{len(paths)} strategies given; the engine takes at most {MAX_STRATEGIES}")
    libraries = [str(resolve_library(p)) for p in paths]
    labels = [Path(p).name for p in paths]
    _check_abi(libraries, labels)
    return libraries, labels


def _check_abi(libraries: list[str], labels: list[str]) -> None:
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        problem = pool.apply(_abi_problem, (libraries, labels))
    if problem:
        raise PropammError(problem)


def _abi_problem(libraries: list[str], labels: list[str]) -> str | None:
    from propamm_jax.native.bridge import NativeStrategy

    for lib, label in zip(libraries, labels):
        try:
            NativeStrategy(Path(lib), label)
        except PropammError as exc:
            return str(exc)
    return None


def _worker(request: ScoreRequest, tasks, results, stderr_path: str) -> None:
    """Worker process: load strategies once, then score blocks of seeds until told to stop.

    Its stderr goes to `stderr_path`, so a strategy's panic message reaches the failure
    report instead of the user's terminal.
    """
    fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 2)
    # A strategy that allocates without bound fails here, not on the machine.
    resource.setrlimit(resource.RLIMIT_AS, (request.memory_limit, request.memory_limit))
    os.chdir(os.path.dirname(stderr_path))  # a private temporary working directory
    from propamm_jax.native.bridge import NativeStrategy, PoolSpec, run_core
    from propamm_jax.tape_cache import cached_tape

    strategies = [NativeStrategy(Path(p), lbl) for p, lbl in zip(request.libraries, request.labels)]
    pools = [PoolSpec.native(s) for s in strategies]
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
    """Blocks of (index, seed), small enough to balance the workers (tape cost is per seed)."""
    per_worker = -(-len(seeds) // workers)
    size = max(1, min(max_block, per_worker))
    indexed = list(enumerate(seeds))
    return [indexed[i : i + size] for i in range(0, len(indexed), size)]


def _crash_reason(exitcode: int, stderr_path: str, labels: tuple[str, ...]) -> tuple[str | None, str]:
    """(strategy label or None, 'SIGABRT: panicked at file.rs:30:9: message') for a dead worker.

    A Rust panic names the source file it came from, which identifies the strategy.
    """
    kind = f"exit code {exitcode}"
    if exitcode < 0:
        try:
            kind = signal.Signals(-exitcode).name
        except ValueError:
            kind = f"signal {-exitcode}"
    try:
        text = Path(stderr_path).read_text(errors="replace")
    except OSError:
        text = ""
    match = re.search(r"panicked at (?:\S*/)?([^/\s]+\.rs):(\d+):\d+:\s*\n?(.*)", text)
    if not match:
        return None, kind
    source, line, message = match.groups()
    strategy = next((lbl for lbl in labels if Path(lbl).stem == Path(source).stem), None)
    return strategy, f"{kind}: panicked at {source}:{line}: {message.strip()}"[:300]


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
                    on_progress: Callable[[int], None] | None = None) -> list[Failure]:
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
                            if pid in timed_out:
                                failures.append(Failure(
                                    seeds[index], None, "timeout",
                                    f"no result after {request.sim_timeout:g} s (a strategy "
                                    "loops or is far too slow)"))
                            else:
                                who, reason = _crash_reason(code, path, request.labels)
                                failures.append(Failure(seeds[index], who, "crash", reason))
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
          memory_limit: int = DEFAULT_MEMORY_LIMIT) -> ScoreResult:
    """Scores compiled strategies officially, bit-identical to the reference engine.

    `strategies`: `.rs` sources (compiled with the reference's flags, cached) or `.so` files.
    `seeds` overrides `simulations`/`seed_start`/`seed_stride`. `profile` is `reference`
    (official) or `corrected`. Returns results in the golden schema and DataFrames.
    A simulation that crashes, exceeds `sim_timeout` seconds or makes its worker exceed
    `memory_limit` bytes becomes a `Failure`; every other simulation still completes.
    """
    config = config or SimConfig()
    profile = check_profile(profile)
    seed_values = [parse_seed(s) for s in seeds] if seeds is not None else seed_list(
        simulations, seed_start, seed_stride)
    if not seed_values:
        raise PropammError("no seeds to score")
    libraries, labels = prepare_strategies(strategies)
    request = ScoreRequest(tuple(libraries), tuple(labels), config, profile,
                           frozenset(parse_seed(s) for s in trace_seeds), trace_steps,
                           float(sim_timeout), int(memory_limit))
    workers = workers or os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise PropammError(f"--workers must be a positive integer, got {workers!r}")

    records: dict[int, dict] = {}
    traces: dict[int, dict] = {}

    def keep(index: int, record: dict, trace: dict | None) -> None:
        records[index] = record
        if trace is not None:
            traces[index] = trace

    bar = _progress_bar(len(seed_values), progress)
    try:
        failures = run_simulations(request, seed_values, workers, keep,
                                   bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    results = Results(
        engine=profile, config=config, strategies=labels,
        sims=[records[i] for i in sorted(records)],
        traces=[traces[i] for i in sorted(traces)] or None,
    )
    return ScoreResult(results, failures)


def _progress_bar(total: int, progress: bool | None):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="sim", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


def format_table(result: ScoreResult | Results) -> str:
    """The reference CLI's table."""
    results = result.results if isinstance(result, ScoreResult) else result
    return aggregate_table(results)


__all__ = ["score", "ScoreResult", "Failure", "format_table", "seed_list"]
