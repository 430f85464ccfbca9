"""Batch simulation of parametric pools on the fast path, in the results schema.

`simulate(["cpamm:30", "cpamm:65"], config, seeds=range(1000))` generates the tapes, runs the
seeds in vmapped batches of `batch_size` and returns the same `Results` that official scoring
returns, so the two compare field by field.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Sequence

import numpy as np

from propamm_jax.config import SimConfig, check_profile
from propamm_jax.errors import PropammError
from propamm_jax.results import Results



@dataclass(frozen=True)
class PoolSpec:
    """A parsed `--pool` argument: the pool object, its params and its display name."""

    pool: Any
    params: Any
    label: str


def parse_pool(spec: str) -> PoolSpec:
    """`cpamm:30` (30 bps both sides), `cpamm:25/45` (buy/sell fees in bps) or
    `dynamic:policy.json` (a policy file of any trainable family, `pools/families.py`)."""
    from propamm_jax.pools.constant_product import ConstantProduct

    kind, _, arg = spec.partition(":")
    if kind == "cpamm":
        parts = arg.split("/")
        try:
            fees = [float(p) for p in parts]
        except ValueError:
            raise PropammError(f"pool {spec!r}: fee must be a number of bps, e.g. cpamm:30") from None
        if len(fees) not in (1, 2):
            raise PropammError(f"pool {spec!r}: expected cpamm:FEE or cpamm:BUY/SELL")
        for fee in fees:
            if not 0.0 <= fee < 10_000.0:
                raise PropammError(f"pool {spec!r}: fee {fee:g} bps is outside [0, 10000)")
        pool = ConstantProduct()
        return PoolSpec(pool, pool.params(*fees), spec)
    if kind == "dynamic":
        from propamm_jax.pools.families import load_policy

        if not arg:
            raise PropammError(f"pool {spec!r}: expected dynamic:PATH/TO/policy.json")
        pool, params = load_policy(arg)
        return PoolSpec(pool, params, spec)
    raise PropammError(f"unknown pool spec {spec!r}: use cpamm:FEE_BPS, cpamm:BUY/SELL or "
                       "dynamic:policy.json")


def _records(final, tape, rows, labels, n_epochs_done) -> list[dict]:
    # Python lists first: indexing NumPy arrays element by element costs ~10x more.
    edge = np.asarray(final.cumulative_edge).tolist()
    weight = np.asarray(final.capital_weight).tolist()
    log_edge = np.asarray(final.log_edge)[:, :, :n_epochs_done].tolist()
    log_trades = np.asarray(final.log_trades)[:, :, :n_epochs_done].tolist()
    log_score = np.asarray(final.log_score)[:, :, :n_epochs_done].tolist()
    p = tape.params
    sigma, lam, size = p.sigma.tolist(), p.lam.tolist(), p.order_size_mean.tolist()
    norm_fee, mult = np.asarray(p.norm_fee_bps).tolist(), p.norm_liquidity_mult.tolist()
    seeds = np.asarray(tape.seeds).tolist()
    out = []
    for b in rows:
        out.append({
            "seed": int(seeds[b]),
            "market": {"sigma": float(sigma[b]), "lambda": float(lam[b]),
                       "order_size_mean": float(size[b]), "norm_fee_bps": int(norm_fee[b]),
                       "norm_liquidity_mult": float(mult[b])},
            "normalizer_edge": float(edge[b][-1]),
            "strategies": [{
                "name": labels[i], "final_edge": float(edge[b][i]),
                "final_capital_weight": float(weight[b][i]),
                "epochs": [{"epoch": e, "edge": float(log_edge[b][i][e]),
                            "trade_count": int(log_trades[b][i][e]),
                            "risk_adjusted_score": float(log_score[b][i][e])}
                           for e in range(n_epochs_done)],
            } for i in range(len(labels))],
        })
    return out


def simulate(pools: Sequence[str | PoolSpec], config: SimConfig | None = None,
             seeds: Iterable[int] = range(100), profile: str = "corrected",
             batch_size: int = 1000, dtype: str = "float64",
             progress: bool | None = None, ray: str | None = None) -> Results:
    """Simulates parametric pools (plus the normalizer) over `seeds` on the fast path.

    Seeds run in batches of `batch_size`, each split evenly over the local JAX devices (on a
    CPU, start Python with `XLA_FLAGS=--xla_force_host_platform_device_count=<cores>` to use
    every core; the `propamm` command does this itself). `ray`: a Ray cluster's address to
    fan chunks of seeds out to (`propamm_jax.cluster`); the results are the same.
    """
    import jax

    from propamm_jax.fast import event_cache as batch_cache
    from propamm_jax.fast.events import BLOCK, event_width, pack_events, pad_rows, step_dtype
    from propamm_jax.fast.runner import BatchRunner
    from propamm_jax.fast.types import Packed
    from propamm_jax.tape import parse_seed
    from propamm_jax.tape_cache import cached_tape

    config = config or SimConfig()
    profile = check_profile(profile)
    specs = [p if isinstance(p, PoolSpec) else parse_pool(p) for p in pools]
    if not specs:
        raise PropammError("no pool given: pass at least one, e.g. --pool cpamm:30")
    if dtype not in ("float64", "float32"):
        raise PropammError(f"dtype must be float64 or float32, got {dtype!r}")
    if batch_size < 1:
        raise PropammError(f"batch_size must be at least 1, got {batch_size}")
    try:
        seed_list = [parse_seed(s) for s in seeds]
    except ValueError as exc:
        raise PropammError(str(exc)) from None
    if not jax.config.jax_enable_x64 and dtype == "float64":
        raise PropammError("float64 needs 64-bit JAX: call "
                           "jax.config.update('jax_enable_x64', True) first")
    if ray is not None:
        return _on_ray(ray, specs, config, seed_list, profile, batch_size, dtype, progress)
    np_dtype = np.float64 if dtype == "float64" else np.float32
    params = [jax.tree_util.tree_map(lambda a: np.asarray(a, np_dtype), s.params) for s in specs]
    run = BatchRunner([s.pool for s in specs], config, profile)
    n_epochs_done = (config.steps - 1) // config.epoch_len
    labels = [s.label for s in specs]
    rows = min(batch_size, len(seed_list))
    bar = _bar(len(seed_list), progress)
    sims: list[dict] = []
    chunks = [seed_list[i : i + batch_size] for i in range(0, len(seed_list), batch_size)]

    def load(chunk):
        """A stored packed batch, or the chunk's tape (host work, on the helper thread)."""
        name = batch_cache.key(chunk, config.steps, rows, BLOCK, np_dtype)
        hit = batch_cache.load(name)
        if hit is not None:
            fields, market = hit
            return name, None, 0, Packed(*fields), market
        tape = cached_tape(chunk, config.steps)
        return name, tape, event_width(tape, BLOCK), None, None

    def pack(name, tape, width):
        packed = pack_events(tape, np_dtype, width, rows)
        p = tape.params
        market = np.stack([p.sigma, p.lam, p.order_size_mean, p.norm_fee_bps,
                           p.norm_liquidity_mult], axis=1).astype(np.float64)
        batch_cache.save(name, packed, market)
        return packed, market

    # Host work (tapes, packing: numpy, which releases the GIL) runs on a second thread while
    # this one traces and compiles the batch program or waits for the previous batch.
    with ThreadPoolExecutor(1) as host:
        loading = host.submit(load, chunks[0])
        for k, chunk in enumerate(chunks):
            name, tape, width, packed, market = loading.result()
            loading = None  # a finished future keeps its result (the tape) alive
            if tape is not None:  # not stored yet: pack while the program compiles
                packing = host.submit(pack, name, tape, width)
                del tape  # only the packed events and the market parameters stay alive
                run.program(width, rows, np_dtype, params, step_dtype(config.steps))
                packed, market = packing.result()
                packing = None
            if k + 1 < len(chunks):
                loading = host.submit(load, chunks[k + 1])
            meta = _meta(chunk, market)
            fee, mult = pad_rows(market[:, 3] / 10_000.0, rows), pad_rows(market[:, 4], rows)
            # Copied to the devices field by field, each host array released once copied:
            # a 10 000-simulation batch never holds two full copies of its events.
            fields = list(packed)
            del packed
            events = run.put(fields)
            final = run(fee.astype(np_dtype), mult.astype(np_dtype), events, params)
            del events
            sims.extend(_records(final, meta, range(len(chunk)), labels, n_epochs_done))
            if bar is not None:
                bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return Results(engine=profile, config=config, strategies=labels, sims=sims)


def _on_ray(address: str, specs: list[PoolSpec], config: SimConfig, seeds: list[int],
            profile: str, batch_size: int, dtype: str, progress: bool | None) -> Results:
    """`simulate` of chunks of seeds as Ray tasks (pools parsed here: a policy file need not
    exist on the nodes), gathered in seed order."""
    from propamm_jax import cluster

    bar = _bar(len(seeds), progress)
    parts = cluster.map_seeds(address, _sims, (specs, config), seeds,
                              {"profile": profile, "batch_size": batch_size, "dtype": dtype},
                              largest=batch_size, on_chunk=bar.update if bar else None)
    if bar is not None:
        bar.close()
    return Results(engine=profile, config=config, strategies=[s.label for s in specs],
                   sims=[sim for part in parts for sim in part])


def _sims(specs: list[PoolSpec], config: SimConfig, seeds: list[int], **options) -> list[dict]:
    """A task of `_on_ray`: the simulation records of one chunk, run locally."""
    return simulate(specs, config, seeds, progress=False, **options).sims


def _meta(seeds: list[int], market: np.ndarray):
    """What `_records` reads of a tape: the seeds and their market parameters."""
    from propamm_jax.tape import MarketParams, Tape

    m = market[: len(seeds)]
    params = MarketParams(m[:, 0], m[:, 1], m[:, 2], m[:, 3].astype(np.int64), m[:, 4])
    return Tape(np.asarray(seeds, np.uint64), params, None, None, None, None)


def _bar(total: int, progress: bool | None):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="sim", file=sys.stderr, dynamic_ncols=True)
