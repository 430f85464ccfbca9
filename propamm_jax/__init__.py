"""propamm-jax: simulate, train and officially score prop-AMM fee strategies.

Importing the package does nothing global (no jax config, no XLA flags): names are loaded
lazily on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "SimConfig": "propamm_jax.config",
    "PropammError": "propamm_jax.errors",
    "Results": "propamm_jax.results",
    "score": "propamm_jax.scoring",
    "ScoreResult": "propamm_jax.scoring",
    "simulate": "propamm_jax.simulate",
    "make_tape": "propamm_jax.tape",
    "Tape": "propamm_jax.tape",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'propamm_jax' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(list(_EXPORTS) + ["__version__"])
