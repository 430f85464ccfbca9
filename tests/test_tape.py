"""The market tape against the golden files and against the plain scalar port."""

from __future__ import annotations

import numpy as np
import pytest

import scalar_rng
from conftest import GOLDEN_FILES, load_golden
from propamm_jax.tape import make_tape, parse_seed


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_market_parameters_match_golden(name):
    golden = load_golden(name)
    seeds = [s["seed"] for s in golden["sims"]]
    tape = make_tape(seeds, 2)
    p = tape.params
    for row, sim in enumerate(golden["sims"]):
        m = sim["market"]
        assert float(p.sigma[row]) == m["sigma"]
        assert float(p.lam[row]) == m["lambda"]
        assert float(p.order_size_mean[row]) == m["order_size_mean"]
        assert int(p.norm_fee_bps[row]) == m["norm_fee_bps"]
        assert float(p.norm_liquidity_mult[row]) == m["norm_liquidity_mult"]


@pytest.mark.parametrize("name", [n for n in GOLDEN_FILES if "four" in n])
def test_fair_prices_and_order_counts_match_golden_traces(name):
    golden = load_golden(name)
    for trace in golden["traces"]:
        steps = trace["steps"]
        tape = make_tape([trace["seed"]], len(steps))
        assert tape.fair_price[0].tolist() == [s["fair_price"] for s in steps]
        assert tape.order_count[0].tolist() == [s["orders"] for s in steps]


@pytest.mark.parametrize("seeds", [[0, 1, 2], [2**64 - 1, 2**64 - 2, 2**63, 12345678901234567890]])
def test_vectorized_tape_equals_scalar_port(seeds):
    steps = 1500
    tape = make_tape(seeds, steps)
    for row, seed in enumerate(seeds):
        params, prices, orders = scalar_rng.scalar_tape(seed, steps)
        assert (float(tape.params.sigma[row]), float(tape.params.lam[row]),
                float(tape.params.order_size_mean[row]), int(tape.params.norm_fee_bps[row]),
                float(tape.params.norm_liquidity_mult[row])) == params
        assert tape.fair_price[row].tolist() == prices
        flat = [o for step in orders for o in step]
        assert tape.order_count[row].tolist() == [len(o) for o in orders]
        assert tape.order_is_buy[row, : len(flat)].tolist() == [o[0] for o in flat]
        assert tape.order_size[row, : len(flat)].tolist() == [o[1] for o in flat]


def test_a_seed_is_the_same_alone_or_in_any_batch():
    alone = make_tape([77], 800)
    batch = make_tape([5, 77, 2**64 - 1], 800)
    assert np.array_equal(alone.gbm_factor[0], batch.gbm_factor[1])
    n = alone.order_start[0, -1]
    assert np.array_equal(alone.order_size[0, :n], batch.order_size[1, :n])
    assert np.array_equal(alone.order_start[0], batch.order_start[1])


def test_initial_price_scales_the_path_in_the_reference_order():
    tape = make_tape([3], 50)
    path = tape.fair_prices(250.0)[0]
    price = 250.0
    for t, factor in enumerate(tape.gbm_factor[0]):
        price = price * factor
        assert path[t] == price


@pytest.mark.parametrize("bad", [-1, 2**64, "12x", 1.5, True, None])
def test_bad_seed_is_rejected_with_the_seed_named(bad):
    with pytest.raises(ValueError, match="seed"):
        parse_seed(bad)
    with pytest.raises(ValueError):
        make_tape([bad], 10)


def test_steps_must_be_positive():
    with pytest.raises(ValueError, match="steps"):
        make_tape([1], 0)
