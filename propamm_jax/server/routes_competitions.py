"""Competitions (an admin defines them; their seeds stay on the server) and the
leaderboard: each team's best submission, with its receipt less the seed list."""

from __future__ import annotations

import json

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Query

from propamm_jax.server import auth, db, jobs
from propamm_jax.server.api import ApiError, Context
from propamm_jax.server.models import CompetitionRequest
from propamm_jax.server.views import competition_view, redacted_receipt


def register(app: FastAPI, ctx: Context) -> None:
    @app.get("/api/competitions", tags=["competitions"])
    def list_competitions(t: auth.Team = Depends(ctx.team)) -> dict:
        with ctx.engine.connect() as conn:
            rows = conn.execute(sa.select(db.competitions)
                                .order_by(db.competitions.c.created.desc())).all()
        return {"competitions": [competition_view(r) for r in rows]}

    @app.post("/api/competitions", status_code=201, tags=["competitions"])
    def create_competition(body: CompetitionRequest, t: auth.Team = Depends(ctx.team)) -> dict:
        from propamm_jax.outputs.bundle import seeds_digest

        if not t.is_admin:
            raise ApiError(403, "only an admin token manages competitions")
        starters = jobs.starter_paths()
        for o in body.opponents:
            if o not in starters:
                raise ApiError(422, f"opponents: unknown opponent {o!r} (choose from "
                                    f"{', '.join(sorted(starters))})")
        comp_id = auth.new_id()
        try:
            with ctx.engine.begin() as conn:
                conn.execute(db.competitions.insert().values(
                    id=comp_id, name=body.name, profile=body.profile, steps=body.steps,
                    epoch_len=body.epoch_len, opponents=json.dumps(body.opponents),
                    seeds=json.dumps([str(s) for s in body.seeds]),
                    seeds_sha256=seeds_digest(body.seeds), created=db.now()))
        except sa.exc.IntegrityError:
            raise ApiError(409, f"competition {body.name!r} already exists") from None
        return competition_view(ctx.competition_row(comp_id))

    @app.get("/api/leaderboard", tags=["competitions"])
    def leaderboard(competition: str | None = Query(None, max_length=64),
                    t: auth.Team = Depends(ctx.team)) -> dict:
        comp = ctx.competition_row(competition)
        j = db.jobs.c
        with ctx.engine.connect() as conn:
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
            path = jobs.job_dir(ctx.settings.data, r.id) / "bundle" / "receipt.json"
            receipt = redacted_receipt(json.loads(path.read_text())) if path.exists() else None
            board.append({"rank": rank, "team": r.name, "mean_edge": r.score,
                          "strategy": json.loads(r.sources)[0], "finished": r.finished,
                          "job": r.id if r.team_id == t.id else None, "receipt": receipt})
        return {"competition": competition_view(comp), "rows": board}
