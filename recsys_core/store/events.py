"""Reading behaviour, items and shoppers for the models and the serving API.

SQL text and values travel separately (bound parameters only). Local time is
computed in SQL from the UTC ``ts`` with the data's timezone bound as a value.
Rows of one shopper come in source order: ties on ``ts`` are broken by ``seq``, the
event's position in its import (file line, or arrival order), never by an id — an
id order within a second is a pattern a model can learn and exploit (a leak).
Scene columns are those of the data's schema (`store.scene`).
"""

from __future__ import annotations

import datetime as dt
from typing import Sequence

import duckdb
import numpy as np
import pandas as pd

from recsys_core.store.connection import get_meta
from recsys_core.store.scene import scene_names, select_list

DEFAULT_TIMEZONE = "Asia/Shanghai"
ORDER = "user_id, ts, seq"  # the one event order (source order within a second)


def _event_columns(con: duckdb.DuckDBPyConnection) -> str:
    return "user_id, item_id, behavior, ts, seq, timezone(?, ts AT TIME ZONE 'UTC') AS local_ts" + select_list(scene_names(con))


def data_timezone(con: duckdb.DuckDBPyConnection) -> str:
    """The data's local timezone (``meta.timezone``), default Asia/Shanghai."""
    return get_meta(con, "timezone", DEFAULT_TIMEZONE) or DEFAULT_TIMEZONE


def read_events(con: duckdb.DuckDBPyConnection, tz: str) -> pd.DataFrame:
    """All events, ordered by shopper then time, with the local timestamp in ``tz``."""
    return con.execute(f"SELECT {_event_columns(con)} FROM events ORDER BY {ORDER}", [tz]).df()


def read_user_events(
    con: duckdb.DuckDBPyConnection, user_id: str, tz: str, before: dt.datetime | None = None, limit: int | None = None
) -> dict[str, np.ndarray]:
    """One shopper's most recent events (at most ``limit``), strictly before ``before`` (naive UTC) when given,
    oldest first, as numpy arrays by column (serving reads this on every request: no pandas)."""
    cached = getattr(con, "cached_user_events", None)  # the API's memory (`serve.memory.CachedReads`)
    if cached is not None and (cols := cached(user_id, tz, before, limit)) is not None:
        return cols
    sql = f"SELECT {_event_columns(con)} FROM events WHERE user_id = ?"
    params: list = [tz, str(user_id)]
    if before is not None:
        sql += " AND ts < ?"
        params.append(before)
    sql += " ORDER BY ts DESC, seq DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    cols = con.execute(sql, params).fetchnumpy()
    return {k: np.asarray(v)[::-1] for k, v in cols.items()}


def read_users_events(
    con: duckdb.DuckDBPyConnection, user_ids: Sequence[str], tz: str, source_run: str | None = None
) -> dict[str, np.ndarray]:
    """Every event of these shoppers (only those of import run ``source_run`` when given), ordered by shopper
    then time, as numpy arrays by column — the columns of `read_user_events` (the API keeps them in memory)."""
    sql = f"SELECT {_event_columns(con)} FROM events WHERE list_contains(?, user_id)"
    params: list = [tz, list(map(str, user_ids))]
    if source_run is not None:
        sql += " AND source_run = ?"
        params.append(source_run)
    return {k: np.asarray(v) for k, v in con.execute(f"{sql} ORDER BY {ORDER}", params).fetchnumpy().items()}


def read_items(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The item catalogue: item_id, title, title_zh, category, category_zh, brand, price."""
    return con.execute(
        "SELECT item_id, title, title_zh, category, category_zh, brand, price FROM items ORDER BY item_id"
    ).df()


def read_items_by_id(con: duckdb.DuckDBPyConnection, item_ids: Sequence[str]) -> dict[str, tuple]:
    """Catalogue rows of the given items: item_id -> (title, title_zh, category, category_zh, brand, price);
    missing items are absent. (Serving reads this on every request: plain tuples, no pandas.)"""
    cached = getattr(con, "cached_items_by_id", None)
    if cached is not None:
        return cached(item_ids)
    rows = con.execute(
        "SELECT item_id, title, title_zh, category, category_zh, brand, price FROM items WHERE list_contains(?, item_id)",
        [list(map(str, item_ids))],
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def user_exists(con: duckdb.DuckDBPyConnection, user_id: str) -> bool:
    """Whether the shopper has any event or a profile row."""
    row = con.execute(
        "SELECT EXISTS(SELECT 1 FROM events WHERE user_id = ?) OR EXISTS(SELECT 1 FROM users WHERE user_id = ?)",
        [str(user_id), str(user_id)],
    ).fetchone()
    return bool(row[0])


def active_users(con: duckdb.DuckDBPyConnection, limit: int = 20) -> list[str]:
    """The shoppers with the most events (ties by id): for demos and benchmarks."""
    rows = con.execute(
        "SELECT user_id FROM events GROUP BY user_id ORDER BY count(*) DESC, user_id LIMIT ?", [int(limit)]
    ).fetchall()
    return [r[0] for r in rows]


def data_fingerprint(con: duckdb.DuckDBPyConnection) -> dict:
    """Counts, time range and an order-independent hash of the events: tells whether a model was
    trained on this exact data."""
    scene = select_list(scene_names(con))
    n, users, items, first, last, digest = con.execute(
        "SELECT count(*), count(DISTINCT user_id), count(DISTINCT item_id), min(ts), max(ts), "
        f"bit_xor(hash(user_id, item_id, behavior, ts{scene})) FROM events"
    ).fetchone()
    return {
        "n_events": int(n),
        "n_users": int(users),
        "n_items": int(items),
        "first_ts": first.isoformat() if first else None,
        "last_ts": last.isoformat() if last else None,
        "events_hash": f"{int(digest or 0):016x}",
    }


def user_item_ids(con: duckdb.DuckDBPyConnection, user_id: str) -> list[str]:
    """Every item the shopper has interacted with (for "exclude already seen")."""
    cached = getattr(con, "cached_user_item_ids", None)
    if cached is not None:
        return cached(user_id)
    rows = con.execute("SELECT DISTINCT item_id FROM events WHERE user_id = ?", [str(user_id)]).fetchall()
    return [r[0] for r in rows]
