"""The fast engine: thousands of simulations of parametric pools as one JAX program.

- `types`: the typed pytrees (`State`, `Event`/`Packed`, `Market`).
- `step`: `Engine` (and the functions `init`, `step`), the public gymnax-style transition.
- `curves` and `solvers`: closed forms where a pool family has them, generic Newton solves
  with implicit derivatives otherwise.
- `events`: the one event builder (a `Tape` to `Packed` events); `event_cache` keeps built
  batches on disk.
- `runner`: the one batch runner (`lax.scan` of `step`), with the on-disk program cache.

Names are loaded on first use (`fast.Engine`), so that importing `fast.solvers` from a pool
family pulls in no engine.
"""

from __future__ import annotations

from importlib import import_module

_NAMES = {
    "Engine": "step",
    "State": "types", "Event": "types", "Packed": "types", "Market": "types", "close": "types",
    "pack_events": "events", "market_of": "events", "event_width": "events",
    "BatchRunner": "runner", "Outcome": "runner", "run_batch": "runner",
}


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(import_module(f"propamm_jax.fast.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'propamm_jax.fast' has no attribute {name!r}")


__all__ = sorted(_NAMES)
