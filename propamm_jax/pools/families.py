"""The trainable policy families, by the name a policy file's `family` field gives.

`train`, `export`, `evaluate`, `simulate --pool dynamic:FILE` and `validate`/`score` (which
refuse policy files with a line saying what to do) all go through here, so adding a family
is one entry in FAMILIES and its two modules: the pool (`pools/<family>.py`: the pool
class, its parameter vector and its policy file) and its Rust renderer (`training/...`).

An oracle (`oracle: true` in the file, `propamm train --oracle`) is the same family seeing
the step's true fair price: it runs on the fast path only and nothing exports it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from propamm_jax.errors import PropammError

ORACLE_REFUSAL = ("is an oracle policy: it sees the step's true fair price, which no "
                  "submission can, so it never exports, validates or scores (fast path only)")


@dataclass(frozen=True)
class Family:
    """One family: where its pool and renderer live, and what training calls on it."""

    name: str
    pool_module: str
    pool_class: str
    render_module: str  # defines `render(pool, params, name) -> str` (the Rust source)
    summary: str = ""   # what `propamm train --help` says of it

    def module(self):
        return importlib.import_module(self.pool_module)

    def pool(self, fee_min_bps: float, fee_max_bps: float, epoch_len: int,
             oracle: bool = False, hidden: int = 8):
        """The pool; `hidden` only for families that have hidden units."""
        import dataclasses

        cls = getattr(self.module(), self.pool_class)
        extra = {"hidden": hidden} if "hidden" in {f.name for f in dataclasses.fields(cls)} else {}
        return cls(float(fee_min_bps), float(fee_max_bps), int(epoch_len), bool(oracle), **extra)

    def default_init(self) -> dict:
        """Training's start without --init (the pool class's DEFAULT_INIT; none: zeros)."""
        return dict(getattr(getattr(self.module(), self.pool_class), "DEFAULT_INIT", {}))

    def read(self, path: Path, data: dict) -> tuple[Any, Any]:
        """(pool, parameters as exact f64: floats or NumPy arrays)."""
        return self.module().read_policy(path, data)

    def save(self, path: Path, pool, params, **extra) -> Path:
        return self.module().save_policy(path, pool, params, **extra)

    def render(self, pool, params, name: str) -> str:
        if getattr(pool, "oracle", False):
            raise PropammError(f"the {self.name} policy {ORACLE_REFUSAL}")
        return importlib.import_module(self.render_module).render(pool, params, name)


FAMILIES = {
    "dynamic_fee": Family("dynamic_fee", "propamm_jax.pools.dynamic_fee", "DynamicFee",
                          "propamm_jax.training.export", "8 weights of hand-picked features"),
    "mlp": Family("mlp", "propamm_jax.pools.mlp", "MLPFee",
                  "propamm_jax.training.export_mlp", "a small network over the same features"),
    "regime_fee": Family("regime_fee", "propamm_jax.pools.regime_fee", "RegimeFee",
                         "propamm_jax.training.export_regime",
                         "dynamic_fee plus the market's sigma, estimate age and |dev|"),
    "virtual_reserves": Family("virtual_reserves", "propamm_jax.pools.virtual_reserves",
                               "VirtualReserves", "propamm_jax.pools.virtual_reserves",
                               "a fee per side and a concentrated curve, trained together"),
}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise PropammError(f"unknown policy family {name!r} (choose from "
                           f"{', '.join(FAMILIES)})")
    return FAMILIES[name]


def family_of(pool) -> Family:
    """The family of a pool object (its class's module)."""
    for fam in FAMILIES.values():
        if type(pool).__module__ == fam.pool_module:
            return fam
    raise PropammError(f"{type(pool).__name__} is not a trainable policy family")


def read_policy(path: str | Path) -> tuple[Family, Any, Any]:
    """(family, pool, exact f64 parameters) of a policy file of any family."""
    from propamm_jax.pools.policy_file import read_envelope

    path = Path(path)
    data = read_envelope(path)
    name = data.get("family")
    if name not in FAMILIES:
        raise PropammError(f"{path}: policy family {name!r} is not one of "
                           f"{', '.join(FAMILIES)}")
    pool, params = FAMILIES[name].read(path, data)
    return FAMILIES[name], pool, params


def load_policy(path: str | Path) -> tuple[Any, Any]:
    """(pool, JAX parameters) of a policy file of any family (f32 unless 64-bit JAX is on:
    exports use `read_policy`, which never rounds)."""
    import jax.numpy as jnp

    _, pool, params = read_policy(path)
    return pool, pool.unflatten(jnp.asarray(pool.flatten(params)))


def policy_file_note(path: str | Path) -> str | None:
    """For commands that take submissions: what a policy file given in place of one is (an
    oracle never becomes a submission; any other family exports first); None otherwise."""
    path = Path(path)
    if path.suffix != ".json" or not path.is_file():
        return None
    try:
        fam, pool, _ = read_policy(path)
    except PropammError:
        return None
    if getattr(pool, "oracle", False):
        return f"{path} {ORACLE_REFUSAL}"
    return (f"{path} is a {fam.name} policy file, not a submission: "
            f"`propamm export {path} -o policy.rs` first")


def refuse_policy_file(path: str | Path) -> None:
    """Raises `policy_file_note`'s line for a policy file; anything else passes."""
    note = policy_file_note(path)
    if note:
        raise PropammError(note)
