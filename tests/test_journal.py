"""No lost work: the results journal, --resume, and a resume after SIGKILL.

benchmarks/resume_after_kill.py measures the 5-of-5 figure on larger runs; here one kill at a
random point of a small run, and the journal's own edge cases.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from conftest import STRATEGIES, first_difference
from propamm_jax.official import journal as jr
from propamm_jax.config import SimConfig
from propamm_jax.errors import PropammError
from propamm_jax.official.scoring import score

FILES = [STRATEGIES / "fixed_30bps.rs", STRATEGIES / "adaptive_fee.rs"]
CONFIG = SimConfig(steps=300, epoch_len=100)


def test_resume_reads_back_and_scores_only_the_rest(tmp_path):
    path = tmp_path / "j.jsonl"
    full = score(FILES, config=CONFIG, seeds=range(6), workers=2, progress=False,
                 trace_seeds=[2], journal=path)
    lines = path.read_text().splitlines()
    assert len(lines) == 7 and json.loads(lines[0])["journal"] == 1
    # Keep the header and three entries, plus half of a fourth (a kill during a write).
    path.write_text("\n".join(lines[:4]) + "\n" + lines[4][: len(lines[4]) // 2])
    resumed = score(FILES, config=CONFIG, seeds=range(6), workers=2, progress=False,
                    trace_seeds=[2], journal=path, resume=True)
    assert resumed.resumed == 3 and not resumed.failures
    assert first_difference(resumed.results.to_json(), full.results.to_json()) is None
    assert len(path.read_text().splitlines()) == 7  # the cut line was replaced, not kept


def test_a_journal_of_another_run_is_refused(tmp_path):
    path = tmp_path / "j.jsonl"
    score(FILES, config=CONFIG, seeds=[0], workers=1, progress=False, journal=path)
    with pytest.raises(PropammError, match=r"j\.jsonl: journal of another run \(differs in seeds\)"):
        score(FILES, config=CONFIG, seeds=[1], workers=1, progress=False, journal=path,
              resume=True)
    with pytest.raises(PropammError, match="--resume needs a journal"):
        score(FILES, config=CONFIG, seeds=[0], progress=False, resume=True)


def _cli(out, journal, *extra):
    return [sys.executable, "-m", "propamm_jax.cli", "score", *map(str, FILES),
            "--simulations", "16", "--steps", "600", "--epoch-len", "200", "--workers", "2",
            "--no-progress", "--output", str(out), "--journal", str(journal), *extra]


def _entries(path) -> int:
    try:
        return max(0, path.read_bytes().count(b"\n") - 1)
    except FileNotFoundError:
        return 0


def test_sigkill_at_a_random_point_then_resume_gives_identical_results(tmp_path):
    reference = tmp_path / "full.json"
    subprocess.run(_cli(reference, tmp_path / "full.jsonl"), check=True, capture_output=True,
                   timeout=300)
    out, journal = tmp_path / "r.json", tmp_path / "r.jsonl"
    target = random.randint(1, 15)
    proc = subprocess.Popen(_cli(out, journal), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while proc.poll() is None and _entries(journal) < target and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    held = _entries(journal)
    assert 0 < held < 16, f"the kill should land mid-run (journal held {held})"
    resumed = subprocess.run(_cli(out, journal, "--resume"), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{held} read back from the journal" in resumed.stdout
    diff = first_difference(json.loads(out.read_text()), json.loads(reference.read_text()))
    assert diff is None, diff


def test_identity_names_every_input(tmp_path):
    lib = tmp_path / "lib.so"
    lib.write_bytes(b"x")
    base = jr.run_identity("reference", CONFIG.to_json(), ["a.rs"], [str(lib)], [1, 2], [], 300)
    lib.write_bytes(b"y")
    other = jr.run_identity("reference", CONFIG.to_json(), ["a.rs"], [str(lib)], [1, 2], [], 300)
    assert jr.identity_key(base) != jr.identity_key(other)
    assert base["libraries_sha256"] != other["libraries_sha256"]


def test_identity_names_the_scoring_core_and_the_package_version(tmp_path):
    """A journal written by another scoring core (or package version) is never resumed."""
    lib, core, guard = (tmp_path / n for n in ("lib.so", "core.so", "guard.so"))
    for path in (lib, core, guard):
        path.write_bytes(b"x")
    args = ("reference", CONFIG.to_json(), ["a.rs"], [str(lib)], [1, 2], [], 300)
    base = jr.run_identity(*args, [str(core), str(guard)])
    core.write_bytes(b"upgraded core")
    other = jr.run_identity(*args, [str(core), str(guard)])
    assert base["core_sha256"] != other["core_sha256"] and len(base["core_sha256"]) == 2
    assert jr.identity_key(base) != jr.identity_key(other)
    assert base["package_version"] == jr.package_version() != "unknown"
