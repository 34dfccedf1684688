"""The Scenario page in a real browser: every page visited, the hour slider moved with the keyboard,
"Push these" confirmed, a shared URL reopened in a new session; screenshots in both languages."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlparse

import duckdb
import pytest

from recsys_core.i18n import t
from tests.browser.conftest import settle
from tests.browser.test_overview_behaviour import snap, wait_for_app

# The main list's cells (Streamlit's data grid keeps an accessible copy of what it draws), or null.
LIST_CELLS = """() => {
    const grid = document.querySelector('[data-testid=stDataFrame]');
    const cells = grid ? [...grid.querySelectorAll('[role=gridcell]')].map(c => c.innerText) : [];
    return cells.length ? cells : null;
}"""
COLUMNS = 8  # rank, vs B, rank in B, title, category, price, score, why (a link)
# True once the current run has drawn scenario A's line for `time` and the list after it (not stale).
LIST_DRAWN_FOR = """([marker, time]) => {
    const grid = document.querySelector('[data-testid=stDataFrame]');
    const box = grid && grid.closest('[data-stale]');
    if (!box || box.getAttribute('data-stale') === 'true') return false;
    return [...document.querySelectorAll('[data-stale=false] [data-testid=stMarkdownContainer]')]
        .some(e => e.innerText.includes(marker) && e.innerText.includes(time));
}"""


DOUBLE_PRESS = {"at": "2025-12-17T09:00", "device": "pc", "channel": "search", "location": "office", "k": "3"}
LINKED = {"at": "2025-12-18T21:00", "device": "mobile", "channel": "live_stream", "location": "home", "k": "10"}
# Text cells of every data grid on screen whose text is wider than the cell (the grid ellipsises it):
# the accessible copy of each cell carries its text; the canvas draws it in the column's width.
CLIPPED = """() => {
    const out = [];
    const canvas = document.createElement('canvas').getContext('2d');
    for (const grid of document.querySelectorAll('[data-testid=stDataFrame]')) {
        if (!grid.offsetParent) continue;
        const font = getComputedStyle(grid).fontFamily;
        canvas.font = `14px ${font}`;
        const headers = [...grid.querySelectorAll('[role=columnheader]')];
        const widths = headers.map(h => parseFloat(h.style.width || h.getBoundingClientRect().width));
        for (const row of grid.querySelectorAll('[role=row]')) {
            [...row.querySelectorAll('[role=gridcell]')].forEach((cell, i) => {
                const text = cell.innerText.trim();
                const width = widths[i + (headers.length - row.querySelectorAll('[role=gridcell]').length)];
                if (text && width && canvas.measureText(text).width + 16 > width) out.push(`${text} (${Math.round(width)} px)`);
            });
        }
    }
    // static tables (the side-by-side lists): neither the table nor any cell may overflow its box
    for (const table of document.querySelectorAll('[data-testid=stTable]')) {
        if (!table.offsetParent) continue;
        if (table.scrollWidth > table.clientWidth + 1) out.push(`table ${table.scrollWidth} px in ${table.clientWidth} px`);
        for (const cell of table.querySelectorAll('td, th')) {
            if (cell.scrollWidth > cell.clientWidth + 1) out.push(`${cell.innerText.trim()} (${cell.clientWidth} px)`);
        }
    }
    return out;
}"""


def titles(page) -> list[str]:
    cells = page.evaluate(LIST_CELLS) or []
    return cells[3::COLUMNS]


def show_list(page) -> None:
    """Wait for the main list and scroll it into view (the grid fills its cells once it is on screen).
    Settle first: right after a page switch the previous page's grids are still there, about to be removed."""
    settle(page)
    page.get_by_test_id("stDataFrame").first.wait_for()
    page.get_by_test_id("stDataFrame").first.scroll_into_view_if_needed()
    page.wait_for_function(LIST_CELLS)
    wait_idle(page)


def wait_idle(page) -> None:
    settle(page)
    assert page.get_by_test_id("stException").count() == 0, page.get_by_test_id("stException").first.inner_text()


def open_tab(page, name: str, screenshot) -> None:
    page.get_by_role("tab", name=name).click()
    settle(page)  # plotly draws the chart once its tab is visible
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

    # "Push these" records the list and says so, with a link to the review; a second press stores nothing.
    # (The zh run pushes at hh:05: the en run has already pushed this shopper's list at hh:00.)
    user = parse_qs(urlparse(shared_url).query)["user"][0]
    if lang == "zh":
        minute = page.get_by_test_id("stNumberInput").filter(has_text=t("scenario.minute", lang)).first.locator("input")
        minute.fill("5")
        minute.press("Enter")
        page.wait_for_function("() => new URL(window.location.href).searchParams.get('at').endsWith(':05')")
        show_list(page)
    page.get_by_role("button", name=t("scenario.push", lang, k=10, user=user)).click()
    page.locator("[data-testid=stAlertContentSuccess], [data-testid=stAlertContentError]").first.wait_for()
    wait_idle(page)
    assert page.get_by_test_id("stAlertContentError").count() == 0, page.get_by_test_id("stAlertContentError").first.inner_text()
    confirmation = page.get_by_test_id("stAlertContentSuccess").inner_text()
    assert user in confirmation and "10" in confirmation, confirmation
    assert page.get_by_role("link", name=t("scenario.open_review", lang)).count() == 1
    snap(page, screenshots / f"scenario_pushed_{lang}.png")
    page.get_by_role("button", name=t("scenario.push", lang, k=10, user=user)).click()
    already = t("scenario.already_pushed", lang, n=10, at="{at}").split("{at}")[0]
    # the page has other info boxes (e.g. about the history): wait for the one that answers the second press
    page.get_by_test_id("stAlertContentInfo").filter(has_text=already).first.wait_for()
    wait_idle(page)
    assert page.get_by_test_id("stAlertContentSuccess").count() == 0

    # the remaining pages: why this push, and the review where the push just made is listed
    for nav_key, title_key in (("nav.why", "why.title"), ("nav.push_review", "review.title")):
        page.get_by_test_id("stSidebarNav").get_by_role("link", name=t(nav_key, lang)).click()
        page.get_by_role("heading", name=t(title_key, lang)).first.wait_for()
        wait_idle(page)



def pushes_of(db, user: str) -> int:
    """Pushes logged for ``user`` (a short read-only look: the server writes only while answering a press)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM pushes WHERE user_id = ?", [user]).fetchone()[0]
    finally:
        con.close()


def test_a_double_press_stores_one_push_per_item(page, app_url, sample_db):
    """Two presses in a row (the second before the page has answered the first): each item is logged once."""
    page.goto(f"{app_url}/scenario-simulator?{urlencode({**DOUBLE_PRESS, 'lang': 'en'})}")
    show_list(page)
    user = parse_qs(urlparse(page.url).query)["user"][0]
    before = pushes_of(sample_db, user)
    button = page.get_by_role("button", name=t("scenario.push", "en", k=3, user=user))
    button.click()
    button.click()
    page.get_by_test_id("stAlertContentSuccess").or_(page.get_by_test_id("stAlertContentInfo")).first.wait_for()
    wait_idle(page)
    assert pushes_of(sample_db, user) - before == 3


def test_a_list_item_opens_why_with_the_same_scenario_and_back(page, app_url, screenshots):
    page.goto(f"{app_url}/scenario-simulator?{urlencode({**LINKED, 'lang': 'en'})}")
    show_list(page)
    scenario = parse_qs(urlparse(page.url).query)
    # the list's top item, opened with "Why this item?" (each row's "Explain" link carries the same URL)
    title = titles(page)[0]
    page.get_by_role("link", name=t("scenario.open_why", "en")).click()
    why = page
    wait_for_app(why, t("why.title", "en"), min_charts=1)
    assert title in why.get_by_test_id("stMain").get_by_role("heading", level=3).first.inner_text()  # it explains that item
    opened = parse_qs(urlparse(why.url).query)
    for name in ("user", "at", "device", "channel", "location", "promo", "k"):
        assert opened[name] == scenario[name], name
    assert why.get_by_test_id("stSlider").first.get_by_role("slider").input_value() == "21"
    snap(why, screenshots / "why_from_list_en.png")
    # Why → Scenario through the sidebar keeps the shopper and the scenario, and so does the way back
    why.get_by_test_id("stSidebarNav").get_by_role("link", name=t("nav.scenario", "en")).click()
    show_list(why)
    back = parse_qs(urlparse(why.url).query)
    assert (back["user"], back["at"], back["device"]) == (scenario["user"], scenario["at"], scenario["device"])
    why.get_by_test_id("stSidebarNav").get_by_role("link", name=t("nav.why", "en")).click()
    wait_for_app(why, t("why.title", "en"), min_charts=1)
    assert parse_qs(urlparse(why.url).query)["at"] == scenario["at"]


@pytest.mark.parametrize("injected", ["**bold** [x](https://example.com)", "<b>html</b><img src=x onerror=alert(1)>"])
def test_url_values_render_as_plain_text(page, app_url, injected):
    page.goto(f"{app_url}/scenario-simulator?{urlencode({'user': injected, 'lang': 'en'})}")
    page.get_by_role("heading", name=t("scenario.title", "en")).first.wait_for()
    page.get_by_test_id("stAlertContentWarning").first.wait_for()
    wait_idle(page)
    warning = page.get_by_test_id("stAlertContentWarning").first
    assert injected in warning.inner_text()  # shown as typed
    main = page.get_by_test_id("stMain")
    assert main.locator("a[href^='https://example.com']").count() == 0
    assert main.locator("strong:has-text('bold'), b:has-text('html'), img[src=x]").count() == 0
    # and the same on the Why page
    page.goto(f"{app_url}/why-pushed?{urlencode({'user': injected, 'lang': 'en'})}")
    page.get_by_test_id("stAlertContentWarning").first.wait_for()
    wait_idle(page)
    assert injected in page.get_by_test_id("stAlertContentWarning").first.inner_text()
    assert main.locator("a[href^='https://example.com'], strong:has-text('bold'), b:has-text('html'), img[src=x]").count() == 0


@pytest.mark.parametrize("width", [1400, 1024])
def test_tables_are_not_clipped(browser, app_url, screenshots, width):
    """A vs B and Two models: every cell's text fits its column at common laptop widths."""
    context = browser.new_context(viewport={"width": width, "height": 1000}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{app_url}/scenario-simulator?{urlencode({**LINKED, 'lang': 'en'})}")
        show_list(page)
        snap(page, screenshots / f"scenario_ab_{width}.png", width)
        assert page.get_by_test_id("stTable").count() == 2  # the side-by-side lists, which CLIPPED checks too
        assert page.evaluate(CLIPPED) == [], "clipped cells in the A vs B tables"
        page.get_by_test_id("stSelectbox").filter(has_text=t("scenario.model_b", "en")).get_by_role("combobox").click()  # the box itself: at 1024 px a click on the label opens nothing
        page.get_by_role("option").nth(1).click()
        page.get_by_role("tab", name=t("scenario.tab_models", "en")).click()
        show_list(page)
        snap(page, screenshots / f"scenario_models_{width}.png", width)
        show_list(page)
        assert page.get_by_test_id("stTable").filter(visible=True).count() == 2
        assert page.evaluate(CLIPPED) == [], "clipped cells in the Two models tables"
    finally:
        context.close()
