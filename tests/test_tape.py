"""The market tape is the reference engine's random stream, bit for bit.

Three kinds of evidence, all compared with `==`:

- The golden and parity results files (written by the reference engine): the market
  parameters of every simulation, and the fair price and order count of every traced step.
- Digests of the complete draws (parameters, prices, every order's side and size) printed by
  a small Rust program built against the same crates as the reference (rand 0.8.5,
  rand_chacha 0.3.1, rand_distr 0.4.3, Debian's packaged sources). It seeds
  `ChaCha8Rng::seed_from_u64(seed)` and draws exactly as the engine does, printing per seed
  `P <seed> <sigma> <lambda> <order_size_mean> <fee> <liquidity>` and per step
  `S <fair_price> <count>` followed by ` <is_buy>:<size>` per order, f64s as 16 hex digits of
  their bits. `_oracle_text` rebuilds that text from a tape; only its SHA-256 is kept here.
- Internal consistency: batches, window sizes and the value-by-value fallback all agree.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

from conftest import GOLDEN, GOLDEN_FILES, PARITY, PARITY_FILES
from propamm_jax.tape import ziggurat as zig
from propamm_jax.tape import generate as tape_mod
from propamm_jax.tape.chacha import Keystreams, ScalarStream, keystream, pcg32_keys
from propamm_jax.tape.generate import make_tape, parse_seed

U64_MAX = 2**64 - 1
RESULTS = [GOLDEN / n for n in GOLDEN_FILES] + [PARITY / n for n in PARITY_FILES]


def _load(path):
    return json.loads(path.read_text())


def _hex(values) -> list[str]:
    return [f"{b:016x}" for b in np.asarray(values, dtype=np.float64).view(np.uint64).tolist()]


def _oracle_text(tape) -> str:
    lines = []
    p = tape.params
    for r, seed in enumerate(tape.seeds.tolist()):
        sigma, lam, size, liq = _hex([p.sigma[r], p.lam[r], p.order_size_mean[r],
                                      p.norm_liquidity_mult[r]])
        lines.append(f"P {seed} {sigma} {lam} {size} {int(p.norm_fee_bps[r])} {liq}")
        starts = tape.order_start[r].tolist()
        sides = tape.order_is_buy[r].tolist()
        sizes = _hex(tape.order_size[r])
        for t, price in enumerate(_hex(tape.fair_price[r])):
            lo, hi = starts[t], starts[t + 1]
            orders = "".join(f" {int(sides[k])}:{sizes[k]}" for k in range(lo, hi))
            lines.append(f"S {price} {hi - lo}{orders}")
    return "\n".join(lines) + "\n"


def _digest(tape) -> str:
    return hashlib.sha256(_oracle_text(tape).encode()).hexdigest()


def _assert_same_seed(a, row_a: int, b, row_b: int) -> None:
    for field in a.params._fields:
        assert getattr(a.params, field)[row_a] == getattr(b.params, field)[row_b], field
    assert np.array_equal(a.gbm_factor[row_a], b.gbm_factor[row_b])
    assert np.array_equal(a.order_start[row_a], b.order_start[row_b])
    n = a.order_start[row_a, -1]
    assert np.array_equal(a.order_is_buy[row_a, :n], b.order_is_buy[row_b, :n])
    assert np.array_equal(a.order_size[row_a, :n], b.order_size[row_b, :n])


# ─── against the reference engine's results files ────────────────────────────────────────


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.name)
def test_market_parameters_match_every_simulation(path):
    sims = _load(path)["sims"]
    tape = make_tape([s["seed"] for s in sims], 1)
    p = tape.params
    for row, sim in enumerate(sims):
        m = sim["market"]
        assert p.sigma[row] == m["sigma"]
        assert p.lam[row] == m["lambda"]
        assert p.order_size_mean[row] == m["order_size_mean"]
        assert p.norm_fee_bps[row] == m["norm_fee_bps"]
        assert p.norm_liquidity_mult[row] == m["norm_liquidity_mult"]


TRACED = [p for p in RESULTS if "traces" in _load(p)]


@pytest.mark.parametrize("path", TRACED, ids=lambda p: p.name)
def test_fair_prices_and_order_counts_match_every_traced_step(path):
    traces = _load(path)["traces"]
    steps = len(traces[0]["steps"])
    tape = make_tape([t["seed"] for t in traces], steps)
    for row, trace in enumerate(traces):
        assert [s["step"] for s in trace["steps"]] == list(range(steps))
        assert tape.fair_price[row].tolist() == [s["fair_price"] for s in trace["steps"]]
        assert tape.order_count[row].tolist() == [s["orders"] for s in trace["steps"]]


def test_golden_files_trace_seeds_zero_and_one():
    assert [p.name for p in TRACED if p.parent == GOLDEN] == [
        "corrected_four_3k.json", "reference_four_3k.json"]
    assert [t["seed"] for t in _load(GOLDEN / "reference_four_3k.json")["traces"]] == [0, 1]


# ─── against rand / rand_chacha / rand_distr themselves (digests of the Rust program) ────


@pytest.mark.parametrize("seeds, steps, digest", [
    ([0, 1, 100, 2**63, U64_MAX - 1, U64_MAX, 12345678901234567890], 2000,
     "ffbc0523899a8158f159a008ca4f985c6da3397daa55d805475e667852514d8d"),
    (list(range(3, 23)), 300,
     "c93e13961ce3c0536b17009d0b097bc9a46c62124ad3fb8ea692155f039ca612"),
])
def test_every_draw_matches_the_rust_crates(seeds, steps, digest):
    assert _digest(make_tape(seeds, steps)) == digest


def test_first_steps_of_the_largest_seed():
    # `rngoracle tape 3 18446744073709551615`, verbatim
    assert _oracle_text(make_tape([U64_MAX], 3)) == (
        "P 18446744073709551615 3f73be5362733eb3 3fe7c349805bf96a 403217b5f2406582 60 "
        "3ff564602d57e19e\n"
        "S 405903ae99ac54f6 1 1:4003a49898542c22\n"
        "S 4058d5d38b051690 0\n"
        "S 4058d65e2459992e 2 0:4022fe3cc20c9123 1:400f8e1ba230a6f8\n")


def test_keystream_of_seed_zero():
    # ChaCha8Rng::seed_from_u64(0).next_u32(), the first eight
    assert keystream(pcg32_keys([0]), 0, 1)[0, :8].tolist() == [
        2811902828, 3045455719, 3134767159, 2001118559,
        2179114726, 3002797362, 2409334908, 258433188]


# ─── internal consistency ─────────────────────────────────────────────────────────────────


def test_a_seed_is_the_same_alone_or_in_any_batch():
    steps = 700
    seeds = [77, 5, U64_MAX, 2**63 + 1, 0]
    batch = make_tape(seeds, steps)
    shuffled = make_tape(seeds[::-1], steps)
    for row, seed in enumerate(seeds):
        alone = make_tape([seed], steps)
        _assert_same_seed(alone, 0, batch, row)
        _assert_same_seed(alone, 0, shuffled, len(seeds) - 1 - row)


def test_seeds_near_u64_max_are_deterministic_and_accept_arrays():
    seeds = [U64_MAX, U64_MAX - 1, 2**63]
    a = make_tape(seeds, 400)
    b = make_tape(np.array(seeds, dtype=np.uint64), 400)
    c = make_tape([str(s) for s in seeds], 400)
    assert a.seeds.dtype == np.uint64 and a.seeds.tolist() == seeds
    for other in (b, c):
        for row in range(len(seeds)):
            _assert_same_seed(a, row, other, row)
    assert np.all(np.isfinite(a.fair_price)) and np.all(a.fair_price > 0)


def test_shapes_and_padding():
    tape = make_tape([1, 2, 3], 250)
    s, t = 3, 250
    assert tape.gbm_factor.shape == (s, t) and tape.fair_price.shape == (s, t)
    assert tape.order_start.shape == (s, t + 1) and tape.order_start.dtype == np.int64
    assert np.all(tape.order_start[:, 0] == 0)
    assert tape.order_count.shape == (s, t) and np.all(tape.order_count >= 0)
    assert tape.params.norm_fee_bps.dtype == np.int64
    totals = tape.order_start[:, -1]
    assert tape.order_is_buy.shape == tape.order_size.shape == (s, totals.max())
    for row in range(s):
        assert not tape.order_is_buy[row, totals[row]:].any()
        assert not tape.order_size[row, totals[row]:].any()
        assert np.all(tape.order_size[row, : totals[row]] > 0)
    # the price path is the running product of the factors, from 10 000 Y / 100 X
    price = 100.0
    for t, factor in enumerate(tape.gbm_factor[0].tolist()):
        price = price * factor
        assert tape.fair_price[0, t] == price


def test_window_size_does_not_matter(monkeypatch):
    """Tiny windows force steps across window edges and the value-by-value fallback."""
    seeds, steps = [11, U64_MAX], 300
    reference = make_tape(seeds, steps)
    calls = []
    original = tape_mod._scalar_step
    monkeypatch.setattr(tape_mod, "_scalar_step", lambda *a: calls.append(1) or original(*a))
    for window in (16, 32, 48):
        monkeypatch.setattr(tape_mod, "_MIN_WINDOW", window)
        small = tape_mod._generate(seeds, steps, budget=len(seeds) * window)
        for row in range(len(seeds)):
            _assert_same_seed(reference, row, small, row)
    assert calls, "the fallback was never exercised"


def test_seed_groups_are_merged_in_order(monkeypatch):
    monkeypatch.setattr(tape_mod, "_MIN_WINDOW", 64)
    seeds = [9, 8, 7, 6, 5]
    whole = make_tape(seeds, 200)
    grouped = tape_mod._generate(seeds, 200, budget=2 * 2 * 64)  # groups of two seeds
    assert grouped.seeds.tolist() == seeds
    for row in range(len(seeds)):
        _assert_same_seed(whole, row, grouped, row)


def test_scalar_parameters_agree_with_the_vectorised_ones():
    seeds = [0, 1, 100, U64_MAX]
    tape = make_tape(seeds, 1)
    streams = Keystreams(np.array(seeds, dtype=np.uint64))
    for row, seed in enumerate(seeds):
        rng = ScalarStream(pcg32_keys([seed])[0])
        sigma, lam, size, fee, liq = tape_mod._scalar_params(rng)
        p = tape.params
        assert (sigma, lam, size, fee, liq) == (
            p.sigma[row], p.lam[row], p.order_size_mean[row], p.norm_fee_bps[row],
            p.norm_liquidity_mult[row])
        assert streams.keys[row].tolist() == rng.key[0].tolist()


def test_scalar_stream_reads_u64s_across_block_edges():
    key = pcg32_keys([42])
    words = keystream(key, 0, 3)[0].tolist()
    rng = ScalarStream(key[0], position=15)  # a u64 starting at the last word of a block
    assert rng.next_u64() == words[15] | (words[16] << 32)
    assert rng.next_u32() == words[17]
    assert keystream(key, np.array([2]), 1)[0].tolist() == words[32:48]


def test_ziggurat_tables_follow_their_construction():
    """X from Marsaglia & Tsang's recurrence and F = exp(-x^2/2), both as printed (18 decimals).

    F[94] is the one entry printed from a libm whose exp differed from glibc's; it is one ulp
    away from the recomputation.
    """
    r, v = 3.6541528853610088, 0.00492867323399

    def printed(x: float) -> float:
        return float("%.18f" % x)

    x = [v / math.exp(-r * r / 2.0), r]
    for _ in range(2, 256):
        x.append(math.sqrt(-2.0 * math.log(v / x[-1] + math.exp(-x[-1] * x[-1] / 2.0))))
    x.append(0.0)
    assert zig.ZIG_R == printed(r) == zig.ZIG_X[1]
    assert list(zig.ZIG_X) == [printed(t) for t in x]
    f = [printed(math.exp(-t * t / 2.0)) for t in x]
    assert [i for i in range(257) if zig.ZIG_F[i] != f[i]] == [94]
    assert abs(np.float64(zig.ZIG_F[94]).view(np.int64) - np.float64(f[94]).view(np.int64)) == 1


def test_poisson_outside_knuths_range_is_refused():
    with pytest.raises(NotImplementedError):
        tape_mod._check_poisson_lambda(np.array([0.5, 12.0]))


# ─── inputs ───────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("good, value", [
    (0, 0), ("18446744073709551615", U64_MAX), (" 42 ", 42), (np.uint64(U64_MAX), U64_MAX),
    (np.int64(7), 7),
])
def test_parse_seed_accepts_ints_and_decimal_strings(good, value):
    assert parse_seed(good) == value


@pytest.mark.parametrize("bad", [-1, 2**64, "-1", "18446744073709551616", "12x", "", "0x10",
                                 "1_000", 1.0, 1.5, True, np.bool_(True), None, [1]])
def test_bad_seed_is_rejected_with_the_seed_named(bad):
    with pytest.raises(ValueError) as info:
        parse_seed(bad)
    message = str(info.value)
    assert "\n" not in message and message.startswith("seed ")
    assert str(bad) in message or repr(bad) in message
    with pytest.raises(ValueError):
        make_tape([1, bad], 10)


def test_out_of_range_message_names_the_range():
    with pytest.raises(ValueError, match=r"^seed 18446744073709551616 is outside u64 "
                                         r"\(0\.\.18446744073709551615\)$"):
        parse_seed(2**64)


@pytest.mark.parametrize("steps", [0, -5, 1.5, True, "10"])
def test_steps_must_be_a_positive_integer(steps):
    with pytest.raises(ValueError, match="steps"):
        make_tape([1], steps)


def test_no_seeds_is_an_error():
    with pytest.raises(ValueError, match="seeds"):
        make_tape([], 10)
