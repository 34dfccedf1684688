"""Read-only analytics over the behaviour store: the overview and behaviour pages and `stats`.

Every query takes a connection (or a cursor: one per thread) and an `EventFilter`;
values are always bound parameters, and the only SQL fragments chosen at run
time are picked from fixed allow-lists (scene column names, placeholder counts).

Local time. `events.ts` is naive UTC; hour, weekday and date come from the
data's timezone in `meta` (IANA name, default Asia/Shanghai). Converting every
row with `timezone(?, ts AT TIME ZONE 'UTC')` costs ~0.6 s per 10 million rows,
so time-of-day queries first count events per UTC 15-minute bucket (integer
work) and convert only the buckets: every real-world UTC offset is a multiple of
15 minutes, so the local hour, weekday and date of a bucket are those of each of
its events. Date filters become a UTC `ts` range computed once in Python, which
DuckDB can also prune on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import pandas as pd

from recsys_core.features import Calendar
from recsys_core.store.connection import get_meta
from recsys_core.store.scene import quoted, scene_names

DEFAULT_TIMEZONE = "Asia/Shanghai"
BEHAVIORS = ("pv", "fav", "cart", "buy")
# Events are counted per UTC bucket of this width before converting to local time.
_BUCKET = "INTERVAL 15 MINUTE"


@dataclass(frozen=True)
class EventFilter:
    """Which events a query looks at. Empty tuples mean "all"; dates are local and inclusive."""

    start: date | None = None
    end: date | None = None
    categories: tuple[str, ...] = ()
    behaviors: tuple[str, ...] = ()
    scene: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (scene field, allowed values) pairs; a dict is accepted

    def __post_init__(self) -> None:
        pairs = self.scene.items() if isinstance(self.scene, dict) else self.scene
        object.__setattr__(self, "scene", tuple((str(f), tuple(map(str, v))) for f, v in pairs if v))
        unknown = set(self.behaviors) - set(BEHAVIORS)
        if unknown:
            raise ValueError(f"unknown behaviour(s) {sorted(unknown)}; choose from {list(BEHAVIORS)}")
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")

    def without_behaviors(self) -> EventFilter:
        """Funnels and conversion rates need every behaviour, whatever the behaviour filter says."""
        return dataclasses.replace(self, behaviors=())


# --- helpers -----------------------------------------------------------------------------


def data_timezone(con: duckdb.DuckDBPyConnection) -> str:
    """The data's local timezone from `meta`, validated (an unknown name falls back to the default)."""
    name = get_meta(con, "timezone", DEFAULT_TIMEZONE) or DEFAULT_TIMEZONE
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return DEFAULT_TIMEZONE
    return name


def _local_midnight_utc(day: date, tz: str) -> datetime:
    """The naive UTC instant at which local `day` begins."""
    local = datetime.combine(day, time(0), tzinfo=ZoneInfo(tz))
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def _placeholders(values: Iterable[Any]) -> str:
    return ", ".join("?" for _ in values)


def _scene_column(con: duckdb.DuckDBPyConnection, field: str) -> str:
    """``e."field"`` for a scene field of the data; ValueError naming the fields otherwise."""
    names = scene_names(con)
    if field not in names:
        raise ValueError(f"unknown scene field {field!r}; this data has {names or 'none'}")
    return "e." + quoted(field)


def _where(f: EventFilter, tz: str, con: duckdb.DuckDBPyConnection | None = None) -> tuple[str, list[Any]]:
    """SQL condition over `events e` for a filter, and its bound values (``con`` resolves scene fields)."""
    clauses: list[str] = []
    params: list[Any] = []
    if f.start:
        clauses.append("e.ts >= ?")
        params.append(_local_midnight_utc(f.start, tz))
    if f.end:
        clauses.append("e.ts < ?")
        params.append(_local_midnight_utc(f.end + timedelta(days=1), tz))
    if f.behaviors:
        clauses.append(f"e.behavior IN ({_placeholders(f.behaviors)})")
        params.extend(f.behaviors)
    for field, values in f.scene:
        assert con is not None, "a scene filter needs the connection to check its field"
        clauses.append(f"{_scene_column(con, field)} IN ({_placeholders(values)})")
        params.extend(values)
    if f.categories:
        clauses.append(f"e.item_id IN (SELECT item_id FROM items WHERE category IN ({_placeholders(f.categories)}))")
        params.extend(f.categories)
    return (" AND ".join(clauses) or "TRUE"), params


def _df(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> pd.DataFrame:
    return con.execute(sql, params).df()


def _behavior_sums(prefix: str = "") -> str:
    """`sum(n) FILTER (behavior = 'pv') AS pv, ...` over a pre-counted `n` column."""
    return ", ".join(
        f"coalesce(sum({prefix}n) FILTER (WHERE {prefix}behavior = '{b}'), 0)::BIGINT AS {b}" for b in BEHAVIORS
    )


def _add_rates(df: pd.DataFrame) -> pd.DataFrame:
    """Conversion rates relative to views; NaN where there were no views."""
    pv = df["pv"].where(df["pv"] > 0)
    df["fav_cart_rate"] = (df["fav"] + df["cart"]) / pv
    df["buy_rate"] = df["buy"] / pv
    return df


def calendar_days_between(start: date, end: date, calendar: Calendar | None = None) -> dict[str, list[date]]:
    """Promotion days (6.18, 11.11, 12.12 by default) and public holidays in [start, end], for marking charts."""
    calendar = calendar or Calendar()
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    return {
        "promotion": [d for d in days if calendar.is_promo(d)],
        "holiday": [d for d in days if calendar.is_holiday(d)],
    }


# --- whole-database summary -----------------------------------------------------------------


def date_range(con: duckdb.DuckDBPyConnection, tz: str | None = None) -> tuple[date | None, date | None]:
    """First and last local date with events, or (None, None) for an empty store."""
    tz = tz or data_timezone(con)
    row = con.execute(
        "SELECT timezone(?, min(ts) AT TIME ZONE 'UTC')::DATE, timezone(?, max(ts) AT TIME ZONE 'UTC')::DATE FROM events",
        [tz, tz],
    ).fetchone()
    return row[0], row[1]


def database_stats(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Everything `python -m recsys_core stats` prints; JSON-ready (dates as ISO text)."""
    tz = data_timezone(con)
    # Separate statements: DuckDB runs two DISTINCT aggregates in one statement ~40% slower than apart.
    shoppers = con.execute("SELECT count(*) FROM (SELECT DISTINCT user_id FROM events)").fetchone()[0]
    items_seen = con.execute("SELECT count(*) FROM (SELECT DISTINCT item_id FROM events)").fetchone()[0]
    row = con.execute(
        f"""
        SELECT count(*), timezone(?, min(ts) AT TIME ZONE 'UTC'), timezone(?, max(ts) AT TIME ZONE 'UTC'),
               {", ".join(f"count(*) FILTER (WHERE behavior = '{b}')" for b in BEHAVIORS)}
        FROM events
        """,
        [tz, tz],
    ).fetchone()
    events, first, last = row[:3]
    mix = scene_mix(con)
    runs = con.execute(
        "SELECT run_id, source, format, started_at, rows_read, rows_imported, rows_quarantined, status "
        "FROM import_runs ORDER BY started_at"
    ).df()
    return {
        "shoppers": shoppers,
        "items": items_seen,
        "catalogue_items": con.execute("SELECT count(*) FROM items").fetchone()[0],
        "events": events,
        "timezone": tz,
        "first_event_local": first.isoformat(sep=" ") if first else None,
        "last_event_local": last.isoformat(sep=" ") if last else None,
        "days": (last.date() - first.date()).days + 1 if first else 0,
        "behaviors": dict(zip(BEHAVIORS, row[3:])),
        "scene_fields": scene_names(con),
        "scene_mix": {
            field: {r.value: int(r.events) for r in mix[mix["scene"] == field].itertuples()} for field in scene_names(con)
        },
        "import_runs": [
            {k: (v.isoformat(sep=" ") if isinstance(v, (datetime, pd.Timestamp)) else v) for k, v in row.items()}
            for row in runs.to_dict("records")
        ],
        "pushes": con.execute("SELECT count(*) FROM pushes").fetchone()[0],
    }


def filter_options(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Values the behaviour page offers in its filters, plus the data's date range and timezone."""
    tz = data_timezone(con)
    start, end = date_range(con, tz)
    categories = con.execute(
        "SELECT category, any_value(category_zh) FROM items WHERE category IS NOT NULL GROUP BY category ORDER BY category"
    ).fetchall()
    options: dict[str, Any] = {
        "timezone": tz,
        "start": start,
        "end": end,
        "categories": [c for c, _ in categories],
        "category_zh": {c: zh for c, zh in categories if zh},
    }
    options["scene_fields"] = scene_names(con)
    options["scene"] = {
        field: [r[0] for r in con.execute(f"SELECT DISTINCT {_scene_column(con, field)} FROM events e ORDER BY 1").fetchall()]
        for field in options["scene_fields"]
    }
    return options


# --- behaviour-page queries --------------------------------------------------------------------


def behavior_counts(con: duckdb.DuckDBPyConnection, f: EventFilter = EventFilter()) -> dict[str, int]:
    """Events per behaviour, every behaviour present (0 when none)."""
    where, params = _where(f, data_timezone(con), con)
    counts = dict.fromkeys(BEHAVIORS, 0)
    counts.update(dict(con.execute(f"SELECT behavior, count(*) FROM events e WHERE {where} GROUP BY 1", params).fetchall()))
    return counts


def funnel_from_counts(counts: dict[str, int]) -> pd.DataFrame:
    """The pv → fav/cart → buy funnel from events per behaviour: stage, events, share of views."""
    df = pd.DataFrame(
        {
            "stage": ["pv", "fav_cart", "buy"],
            "events": [counts.get("pv", 0), counts.get("fav", 0) + counts.get("cart", 0), counts.get("buy", 0)],
        }
    )
    views = df["events"].iloc[0]
    df["share_of_views"] = df["events"] / views if views else float("nan")
    return df


def daily_events(con: duckdb.DuckDBPyConnection, f: EventFilter = EventFilter()) -> pd.DataFrame:
    """Events per local day and behaviour: columns date, behavior, events."""
    tz = data_timezone(con)
    where, params = _where(f, tz, con)
    return _df(
        con,
        f"""
        WITH b AS (
            SELECT time_bucket({_BUCKET}, e.ts) AS bucket, e.behavior, count(*) AS n
            FROM events e WHERE {where} GROUP BY ALL
        )
        SELECT timezone(?, bucket AT TIME ZONE 'UTC')::DATE AS date, behavior, sum(n)::BIGINT AS events
        FROM b GROUP BY ALL ORDER BY date, behavior
        """,
        params + [tz],
    )


def hour_weekday(con: duckdb.DuckDBPyConnection, f: EventFilter = EventFilter(), by_category: bool = False) -> pd.DataFrame:
    """Events per local weekday (0 = Monday) × hour, the full 7 × 24 grid (zeros included).

    With `by_category`, one grid per category of the filtered events (column `category`).
    """
    tz = data_timezone(con)
    where, params = _where(f, tz, con)
    if by_category:
        source = f"events e JOIN items i USING (item_id) WHERE {where}"
        key = "i.category AS category,"
    else:
        source = f"events e WHERE {where}"
        key = ""
    counted = _df(
        con,
        f"""
        WITH b AS (
            SELECT {key} time_bucket({_BUCKET}, e.ts) AS bucket, count(*) AS n FROM {source} GROUP BY ALL
        ), l AS (
            SELECT * EXCLUDE (bucket), timezone(?, bucket AT TIME ZONE 'UTC') AS lt FROM b
        )
        SELECT {"category," if by_category else ""} isodow(lt) - 1 AS weekday, hour(lt) AS hour, sum(n)::BIGINT AS events
        FROM l GROUP BY ALL
        """,
        params + [tz],
    )
    grid = pd.MultiIndex.from_product([range(7), range(24)], names=["weekday", "hour"]).to_frame(index=False)
    if not by_category:
        out = grid.merge(counted, on=["weekday", "hour"], how="left")
        out["events"] = out["events"].fillna(0).astype("int64")
        return out
    frames = []
    for category, part in counted.groupby("category", sort=True):
        full = grid.merge(part.drop(columns="category"), on=["weekday", "hour"], how="left")
        full.insert(0, "category", category)
        frames.append(full)
    if not frames:
        return pd.DataFrame({"category": [], "weekday": [], "hour": [], "events": []}).astype(
            {"category": "str", "weekday": "int64", "hour": "int64", "events": "int64"}
        )
    out = pd.concat(frames, ignore_index=True)
    out["events"] = out["events"].fillna(0).astype("int64")
    return out


def scene_funnel(con: duckdb.DuckDBPyConnection, f: EventFilter, scene: str) -> pd.DataFrame:
    """Per value of one scene field: pv/fav/cart/buy events and rates (of views), busiest first."""
    column = _scene_column(con, scene)
    where, params = _where(f.without_behaviors(), data_timezone(con), con)
    df = _df(
        con,
        f"""
        WITH c AS (
            SELECT {column} AS value, e.behavior, count(*) AS n FROM events e WHERE {where} GROUP BY ALL
        )
        SELECT value, {_behavior_sums()}, sum(n)::BIGINT AS events FROM c GROUP BY value ORDER BY events DESC, value
        """,
        params,
    )
    return _add_rates(df)


def conversion_by_hour(con: duckdb.DuckDBPyConnection, f: EventFilter = EventFilter()) -> pd.DataFrame:
    """Per local hour 0–23: pv/fav/cart/buy events and conversion rates of views."""
    tz = data_timezone(con)
    where, params = _where(f.without_behaviors(), tz, con)
    counted = _df(
        con,
        f"""
        WITH b AS (
            SELECT time_bucket({_BUCKET}, e.ts) AS bucket, e.behavior, count(*) AS n FROM events e WHERE {where} GROUP BY ALL
        ), l AS (
            SELECT hour(timezone(?, bucket AT TIME ZONE 'UTC')) AS hour, behavior, n FROM b
        )
        SELECT hour, {_behavior_sums()} FROM l GROUP BY hour
        """,
        params + [tz],
    )
    out = pd.DataFrame({"hour": range(24)}).merge(counted, on="hour", how="left")
    for b in BEHAVIORS:
        out[b] = out[b].fillna(0).astype("int64")
    return _add_rates(out)


def top_items(con: duckdb.DuckDBPyConnection, f: EventFilter = EventFilter(), limit: int = 20) -> pd.DataFrame:
    """The most active items under the filter, with catalogue fields and per-behaviour counts."""
    where, params = _where(f, data_timezone(con), con)
    df = _df(
        con,
        f"""
        WITH c AS (SELECT e.item_id, e.behavior, count(*) AS n FROM events e WHERE {where} GROUP BY ALL),
        t AS (SELECT item_id, {_behavior_sums()}, sum(n)::BIGINT AS events FROM c GROUP BY item_id
              ORDER BY events DESC, item_id LIMIT ?)
        SELECT t.item_id, i.title, i.title_zh, i.category, i.category_zh, i.brand, i.price,
               t.events, t.pv, t.fav, t.cart, t.buy
        FROM t LEFT JOIN items i USING (item_id) ORDER BY t.events DESC, t.item_id
        """,
        params + [int(limit)],
    )
    return _add_rates(df)


def top_categories(con: duckdb.DuckDBPyConnection, f: EventFilter = EventFilter(), limit: int = 20) -> pd.DataFrame:
    """The most active categories under the filter ('unknown' for items without one)."""
    where, params = _where(f, data_timezone(con), con)
    df = _df(
        con,
        f"""
        WITH c AS (SELECT e.item_id, e.behavior, count(*) AS n FROM events e WHERE {where} GROUP BY ALL),
        k AS (SELECT coalesce(i.category, 'unknown') AS category, any_value(i.category_zh) AS category_zh,
                     c.behavior, sum(c.n) AS n
              FROM c LEFT JOIN items i USING (item_id) GROUP BY ALL)
        SELECT category, any_value(category_zh) AS category_zh, {_behavior_sums()}, sum(n)::BIGINT AS events
        FROM k GROUP BY category ORDER BY events DESC, category LIMIT ?
        """,
        params + [int(limit)],
    )
    return _add_rates(df)


def scene_mix(con: duckdb.DuckDBPyConnection, f: EventFilter = EventFilter()) -> pd.DataFrame:
    """Events per scene field and value, with the share within the field: columns scene, value, events, share.

    Busiest value first within each field, fields in schema order; one scan (grouping sets).
    """
    fields = scene_names(con)
    if not fields:
        return _with_shares(pd.DataFrame({"scene": pd.Series([], dtype="str"), "value": pd.Series([], dtype="str"),
                                          "events": pd.Series([], dtype="int64")}))
    where, params = _where(f, data_timezone(con), con)
    cols = [_scene_column(con, name) for name in fields]
    which = " ".join(f"WHEN grouping({c}) = 0 THEN ? " for c in cols)
    df = _df(
        con,
        f"""
        SELECT CASE {which} END AS scene, coalesce({", ".join(cols)}) AS value, count(*) AS events
        FROM events e WHERE {where}
        GROUP BY GROUPING SETS ({", ".join(f"({c})" for c in cols)})
        ORDER BY list_position(?, scene), events DESC, value
        """,
        [*fields, *params, fields],
    )
    return _with_shares(df)


def scene_mix_frame(mix: dict[str, dict[str, int]]) -> pd.DataFrame:
    """`scene_mix`'s table from `database_stats()["scene_mix"]` (no second scan for the overview)."""
    rows = [(scene, value, n) for scene, values in mix.items() for value, n in values.items()]
    df = pd.DataFrame(rows, columns=["scene", "value", "events"]).astype({"events": "int64"})
    return _with_shares(df)


def _with_shares(df: pd.DataFrame) -> pd.DataFrame:
    df["share"] = df["events"] / df.groupby("scene")["events"].transform("sum")
    return df


def active_shoppers(con: duckdb.DuckDBPyConnection, f: EventFilter = EventFilter(), limit: int = 20) -> pd.DataFrame:
    """The shoppers with most events under the filter: columns user_id, events, buys."""
    where, params = _where(f, data_timezone(con), con)
    return _df(
        con,
        f"""
        SELECT e.user_id, count(*) AS events, count(*) FILTER (WHERE e.behavior = 'buy') AS buys
        FROM events e WHERE {where} GROUP BY e.user_id ORDER BY events DESC, e.user_id LIMIT ?
        """,
        params + [int(limit)],
    )


def shopper_timeline(con: duckdb.DuckDBPyConnection, user_id: str, limit: int = 1000) -> pd.DataFrame:
    """A shopper's own events, newest `limit` of them in time order, in local time with item fields.

    Empty when the shopper is unknown; the whole history, whatever the page filters say.
    """
    tz = data_timezone(con)
    scene = "".join(f", t.{quoted(n)}" for n in scene_names(con))
    return _df(
        con,
        f"""
        WITH t AS (
            SELECT * FROM events e WHERE e.user_id = ? ORDER BY e.ts DESC, e.seq DESC LIMIT ?
        )
        SELECT timezone(?, t.ts AT TIME ZONE 'UTC') AS local_time, t.behavior, t.item_id,
               i.title, i.title_zh, i.category, i.category_zh, i.price{scene}
        FROM t LEFT JOIN items i USING (item_id) ORDER BY t.ts, t.seq
        """,
        [str(user_id), int(limit), tz],
    )
