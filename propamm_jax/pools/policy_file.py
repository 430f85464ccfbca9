"""The `policy.json` envelope every family shares: the checks and the writing, written once.

A policy file is a JSON object: `family`, `version`, the fee bounds (`fee_min_bps`,
`fee_max_bps`), `epoch_len`, `oracle` (optional, false), the family's `params`, and whatever
training recorded (profile, config, seeds, ...). Every problem is one line naming the file and
the field. The family modules read and write their own `params` through these helpers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from propamm_jax.errors import PropammError, read_json


def read_envelope(path: str | Path) -> dict:
    """The file as a dict with a `family` field (checked to be there, not to be known)."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise PropammError(f"{path}: expected a JSON object")
    if "family" not in data:
        raise PropammError(f"{path}: not a policy file (no 'family' field; `propamm train` "
                           "writes one as policy.json)")
    return data


def check_family(path: Path, data: dict, family: str, versions: Sequence[int]) -> int:
    """The file's version, after checking its family is `family` and its version known."""
    if data.get("family") != family:
        raise PropammError(f"{path}: policy family {data.get('family')!r} is not {family!r}")
    version = data.get("version")
    if version not in versions or isinstance(version, bool):
        raise PropammError(f"{path}: policy version {version!r} is not one of "
                           f"{', '.join(map(str, versions))}")
    return version


def bounds(path: Path, data: dict) -> tuple[float, float, int, bool]:
    """(fee_min_bps, fee_max_bps, epoch_len, oracle) with their defaults, checked."""
    values = []
    for key, default in (("fee_min_bps", 5.0), ("fee_max_bps", 200.0), ("epoch_len", 1000)):
        values.append(number(path, data.get(key, default), key))
    fee_min, fee_max, epoch_len = values
    if not 0.0 <= fee_min < fee_max < 10_000.0:
        raise PropammError(f"{path}: need 0 <= fee_min_bps < fee_max_bps < 10000")
    if epoch_len != int(epoch_len) or epoch_len < 1:
        raise PropammError(f"{path}: field 'epoch_len' must be a positive integer")
    oracle = data.get("oracle", False)
    if not isinstance(oracle, bool):
        raise PropammError(f"{path}: field 'oracle' must be true or false")
    return fee_min, fee_max, int(epoch_len), oracle


def number(path: Path, value: Any, field: str) -> float:
    """`value` as the exact float the file holds, or a one-line error naming the field."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise PropammError(f"{path}: field '{field}' must be a number")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise PropammError(f"{path}: field '{field}' must be finite")
    return value


def params_object(path: Path, data: dict) -> dict:
    params = data.get("params")
    if not isinstance(params, dict):
        raise PropammError(f"{path}: field 'params' must be an object")
    return dict(params)


def write_envelope(path: str | Path, family: str, version: int, pool, params: dict,
                   **extra) -> Path:
    """Writes a policy file: the envelope of `pool` (fee bounds, epoch length, oracle), the
    JSON-ready `params` and `extra` (family-specific fields first, then training records)."""
    path = Path(path)
    data = {"family": family, "version": version, "fee_min_bps": pool.fee_min_bps,
            "fee_max_bps": pool.fee_max_bps, "epoch_len": pool.epoch_len}
    if getattr(pool, "oracle", False):
        data["oracle"] = True
    data.update(extra)
    data["params"] = params
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
