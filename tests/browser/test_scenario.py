"""The Scenario page in a real browser: every page visited, the hour slider moved with the keyboard,
"Push these" confirmed, a shared URL reopened in a new session; screenshots in both languages."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from recsys_core.i18n import t
from tests.browser.test_overview_behaviour import snap, wait_for_app

# The main list's cells (Streamlit's data grid keeps an accessible copy of what it draws), or null.
LIST_CELLS = """() => {
    const grid = document.querySelector('[data-testid=stDataFrame]');
    const cells = grid ? [...grid.querySelectorAll('[role=gridcell]')].map(c => c.innerText) : [];
    return cells.length ? cells : null;
}"""
COLUMNS = 7  # rank, vs B, rank in B, title, category, price, score
# True once the current run has drawn scenario A's line for `time` and the list after it (not stale).
LIST_DRAWN_FOR = """([marker, time]) => {
    const grid = document.querySelector('[data-testid=stDataFrame]');
    const box = grid && grid.closest('[data-stale]');
    if (!box || box.getAttribute('data-stale') === 'true') return false;
    return [...document.querySelectorAll('[data-stale=false] [data-testid=stMarkdownContainer]')]
        .some(e => e.innerText.includes(marker) && e.innerText.includes(time));
}"""


def titles(page) -> list[str]:
    cells = page.evaluate(LIST_CELLS) or []
    return cells[3::COLUMNS]


def show_list(page) -> None:
    """Wait for the main list and scroll it into view (the grid fills its cells once it is on screen)."""
    page.get_by_test_id("stDataFrame").first.wait_for()
    page.get_by_test_id("stDataFrame").first.scroll_into_view_if_needed()
    page.wait_for_function(LIST_CELLS)
    wait_idle(page)


def wait_idle(page) -> None:
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')")
    page.wait_for_timeout(500)
    assert page.get_by_test_id("stException").count() == 0, page.get_by_test_id("stException").first.inner_text()


def open_tab(page, name: str, screenshot) -> None:
    page.get_by_role("tab", name=name).click()
    page.wait_for_timeout(1200)  # plotly draws the chart once its tab is visible
    snap(page, screenshot)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_scenario_page(page, app_url, screenshots, lang):
    # every page, through the navigation
    page.goto(f"{app_url}/?lang={lang}")
    wait_for_app(page, t("overview.title", lang), min_charts=5)
    nav = page.get_by_test_id("stSidebarNav")
    nav.get_by_role("link", name=t("nav.behaviour", lang)).click()
    wait_for_app(page, t("behaviour.title", lang), min_charts=6)
    nav.get_by_role("link", name=t("nav.scenario", lang)).click()
    page.get_by_role("heading", name=t("scenario.title", lang)).first.wait_for()
    show_list(page)
    assert f"lang={lang}" in page.url and "user=" in page.url and "at=" in page.url, page.url
    rows = page.evaluate(LIST_CELLS)
    assert len(rows) == 10 * COLUMNS
    assert rows[5].startswith("¥") or rows[5].replace(",", "").replace(".", "").isdigit(), rows[5]
    snap(page, screenshots / f"scenario_{lang}.png")

    # move the hour slider with the keyboard: the list changes, and so does the URL
    slider = page.get_by_test_id("stSlider").first.get_by_role("slider")  # scenario A's hour
    hour = int(slider.input_value())
    before, before_cells = titles(page), page.evaluate(LIST_CELLS)
    slider.focus()
    for _ in range(7):  # 08:00 → 15:00: breakfast and coffee give way to the afternoon
        page.keyboard.press("ArrowRight")
    moved = int(slider.input_value())
    assert moved == min(hour + 7, 23)
    page.wait_for_function(LIST_DRAWN_FOR, arg=[t("scenario.a", lang) + " — ", f"{moved:02d}:"])
    wait_idle(page)
    page.get_by_test_id("stDataFrame").first.scroll_into_view_if_needed()
    page.wait_for_function("b => { const now = (" + LIST_CELLS + ")(); return now && now.join('|') !== b.join('|'); }",
                           arg=before_cells, timeout=30_000)
    after = titles(page)
    assert after != before, "the list did not change with the hour"
    page.wait_for_function("h => new URL(window.location.href).searchParams.get('at').endsWith(h)", arg=f"T{moved:02d}:00")
    shared_url = page.url
    snap(page, screenshots / f"scenario_moved_{lang}.png")

    # the other views
    open_tab(page, t("scenario.tab_sweep", lang), screenshots / f"scenario_sweep_{lang}.png")
    assert page.locator("[data-testid=stPlotlyChart] .main-svg").count() >= 1
    open_tab(page, t("scenario.tab_history", lang), screenshots / f"scenario_history_{lang}.png")

    # "Push these" records the list and says so
    user = parse_qs(urlparse(shared_url).query)["user"][0]
    page.get_by_role("button", name=t("scenario.push", lang, k=10, user=user)).click()
    # the reasons are explained first (integrated gradients, Shapley values): allow for a busy machine
    page.locator("[data-testid=stAlertContentSuccess], [data-testid=stAlertContentError]").first.wait_for(timeout=180_000)
    wait_idle(page)
    assert page.get_by_test_id("stAlertContentError").count() == 0, page.get_by_test_id("stAlertContentError").first.inner_text()
    confirmation = page.get_by_test_id("stAlertContentSuccess").inner_text()
    assert user in confirmation and "10" in confirmation, confirmation
    snap(page, screenshots / f"scenario_pushed_{lang}.png")

    # the remaining pages: why this push, and the review where the push just made is listed
    for nav_key, title_key in (("nav.why", "why.title"), ("nav.push_review", "review.title")):
        page.get_by_test_id("stSidebarNav").get_by_role("link", name=t(nav_key, lang)).click()
        page.get_by_role("heading", name=t(title_key, lang)).first.wait_for()
        wait_idle(page)

    # a new browser session opened from the copied URL shows the same scenario and the same list
    other = page.context.new_page()
    other.set_default_timeout(60_000)
    other.goto(shared_url)
    other.get_by_role("heading", name=t("scenario.title", lang)).first.wait_for()
    show_list(other)
    assert titles(other) == after
    assert other.get_by_test_id("stSlider").first.get_by_role("slider").input_value() == str(moved)
    assert parse_qs(urlparse(other.url).query) == parse_qs(urlparse(shared_url).query)
    other.close()
