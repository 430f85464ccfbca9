"""The HTML report: every page (results with traced seeds, sweep table, training log) renders
from small real runs, with embedded images, robust axes and standard errors, and renders in
headless Chromium (a screenshot that is not blank, every figure decoded by the browser).

Set PROPAMM_REPORT_SHOTS=/some/dir to keep the screenshots for a look."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import GOLDEN
from propamm_jax.config import SimConfig
from propamm_jax.errors import PropammError

RESULTS = GOLDEN / "corrected_four_3k.json"  # a real run: 20 seeds, 4 strategies, 2 traced
RESULT_FIGURES = ["edge-distribution", "capital-weight", "edge-vs-market", "trace-0", "trace-1"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
SMALL = SimConfig(steps=300, epoch_len=100)


def _x64(run):
    import jax

    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        return run()
    finally:
        jax.config.update("jax_enable_x64", previous)


@pytest.fixture(scope="module")
def train_log(tmp_path_factory):
    """`log.jsonl` of a real (tiny) `train` run, held-out value every 3rd generation."""
    from propamm_jax.training.train import TrainConfig, train

    out = tmp_path_factory.mktemp("train")
    cfg = TrainConfig(generations=7, population=4, batch_seeds=2, heldout=2, eval_every=3,
                      steps=SMALL.steps, epoch_len=SMALL.epoch_len)
    _x64(lambda: train(cfg, out, progress=False))
    return out / "log.jsonl"


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """Real sweep tables: one axis (.parquet) and two axes (.csv)."""
    from propamm_jax.outputs.frames import write_frame
    from propamm_jax.sweeps import sweep

    folder = tmp_path_factory.mktemp("sweeps")
    one = _x64(lambda: sweep("cpamm", {"fee_bps": [10.0, 40.0, 70.0]}, SMALL, [1, 2, 3, 4]))
    two = _x64(lambda: sweep("cpamm", {"fee_buy_bps": [20.0, 60.0],
                                       "fee_sell_bps": [20.0, 60.0, 90.0]}, SMALL, [1, 2, 3]))
    return write_frame(one, folder / "one.parquet"), write_frame(two, folder / "two.csv")


@pytest.fixture(scope="module")
def pages(tmp_path_factory, train_log, sweeps):
    from propamm_jax.outputs.report import write_report

    folder = tmp_path_factory.mktemp("report")
    return {
        "results": write_report(RESULTS, folder / "results.html", training_log=train_log),
        "sweep": write_report(sweeps[0], folder / "sweep.html"),
        "sweep2": write_report(sweeps[1], folder / "sweep2.html"),
        "training": write_report(train_log, folder / "training.html"),
    }


def _images(page: str) -> dict[str, bytes]:
    found = re.findall(r'<section id="([\w-]+)"><h2>[^<]*</h2><figure><img alt="[^"]*" '
                       r'src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
    return {sid: base64.b64decode(data) for sid, data in found}


def _captions(page: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="([\w-]+)">.*?<figcaption>(.*?)</figcaption>', page))


EXPECTED = {"results": RESULT_FIGURES + ["fitness"], "sweep": ["sweep-edge"],
            "sweep2": ["sweep-edge", "sweep-grid"], "training": ["fitness"]}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_every_page_has_its_sections_with_embedded_pngs(pages, kind):
    page = pages[kind].read_text()
    images = _images(page)
    assert list(images) == EXPECTED[kind]
    for png in images.values():
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000
    assert "src=\"http" not in page and "<link" not in page  # self-contained


def test_leaderboard_has_standard_errors(pages):
    from propamm_jax.outputs.results import Results

    page = pages["results"].read_text()
    table = re.search(r'<table id="leaderboard">(.*?)</table>', page).group(1)
    assert "<th>SE</th>" in table
    rows = re.findall(r"<tr><td>\d+</td><td>([^<]+)</td><td>([-\d.]+)</td><td>([-\d.]+)</td>",
                      table)
    assert len(rows) == 4
    edges = [float(e) for _, e, _ in rows]
    assert edges == sorted(edges, reverse=True)
    frame = Results.load(RESULTS).frame()
    for name, _, se in rows:
        v = frame.loc[frame["strategy"] == name, "edge"].to_numpy()
        assert float(se) == pytest.approx(v.std(ddof=1) / np.sqrt(len(v)), abs=6e-5)


def test_an_outlier_is_clipped_and_the_caption_says_so(tmp_path):
    from propamm_jax.outputs.report import write_report
    from propamm_jax.outputs.report_axes import robust_limits

    data = json.loads(RESULTS.read_text())
    data["sims"][3]["strategies"][1]["final_edge"] = -23_000.0
    path = tmp_path / "outlier.json"
    path.write_text(json.dumps(data))
    captions = _captions(write_report(path, tmp_path / "r.html").read_text())
    for section in ("edge-distribution", "edge-vs-market"):
        assert "Axis clipped" in captions[section] and "-23,000.0" in captions[section]
    edges = [st["final_edge"] for sim in data["sims"] for st in sim["strategies"]]
    limits = robust_limits(edges)
    assert limits.below == 1 and limits.lo > -1_000  # the axis spans the other values
    assert limits.hi >= sorted(edges)[-3]  # and cuts at most the two highest


def test_robust_limits_leave_clean_data_alone():
    from propamm_jax.outputs.report_axes import robust_limits

    rng = np.random.default_rng(0)
    normal = rng.normal(300.0, 80.0, 10_000)
    clean = robust_limits(normal)
    assert not clean.clipped and clean.lo < normal.min() and clean.hi > normal.max()
    limits = robust_limits(np.append(normal, -23_000.0))
    assert (limits.below, limits.above) == (1, 0) and limits.lo > normal.min() - 100
    assert robust_limits([5.0] * 10).hi > 5.0 > robust_limits([5.0] * 10).lo


def test_training_log_plots_fitness_only_with_sparse_heldout(train_log):
    from propamm_jax.outputs.report_training import fitness_columns, load_training_log

    log = load_training_log(train_log)
    assert "seconds" in log.columns  # train logs it; the report must not plot it
    assert fitness_columns(log) == ["best", "mean", "heldout"]
    assert log["heldout"].notna().sum() == 3  # generations 2, 5 and the last (6)


def test_training_page_caption_names_the_sparse_curve(pages):
    caption = _captions(pages["training"].read_text())["fitness"]
    assert "best, mean, heldout" in caption and "seconds" not in caption.split(";")[0]
    assert "heldout is logged every 3 generations (markers)" in caption


def test_sweep_page_ranks_points_with_standard_errors(pages, sweeps):
    import pandas as pd

    page = pages["sweep"].read_text()
    table = re.search(r'<table id="sweep-best">(.*?)</table>', page).group(1)
    rows = re.findall(r"<tr><td>\d+</td><td>([\d.]+)</td><td>([-\d.]+)</td><td>([-\d.]+)</td>",
                      table)
    frame = pd.read_parquet(sweeps[0])
    assert len(rows) == 3
    means = [float(m) for _, m, _ in rows]
    assert means == sorted(means, reverse=True)
    for fee, mean, se in rows:
        v = frame.loc[frame["fee_bps"] == float(fee), "edge"].to_numpy()
        assert float(mean) == pytest.approx(v.mean(), abs=6e-5)
        assert float(se) == pytest.approx(v.std(ddof=1) / np.sqrt(len(v)), abs=6e-5)


@pytest.mark.parametrize("content, message", [
    ('{"history": 3}', "list of records"),
    ('[{"generation": 1, "name": "x"}]', "no numeric fitness column"),
    ('[{"generation": 1, "seconds": 2.0}]', "no numeric fitness column"),
    ('[{"best": 1.0}]', "generation"),
])
def test_bad_training_log(tmp_path, content, message):
    from propamm_jax.outputs.report import write_report

    log = tmp_path / "log.json"
    log.write_text(content)
    with pytest.raises(PropammError, match=message):
        write_report(RESULTS, tmp_path / "r.html", training_log=log)


def test_bad_jsonl_line_is_named(tmp_path):
    from propamm_jax.outputs.report import write_report

    log = tmp_path / "log.jsonl"
    log.write_text('{"generation": 0, "best": 1.0}\n{"generation": 1, "best": \n')
    with pytest.raises(PropammError, match=r"log\.jsonl:2: not a JSON record"):
        write_report(log, tmp_path / "r.html")


def test_report_output_must_be_html(tmp_path):
    from propamm_jax.outputs.report import write_report

    with pytest.raises(PropammError, match=r"r\.png: the report is written as \.html"):
        write_report(RESULTS, tmp_path / "r.png")


def _unsupported(tmp_path: Path) -> list[tuple[Path, str]]:
    import pandas as pd

    table = tmp_path / "table.parquet"
    pd.DataFrame({"a": [1, 2], "b": [3.0, 4.0]}).to_parquet(table)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 4)
    fake = tmp_path / "fake.parquet"
    fake.write_bytes(b"\x89\xff\x00not parquet")
    other = tmp_path / "other.json"
    other.write_text('{"engine": "corrected"}')
    head = '{"engine": "corrected", "config": {"steps": 10, "epoch_len": 5}, "strategies": []'
    empty = tmp_path / "empty.json"
    empty.write_text(head + ', "sims": []}')
    broken = tmp_path / "broken.json"
    broken.write_text(head + ', "sims": [{"seed": 1}]}')
    partial = tmp_path / "partial.csv"
    partial.write_text("point,seed,edge\n0,1,2.0\n")
    words = tmp_path / "words.csv"
    words.write_text("point,seed,edge,normalizer_edge,edge_vs_normalizer,fee\n0,1,2,1,1,a\n")
    return [(table, "neither a sweep table"), (junk, "not JSON, Parquet or CSV"),
            (fake, "cannot read as parquet"), (other, "none of a results file"),
            (tmp_path / "missing.json", "no such file"), (empty, "no simulations"),
            (broken, "not a results file in the golden schema"),
            (partial, "not a sweep table (needs the columns"),
            (words, "sweep column 'fee' is not numeric")]


def test_unsupported_files_are_one_line(tmp_path):
    for path, message in _unsupported(tmp_path):
        proc = subprocess.run([sys.executable, "-m", "propamm_jax.cli", "report", str(path),
                               "-o", str(tmp_path / "r.html")], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert lines[0].startswith("propamm: error: ") and path.name in lines[0]
        assert message in lines[0], lines[0]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have chromium (.ci/run installs it)")
        pytest.skip("headless Chromium is not installed (apt-get install chromium); "
                    "CI installs it and runs this test")
    return found


def _run_chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                               *args], capture_output=True, text=True, timeout=120)


# Page heights in CSS pixels that hold every figure (results: 3 figures + 2 traces + fitness).
MIN_INK_ROWS = {"results": 5000, "sweep": 700, "sweep2": 1400, "training": 500}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_page_renders_in_headless_chromium(pages, kind, tmp_path):
    from matplotlib.image import imread

    url = pages[kind].resolve().as_uri()
    shot = tmp_path / f"{kind}.png"
    proc = _run_chromium("--window-size=1200,7600", f"--screenshot={shot}", url)
    assert shot.exists(), proc.stderr[-2000:]
    keep = os.environ.get("PROPAMM_REPORT_SHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
    pixels = imread(shot)[..., :3]
    ink = (pixels < 0.9).any(axis=2)  # anything that is not (near) white
    rows_with_ink = np.flatnonzero(ink.any(axis=1))
    assert rows_with_ink.size, "the screenshot is blank"
    assert rows_with_ink[-1] - rows_with_ink[0] > MIN_INK_ROWS[kind]  # figures stacked
    assert ink[rows_with_ink[0]:rows_with_ink[-1]].mean() > 0.02, "the page is nearly blank"

    dom = _run_chromium("--dump-dom", url).stdout
    match = re.search(r'data-figures-rendered="(\d+)/(\d+)"', dom)
    assert match, "the page's load check did not run"
    assert match.group(1) == match.group(2) == str(len(EXPECTED[kind]))


def test_trace_names_series_that_coincide():
    """In the reference profile pools can share one spot path; the figure says which do."""
    from propamm_jax.outputs.report_figures import trace_figure

    data = json.loads(RESULTS.read_text())
    trace, names = data["traces"][0], [s["name"] for s in data["sims"][0]["strategies"]]
    assert "coincide" not in trace_figure(trace, names).caption
    for step in trace["steps"]:
        step["amms"][1] = list(step["amms"][0])  # fixed_65bps's state := fixed_30bps's
    caption = trace_figure(trace, names).caption
    assert "spot of fixed_30bps, fixed_65bps;" in caption
    assert "capital weight of fixed_30bps, fixed_65bps" in caption
