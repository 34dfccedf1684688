"""Database path resolution, the one connection factory, and the schema (docs/design.md §2)."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

DEFAULT_DB_PATH = Path("data/scenepush.duckdb")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    user_id    VARCHAR NOT NULL,
    item_id    VARCHAR NOT NULL,
    behavior   VARCHAR NOT NULL CHECK (behavior IN ('pv', 'fav', 'cart', 'buy')),
    ts         TIMESTAMP NOT NULL,          -- UTC
    seq        BIGINT NOT NULL,             -- source order: ties on ts are broken by it, never by id
    source_run VARCHAR,
    event_id   VARCHAR                      -- a client's id of the event (idempotent ingestion), when given
    -- + one VARCHAR column per scene field (store.scene), default 'unknown'
);
CREATE TABLE IF NOT EXISTS scene_fields (
    name              VARCHAR PRIMARY KEY,
    label_en          VARCHAR,
    label_zh          VARCHAR,
    known_at_decision BOOLEAN NOT NULL,
    position          INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    item_id     VARCHAR PRIMARY KEY,
    title       VARCHAR,
    title_zh    VARCHAR,
    category    VARCHAR,
    category_zh VARCHAR,
    brand       VARCHAR,
    price       DOUBLE
);
CREATE TABLE IF NOT EXISTS users (
    user_id VARCHAR PRIMARY KEY,
    city    VARCHAR,
    segment VARCHAR
);
CREATE TABLE IF NOT EXISTS import_runs (
    run_id           VARCHAR PRIMARY KEY,
    source           VARCHAR NOT NULL,
    format           VARCHAR NOT NULL,
    file_sha256      VARCHAR NOT NULL,
    started_at       TIMESTAMP NOT NULL,
    rows_read        BIGINT NOT NULL,
    rows_imported    BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    status           VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    run_id     VARCHAR NOT NULL,
    row_number BIGINT NOT NULL,
    raw        VARCHAR,
    reason     VARCHAR NOT NULL,
    user_id    VARCHAR                      -- the row's shopper id (a pseudonym when pseudonymised), when it had one
);
CREATE TABLE IF NOT EXISTS pushes (
    push_id       VARCHAR PRIMARY KEY,
    pushed_at     TIMESTAMP NOT NULL,       -- UTC moment the push is for
    user_id       VARCHAR NOT NULL,
    item_id       VARCHAR NOT NULL,
    rank          INTEGER NOT NULL,
    score         DOUBLE NOT NULL,
    scene_json    VARCHAR NOT NULL,         -- the scene the push was for: {"field": "value", ...}
    model_version VARCHAR NOT NULL,
    reasons_json  VARCHAR,
    created_at    TIMESTAMP DEFAULT current_timestamp
);
CREATE TABLE IF NOT EXISTS erasures (       -- one row per forgotten shopper; nothing that identifies them
    erasure_id      VARCHAR PRIMARY KEY,    -- random
    erased_at       TIMESTAMP NOT NULL,     -- UTC
    events          BIGINT NOT NULL,        -- rows deleted per table
    pushes          BIGINT NOT NULL,
    quarantine_rows BIGINT NOT NULL,
    users_rows      BIGINT NOT NULL,
    data_since      TIMESTAMP,              -- earliest import run that brought the shopper's events (NULL: unknown)
    data_hash       VARCHAR                 -- event fingerprint just before the erasure (flags models trained on it)
);
CREATE TABLE IF NOT EXISTS meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
"""
# Bumped when the schema changes in a way older files need migrating (`migrate`).
SCHEMA_VERSION = "2"


class DatabaseLockedError(RuntimeError):
    """Another process holds the DuckDB write lock on the file."""


class OutdatedDatabaseError(ValueError):
    """The file has an older schema; opening it writable (`migrate`) updates it."""


def resolve_db_path(db: str | os.PathLike | None = None) -> Path:
    """`--db` wins, then `$RECSYS_DB`, then `data/scenepush.duckdb`."""
    if db:
        return Path(db)
    env = os.environ.get("RECSYS_DB")
    return Path(env) if env else DEFAULT_DB_PATH


def connect(db: str | os.PathLike | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the store, creating the file and schema when writable.

    DuckDB allows one read-write process or many read-only ones per file; a lock
    conflict becomes a `DatabaseLockedError` that says what to do.
    """
    path = resolve_db_path(db)
    if read_only and not path.exists():
        raise FileNotFoundError(f"database {path} does not exist; run `python -m recsys_core sample` or import data first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise DatabaseLockedError(
                f"database {path} is locked by another process (DuckDB allows one writer or many readers). "
                f"Close the other program (e.g. a running import or the app) or use a copy of the file. Details: {exc}"
            ) from exc
        raise
    if not read_only:
        _migrate(con)
        con.execute(SCHEMA)
        # Added without a schema bump: older files gain the column on their next writable open.
        con.execute("ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS user_id VARCHAR")
        set_meta(con, "schema_version", SCHEMA_VERSION)
    elif _tables(con) and get_meta(con, "schema_version") != SCHEMA_VERSION:
        con.close()
        raise OutdatedDatabaseError(
            f"database {path} was written by an older ScenePush; update it once with `python -m recsys_core migrate --db {path}`"
        )
    return con


_EVENT_CORE = ("user_id", "item_id", "behavior", "ts", "seq", "source_run", "event_id")
_PUSH_CORE = ("push_id", "pushed_at", "user_id", "item_id", "rank", "score", "scene_json", "model_version", "reasons_json", "created_at")


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Bring a schema-1 file up to date in one transaction: scene columns become `scene_fields` entries,
    events get their source order (`seq`, the old tie order), pushes keep their scene as JSON."""
    tables = _tables(con)
    if "events" not in tables or "scene_fields" in tables:
        return
    cols = [r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'events'").fetchall()]
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "CREATE TABLE scene_fields (name VARCHAR PRIMARY KEY, label_en VARCHAR, label_zh VARCHAR, "
            "known_at_decision BOOLEAN NOT NULL, position INTEGER NOT NULL)"
        )
        from recsys_core.context import scene_field

        scene = [c for c in cols if c not in _EVENT_CORE]
        for pos, name in enumerate(scene):
            f = scene_field(name)
            con.execute("INSERT INTO scene_fields VALUES (?, ?, ?, ?, ?)", [name, f.label_en, f.label_zh, f.known_at_decision, pos + 1])
        if "seq" not in cols:
            con.execute("ALTER TABLE events ADD COLUMN seq BIGINT")
            con.execute(
                "UPDATE events SET seq = o.seq FROM (SELECT rowid AS r, row_number() OVER (ORDER BY user_id, ts, item_id, behavior) AS seq "
                "FROM events) o WHERE events.rowid = o.r"
            )
        if "event_id" not in cols:
            con.execute("ALTER TABLE events ADD COLUMN event_id VARCHAR")
        push_cols = [r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'pushes'").fetchall()]
        old = [c for c in push_cols if c not in _PUSH_CORE]
        if push_cols and "scene_json" not in push_cols:
            # column names come from the table itself and are checked identifiers
            pairs = ", ".join(f"'{scene_field(c).name}', \"{c}\"" for c in old)
            con.execute("ALTER TABLE pushes ADD COLUMN scene_json VARCHAR")
            con.execute(f"UPDATE pushes SET scene_json = json_object({pairs})::VARCHAR" if old else "UPDATE pushes SET scene_json = '{}'")
            for c in old:
                con.execute(f'ALTER TABLE pushes DROP COLUMN "{scene_field(c).name}"')
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def get_meta(con: duckdb.DuckDBPyConnection, key: str, default: str | None = None) -> str | None:
    row = con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else default


def set_meta(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    con.execute(
        "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, value]
    )
