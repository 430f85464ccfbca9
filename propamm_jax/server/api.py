"""The HTTP API (FastAPI, OpenAPI schema at /openapi.json) and the dashboard's files.

Every error is a 4xx/5xx with a one-line JSON body `{"error": "..."}`, never a traceback.
A team's token reaches only that team's jobs, sources and results: another team's job id
answers exactly as an id that does not exist (404), and ids are random. Competition seeds
never leave the server: results of competition jobs are aggregates, receipts lose their
seed list (keeping its SHA-256, the commitment), failure lines lose the seed.
"""

from __future__ import annotations

import io
import json
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException

from propamm_jax.server import auth, db, jobs, queue
from propamm_jax.server.models import MAX_WORK, CompetitionRequest, JobCreated, JobRequest


@dataclass
class Settings:
    """What an operator may tune; the defaults suit a small competition."""

    db_url: str
    data: Path
    max_active_jobs: int = 10           # queued + running per team
    rate_per_s: float = 20.0            # requests per second per team (token bucket)
    burst: float = 100.0
    max_body_bytes: int = 1 << 20


class ApiError(HTTPException):
    """An HTTP error whose detail is the one line the client sees."""


@dataclass
class RateLimiter:
    """A token bucket per key; in-process, since one process serves the API."""

    rate: float
    burst: float
    buckets: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self.lock:
            tokens, last = self.buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1:
                self.buckets[key] = (tokens, now)
                return False
            self.buckets[key] = (tokens - 1, now)
            return True


PARQUET = "application/vnd.apache.parquet"


class ErrorBody(BaseModel):
    """Every error's body: one line."""

    error: str


ERRORS = {code: {"model": ErrorBody, "description": what} for code, what in (
    (401, "missing, malformed or unknown token"), (403, "not allowed to this token"),
    (404, "no such object for this team"), (409, "not in a state that has this"),
    (413, "request body too large"), (422, "invalid request"), (429, "a limit was reached"))}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:500]


def _validation_line(exc: RequestValidationError) -> str:
    """Pydantic's first complaint as `field: message` (or `malformed JSON: ...`)."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    e = errors[0]
    if e.get("type") == "json_invalid":
        return f"malformed JSON: {e.get('ctx', {}).get('error', 'cannot parse the body')}"
    loc = [str(p) for p in e.get("loc", ()) if p not in ("body",)]
    if not loc and e.get("type") == "model_attributes_type":
        return "the body must be a JSON object (Content-Type: application/json)"
    where = ".".join(loc)
    msg = e.get("msg", "invalid").removeprefix("Value error, ")
    if e.get("type") == "missing" and not loc[1:] and loc[:1] == ["header"]:
        return "missing token: send Authorization: Bearer TOKEN"
    return _one_line(f"{where}: {msg}" if where else msg)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError):
        return JSONResponse({"error": _validation_line(exc)}, status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(_req: Request, exc: HTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and detail == "Not Found":
            detail = "not found"
        return JSONResponse({"error": _one_line(detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(_req: Request, exc: Exception):
        import traceback

        traceback.print_exc()
        return JSONResponse({"error": f"internal error ({type(exc).__name__})"}, status_code=500)


def _job_view(row, now: float) -> dict:
    """The status of a job as its team sees it."""
    started, finished = row.started, row.finished
    return {
        "id": row.id, "kind": row.kind, "state": row.state,
        "sources": json.loads(row.sources),
        "config": None if row.competition_id else json.loads(row.config),
        "competition": row.competition_id,
        "progress": {"done": row.progress_done, "total": row.progress_total},
        "timings": {"created": row.created, "started": started, "finished": finished,
                    "queued_s": round((started or now) - row.created, 3),
                    "running_s": round((finished or now) - started, 3) if started else None},
        "attempts": row.attempts, "error": row.error,
        "summary": json.loads(row.summary) if row.summary else None, "score": row.score,
    }


def _redacted_receipt(receipt: dict) -> dict:
    out = {k: v for k, v in receipt.items() if k not in ("seeds", "failures")}
    out["simulations"] = len(receipt.get("seeds", []))
    out["failed_simulations"] = len(receipt.get("failures", []))
    return out


def create_app(settings: Settings) -> FastAPI:
    """The application: API under /api, health at /health, dashboard at /."""
    engine: Engine = db.connect(settings.db_url)
    settings.data.mkdir(parents=True, exist_ok=True)
    limiter = RateLimiter(settings.rate_per_s, settings.burst)
    app = FastAPI(title="propamm competition server", version="1",
                  description="Jobs (validate, score, submit), results, competitions and a "
                              "leaderboard. Authenticate with `Authorization: Bearer TOKEN`.",
                  responses=ERRORS)
    app.state.engine = engine
    _install_errors(app)

    @app.middleware("http")
    async def _limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > settings.max_body_bytes):
            return JSONResponse({"error": f"request body larger than {settings.max_body_bytes} "
                                          "bytes"}, status_code=413)
        return await call_next(request)

    def team(authorization: str | None = Header(None, description="Bearer TOKEN")) -> auth.Team:
        if not authorization:
            raise ApiError(401, "missing token: send Authorization: Bearer TOKEN")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "malformed Authorization header: expected Bearer TOKEN")
        found = auth.team_for_token(engine, token.strip())
        if found is None:
            raise ApiError(401, "unknown token")
        if not limiter.allow(found.id):
            raise ApiError(429, f"rate limit: at most {settings.rate_per_s:g} requests per "
                                "second per team")
        return found

    def own_job(job_id: str, t: auth.Team):
        with engine.connect() as conn:
            row = conn.execute(sa.select(db.jobs).where(db.jobs.c.id == job_id)
                               .where(db.jobs.c.team_id == t.id)).first()
        if row is None:
            raise ApiError(404, "no such job (or not your team's)")
        return row

    def competition_row(competition_id: str | None):
        with engine.connect() as conn:
            q = sa.select(db.competitions)
            q = (q.where(db.competitions.c.id == competition_id) if competition_id
                 else q.order_by(db.competitions.c.created.desc()).limit(1))
            row = conn.execute(q).first()
        if row is None:
            raise ApiError(404, f"no competition {competition_id[:64]!r}" if competition_id
                           else "no competition yet")
        return row

    @app.get("/health", tags=["meta"])
    def health() -> dict:
        with engine.connect() as conn:
            conn.execute(sa.select(1))
        return {"status": "ok"}

    @app.get("/api/me", tags=["teams"])
    def me(t: auth.Team = Depends(team)) -> dict:
        return {"team": t.name, "admin": t.is_admin}

    @app.post("/api/jobs", response_model=JobCreated, status_code=201, tags=["jobs"])
    def create_job(body: JobRequest, t: auth.Team = Depends(team)) -> JobCreated:
        names = [s.name for s in body.sources]
        starters = jobs.starter_paths()
        comp = competition_row(body.competition) if body.competition else None
        if comp is not None and body.kind != "submit":
            raise ApiError(422, "competition: only submit jobs enter a competition")
        opponents = json.loads(comp.opponents) if comp is not None else body.config.opponents
        for o in opponents:
            if o not in starters:
                raise ApiError(422, f"config.opponents: unknown opponent {o!r} (choose from "
                                    f"{', '.join(sorted(starters))})")
        taken = set(f"{o}.rs" for o in opponents)
        for n in names:
            if n in taken:
                raise ApiError(422, f"sources: {n!r} is used twice (an opponent or another "
                                    "source has that name)")
            taken.add(n)
        if body.kind != "validate" and comp is None:
            work = body.config.simulations * body.config.steps
            if work > MAX_WORK:
                raise ApiError(422, "config: simulations x steps is above the server's limit")
        with engine.connect() as conn:
            active = queue.active_count(conn, t.id)
        if active >= settings.max_active_jobs:
            raise ApiError(429, f"your team has {active} jobs queued or running (limit "
                                f"{settings.max_active_jobs}); wait for one to finish")
        job_id = auth.new_id()
        folder = jobs.sources_dir(settings.data, job_id)
        folder.mkdir(parents=True)
        for s in body.sources:
            (folder / s.name).write_text(s.text, encoding="utf-8", errors="surrogatepass")
        total = (len(names) if body.kind == "validate" else
                 len(json.loads(comp.seeds)) if comp is not None else body.config.simulations)
        queue.enqueue(engine, job_id, t.id, body.kind, body.config.model_dump(), names,
                      comp.id if comp is not None else None, total)
        return JobCreated(id=job_id)

    @app.get("/api/jobs", tags=["jobs"])
    def list_jobs(limit: int = Query(100, ge=1, le=500), t: auth.Team = Depends(team)) -> dict:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(db.jobs).where(db.jobs.c.team_id == t.id)
                                .order_by(db.jobs.c.created.desc()).limit(limit)).all()
        now = db.now()
        return {"jobs": [_job_view(r, now) for r in rows]}

    @app.get("/api/jobs/{job_id}", tags=["jobs"])
    def get_job(job_id: str, t: auth.Team = Depends(team)) -> dict:
        return _job_view(own_job(job_id, t), db.now())

    @app.get("/api/jobs/{job_id}/logs", tags=["jobs"])
    def get_logs(job_id: str, after: int = Query(0, ge=0, le=2**62),
                 t: auth.Team = Depends(team)) -> dict:
        own_job(job_id, t)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(db.job_logs).where(db.job_logs.c.job_id == job_id)
                                .where(db.job_logs.c.id > after)
                                .order_by(db.job_logs.c.id)).all()
        return {"lines": [{"n": r.id, "at": r.at, "line": r.line} for r in rows]}

    @app.get("/api/jobs/{job_id}/sources", tags=["jobs"])
    def get_sources(job_id: str, t: auth.Team = Depends(team)) -> dict:
        row = own_job(job_id, t)
        folder = jobs.sources_dir(settings.data, row.id)
        return {"sources": [{"name": n, "text": (folder / n).read_text(errors="replace")}
                            for n in json.loads(row.sources)]}

    def finished_job(job_id: str, t: auth.Team):
        row = own_job(job_id, t)
        if row.state != "done":
            detail = f": {row.error}" if row.state == "failed" else ": no results yet"
            raise ApiError(409, f"job {row.id} is {row.state}{detail}")
        return row

    @app.get("/api/jobs/{job_id}/results", tags=["jobs"], responses={200: {
        "description": "results (golden schema), a CSV table or a Parquet table",
        "content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}},
                    PARQUET: {"schema": {"type": "string", "format": "binary"}}}}})
    def get_results(job_id: str, format: Literal["json", "csv", "parquet"] = "json",
                    t: auth.Team = Depends(team)):
        row = finished_job(job_id, t)
        folder = jobs.job_dir(settings.data, row.id)
        if row.kind == "validate":
            data = json.loads((folder / "validation.json").read_text())
            if format == "json":
                return data
            rows = [{"file": r["file"], "line": line} for r in data["reports"] for line in r["lines"]]
            return _table(rows, format, f"{row.id}-validation")
        if row.competition_id:
            summary = json.loads(row.summary)
            return {"aggregate": summary} if format == "json" else _table(summary, format, row.id)
        if format == "json":
            return FileResponse(folder / "results.json", media_type="application/json")
        from propamm_jax.frames import write_frame
        from propamm_jax.results import Results

        path = folder / f"results.{format}"
        if not path.exists():
            write_frame(Results.load(folder / "results.json").frame(), path)
        return FileResponse(path, filename=f"{row.id}.{format}",
                            media_type="text/csv" if format == "csv" else PARQUET)

    @app.get("/api/jobs/{job_id}/report", tags=["jobs"], response_class=Response,
             responses={200: {"description": "the self-contained HTML report",
                              "content": {"text/html": {"schema": {"type": "string"}}}}})
    def get_report(job_id: str, t: auth.Team = Depends(team)):
        row = finished_job(job_id, t)
        path = jobs.job_dir(settings.data, row.id) / "report.html"
        if not path.exists():
            raise ApiError(404, f"job {row.id} ({row.kind}) has no report")
        return HTMLResponse(path.read_text())

    @app.get("/api/jobs/{job_id}/receipt", tags=["jobs"])
    def get_receipt(job_id: str, t: auth.Team = Depends(team)) -> dict:
        row = finished_job(job_id, t)
        path = jobs.job_dir(settings.data, row.id) / "bundle" / "receipt.json"
        if row.kind != "submit" or not path.exists():
            raise ApiError(404, f"job {row.id} ({row.kind}) has no receipt")
        receipt = json.loads(path.read_text())
        return _redacted_receipt(receipt) if row.competition_id else receipt

    def competition_view(row) -> dict:
        return {"id": row.id, "name": row.name, "profile": row.profile, "steps": row.steps,
                "epoch_len": row.epoch_len, "opponents": json.loads(row.opponents),
                "simulations": len(json.loads(row.seeds)), "seeds_sha256": row.seeds_sha256}

    @app.get("/api/competitions", tags=["competitions"])
    def list_competitions(t: auth.Team = Depends(team)) -> dict:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(db.competitions)
                                .order_by(db.competitions.c.created.desc())).all()
        return {"competitions": [competition_view(r) for r in rows]}

    @app.post("/api/competitions", status_code=201, tags=["competitions"])
    def create_competition(body: CompetitionRequest, t: auth.Team = Depends(team)) -> dict:
        from propamm_jax.bundle import seeds_digest

        if not t.is_admin:
            raise ApiError(403, "only an admin token manages competitions")
        starters = jobs.starter_paths()
        for o in body.opponents:
            if o not in starters:
                raise ApiError(422, f"opponents: unknown opponent {o!r} (choose from "
                                    f"{', '.join(sorted(starters))})")
        comp_id = auth.new_id()
        try:
            with engine.begin() as conn:
                conn.execute(db.competitions.insert().values(
                    id=comp_id, name=body.name, profile=body.profile, steps=body.steps,
                    epoch_len=body.epoch_len, opponents=json.dumps(body.opponents),
                    seeds=json.dumps([str(s) for s in body.seeds]),
                    seeds_sha256=seeds_digest(body.seeds), created=db.now()))
        except sa.exc.IntegrityError:
            raise ApiError(409, f"competition {body.name!r} already exists") from None
        return competition_view(competition_row(comp_id))

    @app.get("/api/leaderboard", tags=["competitions"])
    def leaderboard(competition: str | None = Query(None, max_length=64),
                    t: auth.Team = Depends(team)) -> dict:
        comp = competition_row(competition)
        j = db.jobs.c
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(j.id, j.team_id, j.score, j.finished, j.sources, db.teams.c.name)
                .join(db.teams, db.teams.c.id == j.team_id)
                .where(j.competition_id == comp.id).where(j.state == "done")
                .where(j.score.is_not(None)).order_by(j.score.desc(), j.finished)).all()
        best: dict[str, object] = {}
        for r in rows:
            best.setdefault(r.team_id, r)
        board = []
        for rank, r in enumerate(best.values(), start=1):
            path = jobs.job_dir(settings.data, r.id) / "bundle" / "receipt.json"
            receipt = _redacted_receipt(json.loads(path.read_text())) if path.exists() else None
            board.append({"rank": rank, "team": r.name, "mean_edge": r.score,
                          "strategy": json.loads(r.sources)[0], "finished": r.finished,
                          "job": r.id if r.team_id == t.id else None, "receipt": receipt})
        return {"competition": competition_view(comp), "rows": board}

    static = Path(str(resources.files("propamm_jax.server").joinpath("static")))
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard():
        return HTMLResponse((static / "index.html").read_text())

    return app


def _table(rows: list[dict], format: str, name: str) -> Response:
    """Rows as a CSV or Parquet download."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    if format == "csv":
        return Response(frame.to_csv(index=False), media_type="text/csv",
                        headers={"content-disposition": f'attachment; filename="{name}.csv"'})
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return Response(buf.getvalue(), media_type=PARQUET,
                    headers={"content-disposition": f'attachment; filename="{name}.parquet"'})
