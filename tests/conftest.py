"""Shared fixtures: golden files and reference strategies copied into tests/fixtures."""

from __future__ import annotations

import os

# Keep XLA from fusing a*b+c into FMA, so the JAX reference engine can be compared bit for
# bit. Must happen before jax is imported (the package itself never touches XLA_FLAGS).
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_max_isa=AVX").strip()

# Tests generate their tapes afresh (test_tape_cache.py covers the cache on its own).
os.environ["PROPAMM_NO_TAPE_CACHE"] = "1"

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = FIXTURES / "golden"
STRATEGIES = FIXTURES / "strategies"
GOLDEN_FILES = sorted(p.name for p in GOLDEN.glob("*.json"))
PARITY = FIXTURES / "parity"
PARITY_FILES = sorted(p.name for p in PARITY.glob("*.json"))
STARTERS = Path(__file__).parents[1] / "native" / "strategies"


def strategy_path(name: str) -> Path:
    """A strategy file named in a results file: a reference fixture or a starter."""
    for folder in (STRATEGIES, STARTERS):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(name)


def score_like(expected: dict, workers: int | None = None):
    """Scores with the strategies, seeds, config, profile and traces of a results file."""
    from propamm_jax.config import SimConfig
    from propamm_jax.official.scoring import score

    traces = expected.get("traces", [])
    return score([strategy_path(n) for n in expected["strategies"]],
                 config=SimConfig.from_json(expected["config"]),
                 seeds=[s["seed"] for s in expected["sims"]], profile=expected["engine"],
                 trace_seeds=[t["seed"] for t in traces],
                 trace_steps=len(traces[0]["steps"]) if traces else 0, progress=False,
                 workers=workers)


def interrupt_training(monkeypatch, train_module, at_call: int = 4):
    """Makes `train_module.population_values` raise KeyboardInterrupt on its `at_call`-th call
    (4: generation 0's training and held-out batches, generation 1's training, then here);
    returns the original function, to put back before resuming."""
    calls = {"n": 0}
    original = train_module.population_values

    def interrupted(*args, **kw):
        calls["n"] += 1
        if calls["n"] == at_call:
            raise KeyboardInterrupt
        return original(*args, **kw)

    monkeypatch.setattr(train_module, "population_values", interrupted)
    return original


def first_difference(ours, theirs, path: str = "") -> str | None:
    """Where two results differ first (exact comparison, floats with ==), or None; keys only
    `ours` has are ignored."""
    from propamm_jax.outputs.results import first_difference as diff

    return diff(ours, theirs, path, extra_keys_ok=True)


def assert_identical(expected: dict) -> None:
    """Scores like `expected` and requires every field of every simulation to be equal."""
    result = score_like(expected)
    assert not result.failures, [f.line() for f in result.failures]
    ours = result.results.to_json()
    assert ours["engine"] == expected["engine"]
    assert ours["config"] == expected["config"]
    diff = first_difference(ours["sims"], expected["sims"], "sims")
    assert diff is None, diff
    diff = first_difference(ours.get("traces", []), expected.get("traces", []), "traces")
    assert diff is None, diff


def load_golden(name: str) -> dict:
    return json.loads((GOLDEN / name).read_text())


@pytest.fixture
def x64():
    """64-bit JAX for one test. Global, not the thread-local context manager: host callbacks
    run on other threads and would otherwise see 32-bit defaults."""
    import jax

    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


@pytest.fixture(scope="session")
def golden():
    return load_golden


@pytest.fixture(scope="session")
def strategy_dir() -> Path:
    return STRATEGIES


# source folder -> its package once installed (pyproject.toml's package-dir)
SOURCE_LAYOUT = {"propamm_jax": "propamm_jax", "native": "propamm_jax/native",
                 "training": "propamm_jax/training"}


def source_modules() -> list[str]:
    """Every module of the source tree, by its installed dotted name."""
    root = Path(__file__).parents[1]
    names = []
    for folder, target in SOURCE_LAYOUT.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = [*target.split("/"), *path.relative_to(root / folder).with_suffix("").parts]
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names
