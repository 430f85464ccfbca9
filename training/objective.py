"""Mean edge of many parameter sets over one batch of seeds, on the fast path.

Common random numbers: every member of a population is run on the same seeds (the seed's
market and events repeated per member, the members tiled per seed, seed-major as in
`propamm_jax.sweep`), so differences between members are not sampling noise.

Compiled opponents (`.rs` / `.so`) have no closed-form curve, so a setting with any of them
is evaluated officially instead, gradient-free only: the whole population x seeds is one run
of the native engine (`official_values`), every member being the family's one compiled
library with its parameters preloaded in its storage (`training.parametric`), bit-identical
to scoring its exported submission. With Ray, each member is still exported, compiled and
scored separately (`per_member_values`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from propamm_jax.config import SimConfig
from propamm_jax.errors import PropammError
from propamm_jax.rules import risk_score

# margin: the policy's edge minus the best other strategy's edge on the same seed (the
# normalizer when it plays alone): the paired margin a field is won by (training/league.py).
# beaten: the share of the other strategies whose edge is below the policy's on the seed
# (its mean is the expected place: rank = 1 + (N - 1) x (1 - beaten), a median-rank proxy).
# placed: margin + rank_weight x beaten. A field is judged by both: the mean edge (won by the
# margin) and the median rank (beaten). Margin alone favours a high-variance bet that wins
# big on some seeds and ranks last on the rest; beaten alone a strategy that ranks second
# everywhere. rank_weight is in edge units: what beating the whole field is worth.
OBJECTIVES = ("edge", "risk", "vs_normalizer", "margin", "beaten", "placed")


@dataclass(frozen=True)
class Setting:
    """What a policy is evaluated in: the pool family, opponents, profile and objective."""

    pool: Any                       # the trained pool (e.g. DynamicFee)
    opponents: tuple[str, ...] = ()  # pool specs (`cpamm:30`), fixed during training
    profile: str = "corrected"
    config: SimConfig = SimConfig()
    objective: str = "edge"
    risk_lambda: float = 2.0
    rank_weight: float = 100.0

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise PropammError(f"unknown objective {self.objective!r} (choose from "
                               f"{', '.join(OBJECTIVES)})")

    @property
    def compiled_opponents(self) -> tuple[str, ...]:
        """Opponents given as a Rust source or a compiled library."""
        return tuple(o for o in self.opponents if is_compiled(o))


def is_compiled(spec: str) -> bool:
    """An opponent spec naming a strategy file (`.rs` source or `.so` library)."""
    return str(spec).endswith((".rs", ".so"))


def per_seed_value(edges, setting: Setting):
    """The objective of each simulation from its final edges `[..., N+1]` (the policy first,
    the normalizer last): edge, risk-adjusted edge, edge - normalizer's or edge - the best
    other strategy's (`margin`; the normalizer's when there are no opponents), the share of
    the others it beats (`beaten`), or `placed` (margin + rank_weight x beaten)."""
    import jax.numpy as jnp

    edge, norm_edge = edges[..., 0], edges[..., -1]
    others = edges[..., 1:-1] if edges.shape[-1] > 2 else edges[..., -1:]
    beaten = jnp.mean(others < edge[..., None], axis=-1)
    margin = edge - jnp.max(others, axis=-1)
    if setting.objective == "beaten":
        return beaten
    if setting.objective == "margin":
        return margin
    if setting.objective == "placed":
        return margin + setting.rank_weight * beaten
    if setting.objective == "risk":
        return risk_score(edge, setting.risk_lambda, xp=jnp)
    if setting.objective == "vs_normalizer":
        return edge - norm_edge
    return edge


def _inputs(setting: Setting, seeds: Sequence[int], members: int):
    """`Market` and `Packed` events of `seeds` (the one event builder), each simulation
    repeated `members` times in place (seed-major)."""
    from propamm_jax.fast.events import market_of, pack_events
    from propamm_jax.tape.cache import cached_tape

    tape = cached_tape(list(seeds), setting.config.steps)
    market, packed = market_of(tape), pack_events(tape)
    return (type(market)(*(np.repeat(a, members, 0) for a in market)),
            type(packed)(*(np.repeat(a, members, 1) for a in packed)))


def _opponent_params(setting: Setting, rows: int):
    import jax

    from propamm_jax.simulation import parse_pool

    specs = [parse_pool(o) for o in setting.opponents]
    pools = [s.pool for s in specs]
    params = [jax.tree_util.tree_map(
        lambda a: np.broadcast_to(np.asarray(a, np.float64), (rows,) + np.shape(a)).copy(),
        s.params) for s in specs]
    return pools, params


def population_values(setting: Setting, population, seeds: Sequence[int],
                      smooth: float = 0.0, ray: str | None = None) -> np.ndarray:
    """[members, seeds] objective values of a stacked population (leading axis: members).
    `ray`: a Ray cluster's address; chunks of seeds then run as its tasks (same values)."""
    import jax

    members = int(np.shape(jax.tree_util.tree_leaves(population)[0])[0])
    if setting.compiled_opponents:
        return official_values(setting, population, seeds, ray)
    if ray is not None:
        from propamm_jax import cluster

        host = jax.tree_util.tree_map(np.asarray, population)
        parts = cluster.map_seeds(ray, population_values, (setting, host), list(seeds),
                                  largest=len(seeds))
        return np.concatenate(parts, axis=1)
    market, events = _inputs(setting, seeds, members)
    rows = members * len(seeds)
    opp_pools, opp_params = _opponent_params(setting, rows)
    tiled = jax.tree_util.tree_map(  # seed-major: the members repeated per seed
        lambda a: np.tile(np.asarray(a, np.float64), (len(seeds),) + (1,) * (np.ndim(a) - 1)),
        population)
    final = _runner(setting, opp_pools)(*market, events, [tiled] + opp_params)
    edge = np.asarray(final.cumulative_edge)
    value = np.asarray(per_seed_value(edge, setting))
    return value.reshape(len(seeds), members).T


def official_values(setting: Setting, population, seeds: Sequence[int],
                    ray: str | None = None, workers: int | None = None,
                    sandbox: str = "auto") -> np.ndarray:
    """[members, seeds] objective values, scored officially against the opponents (fixed
    fees as fixed-fee submissions, compiled strategies as they are): members x seeds as one
    run of the family library with preloaded storage (seed-major, so a block of simulations
    shares its tapes). `ray`: the per-member path instead."""
    import jax

    from propamm_jax.official.preloaded import PreloadedSim, run_preloaded
    from propamm_jax.training.parametric import member_storage

    if ray is not None:
        return per_member_values(setting, population, seeds, ray)
    members = int(np.shape(jax.tree_util.tree_leaves(population)[0])[0])
    seeds = list(seeds)
    prepared = _prepared_field(setting.opponents)
    blobs = [member_storage(setting.pool, _member(population, m)) for m in range(members)]
    others = (None,) * (len(prepared.libraries) - 1)
    sims = [PreloadedSim(seed, (blob,) + others) for seed in seeds for blob in blobs]
    records, failures = run_preloaded(prepared, sims, setting.config, setting.profile,
                                      workers=workers, sandbox=sandbox)
    if failures:
        lost = sorted({k % members for k, r in enumerate(records) if r is None})
        raise PropammError(f"training: {len(failures)} of {len(sims)} simulations failed "
                           f"(members {', '.join(map(str, lost))}); first: {failures[0].line()}")
    edges = np.array([[st["final_edge"] for st in r["strategies"]] + [r["normalizer_edge"]]
                      for r in records])
    value = np.asarray(per_seed_value(edges, setting))
    return value.reshape(len(seeds), members).T


def _member(population, m: int) -> dict[str, float]:
    """Member `m`'s parameters as exact Python floats."""
    return {k: float(np.asarray(v)[m]) for k, v in population._asdict().items()}


_FIELDS: dict = {}


def _prepared_field(opponents: tuple[str, ...]):
    """The family library and the opponents, compiled and through score's gate once per
    training run (cached while their libraries exist): a Prepared with the library first."""
    import tempfile
    from pathlib import Path

    from propamm_jax.official.scoring import prepare_strategies
    from propamm_jax.training.evaluate import opponent_files
    from propamm_jax.training.parametric import library_source_file

    cached = _FIELDS.get(opponents)
    if cached is not None and all(Path(p).exists() for p in cached.libraries):
        return cached
    with tempfile.TemporaryDirectory(prefix="propamm-train-") as tmp:
        files = [library_source_file(tmp)] + opponent_files(opponents, Path(tmp))
        prepared = prepare_strategies([str(f) for f in files])
    if prepared.rejected:
        raise PropammError(f"opponents: {prepared.rejected[0]}")
    _FIELDS[opponents] = prepared
    return prepared


def per_member_values(setting: Setting, population, seeds: Sequence[int],
                      ray: str | None = None) -> np.ndarray:
    """[members, seeds] objective values, each member exported, compiled and scored
    separately (the path before `official_values`; Ray runs it, and the benchmark compares)."""
    import tempfile
    from pathlib import Path

    import jax

    from propamm_jax.official.scoring import score
    from propamm_jax.training.evaluate import opponent_files
    from propamm_jax.pools.families import family_of

    leaves = jax.tree_util.tree_leaves(population)
    members = int(np.shape(leaves[0])[0])
    seeds = list(seeds)
    values = np.empty((members, len(seeds)))
    with tempfile.TemporaryDirectory(prefix="propamm-train-") as tmp:
        others = [str(f) for f in opponent_files(setting.opponents, Path(tmp))]
        for m in range(members):
            params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64)[m], population)
            rs = Path(tmp) / f"member_{m}.rs"
            rs.write_text(family_of(setting.pool).render(setting.pool, params, f"member_{m}"))
            result = score([str(rs)] + others, config=setting.config, seeds=seeds,
                           profile=setting.profile, progress=False, ray=ray)
            if result.rejected:
                raise PropammError(f"opponents: {result.rejected[0]}")
            if result.failures:
                raise PropammError(f"training member {m}: {result.failures[0]}")
            by_seed = {int(s["seed"]): s for s in result.results.sims}
            edges = np.array([[r["final_edge"] for r in by_seed[s]["strategies"]]
                              + [by_seed[s]["normalizer_edge"]] for s in seeds])
            values[m] = np.asarray(per_seed_value(edges, setting))
    return values


_RUNS: dict = {}


def _runner(setting: Setting, opp_pools):
    """The batch runner of a setting (one parameter set per simulation), kept per process;
    its compiled programs are also kept on disk (`fast.runner`)."""
    from propamm_jax.fast.runner import BatchRunner

    # Keyed by the opponents' pool classes, not their specs: their parameters are arguments,
    # so a league's changing fields of the same make-up share one program.
    key = (setting.pool, tuple(opp_pools), setting.profile, setting.config)
    if key not in _RUNS:
        _RUNS[key] = BatchRunner([setting.pool] + list(opp_pools), setting.config,
                                 setting.profile, batched_params=True)
    return _RUNS[key]


def smoothed_value_and_grad(setting: Setting, seeds: Sequence[int], smooth: float, params):
    """(loss, gradient) of loss = -mean objective over `seeds` (shared parameters) through
    the smoothed engine (`smooth` > 0), for gradient training. Compiled once per setting."""
    import jax
    import jax.numpy as jnp

    from propamm_jax.fast.runner import run_batch
    from propamm_jax.fast.step import Engine

    if setting.compiled_opponents:
        raise PropammError("adam trains through the fast path, which cannot run compiled "
                           f"opponents ({setting.compiled_opponents[0]}): use cma_es, open_es "
                           "or snes")
    market, events = _inputs(setting, seeds, 1)
    opp_pools, opp_params = _opponent_params(setting, 1)
    opp_params = [jax_tree_first(p) for p in opp_params]
    key = ("grad", smooth, len(seeds)) + (setting.pool, setting.opponents, setting.profile,
                                          setting.config, setting.objective, setting.risk_lambda,
                                          setting.rank_weight)
    if key not in _RUNS:
        engine = Engine((setting.pool,) + tuple(opp_pools), setting.config, setting.profile,
                        smooth=smooth)

        def loss(prm, opp, m, e):
            final = run_batch(engine, [prm] + opp, m, e)
            edge = final.cumulative_edge
            return -jnp.mean(per_seed_value(edge, setting))

        _RUNS[key] = jax.jit(jax.value_and_grad(loss))
    return _RUNS[key](params, opp_params, market, events)


def jax_tree_first(tree):
    import jax

    return jax.tree_util.tree_map(lambda a: a[0], tree)
