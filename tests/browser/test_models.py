"""The Models page in a real browser: the bundled model and two trained ones compared with intervals, the heatmap
drawn and a click on one of its cells listing that slice's cases, and a training job started from the page that
reaches 100% and appears without a restart (and one cancelled, leaving no folder). Its own server: the job adds
model folders, which the other pages' tests must not see."""

from __future__ import annotations

import re
import subprocess
import sys
from urllib.parse import urlencode

import pytest

from recsys_core.i18n import t
from recsys_core.recommend import bundled_model_dir
from tests.browser.conftest import ROOT, settle, streamlit_server
from tests.browser.test_overview_behaviour import snap

INTERVAL = re.compile(r"^0\.\d{4} \[0\.\d{4}, 0\.\d{4}\]$")
CELLS = """grid => [...grid.querySelectorAll('[role=gridcell]')].map(c => c.innerText)"""


@pytest.fixture(scope="module")
def models_server(sample_db, tmp_path_factory):
    root = tmp_path_factory.mktemp("models-page")
    models = root / "models"
    for model_type in ("pop", "covisit"):
        done = subprocess.run([sys.executable, "-m", "recsys_core", "train", "--model", model_type, "--protocol", "next_session",
                               "--db", str(sample_db), "--out", str(models / model_type)], cwd=ROOT, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    with streamlit_server(sample_db, root / "server.log", env={"SCENEPUSH_MODELS_DIR": str(models)}) as url:
        yield url, models


def open_models(page, url: str, params: dict[str, str]) -> None:
    page.goto(f"{url}/models?{urlencode(params)}")
    page.get_by_role("heading", name=t("models.cards", params.get("lang", "en"))).wait_for()
    settle(page)
    assert page.get_by_test_id("stException").count() == 0, page.get_by_test_id("stException").first.inner_text()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_three_models_side_by_side_and_a_heatmap_cell_lists_its_cases(page, models_server, screenshots, lang):
    url, models = models_server
    keys = ["sample_data/models/context_transformer", str(models / "pop"), str(models / "covisit")]
    assert (ROOT / keys[0]).resolve() == bundled_model_dir().resolve()
    open_models(page, url, {"models": ",".join(keys), "lang": lang})
    page.get_by_role("heading", name=t("models.wins", lang)).wait_for()
    page.wait_for_function("() => document.querySelector('.heatmaplayer .hm, .heatmaplayer image')")
    settle(page)
    grids = page.get_by_test_id("stDataFrame")
    cards = grids.nth(0).evaluate(CELLS)
    assert sum(c in ("context_transformer", "pop", "covisit") for c in cards) == 3
    compared = grids.nth(1).evaluate(CELLS)
    intervals = [c for c in compared if INTERVAL.match(c)]
    # 12 metrics per model, each with its 95% interval (the grid draws the columns in view: at least 6 per row)
    assert len(intervals) >= 3 * 6 and len(intervals) % 3 == 0, compared[:20]
    assert compared[0] == "context_transformer"  # the reference first

    # click a cell of the heatmap (time of day: morning, the bundled model) → that slice's cases
    chart = page.locator("[data-testid=stPlotlyChart]").filter(has=page.locator(".heatmaplayer")).first
    chart.scroll_into_view_if_needed()
    settle(page)
    cells = chart.locator(".scatterlayer .point")  # one click target per cell, row by row
    assert cells.count() % 3 == 0 and cells.count() >= 3 * 20  # 3 models × every slice row
    cells.nth(3).click(force=True)  # second row, first column
    page.wait_for_url(re.compile(r"slice=hour_bucket%3Dmorning"))
    page.wait_for_function("() => document.querySelectorAll('[data-testid=stDataFrame]').length >= 4")
    settle(page)
    case_cells = page.get_by_test_id("stDataFrame").last.evaluate(CELLS)
    links = [c for c in case_cells if c.startswith("/scenario-simulator?user=")]
    assert links and all("&at=2025-" in link for link in links)
    moments = [c for c in case_cells if re.match(r"^2025-\d\d-\d\d \d\d:\d\d$", c)]
    assert moments and all(6 <= int(m[11:13]) <= 10 for m in moments)  # morning cases only
    snap(page, screenshots / f"models_{lang}.png")


def test_a_job_from_the_page_trains_appears_and_another_is_cancelled(page, models_server, screenshots):
    url, models = models_server
    open_models(page, url, {"lang": "en"})
    page.get_by_text(t("train.title", "en")).first.click()
    page.get_by_label(t("train.epochs", "en")).fill("2")
    page.get_by_label(t("train.name", "en")).fill("ct-browser")
    page.get_by_role("button", name=t("train.start", "en")).click()
    page.get_by_test_id("stProgress").wait_for()
    snap(page, screenshots / "models_training_en.png")
    page.reload()  # the job survives a reload: its progress is on disk
    page.get_by_test_id("stProgress").wait_for()
    page.get_by_text(re.compile(r"Trained context_transformer → ct-browser")).wait_for(timeout=300_000)
    settle(page)
    assert "ct-browser" in " ".join(page.get_by_test_id("stDataFrame").first.evaluate(CELLS))
    assert (models / "ct-browser" / "metadata.json").is_file()

    page.get_by_text(t("train.title", "en")).first.click()
    page.get_by_label(t("train.epochs", "en")).fill("50")
    page.get_by_label(t("train.name", "en")).fill("ct-cancelled")
    page.get_by_role("button", name=t("train.start", "en")).click()
    page.get_by_test_id("stProgress").wait_for()
    page.get_by_role("button", name=t("train.cancel", "en")).click()
    page.get_by_text(re.compile(r"was cancelled; no model folder was written")).wait_for(timeout=60_000)
    assert not (models / "ct-cancelled").exists() and not list(models.glob(".ct-cancelled.tmp-*"))
