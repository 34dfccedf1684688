"""The push audit log (docs/design.md §2 `pushes`): write a push batch, list and open pushes.

A push is one item sent to one shopper for one moment and scene, with the rank
and score it had and the model version that ranked it; ``scene_json`` holds the
scene values ({"field": "value"}, whatever fields the data has) and ``reasons_json``
the reasons recorded at push time. A batch of pushes (one shopper's top-k) is
written in one transaction: either all rows or none.

A push is unique per shopper × item × moment × model version: writing one that exists
stores nothing (`insert_pushes` reports it), so pressing "Push these" twice, or a
client retrying, never notifies a shopper twice.

``pushed_at`` is the naive UTC moment the push is for (the scenario's time, not
the wall clock; ``created_at`` is when the row was written). Date filters are
local dates in the data's timezone, turned into a UTC range in Python as in
`recsys_core.store.analytics`. Values are always bound parameters; the only SQL
fragments built at run time are placeholder lists and allow-listed column names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence

import duckdb
import pandas as pd

from recsys_core.store.analytics import _local_midnight_utc, _placeholders, data_timezone

PUSH_FIELDS = (
    "push_id",
    "pushed_at",
    "user_id",
    "item_id",
    "rank",
    "score",
    "scene_json",
    "model_version",
    "reasons_json",
)
_REQUIRED = tuple(f for f in PUSH_FIELDS if f != "reasons_json")

# Columns of `list_pushes` / `get_push`: the push, its local time and the item's catalogue fields.
_SELECT = """
    p.push_id, p.pushed_at, timezone(?, p.pushed_at AT TIME ZONE 'UTC') AS local_time,
    p.user_id, p.item_id, i.title, i.title_zh, i.category, i.category_zh, i.price,
    p.rank, p.score, p.scene_json, p.model_version, p.reasons_json, p.created_at
"""


@dataclass(frozen=True)
class PushFilter:
    """Which pushes to list. Empty tuples / None mean "all"; dates are local and inclusive."""

    start: date | None = None
    end: date | None = None
    user_ids: tuple[str, ...] = ()
    item_ids: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    scene: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (field, allowed values) pairs; any field of the data
    model_versions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        for name in ("user_ids", "item_ids", "categories", "model_versions"):
            value = getattr(self, name)
            if isinstance(value, str):  # a bare string would be read as a tuple of characters
                raise TypeError(f"PushFilter.{name} must be a tuple of strings, got the string {value!r}")
        object.__setattr__(self, "scene", tuple((str(f), tuple(map(str, v))) for f, v in dict(self.scene).items() if v))


# Allow-list: filter field -> SQL column.
_FILTER_COLUMNS = {
    "user_ids": "p.user_id",
    "item_ids": "p.item_id",
    "model_versions": "p.model_version",
}


def _where(f: PushFilter, tz: str) -> tuple[str, list[Any]]:
    """SQL condition over `pushes p` (joined with `items i`) and its bound values."""
    clauses: list[str] = []
    params: list[Any] = []
    if f.start:
        clauses.append("p.pushed_at >= ?")
        params.append(_local_midnight_utc(f.start, tz))
    if f.end:
        clauses.append("p.pushed_at < ?")
        params.append(_local_midnight_utc(f.end + timedelta(days=1), tz))
    for name, column in _FILTER_COLUMNS.items():
        values = tuple(map(str, getattr(f, name)))
        if values:
            clauses.append(f"{column} IN ({_placeholders(values)})")
            params.extend(values)
    if f.categories:
        clauses.append(f"i.category IN ({_placeholders(f.categories)})")
        params.extend(map(str, f.categories))
    for field, values in f.scene:  # the field name is a bound value too (a JSON key)
        clauses.append(f"coalesce(json_extract_string(p.scene_json, ?), 'unknown') IN ({_placeholders(values)})")
        params.extend([json_path(field), *values])
    return (" AND ".join(clauses) or "TRUE"), params


def json_path(field: str) -> str:
    """The JSON path of one scene field in ``scene_json`` (quoted key, so any field name is safe)."""
    return "$." + json.dumps(str(field))


def _row(push: Mapping[str, Any]) -> list[Any]:
    missing = [k for k in _REQUIRED if push.get(k) is None]
    if missing:
        raise ValueError(f"a push record lacks {missing}; every push needs {list(_REQUIRED)}")
    pushed_at = push["pushed_at"]
    if not isinstance(pushed_at, datetime):
        raise TypeError(f"pushed_at must be a datetime (naive UTC), got {type(pushed_at).__name__}")
    if pushed_at.tzinfo is not None:
        raise ValueError("pushed_at must be naive UTC; convert aware times with .astimezone(timezone.utc)")
    return [
        str(push["push_id"]),
        pushed_at,
        str(push["user_id"]),
        str(push["item_id"]),
        int(push["rank"]),
        float(push["score"]),
        push["scene_json"] if isinstance(push["scene_json"], str) else json.dumps(dict(push["scene_json"]), ensure_ascii=False, sort_keys=True),
        str(push["model_version"]),
        None if push.get("reasons_json") is None else str(push["reasons_json"]),
    ]


def insert_pushes(con: duckdb.DuckDBPyConnection, pushes: Iterable[Mapping[str, Any]]) -> int:
    """Write push records (mappings with the `PUSH_FIELDS`) in ONE transaction; returns how many were new.

    A record whose shopper × item × moment × model version is already logged is skipped (`existing_pushes`
    tells which). Every row is checked before anything is written; on any error nothing is kept.
    ``con`` must be writable (a read-only connection raises duckdb's InvalidInputException).
    """
    rows = [_row(p) for p in pushes]
    if not rows:
        return 0
    columns = ", ".join(PUSH_FIELDS)
    con.execute("BEGIN TRANSACTION")
    try:
        done = {(r[2], r[3], r[1], r[7]) for r in _existing(con, rows)}
        new = [r for r in rows if (r[2], r[3], r[1], r[7]) not in done]
        if new:
            con.executemany(f"INSERT INTO pushes ({columns}) VALUES ({_placeholders(PUSH_FIELDS)})", new)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return len(new)


def _existing(con: duckdb.DuckDBPyConnection, rows: list[list[Any]]) -> list[tuple]:
    """Logged pushes with the same shopper, item, moment and model version as any of ``rows``."""
    keys = {(r[2], r[3], r[1], r[7]) for r in rows}
    users = sorted({k[0] for k in keys})
    found = con.execute(
        "SELECT push_id, pushed_at, user_id, item_id, rank, score, scene_json, model_version, reasons_json, created_at "
        "FROM pushes WHERE list_contains(?, user_id)", [users]
    ).fetchall()
    return [r for r in found if (r[2], r[3], r[1], r[7]) in keys]


def existing_pushes(con: duckdb.DuckDBPyConnection, user_id: str, item_ids: Sequence[str], pushed_at: datetime,
                    model_version: str) -> dict[str, datetime]:
    """Items of this shopper × moment × model already pushed: item_id -> when the push was logged (created_at)."""
    rows = con.execute(
        "SELECT item_id, created_at FROM pushes WHERE user_id = ? AND pushed_at = ? AND model_version = ? AND list_contains(?, item_id)",
        [str(user_id), pushed_at, str(model_version), [str(i) for i in item_ids]],
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def pushes_on_day(con: duckdb.DuckDBPyConnection, user_id: str, day: date) -> int:
    """How many pushes the shopper has for one local day (for a daily frequency cap)."""
    tz = data_timezone(con)
    row = con.execute(
        "SELECT count(*) FROM pushes WHERE user_id = ? AND pushed_at >= ? AND pushed_at < ?",
        [str(user_id), _local_midnight_utc(day, tz), _local_midnight_utc(day + timedelta(days=1), tz)],
    ).fetchone()
    return int(row[0])


def list_pushes(con: duckdb.DuckDBPyConnection, f: PushFilter = PushFilter(), limit: int | None = 1000) -> pd.DataFrame:
    """Pushes matching ``f``, newest moment first (then shopper, rank), with local time and item fields.

    Columns: push_id, pushed_at (UTC), local_time, user_id, item_id, title, title_zh, category,
    category_zh, price, rank, score, scene_json, model_version, reasons_json, created_at.
    """
    tz = data_timezone(con)
    where, params = _where(f, tz)
    sql = f"""
        SELECT {_SELECT}
        FROM pushes p LEFT JOIN items i ON i.item_id = p.item_id
        WHERE {where}
        ORDER BY p.pushed_at DESC, p.created_at DESC, p.user_id, p.rank, p.push_id
    """
    values: list[Any] = [tz, *params]
    if limit is not None:
        sql += " LIMIT ?"
        values.append(int(limit))
    return con.execute(sql, values).df()


def count_pushes(con: duckdb.DuckDBPyConnection, f: PushFilter = PushFilter()) -> int:
    """How many pushes match ``f``."""
    where, params = _where(f, data_timezone(con))
    row = con.execute(f"SELECT count(*) FROM pushes p LEFT JOIN items i ON i.item_id = p.item_id WHERE {where}", params).fetchone()
    return int(row[0])


def get_push(con: duckdb.DuckDBPyConnection, push_id: str) -> dict[str, Any] | None:
    """One push with the columns of `list_pushes`, or None when there is no such push."""
    tz = data_timezone(con)
    df = con.execute(
        f"SELECT {_SELECT} FROM pushes p LEFT JOIN items i ON i.item_id = p.item_id WHERE p.push_id = ?",
        [tz, str(push_id)],
    ).df()
    return None if df.empty else df.iloc[0].to_dict()


def get_pushes(con: duckdb.DuckDBPyConnection, push_ids: Sequence[str]) -> pd.DataFrame:
    """The pushes with these ids (columns of `list_pushes`), in rank order."""
    tz = data_timezone(con)
    return con.execute(
        f"""SELECT {_SELECT} FROM pushes p LEFT JOIN items i ON i.item_id = p.item_id
            WHERE list_contains(?, p.push_id) ORDER BY p.user_id, p.rank""",
        [tz, [str(p) for p in push_ids]],
    ).df()


def push_filter_options(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Values a review page offers as filters: local date range and the distinct scene values,
    model versions and categories present among the pushes."""
    tz = data_timezone(con)
    first, last = con.execute(
        "SELECT min(timezone(?, pushed_at AT TIME ZONE 'UTC')), max(timezone(?, pushed_at AT TIME ZONE 'UTC')) FROM pushes",
        [tz, tz],
    ).fetchone()

    def distinct(column: str) -> list[str]:
        # `column` comes from the fixed tuple below, never from a caller.
        sql = f"SELECT DISTINCT {column} FROM pushes p LEFT JOIN items i ON i.item_id = p.item_id WHERE {column} IS NOT NULL ORDER BY 1"
        return [r[0] for r in con.execute(sql).fetchall()]

    options: dict[str, Any] = {
        "start": first.date() if first is not None else None,
        "end": last.date() if last is not None else None,
    }
    for key, column in (("model_version", "p.model_version"), ("category", "i.category")):
        options[key] = distinct(column)
    pairs = con.execute(
        "SELECT DISTINCT k.key, k.value FROM pushes p, json_each(p.scene_json) k ORDER BY 1, 2"
    ).fetchall()
    scene: dict[str, list[str]] = {}
    for key, value in pairs:
        scene.setdefault(str(key), []).append(json.loads(value) if isinstance(value, str) and value.startswith('"') else str(value))
    options["scene"] = scene
    return options
