"""Scoring keeps every finished simulation when a strategy crashes in some of them."""

from __future__ import annotations

from pathlib import Path

from conftest import FIXTURES, STRATEGIES
from propamm_jax.config import SimConfig
from propamm_jax.official.scoring import score

PANIC = FIXTURES / "bad" / "panic_sometimes.rs"


def test_a_crash_costs_only_its_own_simulation():
    config = SimConfig(steps=200, epoch_len=100)
    files = [PANIC, STRATEGIES / "fixed_30bps.rs"]
    result = score(files, config=config, simulations=10, workers=2, progress=False)
    done = {s["seed"]: s for s in result.results.sims}
    failed = {f.seed for f in result.failures}
    assert done and failed, "the fixture should crash in some seeds and not others"
    assert set(done) | failed == set(range(10)) and not set(done) & failed
    for failure in result.failures:
        assert failure.strategy == PANIC.name
        assert failure.kind == "crash" and "deliberate failure" in failure.message
        assert "SIGABRT" in failure.message
    # Every surviving simulation is exactly what scoring that seed alone gives.
    alone = score(files, config=config, seeds=sorted(done), workers=1, progress=False)
    assert {s["seed"]: s for s in alone.results.sims} == done


def test_results_frame_and_summary(tmp_path):
    result = score([STRATEGIES / "fixed_30bps.rs", STRATEGIES / "fixed_65bps.rs"],
                   config=SimConfig(steps=300, epoch_len=100), simulations=4, progress=False)
    frame = result.frame
    assert len(frame) == 8 and set(frame["strategy"]) == {"fixed_30bps", "fixed_65bps"}
    assert "market_sigma" in frame.columns
    summary = result.summary
    edges = frame[frame.strategy == "fixed_30bps"]["edge"]
    assert abs(summary.loc["fixed_30bps", "mean_edge"] - edges.mean()) < 1e-9
    epochs = result.results.epoch_frame()
    assert len(epochs) == 4 * 2 * 2
    assert Path(result.results.save(tmp_path / "r.json")).exists()


def test_a_hanging_strategy_times_out_and_the_rest_is_kept():
    config = SimConfig(steps=100, epoch_len=50)
    files = [FIXTURES / "bad" / "loops_forever.rs", STRATEGIES / "fixed_30bps.rs"]
    result = score(files, config=config, seeds=[1, 2], workers=2, progress=False, sim_timeout=3)
    assert {f.seed for f in result.failures} == {1, 2}
    assert all(f.kind == "timeout" and "3 s" in f.message for f in result.failures)
    # The call guard names the strategy that was running when the watchdog struck.
    assert all(f.strategy == "loops_forever.rs" and f.message.startswith("in after_swap")
               for f in result.failures), [f.line() for f in result.failures]
    # A strategy that never reaches step 40 finishes normally under the same watchdog.
    short = score(files, config=SimConfig(steps=30, epoch_len=10), seeds=[1, 2], workers=2,
                  progress=False, sim_timeout=3)
    assert not short.failures and len(short.results.sims) == 2
