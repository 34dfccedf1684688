"""Write turns between processes on one DuckDB file (`store.turns`)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from recsys_core.store import DatabaseLockedError, connect
from recsys_core.store.turns import SharedReader, turn_path, wait_for_writer, write_turn, writer_waiting
from tests.serve_process import ROOT


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "t.duckdb"
    con = connect(path)
    con.execute("CREATE TABLE n (i INTEGER)")
    con.close()
    return path


def count(reader: SharedReader) -> int:
    with reader.cursor() as cur:
        return cur.execute("SELECT count(*) FROM n").fetchone()[0]


def test_a_turn_is_seen_while_held_and_gone_after(db):
    assert not writer_waiting(db)
    with write_turn(db) as con:
        assert writer_waiting(db)
        con.execute("INSERT INTO n VALUES (1)")
    assert not writer_waiting(db) and turn_path(db).exists()


def test_readers_of_the_process_step_aside_for_its_writes(db):
    reader = SharedReader(db)
    assert count(reader) == 0
    with reader.write() as con:
        con.execute("INSERT INTO n VALUES (1)")
    assert count(reader) == 1
    reader.close()


def test_a_reader_waits_for_a_turn_of_another_writer(db):
    reader = SharedReader(db)
    assert count(reader) == 0
    inside, release = threading.Event(), threading.Event()

    def writer() -> None:
        with write_turn(db, wait_s=10) as con:
            inside.set()
            con.execute("INSERT INTO n VALUES (1)")
            release.wait(5)

    t = threading.Thread(target=writer)
    t.start()
    deadline = time.monotonic() + 10
    while not inside.is_set():  # the idle reader lets go when it sees the turn wanted (the watcher's job)
        reader.release_if_idle()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    assert count(reader) == 1  # waited for the turn, then read what it wrote
    assert time.monotonic() - started >= 0.2
    t.join()
    reader.close()


def test_a_held_reader_makes_a_writer_wait_then_fail_clearly(db):
    reader = SharedReader(db)
    with reader.cursor():  # a query that does not end
        with pytest.raises(DatabaseLockedError, match="another program"):
            with write_turn(db, wait_s=0.3):
                pass
    reader.close()


def test_a_killed_writer_leaves_no_stale_turn(db):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from recsys_core.store.turns import write_turn\n"
         "with write_turn(sys.argv[1]):\n    print('in', flush=True); time.sleep(600)", str(db)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "in"
        assert writer_waiting(db)
        holder.kill()
        holder.wait(timeout=30)
        assert wait_for_writer(db, 5)
        with write_turn(db, wait_s=5) as con:
            con.execute("INSERT INTO n VALUES (2)")
    finally:
        if holder.poll() is None:
            holder.kill()
