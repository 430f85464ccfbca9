"""exp and log of the `libm` crate (musl's fdlibm), which part of the reference's rand_distr links.

rand_distr is `no_std` and the reference build enables `num-traits` without `std`, so the
calls rand_distr makes through its generic `F: num_traits::Float` (the log-normal order
sizes' `exp`, the Poisson threshold `exp(-lambda)`) go to the `libm` crate, whose results
differ from glibc's in about 10% of inputs (measured). Calls on a concrete `f64` (the
ziggurat's density test and tail) and the engine's own (`gbm_step`, `order_size_mean.ln()`)
resolve to std, i.e. glibc, which is Python's `math`.

These are the classic fdlibm algorithms, written with NumPy so that each operation rounds
exactly once, as in Rust (no fused multiply-add).
"""

from __future__ import annotations

import numpy as np

_LN2HI = 6.93147180369123816490e-01
_LN2LO = 1.90821492927058770002e-10
_INVLN2 = 1.44269504088896338700e00
_P1 = 1.66666666666666019037e-01
_P2 = -2.77777777770155933842e-03
_P3 = 6.61375632143793436117e-05
_P4 = -1.65339022054652515390e-06
_P5 = 4.13813679705723846039e-08

_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01


def exp(x) -> np.ndarray:
    """Elementwise exp for finite inputs with |x| < 708 (all the tape needs)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size and not np.all(np.abs(x) < 708.0):
        raise ValueError("musl_math.exp: argument outside the supported range |x| < 708")
    hx = ((x.view(np.uint64) >> np.uint64(32)) & np.uint64(0x7FFFFFFF)).astype(np.int64)
    sign = x < 0
    # argument reduction: x = k*ln2 + r, |r| <= 0.5*ln2
    k_big = np.trunc(_INVLN2 * x + np.where(sign, -0.5, 0.5))
    k_mid = np.where(sign, -1.0, 1.0)
    k = np.where(hx > 0x3FD62E42, np.where(hx >= 0x3FF0A2B2, k_big, k_mid), 0.0)
    hi = np.where(k != 0.0, x - k * _LN2HI, x)
    lo = np.where(k != 0.0, k * _LN2LO, 0.0)
    r = np.where(k != 0.0, hi - lo, x)
    xx = r * r
    c = r - xx * (_P1 + xx * (_P2 + xx * (_P3 + xx * (_P4 + xx * _P5))))
    y = 1.0 + (r * c / (2.0 - c) - lo + hi)
    y = np.ldexp(y, k.astype(np.int64))
    tiny = hx <= 0x3E300000  # |x| <= 2^-28
    return np.where(tiny, 1.0 + x, y)


def log(x: float) -> float:
    """Natural log of a positive normal float (the ziggurat tail's only use)."""
    if not (x > 0.0) or x != x or x == float("inf"):
        raise ValueError("musl_math.log: argument must be positive and finite")
    ui = int(np.float64(x).view(np.uint64))
    hx = ui >> 32
    k = 0
    if hx < 0x00100000:  # subnormal: scale up
        k -= 54
        x *= float.fromhex("0x1p54")
        ui = int(np.float64(x).view(np.uint64))
        hx = ui >> 32
    elif hx == 0x3FF00000 and (ui & 0xFFFFFFFF) == 0:
        return 0.0
    hx += 0x3FF00000 - 0x3FE6A09E
    k += (hx >> 20) - 0x3FF
    hx = (hx & 0x000FFFFF) + 0x3FE6A09E
    x = float(np.uint64((hx << 32) | (ui & 0xFFFFFFFF)).view(np.float64))
    f = x - 1.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    r = t2 + t1
    dk = float(k)
    return s * (hfsq + r) + dk * _LN2LO - hfsq + f + dk * _LN2HI
