"""ChaCha8 word streams for many seeds at once, as `ChaCha8Rng::seed_from_u64` produces them.

The reference draws everything from rand_chacha 0.3's `ChaCha8Rng`. Three facts make its output
one flat stream of 32-bit words per seed, which is what lets the tape be generated in bulk:

- `seed_from_u64` is rand_core 0.6's default (rand_chacha does not override it): eight PCG32
  outputs become the 256-bit key; the nonce is zero and the block counter is 64-bit
  (state words 12-13), starting at 0.
- The block buffer (four 16-word blocks per refill, still in counter order) hands out words
  one at a time; `next_u32` takes one word.
- `next_u64` takes two consecutive words, low word first, and does so across a refill too
  (the last word of one buffer becomes the low half, the first word of the next the high
  half), so no word is ever skipped, whatever mixture of u32 and u64 draws came before.

So a draw is fully described by a word position. `Keystreams` keeps one cursor per seed and
materialises only a window of words around it, generated in bulk with NumPy; `ScalarStream`
is the same stream read one draw at a time, for the rare draw that does not fit a window.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

WORDS_PER_BLOCK = 16
_SIGMA = np.array([0x61707865, 0x3320646E, 0x79622D32, 0x6B206574], np.uint32)  # "expand 32-byte k"
_PCG_MUL = np.uint64(6364136223846793005)
_PCG_INC = np.uint64(11634580027462260723)
_DOUBLE_ROUNDS = 4  # ChaCha8
_CHUNK = 32768  # blocks per vectorised pass (measured best: larger passes amortise call overhead)


def pcg32_keys(seeds: Iterable[int] | np.ndarray) -> np.ndarray:
    """The ChaCha key of `seed_from_u64(seed)` for each seed, as eight words: uint32 [S, 8]."""
    state = np.array(seeds, dtype=np.uint64).reshape(-1)
    keys = np.empty((state.size, 8), dtype=np.uint32)
    with np.errstate(over="ignore"):
        for k in range(8):
            state = state * _PCG_MUL + _PCG_INC  # wraps mod 2^64, as wrapping_mul/add
            xorshifted = (((state >> np.uint64(18)) ^ state) >> np.uint64(27)).astype(np.uint32)
            rot = (state >> np.uint64(59)).astype(np.uint32)
            left = (np.uint32(32) - rot) & np.uint32(31)  # rotate_right(rot); rot 0 leaves x as is
            keys[:, k] = (xorshifted >> rot) | (xorshifted << left)
    return keys


def _blocks(key_cols: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """ChaCha8 blocks, one per column: keys uint32 [8, N], counters uint64 [N] -> uint32 [16, N]."""
    n = counters.size
    x = np.empty((16, n), dtype=np.uint32)
    x[0:4] = _SIGMA[:, None]
    x[4:12] = key_cols
    x[12] = (counters & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    x[13] = (counters >> np.uint64(32)).astype(np.uint32)
    x[14:16] = 0
    start = x.copy()
    tmp = np.empty(n, dtype=np.uint32)
    r = list(x)  # row views, updated in place

    def rotate(v: np.ndarray, c: int) -> None:
        np.right_shift(v, 32 - c, out=tmp)
        np.left_shift(v, c, out=v)
        np.bitwise_or(v, tmp, out=v)

    def quarter(a: int, b: int, c: int, d: int) -> None:
        ra, rb, rc, rd = r[a], r[b], r[c], r[d]
        ra += rb; rd ^= ra; rotate(rd, 16)
        rc += rd; rb ^= rc; rotate(rb, 12)
        ra += rb; rd ^= ra; rotate(rd, 8)
        rc += rd; rb ^= rc; rotate(rb, 7)

    for _ in range(_DOUBLE_ROUNDS):
        quarter(0, 4, 8, 12); quarter(1, 5, 9, 13); quarter(2, 6, 10, 14); quarter(3, 7, 11, 15)
        quarter(0, 5, 10, 15); quarter(1, 6, 11, 12); quarter(2, 7, 8, 13); quarter(3, 4, 9, 14)
    x += start
    return x


def keystream(keys: np.ndarray, first_block: int | np.ndarray, n_blocks: int) -> np.ndarray:
    """Words of blocks `first_block ..< first_block + n_blocks` of each key: uint32 [S, 16 * n].

    `first_block` is one block index for every key, or one per key (int array [S]).
    """
    keys = np.asarray(keys, dtype=np.uint32).reshape(-1, 8)
    s = keys.shape[0]
    first = np.broadcast_to(np.asarray(first_block, dtype=np.uint64), (s,))
    out = np.empty((s, n_blocks, WORDS_PER_BLOCK), dtype=np.uint32)
    if s == 0 or n_blocks == 0:
        return out.reshape(s, n_blocks * WORDS_PER_BLOCK)
    # column j of the flat problem is block (j % n_blocks) of key (j // n_blocks)
    total = s * n_blocks
    for lo in range(0, total, _CHUNK):
        cols = np.arange(lo, min(lo + _CHUNK, total), dtype=np.int64)
        row = cols // n_blocks
        counters = first[row] + (cols - row * n_blocks).astype(np.uint64)
        block = _blocks(keys[row].T, counters)
        out.reshape(total, WORDS_PER_BLOCK)[lo : lo + cols.size] = block.T
    return out.reshape(s, n_blocks * WORDS_PER_BLOCK)


class Keystreams:
    """One ChaCha8 word stream per seed, each with its own cursor (a word index).

    `window` materialises, for some of the seeds, the words from (just before) the cursor on;
    the caller consumes them and moves the cursors with `advance`.
    """

    def __init__(self, seeds: Iterable[int] | np.ndarray):
        self.keys = pcg32_keys(seeds)
        self.cursor = np.zeros(self.keys.shape[0], dtype=np.int64)

    def window(self, rows: np.ndarray, n_words: int) -> tuple[np.ndarray, np.ndarray]:
        """(words uint32 [len(rows), n_words], offset of each cursor in its row).

        Each row starts at the block holding the cursor, so the offset is below 16; `n_words`
        must be a multiple of 16.
        """
        if n_words % WORDS_PER_BLOCK:
            raise ValueError("n_words must be a multiple of 16")
        first = self.cursor[rows] // WORDS_PER_BLOCK
        words = keystream(self.keys[rows], first, n_words // WORDS_PER_BLOCK)
        return words, self.cursor[rows] - first * WORDS_PER_BLOCK

    def advance(self, rows: np.ndarray, n_words: np.ndarray) -> None:
        self.cursor[rows] += n_words

    def scalar(self, row: int) -> "ScalarStream":
        """The stream of one seed, from its cursor, read one draw at a time."""
        return ScalarStream(self.keys[row], int(self.cursor[row]))


class ScalarStream:
    """One seed's word stream read draw by draw (blocks generated as needed)."""

    def __init__(self, key: np.ndarray, position: int = 0):
        self.key = np.asarray(key, dtype=np.uint32).reshape(1, 8)
        self.position = position
        self._block = -1
        self._words: list[int] = []

    def next_u32(self) -> int:
        block, offset = divmod(self.position, WORDS_PER_BLOCK)
        if block != self._block:
            self._words = keystream(self.key, block, 1)[0].tolist()
            self._block = block
        self.position += 1
        return self._words[offset]

    def next_u64(self) -> int:
        low = self.next_u32()
        return low | (self.next_u32() << 32)
