"""Time and scene context as integer ids (docs/design.md §3), and the vocabularies saved with each model.

Every field a model sees is a small integer id. Id 0 always means "padding or
unknown": its embedding is a zero vector (``padding_idx=0``), so an unknown value
contributes nothing and doubles as the attribution baseline for explanations.

Time fields have fixed vocabularies (hour 1..24, weekday 1..7, flags 1=no/2=yes,
gap buckets); scene fields (whatever the data has: `recsys_core.context`), behaviours,
items and categories have vocabularies fitted on the data and stored in the model's metadata. Nothing here knows how the
sample world was generated: time and scene effects are learned by the models.

Local time comes from the store's ``meta.timezone`` (default Asia/Shanghai);
public holidays from the ``holidays`` package (CN by default); promotion days are
a configurable list of month-day strings (defaults 06-18, 11-11, 12-12).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from recsys_core.context import TIME_FIELDS, UNKNOWN, SceneField, promo_flag

DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_HOLIDAY_COUNTRY = "CN"
DEFAULT_PROMO_DAYS = ("06-18", "11-11", "12-12")
BEHAVIORS = ("pv", "fav", "cart", "buy")

# Time-since-previous-event buckets (seconds, upper bounds, roughly log-spaced):
# 1 = no previous event, then <1 min, <5 min, <30 min, <2 h, <8 h, <1 d, <3 d, <7 d, <30 d, >=30 d.
GAP_EDGES_S = (60, 300, 1800, 7200, 28800, 86400, 3 * 86400, 7 * 86400, 30 * 86400)
N_GAP_IDS = len(GAP_EDGES_S) + 3  # 0 pad, 1 first event, 2.. buckets
N_PRICE_BANDS = 8

# Fields of a history event: the item and behaviour, then TIME_FIELDS, then the data's scene fields
# (`FeatureSpace.history_fields()`); of a target context: TIME_FIELDS then scene fields (`context_fields()`).
# The target moment's gap is the time since the shopper's previous event: it tells a new visit after
# two days from a continuation of the current session.
EVENT_FIELDS = ("item", "behavior")


class Vocabulary:
    """String values ↔ ids 1..n; id 0 is padding/unknown (including the literal value ``unknown``)."""

    def __init__(self, values: Iterable[str]):
        seen = [v for v in dict.fromkeys(str(v) for v in values) if v != UNKNOWN and v != ""]
        self.values: list[str] = seen
        self._index = {v: i + 1 for i, v in enumerate(seen)}
        self._pd_index = pd.Index(seen, dtype=object)

    @classmethod
    def fit(cls, values: Iterable[Any]) -> "Vocabulary":
        """Sorted distinct values, so a vocabulary does not depend on row order."""
        return cls(sorted({str(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))}))

    def __len__(self) -> int:
        """Number of ids including 0."""
        return len(self.values) + 1

    def id(self, value: Any) -> int:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return 0
        return self._index.get(str(value), 0)

    def encode(self, values: Sequence[Any]) -> np.ndarray:
        """Ids of many values at once (vectorised; unseen, missing and ``unknown`` → 0)."""
        if len(values) == 0:
            return np.zeros(0, np.int64)
        if len(values) <= 256:  # serving: a dict lookup beats building a pandas index query
            return np.array([self.id(v) for v in values], dtype=np.int64)
        raw = pd.Series(values, dtype=object)
        text = raw.astype(str).where(raw.notna(), "")  # "" is never in a vocabulary
        return (self._pd_index.get_indexer(text) + 1).astype(np.int64)

    def decode(self, idx: int) -> str:
        return self.values[idx - 1] if 0 < idx <= len(self.values) else UNKNOWN

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.values == other.values

    def to_list(self) -> list[str]:
        return list(self.values)

    def extend(self, values: Iterable[Any]) -> list[str]:
        """Append the values not yet known (sorted, so the result does not depend on row order) as ids
        n+1, n+2, ...; existing ids never change. Returns the values added."""
        fresh = Vocabulary.fit(values).values
        added = [v for v in fresh if v not in self._index]
        for v in added:
            self._index[v] = len(self.values) + 1
            self.values.append(v)
        if added:
            self._pd_index = pd.Index(self.values, dtype=object)
        return added


@dataclass
class Calendar:
    """Which local days are public holidays or promotion days, in which timezone."""

    timezone: str = DEFAULT_TIMEZONE
    holiday_country: str = DEFAULT_HOLIDAY_COUNTRY
    promo_days: tuple[str, ...] = DEFAULT_PROMO_DAYS

    def __post_init__(self) -> None:
        self.promo_days = tuple(self.promo_days)
        for md in self.promo_days:
            try:
                dt.datetime.strptime(f"2000-{md}", "%Y-%m-%d")
            except ValueError as exc:
                raise ValueError(f"promotion day {md!r} must be MM-DD (e.g. 11-11)") from exc

    def is_holiday(self, day: dt.date) -> bool:
        return day in _holiday_set(self.holiday_country, day.year)

    def is_promo(self, day: dt.date) -> bool:
        return f"{day.month:02d}-{day.day:02d}" in self.promo_days

    def to_dict(self) -> dict[str, Any]:
        return {"timezone": self.timezone, "holiday_country": self.holiday_country, "promo_days": list(self.promo_days)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Calendar":
        return cls(d.get("timezone", DEFAULT_TIMEZONE), d.get("holiday_country", DEFAULT_HOLIDAY_COUNTRY), tuple(d.get("promo_days", DEFAULT_PROMO_DAYS)))


@lru_cache(maxsize=64)
def _holiday_set(country: str, year: int) -> frozenset[dt.date]:
    import holidays

    try:
        return frozenset(holidays.country_holidays(country, years=year).keys())
    except NotImplementedError as exc:
        raise ValueError(f"unknown holiday country {country!r} for the `holidays` package") from exc


def gap_bucket(gap_seconds: np.ndarray) -> np.ndarray:
    """Log-bucketed time since the previous event: NaN/negative → 1 (no previous event)."""
    g = np.asarray(gap_seconds, dtype=np.float64)
    out = np.searchsorted(np.asarray(GAP_EDGES_S, dtype=np.float64), np.nan_to_num(g, nan=0.0), side="right") + 2
    return np.where(np.isnan(g) | (g < 0), 1, out).astype(np.int64)


def time_ids(local_ts: np.ndarray, calendar: Calendar) -> dict[str, np.ndarray]:
    """Time ids of naive LOCAL timestamps (numpy datetime64): hour, weekday, weekend, holiday, promo.

    hour 1..24 (= hour+1), weekday 1..7 (Monday=1), flags 1 = no, 2 = yes.
    """
    ts = np.asarray(local_ts, dtype="datetime64[s]")
    days = ts.astype("datetime64[D]")
    hour = ((ts - days).astype(np.int64) // 3600).astype(np.int64)
    weekday = ((days.astype(np.int64) + 3) % 7).astype(np.int64)  # 1970-01-01 was a Thursday (3)
    uniq, inverse = np.unique(days, return_inverse=True)
    dates = [d.astype(dt.date) for d in uniq]
    hol = np.array([calendar.is_holiday(d) for d in dates], dtype=bool)[inverse] if len(dates) else np.zeros(0, bool)
    promo = np.array([calendar.is_promo(d) for d in dates], dtype=bool)[inverse] if len(dates) else np.zeros(0, bool)
    return {
        "hour": hour + 1,
        "weekday": weekday + 1,
        "weekend": (weekday >= 5).astype(np.int64) + 1,
        "holiday": hol.astype(np.int64) + 1,
        "promo": promo.astype(np.int64) + 1,
    }


def price_band_edges(prices: np.ndarray, n_bands: int = N_PRICE_BANDS) -> list[float]:
    """Quantile edges of the catalogue's prices (log scale is implicit in quantiles)."""
    p = np.asarray(prices, dtype=np.float64)
    p = p[np.isfinite(p) & (p > 0)]
    if len(p) == 0:
        return []
    return sorted(set(float(x) for x in np.quantile(p, np.linspace(0, 1, n_bands + 1)[1:-1])))


def price_bands(prices: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Band id 1..n_bands; 0 for a missing price."""
    p = np.asarray(prices, dtype=np.float64)
    band = np.searchsorted(np.asarray(edges, dtype=np.float64), np.nan_to_num(p, nan=0.0), side="right") + 1
    return np.where(np.isfinite(p) & (p > 0), band, 0).astype(np.int64)


@dataclass
class FeatureSpace:
    """Everything needed to turn raw events and a push moment into model ids; saved with each model.

    ``items`` maps store item ids to dense ids 1..n_items (0 = padding); ``item_category``
    and ``item_price_band`` give each dense item's side-feature ids (index 0 unused).
    ``scene_fields`` is the data's context schema (in order) and ``scene`` one vocabulary per field.
    """

    calendar: Calendar
    items: Vocabulary
    behavior: Vocabulary
    category: Vocabulary
    scene_fields: list[SceneField] = field(default_factory=list)
    scene: dict[str, Vocabulary] = field(default_factory=dict)
    price_edges: list[float] = field(default_factory=list)
    item_category: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    item_price_band: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))

    @property
    def n_items(self) -> int:
        return len(self.items) - 1

    @property
    def scene_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.scene_fields)

    def history_fields(self) -> tuple[str, ...]:
        """Id fields of a history event: item, behaviour, time, every scene field."""
        return EVENT_FIELDS + TIME_FIELDS + self.scene_names

    def context_fields(self) -> tuple[str, ...]:
        """Every field a target context can hold: time, then every scene field."""
        return TIME_FIELDS + self.scene_names

    def decision_time_fields(self) -> tuple[str, ...]:
        """The target-context fields known when a push is decided (the default a model reads)."""
        return TIME_FIELDS + tuple(f.name for f in self.scene_fields if f.known_at_decision)

    def field(self, name: str) -> SceneField:
        for f in self.scene_fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def vocab_sizes(self) -> dict[str, int]:
        """Number of ids (incl. 0) per field: what model configs are built from."""
        return {
            "item": len(self.items),
            "behavior": len(self.behavior),
            "hour": 25,
            "weekday": 8,
            "weekend": 3,
            "holiday": 3,
            "promo": 3,
            "gap": N_GAP_IDS,
            "category": len(self.category),
            "price_band": N_PRICE_BANDS + 1,
            **{name: len(v) for name, v in self.scene.items()},
        }

    @classmethod
    def fit(cls, events: "Any", items: "Any", calendar: Calendar, scene_fields: Sequence[SceneField] = ()) -> "FeatureSpace":
        """Fit vocabularies on an events frame (item_id, behavior, and a column per scene field)
        and an items frame (item_id, category, price); the catalogue is their union of item ids."""
        item_ids = sorted(set(events["item_id"].astype(str)) | set(items["item_id"].astype(str)))
        item_vocab = Vocabulary(item_ids)
        category = Vocabulary.fit(items["category"].dropna().astype(str)) if len(items) else Vocabulary([])
        edges = price_band_edges(items["price"].to_numpy(dtype=np.float64, na_value=np.nan)) if len(items) else []
        item_category = np.zeros(len(item_vocab), np.int64)
        item_price_band = np.zeros(len(item_vocab), np.int64)
        if len(items):
            dense = item_vocab.encode(items["item_id"].astype(str).tolist())
            item_category[dense] = category.encode(items["category"].astype(object).where(items["category"].notna(), None).tolist())
            item_price_band[dense] = price_bands(items["price"].to_numpy(dtype=np.float64, na_value=np.nan), edges)
            item_category[0] = item_price_band[0] = 0
        fields = list(scene_fields)
        return cls(
            calendar=calendar,
            items=item_vocab,
            behavior=Vocabulary(BEHAVIORS),
            category=category,
            scene_fields=fields,
            scene={f.name: Vocabulary.fit(events[f.name]) if f.name in events else Vocabulary([]) for f in fields},
            price_edges=edges,
            item_category=item_category,
            item_price_band=item_price_band,
        )

    def extend(self, events: "Any", items: "Any") -> dict[str, list[str]]:
        """Grow the vocabularies with what new data holds (a warm-started update, `recsys_core.update`): items of
        ``events`` or ``items``, categories of ``items``, behaviours and values of the existing scene fields of
        ``events``. Old ids keep their ids; new ones are appended; the new items' category and price band
        (under the existing price edges) extend ``item_category`` / ``item_price_band``. A scene field the
        space does not have is not added (the model has no embedding for it). Returns the added values per
        vocabulary ("items", "category", "behavior", each scene field), empty lists included."""
        n_before = len(self.items)
        item_ids = list(events["item_id"].astype(str)) + (list(items["item_id"].astype(str)) if len(items) else [])
        added = {"items": self.items.extend(item_ids),
                 "category": self.category.extend(items["category"].dropna().astype(str)) if len(items) else [],
                 "behavior": self.behavior.extend(events["behavior"].dropna().astype(str))}
        for f in self.scene_fields:
            added[f.name] = self.scene[f.name].extend(events[f.name].dropna()) if f.name in events else []
        grow = len(self.items) - n_before
        self.item_category = np.concatenate([self.item_category, np.zeros(grow, np.int64)])
        self.item_price_band = np.concatenate([self.item_price_band, np.zeros(grow, np.int64)])
        if grow and len(items):
            dense = self.items.encode(items["item_id"].astype(str).tolist())
            new = dense >= n_before
            cats = self.category.encode(items["category"].astype(object).where(items["category"].notna(), None).tolist())
            bands = price_bands(items["price"].to_numpy(dtype=np.float64, na_value=np.nan), self.price_edges)
            self.item_category[dense[new]] = cats[new]
            self.item_price_band[dense[new]] = bands[new]
        return added

    def encode_events(self, frame: "Any") -> dict[str, np.ndarray]:
        """Ids of every history field for events of ONE OR MORE shoppers sorted by (user, ts, seq).

        ``frame`` is a DataFrame or a dict of arrays with user_id, item_id, behavior, ts (naive UTC),
        local_ts (naive local) and the scene columns (a missing column is unknown). ``gap`` is measured
        within each shopper.
        """
        col = lambda name: np.asarray(frame[name])  # noqa: E731
        out = {"item": self.items.encode(col("item_id")), "behavior": self.behavior.encode(col("behavior"))}
        out.update(time_ids(col("local_ts").astype("datetime64[s]"), self.calendar))
        ts = col("ts").astype("datetime64[s]").astype(np.int64)
        users = col("user_id")
        gap = np.full(len(ts), np.nan)
        if len(ts) > 1:
            same = users[1:] == users[:-1]
            gap[1:] = np.where(same, (ts[1:] - ts[:-1]).astype(np.float64), np.nan)
        out["gap"] = gap_bucket(gap)
        for name, vocab in self.scene.items():
            out[name] = vocab.encode(col(name)) if name in frame else np.zeros(len(ts), np.int64)
        return out

    def encode_moment(
        self,
        local_time: dt.datetime,
        scene: Mapping[str, Any] | None = None,
        promo_override: bool | None = None,
        since_last_event_s: float | None = None,
    ) -> dict[str, int]:
        """Target-context ids of a push moment given in LOCAL time (naive, or aware already converted).

        ``scene``: field -> value (missing, unseen or None = unknown, 0).
        ``since_last_event_s``: seconds since the shopper's latest event — None or negative (a moment
        before the latest event) = unknown (0); NaN = no previous event at all (a cold start).
        """
        naive = local_time.replace(tzinfo=None)
        t = {k: int(v[0]) for k, v in time_ids(np.array([np.datetime64(naive, "s")]), self.calendar).items()}
        t["promo"] = 2 if promo_flag(naive.date(), self.calendar, promo_override) else 1
        gap = since_last_event_s
        t["gap"] = 0 if gap is None or gap < 0 else int(gap_bucket(np.array([gap], dtype=np.float64))[0])
        scene = scene or {}
        for name, vocab in self.scene.items():
            t[name] = vocab.id(scene.get(name))
        return t

    def to_dict(self) -> dict[str, Any]:
        return {
            "calendar": self.calendar.to_dict(),
            "items": self.items.to_list(),
            "behavior": self.behavior.to_list(),
            "category": self.category.to_list(),
            "scene_fields": [f.to_dict() for f in self.scene_fields],
            "scene": {name: v.to_list() for name, v in self.scene.items()},
            "price_edges": list(self.price_edges),
            "item_category": self.item_category.tolist(),
            "item_price_band": self.item_price_band.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureSpace":
        try:
            fields = [SceneField.from_dict(f) for f in d["scene_fields"]]
            return cls(
                calendar=Calendar.from_dict(d["calendar"]),
                items=Vocabulary(d["items"]),
                behavior=Vocabulary(d["behavior"]),
                category=Vocabulary(d["category"]),
                scene_fields=fields,
                scene={f.name: Vocabulary(d["scene"][f.name]) for f in fields},
                price_edges=[float(x) for x in d.get("price_edges", [])],
                item_category=np.asarray(d["item_category"], dtype=np.int64),
                item_price_band=np.asarray(d["item_price_band"], dtype=np.int64),
            )
        except KeyError as exc:
            raise ValueError(f"feature vocabularies are missing field {exc}") from exc


def hour_bucket(hour_id: np.ndarray) -> np.ndarray:
    """Readable slice label of an hour id: night 0-5, morning 6-10, midday 11-13, afternoon 14-17, evening 18-23."""
    h = np.asarray(hour_id) - 1
    labels = np.array(["unknown", "night", "morning", "midday", "afternoon", "evening"], dtype=object)
    idx = np.select([h < 0, h < 6, h < 11, h < 14, h < 18], [0, 1, 2, 3, 4], default=5)
    return labels[idx]


CONTEXT_SLICES = {"hour_bucket": "hour", "day_type": "weekend", "promo_day": "promo"}  # slice name -> its context id field


def context_slice_labels(features: "FeatureSpace", name: str, ids: np.ndarray) -> np.ndarray:
    """Slice labels of a context field's ids: hour_bucket, day_type, promo_day (from the hour, weekend and
    promo ids) or a scene field's values. The one mapping evaluation slices and the router both use."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if name == "hour_bucket":
        return hour_bucket(ids)
    if name == "day_type":
        return np.where(ids == 2, "weekend", "weekday").astype(object)
    if name == "promo_day":
        return np.where(ids == 2, "promo", "regular").astype(object)
    vocab = features.scene[name]
    return np.array([vocab.decode(int(i)) for i in ids], dtype=object)


def log2_bucket_label(n: int) -> str:
    """History-length slice label: 1-2, 3-4, 5-8, 9-16, ..."""
    if n <= 0:
        return "0"
    hi = 2 ** max(1, math.ceil(math.log2(n)))
    lo = hi // 2 + 1 if hi > 2 else 1
    return f"{lo}-{hi}"
