"""Training only: many simulations with preloaded strategy storage, in one sandboxed run.

Official scoring (`scoring.score`) always starts every strategy from zeroed storage, as the
reference does, and never goes through here. Training against compiled opponents scores a
whole population on shared seeds: each member is the same compiled family library
(`training.parametric`) started with its own parameters in its storage. So one run holds
members x seeds simulations, each a (seed, initial storage per strategy) pair, scored by one
pool of sandboxed workers (`scoring.run_simulations`) with no compile per member.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple, Sequence

from propamm_jax.config import SimConfig, check_profile
from propamm_jax.errors import PropammError
from propamm_jax.native.bridge import STORAGE_SIZE
from propamm_jax.official.scoring import (DEFAULT_CALL_TIMEOUT, DEFAULT_MEMORY_LIMIT, DEFAULT_SIM_TIMEOUT,
                                 Failure, Prepared, ScoreRequest, _native_libraries,
                                 run_simulations)
from propamm_jax.tape.generate import parse_seed


class PreloadedSim(NamedTuple):
    """One simulation: its seed, and per strategy None (zeroed) or its initial storage."""

    seed: int
    storage: tuple[bytes | None, ...]


@dataclass(frozen=True)
class Limits:
    """The per-simulation limits of `score`, with its defaults."""

    sim_timeout: float = DEFAULT_SIM_TIMEOUT
    memory_limit: int = DEFAULT_MEMORY_LIMIT
    call_timeout: float = DEFAULT_CALL_TIMEOUT


def run_preloaded(prepared: Prepared, sims: Sequence[PreloadedSim], config: SimConfig,
                  profile: str, *, workers: int | None = None, sandbox: str = "auto",
                  limits: Limits = Limits()) -> tuple[list[dict | None], list[Failure]]:
    """(records in the order of `sims`, None where the simulation failed; the failures).
    `prepared`: strategies that passed `scoring.prepare_strategies`."""
    profile = check_profile(profile)
    n = len(prepared.libraries)
    preload = []
    for k, sim in enumerate(sims):
        if len(sim.storage) != n:
            raise PropammError(f"simulation {k}: initial storage for {len(sim.storage)} "
                               f"strategies, the run has {n}")
        for blob in sim.storage:
            if blob is not None and len(blob) != STORAGE_SIZE:
                raise PropammError(f"simulation {k}: initial storage of {len(blob)} bytes, "
                                   f"need {STORAGE_SIZE}")
        preload.append(tuple(None if b is None else bytes(b) for b in sim.storage))
    seeds = [parse_seed(sim.seed) for sim in sims]
    request = ScoreRequest(tuple(prepared.libraries), tuple(prepared.labels), config, profile,
                           sim_timeout=float(limits.sim_timeout),
                           memory_limit=int(limits.memory_limit),
                           native=_native_libraries(), call_timeout=float(limits.call_timeout),
                           preload=tuple(preload), pure_quotes=True)
    records: list[dict | None] = [None] * len(sims)

    def keep(index: int, record: dict, _trace) -> None:
        records[index] = record

    workers = workers or os.cpu_count() or 1
    failures = run_simulations(request, seeds, workers, keep, sandbox=sandbox)
    return records, failures
