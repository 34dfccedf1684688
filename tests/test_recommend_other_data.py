"""A model trained on other data never recommends items the open database does not have (issue: the bundled
model's catalogue shown on an imported Taobao log), and says how much of this catalogue it covers."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from recsys_core import recommend as rec
from recsys_core.context import Scenario
from recsys_core.importers import import_file
from recsys_core.store import connect
from recsys_core.store import events as store_events


@pytest.fixture(scope="module")
def taobao_con(tmp_path_factory):
    from tests.conftest import SHARED_DATA

    db = tmp_path_factory.mktemp("taobao") / "t.duckdb"
    import_file(SHARED_DATA / "taobao_userbehavior_sample.csv", "taobao", db)
    con = connect(db, read_only=True)
    yield con
    con.close()


def test_foreign_model_is_flagged_with_its_coverage(bundled_model, taobao_con):
    fit = rec.data_fit(bundled_model, taobao_con)
    assert fit["same_data"] is False
    assert fit["n_items_here"] > 100
    assert fit["coverage"] < rec.MIN_CATALOGUE_COVERAGE and fit["usable"] is False


def test_foreign_model_never_recommends_items_missing_here(bundled_model, taobao_con):
    user = taobao_con.execute("SELECT user_id FROM events GROUP BY user_id ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
    at = dt.datetime(2017, 12, 1, 20, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    top = rec.recommend(bundled_model, taobao_con, user, Scenario(at, {}), k=50)
    here = set(store_events.read_items_by_id(taobao_con, top["item_id"].tolist()))
    assert set(top["item_id"]) <= here
    # what the model alone would push: its own catalogue, absent here (the filter is what keeps it out)
    own_top = bundled_model.features.items.values[:50]
    assert not set(store_events.read_items_by_id(taobao_con, list(own_top)))


def test_own_model_keeps_its_full_list(bundled_model, sample_world_con):
    fit = rec.data_fit(bundled_model, sample_world_con)
    assert fit["same_data"] is True and fit["usable"] is True and fit["coverage"] == 1.0
    at = dt.datetime(2025, 11, 11, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    top = rec.recommend(bundled_model, sample_world_con, "u00042", Scenario(at, {"device": "mobile"}), k=10)
    assert len(top) == 10 and top["title"].notna().all()
