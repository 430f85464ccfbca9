"""The 256-layer ziggurat tables of rand_distr's StandardNormal, computed here.

They follow Marsaglia & Tsang's construction with Doornik's (2005) R and V. The reference
compiles a printed copy of the tables (18 digits after the decimal point), so the values are
rounded the same way; one entry of the printed F table was produced by a libm whose exp is one
ulp below glibc's, and is set to the printed value.
"""

from __future__ import annotations

import math

import numpy as np

_R = 3.6541528853610088
_V = 0.00492867323399
_LAYERS = 256


def _tables() -> tuple[float, np.ndarray, np.ndarray]:
    def pdf(x: float) -> float:
        return math.exp(-x * x / 2.0)

    x = [0.0] * (_LAYERS + 1)
    x[0] = _V / pdf(_R)
    x[1] = _R
    for i in range(2, _LAYERS):
        x[i] = math.sqrt(-2.0 * math.log(_V / x[i - 1] + pdf(x[i - 1])))

    def printed(v: float) -> float:
        return float("%.18f" % v)

    f = [printed(pdf(v)) for v in x]
    f[94] = 0.206405406398679298
    return printed(_R), np.array([printed(v) for v in x]), np.array(f)


ZIG_R, ZIG_X, ZIG_F = _tables()
