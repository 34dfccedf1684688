"""The sample world: determinism, sizes, loading, and every planted effect measured with SQL.

The sample database is built once per module from the shipped Parquet files. Each
planted effect in `synth.PLANTED_EFFECTS` has a measurement below (`MEASURES`) with
thresholds well inside the stated strengths; `test_measures_fail_on_a_world_without_effects`
shows that the context measurements do fail on a world generated with those effects
switched off, so the thresholds are not vacuous.
"""

from __future__ import annotations

import hashlib
import inspect
import operator
from pathlib import Path
from typing import Callable

import duckdb
import pytest

from recsys_core import store, synth
from recsys_core.context import scene_field
from recsys_core.store import samples

CAT = {c["key"]: c["en"] for c in synth.CATEGORIES}
ELECTRONICS = [CAT[k] for k in ("phones", "computer_accessories", "audio", "home_appliances")]
PROMO = "d IN (DATE '2025-11-11', DATE '2025-12-12')"


def _prepare(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Temp tables: events with local hour/weekday/date and item fields; sessions split at 30 min."""
    tz = store.get_meta(con, "timezone")
    con.execute(
        """CREATE OR REPLACE TEMP TABLE ev AS
           SELECT e.user_id, e.item_id, e.behavior, e.ts, e.device, e.channel, e.location, i.category, i.price,
                  hour(timezone(?, e.ts AT TIME ZONE 'UTC')) AS h,
                  isodow(timezone(?, e.ts AT TIME ZONE 'UTC')) AS dow,
                  CAST(timezone(?, e.ts AT TIME ZONE 'UTC') AS DATE) AS d
           FROM events e JOIN items i USING (item_id)""",
        [tz, tz, tz],
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE sev AS
           SELECT *, CAST(sum(new) OVER (PARTITION BY user_id ORDER BY ts, behavior DESC ROWS UNBOUNDED PRECEDING) AS INT) AS sid
           FROM (SELECT ev.*, CASE WHEN lag(ts) OVER w IS NULL OR ts - lag(ts) OVER w > INTERVAL 30 MINUTE THEN 1 ELSE 0 END AS new,
                        epoch(ts - lag(ts) OVER w) AS gap_s
                 FROM ev WINDOW w AS (PARTITION BY user_id ORDER BY ts, behavior DESC))"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE sess AS
           SELECT user_id, sid,
                  bool_or(category = ? AND behavior IN ('cart', 'buy')) AS phone_cart,
                  arg_min(category, ts) AS first_category,
                  arg_min(behavior, ts) AS first_behavior,
                  count(DISTINCT device) AS n_devices, count(DISTINCT location) AS n_locations,
                  count(DISTINCT channel) FILTER (WHERE behavior <> 'buy') AS n_channels
           FROM sev GROUP BY user_id, sid""",
        [CAT["phones"]],
    )
    return con


@pytest.fixture(scope="module")
def sample_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    db = tmp_path_factory.mktemp("synth") / "sample.duckdb"
    return db, synth.build_sample_database(db)


@pytest.fixture(scope="module")
def sample_con(sample_build):
    con = _prepare(store.connect(sample_build[0]))
    yield con
    con.close()


@pytest.fixture(scope="module")
def sample_result(sample_build) -> dict:
    return sample_build[1]


def share(con, categories: list[str], where: str) -> float:
    """Share of events in `categories` among events matching `where` (a fixed SQL condition)."""
    (value,) = con.execute(
        f"SELECT avg(CASE WHEN list_contains(?, category) THEN 1.0 ELSE 0.0 END) FROM ev WHERE {where}", [categories]
    ).fetchone()
    return float(value)


def ratio(con, categories: list[str], where_a: str, where_b: str) -> float:
    return share(con, categories, where_a) / share(con, categories, where_b)


# --- one measurement per planted effect: (label, value, comparison, threshold) ------------

Check = tuple[str, float, Callable[[float, float], bool], float]
GE, LE = operator.ge, operator.le


def m_hour_morning_coffee_breakfast(con) -> list[Check]:
    return [("coffee 07-09 / 14-16", ratio(con, [CAT["coffee"]], "h BETWEEN 7 AND 9", "h BETWEEN 14 AND 16"), GE, 3.0),
            ("breakfast 06-09 / 14-16", ratio(con, [CAT["breakfast"]], "h BETWEEN 6 AND 9", "h BETWEEN 14 AND 16"), GE, 4.0)]


def m_hour_evening_groceries(con) -> list[Check]:
    return [("groceries 17-19 / 10-12", ratio(con, [CAT["groceries"]], "h BETWEEN 17 AND 19", "h BETWEEN 10 AND 12"), GE, 2.5)]


def m_hour_after_work_dinner(con) -> list[Check]:
    return [("takeaway 17-20 / 14-16", ratio(con, [CAT["takeaway"]], "h BETWEEN 17 AND 20", "h BETWEEN 14 AND 16"), GE, 2.5)]


def m_hour_late_night_games(con) -> list[Check]:
    return [("games 22-01 / 10-16", ratio(con, [CAT["games"]], "h IN (22, 23, 0, 1)", "h BETWEEN 10 AND 16"), GE, 4.0)]


def m_hour_other_rhythms(con) -> list[Check]:
    return [("snacks 14-16 / 09-11", ratio(con, [CAT["snacks"]], "h BETWEEN 14 AND 16", "h BETWEEN 9 AND 11"), GE, 1.5),
            ("ebooks 22-00 / 10-12", ratio(con, [CAT["ebooks"]], "h IN (22, 23, 0)", "h BETWEEN 10 AND 12"), GE, 1.5)]


def m_weekend_leisure(con) -> list[Check]:
    leisure = [CAT["leisure"], CAT["outdoor"], CAT["toys"]]
    return [("leisure+outdoor+toys weekend / weekday", ratio(con, leisure, "dow >= 6", "dow <= 5"), GE, 2.0),
            ("office supplies weekend / weekday", ratio(con, [CAT["office_supplies"]], "dow >= 6", "dow <= 5"), LE, 0.5)]


def m_device_category(con) -> list[Check]:
    return [("computer accessories pc / mobile", ratio(con, [CAT["computer_accessories"]], "device = 'pc'", "device = 'mobile'"), GE, 4.0),
            ("beauty+fashion mobile / pc", ratio(con, [CAT["beauty"], CAT["fashion"]], "device = 'mobile'", "device = 'pc'"), GE, 2.5),
            ("ebooks tablet / mobile", ratio(con, [CAT["ebooks"]], "device = 'tablet'", "device = 'mobile'"), GE, 1.5)]


def m_location_category(con) -> list[Check]:
    commute = [CAT["snacks"], CAT["audio"], CAT["ebooks"]]
    return [("snacks+audio+ebooks commute / home", ratio(con, commute, "location = 'commute'", "location = 'home'"), GE, 1.8),
            ("office supplies office / home", ratio(con, [CAT["office_supplies"]], "location = 'office'", "location = 'home'"), GE, 4.0),
            ("leisure city / home", ratio(con, [CAT["leisure"]], "location = 'city'", "location = 'home'"), GE, 2.0)]


def m_channel_category(con) -> list[Check]:
    return [("beauty+fashion live_stream / home_feed",
             ratio(con, [CAT["beauty"], CAT["fashion"]], "channel = 'live_stream'", "channel = 'home_feed'"), GE, 2.0),
            ("electronics search / home_feed", ratio(con, ELECTRONICS, "channel = 'search'", "channel = 'home_feed'"), GE, 1.4)]


def m_promo_surge(con) -> list[Check]:
    per_day = dict(con.execute("SELECT d, count(*) FROM ev GROUP BY d").fetchall())
    ordinary = [n for d, n in per_day.items() if str(d) not in ("2025-11-11", "2025-12-12")]
    mean_day = sum(ordinary) / len(ordinary)
    day = {str(d): n for d, n in per_day.items()}
    buy_rate = dict(con.execute(
        f"SELECT {PROMO}, sum(CASE WHEN behavior = 'buy' THEN 1 ELSE 0 END) / sum(CASE WHEN behavior = 'pv' THEN 1 ELSE 0 END) "
        "FROM ev GROUP BY 1").fetchall())
    return [("events 11.11 / mean day", day["2025-11-11"] / mean_day, GE, 2.5),
            ("events 12.12 / mean day", day["2025-12-12"] / mean_day, GE, 2.0),
            ("big-ticket share promo / other", ratio(con, ELECTRONICS, PROMO, f"NOT ({PROMO})"), GE, 1.5),
            ("buy/pv promo / other", buy_rate[True] / buy_rate[False], GE, 1.4)]


def m_phone_price_by_time(con) -> list[Check]:
    rows = dict((k, (p, e)) for k, p, e in con.execute(
        """SELECT CASE WHEN dow <= 5 AND h BETWEEN 18 AND 22 THEN 'weekday_evening' WHEN dow >= 6 THEN 'weekend' ELSE 'other' END,
                  avg(price), avg(CASE WHEN price < 1500 THEN 1.0 ELSE 0.0 END)
           FROM ev WHERE category = ? AND behavior = 'pv' GROUP BY 1""", [CAT["phones"]]).fetchall())
    return [("mean phone price weekday evening / weekend", rows["weekday_evening"][0] / rows["weekend"][0], GE, 1.4),
            ("entry-phone share weekend / weekday evening", rows["weekend"][1] / rows["weekday_evening"][1], GE, 2.0)]


def m_sequential_complements(con) -> list[Check]:
    rates = dict(con.execute(
        """SELECT prev_phone_cart, avg(CASE WHEN first_category = ? THEN 1.0 ELSE 0.0 END) FROM (
               SELECT first_category, lag(phone_cart) OVER (PARTITION BY user_id ORDER BY sid) AS prev_phone_cart FROM sess)
           WHERE prev_phone_cart IS NOT NULL GROUP BY 1""", [CAT["phone_accessories"]]).fetchall())
    return [("P(accessory first given phone cart before)", rates[True], GE, 0.4),
            ("lift over other sessions", rates[True] / rates[False], GE, 5.0)]


def m_funnel(con) -> list[Check]:
    n = dict(con.execute("SELECT behavior, count(*) FROM ev GROUP BY 1").fetchall())
    return [("cart/pv", n["cart"] / n["pv"], GE, 0.06), ("cart/pv", n["cart"] / n["pv"], LE, 0.10),
            ("fav/pv", n["fav"] / n["pv"], GE, 0.03), ("fav/pv", n["fav"] / n["pv"], LE, 0.05),
            ("buy/pv", n["buy"] / n["pv"], GE, 0.015), ("buy/pv", n["buy"] / n["pv"], LE, 0.035)]


def m_shopper_taste(con) -> list[Check]:
    (top3,) = con.execute(
        """SELECT avg(top3) FROM (
               SELECT user_id, sum(n) FILTER (WHERE rk <= 3) / sum(n) AS top3 FROM (
                   SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY n DESC, category) AS rk FROM (
                       SELECT user_id, category, count(*) AS n FROM ev WHERE behavior = 'pv' GROUP BY ALL))
               GROUP BY user_id)""").fetchone()
    (top_items,) = con.execute(
        """SELECT sum(n) FILTER (WHERE rk <= (SELECT count(*) / 10 FROM items)) / sum(n) FROM (
               SELECT *, row_number() OVER (ORDER BY n DESC, item_id) AS rk FROM (
                   SELECT item_id, count(*) AS n FROM ev WHERE behavior = 'pv' GROUP BY 1))""").fetchone()
    return [("top-3 category share per shopper", top3, GE, 0.5), ("top-10 % items' share of views", top_items, GE, 0.35)]


MEASURES = {name[2:]: fn for name, fn in globals().items() if name.startswith("m_") and callable(fn)}


def _failures(checks: list[Check]) -> list[str]:
    return [f"{label} = {value:.3f}, want {'>=' if op is GE else '<='} {limit}"
            for label, value, op, limit in checks if not op(value, limit)]


def test_every_planted_effect_has_a_measure_and_a_test():
    assert set(MEASURES) == set(synth.PLANTED_EFFECTS)
    tests = {n for n, f in globals().items() if n.startswith("test_effect_") and inspect.isfunction(f)}
    assert tests == {f"test_effect_{name}" for name in synth.PLANTED_EFFECTS}


def _assert_effect(con, name: str) -> None:
    assert not _failures(MEASURES[name](con)), _failures(MEASURES[name](con))


def test_effect_hour_morning_coffee_breakfast(sample_con):
    _assert_effect(sample_con, "hour_morning_coffee_breakfast")


def test_effect_hour_evening_groceries(sample_con):
    _assert_effect(sample_con, "hour_evening_groceries")


def test_effect_hour_after_work_dinner(sample_con):
    _assert_effect(sample_con, "hour_after_work_dinner")


def test_effect_hour_late_night_games(sample_con):
    _assert_effect(sample_con, "hour_late_night_games")


def test_effect_hour_other_rhythms(sample_con):
    _assert_effect(sample_con, "hour_other_rhythms")


def test_effect_weekend_leisure(sample_con):
    _assert_effect(sample_con, "weekend_leisure")


def test_effect_device_category(sample_con):
    _assert_effect(sample_con, "device_category")


def test_effect_location_category(sample_con):
    _assert_effect(sample_con, "location_category")


def test_effect_channel_category(sample_con):
    _assert_effect(sample_con, "channel_category")


def test_effect_promo_surge(sample_con):
    _assert_effect(sample_con, "promo_surge")


def test_effect_phone_price_by_time(sample_con):
    _assert_effect(sample_con, "phone_price_by_time")


def test_effect_sequential_complements(sample_con):
    _assert_effect(sample_con, "sequential_complements")


def test_effect_funnel(sample_con):
    _assert_effect(sample_con, "funnel")
    (orphans,) = sample_con.execute(
        """SELECT count(*) FROM ev b WHERE behavior = 'buy' AND NOT EXISTS (
               SELECT 1 FROM ev c WHERE c.behavior = 'cart' AND c.user_id = b.user_id AND c.item_id = b.item_id AND c.ts <= b.ts)"""
    ).fetchone()
    assert orphans == 0


def test_effect_shopper_taste(sample_con):
    _assert_effect(sample_con, "shopper_taste")


# --- the measures can fail --------------------------------------------------------------

NEUTRALISED = ["hour_morning_coffee_breakfast", "hour_evening_groceries", "hour_after_work_dinner", "hour_late_night_games",
               "hour_other_rhythms", "weekend_leisure", "device_category", "location_category", "channel_category",
               "promo_surge", "phone_price_by_time", "sequential_complements"]


def test_measures_fail_on_a_world_without_effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import numpy as np

    monkeypatch.setattr(synth, "CATEGORY_RULES", {})
    monkeypatch.setattr(synth, "PROMO_DAYS", {d: 1.0 for d in synth.PROMO_DAYS})
    monkeypatch.setattr(synth, "PROMO_EVE_MULTIPLIER", 1.0)
    monkeypatch.setattr(synth, "PROMO_MIDNIGHT_BOOST", np.ones(24))
    monkeypatch.setattr(synth, "FUNNEL", {**synth.FUNNEL, "promo_cart_multiplier": 1.0, "promo_buy_multiplier": 1.0})
    monkeypatch.setattr(synth, "PHONE_TIER_WEEKDAY_EVENING", np.ones(3))
    monkeypatch.setattr(synth, "PHONE_TIER_WEEKEND", np.ones(3))
    monkeypatch.setattr(synth, "COMPLEMENT", {"next_session": 0.0, "same_session_next_view": 0.0})
    events, items, users = synth.generate(synth.DEFAULT_SEED)
    con = store.connect(tmp_path / "null.duckdb")
    try:
        samples.replace_sample_world(con, events, items, users, file_sha256="null-world", timezone=synth.TIMEZONE, scene=[scene_field(n) for n in synth.SCENE_FIELDS])
        _prepare(con)
        still_passing = [name for name in NEUTRALISED if not _failures(MEASURES[name](con))]
    finally:
        con.close()
    assert still_passing == []


# --- determinism, sizes, loading ---------------------------------------------------------

def test_shipped_parquet_equals_generate_default_seed():
    (events, items, users), _ = synth.read_sample_files()
    fresh = synth.generate(synth.DEFAULT_SEED)
    for shipped, generated in zip((events, items, users), fresh):
        assert synth.frame_fingerprint(shipped) == synth.frame_fingerprint(generated)


def test_generate_is_deterministic_per_seed():
    a, b = synth.generate(7), synth.generate(7)
    assert [synth.frame_fingerprint(x) for x in a] == [synth.frame_fingerprint(x) for x in b]
    assert synth.frame_fingerprint(a[0]) != synth.frame_fingerprint(synth.read_sample_files()[0][0])


def test_parquet_files_are_small():
    sizes = {name: (synth.SAMPLE_DIR / f).stat().st_size for name, f in synth.PARQUET_FILES.items()}
    assert sum(sizes.values()) < 8 * 2**20, sizes


def test_sizes_and_date_range(sample_con, sample_result):
    r = sample_result
    assert (r["users"], r["items"]) == (synth.N_USERS, synth.N_ITEMS)
    assert r["events"] >= 250_000
    n_events, first, last, n_users = sample_con.execute(
        "SELECT count(*), min(d), max(d), count(DISTINCT user_id) FROM ev").fetchone()
    assert n_events == r["events"] and n_users == synth.N_USERS
    assert (last - first).days + 1 >= 56
    assert str(first) <= "2025-11-11" <= str(last) and str(last) >= "2025-12-12"
    assert (str(first), str(last)) == (r["date_from"], r["date_to"])
    n_cat, missing = sample_con.execute(
        """SELECT count(DISTINCT category), count(*) FILTER (WHERE title IS NULL OR title_zh IS NULL OR category_zh IS NULL
                  OR brand IS NULL OR price IS NULL OR price <= 0) FROM items""").fetchone()
    assert 12 <= n_cat <= 20 and missing == 0
    cities, segments = sample_con.execute("SELECT count(DISTINCT city), count(DISTINCT segment) FROM users").fetchone()
    assert cities >= 5 and segments >= 5


def test_scene_vocabulary_and_sessions(sample_con):
    vocab = sample_con.execute(
        "SELECT list(DISTINCT device), list(DISTINCT channel), list(DISTINCT location) FROM ev").fetchone()
    assert set(vocab[0]) == set(synth.DEVICES)
    assert set(vocab[1]) == set(synth.CHANNELS)
    assert set(vocab[2]) == set(synth.LOCATIONS)
    # Sessions are unambiguous: gaps inside a session are at most 10 min, between sessions at least 35 min.
    (ambiguous,) = sample_con.execute("SELECT count(*) FROM sev WHERE gap_s > 600 AND gap_s < 35 * 60").fetchone()
    assert ambiguous == 0
    n_sessions, not_pv, scene_changes, channel_changes = sample_con.execute(
        """SELECT count(*), count(*) FILTER (WHERE first_behavior <> 'pv'),
                  count(*) FILTER (WHERE n_devices > 1 OR n_locations > 1), count(*) FILTER (WHERE n_channels > 1) FROM sess""").fetchone()
    assert not_pv == 0 and scene_changes == 0 and channel_changes == 0
    (min_sessions,) = sample_con.execute("SELECT min(n) FROM (SELECT count(*) AS n FROM sess GROUP BY user_id)").fetchone()
    assert n_sessions >= 40_000 and min_sessions >= 3


def test_import_run_and_timezone_recorded(sample_con, sample_result):
    r = sample_result
    runs = sample_con.execute(
        "SELECT run_id, format, file_sha256, rows_read, rows_imported, rows_quarantined, status FROM import_runs WHERE source = 'sample'"
    ).fetchall()
    digest = hashlib.sha256(b"".join((synth.SAMPLE_DIR / f).read_bytes() for f in synth.PARQUET_FILES.values())).hexdigest()
    assert runs == [(r["run_id"], "synth", digest, r["events"], r["events"], 0, "ok")]
    assert store.get_meta(sample_con, "timezone") == "Asia/Shanghai"
    (foreign,) = sample_con.execute("SELECT count(*) FROM events WHERE source_run IS DISTINCT FROM ?", [r["run_id"]]).fetchone()
    assert foreign == 0


def test_rebuild_with_another_seed_replaces_the_sample(tmp_path: Path):
    db = tmp_path / "rebuild.duckdb"
    other = synth.build_sample_database(db, seed=7)
    assert other["seed"] == 7 and other["origin"] == "generated" and other["events"] >= 250_000
    default = synth.build_sample_database(db)
    con = store.connect(db, read_only=True)
    try:
        n_events, n_items, n_users = con.execute(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM items), (SELECT count(*) FROM users)").fetchone()
        statuses = dict(con.execute("SELECT run_id, status FROM import_runs WHERE source = 'sample'").fetchall())
    finally:
        con.close()
    assert (n_events, n_items, n_users) == (default["events"], synth.N_ITEMS, synth.N_USERS)
    assert statuses == {other["run_id"]: "replaced", default["run_id"]: "ok"}


def test_readme_documents_every_effect():
    readme = (synth.SAMPLE_DIR / "README.md").read_text(encoding="utf-8")
    assert str(synth.DEFAULT_SEED) in readme
    for name, effect in synth.PLANTED_EFFECTS.items():
        assert f"`{name}`" in readme, name
        for _field, _values, category, mult in effect.get("rules", []):
            assert f"| {category} |" in readme and f"| {mult:g} |" in readme, (name, category, mult)
