"""cffi bindings: compiled strategies (the reference's C ABI) and the native scoring core.

ABI mode (`ffi.dlopen`) is enough: the three strategy symbols have plain C signatures, and the
core takes `#[repr(C)]` structs of scalars and pointers into caller-owned NumPy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple, Sequence

import cffi
import numpy as np

from propamm_jax import rules
from propamm_jax.errors import PropammError

STORAGE_SIZE = rules.STORAGE
COMPUTE_SWAP = "__prop_amm_compute_swap"
AFTER_SWAP = "__prop_amm_after_swap"
GET_NAME = "__prop_amm_get_name"
ABI_SYMBOLS = (COMPUTE_SWAP, AFTER_SWAP, GET_NAME)
MAX_NAME = 128
NO_EXPORTS_HINT = ("a safe-form file defines const NAME, fn compute_swap and fn after_swap, and "
                   "a library built from it with plain rustc exports nothing: build from "
                   "`propamm wrap FILE.rs -o FILE_raw.rs`, or pass the .rs file itself")
CORE_ABI_VERSION = 3
POOL_PURE = 1   # PammPool.flags bit: see PoolSpec.pure

ffi = cffi.FFI()
ffi.cdef(
    """
    uint64_t __prop_amm_compute_swap(const uint8_t *data, size_t len);
    void __prop_amm_after_swap(const uint8_t *data, size_t len, uint8_t *storage);
    size_t __prop_amm_get_name(uint8_t *buf, size_t max_len);

    typedef struct {
        uint64_t steps, epoch_len, base_reserve_x, base_reserve_y;
        double lambda, min_capital_weight, softmax_temperature, arb_profit_floor;
        uint32_t profile, n_strategies;
        uint64_t trace_steps, measure_calls;
    } PammConfig;
    typedef struct {
        uint32_t kind, fee_buy_bps, fee_sell_bps, flags;
        uintptr_t compute_swap, after_swap;
        const uint8_t *initial_storage;
    } PammPool;
    typedef struct {
        uint32_t norm_fee_bps, pad;
        double norm_liquidity_mult;
        const double *fair_price;
        const int64_t *order_start;
        const uint8_t *order_is_buy;
        const double *order_size;
    } PammMarket;
    typedef struct {
        double *final_edge, *final_capital_weight, *normalizer_edge, *epoch_edge;
        uint64_t *epoch_trade_count;
        double *epoch_score;
        uint64_t *epochs_written, *trace_u64;
        double *trace_f64;
        uint64_t *call_stats;
    } PammOut;
    int32_t pamm_run(const PammConfig *cfg, const PammPool *pools, const PammMarket *market,
                     const PammOut *out);
    uint32_t pamm_abi_version(void);
    void guard_init(uint32_t *cell);
    int32_t guard_slot(uint32_t k, uintptr_t compute, uintptr_t after, uintptr_t *out);
    """
)


def _dlopen(path: Path):
    try:
        return ffi.dlopen(str(path))
    except OSError as exc:
        raise PropammError(f"{path}: cannot load shared library ({exc})") from None


class NativeStrategy:
    """A loaded strategy library, held by the scoring workers and by NativePool callbacks."""

    def __init__(self, path: Path, label: str | None = None):
        self.path = Path(path)
        self.label = label or self.path.name
        self._lib = _dlopen(self.path)
        missing = [s for s in ABI_SYMBOLS if not _has_symbol(self._lib, s)]
        if len(missing) == len(ABI_SYMBOLS):
            raise PropammError(f"{self.label}: missing ABI symbol {missing[0]} (it exports "
                               f"none of {', '.join(ABI_SYMBOLS)}: {NO_EXPORTS_HINT})")
        if missing:
            raise PropammError(f"{self.label}: missing ABI symbol {missing[0]}")
        self._compute = getattr(self._lib, COMPUTE_SWAP)
        self._after = getattr(self._lib, AFTER_SWAP)
        self._get_name = getattr(self._lib, GET_NAME)
        self.name = self.read_name()

    def read_name(self) -> str:
        """The strategy's name as the reference reads it (128-byte buffer, lossy UTF-8)."""
        buf = ffi.new("uint8_t[]", MAX_NAME)
        n = self._get_name(buf, MAX_NAME)
        return bytes(ffi.buffer(buf, min(n, MAX_NAME))).decode("utf-8", errors="replace")

    def call_compute(self, payload: np.ndarray) -> int:
        """compute_swap on a contiguous NumPy payload (no copy)."""
        return int(self._compute(ffi.cast("uint8_t *", payload.ctypes.data), payload.nbytes))

    def call_after(self, payload: np.ndarray, storage: np.ndarray) -> None:
        """after_swap on a NumPy payload; `storage` (u8[1024], contiguous) is updated in place."""
        self._after(ffi.cast("uint8_t *", payload.ctypes.data), payload.nbytes,
                    ffi.cast("uint8_t *", storage.ctypes.data))

    @property
    def pool(self) -> tuple[int, int]:
        """Function addresses for the core's pool table."""
        return (int(ffi.cast("uintptr_t", self._compute)), int(ffi.cast("uintptr_t", self._after)))


def _has_symbol(lib, name: str) -> bool:
    try:
        getattr(lib, name)
        return True
    except (AttributeError, NotImplementedError):
        return False


@dataclass(frozen=True)
class PoolSpec:
    """One strategy slot for the core: a compiled strategy or a built-in fee pair."""

    kind: int
    fee_buy_bps: int = 0
    fee_sell_bps: int = 0
    compute_swap: int = 0
    after_swap: int = 0
    flags: int = 0     # POOL_PURE: training only (see `pure`)

    @classmethod
    def native(cls, strategy: NativeStrategy) -> "PoolSpec":
        compute, after = strategy.pool
        return cls(kind=0, compute_swap=compute, after_swap=after)

    def pure(self) -> "PoolSpec":
        """Training only: this strategy's quotes depend on their payload alone (the
        competition's rule), so the core's router may reuse them within one order instead
        of calling the strategy again. Never set in official scoring, which calls every
        strategy exactly as the reference does (a strategy may keep process-global state)."""
        return replace(self, flags=self.flags | POOL_PURE)

    @classmethod
    def cpamm(cls, fee_buy_bps: int, fee_sell_bps: int | None = None) -> "PoolSpec":
        return cls(kind=1, fee_buy_bps=fee_buy_bps,
                   fee_sell_bps=fee_buy_bps if fee_sell_bps is None else fee_sell_bps)


class CoreRun(NamedTuple):
    """Raw arrays of one simulation, as the core wrote them."""

    final_edge: np.ndarray            # f64 [N]
    final_capital_weight: np.ndarray  # f64 [N]
    normalizer_edge: float
    epoch_edge: np.ndarray            # f64 [N, E]
    epoch_trade_count: np.ndarray     # u64 [N, E]
    epoch_score: np.ndarray           # f64 [N, E]
    trace_u64: np.ndarray | None      # u64 [T, N+1, 3]  reserve_x, reserve_y, storage hash
    trace_f64: np.ndarray | None      # f64 [T, N+1, 2]  cumulative edge, capital weight
    calls: int = 0                    # strategy calls (only when measured)
    call_seconds: float = 0.0         # time inside them


_LOADED: dict[str, object] = {}  # "core" / "guard" -> the loaded library


def load_native_libraries(core: str | Path, guard: str | Path) -> None:
    """Loads the scoring core and the call guard from paths compiled elsewhere: confined
    workers have no PATH, so they cannot run rustc to find the cached builds themselves."""
    _LOADED["core"] = _checked_core(_dlopen(Path(core)))
    _LOADED["guard"] = _dlopen(Path(guard))


def _guard():
    if "guard" not in _LOADED:
        from propamm_jax.native.build import guard_library

        _LOADED["guard"] = _dlopen(guard_library())
    return _LOADED["guard"]


def guarded_pools(strategies: list[NativeStrategy], cell_address: int) -> list[PoolSpec]:
    """Pool specs whose calls go through the call guard: before each strategy call the guard
    writes `slot * 4 + 1` (compute_swap) or `slot * 4 + 2` (after_swap) to the u32 at
    `cell_address`, and 0 after it returns. Data passes through unchanged."""
    lib = _guard()
    lib.guard_init(ffi.cast("uint32_t *", cell_address))
    pools = []
    for k, strategy in enumerate(strategies):
        compute, after = strategy.pool
        out = ffi.new("uintptr_t[2]")
        if lib.guard_slot(k, compute, after, out) != 0:
            raise PropammError(f"the call guard has no slot {k}")
        pools.append(PoolSpec(kind=0, compute_swap=int(out[0]), after_swap=int(out[1])))
    return pools


def _checked_core(lib):
    if lib.pamm_abi_version() != CORE_ABI_VERSION:
        raise PropammError("the cached scoring core has another ABI version; clear the cache")
    return lib


def _core():
    if "core" not in _LOADED:
        from propamm_jax.native.build import core_library

        _LOADED["core"] = _checked_core(_dlopen(core_library()))
    return _LOADED["core"]


def _storage_blobs(initial_storage, n: int) -> list[bytes | None]:
    """The per-pool initial storage, checked: n entries, each None or STORAGE_SIZE bytes."""
    if initial_storage is None:
        return [None] * n
    blobs = list(initial_storage)
    if len(blobs) != n:
        raise PropammError(f"initial storage for {len(blobs)} pools, the run has {n}")
    for k, blob in enumerate(blobs):
        if blob is not None and len(blob) != STORAGE_SIZE:
            raise PropammError(f"initial storage of pool {k}: {len(blob)} bytes, need "
                               f"{STORAGE_SIZE}")
    return [None if b is None else bytes(b) for b in blobs]


def _ptr(ctype: str, array: np.ndarray):
    return ffi.cast(ctype, array.ctypes.data)


def run_core(config, profile: str, pools: list[PoolSpec], norm_fee_bps: int,
             norm_liquidity_mult: float, fair_price: np.ndarray, order_start: np.ndarray,
             order_is_buy: np.ndarray, order_size: np.ndarray, trace_steps: int = 0,
             measure_calls: bool = False,
             initial_storage: Sequence[bytes | None] | None = None) -> CoreRun:
    """Runs one simulation in the native core on one seed's tape.

    `initial_storage` (training only, never official scoring): per pool, None (zeroed
    storage, the reference's start) or the 1024 bytes its storage starts from."""
    n = len(pools)
    # cdata views of the blobs, alive until the core returns (the table holds raw pointers)
    blobs = [None if b is None else ffi.from_buffer("uint8_t[]", b)
             for b in _storage_blobs(initial_storage, n)]
    steps = config.steps
    n_epochs = (steps - 1) // config.epoch_len
    fair_price = np.ascontiguousarray(fair_price, dtype=np.float64)
    order_start = np.ascontiguousarray(order_start, dtype=np.int64)
    order_is_buy = np.ascontiguousarray(order_is_buy, dtype=np.uint8)
    order_size = np.ascontiguousarray(order_size, dtype=np.float64)
    if fair_price.shape != (steps,) or order_start.shape != (steps + 1,):
        raise ValueError("tape does not match config.steps")
    if order_is_buy.shape[0] < order_start[-1] or order_size.shape[0] < order_start[-1]:
        raise ValueError("tape orders are shorter than order_start says")

    cfg = ffi.new("PammConfig *", {
        "steps": steps, "epoch_len": config.epoch_len,
        "base_reserve_x": config.base_reserve_x, "base_reserve_y": config.base_reserve_y,
        "lambda": config.lam, "min_capital_weight": config.min_capital_weight,
        "softmax_temperature": config.softmax_temperature,
        "arb_profit_floor": config.arb_profit_floor,
        "profile": 0 if profile == "reference" else 1, "n_strategies": n,
        "trace_steps": trace_steps, "measure_calls": int(measure_calls),
    })
    table = ffi.new("PammPool[]", [
        {"kind": p.kind, "fee_buy_bps": p.fee_buy_bps, "fee_sell_bps": p.fee_sell_bps,
         "flags": p.flags, "compute_swap": p.compute_swap, "after_swap": p.after_swap,
         "initial_storage": ffi.NULL if blob is None else blob}
        for p, blob in zip(pools, blobs)
    ])
    market = ffi.new("PammMarket *", {
        "norm_fee_bps": int(norm_fee_bps), "norm_liquidity_mult": float(norm_liquidity_mult),
        "fair_price": _ptr("double *", fair_price), "order_start": _ptr("int64_t *", order_start),
        "order_is_buy": _ptr("uint8_t *", order_is_buy), "order_size": _ptr("double *", order_size),
    })
    final_edge = np.zeros(n)
    final_weight = np.zeros(n)
    norm_edge = np.zeros(1)
    epoch_edge = np.zeros((n, max(n_epochs, 1)))
    epoch_trades = np.zeros((n, max(n_epochs, 1)), dtype=np.uint64)
    epoch_score = np.zeros((n, max(n_epochs, 1)))
    written = np.zeros(1, dtype=np.uint64)
    call_stats = np.zeros(2, dtype=np.uint64)
    t = min(trace_steps, steps)
    trace_u64 = np.zeros((max(t, 1), n + 1, 3), dtype=np.uint64)
    trace_f64 = np.zeros((max(t, 1), n + 1, 2))
    out = ffi.new("PammOut *", {
        "final_edge": _ptr("double *", final_edge),
        "final_capital_weight": _ptr("double *", final_weight),
        "normalizer_edge": _ptr("double *", norm_edge),
        "epoch_edge": _ptr("double *", epoch_edge),
        "epoch_trade_count": _ptr("uint64_t *", epoch_trades),
        "epoch_score": _ptr("double *", epoch_score),
        "epochs_written": _ptr("uint64_t *", written),
        "trace_u64": _ptr("uint64_t *", trace_u64),
        "trace_f64": _ptr("double *", trace_f64),
        "call_stats": _ptr("uint64_t *", call_stats),
    })
    code = _core().pamm_run(cfg, table, market, out)
    if code != 0:
        raise PropammError(f"scoring core rejected the run (code {code})")
    return CoreRun(final_edge, final_weight, float(norm_edge[0]), epoch_edge[:, :n_epochs],
                   epoch_trades[:, :n_epochs], epoch_score[:, :n_epochs],
                   trace_u64[:t] if t else None, trace_f64[:t] if t else None,
                   int(call_stats[0]), int(call_stats[1]) * 1e-9)
