"""The disk cache returns exactly the tape it would generate."""

from __future__ import annotations

import numpy as np

from propamm_jax.tape.generate import make_tape
from propamm_jax.tape.cache import cached_tape


def assert_same_tape(tape, fresh):
    for a, b in zip(tape, fresh):
        if isinstance(a, tuple):
            for x, y in zip(a, b):
                assert np.array_equal(x, y)
        else:
            assert np.array_equal(a, b)


def test_cached_tape_equals_fresh_tape(tmp_path, monkeypatch):
    monkeypatch.setenv("PROPAMM_CACHE", str(tmp_path))
    monkeypatch.delenv("PROPAMM_NO_TAPE_CACHE", raising=False)
    seeds = [4, 2**64 - 1, 4, 9]
    fresh = make_tape(seeds, 700)
    first = cached_tape(seeds, 700)          # writes the files
    files = list(tmp_path.rglob("*.bin"))
    assert len(files) == 3
    second = cached_tape(seeds, 700)         # reads them back
    for tape in (first, second):
        assert_same_tape(tape, fresh)
    files[0].write_bytes(b"corrupt")          # a broken file is regenerated
    files[1].write_bytes(files[1].read_bytes()[:-8])  # so is a truncated one
    assert_same_tape(cached_tape(seeds, 700), fresh)
