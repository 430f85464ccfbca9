"""`propamm evaluate`: a policy on held-out seeds, fast path and official side by side.

The official side exports the policy (`training.export`) and scores the `.rs` through
`propamm_jax.scoring.score`; opponents given as `cpamm:BPS` become fixed-fee submissions.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from propamm_jax.config import SimConfig, check_profile
from propamm_jax.errors import PropammError
from propamm_jax.pools.dynamic_fee import load_policy


@dataclass(frozen=True)
class Evaluation:
    seeds: int
    fast_mean: float | None   # None: compiled opponents, which only run officially
    official_mean: float | None
    official_failures: int

    @property
    def gap(self) -> float | None:
        """Relative difference official vs fast (export fidelity)."""
        if self.official_mean is None or not self.fast_mean:
            return None
        return (self.official_mean - self.fast_mean) / abs(self.fast_mean)


def fast_edges(policy: str | Path, seeds: Sequence[int], profile: str, config: SimConfig,
               opponents: Sequence[str] = (), ray: str | None = None) -> np.ndarray:
    """The policy's edge on each seed, on the fast path."""
    import jax

    from propamm_jax.training.objective import Setting, population_values

    pool, params = load_policy(policy)
    stacked = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64)[None], params)
    return population_values(Setting(pool, tuple(opponents), profile, config), stacked, seeds,
                             ray=ray)[0]


def opponent_files(opponents: Sequence[str], folder: Path) -> list[Path]:
    """`cpamm:BPS` opponents as fixed-fee `.rs` files (official scoring needs submissions)."""
    from propamm_jax.training.export import fixed_fee_rust

    from propamm_jax.training.objective import is_compiled

    files = []
    for spec in opponents:
        if is_compiled(spec):
            if not Path(spec).is_file():
                raise PropammError(f"opponent {spec}: no such file")
            files.append(Path(spec))
            continue
        kind, _, arg = spec.partition(":")
        try:
            bps = int(arg)
        except ValueError:
            bps = None
        if kind != "cpamm" or bps is None:
            raise PropammError(f"opponent {spec!r}: official evaluation takes cpamm:BPS "
                               "(an integer fee) or .rs/.so opponents")
        path = folder / f"fixed_{bps}bps.rs"
        path.write_text(fixed_fee_rust(bps))
        files.append(path)
    return files


def official_edges(policy: str | Path, seeds: Sequence[int], profile: str, config: SimConfig,
                   opponents: Sequence[str] = (), workers: int | None = None,
                   progress: bool | None = None,
                   ray: str | None = None) -> tuple[dict[int, float], int]:
    """({seed: edge} of the exported policy, number of failed simulations)."""
    from propamm_jax.scoring import score
    from propamm_jax.training.export import export

    with tempfile.TemporaryDirectory(prefix="propamm-eval-") as tmp:
        rs = export(policy, Path(tmp) / "policy_export.rs")
        files = [rs] + opponent_files(opponents, Path(tmp))
        result = score([str(f) for f in files], config=config, seeds=list(seeds),
                       profile=profile, workers=workers, progress=progress, ray=ray)
    if result.rejected:
        raise PropammError(f"export of {policy} was rejected: {result.rejected[0]}")
    frame = result.frame
    mine = frame[frame.strategy_index == 0]
    return dict(zip(mine.seed.astype(int), mine.edge.astype(float))), len(result.failures)


def evaluate(policy: str | Path, seeds: Sequence[int], profile: str = "corrected",
             config: SimConfig | None = None, opponents: Sequence[str] = (),
             official: bool = True, workers: int | None = None,
             progress: bool | None = None, ray: str | None = None) -> Evaluation:
    """The policy's mean edge on `seeds`, fast path and official; `ray`: a Ray cluster's
    address to fan both out over."""
    from propamm_jax.training.objective import is_compiled

    config = config or SimConfig()
    profile = check_profile(profile)
    seeds = list(seeds)
    # No fast path against compiled strategies: those are only scored officially.
    compiled = any(is_compiled(o) for o in opponents)
    fast = None if compiled else fast_edges(policy, seeds, profile, config, opponents, ray)
    if not official and fast is not None:
        return Evaluation(len(seeds), float(fast.mean()), None, 0)
    edges, failed = official_edges(policy, seeds, profile, config, opponents, workers, progress,
                                   ray)
    done = [s for s in seeds if s in edges]
    off = float(np.mean([edges[s] for s in done])) if done else None
    if fast is None:
        return Evaluation(len(seeds), None, off, failed)
    # compare on the seeds both sides completed, so a failed simulation does not bias the gap
    fast_done = float(np.mean([v for s, v in zip(seeds, fast) if s in edges])) if done else float(fast.mean())
    return Evaluation(len(seeds), fast_done, off, failed)
