"""AppTest of the Behaviour page: every view renders, filters change what is shown, edge cases read well."""

from __future__ import annotations

import base64
import json
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from recsys_core.i18n import t
from tests.app_db import EMPTY_DAY, build_small_store

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture(scope="module")
def small_db(tmp_path_factory) -> Path:
    return build_small_store(tmp_path_factory.mktemp("behaviour") / "small.duckdb")


@pytest.fixture
def at(monkeypatch, small_db) -> AppTest:
    monkeypatch.setenv("RECSYS_DB", str(small_db))
    app = AppTest.from_file(APP, default_timeout=60).run()
    app.switch_page("views/behaviour.py").run()
    assert not app.exception
    return app


def decode(value):
    """plotly 7 typed arrays ({"dtype", "bdata"}) to numpy; plain lists as they are."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value)


def chart(at: AppTest, key: str) -> dict:
    for element in at.get("plotly_chart"):
        spec = json.loads(element.proto.spec)
        if element.proto.id and key in element.proto.id:
            return spec
    raise AssertionError(f"no chart with key {key!r}")


# Tables are found by their (translated) headers: st.dataframe has no key in AppTest.
TABLE_COLUMNS = {
    "top_items": ("col.title", "col.events"),
    "timeline": ("col.local_time",),
    "scene_funnel": ("col.fav_cart_rate", "col.pv"),
}


def table(at: AppTest, name: str, lang: str = "en"):
    wanted = [t(key, lang) for key in TABLE_COLUMNS[name]]
    for element in at.dataframe:
        frame = element.value
        if all(w in frame.columns for w in wanted) and (name == "timeline" or t("col.local_time", lang) not in frame.columns):
            if name != "scene_funnel" or t("col.hour", lang) not in frame.columns:
                return frame
    raise AssertionError(f"no {name} table")


def metric_values(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_every_view_renders(at, small_db):
    assert at.title[0].value == t("behaviour.title", "en")
    con = duckdb.connect(str(small_db), read_only=True)
    pv = con.execute("SELECT count(*) FROM events WHERE behavior = 'pv'").fetchone()[0]
    con.close()
    assert metric_values(at)[t("col.pv", "en")] == f"{pv:,}"
    for key in ("daily_chart", "heatmap_chart", "scene_funnel_chart", "conversion_chart", "top_categories_chart",
                "timeline_chart"):
        chart(at, key)
    assert len(at.dataframe) == 7
    assert len(at.get("download_button")) == 7  # every table downloadable


def test_promotion_day_is_marked_on_the_daily_chart(at):
    spec = chart(at, "daily_chart")
    notes = [a["text"] for a in spec["layout"]["annotations"]]
    assert f"11.11 {t('behaviour.promotion_day', 'en')}" in notes
    points = [(str(x)[:10], y) for trace in spec["data"] for x, y in zip(decode(trace["x"]), decode(trace["y"]))]
    assert "2024-11-11" in {d for d, _ in points}
    # a day without events is a gap in every line (no value), never a line joined across it nor a zero
    missing = lambda y: y is None or np.isnan(float(y))  # noqa: E731 — JSON may carry NaN as null
    assert {d for d, y in points if d == EMPTY_DAY and missing(y)} == {EMPTY_DAY}
    assert all(missing(y) for d, y in points if d == EMPTY_DAY)
    assert EMPTY_DAY in " ".join(c.value for c in at.caption)  # and the caption names it


def test_device_filter_changes_numbers_and_charts(at):
    before_metrics = metric_values(at)
    before_daily = sum(np.nansum(np.asarray(decode(tr["y"]), dtype=float)) for tr in chart(at, "daily_chart")["data"])
    before_top = table(at, "top_items").copy()  # top items
    at.multiselect(key="f_scene_device").set_value(["pc"]).run()
    assert not at.exception
    assert metric_values(at) != before_metrics
    after_daily = sum(np.nansum(np.asarray(decode(tr["y"]), dtype=float)) for tr in chart(at, "daily_chart")["data"])
    assert 0 < after_daily < before_daily
    assert not table(at, "top_items").equals(before_top)
    assert t("behaviour.top_caption", "en", scene="PC") in [c.value for c in at.caption]


def test_behaviour_filter_keeps_funnels_whole(at):
    at.multiselect(key="f_behaviors").set_value(["buy"]).run()
    assert not at.exception
    assert metric_values(at)[t("col.pv", "en")] == "0"
    rates = chart(at, "scene_funnel_chart")
    assert any(decode(tr["y"]).max() > 0 for tr in rates["data"])  # rates still need views


def test_scene_selector_switches_the_funnel(at):
    first = table(at, "scene_funnel")
    assert t("scene.device", "en") in first.columns
    at.selectbox(key="scene_field").set_value("channel").run()
    assert not at.exception
    funnel = table(at, "scene_funnel")
    assert t("scene.channel", "en") in funnel.columns and len(funnel) == 5


def test_several_categories_give_one_heatmap_each(at):
    before = chart(at, "heatmap_chart")
    assert len(before["data"]) == 1
    at.multiselect(key="f_categories").set_value(["coffee", "games", "phones"]).run()
    assert not at.exception
    spec = chart(at, "heatmap_chart")
    assert len(spec["data"]) == 3
    titles = {a["text"] for a in spec["layout"]["annotations"]}
    assert {"coffee", "games", "phones"} <= titles
    for trace in spec["data"]:  # each map is that category's share of events
        z = decode(trace["z"]) if not isinstance(trace["z"], list) else np.asarray(trace["z"], dtype=float)
        assert abs(float(np.sum(z)) - 1.0) < 1e-6


def test_a_day_without_events_says_so(at):
    day = date.fromisoformat(EMPTY_DAY)
    at.date_input(key="f_dates").set_value((day, day)).run()
    assert not at.exception
    assert t("common.no_match", "en") in [i.value for i in at.info]


def test_shopper_timeline_known_and_unknown(at, small_db):
    con = duckdb.connect(str(small_db), read_only=True)
    top, n = con.execute("SELECT user_id, count(*) AS n FROM events GROUP BY 1 ORDER BY n DESC, 1 LIMIT 1").fetchone()
    con.close()
    assert len(table(at, "timeline")) == n  # the most active shopper is shown by default
    assert f"`{top}`" in "".join(c.value for c in at.caption)
    at.text_input(key="shopper_id").input("nobody").run()
    assert not at.exception
    assert t("behaviour.unknown_shopper", "en", user="nobody") in [w.value for w in at.warning]


def test_top_n_slider_changes_the_table(at):
    assert len(table(at, "top_items")) == 10
    at.slider(key="top_n").set_value(20).run()
    assert not at.exception
    assert len(table(at, "top_items")) == 20


def test_chinese_page(at):
    at.radio(key="lang").set_value("zh").run()
    assert not at.exception
    assert at.title[0].value == t("behaviour.title", "zh")
    assert [s.value for s in at.subheader][:2] == [t("behaviour.daily", "zh"), t("behaviour.heatmap", "zh")]
    assert table(at, "top_items", "zh")[t("col.title", "zh")].iloc[0].startswith("商品")
