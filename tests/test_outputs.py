"""`--output` by extension for score, simulate and evaluate (issue 12, item 6): .json is the
golden schema, .csv/.parquet the tidy table of `propamm frame`; a bad path is refused with one
line before any work starts."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from conftest import STRATEGIES
from propamm_jax.cli import main
from propamm_jax.errors import PropammError
from propamm_jax.outputs.frames import check_output, read_frame
from propamm_jax.outputs.results import Results

SCORE = ["score", str(STRATEGIES / "fixed_30bps.rs"), "--simulations", "2", "--steps", "300",
         "--epoch-len", "100", "--workers", "1", "--no-progress", "--no-journal"]
SIMULATE = ["simulate", "--pool", "cpamm:30", "--pool", "cpamm:60", "--simulations", "2",
            "--steps", "300", "--epoch-len", "100", "--no-progress"]


def test_check_output_refuses_with_one_line(tmp_path):
    (tmp_path / "dir.json").mkdir()
    for path, message in [(tmp_path / "x.txt", "unknown extension '.txt'"),
                          (tmp_path / "x", r"unknown extension '\(none\)'"),
                          (tmp_path / "missing" / "x.json", "does not exist"),
                          (tmp_path / "dir.json", "is a directory")]:
        with pytest.raises(PropammError, match=message) as info:
            check_output(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert check_output(tmp_path / "X.PARQUET") == ".parquet"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_check_output_refuses_an_unwritable_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(PropammError, match="permission denied"):
            check_output(locked / "x.json")
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("command", [SCORE, SIMULATE])
@pytest.mark.parametrize("name, message", [("missing/x.json", "does not exist"),
                                           ("x.txt", "unknown extension")])
def test_bad_output_is_refused_before_any_work(tmp_path, capsys, command, name, message):
    assert main([*command, "--output", str(tmp_path / name)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing started: no profile banner
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("propamm: error:") and message in err[0], err


@pytest.mark.parametrize("command", [SCORE, SIMULATE])
def test_output_by_extension(tmp_path, capsys, x64, command):
    for name in ("r.json", "r.csv", "r.parquet"):
        assert main([*command, "--output", str(tmp_path / name)]) == 0
    capsys.readouterr()
    golden = Results.load(tmp_path / "r.json")
    assert len(golden.sims) == 2 and golden.sims[0]["strategies"][0]["epochs"]
    expected = golden.frame()
    for name in ("r.csv", "r.parquet"):
        table = read_frame(tmp_path / name)
        assert list(table.columns) == list(expected.columns)
        pd.testing.assert_frame_equal(table[["seed", "strategy_index", "edge"]],
                                      expected[["seed", "strategy_index", "edge"]],
                                      check_dtype=False)
