"""Test support: the reference solvers' step in JAX, on u64 reserves, for any pool.

Not part of the package: the package has two engines, the native core (official) and the fast
JAX engine. This third one follows the native core step for step (golden-section arbitrage,
bisection routing, integer truncations) so that tests can hold parametric pools and compiled
strategies (`native.NativePool`, through host callbacks) to the core's own solvers.
`adapters.integer_pool` gives a package pool the integer interface this engine calls.
"""
