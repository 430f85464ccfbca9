"""The caches behind a warm `propamm simulate` return exactly what a cold run computes, and a
damaged entry only costs time. Also: a batch split over two devices equals one device."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from propamm_jax.config import SimConfig

CONFIG = SimConfig(steps=300, epoch_len=100)
POOLS = ["cpamm:30", "cpamm:65"]


def edges(results) -> np.ndarray:
    return np.array([[st["final_edge"] for st in s["strategies"]] + [s["normalizer_edge"]]
                     for s in results.sims])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PROPAMM_CACHE", str(tmp_path))
    monkeypatch.delenv("PROPAMM_NO_TAPE_CACHE", raising=False)
    monkeypatch.delenv("PROPAMM_NO_PROGRAM_CACHE", raising=False)
    return tmp_path


def test_warm_run_equals_cold_run(x64, cache, monkeypatch):
    from propamm_jax.simulation import simulate

    cold = simulate(POOLS, CONFIG, range(6), batch_size=4)
    batches = list((cache / "batches").rglob("price.npy"))
    programs = list((cache / "programs").glob("*.bin"))
    assert len(batches) == 2 and len(programs) >= 1     # two batches stored, program exported
    warm = simulate(POOLS, CONFIG, range(6), batch_size=4)
    assert np.array_equal(edges(cold), edges(warm))
    assert cold.to_json() == warm.to_json()

    for f in batches + programs:                        # damaged entries: rebuilt, same result
        f.write_bytes(b"damaged")
    again = simulate(POOLS, CONFIG, range(6), batch_size=4)
    assert cold.to_json() == again.to_json()

    monkeypatch.setenv("PROPAMM_NO_TAPE_CACHE", "1")    # and with the caches off
    monkeypatch.setenv("PROPAMM_NO_PROGRAM_CACHE", "1")
    assert cold.to_json() == simulate(POOLS, CONFIG, range(6), batch_size=4).to_json()


def test_two_devices_equal_one(tmp_path):
    """The CLI splits a batch over one XLA device per core; force two and compare."""
    outputs = []
    for devices in (1, 2):
        out = tmp_path / f"r{devices}.json"
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
                   PROPAMM_CACHE=str(tmp_path / f"cache{devices}"))
        subprocess.run([sys.executable, "-m", "propamm_jax.cli", "simulate", "--pool", POOLS[0],
                        "--pool", POOLS[1], "--simulations", "6", "--steps", "300",
                        "--epoch-len", "100", "--output", str(out)],
                       env=env, check=True, capture_output=True)
        outputs.append(json.loads(out.read_text())["sims"])
    assert outputs[0] == outputs[1]


def test_stored_program_that_fails_at_run_time_is_replaced(x64, cache, monkeypatch):
    """A stored executable can load and still fail at its first call (e.g. kernels missing
    on this host): the runner drops the file, compiles again and returns the right result."""
    from jax.experimental import serialize_executable

    from propamm_jax.simulation import simulate

    cold = simulate(POOLS, CONFIG, range(4), batch_size=4)
    stored = list((cache / "programs").glob("*.bin"))
    assert stored

    class Broken:
        def __call__(self, *args):
            raise RuntimeError("NOT_FOUND: Function iota_compare_fusion not found")

    real = serialize_executable.deserialize_and_load
    monkeypatch.setattr(serialize_executable, "deserialize_and_load",
                        lambda *a, **k: Broken())
    again = simulate(POOLS, CONFIG, range(4), batch_size=4)
    assert cold.to_json() == again.to_json()
    monkeypatch.setattr(serialize_executable, "deserialize_and_load", real)
    assert list((cache / "programs").glob("*.bin"))  # stored again, loadable
    assert cold.to_json() == simulate(POOLS, CONFIG, range(4), batch_size=4).to_json()
