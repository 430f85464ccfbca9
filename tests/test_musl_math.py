"""musl_math reproduces the libm crate that the reference's rand_distr links (not glibc)."""

from __future__ import annotations

import json
import math

import numpy as np

from conftest import FIXTURES
from propamm_jax.tape import musl_math

CASES = json.loads((FIXTURES / "libm_exp_log.json").read_text())


def _f(bits: int) -> float:
    return float(np.uint64(bits).view(np.float64))


def test_exp_matches_libm_crate_bit_for_bit():
    x = np.array([c[0] for c in CASES["exp"]], dtype=np.uint64).view(np.float64)
    want = np.array([c[1] for c in CASES["exp"]], dtype=np.uint64)
    assert np.array_equal(musl_math.exp(x).view(np.uint64), want)
    # ...and the distinction matters: glibc differs on some of these inputs.
    assert any(math.exp(v) != _f(w) for v, w in zip(x.tolist(), want.tolist()))


def test_log_matches_libm_crate_bit_for_bit():
    for x_bits, want in CASES["log"]:
        assert musl_math.log(_f(x_bits)) == _f(want)
