"""The HTTP API (FastAPI, OpenAPI schema at /openapi.json) and the dashboard's files.

The routes live in `routes_jobs` and `routes_competitions`; this module holds what they
share: settings, errors, the token check and the lookups that enforce access.

Every error is a 4xx/5xx with a one-line JSON body `{"error": "..."}`, never a traceback.
A team's token reaches only that team's jobs, sources and results: another team's job id
answers exactly as an id that does not exist (404), and ids are random. Competition seeds
never leave the server: results of competition jobs are aggregates, receipts lose their
seed list (keeping its SHA-256, the commitment), failure lines lose the seed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException

from propamm_jax.server import auth, db


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


@dataclass
class Context:
    """What every route needs: the database, the settings, and the lookups that enforce
    access (a team reaches only its own jobs)."""

    engine: Engine
    settings: Settings
    limiter: RateLimiter

    def team(self, authorization: str | None = Header(None, description="Bearer TOKEN")
             ) -> auth.Team:
        """The dependency of every /api route: the token's team, within its rate limit."""
        if not authorization:
            raise ApiError(401, "missing token: send Authorization: Bearer TOKEN")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "malformed Authorization header: expected Bearer TOKEN")
        found = auth.team_for_token(self.engine, token.strip())
        if found is None:
            raise ApiError(401, "unknown token")
        if not self.limiter.allow(found.id):
            raise ApiError(429, f"rate limit: at most {self.settings.rate_per_s:g} requests "
                                "per second per team")
        return found

    def own_job(self, job_id: str, t: auth.Team):
        """The job if it is this team's; otherwise the same 404 as for no job at all."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(db.jobs).where(db.jobs.c.id == job_id)
                               .where(db.jobs.c.team_id == t.id)).first()
        if row is None:
            raise ApiError(404, "no such job (or not your team's)")
        return row

    def finished_job(self, job_id: str, t: auth.Team):
        row = self.own_job(job_id, t)
        if row.state != "done":
            detail = f": {row.error}" if row.state == "failed" else ": no results yet"
            raise ApiError(409, f"job {row.id} is {row.state}{detail}")
        return row

    def competition_row(self, competition_id: str | None):
        """A competition by id, or the newest one."""
        with self.engine.connect() as conn:
            q = sa.select(db.competitions)
            q = (q.where(db.competitions.c.id == competition_id) if competition_id
                 else q.order_by(db.competitions.c.created.desc()).limit(1))
            row = conn.execute(q).first()
        if row is None:
            raise ApiError(404, f"no competition {competition_id[:64]!r}" if competition_id
                           else "no competition yet")
        return row


def create_app(settings: Settings) -> FastAPI:
    """The application: API under /api, health at /health, dashboard at /."""
    from propamm_jax.server import routes_competitions, routes_jobs

    engine = db.connect(settings.db_url)
    settings.data.mkdir(parents=True, exist_ok=True)
    ctx = Context(engine, settings, RateLimiter(settings.rate_per_s, settings.burst))
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

    @app.get("/health", tags=["meta"])
    def health() -> dict:
        with engine.connect() as conn:
            conn.execute(sa.select(1))
        return {"status": "ok"}

    @app.get("/api/me", tags=["teams"])
    def me(t: auth.Team = Depends(ctx.team)) -> dict:
        return {"team": t.name, "admin": t.is_admin}

    routes_jobs.register(app, ctx)
    routes_competitions.register(app, ctx)
    static = Path(str(resources.files("propamm_jax.server").joinpath("static")))
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard():
        return HTMLResponse((static / "index.html").read_text())

    return app
