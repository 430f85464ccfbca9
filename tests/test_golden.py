"""Official scoring against the reference engine's golden results, compared with `==`.

Each golden file is scored with the same strategies, seeds and config, and every field of every
simulation must be identical: normalizer edge, final edges and capital weights, and every
epoch's edge, trade count and risk-adjusted score; traced steps must match too.
"""

from __future__ import annotations

import pytest

from conftest import GOLDEN_FILES, STRATEGIES, load_golden
from propamm_jax.config import SimConfig
from propamm_jax.scoring import score

# In CI every golden file runs whole: together they take about a minute on 2 cores.


def _score_like(golden: dict, seeds=None):
    config = SimConfig.from_json(golden["config"])
    files = [STRATEGIES / name for name in golden["strategies"]]
    seeds = seeds if seeds is not None else [s["seed"] for s in golden["sims"]]
    trace_seeds = [t["seed"] for t in golden.get("traces", [])]
    return score(files, config=config, seeds=seeds, profile=golden["engine"],
                 trace_seeds=trace_seeds, trace_steps=len(golden["traces"][0]["steps"])
                 if trace_seeds else 0, progress=False)


def _first_difference(ours, theirs, path="") -> str | None:
    if isinstance(theirs, dict):
        for key in theirs:
            if key not in ours:
                return f"{path}.{key} missing"
            diff = _first_difference(ours[key], theirs[key], f"{path}.{key}")
            if diff:
                return diff
        return None
    if isinstance(theirs, list):
        if len(ours) != len(theirs):
            return f"{path}: length {len(ours)} != {len(theirs)}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            diff = _first_difference(a, b, f"{path}[{i}]")
            if diff:
                return diff
        return None
    if type(ours) is not type(theirs) or ours != theirs:
        return f"{path}: {ours!r} != {theirs!r}"
    return None


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_golden_file_identical(name):
    golden = load_golden(name)
    result = _score_like(golden)
    assert not result.failures
    ours = result.results.to_json()
    assert ours["engine"] == golden["engine"]
    assert ours["config"] == golden["config"]
    assert len(ours["sims"]) == len(golden["sims"])
    for mine, ref in zip(ours["sims"], golden["sims"]):
        diff = _first_difference(mine, ref, f"seed {ref['seed']}")
        assert diff is None, diff
    for mine, ref in zip(ours.get("traces", []), golden.get("traces", [])):
        diff = _first_difference(mine, ref, f"trace seed {ref['seed']}")
        assert diff is None, diff
    assert len(ours.get("traces", [])) == len(golden.get("traces", []))
