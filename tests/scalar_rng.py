"""A deliberately plain, one-seed-at-a-time port of the reference's random draws.

It is the test oracle for the vectorized tape: written for readability, not speed, straight
from the algorithms (ChaCha8 with a 64-bit block counter, PCG32 seeding, rand 0.8's uniform
and Bernoulli samplers, rand_distr 0.4's ziggurat normal, Knuth Poisson and log-normal).
"""

from __future__ import annotations

import math
import struct

from propamm_jax import musl_math

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF


from propamm_jax.ziggurat import ZIG_F, ZIG_R, ZIG_X  # noqa: E402  (shared data, checked by the golden tests)


def _rotl(v, c):
    return ((v << c) & M32) | (v >> (32 - c))


def chacha8_block(key_words, counter):
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574, *key_words,
         counter & M32, counter >> 32, 0, 0]
    x = list(s)

    def qr(a, b, c, d):
        x[a] = (x[a] + x[b]) & M32; x[d] = _rotl(x[d] ^ x[a], 16)
        x[c] = (x[c] + x[d]) & M32; x[b] = _rotl(x[b] ^ x[c], 12)
        x[a] = (x[a] + x[b]) & M32; x[d] = _rotl(x[d] ^ x[a], 8)
        x[c] = (x[c] + x[d]) & M32; x[b] = _rotl(x[b] ^ x[c], 7)

    for _ in range(4):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
    return [(a + b) & M32 for a, b in zip(x, s)]


def pcg32_seed(state):
    words = []
    for _ in range(8):
        state = (state * 6364136223846793005 + 11634580027462260723) & M64
        xorshifted = (((state >> 18) ^ state) >> 27) & M32
        rot = state >> 59
        words.append(((xorshifted >> rot) | (xorshifted << ((32 - rot) & 31))) & M32)
    return words


def bits_to_f64(bits):
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def f64_to_bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


class ChaCha8:
    def __init__(self, seed: int):
        self.key = pcg32_seed(seed)
        self.counter = 0
        self.buf = []
        self.idx = 0

    def next_u32(self):
        if self.idx >= len(self.buf):
            self.buf = chacha8_block(self.key, self.counter)
            self.counter += 1
            self.idx = 0
        v = self.buf[self.idx]
        self.idx += 1
        return v

    def next_u64(self):
        lo = self.next_u32()
        return lo | (self.next_u32() << 32)

    def f64(self):  # Standard: 53 high bits
        return (self.next_u64() >> 11) * (1.0 / (1 << 53))

    def open01(self):
        return bits_to_f64((self.next_u64() >> 12) | (1023 << 52)) - (1.0 - 2.220446049250313e-16 / 2.0)

    def range_f64_inclusive(self, low, high):
        max_rand = bits_to_f64(((M64 >> 12)) | (1023 << 52)) - 1.0
        scale = (high - low) / max_rand
        while scale * max_rand + low > high:
            scale = bits_to_f64(f64_to_bits(scale) - 1)
        value0_1 = bits_to_f64((self.next_u64() >> 12) | (1023 << 52)) - 1.0
        return value0_1 * scale + low

    def range_u32_inclusive(self, low, high):
        rng = (high - low + 1) & M32
        lz = 32 - rng.bit_length()
        zone = ((rng << lz) - 1) & M32
        while True:
            m = self.next_u32() * rng
            if (m & M32) <= zone:
                return low + (m >> 32)

    def bool_half(self):
        return self.next_u64() < int(0.5 * 2.0 * (1 << 63))

    def standard_normal(self):
        while True:
            bits = self.next_u64()
            i = bits & 0xFF
            u = bits_to_f64((bits >> 12) | (1024 << 52)) - 3.0
            x = u * ZIG_X[i]
            if abs(x) < ZIG_X[i + 1]:
                return x
            if i == 0:
                xx, yy = 1.0, 0.0
                while -2.0 * yy < xx * xx:
                    xx = musl_math.log(self.open01()) / ZIG_R
                    yy = musl_math.log(self.open01())
                return xx - ZIG_R if u < 0.0 else ZIG_R - xx
            if ZIG_F[i + 1] + (ZIG_F[i] - ZIG_F[i + 1]) * self.f64() < float(musl_math.exp(-x * x / 2.0)):
                return x

    def poisson_small(self, lam):
        exp_lambda = float(musl_math.exp(-lam))
        result, p = 0.0, 1.0
        while p > exp_lambda:
            p = p * self.f64()
            result += 1.0
        return result - 1.0


def scalar_tape(seed: int, steps: int, p0: float = 100.0):
    """(params, fair prices, per-step list of (is_buy, size)) for one seed."""
    rng = ChaCha8(seed)
    sigma = rng.range_f64_inclusive(0.0001, 0.0070)
    lam = rng.range_f64_inclusive(0.4, 1.2)
    osm = rng.range_f64_inclusive(12.0, 28.0)
    fee = rng.range_u32_inclusive(30, 80)
    liq = rng.range_f64_inclusive(0.4, 2.0)
    mu = math.log(osm) - 0.5 * 1.2 * 1.2
    price, prices, orders = p0, [], []
    for _ in range(steps):
        z = rng.standard_normal()
        price = price * math.exp(-0.5 * sigma * sigma + sigma * z)
        prices.append(price)
        count = int(rng.poisson_small(lam))
        step_orders = []
        for _ in range(count):
            is_buy = rng.bool_half()
            step_orders.append((is_buy, float(musl_math.exp(mu + 1.2 * rng.standard_normal()))))
        orders.append(step_orders)
    return (sigma, lam, osm, fee, liq), prices, orders
