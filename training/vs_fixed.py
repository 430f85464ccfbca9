"""Does a policy beat every fixed fee on the same seeds? (`propamm evaluate --vs-fixed`)

Every fee runs on the fast path first, in one sweep over the same seeds and opponents
(seconds). Official scoring costs ~0.3 s per simulation in the corrected profile, so only the
fees whose fast-path mean is within `official_within` percent of the fast-path best are
scored officially (fixed-fee submissions, `export.fixed_fee_rust`): the fast path agrees with
official means to well under 1%, so a fee further below cannot be the official best. The best
fixed fee is chosen on the evaluation seeds themselves, which favours the baseline. Against
compiled opponents there is no fast path and every fee is scored officially.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from propamm_jax.config import SimConfig
from propamm_jax.errors import PropammError


@dataclass(frozen=True)
class FixedComparison:
    fees: tuple[int, ...]
    fast: dict[int, float]      # fee -> fast-path mean edge (empty against compiled opponents)
    official: dict[int, float]  # fee -> official mean edge, for the fees scored officially
    policy: float | None = None  # the policy's mean on the same seeds (official if scored)
    per_seed: dict[int, dict[int, float]] = field(default_factory=dict)  # fee -> seed -> edge
    policy_edges: dict[int, float] = field(default_factory=dict)  # seed -> the policy's edge

    def best(self) -> tuple[int, float]:
        """(fee, mean) of the best fixed fee: among the official means if any were scored."""
        means = self.official or self.fast
        fee = max(means, key=means.get)
        return fee, means[fee]

    @property
    def improvement(self) -> float | None:
        """(policy - best fixed) / |best fixed|."""
        if self.policy is None:
            return None
        _, best = self.best()
        return (self.policy - best) / abs(best) if best else None

    def against(self, policy: float | None,
                edges: dict[int, float] | None = None) -> "FixedComparison":
        """With the policy's mean and, to pair them with the best fee's, its edge per seed."""
        return replace(self, policy=policy, policy_edges=dict(edges or {}))

    def paired(self) -> tuple[float, float, int] | None:
        """(mean of policy - best fixed fee, its standard error, seeds), paired seed by seed
        (the same market on both sides), or None without per-seed edges of both."""
        from propamm_jax.official.tournament import mean_and_se

        fee, _ = self.best()
        best = self.per_seed.get(fee, {})
        seeds = [s for s in best if s in self.policy_edges]
        if not seeds:
            return None
        mean, se = mean_and_se(np.array([self.policy_edges[s] - best[s] for s in seeds]))
        return float(mean), float(se), len(seeds)

    def summary(self) -> dict:
        fee, best = self.best()
        return {"fixed_fast": {str(f): v for f, v in self.fast.items()},
                "fixed_official": {str(f): v for f, v in self.official.items()},
                "best_fixed_bps": fee, "best_fixed": best,
                "best_fixed_scored": "official" if self.official else "fast path",
                "improvement": self.improvement,
                **dict(zip(("policy_minus_best_fixed", "policy_minus_best_fixed_se",
                            "paired_seeds"), self.paired() or ()))}

    def lines(self) -> list[str]:
        """The per-fee table and the verdict, as printed by `propamm evaluate`."""
        out = [f"{'fixed fee bps':>13} {'fast path':>10} {'official':>10}"]
        for fee in self.fees:
            fast, off = self.fast.get(fee), self.official.get(fee)
            out.append(f"{fee:13d} {'n/a' if fast is None else f'{fast:.2f}':>10} "
                       f"{'' if off is None else f'{off:.2f}':>10}")
        fee, best = self.best()
        scored = "official" if self.official else "fast path"
        verdict = f"best fixed fee {fee} bps ({scored}): {best:.2f}"
        if self.improvement is not None:
            verdict += (f"  |  policy {self.policy:.2f}  |  policy vs best fixed: "
                        f"{100 * self.improvement:+.1f}%")
        paired = self.paired()
        if paired is None:
            return out + [verdict]
        mean, se, n = paired
        return out + [verdict, f"policy - best fixed, paired by seed: {mean:+.2f} (SE "
                               f"{'n/a' if not np.isfinite(se) else f'{se:.2f}'}, {n} seeds)"]


def fast_means(fees: Sequence[int], seeds: Sequence[int], profile: str, config: SimConfig,
               opponents: Sequence[str]) -> dict[int, float]:
    """Each fixed fee's mean edge on the fast path: one sweep, every fee on every seed."""
    from propamm_jax.sweeps import sweep

    frame = sweep("cpamm", {"fee_bps": [float(f) for f in fees]}, config, list(seeds), profile,
                  list(opponents), progress=False)
    means = frame.groupby("fee_bps")["edge"].mean()
    return {int(round(fee)): float(v) for fee, v in means.items()}


def official_edges(fee: int, seeds: Sequence[int], profile: str, config: SimConfig,
                   opponents: Sequence[str], workers: int | None,
                   progress: bool | None) -> dict[int, float]:
    """A fixed-fee submission's official edge on each of `seeds` against `opponents`."""
    from propamm_jax.official.scoring import score
    from propamm_jax.training.evaluate import opponent_files
    from propamm_jax.training.export import fixed_fee_rust

    with tempfile.TemporaryDirectory(prefix="propamm-fixed-") as tmp:
        path = Path(tmp) / f"baseline_{fee}bps.rs"
        path.write_text(fixed_fee_rust(fee))
        others = [str(f) for f in opponent_files(opponents, Path(tmp))]
        result = score([str(path)] + others, config=config, seeds=list(seeds), profile=profile,
                       workers=workers, progress=progress)
    edges = {int(s["seed"]): float(s["strategies"][0]["final_edge"]) for s in result.results.sims}
    if not edges:
        raise PropammError(f"fixed fee {fee} bps: every official simulation failed")
    return edges


def compare_fixed(fees: Sequence[int], seeds: Sequence[int], profile: str, config: SimConfig,
                  opponents: Sequence[str] = (), official: bool = True,
                  official_within: float = 5.0, workers: int | None = None,
                  progress: bool | None = None) -> FixedComparison:
    """Fixed fees `fees` (bps) on `seeds`: fast path for all, official for the contenders."""
    from propamm_jax.training.export import fixed_fee_rust
    from propamm_jax.training.objective import is_compiled

    fees = sorted(set(int(f) for f in fees))
    for fee in fees:
        fixed_fee_rust(fee)  # checks the fee
    compiled = any(is_compiled(o) for o in opponents)
    fast = {} if compiled else fast_means(fees, seeds, profile, config, opponents)
    if not official:
        if compiled:
            raise PropammError("--vs-fixed against compiled opponents needs official scoring")
        return FixedComparison(tuple(fees), fast, {})
    contenders = fees
    if fast:
        best = max(fast.values())
        contenders = [f for f in fees if fast[f] >= best - abs(best) * official_within / 100.0]
    per_seed = {fee: official_edges(fee, seeds, profile, config, opponents, workers, progress)
                for fee in contenders}
    scored = {fee: float(np.mean(list(edges.values()))) for fee, edges in per_seed.items()}
    return FixedComparison(tuple(fees), fast, scored, per_seed=per_seed)
