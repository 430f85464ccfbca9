"""A compiled strategy as a JAX pool, through batched host callbacks.

Each callback receives the whole vmapped batch at once (`vmap_method="broadcast_all"`), builds
the reference's byte payloads for every simulation with NumPy, and calls the strategy once per
simulation. One callback costs ~100 us whatever the batch size, so batch wide.

The strategy's 1024-byte storage is the pool's JAX state (u8[1024]); the strategy mutates a
copy, which comes back as the new state.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jax_reference.obs import EpochObs, TradeObs
from propamm_jax import rules

STORAGE = rules.STORAGE


def _with_storage(layout: np.dtype) -> np.dtype:
    """A payload's header (`rules`) followed by the strategy's storage, as one record."""
    return np.dtype(layout.descr + [("storage", "u1", (STORAGE,))])


_SWAP = _with_storage(rules.QUOTE)
_AFTER = _with_storage(rules.AFTER_SWAP)
_EPOCH = _with_storage(rules.EPOCH)


@lru_cache(maxsize=None)
def _strategy(library: str):
    from propamm_jax.native.bridge import NativeStrategy

    return NativeStrategy(Path(library))


def _quote_host(library, is_buy, amount, rx, ry, storage):
    strategy = _strategy(library)
    shape = np.broadcast_shapes(is_buy.shape, amount.shape, rx.shape, ry.shape, storage.shape[:-1])
    payload = np.zeros(shape, _SWAP)
    payload["side"] = np.where(is_buy, 0, 1)
    payload["input"], payload["reserve_x"], payload["reserve_y"] = amount, rx, ry
    payload["storage"] = storage
    flat = payload.reshape(-1)
    out = np.array([strategy.call_compute(flat[k : k + 1]) for k in range(flat.size)], np.uint64)
    return out.reshape(shape)


def _hook_host(library, dtype, fields, active, storage):
    strategy = _strategy(library)
    shape = active.shape  # broadcast_all: every argument carries the full batch shape
    payload = np.zeros(shape, dtype)
    for key, value in fields.items():
        payload[key] = value
    new_storage = np.array(np.broadcast_to(storage, shape + (STORAGE,)), np.uint8)
    payload["storage"] = new_storage
    flat, act, store = payload.reshape(-1), active.reshape(-1), new_storage.reshape(-1, STORAGE)
    for k in np.flatnonzero(act):
        strategy.call_after(flat[k : k + 1], store[k])
    return new_storage


@dataclass(frozen=True)
class NativePool:
    """A compiled `.so` (see `propamm_jax.native.build.resolve_library`) as a pool."""

    library: str

    def init_state(self, params=None) -> jnp.ndarray:
        return jnp.zeros((STORAGE,), jnp.uint8)

    def quote(self, params, state, is_buy, amount, reserve_x, reserve_y):
        out = jax.ShapeDtypeStruct(jnp.shape(amount), jnp.uint64)
        return jax.pure_callback(partial(_quote_host, self.library), out, is_buy, amount,
                                 reserve_x, reserve_y, state, vmap_method="broadcast_all")

    def _hook(self, dtype, fields: dict, active, state):
        names = list(fields)

        def host(active, storage, *values):
            return _hook_host(self.library, dtype, dict(zip(names, values)), active, storage)

        out = jax.ShapeDtypeStruct(state.shape, jnp.uint8)
        return jax.pure_callback(host, out, active, state, *fields.values(),
                                 vmap_method="broadcast_all")

    def on_trade(self, params, state, obs: TradeObs):
        fields = {"tag": jnp.uint8(2), "side": jnp.where(obs.is_buy, 0, 1).astype(jnp.uint8),
                  "input": obs.input_amount, "output": obs.output_amount,
                  "reserve_x": obs.reserve_x, "reserve_y": obs.reserve_y, "step": obs.sim_step,
                  "epoch_step": obs.epoch_step, "epoch_number": obs.epoch_number,
                  "n_strategies": obs.n_strategies, "strategy_index": obs.strategy_index,
                  "flow": obs.flow_captured, "capital_weight": obs.capital_weight,
                  "competitor_prices": obs.competitor_prices}
        return self._hook(_AFTER, fields, obs.active, state)

    def on_epoch(self, params, state, obs: EpochObs):
        fields = {"tag": jnp.uint8(5), "epoch_number": obs.epoch_number,
                  "reserve_x": obs.reserve_x, "reserve_y": obs.reserve_y,
                  "epoch_edge": obs.epoch_edge, "cumulative_edge": obs.cumulative_edge,
                  "capital_weight": obs.capital_weight}
        return self._hook(_EPOCH, fields, obs.active, state)
