"""Official scoring is identical, field by field, to the reference engine.

`golden/`: the six files produced by the reference engine (profile reference) and its
correction (profile corrected). `parity/`: further runs of the same two engines on cases the
golden files do not cover: 10 strategies (more than the 8 competitor-price slots), seeds near
2^64, an epoch_len that does not divide steps, an epoch every step, and a strategy whose fees
depend on every byte of every payload it receives (`payload_reader.rs`).
Every float is compared with `==`.
"""

from __future__ import annotations

import json

import pytest

from conftest import GOLDEN, GOLDEN_FILES, PARITY, PARITY_FILES, assert_identical


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_golden_file_identical(name):
    assert_identical(json.loads((GOLDEN / name).read_text()))


@pytest.mark.parametrize("name", PARITY_FILES)
def test_unseen_cases_identical(name):
    assert_identical(json.loads((PARITY / name).read_text()))
