"""AppTest of the Monitoring page: a time_split model's windows, charts and alerts in English and Chinese, the
thresholds re-judging the same windows, a model with nothing to monitor refused in one line, "Update now"."""

from __future__ import annotations

import pytest

from recsys_core import jobs, monitor, train
from recsys_core.i18n import t
from recsys_core.sequences import parse_cut
from recsys_core.store import connect
from tests.app_db import build_small_store, open_app_page

PAGE = "views/monitoring.py"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The small store (2024-10-28 .. 11-17, nothing on 11-05), a context_pop cut at 2024-11-14 (trained before 11-07)
    and a pop model trained on everything."""
    folder = tmp_path_factory.mktemp("monitoring-page")
    db = build_small_store(folder / "small.duckdb")
    con = connect(db, read_only=True)
    try:
        train.train(con, "context_pop", "time_split", folder / "ctxpop", train.TrainConfig(seed=3), progress=False,
                    cut=parse_cut("2024-11-14", "Asia/Shanghai"))
        train.train(con, "pop", "next_event", folder / "pop_all", train.TrainConfig(seed=3), progress=False)
    finally:
        con.close()
    return db, [folder / "ctxpop", folder / "pop_all"]


def expected(db, model_dir) -> dict:
    con = connect(db, read_only=True)
    try:
        return monitor.monitor(con, str(model_dir))
    finally:
        con.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_windows_charts_and_alerts(monkeypatch, world, lang):
    db, dirs = world
    at = open_app_page(monkeypatch, db, PAGE, params={"lang": lang}, model_dirs=dirs)
    assert at.title[0].value == t("monitor.title", lang)
    cli = expected(db, dirs[0])
    assert cli["alerts"], "the small store's empty day 11-05 makes the weekday mix of the reference week drift"
    alerts = at.dataframe[0].value
    assert len(alerts) == len(cli["alerts"])
    assert list(alerts[t("monitor.col.value", lang)]) == [a["value"] for a in cli["alerts"]]
    assert t("monitor.field.weekday", lang) in set(alerts[t("monitor.col.field", lang)])
    windows = at.dataframe[1].value
    assert len(windows) == len(cli["windows"])
    assert list(windows["NDCG@10"]) == [w["metrics"]["NDCG@10"] for w in cli["windows"]]
    assert len(at.get("plotly_chart")) == 4  # quality, PSI, category mix, coverage
    assert any(cli["training_cutoff"][:10] in m.value for m in at.markdown)


def test_thresholds_rejudge_the_same_windows(monkeypatch, world):
    db, dirs = world
    at = open_app_page(monkeypatch, db, PAGE, model_dirs=dirs[::-1])
    assert at.selectbox(key="monitor_model").value == str(dirs[0])  # the time_split model is picked first
    assert len(at.dataframe) == 2  # alerts, windows
    at.number_input(key="monitor_psi").set_value(5.0).run()
    at.number_input(key="monitor_ndcg_drop").set_value(0.99).run()
    assert not at.exception
    assert [s.value for s in at.success] == [t("monitor.no_alerts", "en")]
    assert len(at.dataframe) == 1  # only the windows table


def test_a_model_with_nothing_after_its_cutoff_is_refused_in_one_line(monkeypatch, world):
    db, dirs = world
    at = open_app_page(monkeypatch, db, PAGE, model_dirs=dirs)
    at.selectbox(key="monitor_model").set_value(str(dirs[1])).run()
    assert not at.exception
    assert at.warning and "no events after the model's training cut-off" in at.warning[0].value
    assert not at.get("plotly_chart")


def test_update_now_refuses_a_count_model_in_one_line(monkeypatch, world, tmp_path):
    db, dirs = world
    monkeypatch.setenv("SCENEPUSH_MODELS_DIR", str(tmp_path))
    at = open_app_page(monkeypatch, db, PAGE, model_dirs=dirs)
    at.button(key="monitor_update").click().run()
    assert not at.exception
    assert any("count models are refit" in w.value for w in at.warning)
    assert jobs.status(tmp_path / ".jobs") is None  # nothing started


def test_update_now_starts_an_update_job_up_to_the_as_of_day(monkeypatch, world, tmp_path):
    db, _ = world
    con = connect(db, read_only=True)
    try:
        parent = tmp_path / "ct"
        train.train(con, "context_transformer", "time_split", parent, train.TrainConfig(seed=3, epochs=1, max_len=20, d_model=16),
                    progress=False, cut=parse_cut("2024-11-14", "Asia/Shanghai"))
    finally:
        con.close()
    monkeypatch.setenv("SCENEPUSH_MODELS_DIR", str(tmp_path))
    at = open_app_page(monkeypatch, db, PAGE, model_dirs=[parent])
    at.date_input(key="monitor_as_of").set_value(__import__("datetime").date(2024, 11, 12)).run()
    at.button(key="monitor_update").click().run()
    assert not at.exception
    assert any("ct-upd-" in s.value for s in at.success)
    status = jobs.status(tmp_path / ".jobs")
    assert status["spec"]["kind"] == "update" and status["spec"]["until"] == "2024-11-13"
    jobs.cancel(tmp_path / ".jobs")
