"""Analytics queries against hand-computed answers on a tiny store.

The tiny world (timezone Asia/Shanghai, UTC+8; 2024-11-11 is a Monday):

  #  user item behaviour  UTC               local             device  channel      location
  1  u1   i1   pv         2024-11-10 16:05  11-11 00:05 Mon   mobile  search       home
  2  u1   i1   cart       2024-11-10 16:10  11-11 00:10 Mon   mobile  search       home
  3  u1   i1   buy        2024-11-10 16:20  11-11 00:20 Mon   mobile  search       home
  4  u2   i2   pv         2024-11-11 00:30  11-11 08:30 Mon   pc      home_feed    office
  5  u2   i3   pv         2024-11-11 15:59  11-11 23:59 Mon   pc      home_feed    office
  6  u2   i3   fav        2024-11-11 16:00  11-12 00:00 Tue   mobile  push         commute
  7  u3   i2   pv         2024-11-12 01:00  11-12 09:00 Tue   mobile  search       commute
  8  u3   i9   pv         2024-11-09 23:00  11-10 07:00 Sun   tablet  live_stream  city

Items: i1 phones/手机 2999, i2 and i3 coffee/咖啡; i9 is not in the catalogue.
"""

from __future__ import annotations

import math
from datetime import date, datetime

import pytest

from recsys_core.context import scene_field
from recsys_core.store import analytics, connect, set_meta
from recsys_core.store.scene import ensure_scene_fields
from recsys_core.store.analytics import EventFilter

EVENTS = [
    ("u1", "i1", "pv", datetime(2024, 11, 10, 16, 5), "mobile", "search", "home"),
    ("u1", "i1", "cart", datetime(2024, 11, 10, 16, 10), "mobile", "search", "home"),
    ("u1", "i1", "buy", datetime(2024, 11, 10, 16, 20), "mobile", "search", "home"),
    ("u2", "i2", "pv", datetime(2024, 11, 11, 0, 30), "pc", "home_feed", "office"),
    ("u2", "i3", "pv", datetime(2024, 11, 11, 15, 59), "pc", "home_feed", "office"),
    ("u2", "i3", "fav", datetime(2024, 11, 11, 16, 0), "mobile", "push", "commute"),
    ("u3", "i2", "pv", datetime(2024, 11, 12, 1, 0), "mobile", "search", "commute"),
    ("u3", "i9", "pv", datetime(2024, 11, 9, 23, 0), "tablet", "live_stream", "city"),
]
ITEMS = [
    ("i1", "Flagship phone", "旗舰手机", "phones", "手机", "Mi", 2999.0),
    ("i2", "Latte beans", "拿铁咖啡豆", "coffee", "咖啡", "Brew", 25.0),
    ("i3", "Cold brew", "冷萃咖啡", "coffee", "咖啡", "Brew", 19.0),
]


@pytest.fixture
def con(tmp_db):
    c = connect(tmp_db)
    ensure_scene_fields(c, [scene_field(f) for f in ("device", "channel", "location")])
    c.executemany(
        "INSERT INTO events (user_id, item_id, behavior, ts, device, channel, location, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(*e, n) for n, e in enumerate(EVENTS)],
    )
    c.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?)", ITEMS)
    set_meta(c, "timezone", "Asia/Shanghai")
    yield c
    c.close()


@pytest.fixture
def empty(tmp_db):
    c = connect(tmp_db)
    yield c
    c.close()


def test_database_stats(con):
    con.execute(
        "INSERT INTO import_runs VALUES ('r1', 'x.csv', 'csv', 'abc', TIMESTAMP '2024-12-01 10:00', 9, 8, 1, 'ok')"
    )
    s = analytics.database_stats(con)
    assert (s["shoppers"], s["items"], s["catalogue_items"], s["events"]) == (3, 4, 3, 8)
    assert s["timezone"] == "Asia/Shanghai"
    assert s["first_event_local"] == "2024-11-10 07:00:00"
    assert s["last_event_local"] == "2024-11-12 09:00:00"
    assert s["days"] == 3
    assert s["behaviors"] == {"pv": 5, "fav": 1, "cart": 1, "buy": 1}
    assert s["scene_mix"]["device"] == {"mobile": 5, "pc": 2, "tablet": 1}
    assert s["scene_mix"]["location"] == {"home": 3, "commute": 2, "office": 2, "city": 1}
    assert s["import_runs"][0]["rows_quarantined"] == 1
    assert s["import_runs"][0]["started_at"] == "2024-12-01 10:00:00"
    assert s["pushes"] == 0


def test_stats_and_queries_on_an_empty_store(empty):
    s = analytics.database_stats(empty)
    assert s["events"] == 0 and s["first_event_local"] is None and s["days"] == 0
    assert s["behaviors"] == {"pv": 0, "fav": 0, "cart": 0, "buy": 0}
    assert analytics.date_range(empty) == (None, None)
    assert analytics.hour_weekday(empty)["events"].sum() == 0
    assert len(analytics.hour_weekday(empty)) == 7 * 24
    assert analytics.hour_weekday(empty, by_category=True).empty
    assert analytics.daily_events(empty).empty
    assert analytics.top_items(empty).empty
    with pytest.raises(ValueError, match="unknown scene field 'device'; this data has none"):
        analytics.scene_funnel(empty, EventFilter(), "device")
    assert analytics.scene_mix(empty).empty and analytics.filter_options(empty)["scene"] == {}
    conv = analytics.conversion_by_hour(empty)
    assert len(conv) == 24 and conv["buy"].sum() == 0 and conv["buy_rate"].isna().all()
    assert analytics.funnel_from_counts(s["behaviors"])["events"].tolist() == [0, 0, 0]


def test_daily_events_use_local_dates(con):
    df = analytics.daily_events(con)
    got = {(str(r.date)[:10], r.behavior): r.events for r in df.itertuples()}
    assert got == {
        ("2024-11-10", "pv"): 1,
        ("2024-11-11", "pv"): 3,
        ("2024-11-11", "cart"): 1,
        ("2024-11-11", "buy"): 1,
        ("2024-11-12", "fav"): 1,
        ("2024-11-12", "pv"): 1,
    }


def test_date_filter_is_local_and_inclusive(con):
    # 11-11 local covers 23:59 (event 5) but not 00:00 of the 12th (event 6).
    f = EventFilter(start=date(2024, 11, 11), end=date(2024, 11, 11))
    assert sum(analytics.behavior_counts(con, f).values()) == 5
    assert {str(d)[:10] for d in analytics.daily_events(con, f)["date"]} == {"2024-11-11"}
    with pytest.raises(ValueError, match="after"):
        EventFilter(start=date(2024, 11, 12), end=date(2024, 11, 11))


def test_hour_weekday_grid(con):
    df = analytics.hour_weekday(con)
    assert len(df) == 7 * 24
    nonzero = {(r.weekday, r.hour): r.events for r in df.itertuples() if r.events}
    assert nonzero == {(0, 0): 3, (0, 8): 1, (0, 23): 1, (1, 0): 1, (1, 9): 1, (6, 7): 1}


def test_hour_weekday_per_category(con):
    df = analytics.hour_weekday(con, EventFilter(categories=("coffee",)), by_category=True)
    assert set(df["category"]) == {"coffee"} and len(df) == 7 * 24
    nonzero = {(r.weekday, r.hour): r.events for r in df.itertuples() if r.events}
    assert nonzero == {(0, 8): 1, (0, 23): 1, (1, 0): 1, (1, 9): 1}
    both = analytics.hour_weekday(con, by_category=True)
    assert both.groupby("category")["events"].sum().to_dict() == {"coffee": 4, "phones": 3}


def test_scene_and_behaviour_filters(con):
    f = EventFilter(behaviors=("pv",), scene={"device": ("mobile",)})
    assert analytics.behavior_counts(con, f) == {"pv": 2, "fav": 0, "cart": 0, "buy": 0}
    f = EventFilter(scene={"channel": ("home_feed", "push"), "location": ("office",)})
    assert sum(analytics.behavior_counts(con, f).values()) == 2
    with pytest.raises(ValueError, match="choose from"):
        EventFilter(behaviors=("click",))


def test_funnel(con):
    df = analytics.funnel_from_counts(analytics.database_stats(con)["behaviors"])
    assert df["stage"].tolist() == ["pv", "fav_cart", "buy"]
    assert df["events"].tolist() == [5, 2, 1]
    assert df["share_of_views"].tolist() == [1.0, 0.4, 0.2]
    assert analytics.funnel_from_counts({"pv": 0})["share_of_views"].isna().all()


def test_scene_funnel(con):
    df = analytics.scene_funnel(con, EventFilter(), "device").set_index("value")
    assert df.index.tolist() == ["mobile", "pc", "tablet"]
    assert df.loc["mobile", ["pv", "fav", "cart", "buy"]].tolist() == [2, 1, 1, 1]
    assert df.loc["mobile", "fav_cart_rate"] == 1.0 and df.loc["mobile", "buy_rate"] == 0.5
    assert df.loc["pc", "buy_rate"] == 0.0
    with pytest.raises(ValueError, match="unknown scene field"):
        analytics.scene_funnel(con, EventFilter(), "weather; DROP TABLE events")


def test_conversion_by_hour(con):
    df = analytics.conversion_by_hour(con).set_index("hour")
    assert len(df) == 24
    assert df.loc[0, ["pv", "fav", "cart", "buy"]].tolist() == [1, 1, 1, 1]
    assert df.loc[0, "buy_rate"] == 1.0 and df.loc[0, "fav_cart_rate"] == 2.0
    assert df.loc[8, "buy_rate"] == 0.0
    assert math.isnan(df.loc[12, "buy_rate"])


def test_top_items_and_categories(con):
    items = analytics.top_items(con, limit=3)
    assert items["item_id"].tolist() == ["i1", "i2", "i3"]
    assert items.iloc[0][["events", "pv", "cart", "buy"]].tolist() == [3, 1, 1, 1]
    assert items.iloc[0]["title_zh"] == "旗舰手机" and items.iloc[0]["buy_rate"] == 1.0
    everything = analytics.top_items(con)
    assert everything["item_id"].tolist()[-1] == "i9" and everything["title"].isna().tolist()[-1]
    cats = analytics.top_categories(con)
    assert cats[["category", "events"]].values.tolist() == [["coffee", 4], ["phones", 3], ["unknown", 1]]
    assert cats.iloc[0]["category_zh"] == "咖啡"
    mobile_buys = analytics.top_items(con, EventFilter(behaviors=("buy",), scene={"device": ("mobile",)}))
    assert mobile_buys["item_id"].tolist() == ["i1"]


def test_scene_mix_and_active_shoppers(con):
    mix = analytics.scene_mix(con)
    loc = mix[mix["scene"] == "location"].set_index("value")
    assert loc["events"].to_dict() == {"home": 3, "commute": 2, "office": 2, "city": 1}
    assert loc.loc["home", "share"] == 3 / 8
    from_stats = analytics.scene_mix_frame(analytics.database_stats(con)["scene_mix"])
    assert from_stats.equals(mix)
    shoppers = analytics.active_shoppers(con)
    assert shoppers.values.tolist() == [["u1", 3, 1], ["u2", 3, 0], ["u3", 2, 0]]


def test_shopper_timeline(con):
    df = analytics.shopper_timeline(con, "u2")
    assert df["local_time"].astype(str).tolist() == [
        "2024-11-11 08:30:00",
        "2024-11-11 23:59:00",
        "2024-11-12 00:00:00",
    ]
    assert df["behavior"].tolist() == ["pv", "pv", "fav"]
    assert df["category_zh"].tolist() == ["咖啡", "咖啡", "咖啡"]
    assert analytics.shopper_timeline(con, "u2", limit=1)["behavior"].tolist() == ["fav"]
    assert analytics.shopper_timeline(con, "nobody").empty


def test_filter_options(con):
    opts = analytics.filter_options(con)
    assert (opts["start"], opts["end"]) == (date(2024, 11, 10), date(2024, 11, 12))
    assert opts["categories"] == ["coffee", "phones"]
    assert opts["category_zh"] == {"coffee": "咖啡", "phones": "手机"}
    assert opts["scene_fields"] == ["device", "channel", "location"]
    assert opts["scene"]["device"] == ["mobile", "pc", "tablet"]


def test_a_new_scene_field_is_filtered_and_mixed_like_the_others(con):
    ensure_scene_fields(con, [scene_field("weather")])
    con.execute("UPDATE events SET weather = 'rain' WHERE user_id = 'u2'")
    assert analytics.filter_options(con)["scene"]["weather"] == ["rain", "unknown"]
    assert analytics.behavior_counts(con, EventFilter(scene={"weather": ("rain",)})) == {"pv": 2, "fav": 1, "cart": 0, "buy": 0}
    mix = analytics.scene_mix(con)
    assert mix[mix["scene"] == "weather"].set_index("value")["events"].to_dict() == {"unknown": 5, "rain": 3}
    assert "weather" in analytics.shopper_timeline(con, "u2").columns
    with pytest.raises(ValueError, match="unknown scene field 'mood'"):
        analytics.behavior_counts(con, EventFilter(scene={"mood": ("x",)}))


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata", "Asia/Kathmandu", "America/New_York", "Australia/Lord_Howe"])
def test_bucketed_local_time_matches_row_by_row(con, tz):
    """The 15-minute-bucket shortcut gives exactly the per-row local hour and weekday, whatever the offset."""
    set_meta(con, "timezone", tz)
    con.execute(
        "INSERT INTO events (user_id, item_id, behavior, ts, seq) "
        "SELECT 'u' || (i % 7), 'i1', 'pv', TIMESTAMP '2024-03-01' + to_minutes(i * 37), 100 + i FROM range(3000) t(i)"
    )
    expected = con.execute(
        "SELECT isodow(lt) - 1 AS weekday, hour(lt) AS hour, count(*) AS n "
        "FROM (SELECT timezone(?, ts AT TIME ZONE 'UTC') AS lt FROM events) GROUP BY ALL",
        [tz],
    ).fetchall()
    got = analytics.hour_weekday(con)
    assert {(r.weekday, r.hour): r.events for r in got.itertuples() if r.events} == {(w, h): n for w, h, n in expected}
    days = con.execute(
        "SELECT timezone(?, ts AT TIME ZONE 'UTC')::DATE AS d, count(*) FROM events GROUP BY d", [tz]
    ).fetchall()
    per_day = analytics.daily_events(con).groupby("date")["events"].sum()
    assert {d.date(): n for d, n in per_day.items()} == dict(days)


def test_unknown_timezone_falls_back_to_default(con):
    set_meta(con, "timezone", "Mars/Olympus_Mons")
    assert analytics.data_timezone(con) == "Asia/Shanghai"


def test_calendar_days_between():
    days = analytics.calendar_days_between(date(2024, 6, 1), date(2025, 6, 18))
    assert days["promotion"] == [date(2024, 6, 18), date(2024, 11, 11), date(2024, 12, 12), date(2025, 6, 18)]
    assert date(2024, 10, 1) in days["holiday"] and date(2024, 11, 11) not in days["holiday"]
    assert analytics.calendar_days_between(date(2024, 1, 1), date(2024, 6, 17))["promotion"] == []
