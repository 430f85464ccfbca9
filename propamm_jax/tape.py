"""The market tape: every random draw of one reference simulation, generated once per seed.

A tape holds the market parameters, the GBM factor of every step (the fair-price path follows
from the initial price) and the retail orders of every step (side, size). It depends on the
seed only, never on the strategies, so every engine mode reads the same one.

The draws must be bit-identical to rand 0.8.5 / rand_chacha 0.3.1 / rand_distr 0.4.3, and a
Python loop over draws is far too slow, so the work is split in two:

1. Every draw after the five market parameters consumes whole u64s at some word position of
   the seed's ChaCha8 stream (see `chacha`). For a window of the stream, what a draw starting
   at *each* word would give is computed at once, vectorised over all windows of all seeds:
   the ziggurat normal (value and length), the Knuth Poisson count, the order side, and from
   those where a whole step starting there would end.
2. A short loop then walks the steps of all seeds together, one gather per step, and the
   values at the positions actually reached are read off.

A step that does not fit in a window is drawn one value at a time from the stream instead.

Where the engine calls std's `exp`/`ln` (the GBM factor, `order_size_mean.ln()`) and where
rand_distr calls them on a concrete f64 (the ziggurat's density test and its tail), Rust
resolves to std's inherent methods, i.e. glibc, which is Python's `math`. Where rand_distr
calls them through its generic `F: num_traits::Float` (Poisson's `exp(-lambda)`, LogNormal's
`exp`), num-traits is built without `std` and forwards to the `libm` crate (`musl_math`).
"""

from __future__ import annotations

import math
import struct
from typing import Iterable, NamedTuple

import numpy as np

from propamm_jax import musl_math
from propamm_jax._ziggurat_tables import ZIG_F, ZIG_R, ZIG_X
from propamm_jax.chacha import WORDS_PER_BLOCK, Keystreams, ScalarStream, keystream

U64_MAX = 2**64 - 1
INITIAL_PRICE = 10_000e9 / 100e9  # base reserves Y / X, as the engine computes it (100.0)
SIGMA_LN = 1.2

_X = np.array(ZIG_X)
_F = np.array(ZIG_F)
_EXP_1_2 = np.uint64(1023 << 52)  # exponent bits of [1, 2)
_EXP_2_4 = np.uint64(1024 << 52)  # exponent bits of [2, 4)
_HALF_EPS = 2.220446049250313e-16 / 2.0
_HALF_U64 = np.uint64(1 << 63)  # gen_bool(0.5): p_int = (0.5 * 2^64) as u64
_HUGE = 1 << 40  # "not resolvable inside this window" (a length, a count or a position)
_PAD = 8  # dead words after each window row, so look-ahead never reaches the next row
_BUDGET = 1 << 20  # window words per round, over all seeds (~100 bytes of scratch each)
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
        """f64 [S, T]: the price after the GBM step of each step (base reserves 10 000 Y / 100 X)."""
        return self.fair_prices(INITIAL_PRICE)


def parse_seed(value) -> int:
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
    """The tapes of `seeds` (any u64s: ints, decimal strings or a uint64 array), `steps` steps each."""
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
                tx = math.log(_f64((rng.next_u64() >> 12) | (1023 << 52)) - (1.0 - _HALF_EPS)) / ZIG_R
                ty = math.log(_f64((rng.next_u64() >> 12) | (1023 << 52)) - (1.0 - _HALF_EPS))
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
    for row in pending.tolist():  # > 50 fee rejections in a row: never seen, but exact anyway
        rng = ScalarStream(streams.keys[row], 0)
        sigma[row], lam[row], size[row], fee[row], liq[row] = _scalar_params(rng)
        streams.cursor[row] = rng.position
    return sigma, lam, size, fee, liq


class _Window(NamedTuple):
    """Draw tables for every word offset of a set of window rows, flattened row-major.

    A position is a flat index `row * width + offset`. `length`, `count` and the next-positions
    are `_HUGE` where the draw runs past the row's words.
    """

    width: int
    normal: np.ndarray       # f64: the StandardNormal drawn from here
    length: np.ndarray       # int64: words that normal consumes
    count: np.ndarray        # int64: the Poisson count drawn from here (consumes 2 * (count + 1))
    is_buy: np.ndarray       # bool: gen_bool(0.5) drawn from here
    next_order: np.ndarray   # int64: position after an order (side, then log-normal) from here
    next_step: np.ndarray    # int64: position after a whole step from here


def _window_tables(words: np.ndarray, exp_lambda: np.ndarray) -> _Window:
    rows, n_words = words.shape
    width = n_words + _PAD
    size = rows * width
    w64 = np.zeros((rows, width + 1), dtype=np.uint64)
    w64[:, :n_words] = words
    bits = (w64[:, :-1] | (w64[:, 1:] << np.uint64(32))).reshape(size)
    del w64
    has_u64 = np.zeros((rows, width), dtype=bool)
    has_u64[:, : n_words - 1] = True
    has_u64 = has_u64.reshape(size)
    u01 = (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))  # Standard f64

    # StandardNormal: rand_distr's ziggurat
    layer = (bits & np.uint64(0xFF)).astype(np.intp)
    u = ((bits >> np.uint64(12)) | _EXP_2_4).view(np.float64) - 3.0
    x = u * _X[layer]
    normal = x.copy()
    length = np.full(size, _HUGE, dtype=np.int64)
    fast = has_u64 & (np.abs(x) < _X[layer + 1])
    length[fast] = 2
    slow = np.flatnonzero(has_u64 & ~fast)
    del fast
    wedge = slow[(layer[slow] != 0) & has_u64[slow + 2]]
    xs, ls = x[wedge], layer[wedge]
    density = np.fromiter(map(math.exp, ((-xs) * xs / 2.0).tolist()), np.float64, xs.size)
    accept = _F[ls + 1] + (_F[ls] - _F[ls + 1]) * u01[wedge + 2] < density
    length[wedge[accept]] = 4
    rejected = wedge[~accept]
    _tails(slow[layer[slow] == 0], bits, u, has_u64, normal, length)
    # A rejected wedge test restarts the draw 4 words on: resolve those chains back to front.
    pending = np.zeros(size, dtype=bool)
    pending[rejected] = True
    while rejected.size:
        target = rejected + 4
        ready = ~pending[target]
        done, target = rejected[ready], target[ready]
        length[done] = np.where(length[target] >= _HUGE, _HUGE, length[target] + 4)
        normal[done] = normal[target]
        pending[done] = False
        rejected = rejected[~ready]
    del x, u, layer, pending

    # Poisson, Knuth's method: multiply uniforms until the product is <= exp(-lambda)
    count = np.full(size, _HUGE, dtype=np.int64)
    live = np.flatnonzero(has_u64)
    threshold = np.repeat(exp_lambda, width)[live]
    product = u01[live]  # 1.0 * u
    k = 0
    while live.size:
        stop = product <= threshold
        count[live[stop]] = k
        live, product, threshold = live[~stop], product[~stop], threshold[~stop]
        k += 1
        nxt = live + 2 * k
        fits = has_u64[nxt]
        live, product, threshold, nxt = live[fits], product[fits], threshold[fits], nxt[fits]
        product = product * u01[nxt]
    del u01, threshold, product

    is_buy = bits < _HALF_U64
    del bits
    pos = np.arange(size, dtype=np.int64)
    # an order: the side (one u64), then the normal of its log-normal size
    after_side = np.minimum(pos + 2, size - 1)
    next_order = np.where(has_u64 & (length[after_side] < _HUGE), pos + 2 + length[after_side], _HUGE)
    # a step: the GBM normal, the Poisson count, then that many orders
    a = pos + length
    c = count.take(a, mode="clip")
    end = np.where(c < _HUGE, a + 2 * c + 2, _HUGE)
    chain = np.flatnonzero((c > 0) & (end < _HUGE))
    at, left = end[chain], c[chain]
    while chain.size:
        at = next_order.take(at, mode="clip")
        left = left - 1
        fin = (left == 0) | (at >= _HUGE)
        end[chain[fin]] = at[fin]
        chain, at, left = chain[~fin], at[~fin], left[~fin]
    next_step = np.where(end < _HUGE, end, _HUGE)
    return _Window(width, normal, length, count, is_buy, next_order, next_step)


def _tails(tail: np.ndarray, bits: np.ndarray, u: np.ndarray, has_u64: np.ndarray,
           normal: np.ndarray, length: np.ndarray) -> None:
    """The ziggurat's base layer (i == 0): Open01 pairs from the tail until one is accepted."""
    if tail.size == 0:
        return
    x = np.ones(tail.size)
    y = np.zeros(tail.size)
    at = tail + 2
    live = np.arange(tail.size)
    while live.size:
        ok = has_u64[at[live]] & has_u64[at[live] + 2]
        live = live[ok]  # the others run past the window: left unresolved
        if live.size == 0:
            break
        pair = np.stack([at[live], at[live] + 2])
        open01 = ((bits[pair] >> np.uint64(12)) | _EXP_1_2).view(np.float64) - (1.0 - _HALF_EPS)
        logs = np.fromiter(map(math.log, open01.ravel().tolist()), np.float64, open01.size)
        logs = logs.reshape(2, live.size)
        x[live] = logs[0] / ZIG_R
        y[live] = logs[1]
        at[live] += 4
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


def _walk_round(streams: Keystreams, out: _Out, seeds: np.ndarray, exp_lambda: np.ndarray,
                steps: int, n_words: int) -> np.ndarray:
    """Advances `seeds` through as many steps as their windows hold; returns steps made per seed."""
    words, start = streams.window(seeds, n_words)
    tab = _window_tables(words, exp_lambda[seeds])
    del words
    rows = seeds.size
    left = steps - out.done[seeds]
    pos = np.arange(rows, dtype=np.int64) * tab.width + start
    first = pos.copy()
    made = np.zeros(rows, dtype=np.int64)
    visited = np.empty((n_words // 4 + 2, rows), dtype=np.int64)
    for it in range(visited.shape[0]):
        nxt = tab.next_step.take(pos)
        ok = (nxt < _HUGE) & (made < left)
        if not ok.any():
            break
        visited[it] = pos
        pos = np.where(ok, nxt, pos)
        made += ok
    streams.advance(seeds, pos - first)

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
        at = a + 2 * c + 2
        live = np.flatnonzero(c > 0)
        k = 0
        while live.size:
            o = at[live]
            dest = entry_first[live] + k
            out.is_buy[order_seed[dest], slot[dest]] = tab.is_buy[o]
            out.normal[order_seed[dest], slot[dest]] = tab.normal[o + 2]
            at[live] = tab.next_order[o]
            k += 1
            live = live[c[live] > k]
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
    order_size[has] = musl_math.exp(np.repeat(mu, out.n_orders) + SIGMA_LN * z)
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
