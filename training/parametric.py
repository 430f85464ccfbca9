"""One compiled library per policy family, its parameters read from storage (training only).

Scoring a population against compiled opponents used to export and compile every member.
Here the family's submission (`training.export`) is compiled once with each named constant
(FEE_MIN, FEE_SPAN, EPOCH_LEN and the eight weights) replaced by a read of an f64 slot of the
strategy's 1024-byte storage, and the engine starts each simulation with that storage
preloaded (`PammPool.initial_storage`). The storage is in every payload, so the library reads
the member's parameters wherever the constant export used a constant: the same f64
operations in the same order on the same bits, hence bit-identical edges
(`tests/test_parametric.py`).

The features use slots 0-8; the parameters sit at PARAM_SLOT onwards, which the strategy
never writes. One speed-up keeps the bits: `fees(s)` depends on the storage alone, so the
library computes it after each after_swap and caches it (FEE_SLOT) instead of computing it
in each of the hundreds of quotes per step. Official submissions stay the constant export:
nothing official ever preloads storage.
"""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path

from propamm_jax.errors import PropammError
from propamm_jax.pools.dynamic_fee import PARAM_NAMES, DynamicFee
from propamm_jax.training.export import CONST_NAMES, constant_values, render

STORAGE_SIZE = 1024
PARAM_SLOT = 64    # f64 slot of the first parameter (byte 512)
FEE_SLOT = 96      # the fees cached by after_swap (buy, sell, 1.0 once cached)
SLOT_NAMES = ("FEE_MIN", "FEE_SPAN", "EPOCH_LEN") + tuple(CONST_NAMES[k] for k in PARAM_NAMES)
LIBRARY_NAME = "dynamic_fee_parametric"


def parametric_source(name: str = LIBRARY_NAME) -> str:
    """The constant export's source with every named constant read from its storage slot.
    Each constant is used only where the storage is in scope as `s` (`fees`, `on_trade`)."""
    source = render(DynamicFee(), {k: 0.0 for k in PARAM_NAMES}, name)
    names = "|".join(SLOT_NAMES)
    source, dropped = re.subn(rf"^const ({names}): f64 = .*;\n", "", source, flags=re.M)
    if dropped != len(SLOT_NAMES):
        raise PropammError(f"parametric library: found {dropped} of {len(SLOT_NAMES)} constants "
                           "in the export template")
    slots = {n: PARAM_SLOT + i for i, n in enumerate(SLOT_NAMES)}
    source, used = re.subn(rf"\b({names})\b", lambda m: f"slot(s, {slots[m.group(1)]})", source)
    if used < len(SLOT_NAMES):
        raise PropammError("parametric library: a constant of the export template is unused")
    source = _edit(source, "    let (fee_buy, fee_sell) = fees(&b[25..25 + 1024]);\n",
                   "    let (fee_buy, fee_sell) = quote_fees(&b[25..25 + 1024]);\n")
    source = _edit(source, "        _ => {}\n    }\n}\n", "        _ => {}\n    }\n    cache_fees(s);\n}\n")
    source = _edit(source, "fn quote(", FEE_CACHE.format(at=FEE_SLOT) + "\nfn quote(")
    header = (f"// Training only: parameters in storage slots {PARAM_SLOT}.."
              f"{PARAM_SLOT + len(SLOT_NAMES) - 1} (f64, {', '.join(SLOT_NAMES)}),\n"
              "// preloaded by the engine at the start of each simulation.\n")
    return header + source


# `fees(s)` is a function of the storage alone, which changes only in after_swap; computing it
# there once instead of in every quote (hundreds per step) gives the same bits, faster.
FEE_CACHE = """/// The fees of this storage: cached in slots {at}..{at}+2 after each after_swap, computed
/// afresh before the first one (training only; the same bits as `fees`).
fn quote_fees(s: &[u8]) -> (f64, f64) {{
    if slot(s, {at} + 2) == 1.0 {{ (slot(s, {at}), slot(s, {at} + 1)) }} else {{ fees(s) }}
}}
fn cache_fees(s: &mut [u8]) {{
    let (fee_buy, fee_sell) = fees(s);
    set_slot(s, {at}, fee_buy);
    set_slot(s, {at} + 1, fee_sell);
    set_slot(s, {at} + 2, 1.0);
}}
"""


def _edit(source: str, old: str, new: str) -> str:
    """`source` with the one occurrence of `old` replaced (the template must hold it once)."""
    if source.count(old) != 1:
        raise PropammError(f"parametric library: the export template holds {old.strip()!r} "
                           f"{source.count(old)} times, expected once")
    return source.replace(old, new)


def member_storage(pool: DynamicFee, params: dict[str, float]) -> bytes:
    """The 1024-byte initial storage of a member: zero features, then its constants' f64."""
    blob = bytearray(STORAGE_SIZE)
    for i, (name, value) in enumerate(constant_values(pool, params).items()):
        if name != SLOT_NAMES[i]:
            raise PropammError(f"parametric storage: slot {i} is {name}, expected {SLOT_NAMES[i]}")
        if not math.isfinite(value):
            raise PropammError(f"cannot score a non-finite parameter {name} = {value!r}")
        struct.pack_into("<d", blob, 8 * (PARAM_SLOT + i), value)
    return bytes(blob)


def library_source_file(folder: str | Path) -> Path:
    """Writes the parametric source to `folder` (compiled, cached by source, like any `.rs`)."""
    path = Path(folder) / f"{LIBRARY_NAME}.rs"
    path.write_text(parametric_source())
    return path
