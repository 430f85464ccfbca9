"""The job endpoints: create a job, its status, log, sources, results, report, receipt.
Every lookup goes through `Context.own_job`, so another team's job is a 404."""

from __future__ import annotations

import json
from typing import Literal

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Query
from fastapi.responses import FileResponse, HTMLResponse, Response

from propamm_jax.server import auth, db, jobs, queue
from propamm_jax.server.api import ApiError, Context
from propamm_jax.server.models import MAX_WORK, JobCreated, JobRequest
from propamm_jax.server.views import PARQUET, job_view, redacted_receipt, table


def check_job(body: JobRequest, comp) -> None:
    """The rules a JSON schema cannot say: a competition takes submit jobs only, opponents
    are starter strategies, no two files share a name, and a practice job's size."""
    starters = jobs.starter_paths()
    if comp is not None and body.kind != "submit":
        raise ApiError(422, "competition: only submit jobs enter a competition")
    opponents = json.loads(comp.opponents) if comp is not None else body.config.opponents
    for o in opponents:
        if o not in starters:
            raise ApiError(422, f"config.opponents: unknown opponent {o!r} (choose from "
                                f"{', '.join(sorted(starters))})")
    taken = set(f"{o}.rs" for o in opponents)
    for s in body.sources:
        if s.name in taken:
            raise ApiError(422, f"sources: {s.name!r} is used twice (an opponent or another "
                                "source has that name)")
        taken.add(s.name)
    if body.kind != "validate" and comp is None:
        if body.config.simulations * body.config.steps > MAX_WORK:
            raise ApiError(422, "config: simulations x steps is above the server's limit "
                                f"({MAX_WORK})")


def register(app: FastAPI, ctx: Context) -> None:
    @app.post("/api/jobs", response_model=JobCreated, status_code=201, tags=["jobs"])
    def create_job(body: JobRequest, t: auth.Team = Depends(ctx.team)) -> JobCreated:
        names = [s.name for s in body.sources]
        comp = ctx.competition_row(body.competition) if body.competition else None
        check_job(body, comp)
        with ctx.engine.connect() as conn:
            active = queue.active_count(conn, t.id)
        if active >= ctx.settings.max_active_jobs:
            raise ApiError(429, f"your team has {active} jobs queued or running (limit "
                                f"{ctx.settings.max_active_jobs}); wait for one to finish")
        job_id = auth.new_id()
        folder = jobs.sources_dir(ctx.settings.data, job_id)
        folder.mkdir(parents=True)
        for s in body.sources:
            (folder / s.name).write_text(s.text, encoding="utf-8", errors="surrogatepass")
        total = (len(names) if body.kind == "validate" else
                 len(json.loads(comp.seeds)) if comp is not None else body.config.simulations)
        queue.enqueue(ctx.engine, job_id, t.id, body.kind, body.config.model_dump(), names,
                      comp.id if comp is not None else None, total)
        return JobCreated(id=job_id)

    @app.get("/api/jobs", tags=["jobs"])
    def list_jobs(limit: int = Query(100, ge=1, le=500), t: auth.Team = Depends(ctx.team)) -> dict:
        with ctx.engine.connect() as conn:
            rows = conn.execute(sa.select(db.jobs).where(db.jobs.c.team_id == t.id)
                                .order_by(db.jobs.c.created.desc()).limit(limit)).all()
        now = db.now()
        return {"jobs": [job_view(r, now) for r in rows]}

    @app.get("/api/jobs/{job_id}", tags=["jobs"])
    def get_job(job_id: str, t: auth.Team = Depends(ctx.team)) -> dict:
        return job_view(ctx.own_job(job_id, t), db.now())

    @app.get("/api/jobs/{job_id}/logs", tags=["jobs"])
    def get_logs(job_id: str, after: int = Query(0, ge=0, le=2**62),
                 t: auth.Team = Depends(ctx.team)) -> dict:
        ctx.own_job(job_id, t)
        with ctx.engine.connect() as conn:
            rows = conn.execute(sa.select(db.job_logs).where(db.job_logs.c.job_id == job_id)
                                .where(db.job_logs.c.id > after)
                                .order_by(db.job_logs.c.id)).all()
        return {"lines": [{"n": r.id, "at": r.at, "line": r.line} for r in rows]}

    @app.get("/api/jobs/{job_id}/sources", tags=["jobs"])
    def get_sources(job_id: str, t: auth.Team = Depends(ctx.team)) -> dict:
        row = ctx.own_job(job_id, t)
        folder = jobs.sources_dir(ctx.settings.data, row.id)
        return {"sources": [{"name": n, "text": (folder / n).read_text(errors="replace")}
                            for n in json.loads(row.sources)]}

    @app.get("/api/jobs/{job_id}/results", tags=["jobs"], responses={200: {
        "description": "results (golden schema), a CSV table or a Parquet table",
        "content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}},
                    PARQUET: {"schema": {"type": "string", "format": "binary"}}}}})
    def get_results(job_id: str, format: Literal["json", "csv", "parquet"] = "json",
                    t: auth.Team = Depends(ctx.team)):
        row = ctx.finished_job(job_id, t)
        folder = jobs.job_dir(ctx.settings.data, row.id)
        if row.kind == "validate":
            data = json.loads((folder / "validation.json").read_text())
            if format == "json":
                return data
            rows = [{"file": r["file"], "line": line} for r in data["reports"] for line in r["lines"]]
            return table(rows, format, f"{row.id}-validation")
        if row.competition_id:
            summary = json.loads(row.summary)
            return {"aggregate": summary} if format == "json" else table(summary, format, row.id)
        if format == "json":
            return FileResponse(folder / "results.json", media_type="application/json")
        from propamm_jax.outputs.frames import write_frame
        from propamm_jax.outputs.results import Results

        path = folder / f"results.{format}"
        if not path.exists():
            write_frame(Results.load(folder / "results.json").frame(), path)
        return FileResponse(path, filename=f"{row.id}.{format}",
                            media_type="text/csv" if format == "csv" else PARQUET)

    @app.get("/api/jobs/{job_id}/report", tags=["jobs"], response_class=Response,
             responses={200: {"description": "the self-contained HTML report",
                              "content": {"text/html": {"schema": {"type": "string"}}}}})
    def get_report(job_id: str, t: auth.Team = Depends(ctx.team)):
        row = ctx.finished_job(job_id, t)
        path = jobs.job_dir(ctx.settings.data, row.id) / "report.html"
        if not path.exists():
            raise ApiError(404, f"job {row.id} ({row.kind}) has no report")
        return HTMLResponse(path.read_text())

    @app.get("/api/jobs/{job_id}/receipt", tags=["jobs"])
    def get_receipt(job_id: str, t: auth.Team = Depends(ctx.team)) -> dict:
        row = ctx.finished_job(job_id, t)
        path = jobs.job_dir(ctx.settings.data, row.id) / "bundle" / "receipt.json"
        if row.kind != "submit" or not path.exists():
            raise ApiError(404, f"job {row.id} ({row.kind}) has no receipt")
        receipt = json.loads(path.read_text())
        return redacted_receipt(receipt) if row.competition_id else receipt
