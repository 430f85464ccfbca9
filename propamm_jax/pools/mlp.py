"""A small neural fee policy on a constant-product curve: the `mlp` family.

Same features as `dynamic_fee` (`pools/features.py`: volatility, flow share, capital weight,
epoch progress, competitor gap, inventory skew, fair-price deviation), same bounded output,
but the map from features to the two fees is a one-hidden-layer network:

    h = tanh(W1 x + b1)            x: the 7 inputs of `features.inputs`, H hidden units
    (u_buy, u_sell) = W2 h + b2
    fee = fee_min + (fee_max - fee_min) * sigmoid(u)

Tens of parameters (H = 8: 82), trained gradient-free (OpenES, SNES).

Exact export. The Rust submission (`training/export_mlp.py`) computes the same f64
operations in the same order: every sum is sequential (b + w0 x0 + w1 x1 + ...), tanh is
1 - 2 / (exp(2a) + 1) and sigmoid 1 / (1 + exp(-u)), both written out here rather than
jnp.tanh / jax.nn.sigmoid, whose formulas XLA chooses. What is left between the two is the
last ulp of exp/ln and any multiply-add XLA fuses (tests/test_mlp.py measures it).

The default start embeds `dynamic_fee`'s (`bias`, `w_dev`): hidden unit 0 reads 100 x the
deviation, output weights -w_dev / +w_dev tilt the buy and sell fees apart, and the other
units start small and random so the search can use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from propamm_jax.errors import PropammError
from propamm_jax.pools import policy_file
from propamm_jax.pools.constant_product import ConstantProductCurve
from propamm_jax.pools.features import INPUT_NAMES, FeatureTracking, FeeBounds, inputs

FAMILY = "mlp"
VERSION = 1
N_IN = len(INPUT_NAMES)
INIT_NAMES = ("bias", "w_dev")  # what `--init` sets (the embedded dynamic_fee start)


class MLPParams(NamedTuple):
    w1: jnp.ndarray  # [H, N_IN]
    b1: jnp.ndarray  # [H]
    w2: jnp.ndarray  # [2, H]: row 0 the buy fee, row 1 the sell fee
    b2: jnp.ndarray  # [2]


@dataclass(frozen=True)
class MLPFee(FeeBounds, FeatureTracking, ConstantProductCurve):
    """The static configuration is `FeeBounds`'s (fee bounds, epoch length, oracle) and the
    hidden units."""

    hidden: int = 8

    def fees_at(self, params: MLPParams, state, dev):
        """(buy, sell) fee fractions: the network on the features and the deviation `dev`."""
        x = inputs(state, dev)
        u = [params.b2[0], params.b2[1]]
        for h in range(self.hidden):
            a = params.b1[h]
            for j in range(N_IN):
                a = a + params.w1[h, j] * x[j]
            t = 1.0 - 2.0 / (jnp.exp(2.0 * a) + 1.0)
            u = [u[0] + params.w2[0, h] * t, u[1] + params.w2[1, h] * t]
        span = (self.fee_max_bps - self.fee_min_bps) / 10_000.0
        low = self.fee_min_bps / 10_000.0
        return tuple(low + span * (1.0 / (1.0 + jnp.exp(-v))) for v in u)

    # --- the parameter vector (what the evolution strategies search) --------------------

    def size(self) -> int:
        return self.hidden * N_IN + self.hidden + 2 * self.hidden + 2

    def unflatten(self, vec) -> MLPParams:
        """[..., size] (NumPy or JAX) -> MLPParams of [..., shape] arrays."""
        h, lead = self.hidden, vec.shape[:-1]
        cuts = np.cumsum([h * N_IN, h, 2 * h])
        return MLPParams(vec[..., :cuts[0]].reshape(lead + (h, N_IN)),
                         vec[..., cuts[0]:cuts[1]], vec[..., cuts[1]:cuts[2]].reshape(lead + (2, h)),
                         vec[..., cuts[2]:])

    def flatten(self, params: MLPParams) -> np.ndarray:
        return np.concatenate([np.asarray(p, np.float64).ravel() for p in params])

    def vector_names(self) -> list[str]:
        h = self.hidden
        return ([f"w1[{i}][{j}]" for i in range(h) for j in range(N_IN)]
                + [f"b1[{i}]" for i in range(h)]
                + [f"w2[{k}][{i}]" for k in range(2) for i in range(h)] + ["b2[0]", "b2[1]"])

    def initial(self, init: dict, seed: int, scale: float = 0.1) -> np.ndarray:
        """The search's starting point: `dynamic_fee`'s start (`bias`, `w_dev`) embedded in
        hidden unit 0, the rest N(0, scale^2) from `seed`."""
        unknown = set(init) - set(INIT_NAMES)
        if unknown:
            raise PropammError(f"--init: the mlp family takes {', '.join(INIT_NAMES)}, not "
                               f"{sorted(unknown)[0]!r}")
        rng = np.random.default_rng(seed)
        p = MLPParams(rng.normal(0.0, scale, (self.hidden, N_IN)), np.zeros(self.hidden),
                      rng.normal(0.0, scale, (2, self.hidden)), np.zeros(2))
        p.w1[0] = 0.0
        p.w1[0, INPUT_NAMES.index("dev")] = 1.0
        w_dev = float(init.get("w_dev", 0.0))
        p.w2[:, 0] = (-w_dev, w_dev)
        p.b2[:] = float(init.get("bias", 0.0))
        return self.flatten(p)


def read_policy(path: str | Path, data: dict | None = None) -> tuple[MLPFee, MLPParams]:
    """A `policy.json` of this family: the pool and its parameters as NumPy f64 arrays holding
    exactly the file's floats; every problem is one line naming the file and field."""
    path = Path(path)
    data = policy_file.read_envelope(path) if data is None else data
    policy_file.check_family(path, data, FAMILY, (VERSION,))
    hidden = data.get("hidden")
    if isinstance(hidden, bool) or not isinstance(hidden, int) or not 1 <= hidden <= 256:
        raise PropammError(f"{path}: field 'hidden' must be an integer in 1..256")
    if data.get("inputs", list(INPUT_NAMES)) != list(INPUT_NAMES):
        raise PropammError(f"{path}: field 'inputs' must be {list(INPUT_NAMES)}")
    params = policy_file.params_object(path, data)
    shapes = {"w1": (hidden, N_IN), "b1": (hidden,), "w2": (2, hidden), "b2": (2,)}
    arrays = [_array(path, params.get(k), f"params.{k}", shape) for k, shape in shapes.items()]
    fee_min, fee_max, epoch_len, oracle = policy_file.bounds(path, data)
    return MLPFee(fee_min, fee_max, epoch_len, oracle, hidden), MLPParams(*arrays)


def _array(path: Path, value, field: str, shape: tuple[int, ...]) -> np.ndarray:
    """A nested list of numbers of exactly `shape`, as f64 (each element checked)."""
    if len(shape) == 0:
        return np.float64(policy_file.number(path, value, field))
    if not isinstance(value, list) or len(value) != shape[0]:
        raise PropammError(f"{path}: field '{field}' must be a list of {shape[0]}"
                           + (" lists" if len(shape) > 1 else " numbers"))
    return np.array([_array(path, v, f"{field}[{i}]", shape[1:]) for i, v in enumerate(value)],
                    np.float64).reshape(shape)


def save_policy(path: str | Path, pool: MLPFee, params: MLPParams, **extra) -> Path:
    """Writes a `policy.json` that `read_policy` reads back bit for bit."""
    values = {k: np.asarray(v, np.float64).tolist() for k, v in params._asdict().items()}
    return policy_file.write_envelope(path, FAMILY, VERSION, pool, values, hidden=pool.hidden,
                                      inputs=list(INPUT_NAMES), **extra)
