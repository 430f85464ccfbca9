"""Submission bundles: which code produced which score, checkable by anyone.

`submit` scores strategies officially and writes a directory holding the sources exactly as
scored, `results.json` (every simulation, golden schema) and `receipt.json`: SHA-256 of each
source and of each compiled library (and of the scoring core), the rustc version and flags,
the package version, the profile, the config, the seeds and the aggregate results.

`verify` checks the sources against their hashes (a single changed byte names the file),
recompiles them, scores them again with the receipt's profile, config and seeds and requires
the results to be identical, field by field.

A bundle says which of its sources are the submission and which are opponents (`submit
SUB.rs --opponent X.rs`): every strategy's receipt entry has a `role`. `leaderboard` ranks the
submissions under a directory, never the opponents, within groups that ran the same profile,
config and seeds against the same field (the same opponents, by source hash, and the same
number of submissions per bundle): other scores are not comparable. Bundles written before roles existed
(`propamm-bundle/1`) load as bundles of submissions only.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from propamm_jax.config import SimConfig, check_profile
from propamm_jax.errors import PropammError, read_json

FORMAT = "propamm-bundle/2"
FORMATS = ("propamm-bundle/1", FORMAT)  # /1: no roles, every strategy is a submission
SUBMISSION, OPPONENT = "submission", "opponent"
RECEIPT = "receipt.json"
RESULTS = "results.json"
SOURCES = "sources"


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def seeds_digest(seeds: Sequence[int]) -> str:
    """One hash naming a seed list (decimal, comma-separated), to group comparable bundles."""
    return hashlib.sha256(",".join(str(int(s)) for s in seeds).encode()).hexdigest()


@dataclass
class Submission:
    """What `submit` wrote: the bundle directory, its receipt and any failed simulations."""

    path: Path
    receipt: dict
    failures: list = field(default_factory=list)
    rejected: list = field(default_factory=list)   # strategies left out before scoring


def _check_sources(sources: Sequence[str | Path], opponents: Sequence[str | Path] = ()
                   ) -> list[Path]:
    """The submissions then the opponents, each an existing `.rs` with a unique file name."""
    paths = [Path(s) for s in sources]
    if not paths:
        raise PropammError("submit: no strategy given: pass at least one .rs source")
    paths += [Path(o) for o in opponents]
    seen: dict[str, Path] = {}
    for p in paths:
        if p.suffix != ".rs":
            raise PropammError(f"{p}: a submission is Rust source (.rs), so that the bundle "
                               "holds the code that was scored")
        if not p.is_file():
            raise PropammError(f"{p}: no such file")
        if p.name in seen:
            raise PropammError(f"{p}: same file name as {seen[p.name]}: names label the "
                               "strategies in a bundle and must be unique")
        seen[p.name] = p
    return paths


def submit(sources: Sequence[str | Path], output: str | Path, *, config: SimConfig | None = None,
           seeds: Iterable[int] = range(20), profile: str = "reference",
           workers: int | None = None, progress: bool | None = None,
           opponents: Sequence[str | Path] = (), journal: str | Path | None = None,
           resume: bool = False) -> Submission:
    """Scores the submissions `sources` against `opponents` (all in the same simulations)
    officially and writes the bundle directory `output` (new or empty). `journal`/`resume`
    are `score`'s: a submission killed mid-run resumes where it stopped."""
    from propamm_jax import __version__
    from propamm_jax.native.build import RUSTC_FLAGS, compile_rust, core_library, rustc_version
    from propamm_jax.official.scoring import score
    from propamm_jax.tape.generate import parse_seed

    config = config or SimConfig()
    profile = check_profile(profile)
    paths = _check_sources(sources, opponents)
    roles = [SUBMISSION] * len(sources) + [OPPONENT] * len(opponents)
    try:
        seed_values = [parse_seed(s) for s in seeds]
    except ValueError as exc:
        raise PropammError(str(exc)) from None
    if not seed_values:
        raise PropammError("submit: no seeds")
    out = Path(output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PropammError(f"{out}: exists and is not an empty directory; choose a new "
                           "bundle directory")
    # Compile first: a source that does not build fails before anything is written.
    libraries = [compile_rust(p) for p in paths]
    (out / SOURCES).mkdir(parents=True, exist_ok=True)
    copies = []
    for p in paths:
        copy = out / SOURCES / p.name
        shutil.copyfile(p, copy)
        copies.append(copy)
    result = score(copies, config=config, seeds=seed_values, profile=profile, workers=workers,
                   progress=progress, journal=journal, resume=resume)
    result.results.save(out / RESULTS)
    receipt = {
        "format": FORMAT,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "package_version": __version__,
        "rustc_version": rustc_version(),
        "rustc_flags": list(RUSTC_FLAGS),
        "core_library_sha256": sha256_file(core_library()),
        "profile": profile,
        "config": config.to_json(),
        "seeds": [str(s) for s in seed_values],  # strings: u64 seeds exceed JSON's safe ints
        "seeds_sha256": seeds_digest(seed_values),
        "strategies": [
            {"name": c.name, "role": role, "source": f"{SOURCES}/{c.name}",
             "source_sha256": sha256_file(c), "library_sha256": sha256_file(lib)}
            for c, lib, role in zip(copies, libraries, roles)
        ],
        "results_sha256": sha256_file(out / RESULTS),
        "aggregate": result.results.aggregate(),
        "failures": [f.line() for f in result.failures],
    }
    (out / RECEIPT).write_text(json.dumps(receipt, indent=2) + "\n")
    return Submission(out, receipt, result.failures, result.rejected)


def load_receipt(bundle: str | Path) -> dict:
    """The receipt of a bundle directory, its required fields checked (errors name them)."""
    bundle = Path(bundle)
    path = bundle / RECEIPT
    if not bundle.is_dir():
        raise PropammError(f"{bundle}: not a bundle directory")
    if not path.exists():
        raise PropammError(f"{bundle}: no {RECEIPT}: not a bundle written by `propamm submit`")
    receipt = read_json(path)
    if not isinstance(receipt, dict) or receipt.get("format") not in FORMATS:
        raise PropammError(f"{path}: not a {FORMAT} receipt")
    for key in ("profile", "config", "seeds", "strategies", "aggregate", "results_sha256"):
        if key not in receipt:
            raise PropammError(f"{path}: missing field {key!r}")
    for k, st in enumerate(receipt["strategies"]):
        role = st.setdefault("role", SUBMISSION) if isinstance(st, dict) else None
        if role not in (SUBMISSION, OPPONENT) or "source_sha256" not in st:
            raise PropammError(f"{path}: strategies[{k}]: expected a source_sha256 and a role "
                               f"({SUBMISSION} or {OPPONENT})")
    if len(receipt["aggregate"]) != len(receipt["strategies"]):
        raise PropammError(f"{path}: aggregate has {len(receipt['aggregate'])} rows for "
                           f"{len(receipt['strategies'])} strategies")
    return receipt


def check_sources(bundle: str | Path, receipt: dict) -> list[str]:
    """Problems with the bundle's sources against the receipt's hashes (empty: all match)."""
    bundle = Path(bundle)
    problems = []
    for st in receipt["strategies"]:
        src = bundle / st["source"]
        if not src.is_file():
            problems.append(f"{src}: missing")
        elif sha256_file(src) != st["source_sha256"]:
            problems.append(f"{src}: SHA-256 {sha256_file(src)[:16]}... does not match the "
                            f"receipt's {st['source_sha256'][:16]}... (the source was changed)")
    return problems


@dataclass
class Verification:
    """The outcome of `verify`: `ok` only when every check passed."""

    bundle: Path
    problems: list[str]
    checks: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(bundle: str | Path, *, workers: int | None = None,
           progress: bool | None = None) -> Verification:
    """Re-runs a bundle and compares everything the receipt records."""
    from propamm_jax.native.build import compile_rust, core_library, rustc_version
    from propamm_jax.outputs.results import Results, first_difference
    from propamm_jax.official.scoring import score

    bundle = Path(bundle)
    receipt = load_receipt(bundle)
    problems = check_sources(bundle, receipt)
    checks = []
    if problems:  # scoring changed code proves nothing; say what changed and stop
        return Verification(bundle, problems, checks)
    checks.append(f"{len(receipt['strategies'])} source(s) match their SHA-256")
    rustc = rustc_version()
    same_rustc = rustc == receipt.get("rustc_version")
    if not same_rustc:
        problems.append("rustc differs from the receipt's (libraries cannot be compared): "
                        f"{rustc.splitlines()[0]} vs "
                        f"{str(receipt.get('rustc_version')).splitlines()[0]}")
    sources = [bundle / st["source"] for st in receipt["strategies"]]
    if same_rustc:
        for st, src in zip(receipt["strategies"], sources):
            if sha256_file(compile_rust(src)) != st["library_sha256"]:
                problems.append(f"{src}: the compiled library's SHA-256 differs from the receipt's")
        if sha256_file(core_library()) != receipt.get("core_library_sha256"):
            problems.append("the scoring core library's SHA-256 differs from the receipt's")
        else:
            checks.append("compiled libraries and scoring core match their SHA-256")
    config = SimConfig.from_json(receipt["config"])
    seeds = [int(s) for s in receipt["seeds"]]
    result = score(sources, config=config, seeds=seeds, profile=receipt["profile"],
                   workers=workers, progress=progress)
    ours = result.results
    stored_path = bundle / RESULTS
    if stored_path.exists():
        if sha256_file(stored_path) != receipt["results_sha256"]:
            problems.append(f"{stored_path}: SHA-256 differs from the receipt's (edited)")
        stored = Results.load(stored_path).to_json()
        diff = first_difference(ours.to_json()["sims"], stored["sims"], "sims")
        if diff:
            problems.append(f"re-run differs from {RESULTS}: {diff}")
        else:
            checks.append(f"re-run of {len(seeds)} simulations identical to {RESULTS}")
    else:
        problems.append(f"{stored_path}: missing")
    diff = first_difference(ours.aggregate(), receipt["aggregate"], "aggregate")
    if diff:
        problems.append(f"re-run differs from the receipt: {diff}")
    else:
        checks.append("aggregate results identical to the receipt")
    failures = [f.line() for f in result.failures]
    if failures != receipt.get("failures", []):
        problems.append(f"failures differ: re-run {failures} vs receipt {receipt.get('failures')}")
    return Verification(bundle, problems, checks)


def _field(receipt: dict) -> list:
    """What a bundle's submissions competed against: the opponents' source hashes (sorted)
    and how many submissions shared the simulations (they compete with each other too)."""
    strategies = receipt["strategies"]
    return [sorted(st["source_sha256"] for st in strategies if st["role"] == OPPONENT),
            sum(st["role"] == SUBMISSION for st in strategies)]


def _field_names(receipt: dict) -> str:
    names = sorted(st["name"] for st in receipt["strategies"] if st["role"] == OPPONENT)
    n = sum(st["role"] == SUBMISSION for st in receipt["strategies"])
    return (", ".join(names) or "normalizer only") + (
        f" ({n} submissions per bundle, ranked against each other too)" if n > 1 else "")


def leaderboard(root: str | Path):
    """Every submission in the bundles under `root` (any depth), one row each, ranked by mean
    edge within groups of identical profile, config, seeds and field (what it competed
    against); opponents are not ranked. `se_edge` is the standard error of the mean edge.
    `sources_ok` says whether the bundle's sources still match their receipt (a cheap check;
    `verify` re-runs)."""
    import pandas as pd

    root = Path(root)
    if not root.is_dir():
        raise PropammError(f"{root}: not a directory")
    rows = []
    for receipt_path in sorted(root.rglob(RECEIPT)):
        bundle = receipt_path.parent
        receipt = load_receipt(bundle)
        ok = not check_sources(bundle, receipt)
        cfg, n = receipt["config"], len(receipt["seeds"])
        key = [receipt["profile"], cfg, receipt["seeds"], _field(receipt)]
        group = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
        for st, agg in zip(receipt["strategies"], receipt["aggregate"]):
            if st["role"] != SUBMISSION:
                continue
            rows.append({
                "group": group, "bundle": str(bundle.relative_to(root)) or ".",
                "strategy": agg["strategy"], "mean_edge": agg["mean_edge"],
                "se_edge": agg["std_edge"] / math.sqrt(n - 1) if n > 1 else 0.0,
                "std_edge": agg["std_edge"], "vs_norm": agg["vs_norm"],
                "sharpe": agg["sharpe"], "final_cap_pct": agg["final_cap_pct"],
                "profile": receipt["profile"], "simulations": n, "steps": cfg["steps"],
                "field": _field_names(receipt), "sources_ok": ok,
            })
    if not rows:
        raise PropammError(f"{root}: no submissions found (no {RECEIPT} with a strategy "
                           "whose role is submission)")
    frame = pd.DataFrame(rows).sort_values(["group", "mean_edge"], ascending=[True, False],
                                           kind="stable")
    frame.insert(0, "rank", frame.groupby("group").cumcount() + 1)
    return frame.reset_index(drop=True)


def format_leaderboard(frame) -> str:
    """One table per group, each headed by what its rows have in common."""
    lines = []
    for group, rows in frame.groupby("group", sort=False):
        first = rows.iloc[0]
        lines.append(f"group {group}: profile {first['profile']}, {first['simulations']} "
                     f"simulations x {first['steps']} steps, against: {first['field']}")
        lines.append(f"{'#':>3} {'Strategy':<28} {'Bundle':<24} {'Mean Edge':>10} {'SE':>8} "
                     f"{'Std Edge':>10} {'vs Norm':>9} {'Sharpe':>8} {'Final Cap%':>10}  Sources")
        for _, r in rows.iterrows():
            lines.append(f"{r['rank']:>3} {r['strategy']:<28} {r['bundle']:<24} "
                         f"{r['mean_edge']:>10.2f} {r['se_edge']:>8.2f} {r['std_edge']:>10.2f} "
                         f"{r['vs_norm']:>9.2f} {r['sharpe']:>8.3f} {r['final_cap_pct']:>10.2f}  "
                         f"{'ok' if r['sources_ok'] else 'MODIFIED'}")
        lines.append("")
    return "\n".join(lines).rstrip()
