"""Tidy DataFrames from results files and tables written/read by extension."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import GOLDEN
from propamm_jax.errors import PropammError
from propamm_jax.outputs.results import Results


@pytest.fixture(scope="module")
def results():
    return Results.load(GOLDEN / "corrected_four_3k.json")


def test_epoch_weights_reproduce_final_capital_weight(results):
    """The last epoch's recomputed weight is the engine's final weight, bit for bit."""
    from propamm_jax.outputs.frames import epoch_frame

    frame = epoch_frame(results)
    n_epochs = len(results.sims[0]["strategies"][0]["epochs"])
    assert len(frame) == len(results.sims) * len(results.strategies) * n_epochs
    last = frame[frame["epoch"] == n_epochs - 1]
    final = results.frame()
    assert list(last["capital_weight"]) == list(final["final_capital_weight"])
    sums = frame.groupby(["seed", "epoch"])["capital_weight"].sum()
    np.testing.assert_allclose(sums, 1.0, rtol=1e-12)
    assert {"market_sigma", "market_norm_fee_bps"} <= set(frame.columns)


@pytest.mark.parametrize("ext", [".json", ".csv", ".parquet"])
def test_round_trip_by_extension(results, tmp_path, ext):
    from propamm_jax.outputs.frames import read_frame, write_frame

    frame = results.frame()
    path = write_frame(frame, tmp_path / f"sims{ext}")
    back = read_frame(path)
    assert list(back.columns) == list(frame.columns)
    assert len(back) == len(frame)
    np.testing.assert_array_equal(back["edge"].to_numpy(), frame["edge"].to_numpy())
    assert list(back["strategy"]) == list(frame["strategy"])


def test_named_index_becomes_columns(tmp_path):
    import pandas as pd

    from propamm_jax.outputs.frames import read_frame, write_frame

    frame = pd.DataFrame({"point": [0, 0, 1], "seed": [1, 2, 1], "edge": [1.5, 2.5, 3.5]})
    write_frame(frame.set_index(["point", "seed"]), tmp_path / "s.csv")
    assert list(read_frame(tmp_path / "s.csv").columns) == ["point", "seed", "edge"]


def test_unknown_extension_and_missing_file(results, tmp_path):
    from propamm_jax.outputs.frames import read_frame, write_frame

    with pytest.raises(PropammError, match=r"sims\.xlsx.*\.parquet"):
        write_frame(results.frame(), tmp_path / "sims.xlsx")
    with pytest.raises(PropammError, match="nope.csv: no such file"):
        read_frame(tmp_path / "nope.csv")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(PropammError, match="bad.parquet: cannot read as parquet"):
        read_frame(tmp_path / "bad.parquet")
