"""The results journal: every finished simulation appended as one JSON line as it arrives.

A run killed at any point (SIGKILL included: each line is flushed to the kernel before the
next simulation is accepted) loses at most the simulations in flight. `score --resume` reads
the journal back, skips what it holds and scores the rest. The first line identifies the run
(package version, SHA-256 of the compiled scoring core and call guard, profile, config,
strategy labels and the SHA-256 of each compiled library, first seed, traces): a journal of
another run is refused rather than mixed in. The number of simulations is not part of the
identity, so a finished run grows: `--resume` with more simulations of the same seed
sequence reuses what the journal holds. Floats go through Python's `json`,
whose shortest round-trip form gives back the same f64 bits, so a resumed run's results are
identical to an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from propamm_jax.errors import PropammError

FORMAT = 1


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_version() -> str:
    """The installed propamm-jax version (one source: the package's `__version__`)."""
    from propamm_jax import __version__

    return __version__


def run_identity(profile: str, config_json: dict, labels: Iterable[str],
                 libraries: Iterable[str], seeds: list[int], trace_seeds: Iterable[int],
                 trace_steps: int, native: Iterable[str] = ()) -> dict:
    """What makes two runs the same run: resuming is only allowed between equal identities.
    `native`: the compiled scoring core and call guard, hashed like the strategies, so that
    a journal written by another core (or another package version) is never mixed in."""
    return {
        "package_version": package_version(),
        "core_sha256": [_sha256(p) for p in native],
        "profile": profile,
        "config": config_json,
        "strategies": list(labels),
        "libraries_sha256": [_sha256(p) for p in libraries],
        # Not the whole seed list: a run grows by scoring more seeds of the same sequence
        # (`usable` checks the journal's seeds against the new list, index by index).
        "seeds": {"first": int(seeds[0])},
        "trace_seeds": sorted(int(s) for s in trace_seeds),
        "trace_steps": int(trace_steps),
    }


def identity_key(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


def default_path(identity: dict) -> Path:
    """`<cache>/journals/<key>.jsonl`: the same command line finds its own journal again."""
    from propamm_jax.native.build import cache_dir

    return cache_dir() / "journals" / f"{identity_key(identity)}.jsonl"


@dataclass(frozen=True)
class Entry:
    index: int
    seed: int
    record: dict
    trace: dict | None


def read(path: Path, identity: dict) -> list[Entry]:
    """The finished simulations of `path`, which must belong to the run `identity`. A last
    line cut short by a kill is dropped (and truncated away, so appending stays valid)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise PropammError(f"{path}: cannot read journal ({exc.strerror})") from None
    entries: list[Entry] = []
    good_bytes = 0
    for n, line in enumerate(raw.split(b"\n")):
        if not line.endswith(b"}"):
            break  # an unfinished write: everything before it is intact
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            break
        if n == 0:
            if data.get("journal") != FORMAT or data.get("identity") != identity:
                field = _first_difference(data.get("identity") or {}, identity)
                raise PropammError(f"{path}: journal of another run (differs in {field}); "
                                   "not resuming it: delete it or pass another --journal")
        else:
            try:
                entries.append(Entry(int(data["index"]), int(data["seed"]), data["record"],
                                     data.get("trace")))
            except (KeyError, TypeError, ValueError):
                raise PropammError(f"{path}: line {n + 1} is not a journal entry") from None
        good_bytes += len(line) + 1
    if good_bytes < len(raw):
        with open(path, "r+b") as f:
            f.truncate(good_bytes)
    return entries


def usable(path: Path, entries: list[Entry], seeds: list[int]) -> list[Entry]:
    """The entries a run on `seeds` reuses: those within its length. A journal's seeds must
    be a prefix of the run's seeds or the other way round (more or fewer simulations of the
    same sequence); any other seed at a shared index means another run, refused."""
    for entry in entries:
        if 0 <= entry.index < len(seeds) and seeds[entry.index] != entry.seed:
            raise PropammError(f"{path}: journal of another run (its simulation {entry.index} "
                               f"is seed {entry.seed}, this run's is {seeds[entry.index]}); "
                               "not resuming it: delete it or pass another --journal")
    return [e for e in entries if 0 <= e.index < len(seeds)]


def _first_difference(old: dict, new: dict) -> str:
    for key in new:
        if old.get(key) != new[key]:
            return key
    return "format"


class Writer:
    """Appends entries, one flushed line each."""

    def __init__(self, path: Path, identity: dict, fresh: bool):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        exists = self.path.exists() and self.path.stat().st_size > 0
        try:
            self.file = open(self.path, "a" if exists and not fresh else "w", encoding="utf-8")
        except OSError as exc:
            raise PropammError(f"{self.path}: cannot write journal ({exc.strerror})") from None
        if fresh or not exists:
            self._write({"journal": FORMAT, "identity": identity})

    def _write(self, data: dict) -> None:
        self.file.write(json.dumps(data) + "\n")
        self.file.flush()

    def append(self, index: int, seed: int, record: dict, trace: dict | None) -> None:
        self._write({"index": index, "seed": seed, "record": record, "trace": trace})

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

