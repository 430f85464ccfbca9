"""Runs can grow and interrupts say how to resume (issue 12, item 9): `score --resume` with
more simulations reuses the journal, `train --resume --generations N` continues to N, and
Ctrl-C/SIGTERM keeps the finished work and prints the command that continues it."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

from conftest import STRATEGIES, first_difference, interrupt_training
from propamm_jax.cli import main
from propamm_jax.config import SimConfig
from propamm_jax.errors import Interrupted, PropammError
from propamm_jax.official.scoring import score, seed_list

FILES = [STRATEGIES / "fixed_30bps.rs", STRATEGIES / "adaptive_fee.rs"]
CONFIG = SimConfig(steps=300, epoch_len=100)


def test_score_resume_with_more_simulations_reuses_the_journal(tmp_path):
    path = tmp_path / "j.jsonl"
    first = score(FILES, config=CONFIG, seeds=seed_list(3, 40, 7), workers=2, progress=False,
                  journal=path)
    assert first.resumed == 0
    grown = score(FILES, config=CONFIG, seeds=seed_list(6, 40, 7), workers=2, progress=False,
                  journal=path, resume=True)
    assert grown.resumed == 3 and not grown.failures
    fresh = score(FILES, config=CONFIG, seeds=seed_list(6, 40, 7), workers=2, progress=False)
    assert first_difference(grown.results.to_json(), fresh.results.to_json()) is None
    assert len(path.read_text().splitlines()) == 7  # header + 6: only the new 3 were scored
    fewer = score(FILES, config=CONFIG, seeds=seed_list(4, 40, 7), progress=False,
                  journal=path, resume=True)
    assert fewer.resumed == 4 and [s["seed"] for s in fewer.results.sims] == [40, 47, 54, 61]


def test_score_resume_refuses_another_seed_sequence(tmp_path):
    path = tmp_path / "j.jsonl"
    score(FILES, config=CONFIG, seeds=seed_list(2, 40, 7), workers=1, progress=False,
          journal=path)
    with pytest.raises(PropammError, match=r"j\.jsonl: journal of another run \(its simulation "
                                           r"1 is seed 47, this run's is 41\)"):
        score(FILES, config=CONFIG, seeds=seed_list(4, 40, 1), progress=False, journal=path,
              resume=True)
    with pytest.raises(PropammError, match=r"differs in seeds"):
        score(FILES, config=CONFIG, seeds=seed_list(4, 41, 7), progress=False, journal=path,
              resume=True)


def _score_cli(out, journal, simulations=16):
    return ["score", *map(str, FILES), "--simulations", str(simulations), "--steps", "600",
            "--epoch-len", "200", "--workers", "2", "--no-progress", "--output", str(out),
            "--journal", str(journal)]


def _entries(path) -> int:
    try:
        return max(0, path.read_bytes().count(b"\n") - 1)
    except FileNotFoundError:
        return 0


def test_sigterm_keeps_the_journal_and_prints_the_resume_command(tmp_path):
    reference = tmp_path / "full.json"
    subprocess.run([sys.executable, "-m", "propamm_jax.cli",
                    *_score_cli(reference, tmp_path / "full.jsonl")], check=True,
                   capture_output=True, timeout=300)
    out, journal = tmp_path / "r.json", tmp_path / "r.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "propamm_jax.cli", *_score_cli(out, journal)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while proc.poll() is None and _entries(journal) < 4 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert lines[0].startswith("propamm: interrupted: ") and "of 16 simulations finished, kept " \
        f"in the journal {journal}" in lines[0], err
    kept = int(lines[0].split("interrupted: ")[1].split()[0])
    assert 4 <= kept < 16 and kept == _entries(journal)
    command = shlex.split(lines[1].removeprefix("propamm: resume with: "))
    assert command[0] == "propamm" and command[-1] == "--resume"
    resumed = subprocess.run([sys.executable, "-m", "propamm_jax.cli", *command[1:]],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{kept} read back from the journal" in resumed.stdout
    diff = first_difference(json.loads(out.read_text()), json.loads(reference.read_text()))
    assert diff is None, diff


TINY = dict(population=4, batch_seeds=2, heldout=2, eval_every=1, steps=300, epoch_len=100)


def _cfg(**kw):
    from propamm_jax.training.train import TrainConfig

    return TrainConfig(**{**TINY, **kw})


def test_train_resume_with_more_generations_continues(tmp_path, x64):
    from propamm_jax.training.train import LOG, train

    full = train(_cfg(generations=4), tmp_path / "full", progress=False)
    train(_cfg(generations=2), tmp_path / "run", progress=False)
    grown = train(_cfg(generations=4), tmp_path / "run", resume=True, progress=False)
    assert grown["params"] == full["params"]  # eval_every=1: the same held-out checks
    log = [json.loads(x) for x in (tmp_path / "run" / LOG).read_text().splitlines()]
    assert [r["generation"] for r in log] == [0, 1, 2, 3]
    assert grown["seeds"]["train"] == full["seeds"]["train"]
    with pytest.raises(PropammError, match="has done 4 generations already; --generations 3"):
        train(_cfg(generations=3), tmp_path / "run", resume=True, progress=False)
    with pytest.raises(PropammError, match=r"different run \(differs in population\)"):
        train(_cfg(generations=5, population=6), tmp_path / "run", resume=True,
              progress=False)


def _interrupt_after(monkeypatch, calls: int):
    from propamm_jax.training import train as tr

    interrupt_training(monkeypatch, tr, calls)


def test_interrupted_train_writes_the_best_policy_so_far(tmp_path, x64, monkeypatch):
    from propamm_jax.pools.dynamic_fee import load_policy
    from propamm_jax.training.train import train

    _interrupt_after(monkeypatch, 5)  # gen 0 and 1 (train + held-out), then gen 2's training
    with pytest.raises(Interrupted) as info:
        train(_cfg(generations=4), tmp_path / "run", progress=False)
    assert info.value.resumable
    assert info.value.kept.startswith(f"2 of 4 generations kept in {tmp_path / 'run'}")
    policy = json.loads((tmp_path / "run" / "policy.json").read_text())
    assert policy["generation"] in (0, 1) and policy["heldout_mean"] is not None
    load_policy(tmp_path / "run" / "policy.json")

    _interrupt_after(monkeypatch, 1)  # before any generation finished
    with pytest.raises(Interrupted) as info:
        train(_cfg(generations=4), tmp_path / "early", progress=False)
    assert not info.value.resumable and not (tmp_path / "early" / "policy.json").exists()


def test_cli_train_interrupt_prints_the_resume_command(tmp_path, x64, monkeypatch, capsys):
    _interrupt_after(monkeypatch, 3)
    args = ["train", "--generations", "3", "--population", "4", "--batch-seeds", "2",
            "--heldout", "2", "--eval-every", "1", "--steps", "300", "--epoch-len", "100",
            "--no-progress", "--out", str(tmp_path / "my run")]
    assert main(args) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("propamm: interrupted: 1 of 3 generations kept in"), err
    assert err[1] == "propamm: resume with: " + shlex.join(["propamm", *args, "--resume"])
    monkeypatch.undo()
    assert main(shlex.split(err[1].removeprefix("propamm: resume with: "))[1:]) == 0
    log = (tmp_path / "my run" / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["generation"] for x in log] == [0, 1, 2]
