"""The API's request bodies, validated strictly: unknown keys, wrong types, oversized sources
and file names with a path in them are rejected before anything is stored."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

U64_MAX = 2**64 - 1
MAX_SOURCE_BYTES = 64 * 1024
MAX_SOURCES = 4
MAX_SIMULATIONS = 1000
MAX_STEPS = 100_000
MAX_WORK = 2_000_000           # simulations x steps of one job
FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}\.rs$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Source(Strict):
    """One uploaded Rust source: a bare file name (no directory) and its text."""

    name: str = Field(max_length=70, pattern=FILE_NAME.pattern,
                      description="a bare file name ending in .rs")
    text: str = Field(min_length=1, max_length=MAX_SOURCE_BYTES, pattern=r"\S",
                      description="the Rust source (UTF-8, at most 64 KiB)")

    @field_validator("name")
    @classmethod
    def _bare_name(cls, v: str) -> str:
        if "/" in v or "\\" in v or v in (".", "..") or "\0" in v:
            raise ValueError("a file name, not a path")
        if not FILE_NAME.match(v):
            raise ValueError("expected NAME.rs with letters, digits, '_' or '-'")
        return v

    @field_validator("text")
    @classmethod
    def _size(cls, v: str) -> str:
        if len(v.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
            raise ValueError(f"source larger than {MAX_SOURCE_BYTES} bytes")
        if not v.strip():
            raise ValueError("empty source")
        return v


class JobConfig(Strict):
    """The CLI's options, by their names."""

    simulations: int = Field(20, ge=1, le=MAX_SIMULATIONS)
    steps: int = Field(10_000, ge=1, le=MAX_STEPS)
    epoch_len: int = Field(1_000, ge=1, le=MAX_STEPS)
    seed_start: int = Field(0, ge=0, le=U64_MAX)
    seed_stride: int = Field(1, ge=1, le=2**32)
    profile: Literal["reference", "corrected"] = "reference"
    opponents: list[str] = Field(default_factory=list, max_length=8,
                                 description="starter strategies to score against, by name")
    strict: bool = Field(False, description="validate: curve problems fail")


class JobRequest(Strict):
    kind: Literal["validate", "score", "submit"]
    sources: list[Source] = Field(min_length=1, max_length=MAX_SOURCES)
    config: JobConfig = Field(default_factory=JobConfig)
    competition: str | None = Field(None, max_length=64,
                                    description="submit: the competition entered")


class CompetitionRequest(Strict):
    """An admin's competition: everything fixed, seeds hidden from teams."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")
    profile: Literal["reference", "corrected"] = "reference"
    steps: int = Field(10_000, ge=1, le=MAX_STEPS)
    epoch_len: int = Field(1_000, ge=1, le=MAX_STEPS)
    opponents: list[str] = Field(default_factory=list, max_length=8)
    seeds: list[int] = Field(min_length=1, max_length=MAX_SIMULATIONS)

    @field_validator("seeds")
    @classmethod
    def _u64(cls, v: list[int]) -> list[int]:
        for s in v:
            if not 0 <= s <= U64_MAX:
                raise ValueError(f"seed {s} is outside u64")
        return v


class JobCreated(BaseModel):
    id: str
