"""The one batch runner: `lax.scan` of the fast step over packed events, split over the
local devices, its compiled programs kept on disk.

`run_batch` is the scan itself (jit it, differentiate it). `BatchRunner` is what `simulate`,
`sweep` and `train` call: `run_batch` compiled once per shape and stored.

A fresh process would spend about half a second tracing, lowering and asking XLA's
compilation cache for the batch program before its first event ran. `BatchRunner` compiles
the program once (`jax.jit` of a `shard_map` over the local devices: each device runs its own
slice of the simulations, with no communication) and stores the compiled executable under
`<cache>/programs/` (`jax.experimental.serialize_executable`), keyed by everything it depends
on: the package's source (and that of any pool class defined elsewhere), the JAX version, the
pools, the config, the profile, the shapes, the devices, `XLA_FLAGS` and the host CPU (a
function patched at run time is not: set `PROPAMM_NO_PROGRAM_CACHE=1` then). Later processes
load it in a few tens of milliseconds and call it directly. Anything that goes wrong on that path (a damaged file, a
JAX that cannot serialize) falls back to compiling, which XLA's own cache still speeds up.
"""

from __future__ import annotations

import hashlib
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from propamm_jax.config import SimConfig

VERSION = "v3"


class Outcome(NamedTuple):
    """What a batch returns (leading axis: simulations), host arrays."""

    cumulative_edge: np.ndarray  # [sims, N + 1]
    capital_weight: np.ndarray   # [sims, N]
    log_edge: np.ndarray         # [sims, N, epochs]
    log_trades: np.ndarray
    log_score: np.ndarray


def run_batch(engine, params, market, packed):
    """Every simulation of a batch from `init` to the last event: `lax.scan` of
    `engine.step` over `packed` ([events, sims]). `params` are shared, or with
    `engine.batched_params` carry the simulations' axis FIRST on every leaf. Returns the
    closed final `State` with the simulations' axis first (`rx`: [sims, pools + 1])."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    from propamm_jax.fast.types import Market, close

    if engine.batched_params:
        params = jax.tree_util.tree_map(lambda a: jnp.moveaxis(jnp.asarray(a), 0, -1), params)
    dtype = packed.price.dtype
    market = Market(*(jnp.asarray(a, dtype) for a in market))
    s0 = engine.init(params, market)
    final, _ = lax.scan(lambda s, ev: (engine.step(s, ev, params, market), None), s0,
                        type(packed)(*packed))
    return jax.tree_util.tree_map(lambda a: jnp.moveaxis(a, -1, 0), close(final))


def _source_digest() -> str:
    """Hash of the package's Python source: any change makes stored programs stale."""
    root = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _pools_digest(pools) -> str:
    """Hash of the files that define the pools' classes, for pools defined outside this
    package (a user's own pool class): editing one makes stored programs stale too."""
    import inspect
    import sys

    h = hashlib.sha256()
    for pool in pools:
        module = sys.modules.get(type(pool).__module__)
        try:
            path = inspect.getsourcefile(module) if module is not None else None
        except TypeError:
            path = None
        h.update((type(pool).__module__ + type(pool).__qualname__).encode())
        if path and os.path.exists(path):
            h.update(Path(path).read_bytes())
    return h.hexdigest()


def _host_signature() -> str:
    """What a compiled CPU executable depends on besides its program: the processor (XLA
    compiles for the host's instruction set) and the flags XLA was started with."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("model name", "flags")):
                    cpu += line
                if line.startswith("flags"):
                    break
    except OSError:
        cpu = platform.processor()
    return repr((platform.machine(), cpu, os.environ.get("XLA_FLAGS", "")))


class BatchRunner:
    """`run(norm_fee, norm_liquidity_mult, packed, params) -> Outcome` for one batch of
    `fast.pack_events`, split evenly over the local devices when the batch divides among them.
    `run.program(width, rows, dtype, params, step_type)` prepares the program ahead (so that
    it can overlap host work); a call prepares what is missing. `batched_params`: one
    parameter set per simulation (leading axis), as `sweep` and `train` run them."""

    def __init__(self, pools: Sequence[Any], config: SimConfig, profile: str,
                 batched_params: bool = False):
        import jax

        from propamm_jax.fast.step import Engine

        self.engine = Engine(tuple(pools), config, profile, batched_params=batched_params)
        self.pools, self.config, self.profile = list(pools), config, profile
        self.batched_params = batched_params
        self.devices = jax.local_devices()
        self.programs: dict = {}

    def _split(self, rows: int) -> int:
        d = len(self.devices)
        return d if d > 1 and rows % d == 0 else 1

    def _mesh(self, d: int):
        """The first `d` local devices as one axis of simulations."""
        from jax.sharding import Mesh

        return Mesh(np.array(self.devices[:d]), ("sims",))

    def _sharded(self, treedef, d: int):
        """The batch program on flat arguments, each of `d` devices simulating its own columns
        of the events (`shard_map`: no collective, so the devices never wait on each other)."""
        import jax
        from jax.sharding import PartitionSpec as P

        from propamm_jax.fast.types import Market, Packed

        def sim(fee, mult, step, flags, size, price, *leaves):
            final = run_batch(self.engine, jax.tree_util.tree_unflatten(treedef, leaves),
                              Market(fee, mult), Packed(step, flags, size, price))
            return tuple(getattr(final, f) for f in Outcome._fields)

        mesh = self._mesh(d)
        column, row = P(None, "sims"), P("sims")
        param = row if self.batched_params else P()
        specs = (row, row, column, column, column, column) + (param,) * treedef.num_leaves
        return jax.jit(jax.shard_map(sim, mesh=mesh, in_specs=specs,
                                     out_specs=(row,) * len(Outcome._fields), check_vma=False))

    def program(self, width: int, rows: int, dtype, params, step_type):
        import jax

        leaves, treedef = jax.tree_util.tree_flatten(params)
        d = self._split(rows)
        key = (width, rows, np.dtype(dtype).name, np.dtype(step_type).name, d, str(treedef))
        if key in self.programs:
            return self.programs[key]
        spec = jax.ShapeDtypeStruct
        shapes = ((spec((rows,), dtype), spec((rows,), dtype), spec((width, rows), step_type),
                   spec((width, rows), np.uint8), spec((width, rows), dtype),
                   spec((width, rows), dtype))
                  + tuple(spec(np.shape(x), np.asarray(x).dtype) for x in leaves))
        prog = self._stored(shapes, treedef, d)
        if prog is None:
            prog = self._sharded(treedef, d).lower(*shapes).compile()
        self.programs[key] = prog
        return prog

    def _stored(self, shapes, treedef, d: int):
        """The compiled program, loaded or compiled and stored, or None (then the caller
        compiles it without storing)."""
        import jax

        if os.environ.get("PROPAMM_NO_PROGRAM_CACHE"):
            return None
        try:
            from jax.experimental import serialize_executable as se

            from propamm_jax.native.build import cache_dir

            text = repr((VERSION, _source_digest(), _pools_digest(self.pools), jax.__version__,
                         self.pools, self.config, self.profile, self.batched_params,
                         [(s.shape, str(s.dtype)) for s in shapes], str(treedef),
                         jax.default_backend(), d, [str(x) for x in self.devices[:d]],
                         _host_signature()))
            path = (cache_dir() / "programs" /
                    f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.bin")
            in_tree = jax.tree_util.tree_structure((tuple(range(len(shapes))), {}))
            out_tree = jax.tree_util.tree_structure(tuple(range(len(Outcome._fields))))
            if path.exists():
                try:
                    return _Loaded(se.deserialize_and_load(
                        path.read_bytes(), in_tree, out_tree, execution_devices=self.devices[:d]),
                        path)
                except Exception:  # noqa: BLE001 - damaged: compiled again below
                    pass
            # Compiled afresh: an executable that XLA's persistent cache handed back serializes
            # without its kernels (loading it then fails at the first call).
            enabled = jax.config.jax_enable_compilation_cache
            jax.config.update("jax_enable_compilation_cache", False)
            try:
                compiled = self._sharded(treedef, d).lower(*shapes).compile()
            finally:
                jax.config.update("jax_enable_compilation_cache", enabled)
            blob, c_in, c_out = se.serialize(compiled)
            if c_in != in_tree or c_out != out_tree:
                return compiled  # an unexpected calling convention: use it, do not store it
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.replace(tmp, path)
            return compiled
        except Exception:  # noqa: BLE001 - any failure here only costs compile time
            return None

    def put(self, fields: list):
        """`fast.Packed` fields (a list, emptied here) copied to the devices with the
        program's sharding, dropping each host array as soon as it is copied. Returns a
        `Packed` of device arrays that `__call__` takes without another copy."""
        import jax
        from jax.sharding import NamedSharding, PartitionSpec as P

        from propamm_jax.fast.types import Packed

        sharding = NamedSharding(self._mesh(self._split(fields[0].shape[1])), P(None, "sims"))
        out = []
        while fields:
            host = fields.pop(0)
            out.append(jax.device_put(host, sharding).block_until_ready())
            del host
        return Packed(*out)

    def __call__(self, fee, mult, packed, params) -> Outcome:
        import jax

        width, rows = packed.step.shape
        args = (np.asarray(fee), np.asarray(mult), *packed, *jax.tree_util.tree_leaves(params))
        prog = self.program(width, rows, packed.price.dtype, params, packed.step.dtype)
        try:
            return Outcome(*(np.asarray(a) for a in prog(*args)))
        except Exception:  # noqa: BLE001 - only a stored program is given a second chance
            if not isinstance(prog, _Loaded):
                raise
        # A stored executable that loaded but cannot run here: drop it and compile.
        prog.path.unlink(missing_ok=True)
        self.programs.clear()
        prog = self.program(width, rows, packed.price.dtype, params, packed.step.dtype)
        return Outcome(*(np.asarray(a) for a in prog(*args)))


class _Loaded(NamedTuple):
    """A program loaded from the store, with the file it came from."""

    compiled: Any
    path: Path

    def __call__(self, *args):
        return self.compiled(*args)
