"""Running packed batches of the fast path: split over devices, programs kept on disk.

A fresh process would spend about half a second tracing and lowering the batch program
before XLA's compilation cache could even be asked. `BatchRunner` exports the per-device
program once (`jax.export`) and stores it under `<cache>/programs/`, keyed by everything it
depends on: the package's source, the JAX version, the pools, the config, the profile and
the shapes. Later processes deserialize it and only wrap it in `jax.pmap`. Anything that
goes wrong on that path (no `flatbuffers`, a damaged file) falls back to tracing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from propamm_jax.config import SimConfig

VERSION = "v1"


class Outcome(NamedTuple):
    """What a batch returns (leading axis: simulations), host arrays."""

    cumulative_edge: np.ndarray  # [sims, N + 1]
    capital_weight: np.ndarray   # [sims, N]
    log_edge: np.ndarray         # [sims, N, epochs]
    log_trades: np.ndarray
    log_score: np.ndarray


def _source_digest() -> str:
    """Hash of the package's Python source: any change makes stored programs stale."""
    root = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


class BatchRunner:
    """`run(norm_fee, norm_liquidity_mult, packed, params) -> Outcome` for one batch of
    `fast.pack_events`, split evenly over the local devices when the batch divides among them.
    `run.program(width, rows, dtype, params, step_type)` prepares the program ahead (so that
    it can overlap host work); a call prepares what is missing."""

    def __init__(self, pools: Sequence[Any], config: SimConfig, profile: str):
        import jax

        self.pools, self.config, self.profile = list(pools), config, profile
        self.devices = jax.local_devices()
        self.programs: dict = {}

    def _flat(self, treedef):
        """The per-device program on flat arguments and results (what export stores)."""
        import jax

        from propamm_jax.fast import Packed, simulate_packed

        def sim(fee, mult, step, flags, size, price, *leaves):
            final = simulate_packed(self.pools, jax.tree_util.tree_unflatten(treedef, leaves),
                                    self.config, self.profile, fee, mult,
                                    Packed(step, flags, size, price))
            return tuple(getattr(final, f) for f in Outcome._fields)

        return sim

    def _split(self, rows: int) -> int:
        d = len(self.devices)
        return d if d > 1 and rows % d == 0 else 1

    def program(self, width: int, rows: int, dtype, params, step_type):
        import jax

        leaves, treedef = jax.tree_util.tree_flatten(params)
        d = self._split(rows)
        key = (width, rows, np.dtype(dtype).name, np.dtype(step_type).name, d, str(treedef))
        if key in self.programs:
            return self.programs[key]
        spec = jax.ShapeDtypeStruct
        per = rows // d
        shapes = ((spec((per,), dtype), spec((per,), dtype), spec((width, per), step_type),
                   spec((width, per), np.uint8), spec((width, per), dtype),
                   spec((width, per), dtype))
                  + tuple(spec(np.shape(x), np.asarray(x).dtype) for x in leaves))
        fn = self._stored(shapes, treedef) or self._flat(treedef)
        n_leaves = len(leaves)
        if d == 1:
            prog = jax.jit(fn)
        else:
            prog = jax.pmap(fn, in_axes=(0, 0, 1, 1, 1, 1) + (None,) * n_leaves,
                            devices=self.devices)
        self.programs[key] = prog
        return prog

    def _stored(self, shapes, treedef):
        """The exported program's `call`, loaded or made and stored, or None."""
        import jax

        if os.environ.get("PROPAMM_NO_PROGRAM_CACHE"):
            return None
        try:
            from jax import export

            from propamm_jax.native.build import cache_dir

            text = repr((VERSION, _source_digest(), jax.__version__, self.pools, self.config,
                         self.profile, [(s.shape, str(s.dtype)) for s in shapes], str(treedef),
                         jax.default_backend()))
            path = (cache_dir() / "programs" /
                    f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.bin")
            if path.exists():
                try:
                    return export.deserialize(bytearray(path.read_bytes())).call
                except Exception:  # noqa: BLE001 - damaged: made again below
                    pass
            exported = export.export(jax.jit(self._flat(treedef)))(*shapes)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(exported.serialize())
            os.replace(tmp, path)
            return exported.call
        except Exception:  # noqa: BLE001 - any failure here only costs tracing time
            return None

    def __call__(self, fee, mult, packed, params) -> Outcome:
        import jax

        width, rows = packed.step.shape
        prog = self.program(width, rows, packed.price.dtype, params, packed.step.dtype)
        d = self._split(rows)
        fee, mult = np.asarray(fee), np.asarray(mult)
        arrays = list(packed)
        if d > 1:
            fee, mult = fee.reshape(d, rows // d), mult.reshape(d, rows // d)
            arrays = [a.reshape(width, d, rows // d) for a in arrays]
        out = prog(fee, mult, *arrays, *jax.tree_util.tree_leaves(params))
        # Gathered to the host (where the results go anyway), not reshaped on the devices.
        return Outcome(*(np.asarray(a).reshape((rows,) + a.shape[2:]) if d > 1 else np.asarray(a)
                         for a in out))
