"""`propamm cache`: sizes by kind, clearing (all or one kind), and the size cap that evicts
the least recently used tapes and batches."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from propamm_jax.errors import PropammError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PROPAMM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PROPAMM_NO_TAPE_CACHE", raising=False)
    monkeypatch.delenv("PROPAMM_CACHE_MAX", raising=False)
    from propamm_jax import cache as module

    monkeypatch.setattr(module, "_unchecked", {"bytes": 0, "checked": False})
    return tmp_path / "cache"


def _file(path, size: int, age: float = 0.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    if age:
        stamp = time.time() - age
        os.utime(path, (stamp, stamp))
    return path


def test_usage_counts_each_kind(cache):
    from propamm_jax.cache import usage

    _file(cache / "tapes" / "v2" / "300" / "1.bin", 1000)
    _file(cache / "tapes" / "v2" / "300" / "2.bin", 1000)
    _file(cache / "batches" / "v1" / "abc" / "step.npy", 5000)
    _file(cache / "build" / "k" / "libx.so", 300)
    _file(cache / "journals" / "j.jsonl", 70)
    _file(cache / "jax" / "xla-entry", 20)
    _file(cache / "stray" / "thing", 9)
    sizes = usage()
    assert sizes["tapes"] == (2000, 2) and sizes["batches"] == (5000, 1)
    assert sizes["builds"] == (300, 1) and sizes["journals"] == (70, 1)
    assert sizes["xla"] == (20, 1) and sizes["programs"] == (0, 0)
    assert sizes["other"] == (9, 1)


def test_clear_one_kind_or_everything(cache):
    from propamm_jax.cache import clear, usage

    _file(cache / "tapes" / "v2" / "300" / "1.bin", 1000)
    _file(cache / "build" / "k" / "libx.so", 300)
    assert clear("tapes") == 1000
    assert usage()["tapes"] == (0, 0) and usage()["builds"] == (300, 1)
    assert clear() == 300
    assert sum(b for b, _ in usage().values()) == 0
    with pytest.raises(PropammError, match="unknown kind 'tape'"):
        clear("tape")


def test_cap_evicts_least_recently_used_tapes_and_batches_only(cache):
    from propamm_jax.cache import enforce_cap

    old_tape = _file(cache / "tapes" / "v2" / "300" / "1.bin", 1000, age=300)
    new_tape = _file(cache / "tapes" / "v2" / "300" / "2.bin", 1000, age=10)
    old_batch = cache / "batches" / "v1" / "old"
    _file(old_batch / "step.npy", 3000)
    os.utime(old_batch, (time.time() - 200, time.time() - 200))
    build = _file(cache / "build" / "k" / "libx.so", 2000, age=1000)  # oldest, never evicted
    freed = enforce_cap(3500)  # total 7000: the old tape, then the old batch must go
    assert freed == 4000
    assert not old_tape.exists() and not old_batch.exists()
    assert new_tape.exists() and build.exists()
    assert enforce_cap(None) == 0 and enforce_cap(10**9) == 0


def test_cap_is_checked_on_the_first_write_then_per_64th_of_the_cap(cache, monkeypatch):
    from propamm_jax.cache import note_written

    monkeypatch.setenv("PROPAMM_CACHE_MAX", str(64_000))  # checks every 1 000 bytes written
    _file(cache / "tapes" / "v2" / "300" / "1.bin", 60_000, age=100)
    assert note_written(10) == 0  # first write: checked, under the cap
    _file(cache / "tapes" / "v2" / "300" / "2.bin", 10_000)
    assert note_written(500) == 0  # over the cap now, but not checked again yet
    assert (cache / "tapes" / "v2" / "300" / "1.bin").exists()
    assert note_written(500) == 60_000  # 1 000 bytes since the last check: the oldest goes
    assert not (cache / "tapes" / "v2" / "300" / "1.bin").exists()


@pytest.mark.parametrize("text, expected", [("", 4 * 2**30), ("8G", 8 * 2**30),
                                            ("500M", 500 * 2**20), ("1.5GiB", int(1.5 * 2**30)),
                                            ("12345", 12345), ("0", None)])
def test_cap_from_environment(monkeypatch, text, expected):
    from propamm_jax.cache import max_bytes

    monkeypatch.setenv("PROPAMM_CACHE_MAX", text)
    assert max_bytes() == expected


@pytest.mark.parametrize("text", ["lots", "-1G", "4X"])
def test_bad_cap_is_one_line(monkeypatch, text):
    from propamm_jax.cache import max_bytes

    monkeypatch.setenv("PROPAMM_CACHE_MAX", text)
    with pytest.raises(PropammError, match="PROPAMM_CACHE_MAX"):
        max_bytes()


def test_cached_tapes_stay_under_the_cap_and_reuse_marks_them_used(cache, monkeypatch):
    from propamm_jax.tape.generate import make_tape
    from propamm_jax.tape.cache import cached_tape

    folder = cache / "tapes" / "v2" / "200"
    cached_tape([1, 2], 200)
    one = (folder / "1.bin").stat().st_size
    for path in folder.iterdir():  # both written long ago
        os.utime(path, (time.time() - 500, time.time() - 500))
    cached_tape([1], 200)  # seed 1 read again: now the most recent
    monkeypatch.setenv("PROPAMM_CACHE_MAX", str(int(2.5 * one)))
    tape = cached_tape([3], 200)  # a third tape would exceed the cap: seed 2 goes
    assert sorted(p.name for p in folder.iterdir()) == ["1.bin", "3.bin"]
    assert np.array_equal(tape.gbm_factor, make_tape([3], 200).gbm_factor)


def test_batch_store_respects_the_cap(cache, monkeypatch):
    from propamm_jax.fast import event_cache as batch_cache

    packed = [np.zeros(1000, np.float64) for _ in batch_cache.FIELDS]
    params = np.zeros((2, 5))
    batch_cache.save("first", packed, params)
    monkeypatch.setenv("PROPAMM_CACHE_MAX", str(60_000))  # room for one batch (~33 kB)
    time.sleep(0.01)
    batch_cache.save("second", packed, params)
    stored = sorted(p.name for p in (cache / "batches" / "v1").iterdir())
    assert stored == ["second"]
    assert batch_cache.load("second") is not None and batch_cache.load("first") is None


def test_batch_store_keeps_the_newest_batches_up_to_its_byte_budget(cache, monkeypatch):
    from propamm_jax.fast import event_cache as batch_cache

    packed = [np.zeros(1000, np.float64) for _ in batch_cache.FIELDS]
    params = np.zeros((2, 5))
    monkeypatch.setattr(batch_cache, "KEEP_BYTES", 70_000)  # two batches (~33 kB each)
    for k, name in enumerate(("first", "second", "third")):
        batch_cache.save(name, packed, params)
        os.utime(cache / "batches" / "v1" / name, (time.time() + k, time.time() + k))
    stored = sorted(p.name for p in (cache / "batches" / "v1").iterdir())
    assert stored == ["second", "third"]


def _cli(*args, env):
    return subprocess.run([sys.executable, "-m", "propamm_jax.cli", "cache", *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_cache_command_shows_and_clears(cache):
    env = {**os.environ, "PROPAMM_CACHE": str(cache)}
    _file(cache / "tapes" / "v2" / "300" / "1.bin", 2048)
    _file(cache / "journals" / "j.jsonl", 100)
    shown = _cli(env=env)
    assert shown.returncode == 0, shown.stderr
    table = {line.split()[0]: line.split()[1:] for line in shown.stdout.splitlines()[2:]}
    assert table["tapes"] == ["2.0", "KiB", "1"] and table["journals"] == ["100", "B", "1"]
    assert "cap: 4.0 GiB (PROPAMM_CACHE_MAX" in shown.stdout
    cleared = _cli("clear", "--kind", "journals", env=env)
    assert cleared.returncode == 0 and "100 B freed" in cleared.stdout
    assert (cache / "tapes" / "v2" / "300" / "1.bin").exists()
    assert not (cache / "journals").exists()
    assert "2.0 KiB freed" in _cli("clear", env=env).stdout
    assert not (cache / "tapes").exists()
    bad = _cli("clear", "--kind", "everything", env=env)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "invalid choice: 'everything'" in bad.stderr
