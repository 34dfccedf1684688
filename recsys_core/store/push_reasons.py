"""Reasons attached to pushes after they were logged.

"Push these" answers as soon as the pushes are stored; their reasons (a batched explanation pass,
seconds for ten items) are computed afterwards and attached here. Only a push that has no reasons
yet gets them, so a late or repeated attachment never overwrites what a review already read.
"""

from __future__ import annotations

from typing import Mapping

import duckdb


def set_push_reasons(con: duckdb.DuckDBPyConnection, reasons: Mapping[str, str]) -> int:
    """Store ``reasons`` (push id → reasons JSON text) on pushes that have none yet, in one transaction;
    returns how many pushes got them. ``con`` must be writable."""
    rows = [(str(text), str(push_id)) for push_id, text in reasons.items() if text is not None]
    if not rows:
        return 0
    con.execute("BEGIN TRANSACTION")
    try:
        before = con.execute("SELECT count(*) FROM pushes WHERE reasons_json IS NOT NULL").fetchone()[0]
        con.executemany("UPDATE pushes SET reasons_json = ? WHERE push_id = ? AND reasons_json IS NULL", rows)
        after = con.execute("SELECT count(*) FROM pushes WHERE reasons_json IS NOT NULL").fetchone()[0]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return int(after - before)
