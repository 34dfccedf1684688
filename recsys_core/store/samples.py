"""Loading the generated sample world (recsys_core.synth) into the store.

The sample replaces itself: events of earlier sample runs are deleted, sample items
and shoppers are overwritten by id, and the new run is recorded in `import_runs`
(source 'sample', format 'synth'). All of it is one transaction, so a failure
leaves the database as it was.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone as dt_timezone

import duckdb
import pandas as pd

from recsys_core.context import SceneField
from recsys_core.store.connection import get_meta, set_meta
from recsys_core.store.scene import ensure_scene_fields, select_list

SAMPLE_SOURCE = "sample"
SAMPLE_FORMAT = "synth"


def replace_sample_world(
    con: duckdb.DuckDBPyConnection,
    events: pd.DataFrame,
    items: pd.DataFrame,
    users: pd.DataFrame,
    *,
    file_sha256: str,
    timezone: str,
    scene: list[SceneField],
) -> str:
    """Replace the sample rows with these frames; returns the new run id.

    ``events`` rows are in source order (their ``seq`` follows the frame's row order); ``scene`` names
    the scene fields, one column of ``events`` each.
    """
    if get_meta(con, "pseudonym_key_check"):
        raise ValueError("this database holds pseudonymised shopper ids; the sample world's raw ids would mix in: "
                         "build the sample into another database")
    run_id = f"sample-{uuid.uuid4().hex[:12]}"
    started = datetime.now(dt_timezone.utc).replace(tzinfo=None)
    events = events.assign(source_position=range(1, len(events) + 1))  # the frame's order is the source order
    con.execute("BEGIN TRANSACTION")
    try:
        con.register("sample_events_df", events)
        con.register("sample_items_df", items)
        con.register("sample_users_df", users)
        con.execute(
            "DELETE FROM events WHERE source_run IN (SELECT run_id FROM import_runs WHERE source = ?)", [SAMPLE_SOURCE]
        )
        con.execute("UPDATE import_runs SET status = 'replaced' WHERE source = ? AND status = 'ok'", [SAMPLE_SOURCE])
        con.execute("DELETE FROM items WHERE item_id IN (SELECT item_id FROM sample_items_df)")
        con.execute("DELETE FROM users WHERE user_id IN (SELECT user_id FROM sample_users_df)")
        con.execute(
            "INSERT INTO items (item_id, title, title_zh, category, category_zh, brand, price) "
            "SELECT item_id, title, title_zh, category, category_zh, brand, price FROM sample_items_df"
        )
        con.execute("INSERT INTO users (user_id, city, segment) SELECT user_id, city, segment FROM sample_users_df")
        ensure_scene_fields(con, scene)
        cols = select_list([f.name for f in scene])
        base = con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        con.execute(
            f"INSERT INTO events (user_id, item_id, behavior, ts, seq, source_run{cols}) "
            f"SELECT user_id, item_id, behavior, CAST(ts AS TIMESTAMP), ? + source_position, ?{cols} FROM sample_events_df",
            [base, run_id],
        )
        n = len(events)
        con.execute(
            "INSERT INTO import_runs (run_id, source, format, file_sha256, started_at, rows_read, rows_imported, "
            "rows_quarantined, status) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 'ok')",
            [run_id, SAMPLE_SOURCE, SAMPLE_FORMAT, file_sha256, started, n, n],
        )
        set_meta(con, "timezone", timezone)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        for name in ("sample_events_df", "sample_items_df", "sample_users_df"):
            try:
                con.unregister(name)
            except duckdb.Error:
                pass
    return run_id
