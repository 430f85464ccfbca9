"""League training (`propamm train --league`): fictitious self-play against a drawn field.

A policy trained against the normalizer alone learns to exploit the normalizer; in a field
of many strategies the flow it counted on goes to whoever undercuts it. A league trains every
member in fields drawn from a pool of opponents of four kinds:

- `fixed`: fixed-fee pools `cpamm:BPS` across the plausible range (`fees`, default 10..100
  bps in steps of 10);
- `starter`: the project's starter strategies (native/strategies/*.rs), compiled;
- `opponent`: compiled strategies given with `--opponent` (.rs/.so);
- `snapshot`: earlier policies of the run itself. Snapshot 0 is the starting point; after
  every `snapshot_every` generations the distribution mean (what the run would export, and
  less noisy than the generation's luckiest member) joins the pool as snapshot `g`, usable
  from generation `g` on. Snapshots are policy files (`snapshots/snap_GGGG.json`) and, for
  compiled generations, their exported Rust (`.rs` next to it).

The schedule (all a pure function of (run seed, generation); `--resume` redraws it):

- Generation `g` is *compiled* when `compiled_every > 0`, `(g + 1) % compiled_every == 0`
  and the pool has compiled entries (starters or `--opponent`). Its field is every compiled
  entry (a random subset when more than `field - 1` of them), the latest snapshot (exported)
  and fixed fees up to `field` opponents. It is scored officially (objective.official_values;
  the compiled-opponent path: one preloaded run), which costs more than the fast path,
  hence the deterministic schedule: the cost of a run is known before it starts.
- Every other generation is *fast* (the JAX engine): `snapshots` snapshots and
  `field - snapshots` fixed fees. The snapshots are the latest one and the rest drawn
  uniformly, with replacement, from all of them (fictitious play: a best response to the
  run's history, weighted towards its present); the fees are drawn without replacement from
  `fees`. The make-up (fixed fees, snapshots) never changes, so one compiled program serves
  every fast generation.

Common random numbers stay: the seeds and the field of a generation are shared by the whole
population. `held-out` monitoring uses one fixed field (`monitor_field`: the compiled entries
when there are compiled generations, then fees spread evenly over `fees` up to `field`
opponents), so that checks at different generations are comparable.

The objective in a field is `--objective` (default `margin` under `--league`: the policy's
edge minus the best other strategy's edge on the same seed; a field is won by that paired
margin, and it rewards ranking first on many seeds, which the mean edge alone does not).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from propamm_jax.errors import PropammError

KINDS = ("fixed", "starter", "opponent", "snapshot")
SNAPSHOTS = "snapshots"
DEFAULT_FEES = tuple(range(10, 101, 10))


@dataclass(frozen=True)
class LeagueConfig:
    """How fields are drawn (module docstring); stored with the run's configuration."""

    field: int = 7              # opponents per generation (the normalizer comes on top)
    snapshots: int = 2          # snapshot slots of a fast generation
    snapshot_every: int = 5     # generations between two snapshots
    compiled_every: int = 5     # every n-th generation is compiled (0: never)
    fees: tuple[int, ...] = DEFAULT_FEES
    starters: bool = True       # the starter strategies are in the pool

    def check(self, n_compiled: int | None = None) -> None:
        """One-line errors for bad options; `n_compiled` (the compiled entries of the pool,
        when known) lets a league whose every generation is compiled draw fewer fees."""
        if not 2 <= self.field <= 15:
            raise PropammError(f"--league-field must be 2..15 (the engine takes 16 "
                               f"strategies with the policy), got {self.field}")
        if not 1 <= self.snapshots < self.field:
            raise PropammError(f"--league-snapshots must be 1..{self.field - 1} (fewer than "
                               f"--league-field), got {self.snapshots}")
        if self.snapshot_every < 1:
            raise PropammError(f"--snapshot-every must be at least 1, got {self.snapshot_every}")
        if self.compiled_every < 0:
            raise PropammError(f"--compiled-every must be 0 (never) or more, got "
                               f"{self.compiled_every}")
        bad = [f for f in self.fees if isinstance(f, bool) or not isinstance(f, int)
               or not 0 <= f < 10_000]
        if bad:
            raise PropammError(f"--league-fees: {bad[0]!r} is not a whole number of bps in "
                               "0..9999")
        all_compiled = bool(n_compiled) and self.compiled_every == 1
        if not all_compiled and len(set(self.fees)) < self.field - self.snapshots:
            raise PropammError(f"--league-fees: {len(set(self.fees))} distinct fees cannot fill "
                               f"{self.field - self.snapshots} fixed-fee slots of a field of "
                               f"{self.field} (or --compiled-every 1: every generation "
                               "compiled, fixed fees only where compiled entries leave room)")

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["fees"] = list(self.fees)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "LeagueConfig":
        return cls(**{**d, "fees": tuple(d["fees"])})


class Entry(NamedTuple):
    """One opponent of a field: its kind and what names it (bps, a file, a snapshot label)."""

    kind: str
    name: str


class Field(NamedTuple):
    generation: int
    compiled: bool
    entries: tuple[Entry, ...]

    def record(self) -> dict:
        """The field as `log.jsonl` keeps it."""
        return {"compiled": self.compiled, "entries": [list(e) for e in self.entries]}


def compiled_pool(league: LeagueConfig, opponents: Sequence[str]) -> tuple[Entry, ...]:
    """The compiled entries of the pool: the starters (if enabled), then `--opponent`s."""
    entries = []
    if league.starters:
        from propamm_jax.native.build import starter_strategies

        entries += [Entry("starter", str(p)) for p in starter_strategies()]
    return tuple(entries) + tuple(Entry("opponent", str(o)) for o in opponents)


def snapshot_labels(league: LeagueConfig, generation: int) -> list[int]:
    """Snapshots a generation may draw: 0 (the start) and every `snapshot_every`-th one
    taken before it (snapshot g is the mean after generation g - 1)."""
    return list(range(0, generation + 1, league.snapshot_every))


def snapshot_due(league: LeagueConfig, generation: int) -> int | None:
    """The label of the snapshot taken after `generation`, or None."""
    label = generation + 1
    return label if label % league.snapshot_every == 0 else None


def is_compiled_generation(league: LeagueConfig, generation: int, n_compiled: int) -> bool:
    return (n_compiled > 0 and league.compiled_every > 0
            and (generation + 1) % league.compiled_every == 0)


def _rng(seed: int, generation: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(generation), 0x1EA6])


def draw_field(league: LeagueConfig, seed: int, generation: int,
               compiled: Sequence[Entry] = ()) -> Field:
    """The field of `generation`: a pure function of (seed, generation) and the pool."""
    rng = _rng(seed, generation)
    labels = snapshot_labels(league, generation)
    fees = sorted(set(league.fees))
    if is_compiled_generation(league, generation, len(compiled)):
        picked = list(compiled)
        if len(picked) > league.field - 1:
            idx = sorted(rng.choice(len(picked), league.field - 1, replace=False))
            picked = [picked[i] for i in idx]
        n_fixed = min(league.field - 1 - len(picked), len(fees))
        chosen = sorted(rng.choice(fees, n_fixed, replace=False).tolist())
        entries = (tuple(picked) + (Entry("snapshot", str(labels[-1])),)
                   + tuple(Entry("fixed", str(f)) for f in chosen))
        return Field(generation, True, entries)
    n_fixed = league.field - league.snapshots
    chosen = sorted(rng.choice(fees, n_fixed, replace=False).tolist())
    snaps = [labels[-1]] + rng.choice(labels, league.snapshots - 1, replace=True).tolist()
    entries = (tuple(Entry("fixed", str(f)) for f in chosen)
               + tuple(Entry("snapshot", str(s)) for s in snaps))
    return Field(generation, False, entries)


def monitor_field(league: LeagueConfig, compiled: Sequence[Entry] = ()) -> tuple[str, ...]:
    """The held-out checks' field: fixed fees spread evenly over the fee range, after the
    compiled entries of the pool (`compiled_pool`) when the run has compiled generations (then
    the checks are scored like a compiled generation, and judge the policy in a field like
    the one it will meet)."""
    fees = sorted(set(league.fees))
    picked = [name for _, name in compiled][:league.field - 1] if league.compiled_every else []
    n_fixed = min(league.field - len(picked), len(fees))
    idx = np.unique(np.round(np.linspace(0, len(fees) - 1, n_fixed)))
    return tuple(picked) + tuple(f"cpamm:{fees[int(i)]}" for i in idx)


def snapshot_path(out: Path, label: int, suffix: str = ".json") -> Path:
    return Path(out) / SNAPSHOTS / f"snap_{label:04d}{suffix}"


def save_snapshot(out: Path, label: int, pool, params) -> Path:
    """Writes snapshot `label` (a policy file and its Rust export); returns the .json path."""
    from propamm_jax.pools.families import family_of

    fam = family_of(pool)
    path = snapshot_path(out, label)
    path.parent.mkdir(parents=True, exist_ok=True)
    fam.save(path, pool, params, snapshot=label)
    if not getattr(pool, "oracle", False):  # an oracle plays fast generations only
        snapshot_path(out, label, ".rs").write_text(
            fam.render(pool, params, f"snap_{label:04d}"))
    return path


def specs(field: Field, out: Path) -> tuple[str, ...]:
    """The field's opponent specs as `objective.Setting` takes them: `cpamm:BPS`, files, and
    snapshots as `dynamic:` policy files (fast) or their exported `.rs` (compiled)."""
    result = []
    for kind, name in field.entries:
        if kind == "fixed":
            result.append(f"cpamm:{name}")
        elif kind == "snapshot":
            path = snapshot_path(out, int(name), ".rs" if field.compiled else ".json")
            if not path.is_file():
                raise PropammError(f"{path}: league snapshot {name} is missing (the run "
                                   "directory is incomplete; start a new --out)")
            result.append(str(path) if field.compiled else f"dynamic:{path}")
        else:
            result.append(name)
    return tuple(result)


def field_setting(setting, field: Field, out: Path):
    """The run's setting with the field's opponents."""
    return dataclasses.replace(setting, opponents=specs(field, out))


def check_opponents(opponents: Sequence[str]) -> None:
    """Under --league, --opponent names compiled strategies (fixed fees: --league-fees)."""
    from propamm_jax.training.objective import is_compiled

    for spec in opponents:
        if not is_compiled(spec):
            raise PropammError(f"--opponent {spec}: under --league, opponents are compiled "
                               "strategies (.rs/.so); fixed fees come from --league-fees")
        if not Path(spec).is_file():
            raise PropammError(f"--opponent {spec}: no such file")
