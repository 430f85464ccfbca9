"""`--ray`: the same results, byte for byte, on a real two-node Ray cluster (loopback).

One cluster (`tests/ray_cluster.py`: `ray start --head` plus a second node, one CPU each)
serves the module. Each test compares a `--ray` run with the same run done locally: results
files byte for byte, tables value for value. The fault tests SIGKILL a Ray worker in the
middle of a task, and the driver itself, and require the same results in the end.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from propamm_jax.cli import main

pytest.importorskip("ray")
pytestmark = pytest.mark.ray

from ray_cluster import LocalRayCluster  # noqa: E402 - tests/ is on sys.path under pytest

from conftest import STRATEGIES  # noqa: E402

FILES = [str(STRATEGIES / "fixed_30bps.rs"), str(STRATEGIES / "adaptive_fee.rs")]
SMALL = ["--steps", "2000", "--epoch-len", "500"]
PROPAMM = str(Path(sys.executable).with_name("propamm"))


@pytest.fixture(scope="module")
def cluster():
    with LocalRayCluster() as c:
        yield c
        from propamm_jax.cluster import shutdown

        shutdown()


def _score_cli(out: Path, *extra: str, simulations: int = 24, timeout: float = 600,
               **popen) -> subprocess.CompletedProcess:
    return subprocess.run([PROPAMM, "score", *FILES, "--simulations", str(simulations), *SMALL,
                           "--workers", "2", "--output", str(out), "--no-progress", *extra],
                          capture_output=True, text=True, timeout=timeout, **popen)


def test_without_ray_installed_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)   # `import ray` now fails
    assert main(["simulate", "--pool", "cpamm:30", "--ray", "auto"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'propamm-jax[ray]'" in err


@pytest.mark.parametrize("address", ["nowhere", "host:port", ":80"])
def test_bad_address_is_one_line(address, capsys):
    assert main(["score", *FILES, "--ray", address]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "expected auto, local or HOST:PORT" in err


def test_unreachable_cluster_is_one_line(tmp_path):
    from ray_cluster import free_port

    run = subprocess.run([PROPAMM, "simulate", "--pool", "cpamm:30", "--simulations", "2",
                          "--steps", "300", "--epoch-len", "100", "--ray",
                          f"127.0.0.1:{free_port()}"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("propamm: error: --ray 127.0.0.1:")


def test_score_cli_identical_and_says_who_took_part(cluster, tmp_path):
    local = _score_cli(tmp_path / "local.json", "--no-journal")
    assert local.returncode == 0, local.stderr
    ray = _score_cli(tmp_path / "ray.json", "--no-journal", "--ray", cluster.address)
    assert ray.returncode == 0, ray.stderr
    assert (tmp_path / "ray.json").read_bytes() == (tmp_path / "local.json").read_bytes()
    assert "ray: 2 nodes, " in ray.stderr
    assert "--workers 2 has no effect with --ray" in ray.stderr   # said, not silently ignored
    assert "no effect" not in local.stderr


def test_score_corrected_with_traces_identical(cluster, tmp_path):
    from propamm_jax.config import SimConfig
    from propamm_jax.official.scoring import score

    kw = dict(config=SimConfig(steps=2000, epoch_len=500), seeds=range(5, 21),
              profile="corrected", trace_seeds=[6, 17], trace_steps=50, progress=False)
    local = score(FILES, workers=2, **kw)
    ray = score(FILES, ray=cluster.address, **kw)
    assert not local.failures and not ray.failures
    local.results.save(tmp_path / "local.json")
    ray.results.save(tmp_path / "ray.json")
    assert (tmp_path / "ray.json").read_bytes() == (tmp_path / "local.json").read_bytes()
    assert len(ray.results.traces) == 2


def test_a_crash_on_the_cluster_costs_only_its_simulation(cluster):
    from propamm_jax.config import SimConfig
    from propamm_jax.official.scoring import score

    panics = Path(__file__).parent / "fixtures" / "bad" / "panic_sometimes.rs"
    kw = dict(config=SimConfig(steps=200, epoch_len=100), simulations=10, progress=False)
    local = score([panics, FILES[0]], workers=2, **kw)
    ray = score([panics, FILES[0]], ray=cluster.address, **kw)
    assert ray.results.to_json() == local.results.to_json()
    assert sorted(f.line() for f in ray.failures) == sorted(f.line() for f in local.failures)
    assert ray.failures and all(f.strategy == panics.name for f in ray.failures)


def test_kept_pool_folders_of_ended_workers_are_swept(cluster, tmp_path):
    """Ray ends its workers without exit handlers: each kept pool's folder carries its
    worker's pid, and the next kept pool removes those of ended workers."""
    import tempfile

    from propamm_jax.config import SimConfig
    from propamm_jax.official.scoring import score

    stale = Path(tempfile.gettempdir()) / "propamm-kept-999999999-test"
    stale.mkdir(exist_ok=True)
    score(FILES, config=SimConfig(steps=300, epoch_len=100), simulations=4, progress=False,
          ray=cluster.address)
    assert not stale.exists()
    live = list(Path(tempfile.gettempdir()).glob("propamm-kept-*"))
    assert live and all(Path(f"/proc/{p.name.split('-')[2]}").exists() for p in live)


def test_simulate_identical(cluster, tmp_path, x64):
    from propamm_jax.config import SimConfig
    from propamm_jax.simulation import simulate

    args = (["cpamm:30", "cpamm:25/45"], SimConfig(steps=2000, epoch_len=500), range(3, 40))
    simulate(*args, batch_size=16, progress=False).save(tmp_path / "local.json")
    simulate(*args, batch_size=16, progress=False, ray=cluster.address).save(tmp_path / "ray.json")
    assert (tmp_path / "ray.json").read_bytes() == (tmp_path / "local.json").read_bytes()


def test_sweep_identical(cluster, tmp_path, x64):
    from propamm_jax.config import SimConfig
    from propamm_jax.outputs.frames import write_frame
    from propamm_jax.sweeps import sweep

    args = ("cpamm", {"fee_bps": [10.0, 40.0, 70.0]}, SimConfig(steps=1000, epoch_len=250),
            [9, 2, 14, 30, 5, 7, 8])
    kw = dict(opponents=["cpamm:65"], lanes=6, progress=False)
    local = sweep(*args, **kw)
    ray = sweep(*args, ray=cluster.address, **kw)
    write_frame(local, tmp_path / "local.csv")
    write_frame(ray, tmp_path / "ray.csv")
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert list(ray.dtypes) == list(local.dtypes) and ray.index.equals(local.index)


def test_train_generation_and_evaluate_identical(cluster, tmp_path, x64):
    from propamm_jax.config import SimConfig
    from propamm_jax.training.evaluate import evaluate
    from propamm_jax.training.train import TrainConfig, train

    cfg = TrainConfig(generations=1, population=6, batch_seeds=4, heldout=3, eval_every=1,
                      steps=600, epoch_len=200, opponents=("cpamm:45",))
    local = train(cfg, tmp_path / "local", progress=False)
    ray = train(cfg, tmp_path / "ray", progress=False, ray=cluster.address)
    assert ray == local
    assert (tmp_path / "ray" / "checkpoint.npz").read_bytes() == \
        (tmp_path / "local" / "checkpoint.npz").read_bytes()
    logs = [json.loads((tmp_path / d / "log.jsonl").read_text()) for d in ("local", "ray")]
    for log in logs:
        log.pop("seconds")
    assert logs[0] == logs[1]
    seeds = list(range(7))
    fast = [evaluate(tmp_path / "local" / "policy.json", seeds, config=SimConfig(600, 200),
                     official=False, ray=r) for r in (None, cluster.address)]
    assert fast[0] == fast[1]


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_ray_worker_costs_only_its_block(cluster, tmp_path):
    """SIGKILL the Ray worker of a running task: Ray runs the block again, same results."""
    local = _score_cli(tmp_path / "local.json", "--no-journal", simulations=36)
    assert local.returncode == 0, local.stderr
    run = subprocess.Popen([PROPAMM, "score", *FILES, "--simulations", "36", *SMALL,
                            "--output", str(tmp_path / "ray.json"), "--no-progress",
                            "--no-journal", "--ray", cluster.address],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victims = _wait_for(cluster.task_workers, 300, "a running task")
        time.sleep(random.uniform(0.0, 0.5))
        os.kill(random.choice(victims), signal.SIGKILL)
        out, err = run.communicate(timeout=600)
    finally:
        run.kill()
    assert run.returncode == 0, err
    assert (tmp_path / "ray.json").read_bytes() == (tmp_path / "local.json").read_bytes()


def test_a_block_lost_for_good_is_failures_and_the_rest_still_runs(cluster, monkeypatch):
    """With no retries left, a killed task's block becomes failures naming Ray; every other
    simulation is still scored, identical to the local run."""
    import threading

    from propamm_jax import cluster as cl
    from propamm_jax.config import SimConfig
    from propamm_jax.official.scoring import score

    kw = dict(config=SimConfig(steps=2000, epoch_len=500), simulations=24, progress=False)
    local = {s["seed"]: s for s in score(FILES, workers=2, **kw).results.sims}
    monkeypatch.setattr(cl, "MAX_RETRIES", 0)
    out: dict = {}
    runner = threading.Thread(target=lambda: out.update(r=score(FILES, ray=cluster.address, **kw)))
    runner.start()
    try:
        os.kill(_wait_for(cluster.task_workers, 300, "a running task")[0], signal.SIGKILL)
    finally:
        runner.join(timeout=600)
    result = out["r"]
    assert result.failures and all(f.kind == "crash" and "ray task lost after 0 retries"
                                   in f.message for f in result.failures)
    lost = {f.seed for f in result.failures}
    assert len(lost) < 24 and {s["seed"] for s in result.results.sims} == set(local) - lost
    assert all(s == local[s["seed"]] for s in result.results.sims)


def test_resume_after_the_driver_is_killed(cluster, tmp_path):
    local = _score_cli(tmp_path / "local.json", "--no-journal", simulations=48)
    assert local.returncode == 0, local.stderr
    journal = tmp_path / "journal.jsonl"
    args = [PROPAMM, "score", *FILES, "--simulations", "48", *SMALL, "--output",
            str(tmp_path / "ray.json"), "--no-progress", "--journal", str(journal),
            "--ray", cluster.address]
    driver = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # the journal's header plus at least one finished block
        _wait_for(lambda: journal.exists() and journal.read_text().count("\n") >= 2, 300,
                  "a finished block in the journal")
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        driver.kill()
    assert not (tmp_path / "ray.json").exists()
    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "read back from the journal" in resumed.stdout
    assert (tmp_path / "ray.json").read_bytes() == (tmp_path / "local.json").read_bytes()
