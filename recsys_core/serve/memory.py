"""The API's reads on the hot path from memory: shoppers' events, the catalogue, the scene fields.

Why: a request that reads the database file waits whenever a write turn holds it (every merge of landed
events, every push from the studio: 0.1–0.2 s each, `store.turns`), and each small DuckDB query costs
~1 ms of a core. `recommend` reads a shopper's latest events, the catalogue rows of the top items and the
scene fields on every call; kept here, a warm recommendation touches neither the file nor DuckDB.

What is kept, and how it stays true to the file:

- **A shopper's events** (all of them, oldest first, the columns `store.events.read_user_events` returns)
  are loaded on first use from the file and kept (least recently used first out, `max_users`).
- **Our merges** (`own_write`): after the API merges landed events, the merged run's events of cached
  shoppers are read back from the file (one query on ``source_run``) and sorted into their histories, so a
  posted event reaches `/recommend` right after its merge. A shopper read from the file while a merge is
  under way is answered but not kept (an epoch counter), so nothing is kept stale or counted twice.
- **Other writers** (an import or an erasure from the studio, a new scene field): whenever the file
  changes, the import runs and the erasure count are compared with what the cache was filled from
  (`check`); anything but our own merges empties it. Between that write and the check (≤ one housekeeping
  round, ~50 ms) a request may still be answered from the old events.
- **The catalogue and the data's schema** (scene fields, timezone, pseudonymised or not: what posted events
  are checked against) are reloaded at every check (a few ms).

`CachedReads` hands this to the functions that take a DuckDB cursor (`recommend`, `explain`): the store's
readers take the memory path when the cursor offers it (`store.events.read_user_events` …); any other query
opens a cursor of the file on first use. Limits: memory grows with the cached shoppers' events (bounded
by ``max_users``); a model whose timezone differs from the data's reads the file.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import threading
from typing import Any, Callable, ContextManager, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from recsys_core.store import events as store_events
from recsys_core.serve.landing import DataSchema, data_schema

MAX_USERS = 50_000
WARM_MAX_EVENTS = 2_000_000  # loaded at start (~0.5 s per 300k events); more is read on first use


def _fingerprint(cur: Any) -> tuple[frozenset[str], int]:
    """What only another writer changes: the import runs (ours are added as we merge) and the erasures."""
    runs = frozenset(r[0] for r in cur.execute("SELECT run_id FROM import_runs").fetchall())
    erased = int(cur.execute("SELECT count(*) FROM erasures").fetchone()[0])
    return runs, erased


def _shared_strings(values: np.ndarray) -> np.ndarray:
    if values.dtype != object or len(values) == 0:
        return values
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return np.asarray(uniques, dtype=object)[codes]


class HistoryCache:
    """Shoppers' events, the catalogue and the scene fields of one database, in memory (thread-safe).

    ``read`` opens a read cursor on the file (`turns.SharedReader.cursor`)."""

    def __init__(self, read: Callable[[], ContextManager[Any]], max_users: int = MAX_USERS) -> None:
        self._read = read
        self.max_users = max_users
        self._lock = threading.Lock()
        self._users: collections.OrderedDict[str, dict[str, np.ndarray]] = collections.OrderedDict()
        self._epoch = 0
        self._fingerprint: tuple[frozenset[str], int] | None = None
        self._items: dict[str, tuple] = {}
        self._schema: DataSchema = ([], "", False)
        self._changing = 0
        self.hits = self.misses = self.clears = self.appended = 0
        with self._read() as cur:
            self._reload_small(cur)
            self._fingerprint = _fingerprint(cur)

    # --- what requests read ---------------------------------------------------------------------

    def user_events(self, cur_factory: Callable[[], Any], user_id: str) -> dict[str, np.ndarray]:
        """Every event of the shopper, oldest first (empty arrays for a shopper without events); ``cur_factory``
        gives a cursor of the file for a shopper not cached yet."""
        key = str(user_id)
        with self._lock:
            cols = self._users.get(key)
            if cols is not None:
                self._users.move_to_end(key)
                self.hits += 1
                return cols
            epoch = self._epoch
            self.misses += 1
        cols = self._load(cur_factory(), [key], self.tz).get(key) or self._empty(cur_factory(), self.tz)
        with self._lock:
            if self._epoch == epoch and not self._changing:  # no merge or clear since the read began: it is current
                self._put(key, cols)
        return cols

    def items_by_id(self, item_ids: Sequence[str]) -> dict[str, tuple]:
        items = self._items
        return {i: items[i] for i in map(str, item_ids) if i in items}

    def schema(self) -> DataSchema:
        """Scene field names, timezone and pseudonymisation of the data, as of the last check."""
        return self._schema

    def warm(self, max_events: int = WARM_MAX_EVENTS) -> int:
        """Load the most recently active shoppers (up to ``max_users``, and ``max_events`` events in all) before
        serving, so first requests do not each read the file; returns how many were loaded."""
        with self._lock:
            epoch = self._epoch
        with self._read() as cur:
            rows = cur.execute("SELECT user_id, count(*) FROM events GROUP BY user_id ORDER BY max(ts) DESC, user_id LIMIT ?",
                               [self.max_users]).fetchall()
            chosen, total = [], 0
            for user, n in rows:
                if total + n > max_events:
                    break
                chosen.append(user)
                total += n
            loaded = self._load(cur, chosen, self.tz)
        with self._lock:
            if self._epoch != epoch or self._changing:
                return 0
            for user in reversed(chosen):  # the most recent ends last: the last to be evicted
                self._put(user, loaded[user])
        return len(chosen)

    # --- keeping it true --------------------------------------------------------------------------

    @contextlib.contextmanager
    def own_write(self) -> Iterator[Callable[[str | None], None]]:
        """Around a merge of ours: yields ``stored(run_id)`` to call once the run is committed; its events are
        then appended to the cached shoppers they belong to (sorted into place: an event may be older than
        the ones kept). Reads of the file meanwhile are served but not kept (they may or may not include the
        run). A merge that fails empties the memory (what was committed is not known)."""
        with self._lock:
            self._changing += 1
            self._epoch += 1
        run: list[str] = []
        try:
            yield run.append
        except BaseException:
            self.clear()
            raise
        else:
            if run and run[0]:
                self._append_run(run[0])
        finally:
            with self._lock:
                self._changing -= 1
                self._epoch += 1

    def _append_run(self, run_id: str) -> None:
        with self._lock:
            cached = list(self._users)
        with self._read() as cur:
            if self._fingerprint is not None:
                runs, erased = self._fingerprint
                self._fingerprint = (runs | {run_id}, erased)
            new = self._split(store_events.read_users_events(cur, cached, self.tz, source_run=run_id))
            self._reload_small(cur)
        with self._lock:
            for user, add in new.items():
                old = self._users.get(user)
                if old is None:
                    continue
                both = {k: np.concatenate([old[k], add[k]]) for k in old}
                order = np.lexsort((both["seq"], both["ts"]))  # by time, then source order (store.events.ORDER)
                self._users[user] = {k: v[order] for k, v in both.items()}
                self.appended += len(add["ts"])

    def check(self) -> bool:
        """After the file changed: empty the cache when another writer imported or erased; True if it did."""
        with self._read() as cur:
            now = _fingerprint(cur)
            tz = self.tz
            self._reload_small(cur)
        if now == self._fingerprint and tz == self.tz:
            return False
        self.clear()
        self._fingerprint = now
        return True

    def clear(self) -> None:
        with self._lock:
            self._epoch += 1
            self._users.clear()
            self.clears += 1

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"users": len(self._users), "hits": self.hits, "misses": self.misses, "clears": self.clears,
                    "appended": self.appended}

    # --- internals --------------------------------------------------------------------------------

    def _reload_small(self, cur: Any) -> None:
        self._schema = data_schema(cur)
        self.tz = self._schema[1]  # local times are kept in the data's timezone
        self._items = {r[0]: r[1:] for r in cur.execute(
            "SELECT item_id, title, title_zh, category, category_zh, brand, price FROM items").fetchall()}

    def _put(self, key: str, cols: dict[str, np.ndarray]) -> None:
        self._users[key] = cols
        self._users.move_to_end(key)
        while len(self._users) > self.max_users:
            self._users.popitem(last=False)

    @classmethod
    def _load(cls, cur: Any, user_ids: list[str], tz: str) -> dict[str, dict[str, np.ndarray]]:
        """Every event of these shoppers, oldest first, split by shopper (one query)."""
        return cls._split(store_events.read_users_events(cur, user_ids, tz)) if user_ids else {}

    @staticmethod
    def _split(cols: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        """Rows ordered by shopper -> one set of columns per shopper. Text columns share one string object
        per distinct value (DuckDB hands out a new one per row: ~650 bytes an event instead of ~100)."""
        cols = {k: _shared_strings(v) for k, v in cols.items()}
        users = cols["user_id"]
        if len(users) == 0:
            return {}
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        ends = np.r_[starts[1:], len(users)]
        return {str(users[s]): {k: v[s:e] for k, v in cols.items()} for s, e in zip(starts, ends)}

    @staticmethod
    def _empty(cur: Any, tz: str) -> dict[str, np.ndarray]:
        return store_events.read_users_events(cur, [], tz)


def window(cols: dict[str, np.ndarray], before: dt.datetime | None, limit: int | None) -> dict[str, np.ndarray]:
    """The latest ``limit`` of a shopper's events (oldest first) strictly before ``before`` (naive UTC), as
    `store.events.read_user_events` selects them."""
    ts = cols["ts"]
    end = len(ts) if before is None else int(np.searchsorted(ts, np.datetime64(before, "us"), side="left"))
    start = 0 if limit is None else max(0, end - int(limit))
    return {k: v[start:end] for k, v in cols.items()}


class CachedReads:
    """A cursor-like view for `recommend` and `explain`: the store's hot readers answer from the cache
    (`store.events` asks for ``cached_user_events`` …); any other query goes to a cursor of the file,
    opened on first use and closed with this object."""

    def __init__(self, cache: HistoryCache, read: Callable[[], ContextManager[Any]]) -> None:
        self.cache = cache
        self._read = read
        self._stack = contextlib.ExitStack()
        self._cur: Any = None

    def _file(self) -> Any:
        if self._cur is None:
            self._cur = self._stack.enter_context(self._read())
        return self._cur

    def execute(self, sql: str, params: Any = None) -> Any:
        return self._file().execute(sql, params) if params is not None else self._file().execute(sql)

    def cached_user_events(self, user_id: str, tz: str, before: dt.datetime | None, limit: int | None) -> dict[str, np.ndarray] | None:
        """`store.events.read_user_events` from memory; None (read the file) for another timezone."""
        if tz != self.cache.tz:
            return None
        return window(self.all_user_events(user_id), before, limit)

    def all_user_events(self, user_id: str) -> dict[str, np.ndarray]:
        """Every event of the shopper, oldest first (what the explanation worker is sent)."""
        return self.cache.user_events(self._file, user_id)

    def cached_user_item_ids(self, user_id: str) -> list[str]:
        return list(dict.fromkeys(self.cache.user_events(self._file, user_id)["item_id"].tolist()))

    def cached_items_by_id(self, item_ids: Sequence[str]) -> dict[str, tuple]:
        return self.cache.items_by_id(item_ids)

    def close(self) -> None:
        self._stack.close()
        self._cur = None


@contextlib.contextmanager
def cached_reads(cache: HistoryCache, read: Callable[[], ContextManager[Any]]) -> Iterator[CachedReads]:
    reads = CachedReads(cache, read)
    try:
        yield reads
    finally:
        reads.close()
