"""The scene fields of the data: the `scene_fields` table and one VARCHAR column per field in `events`.

Storage: one column per field, added by `ALTER TABLE` when an import first brings the field. A plain
column keeps the behaviour page's group-bys and filters on a scene field a columnar scan of one
dictionary-compressed VARCHAR, as before the fields became data; a MAP column costs a map lookup per row
on every query and a long table a join of events × fields rows (docs/design.md has the measurements).
Rows from sources without a field read 'unknown' (the column default).

Field names are checked identifiers (`context.check_field_name`) and are quoted wherever they reach SQL.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import duckdb

from recsys_core.context import UNKNOWN, SceneField, check_field_name


def quoted(name: str) -> str:
    """A scene field name as a SQL identifier (checked, then quoted)."""
    return '"' + check_field_name(name) + '"'


def scene_fields(con: duckdb.DuckDBPyConnection) -> list[SceneField]:
    """The data's scene fields, in the order they were added."""
    rows = con.execute(
        "SELECT name, label_en, label_zh, known_at_decision FROM scene_fields ORDER BY position, name"
    ).fetchall()
    return [SceneField(r[0], r[1] or "", r[2] or "", bool(r[3])) for r in rows]


def scene_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [f.name for f in scene_fields(con)]


def ensure_scene_fields(con: duckdb.DuckDBPyConnection, fields: Iterable[SceneField]) -> list[str]:
    """Add the fields the data does not have yet (a column in `events` + a row in `scene_fields`).

    Existing fields keep their column and settings. Runs inside the caller's transaction.
    Returns the names of the fields added.
    """
    have = set(scene_names(con))
    columns = {r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'events'").fetchall()}
    position = con.execute("SELECT coalesce(max(position), 0) FROM scene_fields").fetchone()[0]
    added = []
    for f in fields:
        if f.name in have:
            continue
        if f.name not in columns:
            con.execute(f"ALTER TABLE events ADD COLUMN {quoted(f.name)} VARCHAR DEFAULT '{UNKNOWN}'")
        position += 1
        con.execute(
            "INSERT INTO scene_fields (name, label_en, label_zh, known_at_decision, position) VALUES (?, ?, ?, ?, ?)",
            [f.name, f.label_en, f.label_zh, f.known_at_decision, position],
        )
        have.add(f.name)
        added.append(f.name)
    return added


def select_list(names: Sequence[str], alias: str = "") -> str:
    """``, e."device", e."channel"`` — the scene columns for a SELECT (empty when there are none)."""
    prefix = f"{alias}." if alias else ""
    return "".join(f", {prefix}{quoted(n)}" for n in names)
