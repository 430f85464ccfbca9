"""The market tape: everything random in one simulation, generated per seed.

- `generate`: the tape (market parameters, GBM factors, retail orders) of a set of seeds,
  reproducing the reference engine's RNG stream exactly; `parse_seed`.
- `chacha`, `ziggurat`, `musl_math`: the reference's random number generator, normal
  sampler and libm transcendentals, reproduced.
- `cache`: tapes kept on disk per (seed, steps).
"""
