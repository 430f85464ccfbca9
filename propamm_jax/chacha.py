"""ChaCha8 keystreams for many seeds at once, as rand_chacha 0.3 produces them.

`ChaCha8Rng::seed_from_u64` fills its 32-byte key with PCG32 outputs (rand_core 0.6), the
block counter is 64-bit (words 12-13) and the nonce is zero. rand's block buffer hands out the
32-bit words in order, and a u64 draw takes two consecutive words (low first), across buffer
refills too, so each seed's randomness is one flat word stream.
"""

from __future__ import annotations

import numpy as np

_M64 = (1 << 64) - 1
_CONST = np.array([0x61707865, 0x3320646E, 0x79622D32, 0x6B206574], dtype=np.uint32)


def pcg32_keys(seeds: list[int]) -> np.ndarray:
    """The 8 key words of `seed_from_u64` for each seed: uint32 [S, 8]."""
    keys = np.empty((len(seeds), 8), dtype=np.uint32)
    for row, state in enumerate(seeds):
        for k in range(8):
            state = (state * 6364136223846793005 + 11634580027462260723) & _M64
            xorshifted = (((state >> 18) ^ state) >> 27) & 0xFFFFFFFF
            rot = state >> 59
            keys[row, k] = ((xorshifted >> rot) | (xorshifted << ((32 - rot) & 31))) & 0xFFFFFFFF
    return keys


def _rotl(v: np.ndarray, c: int) -> np.ndarray:
    return (v << np.uint32(c)) | (v >> np.uint32(32 - c))


def keystream(keys: np.ndarray, first_block: int, n_blocks: int) -> np.ndarray:
    """Words of blocks [first_block, first_block + n_blocks) for every key: uint32 [S, 16*n]."""
    s = keys.shape[0]
    counter = np.arange(first_block, first_block + n_blocks, dtype=np.uint64)
    state = np.empty((16, s, n_blocks), dtype=np.uint32)
    state[0:4] = _CONST[:, None, None]
    state[4:12] = keys.T[:, :, None]
    state[12] = (counter & np.uint64(0xFFFFFFFF)).astype(np.uint32)[None, :]
    state[13] = (counter >> np.uint64(32)).astype(np.uint32)[None, :]
    state[14:16] = 0
    x = [state[i].copy() for i in range(16)]

    def quarter(a, b, c, d):
        x[a] += x[b]; x[d] = _rotl(x[d] ^ x[a], 16)
        x[c] += x[d]; x[b] = _rotl(x[b] ^ x[c], 12)
        x[a] += x[b]; x[d] = _rotl(x[d] ^ x[a], 8)
        x[c] += x[d]; x[b] = _rotl(x[b] ^ x[c], 7)

    for _ in range(4):  # ChaCha8: four double rounds
        quarter(0, 4, 8, 12); quarter(1, 5, 9, 13); quarter(2, 6, 10, 14); quarter(3, 7, 11, 15)
        quarter(0, 5, 10, 15); quarter(1, 6, 11, 12); quarter(2, 7, 8, 13); quarter(3, 4, 9, 14)
    out = np.stack([x[i] + state[i] for i in range(16)], axis=-1)  # [S, n_blocks, 16]
    return out.reshape(s, n_blocks * 16)
