"""Running one job through the library: the same calls as the CLI, never a subprocess of it.

`validate` is `validate.validate_file` per source, `score` is `scoring.score` (the team's
sources plus the chosen opponents), `submit` is `bundle.submit`. Score and submit append
every finished simulation to the job's results journal in the data directory and always
resume from it, so a job retried after its worker died recomputes nothing it had finished.
Whatever confinement those calls apply to strategies (the sandbox), jobs get it too.

Files of job ID under the data directory, `jobs/ID/`: `sources/` (the uploads),
`journal.jsonl`, `results.json`, `report.html`, `validation.json`, `bundle/` (submit).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from propamm_jax.errors import PropammError

DEFAULT_JOB = {"simulations": 20, "steps": 10_000, "epoch_len": 1_000, "seed_start": 0,
               "seed_stride": 1, "profile": "reference", "opponents": []}


def job_dir(data: str | Path, job_id: str) -> Path:
    return Path(data) / "jobs" / job_id


def sources_dir(data: str | Path, job_id: str) -> Path:
    return job_dir(data, job_id) / "sources"


def starter_paths() -> dict[str, Path]:
    """The opponents a job may name: the project's starter strategies, by stem."""
    from propamm_jax.native.build import starter_strategies

    return {p.stem: p for p in starter_strategies()}


@dataclass
class Plan:
    """What a score or submit job runs: resolved config, seeds, profile and strategy files."""

    steps: int
    epoch_len: int
    seeds: list[int]
    profile: str
    opponents: list[str]
    hidden: bool = False                 # a competition's seeds: never shown to the team


@dataclass
class Outcome:
    """What a finished job leaves in the database (files are already in the data dir)."""

    summary: dict | list | None = None
    score: float | None = None
    lines: list[str] = field(default_factory=list)   # log lines for the team
    error: str | None = None                          # set: the job failed, this is why


def plan_for(config: dict, competition: dict | None) -> Plan:
    """A competition fixes everything (its seeds are hidden); a practice job uses its own."""
    from propamm_jax.official.scoring import seed_list

    if competition is not None:
        return Plan(competition["steps"], competition["epoch_len"],
                    [int(s) for s in json.loads(competition["seeds"])], competition["profile"],
                    json.loads(competition["opponents"]), hidden=True)
    c = {**DEFAULT_JOB, **config}
    return Plan(c["steps"], c["epoch_len"], seed_list(c["simulations"], c["seed_start"],
                                                      c["seed_stride"]),
                c["profile"], list(c["opponents"]))


def _failure_line(failure, hidden: bool) -> str:
    if not hidden:
        return f"FAILED {failure.line()}"
    who = f"strategy {failure.strategy}: " if failure.strategy else ""
    return f"FAILED a hidden seed: {who}{failure.kind}: {failure.message}"


def _team_score(aggregate: list[dict], sources: list[str]) -> float | None:
    """The mean edge of the team's (first) strategy: what the leaderboard ranks."""
    for row in aggregate:
        if row["file"] == sources[0]:
            return float(row["mean_edge"])
    return None


def run_validate(data: Path, job_id: str, sources: list[str], config: dict) -> Outcome:
    from propamm_jax.official.validate import validate_file

    reports = []
    for name in sources:
        report = validate_file(sources_dir(data, job_id) / name,
                               strict=bool(config.get("strict", False)))
        reports.append({"file": name, "ok": report.ok, "lines": report.lines()})
    (job_dir(data, job_id) / "validation.json").write_text(json.dumps({"reports": reports}))
    lines = [line for r in reports for line in r["lines"]]
    return Outcome(summary=[{"file": r["file"], "ok": r["ok"]} for r in reports], lines=lines)


def _finish_scored(data: Path, job_id: str, results, failures, rejected, sources: list[str],
                   plan: Plan) -> Outcome:
    from propamm_jax.outputs.report import leaderboard_html, render

    team_rejected = [r for r in rejected if Path(r.split(":", 1)[0]).name in sources]
    # A rejection may quote rustc's diagnostic over several lines: the log keeps them all,
    # the job's error is the first (it names the file and the reason).
    lines = [line for r in rejected for line in f"REJECTED {r}".splitlines()] \
        + [_failure_line(f, plan.hidden) for f in failures]
    if team_rejected:
        return Outcome(lines=lines, error=team_rejected[0].splitlines()[0])
    if not results.sims:
        return Outcome(lines=lines, error=f"no simulation finished: {lines[-1] if lines else ''}")
    results.save(job_dir(data, job_id) / "results.json")
    aggregate = [{**row, "file": label} for row, label in zip(results.aggregate(), results.strategies)]
    if plan.hidden:
        page = f"<!DOCTYPE html><html><body><h1>Submission</h1>{leaderboard_html(results)}</body></html>"
    else:
        page = render(results, title=f"job {job_id}")
    (job_dir(data, job_id) / "report.html").write_text(page)
    return Outcome(summary=aggregate, score=_team_score(aggregate, sources), lines=lines)


def run_score(data: Path, job_id: str, sources: list[str], plan: Plan, workers: int) -> Outcome:
    from propamm_jax.config import SimConfig
    from propamm_jax.official.scoring import score

    opponents = starter_paths()
    files = [sources_dir(data, job_id) / n for n in sources] + [opponents[o] for o in plan.opponents]
    result = score(files, config=SimConfig(steps=plan.steps, epoch_len=plan.epoch_len),
                   seeds=plan.seeds, profile=plan.profile, workers=workers, progress=False,
                   journal=job_dir(data, job_id) / "journal.jsonl", resume=True)
    lines = [f"resumed {result.resumed} simulations from the journal"] if result.resumed else []
    out = _finish_scored(data, job_id, result.results, result.failures, result.rejected,
                         sources, plan)
    out.lines = lines + result.warnings + out.lines
    return out


def run_submit(data: Path, job_id: str, sources: list[str], plan: Plan, workers: int) -> Outcome:
    from propamm_jax.outputs.bundle import submit
    from propamm_jax.config import SimConfig
    from propamm_jax.outputs.results import Results

    opponents = starter_paths()
    files = [sources_dir(data, job_id) / n for n in sources] + [opponents[o] for o in plan.opponents]
    bundle = job_dir(data, job_id) / "bundle"
    shutil.rmtree(bundle, ignore_errors=True)   # a killed attempt's partial bundle
    sub = submit(files, bundle, config=SimConfig(steps=plan.steps, epoch_len=plan.epoch_len),
                 seeds=plan.seeds, profile=plan.profile, workers=workers, progress=False,
                 journal=job_dir(data, job_id) / "journal.jsonl", resume=True)
    results = Results.load(bundle / "results.json")
    return _finish_scored(data, job_id, results, sub.failures, sub.rejected, sources, plan)


def run_job(data: str | Path, job_id: str, kind: str, sources: list[str], config: dict,
            competition: dict | None, workers: int = 1) -> Outcome:
    """Runs a job; a user's mistake or a bad strategy is a failed Outcome with one line."""
    data = Path(data)
    try:
        if kind == "validate":
            out = run_validate(data, job_id, sources, config)
        else:
            plan = plan_for(config, competition)
            runner = run_submit if kind == "submit" else run_score
            out = runner(data, job_id, sources, plan, workers)
    except PropammError as exc:
        out = Outcome(error=" ".join(str(exc).split()))
    # Messages name files by path; the team knows its files by name, and the server's
    # directories are none of its business.
    prefixes = (f"{sources_dir(data, job_id)}/", f"{job_dir(data, job_id)}/bundle/sources/")

    def strip(text: str) -> str:
        for prefix in prefixes:
            text = text.replace(prefix, "")
        return text

    out.lines = [strip(line) for line in out.lines]
    out.error = strip(out.error) if out.error else None
    return out


def progress(data: str | Path, job_id: str) -> int:
    """Simulations finished so far: the journal's lines after its header."""
    try:
        with open(job_dir(data, job_id) / "journal.jsonl", "rb") as f:
            return max(0, sum(1 for line in f if line.endswith(b"}\n")) - 1)
    except OSError:
        return 0
