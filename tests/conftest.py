"""Shared fixtures: golden files and reference strategies copied into tests/fixtures."""

from __future__ import annotations

import os

# Keep XLA from fusing a*b+c into FMA, so the JAX reference engine can be compared bit for
# bit. Must happen before jax is imported (the package itself never touches XLA_FLAGS).
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_max_isa=AVX").strip()

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = FIXTURES / "golden"
STRATEGIES = FIXTURES / "strategies"
GOLDEN_FILES = sorted(p.name for p in GOLDEN.glob("*.json"))


def load_golden(name: str) -> dict:
    return json.loads((GOLDEN / name).read_text())


@pytest.fixture(scope="session")
def golden():
    return load_golden


@pytest.fixture(scope="session")
def strategy_dir() -> Path:
    return STRATEGIES
