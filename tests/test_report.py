"""The HTML report: every section present, images embedded, and it renders in headless
Chromium (a screenshot that is not blank, every figure decoded by the browser)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from conftest import GOLDEN
from propamm_jax.errors import PropammError

RESULTS = GOLDEN / "corrected_four_3k.json"
FIGURE_IDS = ["edge-distribution", "capital-weight", "edge-vs-market", "fitness"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from propamm_jax.report import write_report

    folder = tmp_path_factory.mktemp("report")
    log = folder / "train.json"
    log.write_text(json.dumps({"history": [
        {"generation": g, "best": 10.0 + g, "mean": 5.0 + 0.5 * g} for g in range(12)]}))
    return write_report(RESULTS, folder / "report.html", training_log=log)


def _images(page: str) -> dict[str, bytes]:
    found = re.findall(r'<section id="([\w-]+)"><h2>[^<]*</h2><figure><img alt="[^"]*" '
                       r'src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
    return {sid: base64.b64decode(data) for sid, data in found}


def test_report_has_every_section_with_embedded_pngs(report):
    page = report.read_text()
    images = _images(page)
    assert list(images) == FIGURE_IDS
    for png in images.values():
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000
    assert "src=\"http" not in page and "<link" not in page  # self-contained
    table = re.search(r'<table id="leaderboard">(.*?)</table>', page).group(1)
    names = re.findall(r"<tr><td>\d+</td><td>([^<]+)</td><td>([-\d.]+)</td>", table)
    assert len(names) == 4
    edges = [float(e) for _, e in names]
    assert edges == sorted(edges, reverse=True)


def test_report_without_training_log_has_no_fitness(tmp_path):
    from propamm_jax.report import write_report

    page = write_report(RESULTS, tmp_path / "r.html").read_text()
    assert list(_images(page)) == FIGURE_IDS[:3]


@pytest.mark.parametrize("content, message", [
    ('{"history": 3}', "list of records"),
    ('[{"generation": 1, "name": "x"}]', "no numeric fitness column"),
    ('[{"best": 1.0}]', "generation"),
])
def test_bad_training_log(tmp_path, content, message):
    from propamm_jax.report import write_report

    log = tmp_path / "log.json"
    log.write_text(content)
    with pytest.raises(PropammError, match=message):
        write_report(RESULTS, tmp_path / "r.html", training_log=log)


def test_report_output_must_be_html(tmp_path):
    from propamm_jax.report import write_report

    with pytest.raises(PropammError, match=r"r\.png: the report is written as \.html"):
        write_report(RESULTS, tmp_path / "r.png")


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


def test_report_renders_in_headless_chromium(report, tmp_path):
    from matplotlib.image import imread

    url = report.resolve().as_uri()
    shot = tmp_path / "shot.png"
    proc = _run_chromium("--window-size=1200,4200", f"--screenshot={shot}", url)
    assert shot.exists(), proc.stderr[-2000:]
    pixels = imread(shot)[..., :3]
    ink = (pixels < 0.9).any(axis=2)  # anything that is not (near) white
    assert ink.mean() > 0.02, "the screenshot is blank"
    rows_with_ink = np.flatnonzero(ink.any(axis=1))
    assert rows_with_ink[-1] - rows_with_ink[0] > 2000  # four figures stacked, not one line

    dom = _run_chromium("--dump-dom", url).stdout
    match = re.search(r'data-figures-rendered="(\d+)/(\d+)"', dom)
    assert match, "the page's load check did not run"
    assert match.group(1) == match.group(2) == str(len(FIGURE_IDS))
