"""The landing folder of posted events: fsync'd segments, torn lines, re-merging after a crash, one owner."""

from __future__ import annotations

import os
import shutil
import threading
import time

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


def _land_together(landing: Landing, batches: list[list[dict]]) -> list:
    """Post ``batches`` from one thread each while a landing is in progress (its lock held), so they wait
    together and the next thread lands them as one group; the results (or exceptions) in batch order."""
    results: list = [None] * len(batches)

    def post(i: int) -> None:
        try:
            results[i] = landing.receive(batches[i])
        except Exception as exc:  # noqa: BLE001 — the test looks at it
            results[i] = exc

    threads = []
    with landing._lock:
        for i in range(len(batches)):
            threads.append(threading.Thread(target=post, args=(i,)))
            threads[-1].start()
            deadline = time.monotonic() + 10
            while len(landing._waiting) < i + 1:  # in order: batch i waits behind batch i - 1
                assert time.monotonic() < deadline, "a batch never reached the landing"
                time.sleep(0.001)
    for t in threads:
        t.join(10)
    return results


def test_batches_that_wait_together_are_landed_as_one_group_with_the_replies_of_one_by_one(db, tmp_path, monkeypatch):
    bad = {"event_id": "g-bad", "user": "u1", "item": "c1", "ts": "not-a-time", "behavior": "pv", "scene": {}}
    batches = [events("g", 3, start=0), events("g", 3, start=3), [*events("g", 2, start=5), bad], events("g", 2, start=0)]

    alone_db = build_tiny_store(tmp_path / "alone.duckdb")
    alone, alone_reader = landing_for(alone_db)
    one_by_one = [alone.receive(b) for b in batches]
    alone.close()
    alone_reader.close()

    landing, reader = landing_for(db)
    landing.receive(events("first", 1))  # the segment exists: the group's fsync is the only one
    fsyncs = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd))[1])
    checks = landing.counters["checks"]
    together = _land_together(landing, batches)
    monkeypatch.setattr(os, "fsync", real_fsync)

    assert landing.counters["checks"] == checks + 1
    assert len(fsyncs) == 1
    strip = lambda r: (r.stored, r.duplicates, r.quarantined, r.rejected)  # noqa: E731
    assert [strip(r) for r in together] == [strip(r) for r in one_by_one]
    assert [strip(r) for r in together][2] == (1, 1, 1, [{"event_id": "g-bad", "reason": together[2].rejected[0]["reason"]}])
    assert "field 'ts'" in together[2].rejected[0]["reason"]
    assert len({r.batch_id for r in together}) == 4
    landing.close()
    reader.close()
    assert stored(db) == ["first-0", *stored(alone_db)]


def test_a_group_that_fails_acknowledges_none_of_its_batches_and_they_can_be_sent_again(db, monkeypatch):
    landing, reader = landing_for(db)
    real_append = landing._append

    def full_disk(records):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(landing, "_append", full_disk)
    failed = _land_together(landing, [events("f", 2), events("f", 2, start=2)])
    assert all(isinstance(r, OSError) for r in failed)
    assert landing.pending_events() == 0
    monkeypatch.setattr(landing, "_append", real_append)
    assert [landing.receive(events("f", 2)).stored, landing.receive(events("f", 2, start=2)).stored] == [2, 2]
    landing.close()
    reader.close()
    assert stored(db) == [f"f-{i}" for i in range(4)]


def test_a_batch_landed_twice_in_a_segment_is_stored_once(db):
    landing, reader = landing_for(db)
    landing.receive(events("t", 3))
    segment = next(landing_dir(db).glob("seg-*.jsonl"))
    line = segment.read_bytes()
    with open(segment, "ab") as f:  # written, then its fsync failed: not acknowledged, and the client sent it again
        f.write(line)
    landing.merge()
    landing.close()
    reader.close()
    assert stored(db) == ["t-0", "t-1", "t-2"]
