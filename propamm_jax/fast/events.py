"""The one event builder: a `Tape`'s seeds as the `Packed` events the fast step scans.

Orders are not padded per step. Each simulation becomes a sequence of events, one per order
(or one per step without orders); a seed with T steps and K orders has about
T * P(no order) + K events, and the scan runs over the longest sequence in the batch (padded
with no-op events to a multiple of a block, so that batches share one compiled program).
"""

from __future__ import annotations

import numpy as np

from propamm_jax.fast.types import BUY, FIRST, LAST, ORDER, Market, Packed

BLOCK = 1024  # event sequences are padded to a multiple of this: few distinct shapes


def pack_events(tape, dtype=np.float64, width: int | None = None, rows: int | None = None,
                block: int = 256) -> Packed:
    """`Packed` events ([events, rows], simulations on the minor axis) of a `Tape` on the
    host, built `block` seeds at a time straight into the transposed arrays (so a 10 000-seed
    batch never holds a second copy). `rows` > seeds pads the batch by repeating the last
    seed; `width` (default `event_width`) pads the events with no-ops."""
    s = len(tape.seeds)
    rows = max(rows or s, s)
    width = width or event_width(tape)
    out = Packed(np.empty((width, rows), step_dtype(tape.steps)), np.empty((width, rows), np.uint8),
                 np.empty((width, rows), dtype), np.empty((width, rows), dtype))
    for lo in range(0, s, block):
        hi = min(lo + block, s)
        part = tape_rows(tape, lo, hi)
        ev = _sequences(part, dtype, width)
        factor = np.ones(ev["size"].shape, dtype)
        factor[ev["first"]] = part.gbm_factor.ravel()  # one first event per step, in order
        bits = lambda a, k: a.view(np.uint8) << np.uint8(k)  # noqa: E731 (bool -> bit k)
        flags = (bits(ev["first"], FIRST.bit_length() - 1) | bits(ev["order"], ORDER.bit_length() - 1)
                 | bits(ev["last"], LAST.bit_length() - 1) | bits(ev["is_buy"], BUY.bit_length() - 1))
        out.step[:, lo:hi] = ev["step"].T
        out.flags[:, lo:hi] = flags.T
        out.size[:, lo:hi] = ev["size"].T
        out.price[:, lo:hi] = factor.T
    for a in out:
        a[:, s:] = a[:, s - 1 : s]
    return out


def market_of(tape, dtype=np.float64, rows: int | None = None) -> Market:
    """The seeds' `Market` (host arrays), padded to `rows` like `pack_events`."""
    fee = np.asarray(tape.params.norm_fee_bps / 10_000.0, dtype)
    mult = np.asarray(tape.params.norm_liquidity_mult, dtype)
    return Market(pad_rows(fee, rows), pad_rows(mult, rows))


def pad_rows(a: np.ndarray, rows: int | None) -> np.ndarray:
    """`a` with its first axis padded to `rows` by repeating the last row."""
    extra = (rows or 0) - a.shape[0]
    return a if extra <= 0 else np.concatenate([a, np.repeat(a[-1:], extra, axis=0)])


def step_dtype(steps: int):
    """The packed step index type: int16 while the steps fit."""
    return np.int16 if steps <= np.iinfo(np.int16).max else np.int32


def tape_rows(tape, lo: int, hi: int):
    """Seeds `lo:hi` of a `Tape`, as a `Tape`."""
    p = tape.params
    return type(tape)(tape.seeds[lo:hi], type(p)(*(a[lo:hi] for a in p)),
                      tape.gbm_factor[lo:hi], tape.order_start[lo:hi],
                      tape.order_is_buy[lo:hi], tape.order_size[lo:hi])


def event_width(tape, block: int = BLOCK) -> int:
    """The longest event sequence of a `Tape`, rounded up to a multiple of `block`."""
    longest = int(np.maximum(tape.order_count, 1).sum(axis=1).max())
    return -(-longest // block) * block


def _sequences(tape, dtype, width: int) -> dict:
    """Each seed's events as [seeds, width] arrays (step, first, order, last, is_buy, size).
    Row by row: each row's arrays stay in cache, which beats one vectorised pass."""
    counts = tape.order_count
    per_step = np.maximum(counts, 1)
    lengths = per_step.sum(axis=1)
    width = max(int(lengths.max()), width)
    s = len(tape.seeds)
    out = {k: np.zeros((s, width), bool) for k in ("first", "order", "last", "is_buy")}
    step = np.full((s, width), counts.shape[1] - 1, np.int32)
    size = np.zeros((s, width), dtype)
    arange = np.arange(counts.shape[1], dtype=np.int32)
    for row in range(s):
        n = int(lengths[row])
        steps = np.repeat(arange, per_step[row])
        step[row, :n] = steps
        change = steps[1:] != steps[:-1]          # a new step starts at the next event
        out["first"][row, 0] = True
        out["first"][row, 1:n] = change
        out["last"][row, : n - 1] = change
        out["last"][row, n - 1] = True
        has = counts[row][steps] > 0
        out["order"][row, :n] = has
        at = np.flatnonzero(has)
        out["is_buy"][row, at] = tape.order_is_buy[row, : len(at)]
        size[row, at] = tape.order_size[row, : len(at)]
    return dict(out, step=step, size=size)
