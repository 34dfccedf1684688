"""Per-shopper chronological sequences, the two evaluation protocols of docs/evaluation.md, and batches.

`SequenceData.from_store(con)` reads every event once and encodes it (see
`recsys_core.features`) into flat arrays grouped by shopper, oldest first:
shopper u owns rows ``offsets[u]:offsets[u+1]``.

`data.split(protocol)` applies a protocol:

- ``next_event``: the last event is the test target, the one before it the
  validation target; shoppers with fewer than 3 events train only.
- ``next_session``: sessions split at 30 minutes of inactivity; the test target is
  the first event of the last session, the validation target the first event of
  the session before; shoppers with fewer than 3 sessions train only.
- ``time_split``: one global cut (UTC seconds; default `default_cut`, the start of the
  last 7 local days). Test targets are the first events of every session starting at
  or after the cut; validation targets those of sessions starting in the 7 days before
  it; training uses only events before that validation window, so no training event is
  later than any validation or test target (Ji et al. 2023). A target needs at least one
  earlier event of its shopper (new shoppers are cold start, counted by `monitor`).

In all three, the history of a target is every event of the shopper before it (for
next_session that is everything before the target's session) and the target
context is the target event's own time and scene. Training uses only the events
before the validation target (for next_session: before the validation session).

From a `Split`:
- the neural trainer takes `split.training_windows(max_len)` — every position of a
  window is a training target in one pass;
- evaluators take `split.cases("valid" | "test")` → `EvalCases.batches(...)` and
  `EvalCases.slices()` (one row of slice attributes per case);
- count-based baselines take `split.train_events()`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterator, Sequence

import duckdb
import numpy as np
import pandas as pd
import torch

from recsys_core.features import Calendar, FeatureSpace, context_slice_labels, log2_bucket_label
from recsys_core.models.base import Batch
from recsys_core.store import events as store_events
from recsys_core.store.scene import scene_fields

PROTOCOLS = ("next_event", "next_session", "time_split")
SESSION_GAP_S = 30 * 60
TIME_SPLIT_WINDOW_S = 7 * 86400  # the test window's default length and the validation window before the cut


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {list(PROTOCOLS)}")
    return protocol


def parse_cut(text: str, timezone: str) -> int:
    """UTC seconds of an ISO date or datetime; one without an offset is local time in ``timezone``.
    Only dates written out are accepted (pandas would also take "", "NaT" or "now", which are no cut)."""
    bad = ValueError(f"--cut {text!r} is not an ISO date or datetime (e.g. 2025-12-08 or 2025-12-08T00:00+08:00)")
    if not re.match(r"^\d{4}-\d{2}-\d{2}([T ]|$)", str(text).strip()):
        raise bad
    try:
        stamp = pd.Timestamp(str(text).strip())
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize(timezone, nonexistent="shift_forward", ambiguous=False)
        return int(stamp.tz_convert("UTC").timestamp())
    except (ValueError, TypeError, OverflowError) as exc:
        raise bad from exc


def default_cut_at(last_ts: int, timezone: str) -> int:
    """time_split's default cut for data whose last event is at ``last_ts`` (UTC seconds): local midnight
    starting the last 7 days (the day of the last event and the 6 before)."""
    last = pd.Timestamp(int(last_ts), unit="s", tz="UTC").tz_convert(timezone)
    return int((last.normalize() - pd.Timedelta(days=6)).tz_convert("UTC").timestamp())


def store_default_cut(con: duckdb.DuckDBPyConnection) -> int:
    """`default_cut_at` of the database's last event, in its timezone, without reading the events."""
    (last,) = con.execute("SELECT epoch(max(ts))::BIGINT FROM events").fetchone()
    if last is None:
        raise ValueError("the database has no events; run `python -m recsys_core sample` or import data first")
    return default_cut_at(int(last), store_events.data_timezone(con))


def cut_iso(cut: int, timezone: str) -> str:
    """A cut as ISO 8601 with the data's local offset (what metadata, CLI output and the studio show)."""
    return pd.Timestamp(int(cut), unit="s", tz="UTC").tz_convert(timezone).isoformat()


def protocol_key(protocol: str, cut: int | None = None) -> str:
    """One name per protocol and cut, for stored evaluations: ``time_split@<UTC seconds>``."""
    return f"{protocol}@{int(cut)}" if protocol == "time_split" and cut is not None else protocol


@dataclass
class SequenceData:
    """All events, encoded, grouped by shopper (rows of shopper u: ``offsets[u]:offsets[u+1]``).

    fields: history field name (`FeatureSpace.history_fields()`) -> int64 array (n_events,); ts: UTC seconds (n_events,);
    session_start: True for the first event of each 30-minute-gap session.
    """

    features: FeatureSpace
    user_ids: list[str]
    offsets: np.ndarray
    fields: dict[str, np.ndarray]
    ts: np.ndarray
    session_start: np.ndarray

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_events(self) -> int:
        return int(self.offsets[-1])

    @cached_property
    def _user_positions(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.user_ids)}

    def user_index(self, user_id: str) -> int | None:
        """Shopper index of a store user id, None when the shopper has no events."""
        return self._user_positions.get(str(user_id))

    @classmethod
    def from_frame(cls, events: pd.DataFrame, features: FeatureSpace) -> "SequenceData":
        """Encode an events frame sorted by (user_id, ts, seq) with columns as `store.events.read_events` returns."""
        enc = features.encode_events(events) if len(events) else {f: np.zeros(0, np.int64) for f in features.history_fields()}
        users = events["user_id"].astype(str).to_numpy()
        change = np.flatnonzero(users[1:] != users[:-1]) + 1 if len(users) else np.zeros(0, np.int64)
        starts = np.concatenate([[0], change]) if len(users) else np.zeros(0, np.int64)
        offsets = np.concatenate([starts, [len(users)]]).astype(np.int64)
        ts = events["ts"].to_numpy(dtype="datetime64[s]").astype(np.int64) if len(events) else np.zeros(0, np.int64)
        session_start = np.ones(len(ts), dtype=bool)
        if len(ts) > 1:
            session_start[1:] = (ts[1:] - ts[:-1]) > SESSION_GAP_S
            session_start[starts] = True
        return cls(features, [str(u) for u in users[starts]], offsets, enc, ts, session_start)

    @classmethod
    def from_store(
        cls, con: duckdb.DuckDBPyConnection, features: FeatureSpace | None = None, calendar: Calendar | None = None
    ) -> "SequenceData":
        """Read and encode every event. Without ``features`` the vocabularies are fitted on this data
        (``calendar`` defaults to the store's timezone and the default holidays/promotion days)."""
        tz = features.calendar.timezone if features is not None else (calendar.timezone if calendar else store_events.data_timezone(con))
        events = store_events.read_events(con, tz)
        if len(events) == 0:
            raise ValueError("the database has no events; run `python -m recsys_core sample` or import data first")
        if features is None:
            features = FeatureSpace.fit(events, store_events.read_items(con), calendar or Calendar(timezone=tz), scene_fields(con))
        return cls.from_frame(events, features)

    def default_cut(self) -> int:
        """UTC seconds of local midnight starting the last 7 days of data (the day of the last event and 6 before)."""
        return default_cut_at(int(self.ts.max()), self.features.calendar.timezone)

    def split(self, protocol: str, cut: int | None = None) -> "Split":
        """Apply a protocol (docs/evaluation.md) (see the module docstring); ``cut`` only for time_split."""
        check_protocol(protocol)
        if protocol == "time_split":
            return self._time_split(self.default_cut() if cut is None else int(cut))
        if cut is not None:
            raise ValueError(f"--cut applies to the time_split protocol, not to {protocol}")
        n = self.n_users
        starts, ends = self.offsets[:-1], self.offsets[1:]
        train_end = ends.copy()
        valid_t = np.full(n, -1, np.int64)
        test_t = np.full(n, -1, np.int64)
        if protocol == "next_event":
            ok = (ends - starts) >= 3
            test_t[ok] = ends[ok] - 1
            valid_t[ok] = ends[ok] - 2
            train_end[ok] = ends[ok] - 2
        else:
            sess = np.flatnonzero(self.session_start)  # absolute indices of session starts, grouped by user
            owner = np.searchsorted(self.offsets, sess, side="right") - 1
            counts = np.bincount(owner, minlength=n)
            last = np.cumsum(counts) - 1  # index into `sess` of each user's last session start
            ok = counts >= 3
            test_t[ok] = sess[last[ok]]
            valid_t[ok] = sess[last[ok] - 1]
            train_end[ok] = valid_t[ok]
        users = np.flatnonzero(ok)
        split = Split(
            self, protocol, train_end, EvalCases(self, "valid", users, valid_t[users]), EvalCases(self, "test", users, test_t[users]), 0
        )
        split.cutoff_ts = int(self.ts[split.train_rows()].max())
        return split

    def _time_split(self, cut: int) -> "Split":
        valid_from = cut - TIME_SPLIT_WINDOW_S
        starts, ends = self.offsets[:-1], self.offsets[1:]
        # ts is sorted within each shopper, so the first row at/after a time is a per-shopper searchsorted
        train_end = np.array([s + np.searchsorted(self.ts[s:e], valid_from, side="left") for s, e in zip(starts, ends)], np.int64)
        sess = np.flatnonzero(self.session_start)
        owner = np.searchsorted(self.offsets, sess, side="right") - 1
        has_history = sess > self.offsets[owner]
        ts = self.ts[sess]

        def cases(part: str, keep: np.ndarray) -> EvalCases:
            return EvalCases(self, part, owner[keep].astype(np.int64), sess[keep].astype(np.int64))

        valid = cases("valid", has_history & (ts >= valid_from) & (ts < cut))
        test = cases("test", has_history & (ts >= cut))
        rows = np.concatenate([np.arange(s, e) for s, e in zip(starts, train_end)]) if self.n_users else np.zeros(0, np.int64)
        if len(rows) == 0:
            raise ValueError(f"no event before {cut_iso(valid_from, self.features.calendar.timezone)} to train on "
                             f"(the cut {cut_iso(cut, self.features.calendar.timezone)} leaves 7 days for validation)")
        return Split(self, "time_split", train_end, valid, test, int(self.ts[rows].max()), cut)


    def serving_split(self) -> "Split":
        """Every event as a training event, no evaluation cases: what a count model fitted for serving
        (cold-start popularity) counts."""
        none = np.zeros(0, np.int64)
        split = Split(self, "next_event", self.offsets[1:].copy(), EvalCases(self, "valid", none, none),
                      EvalCases(self, "test", none, none), int(self.ts.max()) if len(self.ts) else 0)
        return split


@dataclass
class EvalCases:
    """Evaluation cases of one part (valid or test): shopper index and the absolute row of its target.

    The history of a case is every earlier row of the shopper (rows ``offsets[user]:target``).
    """

    data: SequenceData
    part: str
    users: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.users)

    @property
    def n_shoppers(self) -> int:
        """Distinct shoppers among the cases (time_split has several cases per shopper, the others one)."""
        return int(len(np.unique(self.users)))

    def batches(self, batch_size: int = 256, max_len: int = 50) -> Iterator[Batch]:
        """Evaluation batches in case order: the last ``max_len`` history events, the target context, the target."""
        for lo in range(0, len(self), batch_size):
            u = self.users[lo : lo + batch_size]
            t = self.targets[lo : lo + batch_size]
            yield gather_batch(self.data, self.data.offsets[u], t, max_len, context_rows=t, targets=self.data.fields["item"][t])

    def slices(self) -> pd.DataFrame:
        """One row per case: user_id, target item, and the slice attributes of docs/evaluation.md
        (hour_bucket, day_type weekday/weekend, every scene field, promo_day, history_length, target_kind)."""
        d, f, t = self.data, self.data.fields, self.targets
        fs = d.features
        starts = d.offsets[self.users]
        hist_len = t - starts
        item = f["item"]
        repeat = np.array([bool(np.any(item[s:e] == item[e])) for s, e in zip(starts, t)], dtype=bool)
        return pd.DataFrame(
            {
                "user_id": [d.user_ids[u] for u in self.users],
                "target_item": [fs.items.decode(int(i)) for i in item[t]],
                "hour_bucket": context_slice_labels(fs, "hour_bucket", f["hour"][t]),
                "day_type": context_slice_labels(fs, "day_type", f["weekend"][t]),
                **{name: list(context_slice_labels(fs, name, f[name][t])) for name in fs.scene},
                "promo_day": context_slice_labels(fs, "promo_day", f["promo"][t]),
                "history_length": [log2_bucket_label(int(n)) for n in hist_len],
                "target_kind": np.where(repeat, "repeat", "new"),
            }
        )


@dataclass
class TrainingWindows:
    """Fixed-length windows over each shopper's TRAINING events; every position is a target in one pass.

    A window is identified by the absolute row of its last input event (``last``) and the first
    row of its shopper (``first``). Position p of a window holds input row ``last - T + 1 + p``
    (left-padded before ``first``) and predicts the row after it, with that row's context.
    A shopper's earliest window also predicts their first event from an empty history
    (cold start), when the window has room for it.
    """

    data: SequenceData
    first: np.ndarray
    last: np.ndarray
    max_len: int
    session_start_weight: float = 1.0
    within_session_weight: float = 1.0
    # per window, the earliest row that may be a target (None: every row): a warm-started update
    # (`recsys_core.update`) learns only the new events, with the older ones as history
    min_target: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.last)

    def subset(self, keep: np.ndarray) -> "TrainingWindows":
        """The windows where ``keep`` (bool, one per window) is True, same settings."""
        return TrainingWindows(self.data, self.first[keep], self.last[keep], self.max_len, self.session_start_weight,
                               self.within_session_weight, None if self.min_target is None else self.min_target[keep])

    def for_rank(self, rank: int, world_size: int, epoch_seed: Sequence[int]) -> "TrainingWindows":
        """This rank's share for one epoch, split BY SHOPPER (a shopper's windows all go to one rank):
        the shoppers are shuffled with ``epoch_seed`` (the same on every rank) and dealt round-robin,
        like torch's DistributedSampler deals samples. Every window belongs to exactly one rank."""
        shoppers, inverse = np.unique(self.first, return_inverse=True)
        dealt = np.empty(len(shoppers), np.int64)
        dealt[np.random.default_rng(list(epoch_seed)).permutation(len(shoppers))] = np.arange(len(shoppers)) % world_size
        return self.subset(dealt[inverse] == rank)

    def newest_per_shopper(self) -> "TrainingWindows":
        """One window per shopper, their newest: the unit of per-shopper privacy (DP-SGD)."""
        keep = np.zeros(len(self), bool)
        if len(self):
            order = np.lexsort((-self.last, self.first))
            firsts = self.first[order]
            newest = np.concatenate([[True], firsts[1:] != firsts[:-1]])
            keep[order[newest]] = True
        return self.subset(keep)

    def n_targets(self) -> int:
        return int(sum(min(self.max_len, int(lst - fst + 2)) for fst, lst in zip(self.first, self.last)))

    def batches(self, batch_size: int, generator: np.random.Generator | None = None) -> Iterator[Batch]:
        """Training batches (context and targets (B, T); target 0 = none).

        With a ``generator`` the windows are shuffled and a position whose weight w is below 1 is
        kept with probability w (then weighted 1): the same expected loss as weighting, for a
        fraction of the output-layer work. Without one, windows stay in order and
        ``batch.weights`` carries the weights.
        """
        order = generator.permutation(len(self)) if generator is not None else np.arange(len(self))
        d, T = self.data, self.max_len
        for lo in range(0, len(order), batch_size):
            w = order[lo : lo + batch_size]
            first, last = self.first[w], self.last[w]
            rows = last[:, None] - T + 1 + np.arange(T)[None, :]  # (B, T) input rows
            nxt = rows + 1  # (B, T) target rows
            # a target exists where the input is a real event, or just before the first event (cold start)
            has_target = (rows >= first[:, None]) | (nxt == first[:, None])
            if self.min_target is not None:
                has_target &= nxt >= self.min_target[w][:, None]
            nxt = np.clip(nxt, 0, d.n_events - 1)
            weights = np.where(d.session_start[nxt], self.session_start_weight, self.within_session_weight)
            weights = np.where(has_target, weights, 0.0)
            batch = gather_batch(d, first, last + 1, T, context_rows=nxt)
            if generator is not None:
                keep = (weights >= 1.0) | (generator.random(weights.shape) < weights)
                has_target &= keep
                batch.weights = None
            else:
                batch.weights = torch.from_numpy(weights.astype(np.float32))
            batch.targets = torch.from_numpy(np.where(has_target, d.fields["item"][nxt], 0))
            batch.context = {k: v * torch.from_numpy(has_target.astype(np.int64)) for k, v in batch.context.items()}
            yield batch


@dataclass
class Split:
    """A protocol applied to the data: training rows per shopper plus validation and test cases.

    train_end[u]: rows ``offsets[u]:train_end[u]`` of shopper u are training events.
    cutoff_ts: UTC seconds of the latest training event (the training cut-off recorded with models).
    cut: time_split's global cut (UTC seconds), None for the per-shopper protocols.
    """

    data: SequenceData
    protocol: str
    train_end: np.ndarray
    valid: EvalCases
    test: EvalCases
    cutoff_ts: int
    cut: int | None = None

    def cases(self, part: str) -> EvalCases:
        if part not in ("valid", "test"):
            raise ValueError(f"unknown part {part!r}; choose from ['valid', 'test']")
        return self.valid if part == "valid" else self.test

    def train_rows(self) -> np.ndarray:
        """Absolute rows of all training events, grouped by shopper, oldest first."""
        starts = self.data.offsets[:-1]
        return np.concatenate([np.arange(s, e) for s, e in zip(starts, self.train_end)]).astype(np.int64)

    def train_events(self) -> dict[str, np.ndarray]:
        """Training events as arrays for count-based models: ``user`` (shopper index), ``position``
        (0-based order within the shopper), ``ts`` (UTC seconds), ``session_start`` and every history field id."""
        rows = self.train_rows()
        owner = np.searchsorted(self.data.offsets, rows, side="right") - 1
        out = {"user": owner, "position": rows - self.data.offsets[owner], "ts": self.data.ts[rows], "session_start": self.data.session_start[rows]}
        out.update({k: v[rows] for k, v in self.data.fields.items()})
        return out

    def training_windows(
        self, max_len: int, session_start_weight: float = 1.0, within_session_weight: float = 1.0
    ) -> TrainingWindows:
        """Non-overlapping windows covering every training target once (newest window ends at the
        last training event). Position weights let next_session training stress session starts."""
        firsts, lasts = [], []
        for s, e in zip(self.data.offsets[:-1].tolist(), self.train_end.tolist()):
            # last input rows e-2, e-2-T, ... down to s-1 (a window holding only the cold-start target)
            for last in range(e - 2, s - 2, -max_len):
                firsts.append(s)
                lasts.append(last)
        first, last = np.asarray(firsts, np.int64), np.asarray(lasts, np.int64)
        return TrainingWindows(self.data, first, last, max_len, session_start_weight, within_session_weight)


def gather_batch(
    data: SequenceData,
    first: np.ndarray,
    end: np.ndarray,
    max_len: int,
    context_rows: np.ndarray,
    targets: np.ndarray | None = None,
) -> Batch:
    """History = rows ``[max(first, end - max_len), end)`` per row of the batch, left-padded to ``max_len``;
    context = the context fields (time + scene) of ``context_rows`` ((B,) or (B, T))."""
    rows = end[:, None] - max_len + np.arange(max_len)[None, :]  # (B, T)
    valid = rows >= first[:, None]
    safe = np.where(valid, rows, 0)
    history = {k: torch.from_numpy(np.where(valid, data.fields[k][safe], 0)) for k in data.fields}
    context = {k: torch.from_numpy(data.fields[k][context_rows]) for k in data.features.context_fields()}
    return Batch(history, context, None if targets is None else torch.from_numpy(np.asarray(targets, np.int64)))


def serving_batch(history: dict[str, np.ndarray], contexts: Sequence[dict[str, int]], max_len: int,
                  context_fields: Sequence[str] | None = None) -> Batch:
    """One shopper's encoded history (field -> (n,) ids, oldest first) scored under S contexts: a (S, T) batch.
    The context fields are ``context_fields`` (a field a context lacks is unknown, 0), by default those of
    the first context."""
    n = len(history["item"])
    take = min(n, max_len)
    h = {}
    for k in history:
        row = np.zeros(max_len, np.int64)
        if take:
            row[max_len - take :] = np.asarray(history[k], np.int64)[n - take :]
        h[k] = torch.from_numpy(np.repeat(row[None, :], len(contexts), axis=0))
    fields = context_fields if context_fields is not None else (list(contexts[0]) if contexts else [])
    ctx = {k: torch.tensor([int(c.get(k, 0)) for c in contexts], dtype=torch.long) for k in fields}
    return Batch(h, ctx)


def training_summary(split: Split) -> dict[str, Any]:
    """Counts that describe a split (for logs and metadata)."""
    return {
        "protocol": split.protocol,
        **({"cut": cut_iso(split.cut, split.data.features.calendar.timezone)} if split.cut is not None else {}),
        "n_users": split.data.n_users,
        "n_events": split.data.n_events,
        "n_train_events": int(sum(split.train_end - split.data.offsets[:-1])),
        "n_eval_cases": len(split.test),  # several per shopper under time_split
        "n_eval_users": split.test.n_shoppers,
    }
