"""Tidy DataFrames from results files, and reading/writing tables by file extension.

`Results.frame()` / `epoch_frame()` give one row per (simulation, strategy) and per
(simulation, strategy, epoch). The results schema logs each epoch's risk-adjusted scores but
not the capital weights they produce, so `epoch_frame` here adds them back: the rebalance is a
deterministic function of one epoch's scores (softmax with a spread-scaled temperature and a
weight floor), recomputed in the native core's order of operations.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from propamm_jax.errors import PropammError
from propamm_jax.rules import capital_weights

FORMATS = (".json", ".csv", ".parquet")


def check_format(path: Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise PropammError(f"{path}: unknown table format {suffix or '(none)'!r}: "
                           "use .json, .csv or .parquet")
    return suffix


def check_output(path: str | Path, option: str = "--output") -> str:
    """The format of a table output, checked before any work starts (see
    `errors.check_output`); returns the extension."""
    from propamm_jax.errors import check_output as check_path

    check_path(path, FORMATS, option)
    return Path(path).suffix.lower()


def write_frame(frame, path: str | Path) -> Path:
    """Writes a DataFrame as JSON (records), CSV or Parquet, chosen by extension. A named
    index (e.g. a sweep's point and seed) becomes ordinary columns."""
    path = Path(path)
    suffix = check_format(path)
    if any(name is not None for name in frame.index.names):
        frame = frame.reset_index()
    try:
        if suffix == ".json":  # Python's json: shortest round-trip floats, exact on reading
            records = [{k: _finite(v) for k, v in row.items()}
                       for row in frame.to_dict(orient="records")]
            path.write_text(json.dumps(records, default=_native, allow_nan=False) + "\n")
        elif suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
    except OSError as exc:
        raise PropammError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


def _finite(value):
    """NaN and infinities (e.g. a leader's gap to itself) as null: strict JSON has no NaN,
    and pandas reads null back as NaN."""
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None
    return value


def _native(value):
    """numpy scalars (e.g. uint64 seeds) as Python numbers for `json`."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_frame(path: str | Path):
    """Reads a table written by `write_frame` (or any JSON records / CSV / Parquet file)."""
    import pandas as pd

    path = Path(path)
    suffix = check_format(path)
    if not path.exists():
        raise PropammError(f"{path}: no such file")
    try:
        if suffix == ".json":
            records = json.loads(path.read_text())
            if not isinstance(records, list):
                raise ValueError("expected a list of records")
            return pd.DataFrame.from_records(records)
        if suffix == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except (ValueError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PropammError(f"{path}: cannot read as {suffix[1:]} ({first})") from None


def epoch_frame(results):
    """One row per (simulation, strategy, epoch) with `capital_weight`, the weight the
    strategy held *after* that epoch's rebalance, and the market parameters."""
    frame = results.epoch_frame()
    if frame.empty:
        return frame
    cfg = results.config
    weights = []
    for sim in results.sims:
        strategies = sim["strategies"]
        n_epochs = len(strategies[0]["epochs"])
        per_epoch = [capital_weights([st["epochs"][e]["risk_adjusted_score"] for st in strategies],
                                     cfg.softmax_temperature, cfg.min_capital_weight)
                     for e in range(n_epochs)]
        for i in range(len(strategies)):
            weights.extend(float(per_epoch[e][i]) for e in range(n_epochs))
    frame["capital_weight"] = weights
    market = {sim["seed"]: sim["market"] for sim in results.sims}
    for key in ("sigma", "lambda", "order_size_mean", "norm_fee_bps", "norm_liquidity_mult"):
        frame[f"market_{key}"] = [market[s][key] for s in frame["seed"]]
    return frame
