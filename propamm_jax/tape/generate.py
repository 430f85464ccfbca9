"""The market tape: every random draw of one reference simulation, generated once per seed.

A tape holds the market parameters, the GBM factor of every step (the fair-price path follows
from the initial price) and the retail orders of every step (side, size). It depends on the
seed only, never on the strategies, so every engine mode reads the same one.

The draws must be bit-identical to rand 0.8.5 / rand_chacha 0.3.1 / rand_distr 0.4.3, and a
Python loop over draws is far too slow, so the work is split in two:

1. Every draw after the five market parameters consumes whole u64s (two consecutive words
   of the seed's ChaCha8 stream, see `chacha`), so from there on a seed's stream is a
   sequence of u64 slots. For a window of slots, what a draw starting at *each* slot would
   give is computed at once, vectorised over the windows of all seeds: the ziggurat normal
   (value and length), the Knuth Poisson count, the order side, and from those where a whole
   step starting there would end.
2. A short loop then walks the steps of all seeds together, one gather per step, and the
   values at the slots actually reached are read off.

A step that does not fit in a window is drawn one value at a time from the stream instead.
The per-slot tables cost about ten times the draws actually used, but in NumPy passes
instead of Python bytecode, and they need no per-seed loop.

Where the engine calls std's `exp`/`ln` (the GBM factor, `order_size_mean.ln()`) and where
rand_distr calls them on a concrete f64 (the ziggurat's density test and its tail), Rust
resolves to std's inherent methods, i.e. glibc, which is Python's `math`. Where rand_distr
calls them through its generic `F: num_traits::Float` (Poisson's `exp(-lambda)`, LogNormal's
`exp`), num-traits is built without `std` and forwards to the `libm` crate (`musl_math`).
"""

from __future__ import annotations

import math
import struct
import sys
from typing import Iterable, NamedTuple

import numpy as np

from propamm_jax.tape import musl_math
from propamm_jax.tape.ziggurat import ZIG_F, ZIG_R, ZIG_X
from propamm_jax.tape.chacha import WORDS_PER_BLOCK, Keystreams, ScalarStream, keystream

U64_MAX = 2**64 - 1
INITIAL_PRICE = 10_000e9 / 100e9  # base reserves Y / X, as the engine computes it (100.0)
SIGMA_LN = 1.2

_X = np.array(ZIG_X)
_X_NEXT = _X[1:].copy()  # X[i + 1], indexed by i
_F = np.array(ZIG_F)
_EXP_1_2 = np.uint64(1023 << 52)  # exponent bits of [1, 2)
_EXP_2_4 = np.uint64(1024 << 52)  # exponent bits of [2, 4)
_HALF_EPS = 2.220446049250313e-16 / 2.0
_HALF_U64 = np.uint64(1 << 63)  # gen_bool(0.5): p_int = (0.5 * 2^64) as u64
_HUGE = 1 << 30  # "not resolvable inside this window" (a length, a count or a position)
_PAD = 4  # dead u64 slots after each window row, so look-ahead never reaches the next row
_BUDGET = 1 << 20  # window words per round, over all seeds (~50 bytes of scratch each)
_MIN_WINDOW = 256
_MAX_WINDOW = 16384
_WORDS_PER_STEP = 16  # generous mean, for sizing the last window


class MarketParams(NamedTuple):
    """Per-seed market parameters, arrays of shape [S]."""

    sigma: np.ndarray
    lam: np.ndarray
    order_size_mean: np.ndarray
    norm_fee_bps: np.ndarray  # int64
    norm_liquidity_mult: np.ndarray


class Tape(NamedTuple):
    """All randomness of S simulations of T steps.

    Orders are in CSR form: the orders of step t of seed s are columns
    `order_start[s, t] : order_start[s, t + 1]` of `order_is_buy[s]` / `order_size[s]`;
    columns past a seed's last order are False / 0.0 (at least one column).
    """

    seeds: np.ndarray          # uint64 [S]
    params: MarketParams
    gbm_factor: np.ndarray     # f64 [S, T]  price(t) = price(t-1) * gbm_factor[t]
    order_start: np.ndarray    # int64 [S, T+1]
    order_is_buy: np.ndarray   # bool [S, M]
    order_size: np.ndarray     # f64 [S, M]  size in Y (unscaled)

    @property
    def steps(self) -> int:
        return self.gbm_factor.shape[1]

    @property
    def order_count(self) -> np.ndarray:
        """Orders per step, int64 [S, T]."""
        return np.diff(self.order_start, axis=1)

    def fair_prices(self, initial_price: float = INITIAL_PRICE) -> np.ndarray:
        """The fair price after each step's GBM move, multiplied in order as the reference."""
        path = np.concatenate([np.full((len(self.seeds), 1), initial_price), self.gbm_factor], 1)
        return np.multiply.accumulate(path, axis=1)[:, 1:]  # sequential, left to right

    @property
    def fair_price(self) -> np.ndarray:
        """f64 [S, T]: the price after each step's GBM move (base reserves 10 000 Y / 100 X)."""
        return self.fair_prices(INITIAL_PRICE)


def parse_seed(value: object) -> int:
    """A u64 seed from an int or a decimal string; anything else is a one-line ValueError."""
    if isinstance(value, np.integer) and not isinstance(value, np.bool_):
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text.startswith("-") else text
        if not (digits.isascii() and digits.isdigit()):
            raise ValueError(f"seed {value!r} is not an integer")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"seed {value!r} is not an integer")
    if not 0 <= value <= U64_MAX:
        raise ValueError(f"seed {value} is outside u64 (0..{U64_MAX})")
    return value


def make_tape(seeds: Iterable[int | str] | np.ndarray, steps: int) -> Tape:
    """The tapes of `seeds` (u64s: ints, decimal strings or a uint64 array), `steps` steps each."""
    return _generate(seeds, steps, _BUDGET)


# ─── scalar draws (the five parameters' rare fallback, steps too long for a window) ──────


def _f64(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def _bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def _inclusive_scale(low: float, high: float) -> float:
    """`UniformFloat::new_inclusive(low, high).scale`: the largest scale that cannot pass high."""
    max_rand = _f64((U64_MAX >> 12) | (1023 << 52)) - 1.0
    scale = (high - low) / max_rand
    while scale * max_rand + low > high:
        scale = _f64(_bits(scale) - 1)
    return scale


_RANGES = {  # gen_range(low..=high) for the f64 parameters: (low, scale)
    name: (low, _inclusive_scale(low, high))
    for name, low, high in [("sigma", 0.0001, 0.0070), ("lam", 0.4, 1.2),
                            ("size", 12.0, 28.0), ("liq", 0.4, 2.0)]
}
_FEE_LOW, _FEE_SPAN = 30, 80 - 30 + 1
_FEE_ZONE = ((_FEE_SPAN << (32 - _FEE_SPAN.bit_length())) - 1) & 0xFFFFFFFF


def _scalar_uniform(rng: ScalarStream, name: str) -> float:
    low, scale = _RANGES[name]
    return (_f64((rng.next_u64() >> 12) | (1023 << 52)) - 1.0) * scale + low


def _scalar_fee(rng: ScalarStream) -> int:
    while True:
        m = rng.next_u32() * _FEE_SPAN
        if m & 0xFFFFFFFF <= _FEE_ZONE:
            return _FEE_LOW + (m >> 32)


def _scalar_params(rng: ScalarStream) -> tuple:
    sigma = _scalar_uniform(rng, "sigma")
    lam = _scalar_uniform(rng, "lam")
    size = _scalar_uniform(rng, "size")
    fee = _scalar_fee(rng)
    return sigma, lam, size, fee, _scalar_uniform(rng, "liq")


def _scalar_u01(rng: ScalarStream) -> float:
    return (rng.next_u64() >> 11) * (1.0 / (1 << 53))


def _scalar_open01(rng: ScalarStream) -> float:
    return _f64((rng.next_u64() >> 12) | (1023 << 52)) - (1.0 - _HALF_EPS)


def _scalar_normal(rng: ScalarStream) -> float:
    while True:
        bits = rng.next_u64()
        i = bits & 0xFF
        u = _f64((bits >> 12) | (1024 << 52)) - 3.0
        x = u * ZIG_X[i]
        if abs(x) < ZIG_X[i + 1]:
            return x
        if i == 0:
            tx, ty = 1.0, 0.0
            while -2.0 * ty < tx * tx:
                tx = math.log(_scalar_open01(rng)) / ZIG_R
                ty = math.log(_scalar_open01(rng))
            return tx - ZIG_R if u < 0.0 else ZIG_R - tx
        if ZIG_F[i + 1] + (ZIG_F[i] - ZIG_F[i + 1]) * _scalar_u01(rng) < math.exp(-x * x / 2.0):
            return x


def _scalar_poisson(rng: ScalarStream, exp_lambda: float) -> int:
    result, p = 0, 1.0
    while p > exp_lambda:
        p = p * _scalar_u01(rng)
        result += 1
    return result - 1


# ─── vectorised draws ─────────────────────────────────────────────────────────────────────


def _check_poisson_lambda(lam: np.ndarray) -> None:
    if not np.all(lam < 12.0):
        raise NotImplementedError("Poisson with lambda >= 12 (rand_distr's rejection method)")


def _u64_at(words: np.ndarray, col: np.ndarray) -> np.ndarray:
    rows = np.arange(words.shape[0])
    lo = words[rows, col].astype(np.uint64)
    return lo | (words[rows, col + 1].astype(np.uint64) << np.uint64(32))


def _uniform(bits: np.ndarray, name: str) -> np.ndarray:
    low, scale = _RANGES[name]
    return (((bits >> np.uint64(12)) | _EXP_1_2).view(np.float64) - 1.0) * scale + low


def _params(streams: Keystreams) -> tuple[np.ndarray, ...]:
    """The five market parameters of every seed; leaves each cursor after them."""
    n_blocks = 4
    words = keystream(streams.keys, 0, n_blocks)
    last = n_blocks * WORDS_PER_BLOCK
    s = words.shape[0]
    zero = np.zeros(s, dtype=np.int64)
    sigma = _uniform(_u64_at(words, zero), "sigma")
    lam = _uniform(_u64_at(words, zero + 2), "lam")
    size = _uniform(_u64_at(words, zero + 4), "size")
    fee = np.zeros(s, dtype=np.int64)
    used = np.full(s, -1, dtype=np.int64)  # u32 words taken by the fee's rejection loop
    pending = np.arange(s)
    for k in range(last - 8):
        if pending.size == 0:
            break
        m = words[pending, 6 + k].astype(np.uint64) * np.uint64(_FEE_SPAN)
        ok = (m & np.uint64(0xFFFFFFFF)) <= np.uint64(_FEE_ZONE)
        fee[pending[ok]] = _FEE_LOW + (m[ok] >> np.uint64(32)).astype(np.int64)
        used[pending[ok]] = k + 1
        pending = pending[~ok]
    liq_col = 6 + np.maximum(used, 0)
    liq = _uniform(_u64_at(words, liq_col), "liq")
    streams.cursor[:] = liq_col + 2
    for row in pending.tolist():  # 56 fee rejections in a row: never seen, but exact anyway
        rng = ScalarStream(streams.keys[row], 0)
        sigma[row], lam[row], size[row], fee[row], liq[row] = _scalar_params(rng)
        streams.cursor[row] = rng.position
    return sigma, lam, size, fee, liq


class _Window(NamedTuple):
    """Draw tables for every u64 slot of a set of window rows, flattened row-major.

    A row is the seed's stream read as u64s from its cursor, and a position is a flat slot
    index `row * width + slot`. Lengths and counts are in u64s. Lengths, counts and
    next-positions are `_HUGE` or more where the draw runs past the row's slots.
    """

    width: int
    normal: np.ndarray       # f64: the StandardNormal drawn from here
    length: np.ndarray       # int32: u64s that normal consumes
    count: np.ndarray        # int32: the Poisson count drawn from here (consumes count + 1)
    is_buy: np.ndarray       # bool: gen_bool(0.5) drawn from here
    next_order: np.ndarray   # int64: position after an order (side, then log-normal) from here
    next_step: np.ndarray    # int64: position after a whole step from here


def _window_tables(bits2: np.ndarray, n: int, exp_lambda: np.ndarray) -> _Window:
    """Tables for u64 slots `bits2` [rows, n + _PAD] (the last `_PAD` columns are not stream)."""
    rows, width = bits2.shape
    size = rows * width
    bits = bits2.reshape(size)
    u01_2 = (bits2 >> np.uint64(11)).astype(np.float64)
    u01_2 *= 1.0 / (1 << 53)  # Standard f64: 53 high bits, exact
    u01_2[:, n:] = np.nan  # past the window: every comparison fails, nothing resolves
    u01 = u01_2.reshape(size)

    # StandardNormal: rand_distr's ziggurat. Fast path: one u64, |u * X[i]| < X[i + 1].
    layer = (bits & np.uint64(0xFF)).view(np.int64)
    u = ((bits >> np.uint64(12)) | _EXP_2_4).view(np.float64)
    u -= 3.0
    normal = _X.take(layer)
    normal *= u
    fast = np.abs(normal) < _X_NEXT.take(layer)
    fast.reshape(rows, width)[:, n:] = False
    length = np.where(fast, np.int32(1), np.int32(_HUGE))
    slow = np.flatnonzero(~fast)
    del fast
    slow = slow[slow % width < n]
    slow_layer = layer[slow]
    wedge = slow[slow_layer != 0]
    xs, ls = normal[wedge], slow_layer[slow_layer != 0]
    density = np.fromiter(map(math.exp, ((-xs) * xs / 2.0).tolist()), np.float64, xs.size)
    accept = _F[ls + 1] + (_F[ls] - _F[ls + 1]) * u01[wedge + 1] < density
    length[wedge[accept]] = 2
    rejected = wedge[~accept & (wedge % width < n - 1)]
    _tails(slow[slow_layer == 0], bits, u, width, n, normal, length)
    del layer, u
    # A rejected wedge test restarts the draw 2 slots on: resolve those chains back to front.
    pending = np.zeros(size, dtype=bool)
    pending[rejected] = True
    while rejected.size:
        target = rejected + 2
        ready = ~pending[target]
        done, target = rejected[ready], target[ready]
        length[done] = np.minimum(length[target], _HUGE - 2) + 2
        normal[done] = normal[target]
        pending[done] = False
        rejected = rejected[~ready]
    del pending

    # Poisson, Knuth's method: the count is the first k with u[0] * ... * u[k] <= exp(-lambda).
    # Products only shrink, so over the first rounds (whole rows, shifted slices) the count is
    # the number of products still above the threshold; the few longer ones go on alone.
    threshold = exp_lambda[:, None]
    product = u01_2.copy()
    count2 = np.zeros((rows, width), dtype=np.int32)
    rounds = min(3, _PAD)
    for k in range(1, rounds + 1):
        count2 += product > threshold
        product[:, : width - k] *= u01_2[:, k:]
    open2 = ~(product <= threshold)
    count2[open2] = _HUGE
    count = count2.reshape(size)
    open2[:, n:] = False
    live = np.flatnonzero(open2)
    del open2
    product = product.reshape(size)[live]
    threshold = np.repeat(exp_lambda, width)[live]
    k = rounds + 1
    while live.size:
        nxt = live + k
        fits = nxt % width < n
        live, product, threshold, nxt = live[fits], product[fits], threshold[fits], nxt[fits]
        product = product * u01[nxt]
        stop = product <= threshold
        count[live[stop]] = k
        live, product, threshold = live[~stop], product[~stop], threshold[~stop]
        k += 1
    del u01, u01_2, product, threshold

    is_buy = bits < _HALF_U64
    # Positions at or past _HUGE mean "not in this window"; take(mode="clip") maps them to the
    # last slot, which is padding and unresolved, so they stay there.
    pos = np.arange(size, dtype=np.int64)
    # an order: the side (one u64), then the normal of its log-normal size
    next_order = np.empty(size, dtype=np.int64)
    np.add(pos[1:], length[1:], out=next_order[:-1])
    next_order[-1] = _HUGE
    # a step: the GBM normal, the Poisson count, then that many orders
    a = pos
    a += length
    c = count.take(a, mode="clip")
    end = a
    end += c
    end += 1
    chain = np.flatnonzero(c > 0)
    chain = chain[end[chain] < _HUGE]
    at, left = end[chain], c[chain]
    while chain.size:
        at = next_order.take(at, mode="clip")
        left -= 1
        fin = (left == 0) | (at >= _HUGE)
        end[chain[fin]] = at[fin]
        keep = ~fin
        chain, at, left = chain[keep], at[keep], left[keep]
    return _Window(width, normal, length, count, is_buy, next_order, end)


def _tails(tail: np.ndarray, bits: np.ndarray, u: np.ndarray, width: int, n: int,
           normal: np.ndarray, length: np.ndarray) -> None:
    """The ziggurat's base layer (i == 0): Open01 pairs from the tail until one is accepted."""
    x = np.ones(tail.size)
    y = np.zeros(tail.size)
    at = tail + 1
    live = np.arange(tail.size)
    while live.size:
        live = live[at[live] % width < n - 1]  # a pair past the window: left unresolved
        if live.size == 0:
            break
        pair = np.stack([at[live], at[live] + 1])
        open01 = ((bits[pair] >> np.uint64(12)) | _EXP_1_2).view(np.float64) - (1.0 - _HALF_EPS)
        logs = np.fromiter(map(math.log, open01.ravel().tolist()), np.float64, open01.size)
        logs = logs.reshape(2, live.size)
        x[live] = logs[0] / ZIG_R
        y[live] = logs[1]
        at[live] += 2
        again = -2.0 * y[live] < x[live] * x[live]
        done = live[~again]
        j = tail[done]
        normal[j] = np.where(u[j] < 0.0, x[done] - ZIG_R, ZIG_R - x[done])
        length[j] = at[done] - j
        live = live[again]


class _Out:
    """The tape being filled: GBM normals, counts and orders per seed."""

    def __init__(self, n_seeds: int, steps: int, lam: np.ndarray):
        self.gbm_normal = np.zeros((n_seeds, steps))
        self.count = np.zeros((n_seeds, steps), dtype=np.int64)
        cap = int(np.max(lam) * steps * 1.25) + 64
        self.is_buy = np.zeros((n_seeds, cap), dtype=bool)
        self.normal = np.zeros((n_seeds, cap))
        self.n_orders = np.zeros(n_seeds, dtype=np.int64)
        self.done = np.zeros(n_seeds, dtype=np.int64)  # steps written

    def reserve(self, width: int) -> None:
        cap = self.is_buy.shape[1]
        if width > cap:
            new = max(width, 2 * cap)
            self.is_buy = np.pad(self.is_buy, ((0, 0), (0, new - cap)))
            self.normal = np.pad(self.normal, ((0, 0), (0, new - cap)))


def _as_u64(words: np.ndarray, parity: np.ndarray, n: int) -> np.ndarray:
    """Each row's words as n u64s (low word first) from word `parity` (0 or 1), then _PAD zeros."""
    slots = np.zeros((words.shape[0], n + _PAD), dtype=np.uint64)
    for p in (0, 1):
        rows = np.flatnonzero(parity == p)
        if rows.size == 0:
            continue
        if sys.byteorder == "little":  # a u64 read of two words is exactly low | high << 32
            slots[rows, :n] = np.ascontiguousarray(words[rows, p : p + 2 * n]).view(np.uint64)
        else:
            low = words[rows, p : p + 2 * n : 2].astype(np.uint64)
            high = words[rows, p + 1 : p + 2 * n + 1 : 2].astype(np.uint64)
            slots[rows, :n] = low | (high << np.uint64(32))
    return slots


def _walk_round(streams: Keystreams, out: _Out, seeds: np.ndarray, exp_lambda: np.ndarray,
                steps: int, n_words: int) -> np.ndarray:
    """Moves `seeds` through as many steps as their windows hold; returns the steps per seed."""
    words, start = streams.window(seeds, n_words)
    n_slots = n_words // 2 - 1
    tab = _window_tables(_as_u64(words, start % 2, n_slots), n_slots, exp_lambda[seeds])
    del words
    rows = seeds.size
    left = steps - out.done[seeds]
    pos = np.arange(rows, dtype=np.int64) * tab.width + start // 2
    first = pos.copy()
    made = np.zeros(rows, dtype=np.int64)
    visited = np.empty((n_slots // 2 + 1, rows), dtype=np.int64)  # a step takes >= 2 u64s
    may_finish = bool(np.min(left) < visited.shape[0])
    nxt = np.empty(rows, dtype=np.int64)
    ok = np.empty(rows, dtype=bool)
    for it in range(visited.shape[0]):
        tab.next_step.take(pos, out=nxt)
        np.less(nxt, _HUGE, out=ok)
        if may_finish:
            ok &= made < left
        visited[it] = pos
        np.copyto(pos, nxt, where=ok)
        made += ok
        if it % 8 == 7 and not ok.any():
            break
    streams.advance(seeds, 2 * (pos - first))

    # Read off the values at the visited positions (entries seed-major, steps in order).
    take = np.arange(visited.shape[0])[None, :] < made[:, None]
    step_pos = visited[: max(int(made.max()), 0)].T[take[:, : max(int(made.max()), 0)]]
    row = np.repeat(np.arange(rows), made)
    seed = seeds[row]
    t = out.done[seed] + (np.arange(row.size) - np.repeat(np.cumsum(made) - made, made))
    out.gbm_normal[seed, t] = tab.normal[step_pos]
    a = step_pos + tab.length[step_pos]
    c = tab.count[a]
    out.count[seed, t] = c
    total = int(c.sum())
    if total:
        order_seed = np.repeat(seed, c)
        per_row = np.bincount(row, weights=c, minlength=rows).astype(np.int64)
        first_order = np.repeat(np.cumsum(per_row) - per_row, per_row)
        slot = out.n_orders[order_seed] + np.arange(total) - first_order
        out.reserve(int(slot.max()) + 1)
        entry_first = np.cumsum(c) - c  # index of each step's first order in this round
        order_pos = np.empty(total, dtype=np.int64)
        at = a + c + 1
        live = np.flatnonzero(c > 0)
        k = 0
        while live.size:
            o = at[live]
            order_pos[entry_first[live] + k] = o
            at[live] = tab.next_order.take(o)
            k += 1
            live = live[c[live] > k]
        out.is_buy[order_seed, slot] = tab.is_buy.take(order_pos)
        out.normal[order_seed, slot] = tab.normal.take(order_pos + 1)
        out.n_orders[seeds] += per_row
    out.done[seeds] += made
    return made


def _scalar_step(streams: Keystreams, out: _Out, seed: int, exp_lambda: float) -> None:
    """One step of one seed drawn value by value (a step longer than a whole window)."""
    rng = streams.scalar(seed)
    t = int(out.done[seed])
    out.gbm_normal[seed, t] = _scalar_normal(rng)
    c = _scalar_poisson(rng, exp_lambda)
    out.count[seed, t] = c
    n = int(out.n_orders[seed])
    out.reserve(n + c)
    for k in range(c):
        out.is_buy[seed, n + k] = rng.next_u64() < (1 << 63)
        out.normal[seed, n + k] = _scalar_normal(rng)
    out.n_orders[seed] += c
    out.done[seed] += 1
    streams.cursor[seed] = rng.position


def _generate(seeds, steps: int, budget: int) -> Tape:
    if isinstance(seeds, np.ndarray) and seeds.dtype == np.uint64:
        seed_arr = seeds.reshape(-1).copy()
    else:
        seed_arr = np.array([parse_seed(s) for s in seeds], dtype=np.uint64)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if seed_arr.size == 0:
        raise ValueError("no seeds given")
    group = max(1, budget // (2 * _MIN_WINDOW))  # bounds the scratch memory of one round
    parts = [_generate_group(seed_arr[lo : lo + group], int(steps), budget)
             for lo in range(0, seed_arr.size, group)]
    if len(parts) == 1:
        return parts[0]
    width = max(p.order_size.shape[1] for p in parts)

    def widen(a: np.ndarray) -> np.ndarray:
        return np.pad(a, ((0, 0), (0, width - a.shape[1])))

    return Tape(
        seeds=seed_arr,
        params=MarketParams(*(np.concatenate(f) for f in zip(*(p.params for p in parts)))),
        gbm_factor=np.concatenate([p.gbm_factor for p in parts]),
        order_start=np.concatenate([p.order_start for p in parts]),
        order_is_buy=np.concatenate([widen(p.order_is_buy) for p in parts]),
        order_size=np.concatenate([widen(p.order_size) for p in parts]),
    )


def _generate_group(seed_arr: np.ndarray, steps: int, budget: int) -> Tape:
    n = seed_arr.size
    streams = Keystreams(seed_arr)
    sigma, lam, size_mean, fee, liq = _params(streams)
    _check_poisson_lambda(lam)
    exp_lambda = musl_math.exp(-lam)
    out = _Out(n, steps, lam)
    while True:
        active = np.flatnonzero(out.done < steps)
        if active.size == 0:
            break
        need = int(np.max(steps - out.done[active])) * _WORDS_PER_STEP + 2 * WORDS_PER_BLOCK
        n_words = min(max(budget // active.size, _MIN_WINDOW), _MAX_WINDOW, max(need, _MIN_WINDOW))
        n_words = -(-n_words // WORDS_PER_BLOCK) * WORDS_PER_BLOCK
        made = _walk_round(streams, out, active, exp_lambda, steps, n_words)
        for seed in active[made == 0].tolist():  # the next step alone outgrows a window
            _scalar_step(streams, out, seed, float(exp_lambda[seed]))

    # GBM: price *= exp((-0.5 * sigma) * sigma + sigma * z), glibc exp, two separate roundings
    drift = ((-0.5 * sigma) * sigma)[:, None]
    exponent = (drift + sigma[:, None] * out.gbm_normal).ravel()
    factor = np.fromiter(map(math.exp, exponent.tolist()), np.float64, exponent.size)

    # Orders: LogNormal(mu, 1.2) = libm exp(mu + 1.2 * z), mu = ln(mean) - 0.5 * 1.2 * 1.2
    width = max(1, int(out.n_orders.max()))
    has = np.arange(width)[None, :] < out.n_orders[:, None]
    mu = np.array([math.log(m) - 0.5 * SIGMA_LN * SIGMA_LN for m in size_mean.tolist()])
    order_size = np.zeros((n, width))
    z = out.normal[:, :width][has]
    exponent = np.repeat(mu, out.n_orders) + SIGMA_LN * z
    order_size[has] = np.concatenate(  # in cache-sized pieces: musl_math.exp makes many passes
        [musl_math.exp(exponent[i : i + 65536]) for i in range(0, exponent.size, 65536)] or [z])
    order_is_buy = np.where(has, out.is_buy[:, :width], False)

    order_start = np.zeros((n, steps + 1), dtype=np.int64)
    np.cumsum(out.count, axis=1, out=order_start[:, 1:])
    return Tape(
        seeds=seed_arr,
        params=MarketParams(sigma, lam, size_mean, fee, liq),
        gbm_factor=factor.reshape(n, steps),
        order_start=order_start,
        order_is_buy=order_is_buy,
        order_size=order_size,
    )
