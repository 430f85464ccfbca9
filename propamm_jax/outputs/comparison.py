"""`propamm compare A.json B.json`: two results files on the same seeds, paired.

The same seed is the same market in both files, so the difference of a strategy's edge seed
by seed removes the market's variance: its mean, standard error and 95% interval (Student t)
say whether B really differs from A, with far fewer simulations than two independent means.
Strategies are paired by position (strategy 0 of A with strategy 0 of B, ...), so a changed
submission can be compared with its previous version against the same opponents. Files on
different seeds, profiles, configs or numbers of strategies are refused: their differences
would not be paired.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from propamm_jax.errors import PropammError
from propamm_jax.outputs.results import Results


@dataclass(frozen=True)
class Comparison:
    frame: Any                 # DataFrame, one row per strategy position (see `compare`)
    seeds: int
    rank_changed_share: float  # share of seeds whose order of strategies differs in B
    rank_changed_by_mean: bool
    order_a: tuple[str, ...]   # strategy names by mean edge, best first
    order_b: tuple[str, ...]

    def lines(self) -> list[str]:
        """The table and the ranking verdicts, as `propamm compare` prints them."""
        out = [f"{'strategy (A -> B)':<40} {'mean A':>9} {'mean B':>9} {'B - A':>9} "
               f"{'std err':>8} {'95% interval':>22}"]
        for r in self.frame.itertuples():
            label = r.strategy_a if r.strategy_a == r.strategy_b else \
                f"{r.strategy_a} -> {r.strategy_b}"
            se = "n/a" if math.isnan(r.std_err) else f"{r.std_err:.3f}"
            ci = "n/a" if math.isnan(r.ci_low) else f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"
            out.append(f"{label[:40]:<40} {r.mean_a:9.2f} {r.mean_b:9.2f} {r.diff:9.3f} "
                       f"{se:>8} {ci:>22}")
        by_mean = ("changed: A " + " > ".join(self.order_a) + ", B " + " > ".join(self.order_b)
                   if self.rank_changed_by_mean else "unchanged: " + " > ".join(self.order_a))
        changed = round(self.rank_changed_share * self.seeds)
        return out + [f"ranking by mean edge: {by_mean}",
                      f"ranking per seed: changed on {changed} of {self.seeds} seeds "
                      f"({100 * self.rank_changed_share:.1f}%)"]


def _load(source: Results | str | Path) -> tuple[Results, str]:
    if isinstance(source, Results):
        return source, "results"
    return Results.load(source), str(source)


def check_paired(a: Results, b: Results, name_a: str = "A", name_b: str = "B") -> None:
    """Refuses (one line) two runs whose simulations cannot be paired seed by seed."""
    if a.engine != b.engine:
        raise PropammError(f"{name_a} and {name_b} ran different profiles "
                           f"({a.engine} vs {b.engine}): not comparable")
    ca, cb = a.config.to_json(), b.config.to_json()
    differ = [k for k in sorted(set(ca) | set(cb)) if ca.get(k) != cb.get(k)]
    if differ:
        raise PropammError(f"{name_a} and {name_b} ran different configs ({differ[0]}: "
                           f"{ca.get(differ[0])} vs {cb.get(differ[0])}): not comparable")
    for results, name in ((a, name_a), (b, name_b)):
        seeds = [int(s["seed"]) for s in results.sims]
        if not seeds:
            raise PropammError(f"{name}: no simulations to compare")
        if len(set(seeds)) < len(seeds):
            raise PropammError(f"{name}: seed {_first_duplicate(seeds)} appears twice")
    sa, sb = {int(s["seed"]) for s in a.sims}, {int(s["seed"]) for s in b.sims}
    if sa != sb:
        only, where = (min(sa - sb), name_a) if sa - sb else (min(sb - sa), name_b)
        raise PropammError(f"{name_a} and {name_b} ran different seeds (seed {only} is only "
                           f"in {where}; {len(sa)} vs {len(sb)} seeds): not comparable")
    if len(a.names()) != len(b.names()):
        raise PropammError(f"{name_a} has {len(a.names())} strategies, {name_b} "
                           f"{len(b.names())}: strategies are paired by position")


def _first_duplicate(values: list[int]) -> int:
    seen: set[int] = set()
    for v in values:
        if v in seen:
            return v
        seen.add(v)
    raise ValueError("no duplicate")


def _edges(results: Results, seeds: list[int]) -> np.ndarray:
    """[seed, strategy] final edges in the order of `seeds`."""
    by_seed = {int(s["seed"]): s for s in results.sims}
    return np.array([[st["final_edge"] for st in by_seed[seed]["strategies"]]
                     for seed in seeds], dtype=np.float64)


def _order(values: np.ndarray) -> np.ndarray:
    """Positions best first (ties: lower position first) along the last axis."""
    return np.argsort(-values, axis=-1, kind="stable")


def compare(a: Results | str | Path, b: Results | str | Path) -> Comparison:
    """Paired comparison of two runs on the same seeds. `Comparison.frame` has one row per
    strategy position: strategy_a, strategy_b, mean_a, mean_b, diff (B - A), std_err (of the
    mean paired difference), ci_low/ci_high (95%, Student t), seeds."""
    import pandas as pd
    from scipy import stats

    (ra, name_a), (rb, name_b) = _load(a), _load(b)
    check_paired(ra, rb, name_a if name_a != "results" else "A",
                 name_b if name_b != "results" else "B")
    seeds = sorted(int(s["seed"]) for s in ra.sims)
    ea, eb = _edges(ra, seeds), _edges(rb, seeds)
    d = eb - ea
    n = len(seeds)
    se = d.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full(d.shape[1], np.nan)
    half = stats.t.ppf(0.975, n - 1) * se if n > 1 else se
    mean_d = d.mean(axis=0)
    frame = pd.DataFrame({"strategy_a": ra.names(), "strategy_b": rb.names(),
                          "mean_a": ea.mean(axis=0), "mean_b": eb.mean(axis=0),
                          "diff": mean_d, "std_err": se, "ci_low": mean_d - half,
                          "ci_high": mean_d + half, "seeds": n})
    per_seed = (_order(ea) != _order(eb)).any(axis=1)
    oa, ob = _order(ea.mean(axis=0)), _order(eb.mean(axis=0))
    return Comparison(frame, n, float(per_seed.mean()), bool((oa != ob).any()),
                      tuple(ra.names()[i] for i in oa), tuple(rb.names()[i] for i in ob))
