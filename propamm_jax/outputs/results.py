"""The results schema (the golden files' format), aggregates and DataFrames.

Every engine mode writes this one schema, so any two runs compare field by field. Floats are
written by Python's `json`, which uses the shortest round-trip form: parsing gives back the
exact f64 bits. Aggregates are computed in the reference CLI's order of operations.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from propamm_jax.config import SimConfig
from propamm_jax.errors import PropammError, read_json


@dataclass
class Results:
    """One run: the config, the strategy files, one record per simulation, optional traces."""

    engine: str
    config: SimConfig
    strategies: list[str]
    sims: list[dict]
    traces: list[dict] | None = None

    def to_json(self) -> dict:
        data: dict[str, Any] = {
            "engine": self.engine,
            "config": self.config.to_json(),
            "strategies": list(self.strategies),
            "sims": self.sims,
        }
        if self.traces:
            data["traces"] = self.traces
        return data

    def save(self, path: str | Path) -> Path:
        """Writes the results by extension: `.json` in the golden schema (every field, exact
        floats), `.csv` or `.parquet` as the tidy table of `frame()` (what `propamm frame`
        writes)."""
        from propamm_jax.outputs.frames import check_format, write_frame

        path = Path(path)
        if check_format(path) != ".json":
            return write_frame(self.frame(), path)
        try:
            path.write_text(json.dumps(self.to_json()) + "\n")
        except OSError as exc:
            raise PropammError(f"{path}: cannot write ({exc.strerror or exc})") from None
        return path

    @classmethod
    def from_json(cls, data: dict, source: str = "results") -> "Results":
        try:
            return cls(engine=data["engine"], config=SimConfig.from_json(data["config"]),
                       strategies=list(data["strategies"]), sims=list(data["sims"]),
                       traces=data.get("traces"))
        except KeyError as exc:
            raise PropammError(f"{source}: missing field {exc.args[0]!r}") from None

    @classmethod
    def load(cls, path: str | Path) -> "Results":
        return cls.from_json(read_json(path), str(path))

    def names(self) -> list[str]:
        return [s["name"] for s in self.sims[0]["strategies"]] if self.sims else []

    def aggregate(self) -> list[dict]:
        return aggregate(self)

    def summary(self):
        import pandas as pd

        return pd.DataFrame(self.aggregate()).set_index("strategy")

    def frame(self):
        """One row per (simulation, strategy), with the market parameters as columns."""
        import pandas as pd

        rows = []
        for sim in self.sims:
            for i, st in enumerate(sim["strategies"]):
                rows.append({
                    "seed": sim["seed"], "strategy_index": i, "strategy": st["name"],
                    "file": self.strategies[i] if i < len(self.strategies) else None,
                    "edge": st["final_edge"], "final_capital_weight": st["final_capital_weight"],
                    "normalizer_edge": sim["normalizer_edge"],
                    "edge_vs_normalizer": st["final_edge"] - sim["normalizer_edge"],
                    **{f"market_{k}": v for k, v in sim["market"].items()},
                })
        return pd.DataFrame(rows)

    def epoch_frame(self):
        """One row per (simulation, strategy, epoch)."""
        import pandas as pd

        rows = []
        for sim in self.sims:
            for i, st in enumerate(sim["strategies"]):
                for ep in st["epochs"]:
                    rows.append({"seed": sim["seed"], "strategy_index": i, "strategy": st["name"],
                                 **ep})
        return pd.DataFrame(rows)


def sim_record(seed: int, params, row: int, names: list[str], run) -> dict:
    """The schema's record of one simulation, from the core's arrays."""
    n_epochs = run.epoch_edge.shape[1]
    return {
        "seed": int(seed),
        "market": {
            "sigma": float(params.sigma[row]),
            "lambda": float(params.lam[row]),
            "order_size_mean": float(params.order_size_mean[row]),
            "norm_fee_bps": int(params.norm_fee_bps[row]),
            "norm_liquidity_mult": float(params.norm_liquidity_mult[row]),
        },
        "normalizer_edge": float(run.normalizer_edge),
        "strategies": [
            {
                "name": names[i],
                "final_edge": float(run.final_edge[i]),
                "final_capital_weight": float(run.final_capital_weight[i]),
                "epochs": [
                    {"epoch": e, "edge": float(run.epoch_edge[i, e]),
                     "trade_count": int(run.epoch_trade_count[i, e]),
                     "risk_adjusted_score": float(run.epoch_score[i, e])}
                    for e in range(n_epochs)
                ],
            }
            for i in range(len(names))
        ],
    }


def trace_record(seed: int, fair_price: np.ndarray, order_count: np.ndarray, run) -> dict:
    """The schema's per-step trace of one simulation (state after each step)."""
    steps = []
    for t in range(run.trace_u64.shape[0]):
        amms = [[int(u[0]), int(u[1]), float(f[0]), float(f[1]), f"{int(u[2]):016x}"]
                for u, f in zip(run.trace_u64[t], run.trace_f64[t])]
        steps.append({"step": t, "fair_price": float(fair_price[t]),
                      "orders": int(order_count[t]), "amms": amms})
    return {"seed": int(seed), "steps": steps}


def aggregate(results: Results) -> list[dict]:
    """Mean edge, population std, mean vs normalizer, Sharpe and mean final capital %, per
    strategy, summed in simulation order as the reference CLI does."""
    sims = results.sims
    n = float(len(sims))
    out = []
    if not sims:
        return out
    norm_mean = _seq_sum(s["normalizer_edge"] for s in sims) / n
    for i, name in enumerate(results.names()):
        edges = [s["strategies"][i]["final_edge"] for s in sims]
        mean = _seq_sum(edges) / n
        var = _seq_sum((e - mean) * (e - mean) for e in edges) / n
        std = math.sqrt(var)
        weight = _seq_sum(s["strategies"][i]["final_capital_weight"] for s in sims) / n
        out.append({
            "strategy": name, "mean_edge": mean, "std_edge": std,
            "vs_norm": mean - norm_mean, "sharpe": mean / std if std > 0.0 else 0.0,
            "final_cap_pct": weight * 100.0, "simulations": len(sims),
        })
    return out


def _seq_sum(values) -> float:
    total = 0.0
    for v in values:
        total += v
    return total


def aggregate_table(results: Results) -> str:
    """The reference CLI's leaderboard, same columns and widths."""
    lines = [
        f"{'Strategy':<34} {'Mean Edge':>10} {'Std Edge':>10} {'vs Norm':>9} {'Sharpe':>9} "
        f"{'Final Cap%':>10}",
        "-" * 93,
    ]
    for r in aggregate(results):
        lines.append(f"{r['strategy']:<34} {r['mean_edge']:>10.2f} {r['std_edge']:>10.2f} "
                     f"{r['vs_norm']:>9.2f} {r['sharpe']:>9.3f} {r['final_cap_pct']:>10.2f}")
    return "\n".join(lines)


def first_difference(ours: Any, theirs: Any, path: str = "",
                     extra_keys_ok: bool = False) -> str | None:
    """Where two JSON-like values first differ (floats compared exactly), or None.

    With `extra_keys_ok`, keys that only `ours` has are ignored (a newer results file
    compared against an older golden one)."""
    if isinstance(theirs, dict):
        if not isinstance(ours, dict):
            return f"{path}: {ours!r} != {theirs!r}"
        keys = list(theirs) if extra_keys_ok else list(theirs.keys() | ours.keys())
        for key in keys:
            if extra_keys_ok and key not in ours:
                return f"{path}.{key} missing"
            diff = first_difference(ours.get(key), theirs.get(key), f"{path}.{key}",
                                    extra_keys_ok)
            if diff:
                return diff
        return None
    if isinstance(theirs, list):
        if not isinstance(ours, list) or len(ours) != len(theirs):
            return f"{path}: length {len(ours) if isinstance(ours, list) else '-'} != {len(theirs)}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            diff = first_difference(a, b, f"{path}[{i}]", extra_keys_ok)
            if diff:
                return diff
        return None
    if type(ours) is not type(theirs) or ours != theirs:
        return f"{path}: {ours!r} != {theirs!r}"
    return None
