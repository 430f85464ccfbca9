"""Simulation configuration shared by every engine mode.

The defaults are the reference engine's. Profiles are explicit everywhere: a profile is never
chosen silently, because `reference` and `corrected` describe different markets.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from propamm_jax.errors import PropammError
from propamm_jax.rules import MAX_STRATEGIES  # noqa: F401 (re-exported for the CLI)

Profile = Literal["reference", "corrected"]
PROFILES: tuple[str, ...] = ("reference", "corrected")
U64_MAX = 2**64 - 1


@dataclasses.dataclass(frozen=True)
class SimConfig:
    """Everything about a run except the strategies and the seeds."""

    steps: int = 10_000
    epoch_len: int = 1_000
    base_reserve_x: int = 100_000_000_000
    base_reserve_y: int = 10_000_000_000_000
    lam: float = 2.0
    min_capital_weight: float = 0.02
    softmax_temperature: float = 1.0
    arb_profit_floor: float = 0.01

    def __post_init__(self) -> None:
        for name in ("steps", "epoch_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PropammError(f"{name} must be a positive integer, got {value!r}")
        if self.epoch_len > 2**32 - 1 or self.steps > 2**32 - 1:
            raise PropammError("steps and epoch_len must be below 2^32")
        for name in ("base_reserve_x", "base_reserve_y"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= U64_MAX:
                raise PropammError(f"{name} must be an integer in 1..2^64-1, got {value!r}")

    @property
    def initial_price(self) -> float:
        """The fair price before the first step, as the reference computes it."""
        return float(self.base_reserve_y) / float(self.base_reserve_x)

    def to_json(self) -> dict:
        """The `config` object of the results schema."""
        return {
            "steps": self.steps,
            "epoch_len": self.epoch_len,
            "base_reserve_x": self.base_reserve_x,
            "base_reserve_y": self.base_reserve_y,
            "lambda": self.lam,
            "min_capital_weight": self.min_capital_weight,
            "softmax_temperature": self.softmax_temperature,
            "arb_profit_floor": self.arb_profit_floor,
        }

    @classmethod
    def from_json(cls, data: dict) -> "SimConfig":
        """Inverse of `to_json`; unknown keys are an error naming the key."""
        keys = {"lambda": "lam"}
        kwargs = {}
        for key, value in data.items():
            field = keys.get(key, key)
            if field not in {f.name for f in dataclasses.fields(cls)}:
                raise PropammError(f"config: unknown field {key!r}")
            kwargs[field] = value
        return cls(**kwargs)


def check_profile(profile: str) -> str:
    """Returns the profile or raises a one-line error listing the valid ones."""
    if profile not in PROFILES:
        raise PropammError(f"unknown profile {profile!r}: choose 'reference' or 'corrected'")
    return profile
