"""Parameter sweeps: a grid of pool parameters x a list of seeds, as one batched program.

In the manner of a Monte Carlo x parameter grid: every grid point runs on every seed, so the
points share their markets and differences between points are not sampling noise. The batch
is the batch engine's (`fast.simulate_batch` with per-simulation parameters): each chunk of
seeds is laid out seed-major, its tapes repeated per grid point and the parameter sets tiled
per seed, so a sweep of P points x S seeds costs what P*S simulations cost in `simulate`.

Fixing a market parameter (`fixed={"sigma": 0.001}`) studies one regime on the same random
draws: the tape's GBM normals are recovered from its factors and the price path is rebuilt
with the new sigma; order sizes are log-normal with a mean proportional to
`order_size_mean`, so they are rescaled; the normalizer's fee and liquidity enter directly.
`lambda` cannot be fixed: it decides how many orders each step draws, hence every later draw
of the stream.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from propamm_jax.config import SimConfig, check_profile
from propamm_jax.errors import PropammError

FIXABLE = ("sigma", "order_size_mean", "norm_fee_bps", "norm_liquidity_mult")
ALIASES = {"fee_bps": ("fee_buy_bps", "fee_sell_bps")}  # one axis setting both cpamm fees
LANES = 500  # seeds x points per batch, as `simulate`'s default batch of seeds


@dataclass(frozen=True)
class Grid:
    """Named axes (a field of the swept pool's params, or an alias) and their values."""

    axes: tuple[tuple[str, tuple[float, ...]], ...]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.axes]

    def points(self) -> list[dict[str, float]]:
        """The cartesian product, first axis slowest."""
        values = [vals for _, vals in self.axes]
        return [dict(zip(self.names, combo)) for combo in itertools.product(*values)]


def parse_range(text: str, name: str = "range") -> tuple[float, ...]:
    """`5:100:5` (start:stop:step, stop included), `30` or `10,20,45`."""
    text = text.strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            start, stop, step = parts
            if step <= 0 or stop < start:
                raise PropammError(f"{name} {text!r}: need start <= stop and a positive step")
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            return tuple(round(start + i * step, 12) for i in range(count))
        return tuple(float(p) for p in text.split(","))
    except ValueError:
        raise PropammError(f"{name} {text!r}: expected START:STOP:STEP, a number or a "
                           "comma-separated list") from None


def parse_fixed(items: Iterable[str]) -> dict[str, float]:
    """`sigma=0.001` strings into a dict, each name checked against FIXABLE."""
    fixed = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if name == "lam":
            name = "lambda"
        if not sep:
            raise PropammError(f"--fix {item!r}: expected NAME=VALUE, e.g. sigma=0.001")
        try:
            fixed[name] = float(value)
        except ValueError:
            raise PropammError(f"--fix {item!r}: {value!r} is not a number") from None
    check_fixed(fixed)
    return fixed


def check_fixed(fixed: Mapping[str, float]) -> None:
    for name, value in fixed.items():
        if name == "lambda":
            raise PropammError("--fix lambda: lambda sets how many orders each step draws, "
                               "hence every later draw of the seed; it cannot be fixed")
        if name not in FIXABLE:
            raise PropammError(f"--fix {name}: not a market parameter (choose from "
                               f"{', '.join(FIXABLE)})")
        if not math.isfinite(value) or value < 0 or (value == 0 and name != "norm_fee_bps"):
            raise PropammError(f"--fix {name}={value:g}: must be a positive finite number")
        if name == "norm_fee_bps" and value >= 10_000:
            raise PropammError(f"--fix norm_fee_bps={value:g}: must be below 10000")


def fix_market(tape, fixed: Mapping[str, float]):
    """The tape with some market parameters overridden on the same random draws."""
    check_fixed(fixed)
    if not fixed:
        return tape
    p = tape.params
    factor, size = tape.gbm_factor, tape.order_size
    if "sigma" in fixed:
        old, new = p.sigma[:, None], fixed["sigma"]
        z = (np.log(factor) + 0.5 * old * old) / old  # the step's standard normal, recovered
        factor = np.exp((-0.5 * new) * new + new * z)
    if "order_size_mean" in fixed:
        size = size * (fixed["order_size_mean"] / p.order_size_mean)[:, None]
    s = len(tape.seeds)
    params = p._replace(**{
        "sigma": np.full(s, fixed["sigma"]) if "sigma" in fixed else p.sigma,
        "order_size_mean": (np.full(s, fixed["order_size_mean"]) if "order_size_mean" in fixed
                            else p.order_size_mean),
        "norm_fee_bps": (np.full(s, round(fixed["norm_fee_bps"]), np.int64)
                         if "norm_fee_bps" in fixed else p.norm_fee_bps),
        "norm_liquidity_mult": (np.full(s, fixed["norm_liquidity_mult"])
                                if "norm_liquidity_mult" in fixed else p.norm_liquidity_mult),
    })
    return tape._replace(params=params, gbm_factor=factor, order_size=size)


def grid_params(spec, grid: Grid, dtype) -> Any:
    """The swept pool's params pytree stacked over grid points (leading axis: points)."""
    fields = list(type(spec.params)._fields)
    for name in grid.names:
        targets = ALIASES.get(name, (name,))
        if not all(t in fields for t in targets):
            known = fields + [a for a, ts in ALIASES.items() if all(t in fields for t in ts)]
            raise PropammError(f"sweep axis {name!r}: the pool {spec.label!r} has no such "
                               f"parameter (choose from {', '.join(known)})")
    columns = {f: [] for f in fields}
    for point in grid.points():
        values = {f: float(getattr(spec.params, f)) for f in fields}
        for name, value in point.items():
            for target in ALIASES.get(name, (name,)):
                values[target] = value
        for f in fields:
            columns[f].append(values[f])
    return type(spec.params)(*(np.asarray(columns[f], dtype) for f in fields))


def sweep(pool: str, grid: Grid | Mapping[str, Sequence[float]], config: SimConfig | None = None,
          seeds: Iterable[int] = range(100), profile: str = "corrected",
          opponents: Sequence[str] = (), fixed: Mapping[str, float] | None = None,
          dtype: str = "float64", lanes: int = LANES, progress: bool | None = None,
          ray: str | None = None):
    """Runs `pool` at every grid point on every seed (plus fixed `opponents` and the
    normalizer) and returns a DataFrame indexed by (point, seed).

    Columns: the grid axes, the swept pool's `edge`, `final_capital_weight`,
    `edge_vs_normalizer`, `normalizer_edge`, each opponent's `edge[LABEL]`, and the market
    parameters (`market_*`, after `fixed`). `pool` is a `--pool` spec; `cpamm` alone means
    `cpamm:0` with the fees set by the grid. `ray`: a Ray cluster's address to fan chunks of
    seeds out to (`propamm_jax.cluster`); the table is the same.
    """
    import jax

    from propamm_jax.fast.events import event_width, market_of, pack_events
    from propamm_jax.fast.runner import BatchRunner
    from propamm_jax.simulation import _bar, parse_pool
    from propamm_jax.tape import parse_seed
    from propamm_jax.tape_cache import cached_tape

    config = config or SimConfig()
    profile = check_profile(profile)
    if not isinstance(grid, Grid):
        grid = Grid(tuple((k, tuple(float(v) for v in vals)) for k, vals in grid.items()))
    if not grid.axes or any(len(vals) == 0 for _, vals in grid.axes):
        raise PropammError("sweep: give at least one axis with at least one value, "
                           "e.g. --fee-bps 5:100:5")
    fixed = dict(fixed or {})
    check_fixed(fixed)
    if dtype not in ("float64", "float32"):
        raise PropammError(f"dtype must be float64 or float32, got {dtype!r}")
    if dtype == "float64" and not jax.config.jax_enable_x64:
        raise PropammError("float64 needs 64-bit JAX: call "
                           "jax.config.update('jax_enable_x64', True) first")
    try:
        seed_list = [parse_seed(s) for s in seeds]
    except ValueError as exc:
        raise PropammError(str(exc)) from None
    if not seed_list:
        raise PropammError("sweep: no seeds")
    if ray is not None:
        return _on_ray(ray, (pool, grid, config), seed_list,
                       {"profile": profile, "opponents": tuple(opponents), "fixed": fixed,
                        "dtype": dtype, "lanes": lanes}, progress)
    np_dtype = np.float64 if dtype == "float64" else np.float32
    swept = parse_pool("cpamm:0" if pool == "cpamm" else pool)
    others = [parse_pool(o) for o in opponents]
    pools = [swept.pool] + [o.pool for o in others]
    fixed_params = [jax.tree_util.tree_map(lambda a: np.asarray(a, np_dtype), o.params)
                    for o in others]
    stacked = grid_params(swept, grid, np_dtype)
    points = grid.points()

    n_points = len(points)
    # Simulations are laid out seed-major (row = seed * points + point): each seed's market
    # and events are repeated per point, the parameter sets tiled per seed, and the whole
    # chunk runs as one batched program with per-simulation parameters.
    run = BatchRunner(pools, config, profile, batched_params=True)
    chunk = max(1, lanes // n_points)
    bar = _bar(len(seed_list) * n_points, progress)
    parts = []
    for start in range(0, len(seed_list), chunk):
        seeds_here = seed_list[start : start + chunk]
        tape = fix_market(cached_tape(seeds_here, config.steps), fixed)
        rows = chunk if len(seed_list) > chunk else len(seeds_here)
        packed = pack_events(tape, np_dtype, event_width(tape), rows)
        market = market_of(tape, np_dtype, rows)
        params = [_tile(stacked, rows)] + [_tile(_broadcast(f, n_points), rows)
                                           for f in fixed_params]
        final = run(*_repeat(market, n_points, 0), _repeat(packed, n_points, 1), params)
        parts.append(_rows(final, tape, len(seeds_here), points, others))
        if bar is not None:
            bar.update(len(seeds_here) * len(points))
    if bar is not None:
        bar.close()
    return _table(parts)


def _table(parts: list) -> Any:
    """Rows of the chunks (point and seed as columns) as one table indexed by (point, seed)."""
    import pandas as pd

    frame = pd.concat(parts, ignore_index=True).sort_values(["point", "seed"], kind="stable")
    return frame.set_index(["point", "seed"])


def _on_ray(address: str, args: tuple, seeds: list[int], options: dict,
            progress: bool | None) -> Any:
    """`sweep` of chunks of seeds as Ray tasks, gathered into the same table."""
    from propamm_jax import cluster
    from propamm_jax.simulation import _bar

    points = len(args[1].points())
    bar = _bar(len(seeds) * points, progress)
    parts = cluster.map_seeds(address, _chunk, args, seeds, options, largest=len(seeds),
                              on_chunk=(lambda n: bar.update(n * points)) if bar else None)
    if bar is not None:
        bar.close()
    return _table(parts)


def _chunk(pool: str, grid: Grid, config: SimConfig, seeds: list[int], **options) -> Any:
    """A task of `_on_ray`: one chunk's rows, point and seed as columns."""
    return sweep(pool, grid, config, seeds, progress=False, **options).reset_index()


def _rows(final, tape, n_seeds: int, points: list[dict], others) -> Any:
    import pandas as pd

    shape = (-1, len(points))
    edge = np.asarray(final.cumulative_edge)                 # [rows * P, N+1]
    edge = edge.reshape(shape + edge.shape[1:])[:n_seeds]    # [S, P, N+1]
    weight = np.asarray(final.capital_weight)
    weight = weight.reshape(shape + weight.shape[1:])[:n_seeds]
    p = tape.params
    s_idx, p_idx = np.meshgrid(np.arange(n_seeds), np.arange(len(points)), indexing="ij")
    s_idx, p_idx = s_idx.ravel(), p_idx.ravel()
    data = {"point": p_idx, "seed": tape.seeds[s_idx].astype(np.uint64)}
    for name in points[0]:
        data[name] = np.array([pt[name] for pt in points])[p_idx]
    data["edge"] = edge[s_idx, p_idx, 0]
    data["final_capital_weight"] = weight[s_idx, p_idx, 0]
    data["normalizer_edge"] = edge[s_idx, p_idx, -1]
    data["edge_vs_normalizer"] = data["edge"] - data["normalizer_edge"]
    for k, other in enumerate(others, start=1):
        data[f"edge[{other.label}]"] = edge[s_idx, p_idx, k]
    data["market_sigma"] = p.sigma[s_idx]
    data["market_lambda"] = p.lam[s_idx]
    data["market_order_size_mean"] = p.order_size_mean[s_idx]
    data["market_norm_fee_bps"] = p.norm_fee_bps[s_idx]
    data["market_norm_liquidity_mult"] = p.norm_liquidity_mult[s_idx]
    return pd.DataFrame(data)


def _repeat(tree, times: int, axis: int):
    """Each simulation repeated `times` times in place along its `axis` (seed-major)."""
    return type(tree)(*(np.repeat(a, times, axis=axis) for a in tree))


def _tile(tree, times: int):
    """The parameter sets (leading axis: points) tiled `times` times (seed-major layout)."""
    import jax

    return jax.tree_util.tree_map(
        lambda a: np.tile(a, (times,) + (1,) * (np.ndim(a) - 1)), tree)


def _broadcast(tree, n: int):
    """One parameter set as `n` identical rows."""
    import jax

    return jax.tree_util.tree_map(lambda a: np.broadcast_to(a, (n,) + np.shape(a)).copy(), tree)


def summarize(frame) -> Any:
    """Per grid point: mean and std of the swept pool's edge, mean vs normalizer, mean final
    capital weight, over seeds."""
    axes = [c for c in frame.columns if c not in _METRICS and not c.startswith(("market_", "edge["))]
    g = frame.groupby(level="point")
    out = g[axes].first()
    out["mean_edge"] = g["edge"].mean()
    out["std_edge"] = g["edge"].std(ddof=0)
    out["mean_vs_norm"] = g["edge_vs_normalizer"].mean()
    out["mean_capital_weight"] = g["final_capital_weight"].mean()
    out["seeds"] = g["edge"].size()
    return out


_METRICS = ("edge", "final_capital_weight", "normalizer_edge", "edge_vs_normalizer")


def format_summary(summary) -> str:
    """`summarize`'s table as text, one line per grid point."""
    axes = [c for c in summary.columns if c not in _SUMMARY]
    head = " ".join(f"{a:>12}" for a in axes)
    lines = [f"{'point':>5} {head} {'Mean Edge':>10} {'Std Edge':>10} {'vs Norm':>9} "
             f"{'Final Cap%':>10} {'Seeds':>6}", "-" * (60 + 13 * len(axes))]
    for point, r in summary.iterrows():
        vals = " ".join(f"{r[a]:>12g}" for a in axes)
        lines.append(f"{point:>5} {vals} {r['mean_edge']:>10.2f} {r['std_edge']:>10.2f} "
                     f"{r['mean_vs_norm']:>9.2f} {100 * r['mean_capital_weight']:>10.2f} "
                     f"{int(r['seeds']):>6}")
    return "\n".join(lines)


_SUMMARY = ("mean_edge", "std_edge", "mean_vs_norm", "mean_capital_weight", "seeds")
