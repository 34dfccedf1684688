"""Overview and Behaviour in a real browser, in both languages, with screenshots to look at."""

from __future__ import annotations

import re

import duckdb
import pytest

from recsys_core.i18n import t

WIDTH = 1440


def wait_for_app(page, heading: str, min_charts: int) -> None:
    """Wait until the page shows `heading`, has drawn its plotly charts and Streamlit is idle."""
    page.get_by_role("heading", name=heading).first.wait_for()
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=stPlotlyChart] .main-svg').length >= n", arg=min_charts
    )
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')")
    page.wait_for_timeout(800)  # plotly finishes its transitions
    assert page.get_by_test_id("stException").count() == 0, page.get_by_test_id("stException").first.inner_text()


def snap(page, path) -> None:
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
        page.set_viewport_size({"width": WIDTH, "height": height + 40})
        for i in range(tables.count()):
            if tables.nth(i).is_visible():
                tables.nth(i).scroll_into_view_if_needed()
                page.wait_for_timeout(200)
        page.wait_for_timeout(800)
    for i in range(tables.count()):
        if tables.nth(i).is_visible():
            box = tables.nth(i).bounding_box()
            assert box and box["width"] > 300, f"table {i} is drawn {box} wide: not rendered"
    page.screenshot(path=path, full_page=True)
    page.set_viewport_size({"width": WIDTH, "height": 1000})


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
    page.get_by_test_id("stMultiSelect").filter(has_text=t("behaviour.devices", lang)).click()
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
        page.wait_for_timeout(500)
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
