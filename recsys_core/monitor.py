"""Backtest and drift monitoring: has the model got worse, has behaviour shifted since it was trained?
(docs/monitoring.md)

`monitor(con, model_dir, window="7d")` cuts the data after the model's training cut-off into windows
aligned to local midnight and measures, per window:

- **quality**: NDCG@10 and HR@10 on the window's session starts, full ranking, the history of a case
  being every earlier event of its shopper (the time_split protocol's test cases, `sequences.py`);
- **input drift** against the training window (its last `REFERENCE_WEEKS` whole weeks): PSI and
  Jensen–Shannon distance of the local hour, the weekday, every scene field and the category mix;
  the share of events on items / by shoppers absent from the whole training window, with PSI against
  the first window (right after training, the share the model already lacked);
- **prediction drift**: the category mix of the top-10 lists (PSI and JS against the first window)
  and catalogue coverage.

Alerts (`find_alerts`): NDCG@10 below its first window's by more than a share, or a PSI above a
threshold; computed from the stored windows, so changing a threshold costs nothing. The windows of a
(model version, events hash, window length, as-of) are stored beside the database (`MonitorStore`),
like stored evaluations.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from recsys_core.evaluate import (COVERAGE_K, MIN_SLICE_CASES, CaseResults, EvaluationStore, catalogue_coverage, per_case_metrics,
                                  rank_cases)
from recsys_core.sequences import TIME_SPLIT_WINDOW_S, EvalCases, SequenceData, cut_iso, parse_cut

log = logging.getLogger(__name__)

MONITOR_FORMAT = 1  # part of the stored windows' key: a change of what a window holds is a new key
DEFAULT_WINDOW = "7d"
DEFAULT_NDCG_DROP = 0.2  # alert when NDCG@10 falls by more than this share of its first window's value
DEFAULT_PSI = 0.2  # alert when a PSI exceeds this (the usual "significant shift" rule of thumb)
PSI_EPS = 1e-4  # floor of an empty bin's share (as tests/test_synth_drift.py measures the planted drift)
REFERENCE_WEEKS = 4  # the drift reference: the last whole weeks of the training window (fewer if it is shorter)
MIN_ALERT_CASES = MIN_SLICE_CASES  # fewer session starts than this: NDCG is shown, never alerted on
MIN_ALERT_EVENTS = 200  # fewer events than this: PSI is shown, never alerted on
DAY_S = 86400
EVALUATION = "full ranking, session starts per window (history = everything before)"
QUALITY = ("NDCG@10", "HR@10")
NEW_FIELDS = ("new_items", "new_shoppers")
PREDICTION_FIELD = "top10_category"
UNKNOWN = "unknown"


@dataclass
class Thresholds:
    """When a window raises an alert (both configurable on the CLI and the page)."""

    ndcg_drop: float = DEFAULT_NDCG_DROP
    psi: float = DEFAULT_PSI

    def check(self) -> "Thresholds":
        if not 0.0 < self.ndcg_drop < 1.0:
            raise ValueError(f"--ndcg-drop {self.ndcg_drop} must be a share between 0 and 1 (e.g. 0.2 = a fifth lower)")
        if not self.psi > 0.0:
            raise ValueError(f"--psi {self.psi} must be above 0 (e.g. 0.2)")
        return self


# --- distances between two distributions -----------------------------------------------------------


def psi(actual: Sequence[float], expected: Sequence[float], eps: float = PSI_EPS) -> float:
    """Population stability index sum((a - e) ln(a / e)) of two distributions over the same bins
    (counts or shares); an empty bin counts as ``eps`` (then both are renormalised)."""
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert a.shape == e.shape and a.ndim == 1, "psi needs two 1-d distributions over the same bins"
    if a.sum() <= 0 or e.sum() <= 0:
        return float("nan")
    a, e = np.maximum(a / a.sum(), eps), np.maximum(e / e.sum(), eps)
    a, e = a / a.sum(), e / e.sum()
    return float(((a - e) * np.log(a / e)).sum())


def js_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen–Shannon distance (the square root of the divergence, base 2): 0 for equal distributions,
    1 for disjoint ones. Needs no epsilon: the mixture is positive wherever either is."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    assert p.shape == q.shape and p.ndim == 1, "js_distance needs two 1-d distributions over the same bins"
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float((x[nz] * np.log2(x[nz] / m[nz])).sum())

    return float(np.sqrt(max(0.0, (kl(p) + kl(q)) / 2)))


def drift(window: pd.Series, reference: pd.Series) -> dict[str, float]:
    """PSI and JS distance of two value → count (or share) series, aligned over the union of their values."""
    bins = reference.index.union(window.index)
    a, e = window.reindex(bins, fill_value=0).to_numpy(), reference.reindex(bins, fill_value=0).to_numpy()
    return {"psi": psi(a, e), "js": js_distance(a, e)}


# --- windows -----------------------------------------------------------------------------------------


def parse_window(text: str) -> int:
    """Days in a window length: ``7d``, ``3d``, ``2w``, ``24h`` / ``48h`` (whole days: windows start at local
    midnight and the hour mix of a part of a day is not comparable with a whole day's)."""
    match = re.fullmatch(r"\s*(\d+)\s*([dhw])\s*", str(text or "").lower())
    hours = (int(match.group(1)) * {"h": 1, "d": 24, "w": 168}[match.group(2)]) if match else 0
    if hours <= 0 or hours % 24:
        raise ValueError(f"--window {text!r} is not a window length in whole days: use e.g. 7d, 3d, 24h or 2w")
    return hours // 24


def parse_as_of(text: str, timezone: str) -> int:
    """The end (exclusive, UTC seconds) of the data an ``--as-of`` considers: a date means up to the end of
    that local day, a datetime that very moment (without an offset: local time in ``timezone``)."""
    raw = str(text).strip()
    try:
        ts = parse_cut(raw, timezone)  # the one ISO parser of the project (sequences.parse_cut)
    except ValueError:
        raise ValueError(f"--as-of {text!r} is not an ISO date or datetime (e.g. 2025-11-30 or 2025-11-30T12:00)") from None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):  # a whole day: up to the end of it
        ts = int((pd.Timestamp(ts, unit="s", tz="UTC").tz_convert(timezone) + pd.DateOffset(days=1)).tz_convert("UTC").timestamp())
    return ts


def next_local_midnight(ts: int, timezone: str) -> int:
    """UTC seconds of the first local midnight strictly after ``ts``."""
    local = pd.Timestamp(int(ts), unit="s", tz="UTC").tz_convert(timezone)
    return int((local.normalize() + pd.DateOffset(days=1)).timestamp())


def window_bounds(first_start: int, data_end: int, days: int, timezone: str) -> list[tuple[int, int]]:
    """[start, end) UTC seconds of consecutive ``days``-day windows from ``first_start`` (a local midnight)
    while they start before ``data_end``; calendar days, so a daylight-saving change keeps midnights."""
    start = pd.Timestamp(int(first_start), unit="s", tz="UTC").tz_convert(timezone)
    out = []
    while True:
        s, e = (int((start + pd.DateOffset(days=k * days)).timestamp()) for k in (len(out), len(out) + 1))
        if s >= data_end:
            return out
        out.append((s, e))


def training_cutoff(metadata: dict[str, Any]) -> int:
    """UTC seconds of the model's latest training event (metadata ``training_cutoff``)."""
    text = metadata.get("training_cutoff")
    if not text:
        raise ValueError("the model folder records no training_cutoff; retrain it to monitor it")
    return parse_cut(text, "UTC")  # stored with its offset (one without is UTC)


# --- the measurements ----------------------------------------------------------------------------------


def _counts(values: pd.Series) -> pd.Series:
    return values.value_counts(sort=False)


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), digits)


def _mix(counts: pd.Series, digits: int = 4) -> dict[str, float]:
    total = counts.sum()
    return {str(k): round(float(v) / float(total), digits) for k, v in counts.sort_values(ascending=False).items()} if total else {}


def _window_cases(data: SequenceData, first_start: int) -> EvalCases:
    """Every session start at or after ``first_start`` whose shopper has an earlier event: the time_split
    protocol's cases for a cut at ``first_start``. Taken as that protocol's validation and test cases for a
    cut a week later, which needs training events only before ``first_start`` (the model's own data), not
    a week before it."""
    split = data.split("time_split", cut=first_start + TIME_SPLIT_WINDOW_S)
    return EvalCases(data, "test", np.concatenate([split.valid.users, split.test.users]),
                     np.concatenate([split.valid.targets, split.test.targets]))


def _ranked_cases(con: Any, lm: Any, events: pd.DataFrame, first_start: int, data_end: int,
                  store: EvaluationStore | None) -> tuple[np.ndarray, CaseResults]:
    """(target UTC seconds, `CaseResults`) of the session starts from ``first_start`` to ``data_end``, ranked by the
    model with its own vocabularies over ALL ``events`` once (stored under ``monitor_from@<first_start>``)."""
    from recsys_core.store import events as store_events

    data = SequenceData.from_frame(events, lm.features)
    cases = _window_cases(data, first_start)
    events_hash = store_events.data_fingerprint(con)["events_hash"] if store else ""
    key = f"monitor_from@{first_start}"
    results = store.load_results(lm.version, events_hash, key) if store else None
    if results is None or len(results.ranks) != len(cases):
        results = rank_cases(lm.model, cases)
        if store:
            store.save_results(lm.version, events_hash, key, results)
    case_ts = data.ts[cases.targets]
    kept = case_ts < data_end  # the cases an as-of leaves
    return case_ts[kept], CaseResults(results.ranks[kept], results.top_items[kept], results.n_items)


def _scores(window: pd.Series, reference: pd.Series | None) -> dict[str, float | None]:
    """Rounded PSI and JS of a window against a reference; both None when either is empty."""
    if reference is None or not window.sum() or not reference.sum():
        return {"psi": None, "js": None}
    return {k: _round(v) for k, v in drift(window, reference).items()}


def measure_windows(con: Any, lm: Any, days: int, as_of: int | None = None, store: EvaluationStore | None = None) -> dict[str, Any]:
    """The windows of `monitor` (everything but the alerts): quality, input and prediction drift per window.
    With ``store`` the ranking of every session start after the cut-off is stored and reused: a case's history
    never reaches past its target, so another window length or as-of ranks nothing again."""
    from recsys_core.store import events as store_events
    from recsys_core.store.scene import scene_names

    tz = lm.features.calendar.timezone
    cutoff = training_cutoff(lm.metadata)
    all_events = store_events.read_events(con, tz)
    frame = all_events
    ts = frame["ts"].to_numpy(dtype="datetime64[s]").astype(np.int64) if len(frame) else np.zeros(0, np.int64)
    if as_of is not None:
        keep = ts < as_of
        frame, ts = frame[keep].reset_index(drop=True), ts[keep]
    if len(frame) == 0:
        raise ValueError("the database has no events" + (f" before --as-of {cut_iso(as_of, tz)}" if as_of is not None else ""))
    first_start = next_local_midnight(cutoff, tz)
    data_end = as_of if as_of is not None else next_local_midnight(int(ts.max()), tz)
    if first_start >= data_end or not (ts >= first_start).any():
        raise ValueError(f"no events after the model's training cut-off {cut_iso(cutoff, tz)} "
                         f"(data up to {cut_iso(int(ts.max()), tz)}): monitor a time_split model, "
                         "e.g. `train --protocol time_split --cut <date>`")
    training = ts <= cutoff
    if not training.any():
        raise ValueError(f"the database has no events up to the model's training cut-off {cut_iso(cutoff, tz)}: "
                         "nothing to compare the windows with")

    # the drift reference: the last REFERENCE_WEEKS whole weeks of training (all of it when shorter than a week)
    whole_weeks = (first_start - next_local_midnight(int(ts.min()), tz) + DAY_S) // (7 * DAY_S)
    weeks = int(min(REFERENCE_WEEKS, whole_weeks))
    ref_start = int((pd.Timestamp(first_start, unit="s", tz="UTC").tz_convert(tz) - pd.DateOffset(days=7 * weeks)).timestamp()) if weeks else int(ts.min())
    reference = training & (ts >= ref_start)

    items = store_events.read_items(con)
    category_of = dict(zip(items["item_id"].astype(str), items["category"].fillna(UNKNOWN).astype(str)))
    scene = [f for f in scene_names(con) if f in frame.columns]
    columns = {
        "hour": frame["local_ts"].dt.hour,
        "weekday": frame["local_ts"].dt.dayofweek,
        **{f: frame[f].fillna(UNKNOWN).astype(str) for f in scene},
        "category": frame["item_id"].astype(str).map(category_of).fillna(UNKNOWN),
    }
    known_items = set(frame["item_id"][training])
    known_shoppers = set(frame["user_id"][training])
    is_new = {"new_items": ~frame["item_id"].isin(known_items).to_numpy(), "new_shoppers": ~frame["user_id"].isin(known_shoppers).to_numpy()}
    ref_counts = {name: _counts(col[reference]) for name, col in columns.items()}

    case_ts, results = _ranked_cases(con, lm, all_events, first_start, data_end, store)
    per_case = per_case_metrics(results.ranks, cutoffs=(10,))
    dense_ids = np.asarray(lm.features.items.values, dtype=object)
    dense_category = np.array([UNKNOWN] + [category_of.get(str(i), lm.features.category.decode(int(c)))
                                           for i, c in zip(dense_ids, lm.features.item_category[1:])], dtype=object)

    windows = []
    first_new: dict[str, pd.Series] = {}
    first_top: pd.Series | None = None
    for start, end in window_bounds(first_start, data_end, days, tz):
        span_days = round((min(end, data_end) - start) / DAY_S)
        in_window = (ts >= start) & (ts < end)
        in_cases = (case_ts >= start) & (case_ts < end)
        top = results.top_items[in_cases]
        top_counts = _counts(pd.Series(dense_category[top[top > 0]]))
        row: dict[str, Any] = {
            "start": cut_iso(start, tz),
            "end": cut_iso(end, tz),
            "complete": end <= data_end,
            "days": span_days,
            "n_events": int(in_window.sum()),
            "n_cases": int(in_cases.sum()),
            "metrics": {m: _round(per_case[m][in_cases].mean() if in_cases.any() else None) for m in QUALITY},
            f"coverage@{COVERAGE_K}": _round(catalogue_coverage(top, results.n_items) if len(top) else None),
            "drift": {},
            "share": {},
            "category_mix": _mix(_counts(columns["category"][in_window])),
            "top10_category_mix": _mix(top_counts),
        }
        for name, col in columns.items():
            # a weekday mix is comparable only over whole weeks (a 3-day window holds 3 weekdays by construction)
            whole = name != "weekday" or span_days % 7 == 0
            row["drift"][name] = _scores(_counts(col[in_window]), ref_counts[name] if whole else None)
        for name, flags in is_new.items():  # against the first window: the share the model lacked right after training
            counts = pd.Series({"new": int(flags[in_window].sum()), "known": int((~flags[in_window]).sum())})
            row["share"][name] = _round(counts["new"] / counts.sum() if counts.sum() else None)
            if counts.sum():
                first_new.setdefault(name, counts)
            row["drift"][name] = _scores(counts, first_new.get(name))
        if first_top is None and len(top_counts):
            first_top = top_counts
        row["drift"][PREDICTION_FIELD] = _scores(top_counts, first_top)
        windows.append(row)

    return {
        "timezone": tz,
        "training_cutoff": cut_iso(cutoff, tz),
        "first_window_start": cut_iso(first_start, tz),
        "data_end": cut_iso(data_end, tz),
        "reference": {"start": cut_iso(ref_start, tz), "end": cut_iso(first_start, tz), "weeks": weeks,
                      "n_events": int(reference.sum()), "category_mix": _mix(ref_counts["category"])},
        "fields": list(columns) + list(NEW_FIELDS) + [PREDICTION_FIELD],
        "n_cases": int(len(case_ts)),
        "windows": windows,
    }


def find_alerts(windows: Sequence[dict[str, Any]], thresholds: Thresholds) -> list[dict[str, Any]]:
    """One alert per window and field where NDCG@10 fell by more than ``thresholds.ndcg_drop`` of the first
    window's value (among windows with at least `MIN_ALERT_CASES` cases), or a PSI exceeds ``thresholds.psi``
    (windows with at least `MIN_ALERT_EVENTS` events)."""
    alerts = []
    first = next((w["metrics"]["NDCG@10"] for w in windows if w["n_cases"] >= MIN_ALERT_CASES and w["metrics"]["NDCG@10"]), None)
    for w in windows:
        where = {"window_start": w["start"], "window_end": w["end"]}
        ndcg = w["metrics"]["NDCG@10"]
        if first and ndcg is not None and w["n_cases"] >= MIN_ALERT_CASES:
            drop = 1.0 - ndcg / first
            if drop > thresholds.ndcg_drop:
                alerts.append({**where, "kind": "ndcg_drop", "field": "NDCG@10", "value": round(drop, 4),
                               "threshold": thresholds.ndcg_drop, "ndcg": ndcg, "first_ndcg": first})
        if w["n_events"] < MIN_ALERT_EVENTS:
            continue
        for field, d in w["drift"].items():
            if d["psi"] is not None and d["psi"] > thresholds.psi:
                alerts.append({**where, "kind": "psi", "field": field, "value": d["psi"], "threshold": thresholds.psi, "js": d["js"]})
    return alerts


# --- stored windows --------------------------------------------------------------------------------------


class MonitorStore(EvaluationStore):
    """Stored windows beside the database (the evaluations folder), keyed by model version + events hash +
    window length + as-of, written atomically like stored evaluations. They hold counts and shares only,
    no shopper id (an erasure changes the events hash, hence the key)."""

    def _name(self, version: str, events_hash: str, days: int, as_of: int | None) -> str:
        return self._safe("monitor", MONITOR_FORMAT, version, events_hash, f"{days}d", "all" if as_of is None else as_of) + ".json"

    def load_windows(self, version: str, events_hash: str, days: int, as_of: int | None) -> dict[str, Any] | None:
        path = self.root / self._name(version, events_hash, days, as_of)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # a damaged file is recomputed, never trusted
            log.warning("ignoring stored monitoring %s: %s", path, exc)
            return None

    def save_windows(self, version: str, events_hash: str, days: int, as_of: int | None, measured: dict[str, Any]) -> None:
        from pathlib import Path

        text = json.dumps(measured, ensure_ascii=False)
        self._write(self._name(version, events_hash, days, as_of), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


# --- entry points ------------------------------------------------------------------------------------------


def monitor(con: Any, model_dir: str, window: str = DEFAULT_WINDOW, as_of: str | None = None,
            thresholds: Thresholds | None = None, store: MonitorStore | None = None) -> dict[str, Any]:
    """Backtest and drift of the model folder ``model_dir`` on the open database, per ``window`` after its
    training cut-off, with the alerts of ``thresholds``. With ``store`` the windows are reused when stored."""
    from pathlib import Path

    from recsys_core.features import Calendar
    from recsys_core.registry import load_model, read_metadata
    from recsys_core.store import events as store_events

    thresholds = (thresholds or Thresholds()).check()
    days = parse_window(window)
    meta = read_metadata(model_dir)  # the weights are loaded only when the windows are not stored
    tz = Calendar.from_dict(meta["features"].get("calendar", {})).timezone
    end = parse_as_of(as_of, tz) if as_of else None
    events_hash = store_events.data_fingerprint(con)["events_hash"]
    measured = store.load_windows(meta["version"], events_hash, days, end) if store else None
    if measured is None:
        measured = measure_windows(con, load_model(model_dir), days, end, store)
        if store:
            store.save_windows(meta["version"], events_hash, days, end, measured)
    alerts = find_alerts(measured["windows"], thresholds)
    return {
        "model": meta["model_type"],
        "model_dir": str(Path(model_dir)),
        "version": meta["version"],
        "protocol": meta.get("protocol"),
        **({"cut": meta["cut"]} if meta.get("cut") else {}),
        "window": f"{days}d",
        "as_of": measured["data_end"],
        "training_cutoff": measured["training_cutoff"],
        "evaluation": EVALUATION,
        "thresholds": {**asdict(thresholds), "psi_eps": PSI_EPS, "min_cases": MIN_ALERT_CASES, "min_events": MIN_ALERT_EVENTS},
        **{k: v for k, v in measured.items() if k not in ("training_cutoff", "data_end", "windows")},
        "windows": measured["windows"],
        "alerts": alerts,
        "headline": f"{len(measured['windows'])} windows of {days}d after {measured['training_cutoff'][:10]}, {len(alerts)} alerts",
    }


def monitor_cli(args: argparse.Namespace) -> dict[str, Any]:
    """Handler of `python -m recsys_core monitor --model-dir DIR [--window 7d] [--as-of ISO] [--ndcg-drop S] [--psi P]`."""
    import torch

    from recsys_core.store import connect

    torch.set_num_threads(min(2, torch.get_num_threads()))
    thresholds = Thresholds(args.ndcg_drop, args.psi).check()
    parse_window(args.window)  # a bad flag fails before the database is opened
    con = connect(args.db, read_only=True)
    try:
        return monitor(con, args.model_dir, args.window, args.as_of, thresholds, MonitorStore.beside(args.db))
    finally:
        con.close()
