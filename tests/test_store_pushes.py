"""The push audit log in the store: one-transaction inserts, filters, opening a push."""

from __future__ import annotations

import json
from datetime import date, datetime

import duckdb
import pandas as pd
import pytest

from recsys_core.store import connect, set_meta
from recsys_core.store.pushes import (
    PushFilter,
    count_pushes,
    existing_pushes,
    get_push,
    get_pushes,
    insert_pushes,
    list_pushes,
    push_filter_options,
    pushes_on_day,
)


def push(push_id: str, **overrides):
    scene = {"device": "mobile", "channel": "push", "location": "commute"}
    scene.update({k: overrides.pop(k) for k in list(overrides) if k in scene})
    row = {
        "push_id": push_id,
        "pushed_at": datetime(2025, 12, 1, 0, 0),  # 08:00 in Shanghai
        "user_id": "u1",
        "item_id": "i1",
        "rank": 1,
        "score": 2.5,
        "scene_json": scene,
        "model_version": "context_transformer-abc",
        "reasons_json": None,
    }
    row.update(overrides)
    return row


@pytest.fixture
def con(tmp_db):
    con = connect(tmp_db)
    set_meta(con, "timezone", "Asia/Shanghai")
    con.execute(
        "INSERT INTO items VALUES ('i1', 'Latte beans', '拿铁咖啡豆', 'coffee', '咖啡', 'b', 59.0),"
        " ('i2', 'Keyboard', '键盘', 'computer_accessories', '电脑配件', 'b', 199.0)"
    )
    yield con
    con.close()


def test_insert_and_list_with_item_fields_and_local_time(con):
    n = insert_pushes(
        con,
        [
            push("p1", reasons_json=json.dumps({"top": ["hour"]})),
            push("p2", item_id="i2", rank=2, score=1.5),
        ],
    )
    assert n == 2
    df = list_pushes(con)
    assert list(df["push_id"]) == ["p1", "p2"]  # same moment: by rank
    first = df.iloc[0]
    assert first["title_zh"] == "拿铁咖啡豆" and first["category"] == "coffee"
    assert first["local_time"] == datetime(2025, 12, 1, 8, 0)
    assert json.loads(first["reasons_json"]) == {"top": ["hour"]}
    assert pd.isna(df.iloc[1]["reasons_json"])


def test_insert_is_one_transaction(con):
    insert_pushes(con, [push("p1")])
    # the second row repeats the primary key: nothing of this batch may stay
    with pytest.raises(duckdb.ConstraintException):
        insert_pushes(con, [push("p2", item_id="i2"), push("p1", item_id="i3")])
    assert count_pushes(con) == 1
    assert get_push(con, "p2") is None


def test_a_push_is_unique_per_shopper_item_moment_and_model_version(con):
    assert insert_pushes(con, [push("p1"), push("p2", item_id="i2")]) == 2
    # pressing "Push these" again: the same shopper, items, moment and model version store nothing
    assert insert_pushes(con, [push("p3"), push("p4", item_id="i2")]) == 0
    # another moment, another model version or another shopper is a new push
    assert insert_pushes(con, [push("p5", pushed_at=datetime(2025, 12, 2, 0, 0)), push("p6", model_version="v2"),
                               push("p7", user_id="u2")]) == 3
    assert count_pushes(con) == 5
    assert existing_pushes(con, "u1", ["i1", "i2", "i3"], datetime(2025, 12, 1, 0, 0), "context_transformer-abc").keys() == {"i1", "i2"}
    assert pushes_on_day(con, "u1", date(2025, 12, 1)) == 3 and pushes_on_day(con, "u1", date(2025, 12, 3)) == 0


def test_invalid_rows_are_rejected_before_writing(con):
    with pytest.raises(ValueError, match="lacks"):
        insert_pushes(con, [push("p1"), push("p2", score=None)])
    with pytest.raises(ValueError, match="naive UTC"):
        insert_pushes(con, [push("p3", pushed_at=datetime.fromisoformat("2025-12-01T08:00+08:00"))])
    assert count_pushes(con) == 0
    assert insert_pushes(con, []) == 0


def test_filters(con):
    insert_pushes(
        con,
        [
            push("a", user_id="u1", item_id="i1"),
            push("b", user_id="u2", item_id="i2", device="pc", location="office", pushed_at=datetime(2025, 12, 2, 6, 0)),
            # 2025-11-10 16:05 UTC is 11.11 00:05 in Shanghai: the local date decides
            push("c", user_id="u2", item_id="i1", model_version="pop-1", pushed_at=datetime(2025, 11, 10, 16, 5)),
        ],
    )
    ids = lambda f: sorted(list_pushes(con, f)["push_id"])  # noqa: E731
    assert ids(PushFilter()) == ["a", "b", "c"]
    assert ids(PushFilter(start=date(2025, 11, 11), end=date(2025, 11, 11))) == ["c"]
    assert ids(PushFilter(start=date(2025, 12, 2))) == ["b"]
    assert ids(PushFilter(end=date(2025, 12, 1))) == ["a", "c"]
    assert ids(PushFilter(user_ids=("u2",))) == ["b", "c"]
    assert ids(PushFilter(item_ids=("i1",))) == ["a", "c"]
    assert ids(PushFilter(categories=("computer_accessories",))) == ["b"]
    assert ids(PushFilter(scene={"device": ("pc",), "location": ("office",)})) == ["b"]
    assert ids(PushFilter(scene={"channel": ("search",)})) == []
    assert ids(PushFilter(scene={"weather": ("unknown",)})) == ["a", "b", "c"]  # a field the pushes lack is unknown
    assert ids(PushFilter(model_versions=("pop-1",))) == ["c"]
    assert count_pushes(con, PushFilter(user_ids=("u2",))) == 2
    assert list(list_pushes(con, limit=1)["push_id"]) == ["b"]  # newest moment first


def test_filter_values_are_bound_not_spliced(con):
    insert_pushes(con, [push("a")])
    assert list_pushes(con, PushFilter(user_ids=("u1' OR '1'='1",))).empty
    with pytest.raises(TypeError, match="tuple"):
        PushFilter(user_ids="u1")
    with pytest.raises(ValueError, match="after"):
        PushFilter(start=date(2025, 12, 2), end=date(2025, 12, 1))


def test_get_push_and_options(con):
    insert_pushes(con, [push("a"), push("b", item_id="i2", rank=2, device="pc")])
    got = get_push(con, "b")
    assert got["item_id"] == "i2" and got["rank"] == 2 and json.loads(got["scene_json"])["device"] == "pc"
    assert list(get_pushes(con, ["b", "a"])["push_id"]) == ["a", "b"]
    opts = push_filter_options(con)
    assert opts["scene"] == {"channel": ["push"], "device": ["mobile", "pc"], "location": ["commute"]}
    assert opts["category"] == ["coffee", "computer_accessories"]
    assert opts["model_version"] == ["context_transformer-abc"]
    assert opts["start"] == opts["end"] == date(2025, 12, 1)


def test_empty_log(con):
    assert list_pushes(con).empty
    assert push_filter_options(con)["start"] is None


def test_read_only_connection_cannot_write(tmp_db, con):
    con.close()
    ro = connect(tmp_db, read_only=True)
    try:
        with pytest.raises(duckdb.Error):
            insert_pushes(ro, [push("a")])
    finally:
        ro.close()
