"""The bridge to compiled strategies, installed as `propamm_jax.native`.

`build` turns a `.rs` submission into a cached shared library exactly as the reference does,
`bridge` loads strategies and the scoring core with cffi. The Rust sources of the scoring
core (`core/engine.rs`) and of the starter strategies (`strategies/*.rs`) live beside them.
"""
