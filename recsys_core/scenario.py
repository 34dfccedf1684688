"""The logic behind the Scenario page, free of any UI: scenarios, presets, shareable URLs, comparisons.

A *scenario* is the moment and the scene of a push: a local date and time, a
device, a channel, a location, and optionally a forced promotion flag (by
default the calendar decides). The page keeps two of them — A (the one being
explored) and B (the reference) — plus the shopper, k and the models, and all of
it travels in the URL's query parameters (`to_query_params` / `from_query_params`),
so a copied link opens the exact same view.

Comparisons are pure functions over rankings: rank-change arrows of A's list
against B's full ranking, items entering and leaving the list from B to A, the
overlap of two models' lists, and a 24-hour sweep frame built from ONE batched
scoring call (`hour_sweep`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from recsys_core.features import Calendar

PROMO_CHOICES = ("auto", "on", "off")  # auto = the calendar decides
K_RANGE = (1, 50)
DEFAULT_K = 10
SWEEP_MAX_ITEMS = 10


# --- a scenario --------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioSpec:
    """When and where a push happens, as the page edits it. ``day`` + ``hour``:``minute`` is LOCAL time
    in the data's timezone; ``promo`` is "auto" (the calendar), "on" or "off"."""

    day: dt.date
    hour: int
    minute: int = 0
    device: str = "mobile"
    channel: str = "home_feed"
    location: str = "home"
    promo: str = "auto"

    def __post_init__(self) -> None:
        if not 0 <= int(self.hour) <= 23:
            raise ValueError(f"hour must be 0..23, got {self.hour}")
        if not 0 <= int(self.minute) <= 59:
            raise ValueError(f"minute must be 0..59, got {self.minute}")
        if self.promo not in PROMO_CHOICES:
            raise ValueError(f"promo must be one of {list(PROMO_CHOICES)}, got {self.promo!r}")

    @property
    def local_time(self) -> dt.datetime:
        """The naive local moment."""
        return dt.datetime.combine(self.day, dt.time(int(self.hour), int(self.minute)))

    @property
    def promo_override(self) -> bool | None:
        """None when the calendar decides, else the forced promotion flag."""
        return None if self.promo == "auto" else self.promo == "on"

    def at_hour(self, hour: int) -> "ScenarioSpec":
        return replace(self, hour=int(hour))

    def key(self) -> tuple:
        """A hashable, cache-friendly identity of plain values (`from_key` rebuilds the spec)."""
        return (self.day.isoformat(), int(self.hour), int(self.minute), self.device, self.channel, self.location, self.promo)

    @classmethod
    def from_key(cls, key: tuple) -> "ScenarioSpec":
        day, *rest = key
        return cls(dt.date.fromisoformat(day), *rest)


@dataclass(frozen=True)
class DayFlags:
    """What the calendar says about a local day."""

    weekday: int  # 0 = Monday
    weekend: bool
    holiday: bool
    promo: bool


def day_flags(day: dt.date, calendar: Calendar) -> DayFlags:
    return DayFlags(day.weekday(), day.weekday() >= 5, calendar.is_holiday(day), calendar.is_promo(day))


def effective_promo(spec: ScenarioSpec, calendar: Calendar) -> bool:
    """The promotion flag the model sees: the override when set, else the calendar's."""
    override = spec.promo_override
    return calendar.is_promo(spec.day) if override is None else override


def to_utc(local_time: dt.datetime, timezone: str) -> dt.datetime:
    """Naive local time in ``timezone`` → naive UTC (how the store keeps time)."""
    from zoneinfo import ZoneInfo

    aware = local_time.replace(tzinfo=ZoneInfo(timezone))
    return aware.astimezone(dt.timezone.utc).replace(tzinfo=None)


# --- presets ------------------------------------------------------------------------------


def _on_or_after(day: dt.date, ok: Callable[[dt.date], bool]) -> dt.date:
    for n in range(14):
        candidate = day + dt.timedelta(days=n)
        if ok(candidate):
            return candidate
    return day


def _weekday(calendar: Calendar) -> Callable[[dt.date], bool]:
    return lambda d: d.weekday() < 5 and not calendar.is_promo(d) and not calendar.is_holiday(d)


def _double_eleven(day: dt.date) -> dt.date:
    """The latest 11.11 on or before ``day`` (the sales day a merchandiser most likely looks back at)."""
    this_year = dt.date(day.year, 11, 11)
    return this_year if this_year <= day else dt.date(day.year - 1, 11, 11)


@dataclass(frozen=True)
class Preset:
    """A named scenario built from a reference day (the page's "today")."""

    key: str  # i18n key suffix: scenario.preset.<key>
    build: Callable[[dt.date, Calendar], ScenarioSpec]


PRESETS: tuple[Preset, ...] = (
    Preset(
        "commute",
        lambda d, cal: ScenarioSpec(_on_or_after(d, _weekday(cal)), 8, 0, "mobile", "push", "commute"),
    ),
    Preset(
        "office",
        lambda d, cal: ScenarioSpec(_on_or_after(d, _weekday(cal)), 14, 0, "pc", "search", "office"),
    ),
    Preset(
        "evening_home",
        lambda d, cal: ScenarioSpec(_on_or_after(d, _weekday(cal)), 20, 30, "mobile", "live_stream", "home"),
    ),
    Preset(
        "saturday",
        lambda d, cal: ScenarioSpec(_on_or_after(d, lambda x: x.weekday() == 5), 15, 0, "mobile", "home_feed", "city"),
    ),
    Preset(
        "double11",
        lambda d, cal: ScenarioSpec(_double_eleven(d), 0, 5, "mobile", "home_feed", "home"),
    ),
)
PRESET_KEYS = tuple(p.key for p in PRESETS)


def preset(key: str, reference_day: dt.date, calendar: Calendar) -> ScenarioSpec:
    """The scenario of preset ``key`` for a reference day; an unknown key names the known ones."""
    for p in PRESETS:
        if p.key == key:
            return p.build(reference_day, calendar)
    raise ValueError(f"unknown preset {key!r}; choose from {list(PRESET_KEYS)}")


# --- what the URL holds ---------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioState:
    """Everything the Scenario page shows, as it travels in the URL.

    ``model`` / ``model_b`` are model folder names (``model_b`` empty = no side-by-side model).
    """

    user_id: str
    a: ScenarioSpec
    b: ScenarioSpec
    k: int = DEFAULT_K
    model: str = ""
    model_b: str = ""
    exclude_seen: bool = False

    def key(self) -> tuple:
        return (self.user_id, self.a.key(), self.b.key(), self.k, self.model, self.model_b, self.exclude_seen)


@dataclass(frozen=True)
class Choices:
    """The values a decoded URL may hold: anything else falls back to the defaults (and is reported)."""

    devices: Sequence[str]
    channels: Sequence[str]
    locations: Sequence[str]
    models: Sequence[str] = ()
    first_day: dt.date | None = None
    last_day: dt.date | None = None


def _spec_params(spec: ScenarioSpec, prefix: str) -> dict[str, str]:
    return {
        f"{prefix}at": f"{spec.day.isoformat()}T{int(spec.hour):02d}:{int(spec.minute):02d}",
        f"{prefix}device": spec.device,
        f"{prefix}channel": spec.channel,
        f"{prefix}location": spec.location,
        f"{prefix}promo": spec.promo,
    }


def to_query_params(state: ScenarioState) -> dict[str, str]:
    """URL query parameters of a page state (all strings; stable names, see `from_query_params`)."""
    params = {"user": state.user_id, **_spec_params(state.a, ""), **_spec_params(state.b, "ref_"), "k": str(state.k)}
    if state.model:
        params["model"] = state.model
    if state.model_b:
        params["model_b"] = state.model_b
    if state.exclude_seen:
        params["unseen"] = "1"
    return params


def _decode_spec(params: Mapping[str, str], prefix: str, default: ScenarioSpec, choices: Choices, problems: list[str]) -> ScenarioSpec:
    spec = default
    raw_at = params.get(f"{prefix}at")
    if raw_at:
        try:
            at = dt.datetime.fromisoformat(raw_at)
            day = at.date()
            if (choices.first_day and day < choices.first_day) or (choices.last_day and day > choices.last_day):
                problems.append(f"{prefix}at")
            else:
                spec = replace(spec, day=day, hour=at.hour, minute=at.minute)
        except ValueError:
            problems.append(f"{prefix}at")
    for name, allowed in (("device", choices.devices), ("channel", choices.channels), ("location", choices.locations)):
        value = params.get(f"{prefix}{name}")
        if value is None:
            continue
        if value in allowed:
            spec = replace(spec, **{name: value})
        else:
            problems.append(f"{prefix}{name}")
    promo = params.get(f"{prefix}promo")
    if promo is not None:
        if promo in PROMO_CHOICES:
            spec = replace(spec, promo=promo)
        else:
            problems.append(f"{prefix}promo")
    return spec


def from_query_params(params: Mapping[str, str], default: ScenarioState, choices: Choices) -> tuple[ScenarioState, list[str]]:
    """Decode a URL's parameters over ``default``; returns (state, names of parameters that were ignored).

    Never raises on bad input: a link edited by hand or made for another database
    falls back field by field, and the page says which parameters it ignored.
    The shopper id is taken as given (whether it exists is the page's question).
    """
    problems: list[str] = []
    state = replace(default, a=_decode_spec(params, "", default.a, choices, problems),
                    b=_decode_spec(params, "ref_", default.b, choices, problems))
    user = params.get("user")
    if user is not None and user.strip():
        state = replace(state, user_id=user.strip())
    raw_k = params.get("k")
    if raw_k is not None:
        try:
            k = int(raw_k)
            if not K_RANGE[0] <= k <= K_RANGE[1]:
                raise ValueError(raw_k)
            state = replace(state, k=k)
        except ValueError:
            problems.append("k")
    for name in ("model", "model_b"):
        value = params.get(name)
        if value is None:
            continue
        if value in choices.models or (name == "model_b" and value == ""):
            state = replace(state, **{name: value})
        else:
            problems.append(name)
    if "unseen" in params:
        state = replace(state, exclude_seen=params["unseen"] in ("1", "true", "yes"))
    return state, problems


# --- comparing rankings --------------------------------------------------------------------


def ranks_from_scores(scores: np.ndarray) -> np.ndarray:
    """Rank of every column in each row (1 = best): 1 + how many columns score strictly higher.

    Ties share the better rank; -inf columns (padding, excluded items) rank last.
    scores: (S, N) → ranks (S, N) int64.
    """
    neg = -np.asarray(scores, dtype=np.float64)
    assert neg.ndim == 2, f"scores must be (S, N), got shape {neg.shape}"
    ascending = np.sort(neg, axis=1)  # best first
    # how many score strictly higher = where the value first appears in the best-first order
    return np.stack([np.searchsorted(ascending[i], neg[i], side="left") for i in range(len(neg))]).astype(np.int64) + 1


def rank_arrow(rank: int, ref_rank: int | None) -> str:
    """▲n when the item ranks n places higher than in the reference, ▼n lower, = unchanged, ★ new."""
    if ref_rank is None or pd.isna(ref_rank):
        return "★"
    delta = int(ref_rank) - int(rank)
    if delta > 0:
        return f"▲{delta:,}"
    if delta < 0:
        return f"▼{-delta:,}"
    return "="


def with_rank_changes(top: pd.DataFrame, ref_ranks: Mapping[str, int]) -> pd.DataFrame:
    """Add ``ref_rank``, ``rank_change`` (positive = higher than in the reference) and ``arrow`` to a top-k frame."""
    out = top.copy()
    ref = [ref_ranks.get(str(i)) for i in out["item_id"]]
    out["ref_rank"] = pd.array(ref, dtype="Int64")
    out["rank_change"] = out["ref_rank"] - out["rank"]
    out["arrow"] = [rank_arrow(r, rr) for r, rr in zip(out["rank"], ref)]
    return out


@dataclass(frozen=True)
class ListChange:
    """From the reference list B to list A: what enters, what leaves, what stays (in list order)."""

    entering: list[str]
    leaving: list[str]
    staying: list[str] = field(default_factory=list)


def list_change(a_items: Sequence[str], b_items: Sequence[str]) -> ListChange:
    a, b = [str(i) for i in a_items], [str(i) for i in b_items]
    sa, sb = set(a), set(b)
    return ListChange([i for i in a if i not in sb], [i for i in b if i not in sa], [i for i in a if i in sb])


@dataclass(frozen=True)
class Overlap:
    """Agreement of two top-k lists."""

    common: list[str]
    only_a: list[str]
    only_b: list[str]
    share: float  # |common| / max(|a|, |b|): the overlap@k
    jaccard: float


def overlap(a_items: Sequence[str], b_items: Sequence[str]) -> Overlap:
    a, b = [str(i) for i in a_items], [str(i) for i in b_items]
    sa, sb = set(a), set(b)
    common = [i for i in a if i in sb]
    union = len(sa | sb)
    return Overlap(
        common,
        [i for i in a if i not in sb],
        [i for i in b if i not in sa],
        len(common) / max(len(sa), len(sb)) if union else 1.0,
        len(common) / union if union else 1.0,
    )


# --- the 24-hour sweep ---------------------------------------------------------------------


def sweep_specs(spec: ScenarioSpec) -> list[ScenarioSpec]:
    """The scenario at every hour 0..23, everything else unchanged."""
    return [spec.at_hour(h) for h in range(24)]


def sweep_frame(scores: np.ndarray, columns: Mapping[str, int], item_ids: Sequence[str]) -> pd.DataFrame:
    """Long frame (hour, item_id, rank) of ``item_ids``' ranks in the 24 rows of ``scores``.

    scores: (24, N) — row h is the scenario at hour h; ``columns`` maps item id → column of ``scores``.
    """
    s = np.asarray(scores)
    assert s.shape[0] == 24, f"a sweep needs 24 rows (hours 0..23), got {s.shape[0]}"
    ranks = ranks_from_scores(s)  # (24, N)
    rows = [
        {"hour": h, "item_id": str(item), "rank": int(ranks[h, columns[str(item)]])}
        for item in item_ids
        for h in range(24)
    ]
    return pd.DataFrame(rows, columns=["hour", "item_id", "rank"])


def hour_sweep(score_scenarios: Callable[[list[Any]], tuple[np.ndarray, Mapping[str, int]]],
               to_scenario: Callable[[ScenarioSpec], Any], spec: ScenarioSpec, item_ids: Sequence[str]) -> pd.DataFrame:
    """Ranks of ``item_ids`` at every hour of ``spec``'s day, from ONE batched scoring call.

    ``score_scenarios(scenarios) -> (scores (S, N), item id → column)`` scores one shopper under S
    scenarios at once; ``to_scenario`` turns a spec into what it takes.
    """
    scores, columns = score_scenarios([to_scenario(s) for s in sweep_specs(spec)])
    return sweep_frame(scores, columns, list(item_ids)[:SWEEP_MAX_ITEMS])
