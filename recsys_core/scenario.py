"""The Scenario page's logic, independent of any UI: page state, presets, shareable URLs, comparisons, pushes.

A scenario is a `context.Scenario`: a local moment, the scene values of the data's scene fields and
optionally a forced promotion flag. The page keeps two of them — A (the one being explored) and B
(the reference) — plus the shopper, k and the models, and all of it travels in the URL's query
parameters (`to_query_params` / `from_query_params`): ``at``, one parameter per scene field named
like the field (``ref_`` + name for B), ``promo``. Scene fields are data, so nothing here names one.

Comparisons are pure functions over rankings: rank-change arrows of A's list against B's full
ranking, items entering and leaving the list from B to A, the overlap of two models' lists, and the
frame of a 24-hour sweep (`recommend.hour_sweep` scores it in one batch). `plan_push` / `push_list`
are the push wiring the page calls: what is new, what was already pushed, what a daily cap holds back;
`store_push` answers at once and `attach_reasons_later` adds the reasons (the slow part) afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, ContextManager, Mapping, Sequence

import numpy as np
import pandas as pd

from recsys_core.context import PROMO_CHOICES, Scenario
from recsys_core.features import Calendar

log = logging.getLogger(__name__)
K_RANGE = (1, 50)
DEFAULT_K = 10
SWEEP_MAX_ITEMS = 10
PRESETS_FILE = Path(__file__).resolve().parents[1] / "sample_data" / "presets.json"
# URL parameters with a fixed meaning; a scene field named like one travels as "scene_<name>".
FIXED_PARAMS = frozenset({"user", "item", "at", "promo", "k", "model", "model_b", "unseen", "lang", "push", "cap"})


# --- the calendar ------------------------------------------------------------------------


@dataclass(frozen=True)
class DayFlags:
    """What the calendar says about a local day."""

    weekday: int  # 0 = Monday
    weekend: bool
    holiday: bool
    promo: bool


def day_flags(day: dt.date, calendar: Calendar) -> DayFlags:
    return DayFlags(day.weekday(), day.weekday() >= 5, calendar.is_holiday(day), calendar.is_promo(day))


# --- presets --------------------------------------------------------------------------------


def _on_or_after(day: dt.date, ok: Callable[[dt.date], bool]) -> dt.date:
    for n in range(14):
        candidate = day + dt.timedelta(days=n)
        if ok(candidate):
            return candidate
    return day


def _double_eleven(day: dt.date) -> dt.date:
    """The latest 11.11 on or before ``day`` (the sales day a merchandiser most likely looks back at)."""
    this_year = dt.date(day.year, 11, 11)
    return this_year if this_year <= day else dt.date(day.year - 1, 11, 11)


# How a preset picks its day from the page's reference day ("today").
DAY_RULES: dict[str, Callable[[dt.date, Calendar], dt.date]] = {
    "weekday": lambda d, cal: _on_or_after(d, lambda x: x.weekday() < 5 and not cal.is_promo(x) and not cal.is_holiday(x)),
    "saturday": lambda d, cal: _on_or_after(d, lambda x: x.weekday() == 5),
    "double11": lambda d, cal: _double_eleven(d),
}


@dataclass(frozen=True)
class Preset:
    """A named scenario: a day rule, a local time, and the scene values it sets (field → value)."""

    key: str  # label: scenario.preset.<key> in i18n, else `labels`
    day: str
    hour: int
    minute: int = 0
    scene: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.day not in DAY_RULES:
            raise ValueError(f"preset {self.key!r}: unknown day rule {self.day!r}; choose from {sorted(DAY_RULES)}")
        Scenario.local(dt.date(2025, 1, 1), self.hour, self.minute)  # validates hour and minute

    def build(self, reference_day: dt.date, calendar: Calendar, base: Scenario | None = None) -> Scenario:
        """The preset's scenario for a reference day; scene fields it does not name keep ``base``'s values."""
        scene = {**(base.scene if base else {}), **dict(self.scene)}
        return Scenario.local(DAY_RULES[self.day](reference_day, calendar), self.hour, self.minute, scene)


def load_presets(path: str | Path = PRESETS_FILE) -> tuple[Preset, ...]:
    """Presets from a JSON file (``{"presets": [{"key", "day", "hour", "minute", "scene", "labels"}]}``);
    none when the file is absent. A malformed entry is an error naming it."""
    path = Path(path)
    if not path.is_file():
        return ()
    out = []
    for n, p in enumerate(json.loads(path.read_text(encoding="utf-8")).get("presets", [])):
        try:
            out.append(Preset(str(p["key"]), str(p["day"]), int(p["hour"]), int(p.get("minute", 0)),
                              tuple(sorted((str(k), str(v)) for k, v in (p.get("scene") or {}).items())),
                              tuple(sorted((p.get("labels") or {}).items()))))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: preset {n + 1}: {exc}") from exc
    return tuple(out)


PRESETS: tuple[Preset, ...] = load_presets()
PRESET_KEYS = tuple(p.key for p in PRESETS)


def presets_for(scene_values: Mapping[str, Sequence[str]], presets: Sequence[Preset] = PRESETS) -> list[Preset]:
    """The presets this data can show: a preset naming a scene field the data lacks is hidden."""
    return [p for p in presets if all(f in scene_values for f, _ in p.scene)]


def preset(key: str, reference_day: dt.date, calendar: Calendar, base: Scenario | None = None,
           scene_values: Mapping[str, Sequence[str]] | None = None, presets: Sequence[Preset] = PRESETS) -> Scenario:
    """The scenario of preset ``key`` for a reference day, over ``base``. With ``scene_values`` (the data's
    values per field) a preset value this data lacks is dropped: the field keeps ``base``'s value."""
    for p in presets:
        if p.key == key:
            out = p.build(reference_day, calendar, base)
            if scene_values is None:
                return out
            keep = {f: v for f, v in out.scene.items() if f in scene_values and v in scene_values[f]}
            for f, v in (base.scene if base else {}).items():
                keep.setdefault(f, v)
            return Scenario(out.at, keep, out.promo_override)
    raise ValueError(f"unknown preset {key!r}; choose from {[p.key for p in presets]}")


# --- what the URL holds ---------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioState:
    """Everything the Scenario page shows, as it travels in the URL.

    ``model`` / ``model_b`` are model folder keys (``model_b`` empty = no side-by-side model).
    """

    user_id: str
    a: Scenario
    b: Scenario
    k: int = DEFAULT_K
    model: str = ""
    model_b: str = ""
    exclude_seen: bool = False

    def key(self) -> tuple:
        return (self.user_id, self.a.key(), self.b.key(), self.k, self.model, self.model_b, self.exclude_seen)


@dataclass(frozen=True)
class Choices:
    """The values a decoded URL may hold: anything else falls back to the defaults (and is reported).

    ``scene``: the data's scene fields and their values (a field with one value still decodes)."""

    scene: Mapping[str, Sequence[str]] = field(default_factory=dict)
    models: Sequence[str] = ()
    first_day: dt.date | None = None
    last_day: dt.date | None = None


def scene_param(name: str, prefix: str = "") -> str:
    """The URL parameter of a scene field: its name (``scene_<name>`` when that name has a fixed meaning)."""
    return prefix + (f"scene_{name}" if name in FIXED_PARAMS else name)


def scenario_params(s: Scenario, prefix: str = "") -> dict[str, str]:
    """``at`` (local, minutes), one parameter per scene value, ``promo`` — with ``prefix`` for B."""
    params = {f"{prefix}at": s.at.strftime("%Y-%m-%dT%H:%M")}
    params.update({scene_param(f, prefix): v for f, v in s.scene_items})
    params[f"{prefix}promo"] = s.promo
    return params


def to_query_params(state: ScenarioState) -> dict[str, str]:
    """URL query parameters of a page state (all strings; stable names, see `from_query_params`)."""
    params = {"user": state.user_id, **scenario_params(state.a), **scenario_params(state.b, "ref_"), "k": str(state.k)}
    if state.model:
        params["model"] = state.model
    if state.model_b:
        params["model_b"] = state.model_b
    if state.exclude_seen:
        params["unseen"] = "1"
    return params


def decode_scenario(params: Mapping[str, str], prefix: str, default: Scenario, choices: Choices,
                    problems: list[str]) -> Scenario:
    """One scenario from URL parameters over ``default``; names of rejected parameters go to ``problems``."""
    at, scene, promo = default.at, default.scene, default.promo_override
    raw_at = params.get(f"{prefix}at")
    if raw_at:
        try:
            parsed = dt.datetime.fromisoformat(raw_at).replace(tzinfo=None, second=0, microsecond=0)
            day = parsed.date()
            if (choices.first_day and day < choices.first_day) or (choices.last_day and day > choices.last_day):
                problems.append(f"{prefix}at")
            else:
                at = parsed
        except ValueError:
            problems.append(f"{prefix}at")
    for name, allowed in choices.scene.items():
        key = scene_param(name, prefix)
        value = params.get(key)
        if value is None:
            continue
        if value in allowed:
            scene[name] = value
        else:
            problems.append(key)
    raw_promo = params.get(f"{prefix}promo")
    if raw_promo is not None:
        if raw_promo in PROMO_CHOICES:
            promo = None if raw_promo == "auto" else raw_promo == "on"
        else:
            problems.append(f"{prefix}promo")
    return Scenario(at, scene, promo)


def from_query_params(params: Mapping[str, str], default: ScenarioState, choices: Choices) -> tuple[ScenarioState, list[str]]:
    """Decode a URL's parameters over ``default``; returns (state, names of parameters that were ignored).

    Never raises on bad input: a link edited by hand or made for another database
    falls back field by field, and the page says which parameters it ignored.
    The shopper id is taken as given (whether it exists is the page's question).
    """
    problems: list[str] = []
    state = replace(default, a=decode_scenario(params, "", default.a, choices, problems),
                    b=decode_scenario(params, "ref_", default.b, choices, problems))
    user = params.get("user")
    if user is not None and user.strip():
        state = replace(state, user_id=user.strip())
    raw_k = params.get("k")
    if raw_k is not None:
        k = parse_k(raw_k)
        if k is None:
            problems.append("k")
        else:
            state = replace(state, k=k)
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


def parse_k(raw: Any) -> int | None:
    """k from text or a number when it is a whole number in `K_RANGE`, else None."""
    try:
        value = float(str(raw).strip())
    except ValueError:
        return None
    if not value.is_integer():
        return None
    k = int(value)
    return k if K_RANGE[0] <= k <= K_RANGE[1] else None


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


def sweep_frame(scores: np.ndarray, columns: Mapping[str, int], item_ids: Sequence[str]) -> pd.DataFrame:
    """Long frame (hour, item_id, rank) of ``item_ids``' ranks in the 24 rows of ``scores``
    (row h = the scenario at hour h; ``columns``: item id → column). `recommend.hour_sweep` scores it."""
    s = np.asarray(scores)
    assert s.shape[0] == 24, f"a sweep needs 24 rows (hours 0..23), got {s.shape[0]}"
    ranks = ranks_from_scores(s)  # (24, N)
    rows = [
        {"hour": h, "item_id": str(item), "rank": int(ranks[h, columns[str(item)]])}
        for item in item_ids
        for h in range(24)
    ]
    return pd.DataFrame(rows, columns=["hour", "item_id", "rank"])


# --- pushes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushPlan:
    """What pressing "Push these" would store: ``new`` (rows of the list not pushed yet, within the cap),
    ``already`` (item → when it was logged, for items this shopper × moment × model already got) and
    ``capped`` (items held back by the daily cap; ``pushed_today`` pushes were logged that local day)."""

    new: pd.DataFrame
    already: dict[str, Any]
    capped: list[str]
    pushed_today: int
    cap: int | None


def plan_push(con: Any, loaded_model: Any, user_id: str, scenario: Scenario, top: pd.DataFrame,
              daily_cap: int | None = None) -> PushPlan:
    """Split a list into what a push would store now, what was already pushed and what a daily cap
    (pushes per shopper per local day; None = no cap) holds back. Reads only."""
    from recsys_core.push import already_pushed
    from recsys_core.store.pushes import pushes_on_day

    done = already_pushed(con, loaded_model, user_id, scenario, top["item_id"].astype(str).tolist())
    fresh = top[~top["item_id"].astype(str).isin(list(done))]
    today = pushes_on_day(con, user_id, scenario.day)
    capped: list[str] = []
    if daily_cap is not None:
        room = max(0, int(daily_cap) - today)
        capped = fresh["item_id"].astype(str).tolist()[room:]
        fresh = fresh.head(room)
    return PushPlan(fresh.reset_index(drop=True), done, capped, today, daily_cap)


def store_push(con: Any, loaded_model: Any, user_id: str, scenario: Scenario, plan: PushPlan,
               reasons: Sequence[Any] | None = None) -> list[str]:
    """Write the plan's new pushes (with ``reasons`` when already computed) in one transaction on a writable
    ``con``; the ids stored. Pushes that appeared meanwhile are skipped by `push.record_pushes`."""
    from recsys_core.push import record_pushes

    if plan.new.empty:
        return []
    return record_pushes(con, loaded_model, user_id, scenario, plan.new[["item_id", "rank", "score"]], reasons)


def attach_reasons(read: Callable[[], ContextManager[Any]], write: Callable[[], ContextManager[Any]], loaded_model: Any,
                   user_id: str, scenario: Scenario, push_ids: Sequence[str], k: int) -> int:
    """Compute the reasons of logged pushes (one batched pass, `push.reasons_at_push_time`) and attach them
    to the pushes that have none; returns how many got reasons. ``read`` / ``write`` open a read cursor
    and a short writable connection. This is the slow half of a push, run after answering."""
    from recsys_core.push import reasons_at_push_time
    from recsys_core.store.push_reasons import set_push_reasons
    from recsys_core.store.pushes import get_pushes

    from recsys_core.models.router import routed

    if not push_ids or not routed(loaded_model, scenario).explainable:  # a router: its member for this moment
        return 0
    with read() as cur:
        rows = get_pushes(cur, list(push_ids)).sort_values("rank")
        reasons = reasons_at_push_time(cur, loaded_model, user_id, scenario, rows[["item_id", "rank", "score"]], k=k)
    if not reasons:
        return 0
    texts = {pid: json.dumps(r, ensure_ascii=False, default=str) for pid, r in zip(rows["push_id"], reasons)}
    with write() as con:
        return set_push_reasons(con, texts)


def attach_reasons_later(*args: Any, **kwargs: Any) -> threading.Thread:
    """`attach_reasons` in a background thread (started; join it to wait). Failures are logged, never raised
    into the page that answered."""
    def run() -> None:
        try:
            n = attach_reasons(*args, **kwargs)
            log.info("attached reasons to %d pushes", n)
        except Exception:  # noqa: BLE001 — the pushes stand; a review shows them without reasons
            log.exception("computing the reasons of pushes failed")

    worker = threading.Thread(target=run, name="push-reasons", daemon=True)
    worker.start()
    return worker
