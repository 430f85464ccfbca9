"""propamm-jax: simulate, train and officially score prop-AMM fee strategies.

Importing the package does nothing global (no jax config, no XLA flags) and imports nothing
heavy: the public names below are loaded on first use (PEP 562). No submodule shares a name
with a public function, so `from propamm_jax import simulate` is the function whatever was
imported before.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SimConfig": "propamm_jax.config",
    "PropammError": "propamm_jax.errors",
    "Results": "propamm_jax.outputs.results",
    "score": "propamm_jax.official.scoring",
    "ScoreResult": "propamm_jax.official.scoring",
    "simulate": "propamm_jax.simulation",
    "sweep": "propamm_jax.sweeps",
    "summarize": "propamm_jax.sweeps",
    "train": "propamm_jax.training.train",
    "TrainConfig": "propamm_jax.training.train",
    "evaluate": "propamm_jax.training.evaluate",
    "export": "propamm_jax.training.export",
    "compare": "propamm_jax.outputs.comparison",
    "Comparison": "propamm_jax.outputs.comparison",
    "make_tape": "propamm_jax.tape.generate",
    "Tape": "propamm_jax.tape.generate",
}

__all__ = sorted(list(_EXPORTS) + ["__version__"])


def _version() -> str:
    """The installed distribution's version (one source: pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("propamm-jax")
    except PackageNotFoundError:  # a source tree on sys.path, never installed
        return "0+unknown"


def __getattr__(name: str):
    if name == "__version__":
        return _version()
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'propamm_jax' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
