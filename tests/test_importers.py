"""Importers: real Taobao/Tianchi samples, RetailRocket and generic files, and every kind of bad input.

The counts asserted for the real samples are the ones documented beside
those samples in the team workspace; local hours are checked row by row against Python's
zoneinfo.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import string
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys_core import importers, store
from recsys_core.store import DatabaseLockedError, ingest

SHANGHAI = ZoneInfo("Asia/Shanghai")
TAOBAO = "taobao_userbehavior_sample.csv"
TIANCHI = "tianchi_mobile_user_sample.csv"
TIANCHI_ITEMS = "tianchi_mobile_item_sample.csv"
TIANCHI_CODES = {"1": "pv", "2": "fav", "3": "cart", "4": "buy"}


def query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = store.connect(db, read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def snapshot(db: Path) -> dict[str, list[tuple]]:
    """Every table's rows, sorted: equal snapshots mean an unchanged database."""
    tables = ["events", "items", "users", "import_runs", "quarantine", "meta"]
    return {t: sorted(query(db, f"SELECT * FROM {t}"), key=repr) for t in tables}


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def quarantine(db: Path, run_id: str) -> list[tuple[int, str, str]]:
    return query(db, "SELECT row_number, raw, reason FROM quarantine WHERE run_id = ? ORDER BY row_number", [run_id])


def local_hour_counts(db: Path, run_id: str) -> Counter:
    rows = query(
        db,
        "SELECT hour(timezone(?, ts AT TIME ZONE 'UTC')) AS h, count(*) FROM events WHERE source_run = ? GROUP BY h",
        ["Asia/Shanghai", run_id],
    )
    return Counter(dict(rows))


# --- real samples ------------------------------------------------------------------------


def test_taobao_sample_counts_and_behaviours(shared_data, tmp_db):
    r = importers.import_file(shared_data / TAOBAO, fmt="taobao", db=tmp_db)
    assert (r["rows_read"], r["rows_imported"], r["rows_quarantined"]) == (4321, 4321, 0)
    assert r["status"] == "ok" and not r["already_imported"]
    assert (r["users"], r["items"]) == (43, 3276)
    rid = r["run_id"]
    assert query(tmp_db, "SELECT count(DISTINCT user_id), count(DISTINCT item_id) FROM events WHERE source_run = ?", [rid]) == [(43, 3276)]
    behaviours = dict(query(tmp_db, "SELECT behavior, count(*) FROM events GROUP BY behavior"))
    assert behaviours == {"pv": 3926, "cart": 190, "fav": 128, "buy": 77}
    # The run is recorded; categories from the events file reach items; the data has no scene fields.
    assert query(tmp_db, "SELECT format, rows_read, rows_imported, rows_quarantined, status FROM import_runs") == [
        ("taobao", 4321, 4321, 0, "ok")
    ]
    assert query(tmp_db, "SELECT count(*), count(category) FROM items") == [(3276, 3276)]
    assert query(tmp_db, "SELECT count(*) FROM scene_fields") == [(0,)]
    assert [c[0] for c in query(tmp_db, "DESCRIBE events")] == ["user_id", "item_id", "behavior", "ts", "seq", "source_run", "event_id"]
    assert query(tmp_db, "SELECT count(*) FROM users") == [(43,)]
    assert query(tmp_db, "SELECT value FROM meta WHERE key = 'timezone'") == [("Asia/Shanghai",)]


def test_taobao_unix_seconds_become_utc_and_shanghai_local_hours(shared_data, tmp_db):
    r = importers.import_file(shared_data / TAOBAO, fmt="taobao", db=tmp_db)
    # First row: 1,2268318,2520377,pv,1511544070 = 2017-11-24 17:21:10 UTC = 2017-11-25 01:21:10 in Shanghai.
    ts, local = query(
        tmp_db,
        "SELECT ts, timezone(?, ts AT TIME ZONE 'UTC') FROM events WHERE user_id = '1' AND item_id = '2268318'",
        ["Asia/Shanghai"],
    )[0]
    assert ts == dt.datetime(2017, 11, 24, 17, 21, 10)
    assert local == dt.datetime(2017, 11, 25, 1, 21, 10)
    with (shared_data / TAOBAO).open() as fh:
        expected = Counter(dt.datetime.fromtimestamp(int(row[4]), SHANGHAI).hour for row in csv.reader(fh))
    assert local_hour_counts(tmp_db, r["run_id"]) == expected


def test_tianchi_sample_counts_codes_and_duplicates(shared_data, tmp_db):
    r = importers.import_file(shared_data / TIANCHI, fmt="tianchi", db=tmp_db)
    assert (r["rows_read"], r["rows_imported"], r["rows_quarantined"]) == (1999, 1999, 0)
    assert (r["users"], r["items"]) == (34, 1689)
    behaviours = dict(query(tmp_db, "SELECT behavior, count(*) FROM events GROUP BY behavior"))
    assert behaviours == {"pv": 1876, "fav": 18, "cart": 70, "buy": 35}  # codes 1, 2, 3, 4

    with (shared_data / TIANCHI).open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) - len({tuple(r.values()) for r in rows}) == 104  # the README's repeated rows
    # Every file row is an event, repeats included: multiplicities match exactly.
    expected = Counter(
        (r["user_id"], r["item_id"], TIANCHI_CODES[r["behavior_type"]],
         dt.datetime.strptime(r["time"], "%Y-%m-%d %H").replace(tzinfo=SHANGHAI).astimezone(dt.timezone.utc).replace(tzinfo=None))
        for r in rows
    )
    stored = Counter(query(tmp_db, "SELECT user_id, item_id, behavior, ts FROM events"))
    assert stored == expected


def test_tianchi_hour_resolution_local_time(shared_data, tmp_db):
    r = importers.import_file(shared_data / TIANCHI, fmt="tianchi", db=tmp_db)
    # First data row: 98047837,232431562,1,,4245,2014-12-06 02 -> local hour 2, stored UTC 2014-12-05 18:00.
    ts, local = query(
        tmp_db,
        "SELECT ts, timezone(?, ts AT TIME ZONE 'UTC') FROM events WHERE user_id = '98047837' AND item_id = '232431562'",
        ["Asia/Shanghai"],
    )[0]
    assert ts == dt.datetime(2014, 12, 5, 18, 0)
    assert local == dt.datetime(2014, 12, 6, 2, 0)
    with (shared_data / TIANCHI).open() as fh:
        expected = Counter(int(row["time"][-2:]) for row in csv.DictReader(fh))
    assert local_hour_counts(tmp_db, r["run_id"]) == expected


def test_tianchi_geohash_becomes_location_prefix_and_category_reaches_items(shared_data, tmp_db):
    importers.import_file(shared_data / TIANCHI, fmt="tianchi", db=tmp_db, scene=["location=user_geohash"])
    with (shared_data / TIANCHI).open() as fh:
        rows = list(csv.DictReader(fh))
    expected = Counter(r["user_geohash"][: importers.GEOHASH_PREFIX] or "unknown" for r in rows)
    assert Counter(dict(query(tmp_db, "SELECT location, count(*) FROM events GROUP BY location"))) == expected
    assert sum(n for loc, n in expected.items() if loc != "unknown") == 585
    categories = {r["item_id"]: r["item_category"] for r in rows}
    assert dict(query(tmp_db, "SELECT item_id, category FROM items")) == categories
    assert query(tmp_db, "SELECT name, known_at_decision FROM scene_fields") == [("location", True)]


def test_tianchi_without_scene_option_has_no_scene_fields_and_prefix_length_is_chosen(shared_data, tmp_path):
    plain, longer = tmp_path / "plain.duckdb", tmp_path / "longer.duckdb"
    importers.import_file(shared_data / TIANCHI, fmt="tianchi", db=plain)
    assert query(plain, "SELECT count(*) FROM scene_fields") == [(0,)]
    importers.import_file(shared_data / TIANCHI, fmt="tianchi", db=longer, scene=["cell=user_geohash:6"])
    with (shared_data / TIANCHI).open() as fh:
        expected = Counter(r["user_geohash"][:6] or "unknown" for r in csv.DictReader(fh))
    assert Counter(dict(query(longer, "SELECT cell, count(*) FROM events GROUP BY cell"))) == expected


def test_tianchi_items_file_is_its_own_run(shared_data, tmp_db):
    r = importers.import_file(shared_data / TIANCHI, fmt="tianchi", db=tmp_db, items_path=shared_data / TIANCHI_ITEMS)
    items = r["items_file"]
    assert items["format"] == "tianchi_items"
    assert (items["rows_read"], items["rows_imported"], items["rows_quarantined"], items["items"]) == (1999, 1999, 0, 1836)
    # 1,689 event items + 1,836 listed items, 2 of them in both.
    assert query(tmp_db, "SELECT count(*) FROM items") == [(1689 + 1836 - 2,)]
    assert query(tmp_db, "SELECT format FROM import_runs ORDER BY format") == [("tianchi",), ("tianchi_items",)]
    with (shared_data / TIANCHI_ITEMS).open() as fh:
        listed = {row["item_id"]: row["item_category"] for row in csv.DictReader(fh)}
    stored = dict(query(tmp_db, "SELECT item_id, category FROM items WHERE item_id IN (SELECT unnest(?))", [list(listed)]))
    assert stored == listed


def test_same_file_twice_imports_nothing_the_second_time(shared_data, tmp_db):
    first = importers.import_file(shared_data / TIANCHI, fmt="tianchi", db=tmp_db)
    before = snapshot(tmp_db)
    second = importers.import_file(shared_data / TIANCHI, fmt="tianchi", db=tmp_db)
    assert second["already_imported"] and second["status"] == "already_imported"
    assert second["run_id"] == first["run_id"]
    assert (second["rows_read"], second["rows_imported"], second["rows_quarantined"]) == (0, 0, 0)
    assert snapshot(tmp_db) == before
    assert query(tmp_db, "SELECT count(*) FROM events") == [(1999,)]


def test_same_file_with_other_options_is_a_new_run_with_a_warning(shared_data, tmp_db):
    importers.import_file(shared_data / TIANCHI, fmt="tianchi", db=tmp_db)
    again = importers.import_file(shared_data / TIANCHI, fmt="tianchi", db=tmp_db, tz="UTC")
    assert not again["already_imported"]
    assert any("imported before" in w for w in again["warnings"])
    assert any("timezone was Asia/Shanghai" in w for w in again["warnings"])
    assert query(tmp_db, "SELECT value FROM meta WHERE key = 'timezone'") == [("UTC",)]


# --- RetailRocket and generic files ------------------------------------------------------


def test_retailrocket_events_ms_timestamps_and_event_mapping(tmp_path, tmp_db):
    events = write(tmp_path / "events.csv", (
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1433221332117,257597,view,355908,\n"
        "1433224214164,992329,addtocart,248676,\n"
        "1433221999827,111016,transaction,318965,4000\n"
        "1433221955914,483717,click,253185,\n"
    ))
    props = write(tmp_path / "item_properties.csv", (
        "timestamp,itemid,property,value\n"
        "1435460400000,355908,categoryid,1173\n"
        "1441508400000,355908,categoryid,1200\n"
        "1439089200000,248676,available,1\n"
    ))
    r = importers.import_file(events, fmt="retailrocket", db=tmp_db, items_path=props)
    assert (r["rows_read"], r["rows_imported"], r["rows_quarantined"]) == (4, 3, 1)
    assert query(tmp_db, "SELECT user_id, item_id, behavior, ts FROM events ORDER BY user_id") == [
        ("111016", "318965", "buy", dt.datetime(2015, 6, 2, 5, 13, 19, 827000)),
        ("257597", "355908", "pv", dt.datetime(2015, 6, 2, 5, 2, 12, 117000)),
        ("992329", "248676", "cart", dt.datetime(2015, 6, 2, 5, 50, 14, 164000)),
    ]
    (row, raw, reason), = quarantine(tmp_db, r["run_id"])
    assert (row, raw) == (5, "1433221955914,483717,click,253185,")
    assert "events.csv line 5" in reason and "'event'" in reason and "'click'" in reason
    assert r["items_file"]["format"] == "retailrocket_items" and r["items_file"]["rows_imported"] == 3
    assert query(tmp_db, "SELECT category FROM items WHERE item_id = '355908'") == [("1200",)]  # the latest


def test_generic_csv_header_aliases_scene_fields_price_and_default_behaviour(tmp_path, tmp_db):
    f = write(tmp_path / "log.csv", (
        "user_id,item_id,timestamp,category,device,channel,location,price\n"
        "u1,i1,2024-11-11T08:30:00,coffee,Mobile,push,commute,12.5\n"
        "u1,i2,2024-11-11T08:30:00+00:00,phone,,search,home,\n"
        "u2,i1,1731285000,coffee,pc,home_feed,office,12.5\n"
    ))
    r = importers.import_file(f, fmt="csv", db=tmp_db)
    assert (r["rows_read"], r["rows_imported"], r["rows_quarantined"]) == (3, 3, 0)
    rows = query(tmp_db, "SELECT user_id, item_id, behavior, ts, device, channel, location FROM events ORDER BY user_id, item_id")
    assert rows == [
        # no offset: read in Asia/Shanghai; missing behaviour column: pv; scene lower-cased
        ("u1", "i1", "pv", dt.datetime(2024, 11, 11, 0, 30), "mobile", "push", "commute"),
        ("u1", "i2", "pv", dt.datetime(2024, 11, 11, 8, 30), "unknown", "search", "home"),  # explicit offset
        ("u2", "i1", "pv", dt.datetime(2024, 11, 11, 0, 30), "pc", "home_feed", "office"),  # Unix seconds
    ]
    assert query(tmp_db, "SELECT item_id, category, price FROM items ORDER BY item_id") == [("i1", "coffee", 12.5), ("i2", "phone", None)]


def test_generic_csv_map_sep_ms_and_behaviour_words(tmp_path, tmp_db):
    f = write(tmp_path / "log.tsv", (
        "visitor\tproduct\twhen\taction\n"
        "7\t70\t1731285000000\tView\n"
        "7\t71\t1731285060000\tpurchase\n"
        "8\t70\t1731285120000\tshare\n"
    ))
    r = importers.import_file(f, fmt="csv", db=tmp_db, mapping=["user=visitor", "item=product", "ts=when", "behavior=action"],
                              sep="\t", ts_unit="ms")
    assert (r["rows_read"], r["rows_imported"], r["rows_quarantined"]) == (3, 2, 1)
    assert query(tmp_db, "SELECT user_id, item_id, behavior, ts FROM events ORDER BY ts") == [
        ("7", "70", "pv", dt.datetime(2024, 11, 11, 0, 30)),
        ("7", "71", "buy", dt.datetime(2024, 11, 11, 0, 31)),
    ]
    (_, raw, reason), = quarantine(tmp_db, r["run_id"])
    assert raw == "8\t70\t1731285120000\tshare" and "unknown behaviour 'share'" in reason and "'action'" in reason


def test_generic_headerless_columns_ignore_unknown_names_and_sniff_separator(tmp_path, tmp_db):
    f = write(tmp_path / "ratings.csv", "1;10;4.5;1731285000\n2;11;3.0;1731285060\n")
    r = importers.import_file(f, fmt="csv", db=tmp_db, columns="user,item,rating,ts")
    assert (r["rows_read"], r["rows_imported"]) == (2, 2)
    assert query(tmp_db, "SELECT user_id, item_id, behavior FROM events ORDER BY user_id") == [("1", "10", "pv"), ("2", "11", "pv")]


def test_generic_csv_quoted_fields(tmp_path, tmp_db):
    f = write(tmp_path / "quoted.csv", (
        'user,item,ts,category\n'
        '"u,1","i ""big""",2024-11-11 08:00:00,"phones, cases"\n'
        'u2,i2,2024-11-11 09:00:00,"unterminated\n'
    ))
    r = importers.import_file(f, fmt="csv", db=tmp_db)
    assert (r["rows_read"], r["rows_imported"], r["rows_quarantined"]) == (2, 1, 1)
    assert query(tmp_db, "SELECT user_id, item_id FROM events") == [("u,1", 'i "big"')]
    assert query(tmp_db, "SELECT category FROM items WHERE item_id = 'i \"big\"'") == [("phones, cases",)]
    (row, _, reason), = quarantine(tmp_db, r["run_id"])
    assert row == 3 and "malformed quoting" in reason


def test_generic_parquet_with_typed_columns(tmp_path, tmp_db):
    import pandas as pd
    path = tmp_path / "log.parquet"
    pd.DataFrame({
        "userId": [1, 2, 3],
        "item": ["a", "b", "c"],
        "ts": pd.to_datetime(["2024-11-11 08:00", "2024-11-11 09:00", "2024-11-11 10:00"]).tz_localize("UTC"),
        "behavior": ["pv", "cart", "nope"],
    }).to_parquet(path)
    r = importers.import_file(path, fmt="parquet", db=tmp_db, mapping=["user=userId"])
    assert (r["rows_read"], r["rows_imported"], r["rows_quarantined"]) == (3, 2, 1)
    assert query(tmp_db, "SELECT user_id, behavior, ts FROM events ORDER BY ts") == [
        ("1", "pv", dt.datetime(2024, 11, 11, 8)),  # a time zone-aware column keeps its instant
        ("2", "cart", dt.datetime(2024, 11, 11, 9)),
    ]
    (row, raw, reason), = quarantine(tmp_db, r["run_id"])
    assert row == 3 and '"behavior":"nope"' in raw and reason.startswith("log.parquet row 3:")


def test_generic_items_csv_overrides_and_parquet_items(shared_data, tmp_path, tmp_db):
    items = write(tmp_path / "items.csv", (
        "item_id,title,category,brand,price\n"
        "2268318,Latte,coffee,Brew,18\n"
        "2268318,Latte grande,,Brew,21.5\n"  # listed twice: the last non-empty value of each field wins
        "999,Phone case,accessories,Shell,-3\n"
    ))
    r = importers.import_file(shared_data / TAOBAO, fmt="taobao", db=tmp_db, items_path=items)
    assert r["items_file"]["format"] == "csv_items"
    assert (r["items_file"]["rows_imported"], r["items_file"]["rows_quarantined"]) == (2, 1)
    # The items file overrides the category that came with the events (2520377).
    assert query(tmp_db, "SELECT title, category, brand, price FROM items WHERE item_id = '2268318'") == [
        ("Latte grande", "coffee", "Brew", 21.5)
    ]
    (_, _, reason), = quarantine(tmp_db, r["items_file"]["run_id"])
    assert reason == "items.csv line 4: field 'price' (column 'price'): '-3' is not a price (a non-negative number)"

    import pandas as pd
    pq = tmp_path / "items.parquet"
    pd.DataFrame({"item": ["999"], "category": ["accessories"], "price": [9.9]}).to_parquet(pq)
    r = importers.import_file(write(tmp_path / "one.csv", GOOD), fmt="taobao", db=tmp_db, items_path=pq)
    assert r["items_file"]["format"] == "parquet_items" and r["items_file"]["rows_imported"] == 1
    assert query(tmp_db, "SELECT category, price FROM items WHERE item_id = '999'") == [("accessories", 9.9)]


def test_unknown_options_fail_loudly(shared_data, tmp_path, tmp_db):
    with pytest.raises(ValueError, match="unknown timezone 'Mars/Base'"):
        importers.import_file(shared_data / TAOBAO, fmt="taobao", db=tmp_db, tz="Mars/Base")
    with pytest.raises(ValueError, match="unknown field 'usr'"):
        importers.import_file(shared_data / TAOBAO, fmt="csv", db=tmp_db, mapping=["usr=user_id"])
    with pytest.raises(ValueError, match="apply to --format csv or parquet"):
        importers.import_file(shared_data / TAOBAO, fmt="taobao", db=tmp_db, mapping=["user=a"])
    no_time = write(tmp_path / "no_time.csv", "user,item,rating\n1,2,5\n")
    with pytest.raises(ValueError, match=r"no column for field\(s\) ts in the header \(user, item, rating\)"):
        importers.import_file(no_time, fmt="csv", db=tmp_db)
    assert query(tmp_db, "SELECT count(*) FROM import_runs") == [(0,)]


# --- bad input: one test per kind --------------------------------------------------------

GOOD = "1,100,7,pv,1511544070\n"


def _import_bad(tmp_path: Path, tmp_db: Path, content: str | bytes, fmt: str = "taobao") -> tuple[dict, list]:
    f = write(tmp_path / f"bad.{fmt}.csv", content)
    r = importers.import_file(f, fmt=fmt, db=tmp_db)
    assert r["rows_read"] == r["rows_imported"] + r["rows_quarantined"]
    q = quarantine(tmp_db, r["run_id"])
    assert len(q) == r["rows_quarantined"]
    assert query(tmp_db, "SELECT count(*) FROM events") == [(r["rows_imported"],)]
    return r, q


def test_bad_wrong_number_of_columns(tmp_path, tmp_db):
    r, q = _import_bad(tmp_path, tmp_db, GOOD + "1,100,7,pv\n" + "1,100,7,pv,1511544070,9\n" + GOOD)
    assert (r["rows_imported"], r["rows_quarantined"]) == (2, 2)
    assert [(row, raw) for row, raw, _ in q] == [(2, "1,100,7,pv"), (3, "1,100,7,pv,1511544070,9")]
    assert q[0][2] == "bad.taobao.csv line 2: expected 5 fields separated by commas, found 4"


def test_bad_non_numeric_ids(tmp_path, tmp_db):
    r, q = _import_bad(tmp_path, tmp_db, GOOD + "alice,100,7,pv,1511544070\n" + "1,X-100,7,pv,1511544070\n")
    assert (r["rows_imported"], r["rows_quarantined"]) == (1, 2)
    assert q[0][2] == "bad.taobao.csv line 2: field 'user_id' (column 1): 'alice' is not a numeric id"
    assert q[1][2] == "bad.taobao.csv line 3: field 'item_id' (column 2): 'X-100' is not a numeric id"


def test_bad_unparseable_timestamps(tmp_path, tmp_db):
    r, q = _import_bad(tmp_path, tmp_db, GOOD + "1,100,7,pv,yesterday\n" + "1,100,7,pv,1511544070000\n" + "1,100,7,pv,\n")
    assert (r["rows_imported"], r["rows_quarantined"]) == (1, 3)
    assert "line 2: field 'timestamp' (column 5): 'yesterday' is not a Unix time in seconds" in q[0][2]
    assert "line 3: field 'timestamp' (column 5): '1511544070000' is outside 1990–2100" in q[1][2]
    assert "line 4: field 'timestamp' (column 5) is empty" in q[2][2]


def test_bad_tianchi_time_and_unknown_behaviour_code(tmp_path, tmp_db):
    content = (
        "user_id,item_id,behavior_type,user_geohash,item_category,time\n"
        "98047837,232431562,1,,4245,2014-12-06 02\n"
        "98047837,232431562,5,,4245,2014-12-06 02\n"
        "98047837,232431562,1,,4245,2014-13-45 99\n"
    )
    r, q = _import_bad(tmp_path, tmp_db, content, fmt="tianchi")
    assert (r["rows_imported"], r["rows_quarantined"]) == (1, 2)
    assert q[0][2] == ("bad.tianchi.csv line 3: field 'behavior_type' (column 3): unknown behaviour '5' "
                       "(expected one of 1, 2, 3, 4)")
    assert "line 4: field 'time' (column 6): '2014-13-45 99' is not a local time like '2014-12-06 02'" in q[1][2]


def test_bad_unknown_behaviour_word(tmp_path, tmp_db):
    r, q = _import_bad(tmp_path, tmp_db, GOOD + "1,100,7,like,1511544070\n")
    assert q == [(2, "1,100,7,like,1511544070",
                  "bad.taobao.csv line 2: field 'behavior_type' (column 4): unknown behaviour 'like' (expected one of pv, fav, cart, buy)")]


def test_bad_empty_file_header_only_and_blank_lines(tmp_path, tmp_db):
    empty = write(tmp_path / "empty.csv", "")
    with pytest.raises(ValueError, match=r"empty\.csv is empty \(0 bytes\)"):
        importers.import_file(empty, fmt="taobao", db=tmp_db)
    header_only = write(tmp_path / "header.csv", "timestamp,visitorid,event,itemid,transactionid\n")
    with pytest.raises(ValueError, match="header.csv has no data rows"):
        importers.import_file(header_only, fmt="retailrocket", db=tmp_db)
    blanks = write(tmp_path / "blank.csv", "\n  \n\n")
    with pytest.raises(ValueError, match="blank.csv is empty"):
        importers.import_file(blanks, fmt="taobao", db=tmp_db)
    assert snapshot(tmp_db)["import_runs"] == [] and snapshot(tmp_db)["events"] == []


def test_blank_lines_inside_a_file_are_skipped_not_rows(tmp_path, tmp_db):
    r, q = _import_bad(tmp_path, tmp_db, GOOD + "\n   \n" + GOOD)
    assert (r["rows_read"], r["rows_imported"], r["blank_lines_skipped"]) == (2, 2, 2)


def test_bad_binary_garbage_lines_are_quarantined(tmp_path, tmp_db):
    garbage = b"\x89PNG\xff\xfe\x01\x02,\xc3\x28"
    r, q = _import_bad(tmp_path, tmp_db, GOOD.encode() + garbage + b"\n" + b"1,2\x003,pv,1511544070\n" + GOOD.encode())
    assert (r["rows_imported"], r["rows_quarantined"]) == (2, 2)
    assert q[0][:2] == (2, garbage.decode("utf-8", "backslashreplace"))
    assert "line 2: the line has bytes that are not UTF-8 text" in q[0][2]
    assert q[1][:2] == (3, "1,2\\x003,pv,1511544070")
    assert "line 3: the line has NUL bytes" in q[1][2]


def test_bad_binary_file_is_refused_with_a_clear_error(tmp_path, tmp_db):
    gz = tmp_path / "events.csv.gz"
    gz.write_bytes(gzip.compress(GOOD.encode() * 10))
    with pytest.raises(ValueError, match="events.csv.gz is gzip-compressed, not a CSV text file"):
        importers.import_file(gz, fmt="taobao", db=tmp_db)
    blob = write(tmp_path / "blob.bin", bytes(range(256)) * 4)
    with pytest.raises(ValueError, match=r"blob.bin looks like a binary file or text that is not UTF-8, not a CSV file"):
        importers.import_file(blob, fmt="taobao", db=tmp_db)
    assert snapshot(tmp_db)["import_runs"] == []


def test_bad_corrupt_parquet_is_a_clear_error(tmp_path, tmp_db):
    import pandas as pd
    good = tmp_path / "good.parquet"
    pd.DataFrame({"user": range(500), "item": range(500), "ts": range(1_500_000_000, 1_500_000_500)}).to_parquet(good)
    data = good.read_bytes()
    cut = write(tmp_path / "cut.parquet", data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.parquet is not a readable Parquet file"):
        importers.import_file(cut, fmt="parquet", db=tmp_db)
    scrambled = write(tmp_path / "scrambled.parquet", data[:200] + b"\x00" * 100 + data[300:])
    with pytest.raises(ValueError, match="scrambled.parquet could not be read"):
        importers.import_file(scrambled, fmt="parquet", db=tmp_db)
    assert snapshot(tmp_db)["import_runs"] == []
    r = importers.import_file(good, fmt="parquet", db=tmp_db)  # the database is still usable
    assert (r["rows_read"], r["rows_imported"]) == (500, 500)


def test_bad_huge_line_is_quarantined_truncated(tmp_path, tmp_db):
    huge = "9" * (3 * ingest.MAX_LINE_BYTES)
    r, q = _import_bad(tmp_path, tmp_db, GOOD + huge + "\n" + GOOD)
    assert (r["rows_imported"], r["rows_quarantined"]) == (2, 1)
    (row, raw, reason), = q
    assert row == 2 and raw.startswith("999") and len(raw) < 2000
    assert f"line 2: the line is {len(huge):,} bytes long" in reason


def test_bad_huge_last_line_without_newline(tmp_path, tmp_db):
    r, q = _import_bad(tmp_path, tmp_db, GOOD + "x" * (ingest.MAX_LINE_BYTES + 5))
    assert (r["rows_imported"], r["rows_quarantined"]) == (1, 1) and q[0][0] == 2


def test_mixed_line_endings_and_stray_carriage_returns(tmp_path, tmp_db):
    r, q = _import_bad(tmp_path, tmp_db, GOOD.replace("\n", "\r\n") + GOOD + "1,1\r00,7,pv,1511544070\n")
    assert (r["rows_imported"], r["rows_quarantined"]) == (2, 1)
    assert q[0][0] == 3 and "carriage return" in q[0][2]


def test_crlf_file_is_read_cleanly(tmp_path, tmp_db):
    r, _ = _import_bad(tmp_path, tmp_db, (GOOD * 3).replace("\n", "\r\n"))
    assert (r["rows_imported"], r["rows_quarantined"]) == (3, 0)


def test_bad_missing_file(tmp_path, tmp_db):
    with pytest.raises(FileNotFoundError, match="file not found: .*nowhere.csv"):
        importers.import_file(tmp_path / "nowhere.csv", fmt="taobao", db=tmp_db)
    assert not tmp_db.exists()  # nothing was even opened


def test_bad_directory(tmp_path, tmp_db):
    with pytest.raises(IsADirectoryError, match="is a directory, not a file"):
        importers.import_file(tmp_path, fmt="taobao", db=tmp_db)


def test_bad_header_for_fixed_format(tmp_path, tmp_db):
    f = write(tmp_path / "rr.csv", "timestamp,visitor,event,itemid\n1433221332117,1,view,2\n")
    with pytest.raises(ValueError, match="lacks column\\(s\\) visitorid"):
        importers.import_file(f, fmt="retailrocket", db=tmp_db)


def test_all_rows_bad_is_a_rejected_run(tmp_path, tmp_db):
    r, q = _import_bad(tmp_path, tmp_db, "a,b,c,d,e\n" * 3)
    assert r["status"] == "rejected" and r["rows_quarantined"] == 3


def test_database_locked_by_another_process(shared_data, tmp_db):
    store.connect(tmp_db).close()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(60)", str(tmp_db)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(DatabaseLockedError, match="locked by another process"):
            importers.import_file(shared_data / TAOBAO, fmt="taobao", db=tmp_db)
    finally:
        holder.kill()
        holder.wait()


# --- failures midway ---------------------------------------------------------------------


@pytest.mark.parametrize("step", ["write_events", "write_quarantine", "record_run"])
def test_failure_midway_leaves_database_unchanged(shared_data, tmp_path, tmp_db, step):
    importers.import_file(shared_data / TIANCHI, fmt="tianchi", db=tmp_db)
    before = snapshot(tmp_db)
    bad_mix = write(tmp_path / "mix.csv", GOOD + "x,1,2,pv,1\n")
    with _fail_after(ingest, step), pytest.raises(RuntimeError, match="injected"):
        importers.import_file(bad_mix, fmt="taobao", db=tmp_db)
    assert snapshot(tmp_db) == before
    # Nothing half-recorded: the same import now succeeds in full.
    r = importers.import_file(bad_mix, fmt="taobao", db=tmp_db)
    assert (r["rows_imported"], r["rows_quarantined"]) == (1, 1)


def _fail_after(module, name: str):
    """Patch module.name to do its work and then raise, as a crash right after a write would."""
    original = getattr(module, name)

    def failing(*args, **kwargs):
        original(*args, **kwargs)
        raise RuntimeError(f"injected failure after {name}")

    return mock.patch.object(module, name, failing)


# --- property: nothing is lost -----------------------------------------------------------

_MIN_S, _MAX_S = 631152000, 4102444800 - 1
_valid_rows = st.builds(
    lambda u, i, c, b, t: f"{u},{i},{c},{b},{t}",
    st.integers(1, 10**9), st.integers(1, 10**9), st.integers(1, 10**7),
    st.sampled_from(["pv", "fav", "cart", "buy", "PV", "Buy"]), st.integers(_MIN_S, _MAX_S),
)
# Printable text of any script (control characters come with the binary lines below).
_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufeff"),
    max_size=30,
)
_bad_rows = st.one_of(
    st.lists(st.integers(0, 999).map(str), min_size=1, max_size=8).filter(lambda f: len(f) != 5).map(",".join),
    st.builds(lambda u: f"{u},1,2,pv,1511544070", st.text(string.ascii_letters + "-_ ", min_size=1, max_size=6).filter(str.strip)),
    st.builds(lambda t: f"1,2,3,pv,{t}", st.sampled_from(["yesterday", "2017-13-01", "", "1e30", "nan", "-5", "99999999999999"])),
    st.builds(lambda b: f"1,2,3,{b},1511544070",
              st.text(string.ascii_letters, max_size=8).filter(lambda b: b.lower() not in {"pv", "fav", "cart", "buy"})),
    _text.map(lambda t: "#" + t),  # free text; '#' keeps it from ever being a valid row
    st.binary(max_size=20).filter(lambda b: b"\n" not in b and b"\r" not in b).map(lambda b: b"\xff" + b),
)
_lines = st.lists(
    st.one_of(_valid_rows.map(lambda s: ("ok", s)), _bad_rows.map(lambda s: ("bad", s)), st.sampled_from(["", "  "]).map(lambda s: ("blank", s))),
    min_size=1, max_size=40,
).filter(lambda lines: any(kind != "blank" for kind, _ in lines))


def _expected_raw(line: str | bytes) -> str:
    """How quarantine shows a line: text as is; bytes that are not UTF-8 (and NULs) as escapes."""
    if isinstance(line, str):
        return line
    return line.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def _write_lines(path: Path, lines: list[tuple[str, str | bytes]]) -> None:
    path.write_bytes(b"".join((s if isinstance(s, bytes) else s.encode()) + b"\n" for _, s in lines))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=_lines)
def test_property_nothing_is_lost(lines):
    with tempfile.TemporaryDirectory() as work:
        path, db = Path(work) / "mixed.csv", Path(work) / "p.duckdb"
        _write_lines(path, lines)
        try:
            r = importers.import_file(path, fmt="taobao", db=db)
        except ValueError as exc:
            # A file that is mostly binary is refused as a whole, before anything is written.
            assert "binary" in str(exc) or "UTF-16" in str(exc)
            assert any(isinstance(s, bytes) for _, s in lines)
            assert query(db, "SELECT count(*) FROM import_runs") == [(0,)]
            return
        n_ok = sum(kind == "ok" for kind, _ in lines)
        bad = [(no, _expected_raw(s)) for no, (kind, s) in enumerate(lines, start=1) if kind == "bad"]
        assert r["rows_read"] == r["rows_imported"] + r["rows_quarantined"] == n_ok + len(bad)
        assert r["rows_imported"] == n_ok
        q = quarantine(db, r["run_id"])
        assert [(row, raw) for row, raw, _ in q] == bad
        assert all(reason.startswith(f"mixed.csv line {row}: ") for row, _, reason in q)
        assert query(db, "SELECT count(*) FROM events") == [(n_ok,)]
        assert query(db, "SELECT rows_read, rows_imported, rows_quarantined FROM import_runs") == [
            (r["rows_read"], r["rows_imported"], r["rows_quarantined"])
        ]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=_lines, step=st.sampled_from(["stage_lines", "check_rows", "write_events", "write_quarantine", "record_run"]))
def test_property_failed_run_leaves_database_unchanged(lines, step):
    with tempfile.TemporaryDirectory() as work:
        db = Path(work) / "p.duckdb"
        base = write(Path(work) / "base.csv", GOOD * 3)
        importers.import_file(base, fmt="taobao", db=db)
        before = snapshot(db)
        path = Path(work) / "mixed.csv"
        _write_lines(path, lines)
        with _fail_after(ingest, step), pytest.raises((RuntimeError, ValueError)) as failure:
            importers.import_file(path, fmt="taobao", db=db)
        # The injected failure, or a mostly binary file refused before the failing step.
        assert "injected" in str(failure.value) or "binary" in str(failure.value) or "UTF-16" in str(failure.value)
        assert snapshot(db) == before
