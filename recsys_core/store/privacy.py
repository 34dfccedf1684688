"""The SQL of shopper privacy: the pseudonym record, erasing one shopper, the audit trail, and the file rewrite.

The key of a pseudonymised database never reaches it: `meta` holds only the scheme and a key check value
(`recsys_core.privacy.key_check_value`). An erasure deletes every row that names the shopper in one
transaction and records an `erasures` row with counts and times only. DuckDB keeps deleted rows in free
blocks of the file until they are reused, so after an erasure the live data is copied into a fresh file
(`COPY FROM DATABASE`) that atomically replaces the old one: no block of the old file survives.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path
from typing import Any

import duckdb

from recsys_core.store.connection import get_meta, set_meta
from recsys_core.store.ingest import whole_value_pattern

_SCHEME_KEY = "pseudonym_scheme"
_CHECK_KEY = "pseudonym_key_check"
_SHOPPER_TABLES = ("events", "pushes", "quarantine", "users")


def pseudonym_state(con: duckdb.DuckDBPyConnection) -> dict[str, str] | None:
    """``{"scheme", "key_check"}`` of a pseudonymised database, None for one holding raw ids."""
    check = get_meta(con, _CHECK_KEY)
    return {"scheme": get_meta(con, _SCHEME_KEY) or "", "key_check": check} if check else None


def set_pseudonym_state(con: duckdb.DuckDBPyConnection, scheme: str, key_check: str) -> None:
    """Mark the database pseudonymised (inside the caller's import transaction)."""
    set_meta(con, _SCHEME_KEY, scheme)
    set_meta(con, _CHECK_KEY, key_check)


def holds_shoppers(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether any row names a shopper (events, profiles, pushes or quarantined rows)."""
    return any(con.execute(f"SELECT EXISTS (SELECT 1 FROM {t})").fetchone()[0] for t in _SHOPPER_TABLES)


def _quarantine_match() -> str:
    """Quarantined rows of a shopper: by their recorded id, or — rows written before ids were recorded —
    by the id standing as a whole field in the raw text."""
    return "(user_id = $u OR (user_id IS NULL AND regexp_matches(raw, $pattern)))"


def shopper_rows(con: duckdb.DuckDBPyConnection, user_id: str) -> dict[str, int]:
    """How many rows of each table name the shopper (all zero: unknown shopper)."""
    p = {"u": user_id, "pattern": whole_value_pattern(user_id)}
    return {
        "events": con.execute("SELECT count(*) FROM events WHERE user_id = $u", {"u": user_id}).fetchone()[0],
        "pushes": con.execute("SELECT count(*) FROM pushes WHERE user_id = $u", {"u": user_id}).fetchone()[0],
        "quarantine_rows": con.execute(f"SELECT count(*) FROM quarantine WHERE {_quarantine_match()}", p).fetchone()[0],
        "users_rows": con.execute("SELECT count(*) FROM users WHERE user_id = $u", {"u": user_id}).fetchone()[0],
    } if user_id else {"events": 0, "pushes": 0, "quarantine_rows": 0, "users_rows": 0}


def erase_shopper(con: duckdb.DuckDBPyConnection, user_id: str) -> dict[str, Any] | None:
    """Delete every row naming ``user_id`` and record the erasure, in one transaction.

    Returns the audit record (erasure_id, erased_at, counts, data_since, data_hash), or None when no row
    names the shopper (nothing is written then). ``data_since`` is when the shopper's data first arrived
    (the earliest import run holding it; None when some of it came outside an import run) and ``data_hash``
    the event fingerprint just before the erasure; both serve to flag models trained on the shopper
    (`recsys_core.privacy.trained_on_erased_data`) and neither identifies the shopper.
    """
    from recsys_core.store.events import data_fingerprint

    p = {"u": user_id, "pattern": whole_value_pattern(user_id)}
    con.execute("BEGIN TRANSACTION")
    try:
        counts = shopper_rows(con, user_id)
        if not any(counts.values()):
            con.execute("ROLLBACK")
            return None
        data_since, data_hash = None, None
        if counts["events"]:
            data_hash = data_fingerprint(con)["events_hash"]
            outside_runs, data_since = con.execute(
                "SELECT count(*) FILTER (WHERE r.run_id IS NULL), min(r.started_at) "
                "FROM (SELECT DISTINCT source_run FROM events WHERE user_id = $u) e "
                "LEFT JOIN import_runs r ON r.run_id = e.source_run",
                {"u": user_id},
            ).fetchone()
            if outside_runs:
                data_since = None
        con.execute("DELETE FROM events WHERE user_id = $u", {"u": user_id})
        con.execute("DELETE FROM pushes WHERE user_id = $u", {"u": user_id})  # the stored reasons live on the push rows
        con.execute(f"DELETE FROM quarantine WHERE {_quarantine_match()}", p)
        con.execute("DELETE FROM users WHERE user_id = $u", {"u": user_id})
        record = {
            "erasure_id": uuid.uuid4().hex,
            "erased_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
            **counts,
            "data_since": data_since,
            "data_hash": data_hash,
        }
        con.execute(
            "INSERT INTO erasures (erasure_id, erased_at, events, pushes, quarantine_rows, users_rows, data_since, data_hash) "
            "VALUES ($erasure_id, $erased_at, $events, $pushes, $quarantine_rows, $users_rows, $data_since, $data_hash)",
            record,
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return record


def erasures(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every erasure recorded, oldest first (empty for a file written before erasures existed)."""
    exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'erasures'").fetchone()[0]
    if not exists:
        return []
    cur = con.execute(
        "SELECT erasure_id, erased_at, events, pushes, quarantine_rows, users_rows, data_since, data_hash "
        "FROM erasures ORDER BY erased_at"
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def rewrite_database(path: str | os.PathLike) -> None:
    """Copy the live data of the (closed) database at ``path`` into a fresh file and put it in place atomically.

    Deleted rows stay in a DuckDB file's free blocks until reused; the copy holds only live rows.
    The old file is replaced only once the copy is complete and closed.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.rewrite-{os.getpid()}")
    for leftover in (tmp, Path(f"{tmp}.wal")):
        leftover.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        name = con.execute("SELECT current_database()").fetchone()[0]
        con.execute("ATTACH ? AS scenepush_rewrite", [str(tmp)])
        con.execute(f'COPY FROM DATABASE "{name.replace(chr(34), chr(34) * 2)}" TO scenepush_rewrite')
        con.execute("DETACH scenepush_rewrite")
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        raise
    con.close()
    if Path(f"{path}.wal").exists() or Path(f"{tmp}.wal").exists():
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"{path}: a write-ahead log remained after closing; the database was not rewritten")
    os.chmod(tmp, path.stat().st_mode & 0o7777)  # the copy keeps the file's permissions
    os.replace(tmp, path)


def file_contains(path: str | os.PathLike, needle: str) -> bool:
    """Whether the bytes of the database file (or its write-ahead log) contain ``needle`` (UTF-8)."""
    target = needle.encode("utf-8")
    for p in (Path(path), Path(f"{path}.wal")):
        if not p.exists():
            continue
        tail = b""
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                if target in tail + chunk:
                    return True
                tail = chunk[-(len(target) - 1):] if len(target) > 1 else b""
    return False
