"""The scoring core's strategy calls: the reference's calls, and a read-only payload.

The core keeps each strategy's compute_swap payload between calls in a page the strategy
sees read-only (see `native/core/engine.rs`, `QuotePayload`). A strategy that writes into
its input would, in the reference, only scribble on a buffer built afresh for the next call;
here it faults, and that costs only its simulation, reported as a crash in compute_swap.
(That the calls themselves are the reference's, in number and order, is checked by
`test_golden.py` with `global_counter.rs`.)
"""

from __future__ import annotations

from conftest import FIXTURES, STRATEGIES
from propamm_jax.config import SimConfig
from propamm_jax.official.scoring import score

GOOD = STRATEGIES / "fixed_30bps.rs"
WRITES_INPUT = FIXTURES / "bad" / "writes_input.rs"


def test_a_strategy_writing_into_its_quote_payload_is_reported_not_fed_its_writes():
    result = score([GOOD, WRITES_INPUT], config=SimConfig(steps=200, epoch_len=100),
                   seeds=[0, 1], workers=1, progress=False)
    assert not result.results.sims and {f.seed for f in result.failures} == {0, 1}
    for failure in result.failures:
        assert failure.strategy == "writes_input.rs" and failure.kind == "crash", failure.line()
        assert failure.message.startswith("in compute_swap") and "SIGSEGV" in failure.message


def test_the_same_strategy_without_the_write_scores(tmp_path):
    """Control: with the write's condition made impossible, the same code scores cleanly, so
    the fault above is the write into the payload and nothing else."""
    source = WRITES_INPUT.read_text().replace("input % 7 == 0", "input % 7 == 9")
    assert source != WRITES_INPUT.read_text()
    (tmp_path / "writes_input.rs").write_text(source)
    result = score([GOOD, tmp_path / "writes_input.rs"], config=SimConfig(steps=200, epoch_len=100),
                   seeds=[0, 1], workers=1, progress=False)
    assert not result.failures, [f.line() for f in result.failures]
    assert [s["seed"] for s in result.results.sims] == [0, 1]
