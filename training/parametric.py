"""One compiled library per policy family, its parameters read from storage (training only).

Scoring a population against compiled opponents used to export and compile every member.
Here the family's submission (`training.export`) is compiled once with each named constant
(FEE_MIN, FEE_SPAN, EPOCH_LEN and the eight weights) replaced by a read of an f64 slot of the
strategy's 1024-byte storage, and the engine starts each simulation with that storage
preloaded (`PammPool.initial_storage`). The storage is in every payload, so the library reads
the member's parameters wherever the constant export used a constant: the same f64
operations in the same order on the same bits, hence bit-identical edges
(`tests/test_parametric.py`).

The features use slots 0-8 and are never written past them; the parameters sit at
PARAM_SLOT onwards, which the strategy never writes. Official submissions stay the constant
export: nothing official ever preloads storage.
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
    header = (f"// Training only: parameters in storage slots {PARAM_SLOT}.."
              f"{PARAM_SLOT + len(SLOT_NAMES) - 1} (f64, {', '.join(SLOT_NAMES)}),\n"
              "// preloaded by the engine at the start of each simulation.\n")
    return header + source


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
