"""Which solver each pool gets: its family's closed form, or the generic one.

A pool family's curve supplies `spot` and `amount_out`, and optionally the closed forms
`arbitrage`, `demand` (per pool) and `route`, `reference_route` (for a group: used when every
pool of the simulation, the normalizer included, has the same one). Whatever is missing is
`fast.solvers`' generic Newton solve with implicit derivatives. The normalizer is a
constant-product pool whose fee is market data.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import jax
import jax.numpy as jnp

from propamm_jax.errors import PropammError
from propamm_jax.fast import solvers
from propamm_jax.pools.base import Arbitrage, has_closed_form
from propamm_jax.pools.constant_product import ConstantProductCurve

NORMALIZER = ConstantProductCurve()


def per_sim(eng, fn, batch: tuple, n_args: int):
    """`fn(params, *args)` of ONE simulation applied to a batch on the last axis (as is
    without a batch axis): pools' methods always see one simulation."""
    if not batch:
        return fn
    p_axis = -1 if eng.batched_params else None
    return jax.vmap(fn, in_axes=(p_axis,) + (-1,) * n_args, out_axes=-1, axis_size=batch[0])


def _curves(eng) -> tuple:
    return tuple(eng.pools) + (NORMALIZER,)


def _params(params, n: int) -> list:
    return list(params) + [None] * (n + 1 - len(params))


def shared(pools, name: str):
    """The group closed form `name` if every pool (and the normalizer) has the same one."""
    found = {getattr(type(p), name, None) for p in tuple(pools) + (NORMALIZER,)}
    (fn,) = found if len(found) == 1 else (None,)
    return getattr(NORMALIZER, name) if fn is not None and callable(fn) else None


def check_profile_support(pools, profile: str) -> None:
    """A family without a model of the published solvers cannot run in `reference`."""
    if profile == "reference" and shared(pools, "reference_route") is None:
        odd = next(p for p in pools if not has_closed_form(p, "reference_route")
                   or type(p).reference_route is not type(NORMALIZER).reference_route)
        raise PropammError(
            f"pool {type(odd).__name__}: profile 'reference' models what the published solvers "
            "do on constant-product pools only, and this family has no such model "
            "(reference_route); use profile 'corrected'")


def _per_pool(eng, s, params, fn_of, n_args: int, *args):
    """`fn_of(curve)(params_i, *args_i)` for every pool, the normalizer last, stacked."""
    n = len(eng.pools)
    outs = []
    for i, (curve, p) in enumerate(zip(_curves(eng), _params(params, n))):
        fn = per_sim(eng if i < n else _plain(eng), fn_of(curve), s.fair.shape, n_args)
        # Arrays with a pool axis (more dimensions than the per-simulation `fair`) are
        # sliced to pool i; per-simulation ones (fair, is_buy) are shared.
        outs.append(fn(p, *(a[i] if jnp.ndim(a) > s.fair.ndim else a for a in args)))
    return outs


def _plain(eng):
    """The engine for the normalizer, which has no parameters (so none batched)."""
    return replace(eng, batched_params=False)


def arbitrage(eng, s, params, gamma_buy, gamma_sell) -> Arbitrage:
    """Every pool's optimal arbitrage at the fair price, stacked over pools."""
    def fn_of(curve):
        if has_closed_form(curve, "arbitrage"):
            return curve.arbitrage
        return partial(solvers.generic_arbitrage, curve.amount_out)

    outs = _per_pool(eng, s, params, fn_of, 5, s.rx, s.ry, s.fair, gamma_buy, gamma_sell)
    return Arbitrage(*(jnp.stack(field) for field in zip(*outs)))


def amount_out(eng, s, params, is_buy, effective_in):
    """Every pool's output for its input after fee, stacked over pools."""
    outs = _per_pool(eng, s, params, lambda c: c.amount_out, 4, s.rx, s.ry, is_buy,
                     effective_in)
    return jnp.stack(outs)


def route(eng, s, params, is_buy, total, gamma):
    """The order's input per pool ([N+1, ...]): the group closed form, or the generic
    equimarginal split on each pool's `demand` (closed or generic)."""
    group = shared(eng.pools, "reference_route" if eng.profile == "reference" else "route")
    if group is not None:
        return group(total, s.rx, s.ry, is_buy, gamma)
    n = len(eng.pools)
    demands, margins = [], []
    for i, (curve, p) in enumerate(zip(_curves(eng), _params(params, n))):
        owner = eng if i < n else _plain(eng)
        dem = (curve.demand if has_closed_form(curve, "demand")
               else partial(solvers.generic_demand, curve.amount_out))
        demands.append(per_sim(owner, dem, s.fair.shape, 5))
        margins.append(per_sim(owner, partial(solvers.router_marginal, curve.amount_out),
                               s.fair.shape, 5))
    pool_args = [(p, s.rx[i], s.ry[i], is_buy, gamma[i])
                 for i, p in enumerate(_params(params, n))]
    return solvers.equimarginal_route(demands, margins, pool_args, total)
