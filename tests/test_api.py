"""The public API is the package's names, whatever was imported before: no submodule shares a
name with a public function, and importing the package imports nothing heavy."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import propamm_jax
from conftest import source_modules

FUNCTIONS = ("score", "simulate", "sweep", "summarize", "train", "evaluate", "export",
             "make_tape")
CLASSES = ("SimConfig", "Results", "ScoreResult", "TrainConfig", "PropammError", "Tape")


def test_public_names_survive_importing_every_submodule():
    modules = source_modules()
    assert {"propamm_jax.simulation", "propamm_jax.sweeps", "propamm_jax.training.train",
            "propamm_jax.training.evaluate", "propamm_jax.solvers.closed_form"} <= set(modules)
    for name in modules:
        importlib.import_module(name)
    for name in FUNCTIONS:
        value = getattr(propamm_jax, name)
        assert inspect.isfunction(value), f"propamm_jax.{name} is {value!r}"
        namespace: dict = {}
        exec(f"from propamm_jax import {name}", namespace)
        assert namespace[name] is value
    for name in CLASSES:
        assert inspect.isclass(getattr(propamm_jax, name)), name
    assert set(FUNCTIONS + CLASSES) <= set(dir(propamm_jax))


def test_importing_the_package_is_light():
    code = ("import sys, propamm_jax; "
            "print(sorted(m for m in ('jax', 'numpy', 'pandas', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_version_is_the_installed_one():
    from importlib.metadata import version

    assert propamm_jax.__version__ == version("propamm-jax")
