"""Scale-out on Ray (`--ray ADDRESS`): the same work as a local run, fanned out as Ray tasks.

Official scoring sends blocks of seeds to tasks; each task runs the local scheduler
(`scoring.run_simulations`) on its block with one sandboxed worker, which the Ray worker
keeps loaded for the run's later blocks, so strategies load in the same sandbox as on one
machine. The strategy libraries and the scoring core are built once,
on the driver, and shipped by content: their bytes go into the object store once and each
node writes them to `<cache>/shipped/<sha256>/` (no rustc on the nodes). Each finished block
comes back to the driver as soon as it completes, and its simulations go into the journal
then, so `--resume` works after the driver itself is lost; a task whose worker or node dies
is run again by Ray (`MAX_RETRIES`), and what finished before is never lost.

Fast-path batches (`simulate`, `sweep`, a training population's evaluation) fan out by
chunks of seeds, each task calling the same local function on its chunk (on a GPU when the
cluster has them); a simulation's result does not depend on the batch it ran in, so the
chunks, gathered in seed order, give the local run's results exactly.

Ray is an optional dependency (`pip install 'propamm-jax[ray]'`), imported only here.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import math
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from propamm_jax.errors import PropammError

INSTALL_HINT = "--ray needs Ray, which is not installed: pip install 'propamm-jax[ray]'"
MAX_RETRIES = 3            # runs of a task whose worker or node was lost, after the first
TASKS_PER_CPU = 3          # blocks per CPU of the cluster: balance against per-task start-up
MAX_BLOCK = 32             # seeds in one official-scoring task at most
IN_FLIGHT_PER_CPU = 4      # tasks submitted ahead per CPU (or GPU) of the cluster
# Environment the driver passes on to the tasks (what changes how results are computed or
# cached; XLA's flags without the device count, which each task sets for itself).
FORWARDED_ENV = ("XLA_FLAGS", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION",
                 "PROPAMM_NO_TAPE_CACHE", "PROPAMM_NO_PROGRAM_CACHE", "PROPAMM_NO_BATCH_CACHE")
_ADDRESS = re.compile(r"^(auto|local|[\w.\-]+:\d+)$")


def check_address(address: str) -> str:
    """`auto`, `local` or `HOST:PORT`, and Ray importable; else one line."""
    if not isinstance(address, str) or not _ADDRESS.match(address):
        raise PropammError(f"--ray {address!r}: expected auto, local or HOST:PORT")
    try:
        import ray  # noqa: F401
    except ImportError:
        raise PropammError(INSTALL_HINT) from None
    return address


def worker_env(environ: dict | None = None) -> dict[str, str]:
    """The variables the tasks run with: those of `FORWARDED_ENV` the driver has, XLA's
    flags asking for one host device per task (a task holds one CPU)."""
    environ = os.environ if environ is None else environ
    env = {k: environ[k] for k in FORWARDED_ENV if k in environ}
    flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", env.get("XLA_FLAGS", ""))
    env["XLA_FLAGS"] = f"{flags.strip()} --xla_force_host_platform_device_count=1".strip()
    return env


def connect(address: str):
    """The `ray` module, connected to `address` (`local` starts a private cluster here)."""
    check_address(address)
    import ray

    if ray.is_initialized():
        return ray
    # No runtime_env: workers with one start later (~3 s here); `_traced` sets the variables.
    options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address == "local":
        options["include_dashboard"] = False
    elif address != "auto":
        _reachable(address)
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PropammError(f"--ray {address}: cannot connect: {first[:300]}") from None
    return ray


_WARMING: list = []   # warm-up tasks in flight (kept referenced until the run ends)


def start(address: str, jax: bool = False) -> None:
    """Connects and starts one worker per CPU of the cluster now, so that their start-up
    (a few seconds each on a busy machine: Python, Ray, and JAX when `jax`) overlaps the
    driver's own preparation (compiling and checking strategies, importing JAX)."""
    ray = connect(address)
    warm = ray.remote(_traced).options(num_cpus=1, max_retries=0)
    env = ray.put(worker_env())
    _WARMING.extend(warm.remote(env, _warm, jax) for _ in range(_cpus(ray)))


def _warm(jax: bool) -> None:
    """A warm-up task: the worker exists now, with JAX loaded when asked."""
    if jax:
        configure_jax()


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Ray's core ends the whole process when a GCS it was pointed at never answers: try the
    port first, so an unreachable cluster is one line."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise PropammError(f"--ray {address}: cannot connect ({exc.strerror or exc}); is a "
                           "Ray cluster running there? (ray start --head)") from None


def shutdown() -> None:
    """Disconnects (and stops a cluster started by `local`); for processes that exit
    without running their atexit handlers."""
    global _TOOK_PART
    _TOOK_PART = Participation()
    _WARMING.clear()
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


# ─── Who took part ───────────────────────────────────────────────────────────────────────

@dataclass
class Participation:
    """Nodes and worker processes whose tasks finished, across one run's fan-outs."""

    workers: dict[str, set[str]] = field(default_factory=dict)   # node -> worker ids
    tasks: int = 0

    def add(self, node: str, worker: str) -> None:
        self.workers.setdefault(node, set()).add(worker)
        self.tasks += 1

    def line(self) -> str:
        n_workers = sum(len(w) for w in self.workers.values())
        return (f"ray: {len(self.workers)} node{'s' * (len(self.workers) != 1)}, "
                f"{n_workers} worker{'s' * (n_workers != 1)} took part ({self.tasks} tasks)")


_TOOK_PART = Participation()


def took_part() -> str | None:
    """The line saying which nodes and workers ran this process's tasks so far, or None."""
    return _TOOK_PART.line() if _TOOK_PART.tasks else None


def _whoami() -> tuple[str, str]:
    import ray

    ctx = ray.get_runtime_context()
    return ctx.get_node_id(), ctx.get_worker_id()


def _cpus(ray) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _gpus(ray) -> int:
    return int(ray.cluster_resources().get("GPU", 0))


def fan_out(address: str, function: Callable, chunks: Sequence[tuple], *,
            on_done: Callable[[int, Any], None], num_cpus: float = 1, num_gpus: float = 0,
            shared: Sequence[Any] = (), on_lost: Callable[[int, str], None] | None = None,
            ) -> None:
    """Runs `function(*shared, *chunk)` for each chunk as a Ray task (retried on a lost
    worker or node) and calls `on_done(k, value)` for chunk k in completion order. A task
    still lost after its retries goes to `on_lost(k, why)` when given (the rest still run),
    else ends the run with one line, as does an error raised in a task (what finished stays
    delivered). At most `IN_FLIGHT_PER_CPU` tasks per CPU are submitted at a time: waiting
    on all of a million-simulation run's tasks at once would cost the driver O(tasks) per
    completion."""
    ray = connect(address)
    remote = ray.remote(_traced).options(num_cpus=num_cpus, num_gpus=num_gpus,
                                         max_retries=MAX_RETRIES, retry_exceptions=False)
    shared_refs = [ray.put(x) for x in (worker_env(), function, *shared)]
    queue = iter(enumerate(chunks))
    window = IN_FLIGHT_PER_CPU * (_gpus(ray) if num_gpus else _cpus(ray))
    futures: dict = {}

    def submit() -> None:
        for k, chunk in queue:
            futures[remote.remote(*shared_refs, *chunk)] = k
            if len(futures) >= window:
                return

    try:
        submit()
        while futures:
            done, _ = ray.wait(list(futures), num_returns=1)
            k = futures.pop(done[0])
            try:
                value, node, worker = ray.get(done[0])
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, PropammError):
                    raise PropammError(str(cause)) from None
                raise PropammError(f"ray task {k} failed: {_first_line(exc)}") from None
            except ray.exceptions.RayError as exc:
                why = f"ray task lost after {MAX_RETRIES} retries: {_first_line(exc)}"
                if on_lost is None:
                    raise PropammError(f"{why} (task {k})") from None
                submit()
                on_lost(k, why)
                continue
            _TOOK_PART.add(node, worker)
            submit()
            on_done(k, value)
    finally:
        for ref in futures:
            ray.cancel(ref, force=True)


def _first_line(exc: BaseException) -> str:
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]


def _traced(env: dict[str, str], function: Callable, *args):
    """Runs in the task: the driver's variables set (XLA's flags count only before JAX is
    first imported in this worker, which is by a task of this job), then the value plus the
    node and worker that computed it."""
    os.environ.update(env)
    return (function(*args), *_whoami())


def chunk_size(n: int, cpus: int, largest: int) -> int:
    """Items per task: about `TASKS_PER_CPU` tasks per CPU, at most `largest`."""
    return max(1, min(largest, math.ceil(n / (cpus * TASKS_PER_CPU))))


# ─── Official scoring ────────────────────────────────────────────────────────────────────

def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def materialize(name: str, digest: str, data: bytes) -> str:
    """The shipped file on this node, `<cache>/shipped/<sha256>/<name>`, written once
    (atomically) and checked against its hash."""
    from propamm_jax.native.build import cache_dir

    if _digest(data) != digest:
        raise PropammError(f"shipped library {name}: content does not match its sha256")
    path = cache_dir() / "shipped" / digest / name
    if path.exists() and path.stat().st_size == len(data):
        return str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return str(path)


_KEPT: dict = {}   # (request, sandbox) -> the kept `scoring._Pool` of this Ray worker


def _kept_pool(request, sandbox: str):
    """This Ray worker's sandboxed scoring worker for `request`, loaded once and kept for
    the run's later blocks (~1.3 s saved per task here); one request's pool at a time. It
    ends with this process (the sandbox's workers die with their parent)."""
    from propamm_jax.official.scoring import _Pool

    key = (request, sandbox)
    if key not in _KEPT:
        if not _KEPT:
            atexit.unregister(_drop_pools)
            atexit.register(_drop_pools)
        _drop_pools()
        _sweep_stale_folders()
        folder = tempfile.mkdtemp(prefix=f"{KEPT_PREFIX}{os.getpid()}-")
        _KEPT[key] = _Pool(request, folder, sandbox, kept=True)
    return _KEPT[key]


KEPT_PREFIX = "propamm-kept-"   # + the Ray worker's pid: a kept pool's folder


def _sweep_stale_folders() -> None:
    """Removes the folders of kept pools whose Ray worker is gone (Ray ends its workers
    without running their exit handlers)."""
    for path in Path(tempfile.gettempdir()).glob(f"{KEPT_PREFIX}*"):
        pid = path.name[len(KEPT_PREFIX):].split("-")[0]
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (ValueError, OSError):
            continue   # not ours, or alive under another user


def _drop_pools() -> None:
    for pool in _KEPT.values():
        pool.close()
        shutil.rmtree(pool.tmpdir, ignore_errors=True)
    _KEPT.clear()


def score_block(request, sandbox: str, names: tuple[str, ...], digests: tuple[str, ...],
                blobs: tuple[bytes, ...], block: list[tuple[int, int]]) -> tuple[list, list]:
    """A Ray task: the libraries written to this node's cache, then the local scheduler on
    one block of (index, seed) with this Ray worker's kept sandboxed worker. Returns
    ([(index, record, trace)], [Failure])."""
    from propamm_jax.official.scoring import run_simulations

    paths = [materialize(n, d, b) for n, d, b in zip(names, digests, blobs)]
    k = len(request.libraries)
    local = replace(request, libraries=tuple(paths[:k]), native=tuple(paths[k:]))
    done: list = []
    try:
        failures = run_simulations(
            local, [seed for _, seed in block], 1,
            lambda j, record, trace: done.append((block[j][0], record, trace)),
            sandbox=sandbox, pool=_kept_pool(local, sandbox))
    except BaseException:
        _drop_pools()   # its workers' state is unknown now
        raise
    return done, failures


def run_simulations(request, seeds: list[int], address: str,
                    on_result: Callable[[int, dict, dict | None], None],
                    on_progress: Callable[[int], None] | None = None,
                    sandbox: str = "auto") -> list:
    """`scoring.run_simulations` across a Ray cluster: blocks of seeds as tasks, each
    finished block's simulations passed to `on_result(index, record, trace)` as it arrives.
    Returns the failures."""
    from propamm_jax.official.scoring import _blocks

    if request.preload:  # indexed by the run's simulations, which each task renumbers
        raise PropammError("preloaded storage (training) does not run on Ray")
    ray = connect(address)
    files = [*request.libraries, *request.native]
    blobs = [Path(f).read_bytes() for f in files]
    names = tuple(Path(f).name for f in files)
    digests = tuple(_digest(b) for b in blobs)
    blocks = _blocks(seeds, _cpus(ray) * TASKS_PER_CPU, MAX_BLOCK)
    failures: list = []

    def done(_k: int, value) -> None:
        results, failed = value
        for index, record, trace in results:
            on_result(index, record, trace)
        failures.extend(failed)
        if on_progress:
            on_progress(len(results) + len(failed))

    def lost(k: int, why: str) -> None:
        """A block Ray could not finish: each of its simulations is a failure, as a lost
        worker's simulation is locally; every other block still runs."""
        from propamm_jax.official.scoring import Failure

        failures.extend(Failure(seed, None, "crash", why) for _, seed in blocks[k])
        if on_progress:
            on_progress(len(blocks[k]))

    fan_out(address, score_block, [(b,) for b in blocks], on_done=done, on_lost=lost,
            shared=(request, sandbox, names, digests, tuple(blobs)))
    return failures


# ─── Fast path ───────────────────────────────────────────────────────────────────────────

def configure_jax() -> None:
    """In a task: 64-bit JAX and the node's persistent compilation cache (the device count
    comes from the XLA_FLAGS of `worker_env`)."""
    import jax

    from propamm_jax.native.build import cache_dir

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def _call(function: Callable, args: tuple, kwargs: dict, chunk: list):
    """A fast-path task: `function(*args, chunk, **kwargs)` with JAX set up."""
    configure_jax()
    return function(*args, chunk, **kwargs)


def map_seeds(address: str, function: Callable, args: tuple, seeds: Sequence[int],
              kwargs: dict | None = None, largest: int = 1000,
              on_chunk: Callable[[int], None] | None = None) -> list:
    """`[function(*args, chunk, **kwargs) for chunk in chunks of seeds]`, computed as Ray
    tasks (one GPU each when the cluster has GPUs, else one CPU) and returned in seed order;
    `on_chunk(len(chunk))` as each one finishes."""
    ray = connect(address)
    seeds = list(seeds)
    gpus = _gpus(ray)
    size = chunk_size(len(seeds), gpus or _cpus(ray), largest)
    chunks = [seeds[i : i + size] for i in range(0, len(seeds), size)]
    values: dict[int, Any] = {}

    def done(k: int, value) -> None:
        values[k] = value
        if on_chunk:
            on_chunk(len(chunks[k]))

    fan_out(address, _call, [(c,) for c in chunks], on_done=done,
            num_cpus=0 if gpus else 1, num_gpus=1 if gpus else 0,
            shared=(function, tuple(args), dict(kwargs or {})))
    return [values[k] for k in range(len(chunks))]
