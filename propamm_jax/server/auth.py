"""Teams and their API tokens.

A token is 32 random bytes (URL-safe base64), shown once when the team is created; the
database keeps only its SHA-256. A slow password hash is not needed: the token has 256 bits
of entropy, so its hash cannot be searched, and a fast hash keeps every request cheap.
Identifiers of teams, jobs and competitions are random too, so nothing can be guessed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from propamm_jax.errors import PropammError
from propamm_jax.server import db

TEAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")


def new_id() -> str:
    """A random identifier (128 bits): ids are never sequential, so never guessable."""
    return secrets.token_hex(16)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Team:
    id: str
    name: str
    is_admin: bool


def add_team(engine: Engine, name: str, admin: bool = False) -> tuple[Team, str]:
    """Creates a team; returns it and its token (the only time the token exists in clear)."""
    if not TEAM_NAME.match(name or ""):
        raise PropammError(f"team name {name!r}: use 1-64 letters, digits, space, '_', '.' "
                           "or '-', starting with a letter or digit")
    token = secrets.token_urlsafe(32)
    team = Team(new_id(), name, admin)
    try:
        with engine.begin() as conn:
            conn.execute(db.teams.insert().values(id=team.id, name=name,
                                                  token_hash=hash_token(token),
                                                  is_admin=admin, created=db.now()))
    except sa.exc.IntegrityError:
        raise PropammError(f"team {name!r} already exists") from None
    return team, token


def team_for_token(engine: Engine, token: str) -> Team | None:
    """The team a bearer token belongs to, or None."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(db.teams.c.id, db.teams.c.name, db.teams.c.is_admin)
                           .where(db.teams.c.token_hash == hash_token(token))).first()
    return Team(row.id, row.name, bool(row.is_admin)) if row else None
