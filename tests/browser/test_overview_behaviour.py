"""Overview and Behaviour in a real browser, in both languages, with screenshots to look at."""

from __future__ import annotations

import re
import subprocess
import sys

import duckdb
import pytest

from recsys_core.i18n import t
from tests.browser.conftest import ROOT, settle, streamlit_server
from tests.conftest import SHARED_DATA

WIDTH = 1440


def wait_for_app(page, heading: str, min_charts: int) -> None:
    """Wait until the page shows `heading`, has drawn its plotly charts and Streamlit is idle."""
    page.get_by_role("heading", name=heading).first.wait_for()
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=stPlotlyChart] .main-svg').length >= n", arg=min_charts
    )
    settle(page)  # plotly finishes its transitions
    assert page.get_by_test_id("stException").count() == 0, page.get_by_test_id("stException").first.inner_text()


def snap(page, path, width: int = WIDTH) -> None:
    """Screenshot the whole page: Streamlit scrolls inside its own container, so grow the viewport to fit it.

    Tables draw on a canvas only once they have been on screen: visit each, then check that it has its width.
    The page can grow as lazily drawn elements appear: grow the viewport until its height is stable.
    """
    measure = (
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], [data-testid=stSidebar]')]"
        ".map(e => e.scrollHeight), 800)"
    )
    tables = page.get_by_test_id("stDataFrame")
    height = 0
    for _ in range(6):
        new_height = page.evaluate(measure)
        if new_height == height:
            break
        height = new_height
        page.set_viewport_size({"width": width, "height": height + 40})
        for i in range(tables.count()):
            if tables.nth(i).is_visible():
                tables.nth(i).scroll_into_view_if_needed()
                settle(page, 100)
        settle(page)
    for i in range(tables.count()):
        if tables.nth(i).is_visible():
            box = tables.nth(i).bounding_box()
            # an undrawn grid is a sliver; half of a 1024 px laptop's content column is ~270 px
            assert box and box["width"] > min(300, width / 4), f"table {i} is drawn {box} wide: not rendered"
    page.screenshot(path=path, full_page=True)
    page.set_viewport_size({"width": width, "height": 1000})


def category_names(db, lang: str) -> list[str]:
    """Category names as the Categories filter shows them, in its order."""
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT category, any_value(category_zh) FROM items WHERE category IS NOT NULL GROUP BY 1 ORDER BY 1"
    ).fetchall()
    con.close()
    return [zh if lang == "zh" and zh else en for en, zh in rows]


def metric_value(page, label: str) -> str:
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue").inner_text()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_overview_and_behaviour(page, app_url, sample_db, screenshots, lang):
    page.goto(f"{app_url}/?lang={lang}")
    wait_for_app(page, t("overview.title", lang), min_charts=5)
    events = metric_value(page, t("col.events", lang))
    assert re.fullmatch(r"\d{1,3}(,\d{3})+", events), f"event count not formatted with separators: {events!r}"
    assert page.get_by_text(t("sidebar.database", lang)).first.is_visible()
    snap(page, screenshots / f"overview_{lang}.png")

    page.get_by_test_id("stSidebarNav").get_by_role("link", name=t("nav.behaviour", lang)).click()
    wait_for_app(page, t("behaviour.title", lang), min_charts=6)
    assert f"lang={lang}" in page.url, page.url
    views_all = metric_value(page, t("col.pv", lang))
    snap(page, screenshots / f"behaviour_{lang}.png")

    # A filter change changes the numbers: only PC.
    page.get_by_test_id("stMultiSelect").filter(has_text=t("scene.device", lang)).click()  # the field's own label
    page.get_by_role("option", name=t("device.pc", lang)).click()
    page.keyboard.press("Escape")
    page.wait_for_function(
        "([label, before]) => [...document.querySelectorAll('[data-testid=stMetric]')]"
        ".some(m => m.innerText.includes(label) && !m.innerText.includes(before))",
        arg=[t("col.pv", lang), views_all],
    )
    wait_for_app(page, t("behaviour.title", lang), min_charts=6)

    # Two categories: one hour x weekday map each.
    categories = page.get_by_test_id("stMultiSelect").filter(has_text=t("behaviour.categories", lang))
    for name in category_names(sample_db, lang)[:2]:
        categories.click()
        page.get_by_role("option", name=name, exact=True).click()
        page.keyboard.press("Escape")
        settle(page)
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=stPlotlyChart]')[1]?.querySelectorAll('.heatmaplayer .hm').length >= 2"
    )
    wait_for_app(page, t("behaviour.title", lang), min_charts=6)
    snap(page, screenshots / f"behaviour_filtered_{lang}.png")


def test_direct_page_url_keeps_the_frame(page, app_url, screenshots):
    """Opening the Behaviour page's own URL in a new session shows the sidebar and the asked language."""
    page.goto(f"{app_url}/shopper-behaviour?lang=zh")
    wait_for_app(page, t("behaviour.title", "zh"), min_charts=6)
    assert page.get_by_test_id("stSidebar").get_by_text(t("sidebar.database", "zh"), exact=True).is_visible()


TAOBAO = SHARED_DATA / "taobao_userbehavior_sample.csv"  # the real sample (read by path, never copied)


@pytest.fixture(scope="module")
def taobao_url(tmp_path_factory):
    """A server on a database holding only the real Taobao UserBehavior sample (numeric category ids,
    no scene fields, a few events far outside the bulk of its dates)."""
    assert TAOBAO.is_file(), f"the real Taobao sample is expected at {TAOBAO}"
    folder = tmp_path_factory.mktemp("taobao")
    db = folder / "taobao.duckdb"
    result = subprocess.run([sys.executable, "-m", "recsys_core", "import", str(TAOBAO), "--format", "taobao", "--db", str(db),
                             "--json"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with streamlit_server(db, folder / "server.log") as url:
        yield url


def test_taobao_behaviour_shows_category_ids_as_categories(page, taobao_url, screenshots):
    page.goto(f"{taobao_url}/shopper-behaviour?lang=en")
    wait_for_app(page, t("behaviour.title", "en"), min_charts=5)
    axes = page.evaluate("""() => [...document.querySelectorAll('[data-testid=stPlotlyChart] .js-plotly-plot')]
        .map(p => ({y: p._fullLayout.yaxis.type, y_range: p._fullLayout.yaxis.range,
                    cats: (p._fullData[0] && p._fullData[0].y || []).slice(0, 3)}))""")
    id_axes = [a for a in axes if a["cats"] and all(isinstance(c, str) and c.isdigit() for c in a["cats"])]
    assert id_axes, axes  # the top categories chart (and the timeline) plot category ids ...
    assert all(a["y"] == "category" for a in id_axes), axes  # ... as categories,
    # never as numbers on a 0-5,000,000 axis (the sample's counts are far below a million)
    assert not [a for a in axes if a["y"] == "linear" and max(map(float, a["y_range"])) > 1e6], axes
    assert page.get_by_text(t("behaviour.no_scene_fields", "en")).count() >= 1
    snap(page, screenshots / "behaviour_taobao_en.png")


def test_taobao_daily_series_name_the_stray_date(page, taobao_url):
    """The sample's bulk is 2017-11-25 .. 12-03 plus one event on 2017-09-11: that date is named and the
    daily chart covers the bulk instead of drawing a line across the 75 days between."""
    page.goto(f"{taobao_url}/shopper-behaviour?lang=en")
    wait_for_app(page, t("behaviour.title", "en"), min_charts=5)
    span = page.evaluate("""() => { const p = document.querySelector('[data-testid=stPlotlyChart] .js-plotly-plot');
        return p._fullLayout.xaxis.range.map(x => String(x).slice(0, 10)); }""")
    assert "2017-11-24" <= span[0] <= "2017-11-25" and "2017-12-03" <= span[1] <= "2017-12-04", span
    warnings = [w.inner_text() for w in page.get_by_test_id("stAlertContentWarning").all()]
    assert any("Dates outside the bulk of the data" in w and "2017-09-11" in w for w in warnings), warnings  # after the icon
