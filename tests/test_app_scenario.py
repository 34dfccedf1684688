"""AppTest of the Scenario page on the sample world with the bundled model: planted time and device
effects move the list, the URL carries the scenario, controls follow the data's scene fields and the
fields the model reads, pushes are recorded once, broken inputs give messages next to their fields."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from recsys_core import recommend, scenario as sc
from recsys_core.context import Scenario
from recsys_core.i18n import format_int, t
from recsys_core.store import connect
from tests.app_db import open_app_page

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PAGE = "views/scenario.py"
MONDAY = dt.date(2025, 12, 15)  # the day after the sample world: the whole history is "before"
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory) -> Path:
    from recsys_core import synth

    db = tmp_path_factory.mktemp("scenario") / "sample.duckdb"
    synth.build_sample_database(db)
    return db


@pytest.fixture(scope="module")
def model_dir() -> Path:
    """The bundled model (`SCENEPUSH_MODEL_DIR` may name another folder to test the page with)."""
    path = Path(os.environ.get("SCENEPUSH_MODEL_DIR") or recommend.bundled_model_dir())
    assert (path / "metadata.json").is_file(), f"no model at {path}: run `make model` to train the bundled model"
    return path


@pytest.fixture(scope="module")
def second_model(sample_db, tmp_path_factory) -> Path:
    """A popularity baseline trained on the sample world, for the side-by-side view."""
    from recsys_core import train

    out = tmp_path_factory.mktemp("models") / "pop"
    con = connect(sample_db, read_only=True)
    try:
        train.train(con, "pop", "next_session", out, progress=False)
    finally:
        con.close()
    return out


@pytest.fixture
def models(monkeypatch, model_dir, second_model):
    """The page (and sidebar) see exactly these two model folders."""
    import views._common as common

    monkeypatch.setattr(common, "model_dirs", lambda: [model_dir, second_model])
    return model_dir, second_model


def shopper_with(db: Path, categories: tuple[str, ...]) -> str:
    """The shopper with at least 100 events whose events fall most often in ``categories``."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            f"""
            SELECT e.user_id FROM events e JOIN items i USING (item_id)
            GROUP BY e.user_id HAVING count(*) >= 100
            ORDER BY avg(CASE WHEN i.category IN ({", ".join("?" for _ in categories)}) THEN 1 ELSE 0 END) DESC, e.user_id
            LIMIT 1
            """,
            list(categories),
        ).fetchone()[0]
    finally:
        con.close()



def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def top_list(at: AppTest):
    """The main list (the first table): rank, vs B, rank in B, title, category, price, score."""
    return at.dataframe[0].value


def scene(device: str, channel: str, location: str) -> dict[str, str]:
    return {"device": device, "channel": channel, "location": location}


def local(day: dt.date, hour: int, minute: int = 0, device="mobile", channel="home_feed", location="home") -> Scenario:
    return Scenario.local(day, hour, minute, scene(device, channel, location))


def scenario_params(user: str, a: Scenario, **extra: str) -> dict[str, str]:
    state = sc.ScenarioState(user, a, local(MONDAY, 14, 0, "pc", "search", "office"), k=10)
    return {**sc.to_query_params(state), **extra}


def open_tab(at: AppTest, name: str) -> None:
    at.session_state["scenario_tab"] = t(f"scenario.tab_{name}", "en")
    at.run()
    assert not at.exception, at.exception


def count(frame, names: set[str]) -> int:
    return int(frame["category_shown"].isin(names).sum())


# --- planted effects move the list ---------------------------------------------------------------


def test_hour_slider_moves_breakfast_and_coffee(monkeypatch, sample_db, models):
    user = shopper_with(sample_db, ("coffee", "breakfast"))
    at = open_page(monkeypatch, sample_db, scenario_params(user, local(MONDAY, 15, 0, "mobile", "home_feed", "home")))
    afternoon = top_list(at)
    assert len(afternoon) == 10
    at.slider(key="hour").set_value(8).run()
    assert not at.exception
    morning = top_list(at)
    assert list(morning["title_shown"]) != list(afternoon["title_shown"])
    morning_n, afternoon_n = count(morning, {"Coffee", "Breakfast"}), count(afternoon, {"Coffee", "Breakfast"})
    assert morning_n > afternoon_n, (morning_n, afternoon_n)
    assert at.query_params["at"] == ["2025-12-15T08:00"] or at.query_params["at"] == "2025-12-15T08:00"


def test_device_switch_brings_computer_accessories_on_pc(monkeypatch, sample_db, models):
    user = shopper_with(sample_db, ("computer_accessories",))
    at = open_page(monkeypatch, sample_db, scenario_params(user, local(MONDAY, 14, 0, "mobile", "home_feed", "home")))
    mobile = count(top_list(at), {"Computer Accessories"})
    at.selectbox(key="scene_device").set_value("pc").run()
    assert not at.exception
    pc = count(top_list(at), {"Computer Accessories"})
    assert pc > mobile, (pc, mobile)


# --- the page's parts -------------------------------------------------------------------------------


def decode(array):
    if isinstance(array, dict) and "bdata" in array:  # plotly 7 typed arrays (docs/pitfalls.md)
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).tolist()
    return list(array)


def test_lists_arrows_sweep_models_and_history(monkeypatch, sample_db, models):
    user = shopper_with(sample_db, ("coffee", "breakfast"))
    at = open_page(monkeypatch, sample_db, scenario_params(user, local(MONDAY, 8, 0, "mobile", "push", "commute")))
    main = top_list(at)
    assert list(main["rank"]) == list(range(1, 11))
    assert main["score"].is_monotonic_decreasing
    # the arrow says how far each item moved against its rank in B
    for arrow, rank, ref in zip(main["arrow"], main["rank"], main["ref_rank"]):
        assert arrow == sc.rank_arrow(rank, ref)
    assert at.metric[0].label == t("scenario.entering", "en")  # the A vs B tab is open first
    assert len(at.dataframe) == 1 and len(at.table) == 2 and not at.get("plotly_chart")  # A vs B; closed tabs do not run

    # the 24-hour sweep: one line per top item, 24 points each, and at A's hour the ranks are the list's
    open_tab(at, "sweep")
    sweep = json.loads(at.get("plotly_chart")[0].proto.spec)
    traces = sweep["data"]
    assert len(traces) == 10 and all(len(decode(tr["x"])) == 24 for tr in traces)
    assert [decode(tr["y"])[8] for tr in traces] == list(range(1, 11))

    # two models side by side with their overlap
    open_tab(at, "models")
    assert t("scenario.pick_model_b", "en") in texts(at.info)
    at.selectbox(key="scenario_model_b").set_value(next(k for k in at.selectbox(key="scenario_model_b").options if "pop" in k)).run()
    assert not at.exception
    labels = {m.label: m.value for m in at.metric}
    common = labels[t("scenario.overlap_common", "en")]
    assert common.endswith("/ 10") and 0 <= int(common.split("/")[0]) <= 10
    assert len(at.dataframe) == 1 and len(at.table) == 2  # the main list, and the two models' lists as tables

    # the shopper's history, coloured by a scene field of the data
    open_tab(at, "history")
    assert at.segmented_control(key="timeline_scene").options == ["Device", "Channel", "Location"]  # the data's labels
    at.segmented_control(key="timeline_scene").set_value("location").run()
    assert not at.exception
    history = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert {tr["name"] for tr in history["data"]} <= {"Home", "Office", "Commute", "Out in the city"}


def test_presets_set_the_scenario(monkeypatch, sample_db, models):
    at = open_page(monkeypatch, sample_db)
    at.pills(key="preset").set_value("double11").run()
    assert not at.exception
    assert at.date_input(key="day").value == dt.date(2025, 11, 11)
    assert (at.slider(key="hour").value, at.number_input(key="minute").value) == (0, 5)
    assert t("scenario.promo_day", "en") in texts(at.caption)
    at.pills(key="ref_preset").set_value("office").run()
    assert (at.slider(key="ref_hour").value, at.selectbox(key="ref_scene_device").value) == (14, "pc")
    at.button(key="swap").click().run()
    assert at.slider(key="hour").value == 14 and at.slider(key="ref_hour").value == 0
    assert at.pills(key="preset").value is None  # presets are actions, not states


def test_a_shared_url_opens_the_same_scenario(monkeypatch, sample_db, models):
    user = shopper_with(sample_db, ("computer_accessories",))
    first = open_page(monkeypatch, sample_db)
    first.text_input(key="user").set_value(user).run()
    first.date_input(key="day").set_value(dt.date(2025, 11, 11)).run()
    first.slider(key="hour").set_value(21).run()
    first.selectbox(key="scene_device").set_value("tablet").run()
    first.radio(key="promo").set_value("off").run()
    first.number_input(key="k").set_value(7).run()
    first.checkbox(key="unseen").check().run()
    assert not first.exception
    url = {k: first.query_params[k][0] if isinstance(first.query_params[k], list) else first.query_params[k]
           for k in first.query_params}
    assert url["user"] == user and url["at"] == "2025-11-11T21:00" and url["promo"] == "off" and url["unseen"] == "1"
    assert url["device"] == "tablet"  # one parameter per scene field, by its name

    second = open_page(monkeypatch, sample_db, url)  # a new session opened from the copied URL
    assert second.text_input(key="user").value == user
    assert second.date_input(key="day").value == dt.date(2025, 11, 11)
    assert (second.slider(key="hour").value, second.selectbox(key="scene_device").value) == (21, "tablet")
    assert second.radio(key="promo").value == "off" and second.checkbox(key="unseen").value
    assert list(top_list(second)["title_shown"]) == list(top_list(first)["title_shown"])
    assert len(top_list(second)) == 7


def test_a_url_with_bad_values_falls_back_with_a_warning(monkeypatch, sample_db, models):
    at = open_page(monkeypatch, sample_db, {"at": "not-a-time", "device": "fridge", "k": "9999"})
    assert t("scenario.url_ignored", "en", names="at, device, k") in texts(at.warning)
    assert len(top_list(at)) == sc.DEFAULT_K


def test_push_these_records_the_top_k_once(monkeypatch, sample_db, models):
    user = shopper_with(sample_db, ("coffee", "breakfast"))
    at = open_page(monkeypatch, sample_db, scenario_params(user, local(MONDAY, 8, 0, "mobile", "push", "commute")))
    shown = top_list(at)
    at.button(key="push_these").click().run()
    assert not at.exception
    assert not at.error, texts(at.error)
    assert len(at.success) == 1 and user in at.success[0].value
    pages = [e.proto.page for e in at.get("page_link")]
    assert any(p.endswith("push-review") for p in pages), pages  # the confirmation links to the review
    at.session_state["_push_reasons_worker"].join(timeout=300)  # the reasons are attached after answering

    def stored():
        con = duckdb.connect(str(sample_db), read_only=True)
        try:
            return con.execute(
                "SELECT i.title, p.rank, p.score, p.pushed_at, p.scene_json, p.model_version, p.reasons_json "
                "FROM pushes p JOIN items i USING (item_id) WHERE p.user_id = ? ORDER BY p.rank", [user]
            ).fetchall()
        finally:
            con.close()

    rows = stored()
    assert [r[1] for r in rows] == list(range(1, 11))
    assert [r[0] for r in rows] == list(shown["title_shown"])
    assert all(r[3] == dt.datetime(2025, 12, 15, 0, 0) for r in rows)  # 08:00 Shanghai, stored as UTC
    assert {r[4] for r in rows} == {json.dumps(scene("mobile", "push", "commute"), sort_keys=True)}
    version = json.loads((models[0] / "metadata.json").read_text())["version"]
    assert {r[5] for r in rows} == {version}
    assert np.allclose([r[2] for r in rows], shown["score"].to_numpy(), atol=1e-4)
    assert all(json.loads(r[6])["reason"]["en"] for r in rows)
    # a second press stores nothing and says when the items were pushed
    at.button(key="push_these").click().run()
    assert not at.exception and not at.success
    assert any(t("scenario.already_pushed", "en", n=10, at="").split(":")[0] in m.value for m in at.info)
    assert len(stored()) == 10
    at.slider(key="hour").set_value(9).run()  # the confirmation belongs to that click only
    assert not at.success and not at.info and not at.exception
    # a daily cap of 12: only two more pushes that day, and the page says so
    at.number_input(key="daily_cap").set_value(12).run()
    at.button(key="push_these").click().run()
    assert len(at.success) == 1 and len(at.warning) == 1 and "12" in at.warning[0].value
    at.session_state["_push_reasons_worker"].join(timeout=300)
    assert len(stored()) == 12


def test_list_items_link_to_why_with_the_same_scenario(monkeypatch, sample_db, models):
    from urllib.parse import parse_qs, urlparse

    user = shopper_with(sample_db, ("coffee", "breakfast"))
    at = open_page(monkeypatch, sample_db, scenario_params(user, local(MONDAY, 8, 30, "pc", "push", "office")))
    main = top_list(at)
    for link in main["why"]:
        url = urlparse(link)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        assert url.path == "/why-pushed"
        assert (params["user"], params["at"], params["device"], params["location"], params["k"]) == (
            user, "2025-12-15T08:30", "pc", "office", "10")
    assert len({urlparse(link).query for link in main["why"]}) == len(main)  # one item each


def test_controls_follow_what_the_model_reads(monkeypatch, sample_db, models, second_model):
    at = open_page(monkeypatch, sample_db)
    lm = recommend.load_model(models[0])
    for field in ("device", "channel", "location"):  # greyed out exactly when the model does not read the field
        assert at.selectbox(key=f"scene_{field}").disabled == (field not in lm.context_fields), field
    assert any(c.value.startswith(t("model.reads", "en", fields="")) for c in at.caption)
    pop = next(k for k in at.selectbox(key="scenario_model").options if "pop" in k)
    at.selectbox(key="scenario_model").set_value(pop).run()  # a popularity count reads no context at all
    assert not at.exception
    assert all(at.selectbox(key=f"scene_{f}").disabled for f in ("device", "channel", "location"))
    assert at.slider(key="hour").disabled and at.radio(key="promo").disabled
    assert t("scenario.not_read", "en", field="Device") == at.selectbox(key="scene_device").help


def test_out_of_range_inputs_get_a_message_next_to_the_field(monkeypatch, sample_db, models):
    at = open_page(monkeypatch, sample_db)
    at.number_input(key="k").set_value(100000).run()
    assert t("scenario.k_range", "en", low=1, high=50) in texts(at.error) and not at.dataframe
    at.number_input(key="k").set_value(-5).run()
    assert t("scenario.k_range", "en", low=1, high=50) in texts(at.error)
    at.number_input(key="k").set_value(7).run()
    assert not at.error and len(top_list(at)) == 7
    at.number_input(key="minute").set_value(75).run()
    assert t("scenario.minute_range", "en") in texts(at.error) and not at.dataframe
    at.number_input(key="minute").set_value(30).run()
    assert at.slider(key="hour").proto.format.endswith(":30")  # the hour slider shows the minute
    at.date_input(key="day").set_value(dt.date(1900, 1, 1)).run()
    assert any(e.value.startswith("Choose a day between") for e in at.error) and not at.dataframe
    at.date_input(key="day").set_value(MONDAY).run()
    assert not at.error and len(top_list(at)) == 7


# --- clear messages instead of tracebacks ----------------------------------------------------------


def test_unknown_shopper(monkeypatch, sample_db, models):
    at = open_page(monkeypatch, sample_db, {"user": "nobody"})
    assert "`nobody`" in texts(at.warning) and not at.dataframe
    at.text_input(key="user").set_value("").run()
    assert t("scenario.pick_shopper", "en") in texts(at.info)
    at.button(key="random_user").click().run()
    assert not at.exception and len(top_list(at)) == sc.DEFAULT_K


def test_database_without_a_model(monkeypatch, sample_db):
    import views._common as common

    monkeypatch.setattr(common, "model_dirs", lambda: [])
    at = open_page(monkeypatch, sample_db)
    assert [w.value for w in at.warning] == [t("train.notice_none", "en")]
    assert at.button(key="train_for_this_data").label == t("train.for_this_data", "en")


def test_a_model_of_other_data_is_not_used_and_training_is_offered(monkeypatch, tmp_path):
    """The bundled model on a database it was not trained on (and whose items it does not know): one line, no list
    of its own catalogue, and "Train a model for this data" starts a job here."""
    import views._training as training
    from recsys_core import jobs
    from recsys_core.recommend import bundled_model_dir
    from tests.app_db import build_small_store

    db = build_small_store(tmp_path / "small.duckdb")
    monkeypatch.setattr(training, "models_root", lambda: tmp_path / "models")
    at = open_app_page(monkeypatch, db, PAGE, params={"user": "u0"}, model_dirs=[bundled_model_dir()])
    assert len(at.warning) == 1 and "context_transformer" in at.warning[0].value and "0.0%" in at.warning[0].value
    assert not at.dataframe  # no list of items this database does not have
    at.button(key="train_for_this_data").click().run()
    assert not at.exception and at.success
    job = jobs.status(tmp_path / "models" / ".jobs")
    assert job is not None and job["spec"]["db"] == str(db) and job["spec"]["epochs"] == 20
    jobs.cancel(tmp_path / "models" / ".jobs")


def test_a_corrupt_model_folder(monkeypatch, sample_db, tmp_path):
    import views._common as common

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metadata.json").write_text("{ not json")
    monkeypatch.setattr(common, "model_dirs", lambda: [broken])
    at = open_page(monkeypatch, sample_db)
    assert "could not be loaded" in texts(at.error) and "not valid JSON" in texts(at.error)


def test_empty_database(monkeypatch, tmp_path, models):
    empty = tmp_path / "empty.duckdb"
    connect(empty).close()
    at = open_page(monkeypatch, empty)
    assert t("db.empty", "en", path=empty) in texts(at.info)


def test_in_chinese(monkeypatch, sample_db, models):
    user = shopper_with(sample_db, ("coffee", "breakfast"))
    at = open_page(monkeypatch, sample_db, scenario_params(user, local(MONDAY, 8, 0, "mobile", "push", "commute"), lang="zh"))
    assert at.title[0].value == t("scenario.title", "zh")
    main = top_list(at)
    assert main["category_shown"].str.contains(r"[\u4e00-\u9fff]").all()
    assert main["title_shown"].str.contains(r"[\u4e00-\u9fff]").all()
    assert at.slider(key="hour").label == t("scenario.hour", "zh")


def open_page(monkeypatch, db: Path, params: dict[str, str] | None = None):
    """The app as a browser would open it: the frame first, then the Scenario page (URL parameters kept)."""
    return open_app_page(monkeypatch, db, PAGE, params, timeout=120)


def test_forget_this_shopper_asks_first_then_erases(monkeypatch, sample_db, models, tmp_path):
    import shutil

    db = tmp_path / "forget.duckdb"  # a copy: the other tests keep their shoppers
    shutil.copy(sample_db, db)
    user = shopper_with(db, ("coffee", "breakfast"))

    def events_of(u: str) -> int:
        con = duckdb.connect(str(db), read_only=True)
        try:
            return con.execute("SELECT count(*) FROM events WHERE user_id = ?", [u]).fetchone()[0]
        finally:
            con.close()

    before = events_of(user)
    at = open_page(monkeypatch, db, scenario_params(user, local(MONDAY, 8)))
    open_tab(at, "history")
    assert t("privacy.retrain", "en") not in texts(at.sidebar.warning)
    at.button(key="forget_shopper").click().run()
    assert not at.exception
    assert any(user in w.value and t("privacy.forget_yes", "en") not in w.value for w in at.warning)  # asks, names the shopper
    assert events_of(user) == before  # nothing happens before the confirmation
    at.button(key="forget_cancel").click().run()
    assert not any(user in w.value for w in at.warning) and at.button(key="forget_shopper")
    assert events_of(user) == before
    at.button(key="forget_shopper").click().run()
    at.button(key="forget_confirm").click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    assert len(at.success) == 1 and user in at.success[0].value and format_int(before) in at.success[0].value
    assert events_of(user) == 0
    assert at.session_state["user"] == "" and t("scenario.pick_shopper", "en") in texts(at.info)
    # the bundled model was trained on exactly this data: the sidebar says to retrain it
    assert t("privacy.retrain", "en") in texts(at.sidebar.warning)
