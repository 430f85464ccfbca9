"""Official scoring of compiled Rust submissions, bit for bit the reference engine's.

- `scoring`: `score()` and the worker pool around the native core (`propamm_jax.native`).
- `sandbox`, `worker`, `wire`: untrusted code runs in bubblewrap-confined worker processes
  (a fork per simulation); frames between them and the parent.
- `journal`: finished simulations on disk, behind `score --resume`.
- `validate`: `propamm validate` and the checks every strategy passes before scoring.
"""
