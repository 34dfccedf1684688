"""Protocol splits (docs/evaluation.md), training windows and evaluation batches on hand-built sequences."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from recsys_core.context import scene_field
from recsys_core.features import Calendar, FeatureSpace
from recsys_core.sequences import (TIME_SPLIT_WINDOW_S, SequenceData, cut_iso, parse_cut, protocol_key, serving_batch,
                                   store_default_cut, training_summary)
from recsys_core.store import connect
from tests.tiny_world import build_tiny_store

T0 = dt.datetime(2025, 11, 3, 0, 0)  # UTC


def _frame(spec: dict[str, list[tuple[int, str]]]) -> pd.DataFrame:
    """spec: user -> [(minutes after T0, item)], already chronological."""
    rows = []
    for u, evs in spec.items():
        for m, item in evs:
            ts = T0 + dt.timedelta(minutes=m)
            rows.append((u, item, "pv", ts, ts + dt.timedelta(hours=8), "mobile" if m % 2 else "pc", "push", "home"))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "behavior", "ts", "local_ts", "device", "channel", "location"])


# u1: sessions [0,5] [100,110] [200] [300,301] (4 sessions, 7 events); u2: 2 events; u3: 3 events in ONE session
SPEC = {
    "u1": [(0, "a"), (5, "b"), (100, "c"), (110, "a"), (200, "d"), (300, "e"), (301, "f")],
    "u2": [(0, "a"), (60, "b")],
    "u3": [(0, "a"), (10, "b"), (20, "c")],
}


@pytest.fixture
def data() -> SequenceData:
    frame = _frame(SPEC)
    items = pd.DataFrame({"item_id": list("abcdef"), "category": list("xxyyzz"), "price": [1.0, 2, 3, 4, 5, 6]})
    scene = [scene_field(f) for f in ("device", "channel", "location")]
    return SequenceData.from_frame(frame, FeatureSpace.fit(frame, items, Calendar(), scene))


def item_of(data, row):
    return data.features.items.decode(int(data.fields["item"][row]))


def test_sessions_split_at_30_minutes(data):
    assert data.user_ids == ["u1", "u2", "u3"] and data.offsets.tolist() == [0, 7, 9, 12]
    assert data.session_start.tolist() == [1, 0, 1, 0, 1, 1, 0] + [1, 1] + [1, 0, 0]


def test_next_event_split(data):
    s = data.split("next_event")
    assert [data.user_ids[u] for u in s.test.users] == ["u1", "u3"]  # u2 has fewer than 3 events
    assert [item_of(data, r) for r in s.test.targets] == ["f", "c"]
    assert [item_of(data, r) for r in s.valid.targets] == ["e", "b"]
    assert (s.train_end - data.offsets[:-1]).tolist() == [5, 2, 1]  # u2 trains on everything


def test_next_session_split(data):
    s = data.split("next_session")
    assert [data.user_ids[u] for u in s.test.users] == ["u1"]  # u2, u3 have fewer than 3 sessions
    assert item_of(data, s.test.targets[0]) == "e" and item_of(data, s.valid.targets[0]) == "d"
    assert s.train_end[0] == 4  # training stops before the validation session
    batch = next(s.test.batches(8, max_len=6))
    # history: everything before the target's session, left-padded; context: the target event's own time and scene
    assert [data.features.items.decode(int(i)) for i in batch.history["item"][0]] == ["unknown", "a", "b", "c", "a", "d"]
    target_row = s.test.targets[0]
    for k, v in batch.context.items():
        assert int(v[0]) == data.fields[k][target_row], k
    assert int(batch.targets[0]) == data.fields["item"][target_row]
    assert s.cutoff_ts == int(data.ts[3])


def test_history_is_truncated_to_max_len_and_left_padded(data):
    s = data.split("next_event")
    batch = next(s.test.batches(8, max_len=3))
    assert batch.history["item"].shape == (2, 3)
    assert [item_of(data, r) for r in (3, 4, 5)] == [data.features.items.decode(int(i)) for i in batch.history["item"][0]]
    assert batch.history["item"][1, 0] == 0 and batch.history["gap"][1, 0] == 0  # u3: two events, one pad


@pytest.mark.parametrize("protocol", ["next_event", "next_session"])
def test_training_windows_cover_each_training_event_once_and_never_leak(data, protocol):
    s = data.split(protocol)
    windows = s.training_windows(max_len=3)
    seen = []
    for batch in windows.batches(2):  # unshuffled: weights instead of sampling
        T = batch.length
        has = batch.targets > 0
        assert bool((batch.weights[~has] == 0).all())
        seen += batch.targets[has].tolist()
        # a target's context is its own event's context: check the hour of every target
        assert bool((batch.context["hour"][has] > 0).all()) and bool((batch.context["hour"][~has] == 0).all())
        assert T == 3
    train_items = data.fields["item"][s.train_rows()]
    assert sorted(seen) == sorted(train_items.tolist())  # every training event exactly once, cold starts included
    assert windows.n_targets() == len(train_items)


def test_training_window_positions_predict_the_next_event(data):
    s = data.split("next_event")
    batch = next(s.training_windows(max_len=8).batches(8))
    item, tgt = batch.history["item"], batch.targets
    row = 0  # u1 trains on a b c a d: inputs a b c a predict b c a d, and the cold start predicts a
    assert item[row].tolist()[-4:] == data.fields["item"][0:4].tolist()
    assert tgt[row].tolist()[-4:] == data.fields["item"][1:5].tolist()
    assert tgt[row, -5] == data.fields["item"][0] and item[row, -5] == 0
    assert int((tgt[row] > 0).sum()) == 5


def test_sampled_positions_follow_the_weights(data):
    s = data.split("next_session")
    w = s.training_windows(max_len=8, session_start_weight=1.0, within_session_weight=0.0)
    batches = list(w.batches(8, np.random.default_rng(0)))
    assert all(b.weights is None for b in batches)
    kept = sum(int((b.targets > 0).sum()) for b in batches)
    # with weight 0 inside sessions only the session-start targets remain (cold starts are session starts)
    assert kept == int(data.session_start[s.train_rows()].sum())


def test_slices_label_each_case(data):
    s = data.split("next_event")
    sl = s.test.slices()
    assert list(sl["user_id"]) == ["u1", "u3"]
    assert set(sl.columns) >= {"hour_bucket", "day_type", "device", "channel", "location", "promo_day", "history_length", "target_kind"}
    assert list(sl["target_kind"]) == ["new", "new"] and list(sl["history_length"]) == ["5-8", "1-2"]
    s2 = data.split("next_session")
    assert list(s2.valid.slices()["target_kind"]) == ["new"]


def test_train_events_are_only_training_rows(data):
    s = data.split("next_event")
    ev = s.train_events()
    assert ev["user"].tolist() == [0] * 5 + [1, 1, 2] and ev["position"].tolist() == [0, 1, 2, 3, 4, 0, 1, 0]
    assert set(ev) >= {"item", "hour", "weekend", "device", "ts", "session_start"}


def test_unknown_protocol_fails_loudly(data):
    with pytest.raises(ValueError, match="next_event"):
        data.split("leave_one_out")


def test_serving_batch_repeats_one_history_under_many_contexts():
    hist = {k: np.arange(1, 4) for k in ("item", "behavior", "hour", "weekday", "weekend", "holiday", "promo", "gap", "device", "channel", "location")}
    b = serving_batch(hist, [{"hour": h} for h in range(1, 25)], max_len=5, context_fields=("hour", "device"))
    assert b.history["item"].shape == (24, 5) and b.history["item"][0].tolist() == [0, 0, 1, 2, 3]
    assert b.context["hour"].tolist() == list(range(1, 25)) and int(b.context["device"].sum()) == 0


def test_from_store_reads_in_local_time(tmp_db):
    con = connect(build_tiny_store(tmp_db), read_only=True)
    data = SequenceData.from_store(con)
    con.close()
    assert data.n_users == 24 and data.features.calendar.timezone == "Asia/Shanghai"
    assert set(np.unique(data.fields["hour"][data.session_start]).tolist()) <= {9, 16, 23}  # local 8, 15, 22 h (+1)


# --- time_split: one global cut ------------------------------------------------------------------------------

DAY = 24 * 60  # minutes

# T0 is 2025-11-03 08:00 local (Asia/Shanghai); the cut below is 2025-11-17 00:00 local = day 14 - 8 h after T0.
# a: trains (days 0, 1), one validation session (day 9) and two test sessions (days 14, 15) with a mid-session event;
# b: only trains; c: a session starting before the cut that runs across it (not a test target), then one after;
# d: new after the cut (one session: no earlier event, so no target); e: a new item "z" first seen after the cut.
TS_SPEC = {
    "a": [(0, "a"), (5, "b"), (DAY, "c"), (9 * DAY, "d"), (14 * DAY, "e"), (14 * DAY + 3, "f"), (15 * DAY, "a")],
    "b": [(0, "b"), (2 * DAY, "c")],
    "c": [(0, "c"), (14 * DAY - 8 * 60 - 10, "d"), (14 * DAY - 8 * 60 + 10, "e"), (16 * DAY, "b")],
    "d": [(15 * DAY, "a"), (15 * DAY + 5, "b")],
    "e": [(DAY, "a"), (14 * DAY + 60, "z"), (16 * DAY, "z")],
}


@pytest.fixture
def ts_data() -> SequenceData:
    frame = _frame(TS_SPEC)
    items = pd.DataFrame({"item_id": list("abcdefz"), "category": list("xxyyzzz"), "price": [1.0, 2, 3, 4, 5, 6, 7]})
    scene = [scene_field(f) for f in ("device", "channel", "location")]
    return SequenceData.from_frame(frame, FeatureSpace.fit(frame, items, Calendar(timezone="Asia/Shanghai"), scene))


CUT = parse_cut("2025-11-17", "Asia/Shanghai")


def test_time_split_never_trains_at_or_after_the_cut_nor_inside_the_validation_window(ts_data):
    s = ts_data.split("time_split", CUT)
    assert s.cut == CUT and cut_iso(CUT, "Asia/Shanghai") == "2025-11-17T00:00:00+08:00"
    train_ts = ts_data.ts[s.train_rows()]
    assert len(train_ts) > 0 and (train_ts < CUT - TIME_SPLIT_WINDOW_S).all()
    assert s.cutoff_ts == train_ts.max()
    # and everything before the validation window trains: a's first three events, all of b, c's first, e's first
    assert (s.train_end - ts_data.offsets[:-1]).tolist() == [3, 2, 1, 0, 1]
    for batch in s.training_windows(max_len=4).batches(8):  # no window reaches a later row
        rows = batch.targets[batch.targets > 0]
        assert set(rows.tolist()) <= set(ts_data.fields["item"][s.train_rows()].tolist())


def test_time_split_targets_are_session_starts_at_or_after_the_cut_with_earlier_history(ts_data):
    s = ts_data.split("time_split", CUT)
    test_ts, valid_ts = ts_data.ts[s.test.targets], ts_data.ts[s.valid.targets]
    assert (test_ts >= CUT).all() and ((valid_ts >= CUT - TIME_SPLIT_WINDOW_S) & (valid_ts < CUT)).all()
    assert ts_data.session_start[s.test.targets].all() and (s.test.targets > ts_data.offsets[s.test.users]).all()
    got = [(ts_data.user_ids[u], item_of(ts_data, r)) for u, r in zip(s.test.users, s.test.targets)]
    # a: two sessions after the cut (not the mid-session "f"); c: not the session that crossed the cut;
    # d: no earlier event; e: the new item "z" is a target twice
    assert got == [("a", "e"), ("a", "a"), ("c", "b"), ("e", "z"), ("e", "z")]
    assert [(ts_data.user_ids[u], item_of(ts_data, r)) for u, r in zip(s.valid.users, s.valid.targets)] == [("a", "d"), ("c", "d")]
    # the history of a test case is everything of the shopper before the target, validation window included
    batch = next(s.test.batches(8, max_len=7))
    assert [ts_data.features.items.decode(int(i)) for i in batch.history["item"][1]] == ["unknown", "a", "b", "c", "d", "e", "f"]
    summary = training_summary(s)
    assert summary["cut"] == "2025-11-17T00:00:00+08:00"
    assert (summary["n_eval_cases"], summary["n_eval_users"]) == (5, 3)  # several cases per shopper: both said


def test_time_split_default_cut_is_the_start_of_the_last_seven_local_days(ts_data):
    last_local = pd.Timestamp(int(ts_data.ts.max()), unit="s", tz="UTC").tz_convert("Asia/Shanghai")
    assert str(last_local.date()) == "2025-11-19"
    assert cut_iso(ts_data.default_cut(), "Asia/Shanghai") == "2025-11-13T00:00:00+08:00"
    assert ts_data.split("time_split").cut == ts_data.default_cut()


def test_time_split_refuses_bad_cuts_in_one_line(ts_data):
    with pytest.raises(ValueError, match="--cut applies to the time_split protocol"):
        ts_data.split("next_event", CUT)
    with pytest.raises(ValueError, match="no event before 2025-11-03.* to train on"):
        ts_data.split("time_split", parse_cut("2025-11-10", "Asia/Shanghai"))
    for bad in ("", "NaT", "now", "yesterday", "2025-13-01", "2025-11-31", "17/11/2025", "2025-11-17T25:00"):
        with pytest.raises(ValueError, match=r"^--cut .* is not an ISO date or datetime \(e\.g\. 2025-12-08") as err:
            parse_cut(bad, "Asia/Shanghai")
        assert "\n" not in str(err.value)
    # an offset wins over the data's timezone; without one the cut is local time
    assert parse_cut("2025-11-16T16:00:00+00:00", "Asia/Shanghai") == CUT == parse_cut("2025-11-17 00:00", "Asia/Shanghai")


def test_protocol_key_names_the_cut():
    assert protocol_key("next_session") == "next_session" and protocol_key("time_split", CUT) == f"time_split@{CUT}"
    assert protocol_key("time_split", CUT) != protocol_key("time_split", CUT + 86400)


def test_store_default_cut_equals_the_data_default(tmp_db):
    con = connect(build_tiny_store(tmp_db), read_only=True)
    try:
        assert store_default_cut(con) == SequenceData.from_store(con).default_cut()
    finally:
        con.close()
