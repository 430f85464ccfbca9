"""The information ceiling: a policy's edge as a share of its family's oracle's.

The oracle (`propamm train --oracle`) is the family's policy seeing the step's true fair
price where the ordinary one sees an estimate (`pools/features.py`). Trained in the same
setting, its edge bounds what better fair-price estimation could give that family; the
share below says how much of that the policy already has. Both run on the fast path (the
oracle cannot run anywhere else) on the same fresh seeds, past every seed range either
training used, in the oracle's setting (profile, config, opponents).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from propamm_jax.errors import PropammError


@dataclass(frozen=True)
class Ceiling:
    policy_mean: float
    oracle_mean: float
    diff_se: float          # standard error of the paired difference oracle - policy
    seeds: tuple[int, int]  # first, last

    @property
    def share(self) -> float:
        return self.policy_mean / self.oracle_mean if self.oracle_mean else float("nan")

    def line(self) -> str:
        return (f"ceiling: the policy's mean edge {self.policy_mean:.2f} is "
                f"{100 * self.share:.1f}% of the oracle's {self.oracle_mean:.2f} (difference "
                f"{self.oracle_mean - self.policy_mean:.2f} +/- {self.diff_se:.2f} s.e.; "
                f"seeds {self.seeds[0]}..{self.seeds[1]}, fast path)")


def ceiling(policy: str | Path, oracle: str | Path, simulations: int = 100,
            ray: str | None = None) -> Ceiling:
    """The policy's and the oracle's mean edges on `simulations` fresh seeds."""
    from propamm_jax.config import SimConfig
    from propamm_jax.pools.families import read_policy
    from propamm_jax.scoring import seed_list
    from propamm_jax.training.evaluate import fast_edges, policy_setting

    if not read_policy(oracle)[1].oracle:
        raise PropammError(f"{oracle}: not an oracle policy (train one with --oracle)")
    if read_policy(policy)[1].oracle:
        raise PropammError(f"{policy}: an oracle policy; give the ordinary one")
    a, b = policy_setting(policy), policy_setting(oracle)
    start = max(a.fresh_seed_start()[0], b.fresh_seed_start()[0])
    seeds = seed_list(simulations, start)
    profile, config = b.profile or "corrected", b.config or SimConfig()
    mine = fast_edges(policy, seeds, profile, config, b.opponents, ray=ray)
    best = fast_edges(oracle, seeds, profile, config, b.opponents, ray=ray)
    diff = best - mine
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
    return Ceiling(float(mine.mean()), float(best.mean()), se, (seeds[0], seeds[-1]))
