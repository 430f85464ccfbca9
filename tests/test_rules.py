"""`propamm_jax.rules` against the Rust core, field by field.

The payload layouts are read out of `native/core/engine.rs` itself: every write of a payload
builder (`b[a..b].copy_from_slice(&x.to_le_bytes())`, `b[k] = ...`) in source order must be the
next field of the dtype, at the same offset and with the same width. The rebalance is held
bit for bit against the core by `tests/test_frames.py` (final capital weights of official runs).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from propamm_jax import rules

CORE = Path(__file__).resolve().parents[1] / "native" / "core" / "engine.rs"
WRITE = re.compile(r"\b(?:b|head)\[(\d+)(?:\.\.(\d+))?\]\s*(?:=|\.copy_from_slice)")


def _function(source: str, signature: str) -> str:
    start = source.index(signature)
    depth, i = 0, source.index("{", source.index(")", start))
    for j in range(i, len(source)):
        depth += {"{": 1, "}": -1}.get(source[j], 0)
        if depth == 0:
            return source[i:j]
    raise AssertionError(f"unbalanced braces after {signature}")


def _writes(body: str) -> list[tuple[int, int]]:
    """(offset, width) of each header write, in source order; the storage copy excluded."""
    out = []
    for m in WRITE.finditer(body):
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo + 1
        out.append((lo, hi - lo))
    return out


def _fields(layout: np.dtype) -> list[tuple[int, int]]:
    return [(layout.fields[name][1], layout.fields[name][0].itemsize) for name in layout.names]


@pytest.mark.parametrize("layout, signature, header", [
    (rules.QUOTE, "fn fill(", "[0u8; 25]"),
    (rules.AFTER_SWAP, "fn after_swap_payload(", "[0u8; 92 + STORAGE]"),
    (rules.EPOCH, "fn epoch_payload(", "[0u8; 41 + STORAGE]"),
])
def test_payload_layouts_match_the_core(layout, signature, header):
    body = _function(CORE.read_text(), signature)
    assert header in body
    assert layout.itemsize == int(header.split("; ")[1].split(" ")[0].rstrip("]"))
    writes = [w for w in _writes(body) if w[0] < layout.itemsize]
    expected = _fields(layout)
    if layout is rules.AFTER_SWAP:
        # the competitor prices are written in a loop at 60 + 4k: one write in the source
        loop = re.search(r"b\[(\d+) \+ 4 \* k\.\.(\d+) \+ 4 \* k\]", body)
        assert loop and (int(loop.group(1)), int(loop.group(2)) - int(loop.group(1))) == (60, 4)
        writes.append((60, 4 * rules.COMPETITOR_SLOTS))
    assert writes == expected


def test_storage_and_slots_match_the_core():
    source = CORE.read_text()
    assert f"const STORAGE: usize = {rules.STORAGE};" in source
    assert f"const COMPETITOR_SLOTS: usize = {rules.COMPETITOR_SLOTS};" in source
    assert "const SCALE_F: f64 = 1_000_000_000.0;" in source and rules.SCALE_F == 1e9
    assert f"/ {rules.SPREAD_DIVISOR})" in _function(source, "fn softmax_weights(")


def test_pack_and_unpack_round_trip():
    storage = bytes(range(256)) * 4
    payload = rules.pack(rules.AFTER_SWAP, storage, tag=2, side=1, input=7, output=3,
                         reserve_x=10**11, reserve_y=10**13, step=12, epoch_step=12,
                         epoch_number=0, n_strategies=3, strategy_index=1, flow=0.25,
                         capital_weight=0.5, competitor_prices=[100.0] * 2 + [math.nan] * 6)
    assert len(payload) == 92 + rules.STORAGE and payload[92:] == storage
    head = rules.unpack(rules.AFTER_SWAP, payload)
    assert head["reserve_y"] == 10**13 and head["flow"] == 0.25 and head["side"] == 1
    assert payload[rules.offset(rules.AFTER_SWAP, "step"):][:8] == (12).to_bytes(8, "little")


def test_competitor_order():
    assert rules.competitor_order(1, 3) == [0, 2, 3]
    assert rules.competitor_order(0, 1) == [1]
    assert rules.competitor_order(0, 9) == list(range(1, 9))        # 8 others: no normalizer
    assert rules.competitor_order(4, 8) == [0, 1, 2, 3, 5, 6, 7, 8]  # 7 others + normalizer
    assert rules.competitor_order(0, 16) == list(range(1, 9))


def test_capital_weights_scalar_and_array_agree():
    rng = np.random.default_rng(3)
    scores = rng.normal(0.0, 30.0, (5, 64))
    arrays = rules.capital_weights(list(scores), 1.0, 0.02, xp=np)
    for sim in range(64):
        floats = rules.capital_weights([float(s) for s in scores[:, sim]], 1.0, 0.02)
        assert np.allclose([a[sim] for a in arrays], floats, rtol=1e-14, atol=0)
        assert abs(sum(floats) - 1.0) < 1e-12 and min(floats) >= 0.02 / (1 + 1e-12) - 1e-15


def test_risk_score_counts_losses_more():
    assert rules.risk_score(10.0, 2.0) == 10.0
    assert rules.risk_score(-10.0, 2.0) == -30.0
    assert list(rules.risk_score(np.array([-1.0, 1.0]), 2.0, xp=np)) == [-3.0, 1.0]
