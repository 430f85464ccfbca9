"""Mean edge of many parameter sets over one batch of seeds, on the fast path.

Common random numbers: every member of a population is run on the same seeds (the seed's
market and events repeated per member, the members tiled per seed, seed-major as in
`propamm_jax.sweep`), so differences between members are not sampling noise.

Compiled opponents (`.rs` / `.so`) have no closed-form curve, so a setting with any of them
is evaluated officially instead: each member is exported to Rust (`training.export`),
compiled once (cached by source) and scored by the native engine against the opponents on
the same seeds. Exact, gradient-free only, and about 1-2 s per member and batch of seeds.
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
OBJECTIVES = ("edge", "risk", "vs_normalizer", "margin", "beaten")


@dataclass(frozen=True)
class Setting:
    """What a policy is evaluated in: the pool family, opponents, profile and objective."""

    pool: Any                       # the trained pool (e.g. DynamicFee)
    opponents: tuple[str, ...] = ()  # pool specs (`cpamm:30`), fixed during training
    profile: str = "corrected"
    config: SimConfig = SimConfig()
    objective: str = "edge"
    risk_lambda: float = 2.0

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
    other strategy's (`margin`; the normalizer's when there are no opponents)."""
    import jax.numpy as jnp

    edge, norm_edge = edges[..., 0], edges[..., -1]
    if setting.objective == "beaten":
        others = edges[..., 1:-1] if edges.shape[-1] > 2 else edges[..., -1:]
        return jnp.mean(others < edge[..., None], axis=-1)
    if setting.objective == "margin":
        others = edges[..., 1:-1] if edges.shape[-1] > 2 else edges[..., -1:]
        return edge - jnp.max(others, axis=-1)
    if setting.objective == "risk":
        return risk_score(edge, setting.risk_lambda, xp=jnp)
    if setting.objective == "vs_normalizer":
        return edge - norm_edge
    return edge


def _inputs(setting: Setting, seeds: Sequence[int], members: int):
    """Markets and events of `seeds`, each repeated `members` times (seed-major)."""
    import jax
    import jax.numpy as jnp

    from propamm_jax.fast import build_events, build_market, event_width
    from propamm_jax.tape.cache import cached_tape

    tape = cached_tape(list(seeds), setting.config.steps)
    # Padded to a multiple of 1024 events: every batch of seeds then reuses one of a few
    # compiled programs instead of compiling its own exact length.
    events = build_events(tape, np.float64, event_width(tape))
    rep = lambda t: jax.tree_util.tree_map(lambda a: np.repeat(np.asarray(a), members, 0), t)  # noqa: E731
    return rep(build_market(tape, setting.config, np.float64)), rep(events)


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

    from propamm_jax.fast import simulate_batch

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
    tiled = jax.tree_util.tree_map(
        lambda a: np.tile(np.asarray(a, np.float64), len(seeds)), population)
    final = _run(setting, opp_pools, rows)(market, events, [tiled] + opp_params)
    edge = np.asarray(final.cumulative_edge)
    value = np.asarray(per_seed_value(edge, setting))
    return value.reshape(len(seeds), members).T


def official_values(setting: Setting, population, seeds: Sequence[int],
                    ray: str | None = None) -> np.ndarray:
    """[members, seeds] objective values, each member exported and scored officially against
    the opponents (fixed fees as fixed-fee submissions, compiled strategies as they are)."""
    import tempfile
    from pathlib import Path

    import jax

    from propamm_jax.official.scoring import score
    from propamm_jax.training.evaluate import opponent_files
    from propamm_jax.training.export import render

    leaves = jax.tree_util.tree_leaves(population)
    members = int(np.shape(leaves[0])[0])
    seeds = list(seeds)
    values = np.empty((members, len(seeds)))
    with tempfile.TemporaryDirectory(prefix="propamm-train-") as tmp:
        others = [str(f) for f in opponent_files(setting.opponents, Path(tmp))]
        for m in range(members):
            params = jax.tree_util.tree_map(lambda a: float(np.asarray(a)[m]), population)
            rs = Path(tmp) / f"member_{m}.rs"
            rs.write_text(render(setting.pool, params._asdict(), f"member_{m}"))
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


def _run(setting: Setting, opp_pools, rows: int):
    """One jitted batch program per (pool, opponents, profile, config), its rows split over
    the local devices when they divide evenly (the `propamm` command makes one XLA CPU
    device per core; each simulates its own rows, no communication)."""
    import jax

    from propamm_jax.fast import simulate_batch

    devices = jax.local_devices()
    d = len(devices) if len(devices) > 1 and rows % len(devices) == 0 else 1
    # Keyed by the opponents' pool classes, not their specs: their parameters are arguments,
    # so a league's changing fields of the same make-up share one program.
    key = (setting.pool, tuple(opp_pools), setting.profile, setting.config, d)
    if key not in _RUNS:
        pools = [setting.pool] + list(opp_pools)

        def run(m, e, p):
            return simulate_batch(pools, p, setting.config, setting.profile, m, e,
                                  params_batched=True)

        if d > 1:
            from jax.sharding import Mesh, PartitionSpec as P

            mesh = Mesh(np.array(devices[:d]), ("rows",))
            run = jax.shard_map(run, mesh=mesh, in_specs=P("rows"), out_specs=P("rows"),
                                check_vma=False)
        _RUNS[key] = jax.jit(run)
    return _RUNS[key]


def smoothed_value_and_grad(setting: Setting, seeds: Sequence[int], smooth: float, params):
    """(loss, gradient) of loss = -mean objective over `seeds` (shared parameters) through
    the smoothed engine (`smooth` > 0), for gradient training. Compiled once per setting."""
    import jax
    import jax.numpy as jnp

    from propamm_jax.fast import simulate_batch

    if setting.compiled_opponents:
        raise PropammError("adam trains through the fast path, which cannot run compiled "
                           f"opponents ({setting.compiled_opponents[0]}): use cma_es, open_es "
                           "or snes")
    market, events = _inputs(setting, seeds, 1)
    opp_pools, opp_params = _opponent_params(setting, 1)
    opp_params = [jax_tree_first(p) for p in opp_params]
    key = ("grad", smooth, len(seeds)) + (setting.pool, setting.opponents, setting.profile,
                                          setting.config, setting.objective, setting.risk_lambda)
    if key not in _RUNS:
        pools = [setting.pool] + list(opp_pools)

        def loss(prm, opp, m, e):
            final = simulate_batch(pools, [prm] + opp, setting.config, setting.profile, m, e,
                                   smooth=smooth)
            edge = final.cumulative_edge
            return -jnp.mean(per_seed_value(edge, setting))

        _RUNS[key] = jax.jit(jax.value_and_grad(loss))
    return _RUNS[key](params, opp_params, market, events)


def jax_tree_first(tree):
    import jax

    return jax.tree_util.tree_map(lambda a: a[0], tree)
