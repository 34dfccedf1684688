"""Events posted to the API: checked, written to an fsync'd landing segment, acknowledged, merged later.

Why: DuckDB lets one process write a file at a time, and the studio reads the same file. Writing each
batch straight into DuckDB would need a write turn per request (every reader pauses for an open, the
write and a reopen); instead a batch is

1. checked like an import (`importers.check_api_events`, on an in-memory DuckDB: nothing is written);
2. stripped of events whose ``event_id`` the store or an unmerged segment already holds (duplicates);
3. appended as one JSON line to the current segment ``<db>.landing/seg-<ns>.jsonl`` and fsync'd —
   only then acknowledged. A process killed before the fsync acknowledged nothing; a torn last line
   (no newline) was never acknowledged and is ignored;
4. merged into DuckDB by `merge` every couple of seconds (`ServeConfig.merge_interval_s`): the closed segments, all in ONE transaction
   (one import run per merge, `importers.write_api_events`), then the segment files are deleted.
   A crash between the commit and the delete re-merges the segment next time; its run id is derived
   from the segment's name and its events are recognised by id, so nothing is stored twice.

One `serve` process owns a landing folder (an exclusive lock on ``owner.lock``); a second one on the
same database refuses to start.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence

import duckdb

from recsys_core import importers
from recsys_core.store import DatabaseLockedError, ingest
from recsys_core.store.analytics import data_timezone
from recsys_core.store.privacy import pseudonym_state
from recsys_core.store.scene import scene_names

log = logging.getLogger(__name__)

SEGMENT_GLOB = "seg-*.jsonl"


class LandingBusyError(DatabaseLockedError):
    """Another `serve` process owns the landing folder of this database."""


DataSchema = tuple[list[str], str, bool]  # scene field names, the data's timezone, pseudonymised or not


def data_schema(cur: Any) -> DataSchema:
    """What posted events are checked against."""
    return scene_names(cur), data_timezone(cur), pseudonym_state(cur) is not None


@dataclass
class BatchResult:
    """The reply to one posted batch."""

    stored: int
    duplicates: int
    quarantined: int
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {"event_id", "reason"} per quarantined event
    batch_id: str = ""


@dataclass
class _Ticket:
    """One batch waiting to be landed, and what came of it."""

    events: list[dict[str, Any]]
    result: BatchResult | None = None
    error: BaseException | None = None
    done: bool = False


def landing_dir(db: str | os.PathLike) -> Path:
    return Path(f"{db}.landing")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_segment(path: Path) -> list[dict[str, Any]]:
    """The complete batches of a segment, in order; a torn last line (never acknowledged) is left out."""
    data = path.read_bytes()
    end = data.rfind(b"\n")
    batches = []
    for line in data[: end + 1].splitlines():
        if line.strip():
            batches.append(json.loads(line))
    if end + 1 < len(data):
        log.warning("%s: ignoring a torn last line of %d bytes (it was never acknowledged)", path, len(data) - end - 1)
    return batches


class Landing:
    """The landing folder of one database: append acknowledged batches, merge them into DuckDB.

    ``read`` opens a read cursor and ``write`` a write turn on the database (`turns.SharedReader`).
    Thread-safe: appends are serialised (one fsync'd append at a time); `merge` runs beside them.
    """

    def __init__(self, db: str | os.PathLike, read: Callable[[], ContextManager[Any]],
                 write: Callable[[], ContextManager[Any]], schema: Callable[[], DataSchema] | None = None) -> None:
        self.dir = landing_dir(db)
        self._schema = schema  # the API's memory answers this without the file (`serve.memory`)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._read, self._write = read, write
        self._owner = os.open(self.dir / "owner.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._owner)
            raise LandingBusyError(f"another `serve` process already receives events for {db} (it holds {self.dir}/owner.lock)") from None
        self._lock = threading.Lock()       # appends, the current segment and the pending ids
        self._waiting_lock = threading.Lock()
        self._waiting: list[_Ticket] = []    # batches received, not yet landed (`receive`)
        self._merging = threading.Lock()    # one merge at a time
        self._current: Path | None = None
        self._fd: int | None = None
        self._pending: dict[str, set[str]] = {}  # segment name -> event ids landed there, not yet merged
        self._memdb: duckdb.DuckDBPyConnection | None = None
        self.counters = {"stored": 0, "duplicates": 0, "quarantined": 0, "merged_events": 0, "merged_quarantined": 0,
                         "merges": 0, "merge_failures": 0, "checks": 0}
        self.last_merge_s: float | None = None
        for seg in self._segments():
            self._pending[seg.name] = {e["event_id"] for b in read_segment(seg) for e in b["rows"]}

    # --- appending ------------------------------------------------------------------------

    def _segments(self) -> list[Path]:
        return sorted(self.dir.glob(SEGMENT_GLOB))

    def _memory(self) -> duckdb.DuckDBPyConnection:
        """The in-memory DuckDB that checks events (nothing written there lasts). One for the process, used
        under the append lock, with one thread: a database per request thread would each start a pool.
        Without its optimizer: planning the importer's check was ~3 of its ~9 ms on a batch of 20 and
        gained nothing on rows this few (a batch of 1,000: 21 → 16 ms; the same rows and reasons)."""
        if self._memdb is None:
            self._memdb = duckdb.connect(config={"threads": 1})
            self._memdb.execute("PRAGMA disable_optimizer")
        return self._memdb

    def schema(self) -> DataSchema:
        """What a batch is checked against, read from the file."""
        with self._read() as cur:
            return data_schema(cur)

    def pending_events(self) -> int:
        with self._lock:
            return sum(len(ids) for ids in self._pending.values())

    def receive(self, events: Sequence[dict[str, Any]]) -> BatchResult:
        """Check, de-duplicate and durably land one batch; returns what the reply reports.
        Returns only after the batch is on disk (fsync), so an acknowledged event is never lost.

        Batches that arrive while another is being landed wait, and the next thread to land takes every
        batch waiting at once (group commit): one duplicate query, one check and one fsync for them all.
        A check costs ~6 ms whatever its size (DuckDB binds the importer's statement), so under load the
        cost per batch falls as the groups grow. Each batch keeps its own reply, id and segment line; an
        event id sent in two batches of a group is stored by the first and a duplicate in the second,
        as when they come one after another. A failure fails every batch of its group: none was
        acknowledged, so each can be sent again."""
        ticket = _Ticket(list(events))
        with self._waiting_lock:
            self._waiting.append(ticket)
        with self._lock:
            if not ticket.done:
                with self._waiting_lock:
                    group, self._waiting = self._waiting, []
                try:
                    self._land(group)
                except BaseException as exc:
                    for t in group:
                        t.error, t.done = exc, True
                    raise
        if ticket.error is not None:
            raise ticket.error
        return ticket.result

    def _land(self, group: list["_Ticket"]) -> None:
        """Land a group of batches (under the append lock), oldest first; sets each ticket's result."""
        fields, tz, pseudonymised = self._schema() if self._schema is not None else self.schema()
        pending = set().union(*self._pending.values()) if self._pending else set()
        ids = {str(e["event_id"]) for t in group for e in t.events}
        with self._read() as cur:
            known = ingest.known_event_ids(cur, [i for i in ids if i not in pending], importers.API_RUN_PREFIX)
        seen = pending | known
        fresh: list[list[dict[str, Any]]] = []
        for t in group:
            mine = []
            for e in t.events:
                if str(e["event_id"]) not in seen:
                    seen.add(str(e["event_id"]))
                    mine.append(e)
            fresh.append(mine)
        everything = [e for mine in fresh for e in mine]
        rows = importers.check_api_events(self._memory(), everything, fields, tz, pseudonymised=pseudonymised) if everything else []
        for r in rows:
            r.pop("line_no")
            if r["problem"] is None:
                r.pop("raw")
        records, start = [], 0
        for t, mine in zip(group, fresh):
            batch_id = f"b-{uuid.uuid4().hex[:16]}"
            own = rows[start : start + len(mine)]
            start += len(mine)
            if own:
                records.append({"batch": batch_id, "received_at": time.time(), "rows": own})
            rejected = [{"event_id": r["event_id"], "reason": r["problem"]} for r in own if r["problem"]]
            t.result = BatchResult(len(own) - len(rejected), len(t.events) - len(mine), len(rejected), rejected, batch_id)
        if records:
            self._append(records)
            self._pending.setdefault(self._current.name, set()).update(r["event_id"] for rec in records for r in rec["rows"])
        self.counters["checks"] += 1
        for t in group:
            self.counters["stored"] += t.result.stored
            self.counters["duplicates"] += t.result.duplicates
            self.counters["quarantined"] += t.result.quarantined
            t.done = True

    def _append(self, records: list[dict[str, Any]]) -> None:
        """One line per batch, then one fsync for them all."""
        if self._fd is None:
            self._current = self.dir / f"seg-{time.time_ns():020d}-{os.getpid()}.jsonl"
            self._fd = os.open(self._current, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            _fsync_dir(self.dir)  # the new file's name is durable too
        data = b"".join((json.dumps(r, ensure_ascii=False, default=str) + "\n").encode() for r in records)
        written = os.write(self._fd, data)
        if written != len(data):  # a short write leaves a torn line, which a merge ignores
            raise OSError(f"{self._current}: wrote {written} of {len(data)} bytes")
        os.fsync(self._fd)

    def _rotate(self) -> list[Path]:
        """Close the current segment; the closed segments, oldest first."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
                self._current = None
            return self._segments()

    # --- merging --------------------------------------------------------------------------

    def merge(self) -> dict[str, int]:
        """Merge every closed segment into DuckDB in one write turn and one transaction; delete them after.
        Returns what the merge stored and ``run_id``, the import run it wrote (None when there was nothing to
        merge or the run was stored before a crash). Nothing to merge costs no write turn."""
        with self._merging:
            segments = self._rotate()
            if not segments:
                return {"rows_imported": 0, "rows_quarantined": 0, "duplicates": 0, "segments": 0, "run_id": None}
            started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            rows, digest = [], hashlib.sha256()
            for seg in segments:
                digest.update(seg.read_bytes())
                rows += [r for b in read_segment(seg) for r in b["rows"]]
            run_id = importers.API_RUN_PREFIX + hashlib.sha256("|".join(s.name for s in segments).encode()).hexdigest()[:16]
            t0 = time.perf_counter()
            try:
                with self._write() as con:
                    with ingest.transaction(con):
                        written = ingest.find_run(con, run_id) is None
                        if written:
                            counts = importers.write_api_events(con, run_id, rows, digest.hexdigest(), started)
                        else:
                            counts = {"rows_imported": 0, "rows_quarantined": 0, "duplicates": len(rows)}
            except Exception:
                self.counters["merge_failures"] += 1
                raise
            self.last_merge_s = time.perf_counter() - t0
            for seg in segments:
                seg.unlink()
            _fsync_dir(self.dir)
            with self._lock:
                for seg in segments:
                    self._pending.pop(seg.name, None)
            self.counters["merges"] += 1
            self.counters["merged_events"] += counts["rows_imported"]
            self.counters["merged_quarantined"] += counts["rows_quarantined"]
            log.info("merged %d segment(s): %s in %.0f ms", len(segments), counts, self.last_merge_s * 1000)
            return {**{k: counts[k] for k in ("rows_imported", "rows_quarantined", "duplicates")}, "segments": len(segments),
                    "run_id": run_id if written else None}

    def close(self) -> None:
        """Merge what landed (best effort: what is left is merged at the next start), then let go."""
        try:
            self.merge()
        except Exception:  # noqa: BLE001 — the segments stay on disk for the next start
            log.exception("the final merge failed; the landed events stay in %s", self.dir)
        finally:
            fcntl.flock(self._owner, fcntl.LOCK_UN)
            os.close(self._owner)
            if self._memdb is not None:
                self._memdb.close()
