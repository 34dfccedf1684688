"""The context schema and the one scenario type: when and where a push happens.

Time fields are derived from the moment (hour, weekday, weekend, holiday, promotion day, time since
the shopper's previous event) and are the same for every data set. Scene fields are data: a list of
named categorical fields kept with the events in the database (`store.scene`) and recorded in every
model folder — name, labels per language where known, whether the value is known when a push is
decided, and (in the model) the vocabulary. The sample world's device, channel and location are three
ordinary entries; an import adds any other column (`import ... --scene store_id`).

`Scenario` is the moment plus the scene values, used by recommend, scenario, explain, push, the CLI,
the API and the pages. `to_utc` / `to_local` are the one local↔UTC conversion and `promo_flag` the one
promotion-day rule.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping
from zoneinfo import ZoneInfo

UNKNOWN = "unknown"
# Derived from the moment; every model may read them (the target context's `gap` needs the shopper's history).
TIME_FIELDS = ("hour", "weekday", "weekend", "holiday", "promo", "gap")
# Names a scene field may not take: the event's own fields, time fields and model inputs.
RESERVED_NAMES = frozenset(
    {"user", "user_id", "item", "item_id", "behavior", "behaviour", "ts", "seq", "source_run", "event_id", "category",
     "price", "price_band", "local_ts", "title", "rating", *TIME_FIELDS}
)
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
PROMO_CHOICES = ("auto", "on", "off")  # auto = the calendar decides


def check_field_name(name: str) -> str:
    """A scene field name is a lower-case identifier (it becomes a column) and not a reserved name."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(f"scene field name {name!r} must be lower-case letters, digits and _ (starting with a letter, ≤ 32 characters)")
    if name in RESERVED_NAMES:
        raise ValueError(f"scene field name {name!r} is reserved; choose another (e.g. --scene my_{name}={name})")
    return name


@dataclass(frozen=True)
class SceneField:
    """One categorical scene field of the data: its name, its labels and whether it is known at decision time.

    ``known_at_decision`` is False for a field whose value is only known once the shopper acts — e.g. the
    app surface a shopper arrives on, which for a push notification is the push itself. Models read such
    fields from past events but not in the target context by default (`train --context`).
    """

    name: str
    label_en: str = ""
    label_zh: str = ""
    known_at_decision: bool = True
    aliases: tuple[str, ...] = field(default=(), compare=False)  # header names taken as this field on import

    def __post_init__(self) -> None:
        check_field_name(self.name)

    def label(self, lang: str = "en") -> str:
        text = self.label_zh if lang == "zh" else self.label_en
        return text or self.label_en or self.name.replace("_", " ").capitalize()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "labels": {"en": self.label_en, "zh": self.label_zh}, "known_at_decision": self.known_at_decision}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SceneField":
        labels = d.get("labels") or {}
        return cls(str(d["name"]), labels.get("en", ""), labels.get("zh", ""), bool(d.get("known_at_decision", True)))


# Scene fields with a known meaning: labels in both languages, decision-time status and import aliases.
# Any other field gets its name as label and is taken as known at decision time.
WELL_KNOWN: dict[str, SceneField] = {
    f.name: f
    for f in (
        SceneField("device", "Device", "设备"),
        SceneField("channel", "Channel", "渠道", known_at_decision=False),
        SceneField("location", "Location", "地点", aliases=("city",)),
    )
}


def scene_field(name: str, known_at_decision: bool | None = None) -> SceneField:
    """The schema entry for a field name: the well-known one when there is one."""
    base = WELL_KNOWN.get(name) or SceneField(check_field_name(name))
    return base if known_at_decision is None else replace(base, known_at_decision=bool(known_at_decision))


# --- time ---------------------------------------------------------------------------------------------


def to_utc(at: dt.datetime, timezone: str) -> dt.datetime:
    """Naive UTC of a moment: aware times are converted, naive ones are local time in ``timezone``."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=ZoneInfo(timezone))
    return aware.astimezone(dt.timezone.utc).replace(tzinfo=None)


def to_local(at: dt.datetime, timezone: str, naive_is_utc: bool = False) -> dt.datetime:
    """Naive local time in ``timezone`` of a moment (aware; or naive, read as local unless ``naive_is_utc``)."""
    if at.tzinfo is None:
        if not naive_is_utc:
            return at
        at = at.replace(tzinfo=dt.timezone.utc)
    return at.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)


def parse_moment(text: str, timezone: str) -> dt.datetime:
    """ISO 8601 → aware datetime; without an offset it is read in ``timezone``."""
    try:
        at = dt.datetime.fromisoformat(str(text))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 time (e.g. 2025-11-11T08:00 or 2025-11-11T08:00+08:00)") from exc
    return at if at.tzinfo else at.replace(tzinfo=ZoneInfo(timezone))


def promo_flag(day: dt.date, calendar: Any, override: bool | None = None) -> bool:
    """Whether the model sees a promotion day: the override when set, else the calendar's promotion days."""
    return calendar.is_promo(day) if override is None else bool(override)


# --- the scenario -------------------------------------------------------------------------------------


@dataclass(frozen=True, init=False)
class Scenario:
    """When and where a push happens.

    at: the moment; timezone-aware, or naive = local time of the data's timezone.
    scene: scene field → value (a field left out, None, or an unseen value is unknown).
    promo_override: force the promotion-day flag on/off (None = the calendar decides).
    Hashable (the scene is kept as sorted pairs), so it can key caches.
    """

    at: dt.datetime
    scene_items: tuple[tuple[str, str], ...]
    promo_override: bool | None

    def __init__(self, at: dt.datetime, scene: Mapping[str, Any] | None = None, promo_override: bool | None = None):
        if not isinstance(at, dt.datetime):
            raise TypeError(f"Scenario.at must be a datetime, got {type(at).__name__}")
        pairs = tuple(sorted((str(k), str(v)) for k, v in (scene or {}).items() if v is not None and str(v) != ""))
        object.__setattr__(self, "at", at)
        object.__setattr__(self, "scene_items", pairs)
        object.__setattr__(self, "promo_override", None if promo_override is None else bool(promo_override))

    @property
    def scene(self) -> dict[str, str]:
        return dict(self.scene_items)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of one scene field (``default`` when the scenario does not set it)."""
        return self.scene.get(name, default)

    # local wall-clock parts, as the Scenario page edits them (naive `at` = local)
    @property
    def day(self) -> dt.date:
        return self.at.date()

    @property
    def hour(self) -> int:
        return self.at.hour

    @property
    def minute(self) -> int:
        return self.at.minute

    @property
    def promo(self) -> str:
        """"auto", "on" or "off" (what the page and the URL show)."""
        return "auto" if self.promo_override is None else ("on" if self.promo_override else "off")

    def local_time(self, timezone: str) -> dt.datetime:
        return to_local(self.at, timezone)

    def utc(self, timezone: str) -> dt.datetime:
        return to_utc(self.at, timezone)

    def replace(self, at: dt.datetime | None = None, promo_override: Any = "keep", **scene: Any) -> "Scenario":
        """A copy with another moment, promotion override and/or scene values (None removes a field)."""
        values = self.scene
        for k, v in scene.items():
            if v is None:
                values.pop(k, None)
            else:
                values[k] = v
        promo = self.promo_override if promo_override == "keep" else promo_override
        return Scenario(self.at if at is None else at, values, promo)

    def at_hour(self, hour: int, minute: int = 0) -> "Scenario":
        """The same scenario at another hour of the same (local) day."""
        return self.replace(at=self.at.replace(hour=int(hour), minute=int(minute), second=0, microsecond=0))

    def key(self) -> tuple:
        """Plain values identifying the scenario (cache keys); `from_key` rebuilds it."""
        return (self.at.isoformat(), self.scene_items, self.promo_override)

    @classmethod
    def from_key(cls, key: tuple) -> "Scenario":
        at, pairs, promo = key
        return cls(dt.datetime.fromisoformat(at), dict(pairs), promo)

    @classmethod
    def local(cls, day: dt.date, hour: int, minute: int = 0, scene: Mapping[str, Any] | None = None, promo: str = "auto") -> "Scenario":
        """A scenario from local wall-clock parts; ``promo`` is "auto", "on" or "off"."""
        if not 0 <= int(hour) <= 23:
            raise ValueError(f"hour must be 0..23, got {hour}")
        if not 0 <= int(minute) <= 59:
            raise ValueError(f"minute must be 0..59, got {minute}")
        if promo not in PROMO_CHOICES:
            raise ValueError(f"promo must be one of {list(PROMO_CHOICES)}, got {promo!r}")
        return cls(dt.datetime.combine(day, dt.time(int(hour), int(minute))), scene, None if promo == "auto" else promo == "on")

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "scene": self.scene, "promo_override": self.promo_override}

    def __repr__(self) -> str:
        return f"Scenario({self.at.isoformat()}, {self.scene}, promo_override={self.promo_override})"


def parse_scene_args(pairs: list[str] | None, **shorthands: str | None) -> dict[str, str]:
    """``NAME=VALUE`` strings (CLI ``--scene``) plus shorthand options (``device=...``) → a scene dict."""
    scene = {k: v for k, v in shorthands.items() if v}
    for entry in pairs or []:
        name, eq, value = str(entry).partition("=")
        name = name.strip().lower()
        if not eq or not name:
            raise ValueError(f"--scene {entry!r}: expected NAME=VALUE, e.g. --scene device=mobile")
        check_field_name(name)
        scene[name] = value.strip()
    return scene
