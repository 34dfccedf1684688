"""AppTest of the Why page: a tiny model on the small store for the mechanics (URL, widgets, every view,
clear messages), and the bundled model on the sample world for the planted morning effect and the render time."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from recsys_core.i18n import t
from tests.app_db import build_small_store, open_app_page
from tests.explain_models import save_tiny_model

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PAGE = "views/why.py"
torch.set_num_threads(1)
PARAMS = {"user": "u0", "item": "i3", "at": "2024-11-18T08:00", "device": "mobile", "channel": "push", "location": "commute", "k": "5"}


@pytest.fixture(scope="module")
def small_db(tmp_path_factory) -> Path:
    return build_small_store(tmp_path_factory.mktemp("why") / "small.duckdb")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


def explained_groups(db: Path, model: Path, user: str, item: str, params: dict[str, str]) -> list[str]:
    """The Shapley groups of the same explanation, computed by the core."""
    import datetime as dt

    from recsys_core import recommend
    from recsys_core.context import Scenario
    from recsys_core.explain import explain
    from recsys_core.store import connect

    scene = {f: params[f] for f in ("device", "channel", "location") if f in params}
    con = connect(db, read_only=True)
    try:
        out = explain(recommend.load_model(model), con, user, item, Scenario(dt.datetime.fromisoformat(params["at"]), scene),
                      k=int(params["k"]))
    finally:
        con.close()
    return list(out["shapley"]["values"])


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_the_page_shows_every_explanation_for_the_linked_scenario(monkeypatch, small_db, tiny_dir):
    at = open_why(monkeypatch, small_db, [tiny_dir], PARAMS)
    assert at.text_input(key="why_user").value == "u0" and at.selectbox(key="why_item").value == "i3"
    assert at.slider(key="why_hour").value == 8 and at.selectbox(key="why_scene_location").value == "commute"
    reason = at.info[0].value
    assert reason.startswith(("Ranked", "Pushed")) and reason.endswith(".")
    labels = {m.label for m in at.metric}
    assert {t("why.rank", "en"), t("why.score", "en"), t("why.baseline", "en"), t("why.gap", "en")} <= labels
    figs = charts(at)
    assert len(figs) == 5  # attributions, timeline, attention (model view), Shapley waterfall, hour profile
    behaviours = {t(f"behavior.{b}", "en") for b in ("pv", "fav", "cart", "buy")}
    event_rows = figs[0]["data"][0]["y"]  # "12-08 18:55 · View · title"
    assert event_rows and all(row.split(" · ")[1] in behaviours for row in event_rows)
    assert {trace["name"] for trace in figs[1]["data"]} <= behaviours  # the timeline, one trace per behaviour
    waterfall = figs[3]["data"][0]
    groups = explained_groups(small_db, tiny_dir, "u0", "i3", PARAMS)
    assert waterfall["type"] == "waterfall" and len(waterfall["x"]) == len(groups) + 2  # base, every group, score
    assert t("why.group.hour", "en") in waterfall["x"] and "Device" in waterfall["x"]  # a scene field by its label
    # one colour meaning: what raises the item is the same colour on the timeline and the Shapley chart
    timeline_scale = figs[1]["data"][0]["marker"]["colorscale"]
    assert waterfall["increasing"]["marker"]["color"] == timeline_scale[-1][1]  # the top of the scale: raises
    assert waterfall["decreasing"]["marker"]["color"] == timeline_scale[0][1]
    assert figs[1]["data"][0]["marker"]["colorbar"]["ticktext"] == [t("why.lowers", "en"), "0", t("why.raises", "en")]
    assert t("why.attention_not_importance", "en") in [w.value for w in at.warning]
    assert at.query_params["item"] in ("i3", ["i3"])


def test_widgets_move_the_explanation(monkeypatch, small_db, tiny_dir):
    at = open_why(monkeypatch, small_db, [tiny_dir], PARAMS)
    before = at.info[0].value
    gap_before = at.metric[1].value
    at.slider(key="why_hour").set_value(21).run()
    assert not at.exception
    assert (at.info[0].value, at.metric[1].value) != (before, gap_before)
    at.segmented_control(key="why_att_view").set_value("head").run()
    at.selectbox(key="why_layer").set_value(1).run()
    assert not at.exception
    head = charts(at)[2]
    assert {tr["type"] for tr in head["data"]} == {"bar", "scatter", "heatmap"}
    other = [o for o in at.selectbox(key="why_item").options if "· i3" not in o][1]  # the 2nd of the top k
    at.selectbox(key="why_item").set_value(other.split(" · ")[-1]).run()
    assert not at.exception and other.split(" · ")[-1] in at.subheader[0].value
    at.text_input(key="why_user").input("u1").run()  # another shopper: their own top item
    assert not at.exception
    assert at.selectbox(key="why_item").options[0].startswith("1. ") and at.selectbox(key="why_item").index == 0


def test_an_item_outside_the_top_k(monkeypatch, small_db, tiny_dir):
    at = open_why(monkeypatch, small_db, [tiny_dir], {**PARAMS, "item": "i20"})
    assert "i20" in at.subheader[0].value
    assert at.selectbox(key="why_item").value == "i20"


def test_clear_messages_not_tracebacks(monkeypatch, small_db, tiny_dir, tmp_path):
    at = open_why(monkeypatch, small_db, [tiny_dir], {**PARAMS, "user": "nobody"})
    assert any("nobody" in w.value for w in at.warning)
    at = open_why(monkeypatch, small_db, [tiny_dir], {**PARAMS, "item": "not-an-item"})
    assert any("not-an-item" in w.value for w in at.warning)
    at = open_why(monkeypatch, small_db, [], PARAMS)
    assert at.warning[0].value == t("train.notice_none", "en") and at.button(key="train_for_this_data")
    from recsys_core import train
    from recsys_core.store import connect

    con = connect(small_db, read_only=True)
    try:
        train.train(con, "pop", "next_session", tmp_path / "pop", progress=False)
    finally:
        con.close()
    at = open_why(monkeypatch, small_db, [tmp_path / "pop"], PARAMS)
    assert "pop" in at.info[0].value


def test_chinese(monkeypatch, small_db, tiny_dir):
    at = open_why(monkeypatch, small_db, [tiny_dir], {**PARAMS, "lang": "zh"})
    assert at.title[0].value == t("why.title", "zh")
    reason = at.info[0].value
    assert reason.startswith("排名第") and reason.endswith("。")


def open_why(monkeypatch, db: Path, dirs: list[Path], params: dict[str, str] | None = None):
    return open_app_page(monkeypatch, db, PAGE, params, model_dirs=dirs)


# --- data without scene fields (like the Taobao sample): time controls only -------------------------------


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> tuple[Path, Path]:
    """The small store without scene fields, and a context transformer trained on it for one epoch."""
    from recsys_core import train
    from recsys_core.store import connect

    folder = tmp_path_factory.mktemp("plain")
    db = build_small_store(folder / "plain.duckdb", scene=False)
    con = connect(db, read_only=True)
    try:
        train.train(con, "context_transformer", "next_session", folder / "ct", train.TrainConfig(epochs=1), progress=False)
    finally:
        con.close()
    return db, folder / "ct"


def test_time_only_data_shows_time_controls_and_a_note(monkeypatch, plain):
    db, model = plain
    params = {"user": "u0", "at": "2024-11-18T08:00", "k": "5"}
    why = open_why(monkeypatch, db, [model], params)
    assert not [s for s in why.selectbox if s.key.startswith("why_scene_")]
    assert any(t("why.no_scene_fields", "en") in c.value for c in why.caption)
    assert why.slider(key="why_hour").value == 8 and why.info[0].value.startswith("Ranked")
    scenario = open_app_page(monkeypatch, db, "views/scenario.py", params, model_dirs=[model])
    assert not [s for s in scenario.selectbox if s.key.startswith(("scene_", "ref_scene_"))]
    assert t("scenario.no_scene_fields", "en") in [c.value for c in scenario.caption]
    assert scenario.pills(key="preset").options == [t("scenario.preset.double11", "en")]  # presets naming scene fields are hidden
    assert len(scenario.dataframe[0].value) == 5
    scenario.slider(key="hour").set_value(20).run()
    assert not scenario.exception and scenario.query_params["at"] in ("2024-11-18T20:00", ["2024-11-18T20:00"])


def test_a_shopper_without_history_is_told_the_list_is_scene_aware_popularity(monkeypatch, tmp_path, tiny_dir):
    """A profile-only shopper: the Scenario list and the Why page say the ranking is the moment's popularity
    (en and zh), and the Why page's item choices are that list."""
    import datetime as dt

    from recsys_core import recommend
    from recsys_core.context import Scenario
    from recsys_core.store import connect

    db = build_small_store(tmp_path / "cold.duckdb")
    con = connect(db)
    con.execute("INSERT INTO users VALUES ('newbie', 'Hangzhou', 'new')")
    con.close()
    params = {**PARAMS, "user": "newbie", "item": "", "at": "2024-11-18T21:30"}
    params.pop("item")
    con = connect(db, read_only=True)
    try:
        served = recommend.recommend(recommend.load_model(tiny_dir), con, "newbie",
                                     Scenario.local(dt.date(2024, 11, 18), 21, 30, {"device": "mobile", "channel": "push", "location": "commute"}), k=5)
    finally:
        con.close()
    why = open_why(monkeypatch, db, [tiny_dir], params)
    assert not why.exception
    assert why.info[0].value.startswith("No history for this shopper yet") and "#1 there" in why.info[0].value
    assert why.selectbox(key="why_item").value == served["item_id"][0]
    assert [o.split(" · ")[-1] for o in why.selectbox(key="why_item").options] == list(served["item_id"])
    zh = open_why(monkeypatch, db, [tiny_dir], {**params, "lang": "zh"})
    assert zh.info[0].value.startswith("该用户尚无行为记录")
    scenario = open_app_page(monkeypatch, db, "views/scenario.py", params, model_dirs=[tiny_dir])
    assert not scenario.exception
    notes = [i.value for i in scenario.info if "No history for this shopper yet" in i.value]
    assert len(notes) == 1 and "21:00–24:00" in notes[0].replace("\\", "")
