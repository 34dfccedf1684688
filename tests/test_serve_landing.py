"""The landing folder of posted events: fsync'd segments, torn lines, re-merging after a crash, one owner."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from recsys_core.serve.landing import Landing, LandingBusyError, landing_dir, read_segment
from recsys_core.store.turns import SharedReader
from tests.serve_world import events
from tests.tiny_world import build_tiny_store


@pytest.fixture
def db(tmp_path):
    return build_tiny_store(tmp_path / "w.duckdb")


def landing_for(db) -> tuple[Landing, SharedReader]:
    reader = SharedReader(db)
    return Landing(db, reader.cursor, reader.write), reader


def stored(db) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT event_id FROM events WHERE event_id IS NOT NULL ORDER BY seq").fetchall()]
    finally:
        con.close()


def test_a_torn_last_line_was_never_acknowledged_and_is_skipped(db):
    landing, reader = landing_for(db)
    assert landing.receive(events("a", 3)).stored == 3
    segment = next(landing_dir(db).glob("seg-*.jsonl"))
    with open(segment, "ab") as f:  # a crash in the middle of the next append
        f.write(b'{"batch": "b-torn", "rows": [{"event_id": "x-1"')
    assert [e["event_id"] for b in read_segment(segment) for e in b["rows"]] == ["a-0", "a-1", "a-2"]
    landing.merge()
    landing.close()
    reader.close()
    assert stored(db) == ["a-0", "a-1", "a-2"]


def test_a_segment_merged_before_a_crash_is_not_stored_twice(db, tmp_path):
    landing, reader = landing_for(db)
    landing.receive(events("c", 4))
    landing._rotate()
    segment = next(landing_dir(db).glob("seg-*.jsonl"))
    kept = tmp_path / segment.name
    shutil.copyfile(segment, kept)
    landing.merge()
    landing.close()
    reader.close()
    shutil.copyfile(kept, segment)  # as if the process died between the commit and deleting the file

    landing, reader = landing_for(db)  # the next start: the segment is pending again
    assert landing.pending_events() == 4
    assert landing.receive(events("c", 4)).duplicates == 4
    result = landing.merge()
    landing.close()
    reader.close()
    assert result["rows_imported"] == 0
    assert stored(db) == [f"c-{i}" for i in range(4)]


def test_events_keep_their_arrival_order_across_batches(db):
    landing, reader = landing_for(db)
    landing.receive(events("o", 3, start=0))
    landing.receive(events("o", 3, start=3))
    landing.close()  # merges
    reader.close()
    assert stored(db) == [f"o-{i}" for i in range(6)]


def test_one_owner_per_database(db):
    landing, reader = landing_for(db)
    with pytest.raises(LandingBusyError, match="already receives events"):
        landing_for(db)
    landing.close()
    reader.close()
    again, reader = landing_for(db)
    again.close()
    reader.close()
