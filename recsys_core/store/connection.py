"""Database path resolution, the one connection factory, and the schema (DESIGN §2)."""

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
    device     VARCHAR NOT NULL DEFAULT 'unknown',
    channel    VARCHAR NOT NULL DEFAULT 'unknown',
    location   VARCHAR NOT NULL DEFAULT 'unknown',
    source_run VARCHAR
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
    reason     VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS pushes (
    push_id       VARCHAR PRIMARY KEY,
    pushed_at     TIMESTAMP NOT NULL,       -- UTC moment the push is for
    user_id       VARCHAR NOT NULL,
    item_id       VARCHAR NOT NULL,
    rank          INTEGER NOT NULL,
    score         DOUBLE NOT NULL,
    device        VARCHAR NOT NULL,
    channel       VARCHAR NOT NULL,
    location      VARCHAR NOT NULL,
    model_version VARCHAR NOT NULL,
    reasons_json  VARCHAR,
    created_at    TIMESTAMP DEFAULT current_timestamp
);
CREATE TABLE IF NOT EXISTS meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
"""


class DatabaseLockedError(RuntimeError):
    """Another process holds the DuckDB write lock on the file."""


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
        con.execute(SCHEMA)
    return con


def get_meta(con: duckdb.DuckDBPyConnection, key: str, default: str | None = None) -> str | None:
    row = con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else default


def set_meta(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    con.execute(
        "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, value]
    )
