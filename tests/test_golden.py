"""Official scoring is identical, field by field, to the reference engine.

`golden/`: the six files produced by the reference engine (profile reference) and its
correction (profile corrected). `parity/`: further runs of the same two engines on cases the
golden files do not cover: 10 strategies (more than the 8 competitor-price slots), seeds near
2^64, an epoch_len that does not divide steps, an epoch every step, and a strategy whose fees
depend on every byte of every payload it receives (`payload_reader.rs`).
`parity/process_state/`: a strategy with process-global state (`global_counter.rs`: a
`static` trail of every call sets its fees), run by the reference one process per
simulation; it matches only if the core makes exactly the reference's calls, in its order,
from a fresh process state.
Every float is compared with `==`.
"""

from __future__ import annotations

import json

import pytest

from conftest import (GOLDEN, GOLDEN_FILES, PARITY, PARITY_FILES, assert_identical,
                      first_difference, score_like)

PROCESS_STATE = PARITY / "process_state"
PROCESS_STATE_FILES = sorted(p.name for p in PROCESS_STATE.glob("*.json"))


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_golden_file_identical(name):
    assert_identical(json.loads((GOLDEN / name).read_text()))


@pytest.mark.parametrize("name", PARITY_FILES)
def test_unseen_cases_identical(name):
    assert_identical(json.loads((PARITY / name).read_text()))


@pytest.mark.parametrize("name", PROCESS_STATE_FILES)
def test_global_state_strategy_scores_as_the_reference_alone(name):
    """The fixtures come from the reference run one process per seed. Here all seeds go in
    one call, in reverse order, over 2 workers: each simulation must still start from fresh
    process state (a fork per simulation), whatever worker runs it and whatever ran before."""
    expected = json.loads((PROCESS_STATE / name).read_text())
    assert any(s["strategies"][1]["name"] == "global_counter" for s in expected["sims"])
    backwards = dict(expected, sims=list(reversed(expected["sims"])))
    result = score_like(backwards, workers=2)
    assert not result.failures, [f.line() for f in result.failures]
    ours = result.results.to_json()
    diff = first_difference(ours["sims"], backwards["sims"], "sims")
    assert diff is None, diff
    diff = first_difference(ours.get("traces", []), expected.get("traces", []), "traces")
    assert diff is None, diff
