"""The dashboard in headless Chromium (Debian's `chromium`, driven by Playwright): upload a
strategy, watch the job finish, see the team's row on the leaderboard, its submissions, the
report and a comparison of two submissions."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from server_util import STARTERS, Server, add_team, need, shared_cache  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser():
    need(CHROMIUM is not None, "headless Chromium is not installed (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def test_upload_wait_and_see_the_leaderboard_row(tmp_path, browser):
    shared_cache()
    data = tmp_path / "data"
    data.mkdir()
    admin = add_team(data, "organiser", "--admin")
    token = add_team(data, "alpha")
    mine = tmp_path / "mine.rs"
    mine.write_text((STARTERS / "vol_scaled.rs").read_text())
    server = Server(data, workers=1)
    try:
        r = httpx.post(server.url + "/api/competitions", headers={"Authorization": f"Bearer {admin}"},
                       json={"name": "cup", "steps": 300, "epoch_len": 100,
                             "opponents": ["undercut"], "seeds": [11, 12]})
        assert r.status_code == 201, r.text
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/")
        page.fill("#token", token)
        page.click("#save-token")
        page.wait_for_selector("#whoami:has-text('team alpha')")

        def run_job(kind: str, competition: bool) -> str:
            page.goto(server.url + "/#/upload")
            page.set_input_files("#source-file", str(mine))
            page.select_option("#kind", kind)
            if competition:
                page.wait_for_selector("#competition option:has-text('cup')", state="attached")
                page.select_option("#competition", label="cup (2 hidden seeds, reference)")
            else:
                for field, value in (("#simulations", "2"), ("#steps", "300"),
                                     ("#epoch_len", "100"), ("#opponents", "undercut")):
                    page.fill(field, value)
            page.click("#submit-job")
            page.wait_for_selector("#job-state.state-done", timeout=240_000)
            assert page.text_content("#job-progress-text") == "2 / 2"
            assert "done" in page.text_content("#job-log")
            page.wait_for_selector("#job-summary td:has-text('mine.rs')")
            return page.text_content("#job-id")

        submitted = run_job("submit", competition=True)
        practice = run_job("score", competition=False)
        # The practice job's report renders inside the page.
        frame = page.frame_locator("#job-report")
        assert frame.locator("#leaderboard td").first.text_content()

        page.goto(server.url + "/#/leaderboard")
        row = page.locator("#leaderboard-table tr", has_text="alpha")
        row.wait_for()
        assert "mine.rs" in row.text_content()
        receipt = page.text_content("#leaderboard-table pre")
        assert '"seeds_sha256"' in receipt and '"seeds":' not in receipt   # hidden seeds

        page.goto(server.url + "/#/jobs")
        page.wait_for_selector("#jobs-table tr >> nth=2")
        listed = page.text_content("#jobs-table")
        assert submitted[:10] in listed and practice[:10] in listed

        page.goto(server.url + "/#/compare")
        page.wait_for_selector("#compare-b option >> nth=1", state="attached")
        page.click("#compare-go")
        page.wait_for_selector("#compare-table td:has-text('mine.rs')")
        assert "undercut.rs" in page.text_content("#compare-table")
        assert not errors, errors
    finally:
        server.stop()
