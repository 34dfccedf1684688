"""AppTest of the Models page: a card per model folder, and two models compared on the same cases with the
same numbers as `python -m recsys_core compare`."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest

from recsys_core import evaluate, train
from recsys_core.i18n import t
from recsys_core.store import connect
from tests.app_db import build_small_store, open_app_page

PAGE = "views/model_cards.py"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small store, two models trained on it, and one folder that is not a readable model."""
    folder = tmp_path_factory.mktemp("models-page")
    db = build_small_store(folder / "small.duckdb")
    con = connect(db, read_only=True)
    try:
        for model_type in ("pop", "context_pop"):
            train.train(con, model_type, "next_event", folder / model_type, train.TrainConfig(seed=3), progress=False)
    finally:
        con.close()
    cfg = train.TrainConfig(seed=3, epochs=3, patience=10, d_model=16, n_layers=1, max_len=20)
    train.train(con_for(db), "context_transformer", "next_event", folder / "ct", cfg, progress=False)
    broken = folder / "broken"
    broken.mkdir()
    (broken / "metadata.json").write_text("{not json")
    return db, [folder / "pop", folder / "context_pop", broken, folder / "ct"]


def con_for(db):
    return connect(db, read_only=True)


def test_cards_then_two_models_side_by_side(monkeypatch, world):
    db, dirs = world
    at = open_app_page(monkeypatch, db, PAGE, model_dirs=dirs[:3])
    cards = at.dataframe[0].value
    types = list(cards[t("models.col.type", "en")])
    assert types[:2] == ["pop", "context_pop"]
    assert types[2].startswith("cannot be read: ") and "corrupt" in types[2]  # the broken folder says why
    assert list(cards[t("models.col.data", "en")])[:2] == [t("models.this_data", "en")] * 2
    assert list(cards[t("models.col.protocol", "en")])[:2] == ["next_event"] * 2
    assert all(int(p.replace(",", "")) > 0 for p in cards[t("models.col.parameters", "en")][:2])

    pick = at.multiselect(key="models_pick")
    assert len(pick.value) == 2  # the two trained on this database are chosen first
    at.button(key="models_compare").click().run()
    assert not at.exception
    table = at.dataframe[1].value
    assert list(table[t("models.col.model", "en")]) == ["pop", "context_pop"]

    cli = evaluate.compare_cli(argparse.Namespace(db=str(db), model_dirs=[str(d) for d in dirs[:2]], protocol=None, allow_mismatch=False))
    for row, model in zip(table["NDCG@10"], cli["models"]):
        assert row.startswith(f"{model['metrics']['NDCG@10']:.4f} [")
    tests = at.dataframe[2].value
    assert list(tests[t("models.col.model", "en")]) == ["context_pop"]
    assert tests[t("models.col.diff", "en")].iloc[0] == pytest.approx(cli["tests"][0]["diff"], abs=1e-4)
    assert at.get("plotly_chart")


def test_another_protocol_is_refused_with_the_message(monkeypatch, world, tmp_path):
    db, dirs = world
    con = connect(db, read_only=True)
    try:
        train.train(con, "pop", "next_session", tmp_path / "pop_session", train.TrainConfig(seed=3), progress=False)
    finally:
        con.close()
    at = open_app_page(monkeypatch, db, PAGE, model_dirs=[dirs[0], tmp_path / "pop_session"])
    at.button(key="models_compare").click().run()
    assert not at.exception
    assert at.error and "next_event" in at.error[0].value and "next_session" in at.error[0].value


def test_where_each_model_wins(monkeypatch, world):
    db, dirs = world
    monkeypatch.setattr(evaluate, "MIN_SLICE_CASES", 5)  # 20 test cases here: some slices judged, some too small
    at = open_app_page(monkeypatch, db, PAGE, model_dirs=dirs[:2])
    at.button(key="models_compare").click().run()
    assert not at.exception
    import json

    heat = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if json.loads(c.proto.spec)["data"][0]["type"] == "heatmap")
    trace = heat["data"][0]
    rows, text = trace["y"], trace["text"]
    assert any(r.startswith("Device: ") for r in rows)  # a scene field of the schema, by its label
    assert any(r.startswith(t("models.slice.hour_bucket", "en")) for r in rows)
    # a judged row marks exactly one winner; a row too small to judge marks none and has no colour
    judged = 0
    for row, row_text, z in zip(rows, text, trace["z"]):
        stars = sum(cell.endswith("★") for cell in row_text)
        n = int(row.rsplit("(n=", 1)[1].rstrip(")"))
        assert stars == (0 if n < 5 else 1) and all(v is None for v in z) == (n < 5), row
        judged += n >= 5
    assert 0 < judged < len(rows)


def test_state_in_the_url_opens_the_comparison_with_bias_novelty_slice_cases_and_curves(monkeypatch, world):
    db, dirs = world
    monkeypatch.setattr(evaluate, "MIN_SLICE_CASES", 5)
    keys = [str(d) for d in (dirs[0], dirs[3])]
    at = open_app_page(monkeypatch, db, PAGE, model_dirs=dirs,
                       params={"models": ",".join(keys), "ref": keys[1], "slice": "device=tablet"})
    # compared at once, the reference (ct) first
    table = at.dataframe[1].value
    assert list(table[t("models.col.model", "en")]) == ["context_transformer", "pop"]
    assert 0 <= table[t("models.col.popularity", "en")].min() <= table[t("models.col.popularity", "en")].max() <= 100
    assert (table[t("models.col.novelty", "en")] > 0).all()
    assert at.selectbox(key="models_ref").value == keys[1]
    # the slice from the URL lists its cases, each linking to the Scenario page at that shopper and moment
    assert at.selectbox(key="models_slice").value == "device=tablet"
    cases = next(df.value for df in at.dataframe if t("models.col.moment", "en") in df.value.columns)
    assert len(cases) > 0
    link = cases[t("models.col.open", "en")].iloc[0]
    assert link.startswith("/scenario-simulator?user=") and "&at=20" in link
    assert all("device=tablet" in link for link in cases[t("models.col.open", "en")])  # the case's own scene
    assert len(cases) == 12 and cases[t("models.col.moment", "en")].str.match(r"^2024-11-\d\d \d\d:\d\d$").all()
    assert {f"Rank · {m}" for m in ("pop", "context_transformer")} <= set(cases.columns)
    # learning curves of the network: loss and validation NDCG per epoch, the kept epoch marked
    import json

    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    curves = next(s for s in specs if any("validation NDCG@10" in (tr.get("name") or "") for tr in s["data"]))
    ndcg = next(tr for tr in curves["data"] if "validation NDCG@10" in (tr.get("name") or ""))
    assert ndcg["x"] == [1, 2, 3]
    marker = next(tr for tr in curves["data"] if tr.get("mode") == "markers")
    assert marker["y"][0] == max(ndcg["y"])
    # choosing another slice changes the URL
    at.selectbox(key="models_slice").set_value("device=pc").run()
    assert at.query_params["slice"] == "device=pc"
    cases = next(df.value for df in at.dataframe if t("models.col.moment", "en") in df.value.columns)
    assert len(cases) == 6


def test_a_model_of_other_data_is_shown_as_such_and_not_offered(monkeypatch, world, tmp_path):
    db, dirs = world
    other_db = build_small_store(tmp_path / "other.duckdb", scene=False)
    con = connect(other_db)
    con.execute("DELETE FROM events WHERE user_id = 'u3'")  # other data: another fingerprint, same catalogue
    con.close()
    con = connect(other_db, read_only=True)
    try:
        train.train(con, "pop", "next_event", tmp_path / "pop_other", train.TrainConfig(seed=3), progress=False)
    finally:
        con.close()
    at = open_app_page(monkeypatch, db, PAGE, model_dirs=[dirs[0], dirs[1], tmp_path / "pop_other"])
    cards = at.dataframe[0].value
    data_col = list(cards[t("models.col.data", "en")])
    assert data_col[2].startswith(t("models.other_data", "en")) and data_col[2].endswith("100.0%")
    assert str(tmp_path / "pop_other") not in at.multiselect(key="models_pick").options
    assert any(str(tmp_path / "pop_other") in c.value for c in at.caption)


def test_training_from_the_page_adds_a_model_without_a_restart(monkeypatch, world, tmp_path):
    import time

    import views._common as common
    import views._training as training
    from recsys_core import jobs, registry

    db, dirs = world
    monkeypatch.setattr(training, "models_root", lambda: tmp_path / "models")
    at = open_app_page(monkeypatch, db, PAGE, model_dirs=dirs[:2])
    monkeypatch.setattr(common, "model_dirs", lambda: list(dirs[:2]) + registry.list_model_dirs(tmp_path / "models"))
    at.selectbox(key="train_model_type").set_value("sasrec")
    at.number_input(key="train_epochs").set_value(2)
    at.text_input(key="train_name").set_value("sasrec-from-page")
    at.button[[b.label for b in at.button].index(t("train.start", "en"))].click().run()
    assert not at.exception and not at.error
    deadline = time.monotonic() + 120
    while jobs.status(tmp_path / "models" / ".jobs")["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    at.run()
    assert jobs.status(tmp_path / "models" / ".jobs")["state"] == "done"
    assert any(t("train.done", "en").split(" ")[0] in s.value and "sasrec-from-page" in s.value for s in at.success)
    folders = list(at.dataframe[0].value[t("models.col.folder", "en")])
    assert str(tmp_path / "models" / "sasrec-from-page") in folders


def test_a_case_link_opens_the_scenario_page_at_that_shopper_and_moment(monkeypatch, world):
    import datetime as dt
    from urllib.parse import parse_qsl, urlparse

    db, dirs = world
    keys = [str(d) for d in (dirs[0], dirs[3])]
    at = open_app_page(monkeypatch, db, PAGE, model_dirs=dirs, params={"models": ",".join(keys), "slice": "device=pc"})
    cases = next(df.value for df in at.dataframe if t("models.col.moment", "en") in df.value.columns)
    link = urlparse(cases[t("models.col.open", "en")].iloc[0])
    assert link.path == "/scenario-simulator"
    params = dict(parse_qsl(link.query))
    scenario = open_app_page(monkeypatch, db, "views/scenario.py", params=params, model_dirs=dirs)
    assert not scenario.exception and not scenario.warning
    moment = dt.datetime.fromisoformat(params["at"])
    assert scenario.session_state["user"] == params["user"] == cases[t("models.col.user", "en")].iloc[0]
    assert scenario.session_state["day"] == moment.date() and scenario.session_state["hour"] == moment.hour
    assert scenario.session_state["scene_device"] == "pc"


def test_time_split_models_are_compared_at_their_cut_and_another_cut_is_refused(monkeypatch, world, tmp_path):
    import datetime as dt

    import views._common as common
    import views._training as training
    from recsys_core import jobs, registry
    from recsys_core.sequences import parse_cut

    db, _ = world
    con = connect(db, read_only=True)
    try:
        for model_type in ("pop", "context_pop"):
            train.train(con, model_type, "time_split", tmp_path / f"{model_type}_ts", train.TrainConfig(seed=3), progress=False,
                        cut=parse_cut("2024-11-12", "Asia/Shanghai"))
    finally:
        con.close()
    dirs = [tmp_path / "pop_ts", tmp_path / "context_pop_ts"]
    cut = "2024-11-12T00:00:00+08:00"
    at = open_app_page(monkeypatch, db, PAGE, model_dirs=dirs, params={"models": ",".join(str(d) for d in dirs)})
    assert list(at.dataframe[0].value[t("models.col.protocol", "en")]) == [f"time_split (cut {cut})"] * 2
    # the protocol follows the reference's training, the cut its recorded one; both go into the URL
    assert at.selectbox(key="models_protocol").value == "time_split"
    assert at.date_input(key="models_cut").value == dt.date(2024, 11, 12)
    assert at.query_params["protocol"] == "time_split" and at.query_params["cut"] == cut
    captions = [c.value for c in at.caption]
    line = next(c for c in captions if "full ranking, time_split" in c)
    assert f"time_split (cut {cut})" in line and " cases of " in line
    assert any("resamples shoppers with all their cases" in c for c in captions)
    cli = evaluate.compare_cli(argparse.Namespace(db=str(db), model_dirs=[str(d) for d in dirs], protocol=None, allow_mismatch=False, cut=None))
    for row, model in zip(at.dataframe[1].value["NDCG@10"], cli["models"]):
        assert row.startswith(f"{model['metrics']['NDCG@10']:.4f} [{model['ci95']['NDCG@10'][0]:.4f}, ")
    # another day is another cut: refused, naming both
    at.date_input(key="models_cut").set_value(dt.date(2024, 11, 10)).run()
    assert not at.exception and at.query_params["cut"] == "2024-11-10"
    assert at.error and cut in at.error[0].value and "2024-11-10T00:00:00+08:00" in at.error[0].value

    # the training form takes time_split with a cut date (default: the start of the data's last 7 days)
    monkeypatch.setattr(training, "models_root", lambda: tmp_path / "models")
    at = open_app_page(monkeypatch, db, PAGE, model_dirs=dirs)
    monkeypatch.setattr(common, "model_dirs", lambda: list(dirs) + registry.list_model_dirs(tmp_path / "models"))
    assert at.date_input(key="train_cut").value == dt.date(2024, 11, 11)
    at.selectbox(key="train_model_type").set_value("pop")
    at.selectbox(key="train_protocol").set_value("time_split")
    at.date_input(key="train_cut").set_value(dt.date(2024, 11, 9))
    at.text_input(key="train_name").set_value("pop-ts-from-page")
    at.button[[b.label for b in at.button].index(t("train.start", "en"))].click().run()
    assert not at.exception and not at.error
    import time

    deadline = time.monotonic() + 120
    while jobs.status(tmp_path / "models" / ".jobs")["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert jobs.status(tmp_path / "models" / ".jobs")["state"] == "done"
    assert registry.read_metadata(tmp_path / "models" / "pop-ts-from-page")["cut"] == "2024-11-09T00:00:00+08:00"
