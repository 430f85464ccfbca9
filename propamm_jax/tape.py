"""The market tape: every random draw of one reference simulation, generated once per seed.

A tape holds the market parameters, the GBM factor of every step (the fair price path follows
from the initial price) and the retail orders of every step (side, size). It depends on the
seed only, never on the strategies, and every engine mode reads the same one.

The draws reproduce rand 0.8.5 / rand_chacha 0.3.1 / rand_distr 0.4.3 exactly. After the five
market parameters, every draw consumes whole u64s: the ziggurat normal (one u64, plus one per
rejection test), Knuth's Poisson (count + 1 uniforms), the order side (one u64). So the
stream is cut into u64s and each quantity is computed at *every* stream position at once,
vectorized ("what would a normal starting here be, and how long is it?"); a short scalar pass
then walks the steps, picking the values at the positions actually reached. exp and ln are
glibc's (Python's `math`) where the engine calls std, and the `libm` crate's (`musl_math`)
inside rand_distr, exactly as the reference build links them.
"""

from __future__ import annotations

import math
from typing import Iterable, NamedTuple

import numpy as np

from propamm_jax import musl_math
from propamm_jax.chacha import keystream, pcg32_keys
from propamm_jax.ziggurat import ZIG_F, ZIG_R, ZIG_X

U64_MAX = 2**64 - 1
_EXP1 = np.uint64(1023 << 52)
_EXP2 = np.uint64(1024 << 52)
_EPS = 2.220446049250313e-16
_POISSON_WINDOW = 24
_SIGMA_LN = 1.2


class MarketParams(NamedTuple):
    """Per-seed market parameters, arrays of shape [S]."""

    sigma: np.ndarray
    lam: np.ndarray
    order_size_mean: np.ndarray
    norm_fee_bps: np.ndarray
    norm_liquidity_mult: np.ndarray


class Tape(NamedTuple):
    """All randomness of S simulations of T steps.

    Orders are in CSR form: the orders of step t of seed s are columns
    `order_start[s, t] : order_start[s, t + 1]` of `order_is_buy[s]` / `order_size[s]`.
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

    def fair_prices(self, initial_price: float = 100.0) -> np.ndarray:
        """The fair price after each step's GBM move, multiplied in order as the reference."""
        path = np.concatenate([np.full((len(self.seeds), 1), initial_price), self.gbm_factor], 1)
        return np.multiply.accumulate(path, axis=1)[:, 1:]

    @property
    def fair_price(self) -> np.ndarray:
        """Fair prices for the default initial price (base reserves 10 000 Y / 100 X)."""
        return self.fair_prices(100.0)


def parse_seed(value) -> int:
    """A u64 seed from an int or a decimal string; anything else is a one-line ValueError."""
    if isinstance(value, (bool, float)) or value is None:
        raise ValueError(f"seed {value!r} is not an integer")
    if isinstance(value, (np.integer,)):
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("-").isdigit():
            raise ValueError(f"seed {value!r} is not an integer")
        value = int(text)
    if not isinstance(value, int):
        raise ValueError(f"seed {value!r} is not an integer")
    if not 0 <= value <= U64_MAX:
        raise ValueError(f"seed {value} is outside u64 (0..{U64_MAX})")
    return value


# ─── draws from a word stream (scalar; used for the five parameters) ──────────────────────


class _Words:
    def __init__(self, words: np.ndarray):
        self.words = words.tolist()
        self.pos = 0

    def u32(self) -> int:
        v = self.words[self.pos]
        self.pos += 1
        return v

    def u64(self) -> int:
        lo = self.u32()
        return lo | (self.u32() << 32)


def _bits_f64(bits: int) -> float:
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def _uniform_inclusive(w: _Words, low: float, high: float) -> float:
    """rand 0.8 `gen_range(low..=high)` for f64 (UniformFloat::new_inclusive + sample)."""
    max_rand = _bits_f64((U64_MAX >> 12) | (1023 << 52)) - 1.0
    scale = (high - low) / max_rand
    while scale * max_rand + low > high:
        scale = _bits_f64(int(np.array([scale]).view(np.uint64)[0]) - 1)
    return (_bits_f64((w.u64() >> 12) | (1023 << 52)) - 1.0) * scale + low


def _uniform_u32_inclusive(w: _Words, low: int, high: int) -> int:
    """rand 0.8 `gen_range(low..=high)` for u32 (widening multiply, rejection zone)."""
    span = (high - low + 1) & 0xFFFFFFFF
    zone = ((span << (32 - span.bit_length())) - 1) & 0xFFFFFFFF
    while True:
        m = w.u32() * span
        if m & 0xFFFFFFFF <= zone:
            return low + (m >> 32)


# ─── every quantity at every u64 position (vectorized) ───────────────────────────────────


def _u64_stream(words: np.ndarray, offset: int) -> np.ndarray:
    n = (len(words) - offset) // 2
    pairs = words[offset : offset + 2 * n].astype(np.uint64).reshape(n, 2)
    return pairs[:, 0] | (pairs[:, 1] << np.uint64(32))


def _open01(bits: int) -> float:
    return _bits_f64((bits >> 12) | (1023 << 52)) - (1.0 - _EPS / 2.0)


def _normals(d: np.ndarray) -> tuple[list, list]:
    """For each position k: (length in u64s, value) of a StandardNormal drawn from d[k:].

    Length -1 means the stream ends before the draw does.
    """
    n = len(d)
    i = (d & np.uint64(0xFF)).astype(np.int64)
    u = ((d >> np.uint64(12)) | _EXP2).view(np.float64) - 3.0
    x = u * ZIG_X[i]
    length = np.where(np.abs(x) < ZIG_X[i + 1], 1, 0)
    value = x.copy()
    slow = np.flatnonzero(length == 0)
    unif = (d >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    layer0 = slow[i[slow] == 0]
    for k in layer0.tolist():
        length[k], value[k] = _zero_case(d, k, float(u[k]))
    test = slow[(i[slow] != 0) & (slow + 1 < n)]
    cut = slow[(i[slow] != 0) & (slow + 1 >= n)]
    length[cut] = -1
    xs, it = x[test], i[test]
    density = musl_math.exp(-xs * xs / 2.0)
    accept = ZIG_F[it + 1] + (ZIG_F[it] - ZIG_F[it + 1]) * unif[test + 1] < density
    length[test[accept]] = 2
    pending = test[~accept].tolist()
    # A rejection restarts the draw two positions later. Resolve chains right to left.
    for k in sorted(pending, reverse=True):
        nxt = k + 2
        if nxt >= n or length[nxt] <= 0:
            length[k] = -1
        else:
            length[k] = 2 + length[nxt]
            value[k] = value[nxt]
    return length.tolist(), value.tolist()


def _zero_case(d: np.ndarray, k: int, u: float) -> tuple[int, float]:
    """The ziggurat's tail (layer 0): Open01 pairs until accepted."""
    x, y, j = 1.0, 0.0, k + 1
    while -2.0 * y < x * x:
        if j + 1 >= len(d):
            return -1, 0.0
        x = musl_math.log(_open01(int(d[j]))) / ZIG_R
        y = musl_math.log(_open01(int(d[j + 1])))
        j += 2
    return j - k, (x - ZIG_R if u < 0.0 else ZIG_R - x)


def _poisson_counts(d: np.ndarray, lam: float) -> list:
    """For each position k: the Knuth Poisson count drawn from d[k:] (-1 if cut off)."""
    threshold = float(musl_math.exp(-lam))
    unif = (d >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    n = len(d)
    p = np.ones(n)
    count = np.full(n, -1, dtype=np.int64)
    for j in range(_POISSON_WINDOW):
        shifted = np.ones(n)
        shifted[: n - j] = unif[j:]
        p = p * shifted
        hit = (count < 0) & (p <= threshold) & (np.arange(n) + j < n)
        count[hit] = j
    return count.tolist()


class _StreamTooShort(Exception):
    pass


def _walk(d: np.ndarray, steps: int, lam: float):
    """Follows one seed's draws through `steps` steps; returns (gbm z, counts, sides, order z)."""
    nl, z = _normals(d)
    pc = _poisson_counts(d, lam)
    buy = (d < np.uint64(1 << 63)).tolist()
    n = len(d)
    gbm_z = [0.0] * steps
    counts = [0] * steps
    sides, order_z = [], []
    pos = 0
    try:
        for t in range(steps):
            length = nl[pos]
            if length < 0:
                raise _StreamTooShort
            gbm_z[t] = z[pos]
            pos += length
            c = pc[pos]
            if c < 0:
                raise _StreamTooShort
            pos += c + 1
            counts[t] = c
            for _ in range(c):
                sides.append(buy[pos])
                length = nl[pos + 1]
                if length < 0:
                    raise _StreamTooShort
                order_z.append(z[pos + 1])
                pos += 1 + length
    except IndexError:
        raise _StreamTooShort from None
    if pos > n:
        raise _StreamTooShort
    return gbm_z, counts, sides, order_z


def _one_seed(key: np.ndarray, steps: int, words: np.ndarray):
    while True:
        w = _Words(words[:64])  # the five parameters take ~9 words
        sigma = _uniform_inclusive(w, 0.0001, 0.0070)
        lam = _uniform_inclusive(w, 0.4, 1.2)
        size_mean = _uniform_inclusive(w, 12.0, 28.0)
        fee = _uniform_u32_inclusive(w, 30, 80)
        liquidity = _uniform_inclusive(w, 0.4, 2.0)
        try:
            walked = _walk(_u64_stream(words, w.pos), steps, lam)
        except _StreamTooShort:
            words = keystream(key[None, :], 0, 2 * len(words) // 16)[0]
            continue
        return (sigma, lam, size_mean, fee, liquidity), walked


def make_tape(seeds: Iterable[int], steps: int) -> Tape:
    """Generates the tape of each seed for `steps` steps (seeds may be any u64)."""
    seed_list = [parse_seed(s) for s in seeds]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not seed_list:
        raise ValueError("no seeds given")
    keys = pcg32_keys(seed_list)
    # ~10 words per step on average; a seed that needs more regenerates its own stream.
    all_words = keystream(keys, 0, steps + 16)
    params, factors, starts, sides, sizes = [], [], [], [], []
    for row in range(len(seed_list)):
        (sigma, lam, size_mean, fee, liquidity), (gbm_z, counts, side, order_z) = _one_seed(
            keys[row], steps, all_words[row])
        params.append((sigma, lam, size_mean, fee, liquidity))
        zs = np.asarray(gbm_z)
        exponent = (-0.5 * sigma) * sigma + sigma * zs  # separate ufuncs: never fused
        factors.append(np.fromiter(map(math.exp, exponent.tolist()), np.float64, steps))
        mu = math.log(size_mean) - 0.5 * _SIGMA_LN * _SIGMA_LN
        sizes.append(musl_math.exp(mu + _SIGMA_LN * np.asarray(order_z, dtype=np.float64)))
        sides.append(np.asarray(side, dtype=bool))
        starts.append(np.concatenate([[0], np.cumsum(counts)]))
    width = max(1, max(len(s) for s in sizes))
    order_is_buy = np.zeros((len(seed_list), width), dtype=bool)
    order_size = np.zeros((len(seed_list), width))
    for row, (side, size) in enumerate(zip(sides, sizes)):
        order_is_buy[row, : len(side)] = side
        order_size[row, : len(size)] = size
    p = np.asarray(params, dtype=np.float64)
    return Tape(
        seeds=np.asarray(seed_list, dtype=np.uint64),
        params=MarketParams(p[:, 0], p[:, 1], p[:, 2], p[:, 3].astype(np.int64), p[:, 4]),
        gbm_factor=np.stack(factors),
        order_start=np.stack(starts).astype(np.int64),
        order_is_buy=order_is_buy,
        order_size=order_size,
    )
