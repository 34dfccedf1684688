"""Recording a top-k as pushes: moment in UTC, scene, model version, rank, score, reasons."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

from recsys_core.context import Scenario, to_utc
import pandas as pd
import pytest

from recsys_core.push import already_pushed, record_pushes
from recsys_core.store import connect, set_meta
from recsys_core.store.pushes import PushFilter, get_pushes, list_pushes

MODEL = SimpleNamespace(version="context_transformer-0123456789")


@pytest.fixture
def con(tmp_db):
    con = connect(tmp_db)
    set_meta(con, "timezone", "Asia/Shanghai")
    con.execute("INSERT INTO items VALUES ('i1', 'Latte', '拿铁', 'coffee', '咖啡', 'b', 30.0), ('i2', 'Bagel', '贝果', 'breakfast', '早餐', 'b', 12.0)")
    yield con
    con.close()


def recs() -> pd.DataFrame:
    return pd.DataFrame({"item_id": ["i1", "i2"], "rank": [1, 2], "score": [3.25, 2.5], "title": ["Latte", "Bagel"]})


def scenario(at=dt.datetime(2025, 12, 15, 8, 0), device="mobile", channel="push", location="commute"):
    return Scenario(at, {"device": device, "channel": channel, "location": location})


def test_moment_utc():
    assert to_utc(dt.datetime(2025, 12, 15, 8, 0), "Asia/Shanghai") == dt.datetime(2025, 12, 15, 0, 0)
    aware = dt.datetime(2025, 12, 15, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert to_utc(aware, "Asia/Shanghai") == dt.datetime(2025, 12, 15, 7, 0)


def test_record_pushes_writes_the_top_k(con):
    ids = record_pushes(con, MODEL, "u1", scenario(), recs())
    assert len(ids) == 2 and len(set(ids)) == 2
    df = get_pushes(con, ids)
    assert df["item_id"].tolist() == ["i1", "i2"] and df["rank"].tolist() == [1, 2]
    assert df["score"].tolist() == [3.25, 2.5]
    row = df.iloc[0]
    assert row["pushed_at"] == dt.datetime(2025, 12, 15, 0, 0)  # stored UTC
    assert row["local_time"] == dt.datetime(2025, 12, 15, 8, 0)
    assert json.loads(row["scene_json"]) == {"device": "mobile", "channel": "push", "location": "commute"}
    assert row["model_version"] == MODEL.version and row["user_id"] == "u1"
    assert df["reasons_json"].isna().all()


def test_reasons_per_item_or_per_row(con):
    ids = record_pushes(con, MODEL, "u1", scenario(), recs(), reasons={"i1": {"summary": "早上 8 点，咖啡"}})
    df = get_pushes(con, ids)
    assert json.loads(df.iloc[0]["reasons_json"]) == {"summary": "早上 8 点，咖啡"}
    assert pd.isna(df.iloc[1]["reasons_json"])
    ids = record_pushes(con, MODEL, "u2", scenario(), recs(), reasons=[["hour"], ["device"]])
    assert [json.loads(r) for r in get_pushes(con, ids)["reasons_json"]] == [["hour"], ["device"]]
    with pytest.raises(ValueError, match="reasons"):
        record_pushes(con, MODEL, "u3", scenario(), recs(), reasons=[["hour"]])


def test_a_second_press_stores_nothing(con):
    first = record_pushes(con, MODEL, "u1", scenario(), recs())
    assert already_pushed(con, MODEL, "u1", scenario(), ["i1", "i2", "i9"]).keys() == {"i1", "i2"}
    assert record_pushes(con, MODEL, "u1", scenario(), recs()) == []
    assert len(list_pushes(con, PushFilter(user_ids=("u1",)))) == len(first) == 2
    # the same items an hour later are new pushes
    assert len(record_pushes(con, MODEL, "u1", scenario(at=dt.datetime(2025, 12, 15, 9, 0)), recs())) == 2


def test_missing_scene_is_unknown_and_empty_lists_are_refused(con):
    ids = record_pushes(con, MODEL, "u1", scenario(device=None, channel=None, location=None), recs().head(1))
    assert json.loads(get_pushes(con, ids).iloc[0]["scene_json"]) == {}
    assert list_pushes(con, PushFilter(scene={"device": ("unknown",)}))["push_id"].tolist() == ids
    with pytest.raises(ValueError, match="empty"):
        record_pushes(con, MODEL, "u1", scenario(), recs().iloc[0:0])
    with pytest.raises(ValueError, match="lacks"):
        record_pushes(con, MODEL, "u1", scenario(), recs().drop(columns=["score"]))
    assert len(list_pushes(con, PushFilter(user_ids=("u1",)))) == 1
