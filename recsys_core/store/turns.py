"""Taking turns on one DuckDB file between long-lived processes (the studio, the API, the CLI).

DuckDB lets one process write a file, or many read it, never both. The studio and the
API both keep a read-only connection open and both need to write now and then (pushes,
merging landed events). They take turns through a sidecar file ``<db>.turn``:

- A writer takes an exclusive `flock` on it (waiting for another writer), then opens the
  database read-write — retrying while readers let go — writes one transaction and
  closes. The kernel drops the lock when the process dies, so a killed writer leaves
  nothing stale behind.
- A reader asks `writer_waiting` (a non-blocking shared lock attempt) before it opens
  or uses its connection, and while a writer waits it closes its connection when the
  queries in flight end and opens nothing new until the turn is over.

Limits: turns are cooperative. A program that opens the file without this protocol
(an old ScenePush, the DuckDB shell) is waited for until ``wait_s`` and then reported as
`DatabaseLockedError`. A turn stalls every reader for its length (an open, the write
and a reopen: tens of milliseconds on the sample world), so writers batch their work.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Iterator

import duckdb

from recsys_core.store.connection import DatabaseLockedError, connect, resolve_db_path

POLL_S = 0.01


def turn_path(db: str | os.PathLike | None) -> Path:
    """The sidecar lock file of a database file."""
    return Path(f"{resolve_db_path(db)}.turn")


def writer_waiting(db: str | os.PathLike | None) -> bool:
    """True while a process holds or waits for a write turn on ``db`` (this one included)."""
    try:
        fd = os.open(turn_path(db), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def wait_for_writer(db: str | os.PathLike | None, wait_s: float) -> bool:
    """Wait (at most ``wait_s``) until no write turn is held or wanted; True when none is."""
    deadline = time.monotonic() + wait_s
    while writer_waiting(db):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True


@contextlib.contextmanager
def write_turn(db: str | os.PathLike | None, wait_s: float = 10.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection to ``db`` for one short write, taken in turn with the other processes.

    Raises `DatabaseLockedError` when no turn came within ``wait_s`` (another writer kept it, or a
    program outside the protocol holds the file).
    """
    path = turn_path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DatabaseLockedError(f"database {resolve_db_path(db)}: another writer kept its turn for over {wait_s:.0f} s") from None
                time.sleep(POLL_S)
        while True:  # readers (of this process and others) close their connections when they see the turn wanted
            try:
                con = connect(db)
                break
            except (DatabaseLockedError, duckdb.ConnectionException) as exc:
                if isinstance(exc, duckdb.ConnectionException) and "different configuration" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise DatabaseLockedError(
                        f"database {resolve_db_path(db)} stayed open in another program for over {wait_s:.0f} s; "
                        "close it (a DuckDB shell, an old ScenePush) and retry"
                    ) from exc
                time.sleep(POLL_S)
        try:
            yield con
        finally:
            con.close()
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class SharedReader:
    """One read-only connection of a long-lived process, shared by its threads (a cursor each), that
    steps aside for write turns — its own process's (`write`) and other processes' (`writer_waiting`).

    `cursor()` waits while a turn is wanted or held, opens the connection when none is open, and
    the last cursor out closes it when a turn is wanted. `release_if_idle` (called by a timer)
    closes it when nobody uses it, so an idle process never blocks a writer.
    """

    def __init__(self, db: str | os.PathLike | None, wait_s: float = 10.0) -> None:
        self.db = resolve_db_path(db)
        self.wait_s = wait_s
        self._con: duckdb.DuckDBPyConnection | None = None
        self._users = 0
        self._writing = False
        self._cond = threading.Condition()

    def _close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    @contextlib.contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of the shared read-only connection for this thread; raises `DatabaseLockedError`
        when a write turn lasts longer than ``wait_s``."""
        deadline = time.monotonic() + self.wait_s
        with self._cond:
            while self._writing or writer_waiting(self.db):
                if self._users == 0:
                    self._close()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DatabaseLockedError(f"database {self.db}: a write turn lasted over {self.wait_s:.0f} s")
                self._cond.wait(min(left, POLL_S * 5))
            while self._con is None:
                try:
                    self._con = connect(self.db, read_only=True)
                except DatabaseLockedError:  # a writer between our check and the open: wait for it
                    if time.monotonic() > deadline:
                        raise
                    self._cond.wait(POLL_S)
            self._users += 1
            cur = self._con.cursor()
        try:
            yield cur
        finally:
            cur.close()
            with self._cond:
                self._users -= 1
                if self._users == 0 and (self._writing or writer_waiting(self.db)):
                    self._close()
                self._cond.notify_all()

    def release_if_idle(self) -> None:
        """Close the connection when no cursor is out and a writer wants a turn."""
        with self._cond:
            if self._users == 0 and self._con is not None and writer_waiting(self.db):
                self._close()
                self._cond.notify_all()

    @contextlib.contextmanager
    def write(self, wait_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write turn for this process: readers of this process pause, the connection closes, and a
        read-write one (`write_turn`) is yielded; reading resumes afterwards."""
        wait_s = self.wait_s if wait_s is None else wait_s
        deadline = time.monotonic() + wait_s
        with self._cond:
            self._writing = True
        try:
            with self._cond:
                while self._users:
                    if not self._cond.wait(max(0.0, deadline - time.monotonic())):
                        raise DatabaseLockedError(f"database {self.db}: reads of this process did not finish within {wait_s:.0f} s")
                self._close()
            with write_turn(self.db, max(0.1, deadline - time.monotonic())) as con:
                yield con
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._close()
