"""The public API is the package's names, whatever was imported before: no submodule shares a
name with a public function, and importing the package imports nothing heavy. Each check runs
in a fresh interpreter, so it sees only its own imports."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import source_modules

FUNCTIONS = ("score", "simulate", "sweep", "summarize", "train", "evaluate", "export",
             "make_tape")
CLASSES = ("SimConfig", "Results", "ScoreResult", "TrainConfig", "PropammError", "Tape")

CHECK = """
import importlib, inspect, json, sys
modules, functions, classes = json.loads(sys.argv[1])
for name in modules:
    importlib.import_module(name)
import propamm_jax
bad = []
for name in functions:
    value = getattr(propamm_jax, name)
    namespace = {}
    exec(f"from propamm_jax import {name}", namespace)
    if not inspect.isfunction(value) or namespace[name] is not value:
        bad.append(f"{name}: {value!r}")
bad += [name for name in classes if not inspect.isclass(getattr(propamm_jax, name))]
bad += [name for name in functions + classes if name not in dir(propamm_jax)]
print(json.dumps(bad))
"""


def _run(code: str, *args: str) -> str:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          check=True, timeout=300).stdout.strip()


def test_public_names_survive_importing_every_submodule():
    modules = source_modules()
    assert {"propamm_jax.simulation", "propamm_jax.sweeps", "propamm_jax.training.train",
            "propamm_jax.training.evaluate", "propamm_jax.fast.solvers"} <= set(modules)
    out = _run(CHECK, json.dumps([modules, FUNCTIONS, CLASSES]))
    assert json.loads(out) == []


def test_importing_the_package_is_light():
    code = ("import sys, propamm_jax; "
            "print(sorted(m for m in ('jax', 'numpy', 'pandas', 'matplotlib') if m in sys.modules))")
    assert _run(code) == "[]"


def test_version_is_the_installed_one():
    from importlib.metadata import version

    import propamm_jax

    assert propamm_jax.__version__ == version("propamm-jax")
