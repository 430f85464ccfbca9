"""The competition's rules: what every engine and tool must agree on, written once.

The Rust core (`native/core/engine.rs`) is the official statement of these rules; this module
is their one Python statement, and `tests/test_rules.py` holds it against the core field by
field. The fast engine, `validate`, the exporters, `frames` and the bridge import it:

- the constants (nano-unit scale, storage size, competitor slots, payload tags);
- the three payload layouts, as NumPy structured dtypes (little-endian, packed);
- the risk score and the capital rebalance (softmax with a spread-scaled temperature and a
  weight floor), in the core's order of operations, on NumPy or JAX arrays;
- the competitor-price order: which pools a strategy sees, in which slots.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np

SCALE = 1_000_000_000        # one unit of X or Y in the payloads' integers (nano-units)
SCALE_F = 1e9
STORAGE = 1024               # bytes of persistent storage per strategy
COMPETITOR_SLOTS = 8         # competitor spot prices in the after-swap payload
MAX_STRATEGIES = 16
SPREAD_DIVISOR = 40.0        # the rebalance's temperature scales with (max - min score) / 40

TAG_BUY, TAG_SELL = 0, 1     # first byte of a quote payload: the trader buys or sells X
TAG_AFTER_SWAP = 2
TAG_EPOCH = 5

QUOTE = np.dtype([("side", "u1"), ("input", "<u8"), ("reserve_x", "<u8"),
                  ("reserve_y", "<u8")])
"""The compute_swap payload's header (then `STORAGE` bytes): side 0 = the trader buys X."""

AFTER_SWAP = np.dtype([
    ("tag", "u1"), ("side", "u1"), ("input", "<u8"), ("output", "<u8"),
    ("reserve_x", "<u8"), ("reserve_y", "<u8"), ("step", "<u8"), ("epoch_step", "<u4"),
    ("epoch_number", "<u4"), ("n_strategies", "u1"), ("strategy_index", "u1"),
    ("flow", "<f4"), ("capital_weight", "<f4"), ("competitor_prices", "<f4", (COMPETITOR_SLOTS,)),
])
"""The after-swap payload's header (tag 2, then `STORAGE` bytes), after each own trade."""

EPOCH = np.dtype([
    ("tag", "u1"), ("epoch_number", "<u4"), ("reserve_x", "<u8"), ("reserve_y", "<u8"),
    ("epoch_edge", "<f8"), ("cumulative_edge", "<f8"), ("capital_weight", "<f4"),
])
"""The epoch-boundary payload's header (tag 5, then `STORAGE` bytes), after each rebalance."""

LAYOUTS = {"quote": QUOTE, "after_swap": AFTER_SWAP, "epoch": EPOCH}


def offset(layout: np.dtype, field: str) -> int:
    """Byte offset of `field` in a payload layout (the storage follows at `layout.itemsize`)."""
    return layout.fields[field][1]


def pack(layout: np.dtype, storage: bytes = bytes(STORAGE), **fields: Any) -> bytes:
    """One payload: the header with `fields` (missing ones zero) followed by `storage`."""
    head = np.zeros((), layout)
    for name, value in fields.items():
        head[name] = value
    return head.tobytes() + bytes(storage)


def unpack(layout: np.dtype, payload: bytes) -> dict[str, Any]:
    """The header fields of a payload, as Python values."""
    head = np.frombuffer(payload[: layout.itemsize], layout)[0]
    return {name: head[name].tolist() for name in layout.names}


SCALARS = SimpleNamespace(exp=math.exp, maximum=max, minimum=min)
"""The array namespace of plain Python floats: libm's `exp`, as the core calls it (NumPy's
vectorised `exp` may differ from it in the last bit)."""


def risk_score(edge, lam: float, xp: Any = SCALARS):
    """An epoch's risk-adjusted score: losses count `1 + lam` times."""
    return edge - lam * xp.maximum(0.0, -edge)


def capital_weights(scores: Sequence[Any], temperature: float, min_weight: float,
                    xp: Any = SCALARS) -> list:
    """The weights one rebalance assigns from the strategies' scores: one value per strategy,
    floats (`xp=SCALARS`, bit for bit the core's: the same operations in the same order,
    sums left to right) or arrays of simulations (`xp=jax.numpy` on the fast path)."""
    max_s, min_s = scores[0], scores[0]
    for s in scores[1:]:
        max_s, min_s = xp.maximum(max_s, s), xp.minimum(min_s, s)
    spread = xp.maximum((max_s - min_s) / SPREAD_DIVISOR, 1.0)
    exps = [xp.exp((s - max_s) / (temperature * spread)) for s in scores]
    raw = [e / _sequential_sum(exps) for e in exps]
    floor_total = min_weight * len(scores)
    if min_weight > 0.0 and floor_total < 1.0:
        raw = [min_weight + (1.0 - floor_total) * r for r in raw]
    total = _sequential_sum(raw)
    return [w / total for w in raw]


def _sequential_sum(values: Sequence[Any]):
    """values[0] + values[1] + ..., left to right (the core's `0.0 + e0` is `e0` exactly)."""
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


def competitor_order(index: int, n_strategies: int) -> list[int]:
    """The pools whose spot prices strategy `index` sees, slot by slot: every other strategy
    in index order (at most `COMPETITOR_SLOTS`), then the normalizer (index `n_strategies`)
    if a slot is left. Unused slots are NaN."""
    others = [j for j in range(n_strategies) if j != index][:COMPETITOR_SLOTS]
    if len(others) < COMPETITOR_SLOTS:
        others.append(n_strategies)
    return others
