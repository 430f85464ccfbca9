"""`propamm evaluate`: how good is a trained policy, on seeds its training never saw?

By default everything comes from the policy file: the profile and config it was trained in,
its training opponents, and fresh seeds just past every seed range training used (`seeds` in
policy.json: the training batches and the held-out seeds that picked the checkpoint). The
policy runs on the fast path and, exported (`training.export`), through official scoring
(`propamm_jax.scoring.score`) on the same seeds, side by side; `vs_fixed.compare_fixed` adds
the best fixed fee on those seeds. Opponents given as `cpamm:BPS` become fixed-fee
submissions officially.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from propamm_jax.config import SimConfig, check_profile
from propamm_jax.errors import PropammError, read_json
from propamm_jax.pools.families import load_policy

# Policy files written before the seed ranges were recorded: evaluate far above any range
# `train`'s defaults reach (1 000 000 + generations x batch seeds).
FAR_SEED_START = 1_000_000_000_000


@dataclass(frozen=True)
class PolicySetting:
    """What a policy file says about the setting it was trained in."""

    path: Path
    profile: str | None
    config: SimConfig | None
    opponents: tuple[str, ...]
    seed_ranges: dict[str, tuple[int, int]]  # e.g. {"train": (first, last), "heldout": ...}

    def fresh_seed_start(self) -> tuple[int, str | None]:
        """(first seed after every range training used, a warning line or None)."""
        if not self.seed_ranges:
            return FAR_SEED_START, (f"warning: {self.path} records no training seed ranges "
                                    f"(an older file): evaluating on seeds from "
                                    f"{FAR_SEED_START}, far from the default training ranges")
        return max(last for _, last in self.seed_ranges.values()) + 1, None

    def overlap(self, seeds: Sequence[int]) -> str | None:
        """A warning line if some of `seeds` were used in training, else None."""
        for name, (first, last) in self.seed_ranges.items():
            hit = [s for s in seeds if first <= s <= last]
            if hit:
                return (f"warning: {len(hit)} of the {len(seeds)} seeds are in the policy's "
                        f"{name} range {first}..{last}: the result is not out of sample")
        return None


def policy_setting(path: str | Path) -> PolicySetting:
    """Reads the training setting a policy file records (every field optional)."""
    path = Path(path)
    load_policy(path)  # the policy itself must be valid
    data = read_json(path)
    config = data.get("config")
    training = data.get("training") if isinstance(data.get("training"), dict) else {}
    ranges = {}
    for name, value in (data.get("seeds") or {}).items():
        try:
            first, last = (int(v) for v in value)
        except (TypeError, ValueError):
            raise PropammError(f"{path}: field 'seeds.{name}' must be [first, last]") from None
        ranges[name] = (first, last)
    opponents = training.get("opponents") or []
    if not isinstance(opponents, list) or not all(isinstance(o, str) for o in opponents):
        raise PropammError(f"{path}: field 'training.opponents' must be a list of specs")
    try:
        cfg = SimConfig(steps=int(config["steps"]), epoch_len=int(config["epoch_len"])) \
            if isinstance(config, dict) else None
    except (KeyError, TypeError, ValueError):
        raise PropammError(f"{path}: field 'config' needs integer steps and epoch_len") from None
    profile = data.get("profile")
    return PolicySetting(path, check_profile(profile) if profile is not None else None, cfg,
                         tuple(opponents), ranges)


@dataclass(frozen=True)
class Evaluation:
    seeds: int
    fast_mean: float | None   # None: compiled opponents, which only run officially
    official_mean: float | None
    official_failures: int
    seed_list: tuple[int, ...] = ()
    profile: str = "corrected"
    opponents: tuple[str, ...] = ()
    results: Any = None       # Results of the policy's run: official if scored, else fast
    fixed: Any = None         # vs_fixed.FixedComparison, with `vs_fixed`
    warnings: tuple[str, ...] = field(default=())

    @property
    def gap(self) -> float | None:
        """Relative difference official vs fast (export fidelity)."""
        if self.official_mean is None or not self.fast_mean:
            return None
        return (self.official_mean - self.fast_mean) / abs(self.fast_mean)

    def summary(self) -> dict:
        """The evaluation as plain JSON values (no per-simulation records)."""
        out = {"seeds": [self.seed_list[0], self.seed_list[-1]] if self.seed_list else [],
               "simulations": self.seeds, "profile": self.profile,
               "opponents": list(self.opponents), "policy_fast": self.fast_mean,
               "policy_official": self.official_mean,
               "policy_failures": self.official_failures}
        if self.fixed is not None:
            out.update(self.fixed.summary())
        return out


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


def official_run(policy: str | Path, seeds: Sequence[int], profile: str, config: SimConfig,
                 opponents: Sequence[str] = (), workers: int | None = None,
                 progress: bool | None = None, ray: str | None = None):
    """The exported policy (strategy 0) and its opponents scored officially: a ScoreResult."""
    from propamm_jax.scoring import score
    from propamm_jax.training.export import export

    with tempfile.TemporaryDirectory(prefix="propamm-eval-") as tmp:
        rs = export(policy, Path(tmp) / "policy_export.rs")
        files = [rs] + opponent_files(opponents, Path(tmp))
        result = score([str(f) for f in files], config=config, seeds=list(seeds),
                       profile=profile, workers=workers, progress=progress, ray=ray)
    if result.rejected:
        raise PropammError(f"export of {policy} was rejected: {result.rejected[0]}")
    return result


def official_edges(policy: str | Path, seeds: Sequence[int], profile: str, config: SimConfig,
                   opponents: Sequence[str] = (), workers: int | None = None,
                   progress: bool | None = None,
                   ray: str | None = None) -> tuple[dict[int, float], int]:
    """({seed: edge} of the exported policy, number of failed simulations)."""
    result = official_run(policy, seeds, profile, config, opponents, workers, progress, ray)
    return strategy_edges(result.results, 0), len(result.failures)


def strategy_edges(results, index: int) -> dict[int, float]:
    """{seed: final edge} of strategy `index` in a Results."""
    return {int(s["seed"]): float(s["strategies"][index]["final_edge"]) for s in results.sims}


@dataclass(frozen=True)
class Plan:
    """What an evaluation runs, the policy file's training setting filling what is not given."""

    seeds: tuple[int, ...]
    profile: str
    config: SimConfig
    opponents: tuple[str, ...]
    warnings: tuple[str, ...]


def plan(policy: str | Path, seeds: Sequence[int] | None = None, profile: str | None = None,
         config: SimConfig | None = None, opponents: Sequence[str] | None = None,
         simulations: int = 100) -> Plan:
    """Defaults from the policy: its profile, config and training opponents, and
    `simulations` seeds past every seed range its training used (warnings say when the seeds
    are not fresh)."""
    from propamm_jax.scoring import seed_list

    setting = policy_setting(policy)
    warnings = []
    if seeds is None:
        start, warning = setting.fresh_seed_start()
        seeds = seed_list(simulations, start)
        warnings += [warning] if warning else []
    seeds = tuple(seeds)
    if not seeds:
        raise PropammError("no seeds to evaluate")
    overlap = setting.overlap(seeds)
    return Plan(seeds, check_profile(profile or setting.profile or "corrected"),
                config or setting.config or SimConfig(),
                tuple(setting.opponents if opponents is None else opponents),
                tuple(warnings + ([overlap] if overlap else [])))


def evaluate(policy: str | Path, seeds: Sequence[int] | None = None, profile: str | None = None,
             config: SimConfig | None = None, opponents: Sequence[str] | None = None,
             official: bool = True, workers: int | None = None,
             progress: bool | None = None, vs_fixed: Sequence[int] = (),
             official_within: float = 5.0, simulations: int = 100,
             ray: str | None = None) -> Evaluation:
    """The policy on `seeds`, in `profile`/`config`/against `opponents` (defaults: `plan`),
    fast path and official side by side; with `vs_fixed` (fees in bps), also the best of those
    fixed fees on the same seeds (`vs_fixed.compare_fixed`). `ray`: a Ray cluster's address
    to fan the policy's runs out over."""
    from propamm_jax.simulation import simulate
    from propamm_jax.training.objective import is_compiled
    from propamm_jax.training.vs_fixed import compare_fixed

    p = plan(policy, seeds, profile, config, opponents, simulations)
    seeds = list(p.seeds)
    # No fast path against compiled strategies: those are only scored officially.
    compiled = any(is_compiled(o) for o in p.opponents)
    fast_results = None if compiled else simulate(
        [f"dynamic:{policy}", *p.opponents], p.config, seeds, p.profile, progress=False, ray=ray)
    fast = strategy_edges(fast_results, 0) if fast_results is not None else None
    run = official_run(policy, seeds, p.profile, p.config, p.opponents, workers, progress, ray) \
        if official or compiled else None
    edges = strategy_edges(run.results, 0) if run is not None else fast
    done = [s for s in seeds if s in edges]
    # compare on the seeds both sides completed, so a failed simulation does not bias the gap
    fast_mean = float(np.mean([fast[s] for s in done])) if fast is not None and done else None
    off_mean = float(np.mean([edges[s] for s in done])) if run is not None and done else None
    fixed = None
    if vs_fixed:
        fixed = compare_fixed(list(vs_fixed), seeds, p.profile, p.config, p.opponents,
                              official=run is not None, official_within=official_within,
                              workers=workers, progress=progress)
        fixed = fixed.against(off_mean if off_mean is not None else fast_mean)
    return Evaluation(len(seeds), fast_mean, off_mean, len(run.failures) if run else 0,
                      tuple(seeds), p.profile, p.opponents,
                      run.results if run is not None else fast_results, fixed, p.warnings)
