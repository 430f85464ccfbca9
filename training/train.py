"""`propamm train`: evolve (evosax) or descend (optax Adam) a fee policy's parameters.

Each generation draws a fresh batch of training seeds (common random numbers across the
population), tells the algorithm the negated mean objective (evosax minimises), appends a
line to `log.jsonl`, and every `checkpoint_every` generations writes `checkpoint.npz` (the
algorithm state's leaves, the generation and the best solution so far). `--resume` rebuilds
the same algorithm, checks the checkpoint's leaves against a fresh state and continues, so
a resumed run reproduces an uninterrupted one. Held-out seeds come from a disjoint range and
are only ever used to monitor and to pick the final parameters.

Any family of the registry (`pools/families.py`, `--family`) trains: the search runs over
the family's flat parameter vector (`pool.unflatten` / `flatten`). `--oracle` trains the
family's oracle variant, which sees the true fair price: a ceiling, never exported.

With `league` (a
`league.LeagueConfig`), each generation plays a field drawn from the league's pool
(training/league.py), and the held-out checks play its fixed monitoring field.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from propamm_jax.config import SimConfig, check_profile
from propamm_jax.errors import Interrupted, PropammError
from propamm_jax.pools.families import family
from propamm_jax.training import league as lg
from propamm_jax.training.objective import (OBJECTIVES, Setting, population_values,
                                           smoothed_value_and_grad)

ALGORITHMS = ("cma_es", "open_es", "snes", "adam")
CHECKPOINT = "checkpoint.npz"
LOG = "log.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on; stored in the checkpoint and the policy file."""

    algorithm: str = "cma_es"
    family: str = "dynamic_fee"
    hidden: int = 8          # mlp: hidden units
    oracle: bool = False     # the family's oracle variant (fast path only; never exported)
    generations: int = 50
    population: int = 16
    batch_seeds: int = 16
    train_seed_start: int = 1_000_000
    heldout_start: int = 0
    heldout: int = 32
    eval_every: int = 5
    seed: int = 0
    sigma_init: float = 1.0
    learning_rate: float = 0.05
    clip: float = 1.0
    smooth: float = 0.01
    profile: str = "corrected"
    objective: str = "edge"
    risk_lambda: float = 2.0
    rank_weight: float = 100.0
    opponents: tuple[str, ...] = ()
    steps: int = 10_000
    epoch_len: int = 1_000
    fee_min_bps: float = 0.0
    fee_max_bps: float = 300.0
    # the default family's start (FeatureTracking.DEFAULT_INIT: ~50 bps, tilted by the deviation)
    init: dict = field(default_factory=lambda: family("dynamic_fee").default_init())
    league: lg.LeagueConfig | None = None   # None: the fixed `opponents` every generation

    def train_seeds(self, generation: int) -> list[int]:
        start = self.train_seed_start + generation * self.batch_seeds
        return list(range(start, start + self.batch_seeds))

    def heldout_seeds(self) -> list[int]:
        return list(range(self.heldout_start, self.heldout_start + self.heldout))

    def check(self) -> None:
        family(self.family)
        if self.hidden < 1 or self.hidden > 256:
            raise PropammError(f"--hidden must be in 1..256, got {self.hidden}")
        if self.algorithm not in ALGORITHMS:
            raise PropammError(f"unknown algorithm {self.algorithm!r} (choose from "
                               f"{', '.join(ALGORITHMS)})")
        for name in ("generations", "population", "batch_seeds", "heldout", "eval_every"):
            if getattr(self, name) < 1:
                raise PropammError(f"--{name.replace('_', '-')} must be at least 1")
        if self.algorithm == "open_es" and self.population % 2:
            raise PropammError(f"open_es needs an even population (antithetic pairs), got "
                               f"{self.population}")
        if self.algorithm in ("cma_es", "snes", "open_es") and self.population < 2:
            raise PropammError(f"{self.algorithm} needs a population of at least 2")
        if self.objective not in OBJECTIVES:
            raise PropammError(f"unknown objective {self.objective!r} (choose from "
                               f"{', '.join(OBJECTIVES)})")
        check_profile(self.profile)
        if not 0.0 <= self.fee_min_bps < self.fee_max_bps < 10_000.0:
            raise PropammError(f"fees: need 0 <= --fee-min-bps < --fee-max-bps < 10000, got "
                               f"{self.fee_min_bps:g} and {self.fee_max_bps:g}")
        lo, hi = self.train_seed_start, self.train_seed_start + self.generations * self.batch_seeds
        h_lo, h_hi = self.heldout_start, self.heldout_start + self.heldout
        if lo < h_hi and h_lo < hi:
            raise PropammError(f"held-out seeds {h_lo}..{h_hi - 1} overlap the training seeds "
                               f"{lo}..{hi - 1}: move --heldout-start or --train-seed-start")
        from propamm_jax.simulation import parse_pool
        from propamm_jax.training.objective import is_compiled

        if self.league is not None:
            lg.check_opponents(self.opponents)
            self.league.check(len(lg.compiled_pool(self.league, self.opponents)))
            if self.algorithm == "adam":
                raise PropammError("--league: adam trains through the fast path only; use "
                                   "cma_es, open_es or snes")
        for spec in self.opponents:
            if not is_compiled(spec):
                with warnings.catch_warnings():  # only the spec's syntax matters here (JAX
                    warnings.simplefilter("ignore")  # may not be in 64-bit mode yet)
                    parse_pool(spec)
            elif not Path(spec).is_file():
                raise PropammError(f"--opponent {spec}: no such file")
            elif self.oracle:
                raise PropammError(f"--opponent {spec}: an oracle trains on the fast path only "
                                   "(compiled opponents are scored officially, where no "
                                   "strategy sees the fair price)")
            elif self.algorithm == "adam":
                raise PropammError(f"--opponent {spec}: adam trains through the fast path, "
                                   "which cannot run compiled strategies; use cma_es, open_es "
                                   "or snes (each member is then scored officially)")
        self.pool().initial(self.init, self.seed)  # unknown --init names

    def pool(self):
        return family(self.family).pool(self.fee_min_bps, self.fee_max_bps, self.epoch_len,
                                        self.oracle, self.hidden)

    def setting(self) -> Setting:
        return Setting(self.pool(), tuple(self.opponents), self.profile,
                       SimConfig(steps=self.steps, epoch_len=self.epoch_len), self.objective,
                       self.risk_lambda, self.rank_weight)

    def to_json(self) -> dict:
        d = asdict(self)
        d["opponents"] = list(self.opponents)
        d["league"] = None if self.league is None else self.league.to_json()
        return d

    def monitor_setting(self) -> Setting:
        """The held-out checks' setting: the run's own, or the league's monitoring field."""
        if self.league is None:
            return self.setting()
        import dataclasses

        compiled = lg.compiled_pool(self.league, self.opponents)
        return dataclasses.replace(self.setting(),
                                   opponents=lg.monitor_field(self.league, compiled))


# What a checkpoint written before these options existed was trained with.
_OLD_DEFAULTS = {"family": "dynamic_fee", "hidden": 8, "oracle": False, "rank_weight": 100.0}


def _initial(cfg: TrainConfig) -> np.ndarray:
    """The search's starting vector (`--init`, and for mlp random weights from `--seed`)."""
    return cfg.pool().initial(cfg.init, cfg.seed)


def _params(pool, vec):
    """[..., size] -> the family's parameter pytree of [...] arrays (f64 NumPy)."""
    return pool.unflatten(np.asarray(vec, np.float64))


def _strategy(cfg: TrainConfig):
    """(es, es_params) for the evosax algorithms; None for adam."""
    import jax.numpy as jnp
    from evosax.algorithms import CMA_ES, SNES, Open_ES

    dummy = jnp.zeros(cfg.pool().size())
    if cfg.algorithm == "cma_es":
        es = CMA_ES(population_size=cfg.population, solution=dummy)
        return es, es.default_params.replace(std_init=cfg.sigma_init)
    if cfg.algorithm == "snes":
        es = SNES(population_size=cfg.population, solution=dummy)
        return es, es.default_params.replace(std_init=cfg.sigma_init)
    import optax

    es = Open_ES(population_size=cfg.population, solution=dummy,
                 optimizer=optax.adam(cfg.learning_rate),
                 std_schedule=optax.constant_schedule(cfg.sigma_init))
    return es, es.default_params


def _adam(cfg: TrainConfig):
    import optax

    return optax.chain(optax.clip_by_global_norm(cfg.clip), optax.adam(cfg.learning_rate))


def _init_state(cfg: TrainConfig):
    """The algorithm's state at generation 0 (also the template a checkpoint is read into)."""
    import jax
    import jax.numpy as jnp

    mean = jnp.asarray(_initial(cfg))
    if cfg.algorithm == "adam":
        return {"x": mean, "opt": _adam(cfg).init(mean)}
    es, es_params = _strategy(cfg)
    return es.init(jax.random.PRNGKey(cfg.seed), mean, es_params)


def save_checkpoint(out: Path, cfg: TrainConfig, state, generation: int, best: dict) -> None:
    import jax

    leaves = jax.tree_util.tree_leaves(state)
    tmp = out / (CHECKPOINT + ".tmp.npz")
    np.savez(tmp, generation=generation, config=json.dumps(cfg.to_json()),
             best=json.dumps(best), **{f"leaf{i}": np.asarray(x) for i, x in enumerate(leaves)})
    tmp.replace(out / CHECKPOINT)


def load_checkpoint(out: Path, cfg: TrainConfig):
    """(state, generation, best) from `out/checkpoint.npz`; one-line errors if it is corrupt
    or from a different run configuration."""
    import jax

    path = out / CHECKPOINT
    if not path.exists():
        raise PropammError(f"{path}: no checkpoint to resume from")
    template = _init_state(cfg)
    leaves, treedef = jax.tree_util.tree_flatten(template)
    try:
        with np.load(path, allow_pickle=False) as data:
            saved = json.loads(str(data["config"]))
            generation = int(data["generation"])
            best = json.loads(str(data["best"]))
            arrays = [np.asarray(data[f"leaf{i}"]) for i in range(len(leaves))]
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a corrupt checkpoint
        raise PropammError(f"{path}: corrupted checkpoint ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from None
    # The number of generations is not part of the run: a resumed run may go further.
    now = cfg.to_json()
    diff = sorted(k for k in set(saved) | set(now) if k != "generations"
                  and saved.get(k, _OLD_DEFAULTS.get(k)) != now.get(k))
    if diff:
        raise PropammError(f"{path}: checkpoint is from a different run (differs in "
                           f"{', '.join(diff)}); use the same options or a new --out")
    if generation > cfg.generations:
        raise PropammError(f"{path}: the run has done {generation} generations already; "
                           f"--generations {cfg.generations} cannot shorten it")
    for i, (a, b) in enumerate(zip(arrays, leaves)):
        if a.shape != np.shape(b):
            raise PropammError(f"{path}: corrupted checkpoint (leaf {i} has shape {a.shape}, "
                               f"expected {np.shape(b)})")
    state = jax.tree_util.tree_unflatten(
        treedef, [jax.numpy.asarray(a, dtype=np.asarray(b).dtype) for a, b in zip(arrays, leaves)])
    return state, generation, best


def _mean_of(cfg: TrainConfig, state) -> np.ndarray:
    if cfg.algorithm == "adam":
        return np.asarray(state["x"])
    return np.asarray(state.mean)


def heldout_value(setting: Setting, vec, seeds, ray: str | None = None) -> float:
    return float(population_values(setting, _params(setting.pool, np.asarray(vec)[None]), seeds,
                                   ray=ray).mean())


def train(cfg: TrainConfig, out: str | Path, resume: bool = False,
          progress: bool | None = None, echo: Callable[[str], None] | None = None,
          ray: str | None = None) -> dict:
    """Runs (or resumes) a training run into directory `out`; returns the policy dict
    written to `out/policy.json`. `ray`: a Ray cluster's address; each generation's
    population x seeds evaluation then fans out over it (the same run, value for value)."""
    import jax

    if not jax.config.jax_enable_x64:
        raise PropammError("training needs 64-bit JAX: call "
                           "jax.config.update('jax_enable_x64', True) first")
    cfg.check()
    if ray is not None:
        from propamm_jax import cluster

        cluster.check_address(ray)
    echo = echo or (lambda line: print(line, flush=True))
    out = Path(out)
    setting = cfg.setting()
    if resume:
        state, start, best = load_checkpoint(out, cfg)
    else:
        if (out / CHECKPOINT).exists():
            raise PropammError(f"{out / CHECKPOINT} exists: pass --resume to continue it or "
                               "choose a new --out")
        out.mkdir(parents=True, exist_ok=True)
        (out / LOG).write_text("")
        state, start = _init_state(cfg), 0
        best = {"heldout": None, "params": _initial(cfg).tolist(), "generation": -1}
        if cfg.league is not None:
            lg.save_snapshot(out, 0, setting.pool, _params(setting.pool, _initial(cfg)))
    league = _League(cfg, out) if cfg.league is not None else None
    oracle = " (ORACLE: sees the true fair price; never exported)" if cfg.oracle else ""
    echo(f"profile: {cfg.profile}  |  family {cfg.family}{oracle}  |  {cfg.algorithm}, population {cfg.population}, "
         f"{cfg.batch_seeds} seeds/generation, {cfg.generations} generations  |  "
         f"objective {cfg.objective}  |  opponents: "
         + (league.describe() if league else ', '.join(cfg.opponents) or 'normalizer only'))
    heldout = cfg.heldout_seeds()
    key = jax.random.PRNGKey(cfg.seed)
    es = es_params = None
    if cfg.algorithm != "adam":
        es, es_params = _strategy(cfg)
    opt = _adam(cfg) if cfg.algorithm == "adam" else None
    bar = _bar(cfg.generations, start, progress)
    done = start
    try:
        for gen in range(start, cfg.generations):
            state, best, record = _generation(cfg, setting, gen, state, best, key, es,
                                              es_params, opt, heldout, out, ray, league)
            done = gen + 1
            _report(bar, progress, echo, record, best)
    except KeyboardInterrupt:
        raise _interrupted(cfg, out, done, best) from None
    finally:
        if bar is not None:
            bar.close()
    return write_policy(out / "policy.json", cfg, best)


def _interrupted(cfg: TrainConfig, out: Path, done: int, best: dict) -> Interrupted:
    """After Ctrl-C: the checkpoint holds every finished generation; policy.json gets the best
    parameters so far (none before the first generation finished)."""
    if done == 0:
        return Interrupted("no generation finished: nothing kept", False)
    write_policy(out / "policy.json", cfg, best)
    held = "n/a" if best["heldout"] is None else f"{best['heldout']:.2f}"
    return Interrupted(f"{done} of {cfg.generations} generations kept in {out / CHECKPOINT}; "
                       f"{out / 'policy.json'} holds the best so far (held-out mean {held}, "
                       f"generation {best['generation']})", True)


class _League:
    """A league run's fixed parts: its configuration, compiled pool and run directory."""

    def __init__(self, cfg: TrainConfig, out: Path):
        self.config, self.out, self.seed = cfg.league, out, cfg.seed
        self.compiled = lg.compiled_pool(cfg.league, cfg.opponents)

    def describe(self) -> str:
        c = self.config
        return (f"league (fields of {c.field}: fees {min(c.fees)}..{max(c.fees)} bps, "
                f"{len(self.compiled)} compiled, snapshots every {c.snapshot_every}; "
                f"compiled generations every {c.compiled_every or 'never'})")

    def field(self, gen: int) -> lg.Field:
        return lg.draw_field(self.config, self.seed, gen, self.compiled)

    def snapshot(self, gen: int, pool, vec) -> int | None:
        label = lg.snapshot_due(self.config, gen)
        if label is not None:
            lg.save_snapshot(self.out, label, pool, _params(pool, vec))
        return label


def _generation(cfg: TrainConfig, setting: Setting, gen: int, state, best: dict, key, es,
                es_params, opt, heldout: list[int], out: Path, ray: str | None = None,
                league: _League | None = None):
    """One generation: ask/tell (or one Adam step) in the generation's setting (its league
    field, if any), the held-out check when due, a snapshot when due, a log line and a
    checkpoint. Returns (state, best, the log record)."""
    import jax
    import jax.numpy as jnp

    t0 = time.perf_counter()
    seeds = cfg.train_seeds(gen)
    k_ask, k_tell = jax.random.split(jax.random.fold_in(key, gen))
    field = league.field(gen) if league else None
    monitor = cfg.monitor_setting() if league else setting
    if field is not None:
        setting = lg.field_setting(setting, field, out)
    if es is not None:
        pop, state = es.ask(k_ask, state, es_params)
        values = population_values(setting, _params(setting.pool, pop), seeds,
                                   ray=ray).mean(axis=1)
        state, _ = es.tell(k_tell, pop, jnp.asarray(-values), state, es_params)
        gen_best, gen_mean = float(values.max()), float(values.mean())
    else:
        value, grad = smoothed_value_and_grad(setting, seeds, cfg.smooth,
                                              setting.pool.unflatten(state["x"]))
        grad = jnp.concatenate([jnp.ravel(g) for g in grad])  # the vector's order
        updates, opt_state = opt.update(grad, state["opt"], state["x"])
        import optax

        state = {"x": optax.apply_updates(state["x"], updates), "opt": opt_state}
        gen_best = gen_mean = float(-value)
    record = {"generation": gen, "best": gen_best, "mean": gen_mean,
              "mean_params": dict(zip(setting.pool.vector_names(), _mean_of(cfg, state).tolist())),
              "seeds": [seeds[0], seeds[-1]]}
    if field is not None:
        record["field"] = field.record()
        label = league.snapshot(gen, setting.pool, _mean_of(cfg, state))
        if label is not None:
            record["snapshot"] = label
    last = gen == cfg.generations - 1
    if (gen + 1) % cfg.eval_every == 0 or last:
        vec = _mean_of(cfg, state)
        record["heldout"] = heldout_value(monitor, vec, heldout, ray)
        if best["heldout"] is None or record["heldout"] > best["heldout"]:
            best = {"heldout": record["heldout"], "params": vec.tolist(), "generation": gen}
    record["seconds"] = round(time.perf_counter() - t0, 3)
    with open(out / LOG, "a") as fh:
        fh.write(json.dumps(record) + "\n")
    save_checkpoint(out, cfg, state, gen + 1, best)
    return state, best, record


def _report(bar, progress: bool | None, echo, record: dict, best: dict) -> None:
    gen = record["generation"]
    if bar is not None:
        bar.set_postfix_str(f"best {record['best']:.1f} mean {record['mean']:.1f} held-out "
                            f"{best['heldout'] if best['heldout'] is None else round(best['heldout'], 1)}")
        bar.update(1)
    elif progress is not False:
        echo(f"gen {gen}: best {record['best']:.1f} mean {record['mean']:.1f}"
             + (f" held-out {record['heldout']:.1f}" if "heldout" in record else ""))


def write_policy(path: Path, cfg: TrainConfig, best: dict) -> dict:
    """The best mean seen on held-out seeds (the initial one if none was evaluated)."""
    from propamm_jax import __version__

    pool = cfg.pool()
    params = _params(pool, np.asarray(best["params"]))
    family(cfg.family).save(path, pool, params, profile=cfg.profile,
                config={"steps": cfg.steps, "epoch_len": cfg.epoch_len},
                training=cfg.to_json(),
                seeds={"train": [cfg.train_seed_start,
                                 cfg.train_seed_start + cfg.generations * cfg.batch_seeds - 1],
                       "heldout": [cfg.heldout_start, cfg.heldout_start + cfg.heldout - 1]},
                heldout_mean=best["heldout"], generation=best["generation"],
                package_version=__version__)
    return json.loads(path.read_text())


def _bar(total: int, initial: int, progress: bool | None) -> Any:
    import sys

    if progress is False or (progress is None and not sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="generation", unit="gen")
