"""A database written by the previous ScenePush (scene columns fixed in the schema) is brought up to date."""

from __future__ import annotations

import json

import duckdb
import pytest

from recsys_core.store import OutdatedDatabaseError, connect
from recsys_core.store.events import read_events
from recsys_core.store.pushes import PushFilter, list_pushes
from recsys_core.store.scene import scene_fields

OLD_SCHEMA = """
CREATE TABLE events (user_id VARCHAR NOT NULL, item_id VARCHAR NOT NULL, behavior VARCHAR NOT NULL, ts TIMESTAMP NOT NULL,
    device VARCHAR NOT NULL DEFAULT 'unknown', channel VARCHAR NOT NULL DEFAULT 'unknown', location VARCHAR NOT NULL DEFAULT 'unknown',
    source_run VARCHAR);
CREATE TABLE pushes (push_id VARCHAR PRIMARY KEY, pushed_at TIMESTAMP NOT NULL, user_id VARCHAR NOT NULL, item_id VARCHAR NOT NULL,
    rank INTEGER NOT NULL, score DOUBLE NOT NULL, device VARCHAR NOT NULL, channel VARCHAR NOT NULL, location VARCHAR NOT NULL,
    model_version VARCHAR NOT NULL, reasons_json VARCHAR, created_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
INSERT INTO meta VALUES ('timezone', 'Asia/Shanghai');
INSERT INTO events VALUES ('u1', 'b', 'pv', TIMESTAMP '2025-11-11 00:00', 'pc', 'search', 'office', 'r1'),
                          ('u1', 'a', 'pv', TIMESTAMP '2025-11-11 00:00', 'pc', 'search', 'office', 'r1'),
                          ('u1', 'c', 'buy', TIMESTAMP '2025-11-11 01:00', 'mobile', 'push', 'home', 'r1');
INSERT INTO pushes VALUES ('p1', TIMESTAMP '2025-11-12 00:00', 'u1', 'a', 1, 2.5, 'mobile', 'push', 'commute', 'v1', NULL, NULL);
"""


def test_old_file_is_refused_read_only_then_migrated_in_place(tmp_path):
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute(OLD_SCHEMA)
    con.close()
    with pytest.raises(OutdatedDatabaseError, match="python -m recsys_core migrate"):
        connect(db, read_only=True)
    connect(db).close()  # a writable open migrates
    con = connect(db, read_only=True)
    try:
        assert [(f.name, f.label_zh, f.known_at_decision) for f in scene_fields(con)] == [
            ("device", "设备", True), ("channel", "渠道", False), ("location", "地点", True)]
        events = read_events(con, "Asia/Shanghai")
        assert events["item_id"].tolist() == ["a", "b", "c"] and events["seq"].is_unique  # the old tie order, kept
        assert events["device"].tolist() == ["pc", "pc", "mobile"]
        push = list_pushes(con, PushFilter(scene={"location": ("commute",)}))
        assert push["push_id"].tolist() == ["p1"]
        assert json.loads(push.iloc[0]["scene_json"]) == {"device": "mobile", "channel": "push", "location": "commute"}
    finally:
        con.close()
