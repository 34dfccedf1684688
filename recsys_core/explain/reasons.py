"""A plain-language reason for a recommendation, in English and Chinese, built from the explanation.

One function, `build_reason`, writes the sentence that the Why page, the stored push, the CLI and
the API all show. It names the Shapley group (`shapley.case_groups`) with the largest positive
value of the explained quantity — the item's log-probability over the catalogue — and a second
one when it carries a good share too:

- history groups in the shopper's own terms, counted from the events the model read: this very
  item ("viewed “Nimbus Sports Earphones” 48 times and added it to the cart twice this month"),
  other items of its category ("viewed three coffee items this week"), or the rest of the history;
- the moment: the hour, the weekday, the promotion flag, the time since the latest event, and each
  scene field the model reads (its label from the schema, its value via `i18n.label`).

A shopper who interacted with the item often hears so even when that history is not the main
reason. A counterfactual is cited only when it moves the item across the top-k boundary ("at 07:30
it would rank 14th"). Titles and category names are used, never raw ids (a numeric category reads
"category 1575622"). Words come from `recsys_core.i18n` (keys ``reason.*``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from recsys_core.context import promo_flag, scene_field
from recsys_core.explain.cases import Case
from recsys_core.explain.counterfactuals import ScenarioChange, ScenarioCounterfactuals
from recsys_core.explain.shapley import SCENE_PREFIX, ShapleyValues
from recsys_core.i18n import LANGUAGES, TRANSLATIONS, label, t

BEHAVIOUR_ORDER = ("pv", "fav", "cart", "buy")  # the order a shopper's acts are told in
BEHAVIOUR_STRENGTH = ("buy", "cart", "fav", "pv")  # strongest first
MIN_SHARE = 0.25  # a second group is named when it carries this share of the positive contributions
FREQUENT = 3  # interactions with the item that the reason always mentions


# --- words ----------------------------------------------------------------------------------------


def ordinal(n: int, lang: str) -> str:
    if lang == "zh":
        return f"第 {n:,} 位"
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


def count_words(n: int, lang: str) -> str:
    """Small counts in words ("three" / "三"), larger ones in digits."""
    if lang == "zh":
        return "两" if n == 2 else ("一二三四五六七八九十"[n - 1] if 1 <= n <= 10 else str(n))
    words = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    return words[n - 1] if 1 <= n <= 10 else f"{n:,}"


def times_words(n: int, lang: str) -> str:
    if lang == "zh":
        return f"{n} 次"
    return {1: "once", 2: "twice"}.get(n, f"{count_words(n, lang)} times")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() and value.lower() not in ("nan", "none") else None


def category_name(name: Any, name_zh: Any, lang: str) -> str:
    """A category as a reader sees it: its name (lower case in English), "category 1575622" for a bare id."""
    name = _text(name if not isinstance(name, (int, float)) or pd.isna(name) else str(int(name)))
    zh = _text(name_zh)
    if lang == "zh" and zh and not zh.isdigit():
        return zh
    if not name:
        return t("reason.unknown_category", lang)
    if name.isdigit():
        return t("reason.category_id", lang, id=name)
    return name if lang == "zh" else " ".join(w if w.isupper() else w.lower() for w in name.split())


def item_name(title: Any, title_zh: Any, lang: str) -> str:
    """The item's title in quotes, or "this item" for data without titles."""
    text = (_text(title_zh) or _text(title)) if lang == "zh" else _text(title)
    return t("reason.title", lang, title=text) if text else t("reason.this_item", lang)


def field_label(field: str, lang: str, features: Any = None) -> str:
    """A scene field's label from the data's schema (the well-known one when the schema has none)."""
    for f in getattr(features, "scene_fields", None) or ():
        if f.name == field:
            return f.label(lang)
    return scene_field(field).label(lang)


def group_label(group: str, lang: str, features: Any = None) -> str:
    """A Shapley group's short label for charts and tables ("History: this item", "Hour", a scene field's label)."""
    if group.startswith(SCENE_PREFIX):
        return field_label(group[len(SCENE_PREFIX):], lang, features)
    key = f"reason.group.{group}"
    return t(key, lang) if key in TRANSLATIONS else group


def scene_phrase(field: str, value: Any, lang: str, features: Any = None, key: str = "reason.scene_value") -> str:
    """A scene value in a sentence: a phrase of its own where i18n has one ("on mobile"), else ``key``
    ("the <field> is <value>") with the schema's label and `i18n.label`."""
    specific = f"reason.{field}.{value}"
    if specific in TRANSLATIONS:
        return t(specific, lang)
    name = field_label(field, lang, features)
    return t(key, lang, field=name if lang == "zh" else name.lower(), value=label(field, value, lang))


HORIZONS = (("day", 1.0), ("week", 7.0), ("month", 31.0))


def _period(case: Case, rows: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """The period a count of ``rows`` can honestly claim, and the rows inside it.

    The smallest of day / week / month that holds every one of ``rows``, provided the events the model
    read reach back that far (or are the shopper's whole history) — so "four times this week" is a
    complete count. Otherwise, or when the moment explained lies before the events (a push planned for
    the past: the model still reads the latest events), "recently", counting the rows the model read.
    """
    first = _days_before(case, rows["ts"].min())
    reach = float("inf") if case.complete_history else _days_before(case, case.events["ts"].min())
    for name, horizon in HORIZONS:
        if 0 <= first <= horizon <= reach:
            return name, rows
    return "recent", rows


def _join(parts: list[str], lang: str) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return t("reason.list_sep", lang).join(parts[:-1]) + t("reason.list_and", lang) + parts[-1]


# --- evidence from the events the model read ------------------------------------------------------------


def _rows(case: Case, positions: Any) -> pd.DataFrame:
    """Event rows of the given batch columns (None = every event)."""
    if positions is None:
        return case.events
    rows = [int(p) - case.offset for p in positions if int(p) >= case.offset]
    return case.events.iloc[rows]


def _days_before(case: Case, ts: Any) -> float:
    moment = pd.Timestamp(case.scenario.utc(case.timezone))
    return (moment - pd.Timestamp(ts)).total_seconds() / 86400


def item_evidence(case: Case) -> dict[str, Any] | None:
    """The shopper's interactions with the case's item in the history the model read: counts per behaviour."""
    ev = case.events
    if not len(ev):
        return None
    mine = ev[ev["item_id"].astype(str) == case.item_id]
    if not len(mine):
        return None
    period, mine = _period(case, mine)
    counts = mine["behavior"].astype(str).value_counts()
    first = mine.iloc[0]
    return {
        "kind": "item",
        "counts": {b: int(counts[b]) for b in BEHAVIOUR_ORDER if b in counts},
        "n": len(mine),
        "period": period,
        "title": _text(first.get("title")),
        "title_zh": _text(first.get("title_zh")),
    }


def category_evidence(case: Case, positions: Any) -> dict[str, Any] | None:
    """Other items of the item's category among ``positions``: how many, the strongest behaviour, when."""
    rows = _rows(case, positions)
    if not len(rows):
        return None
    period, rows = _period(case, rows)
    behaviours = set(rows["behavior"].astype(str))
    behavior = next((b for b in BEHAVIOUR_STRENGTH if b in behaviours), "pv")
    chosen = rows[rows["behavior"].astype(str) == behavior] if behavior in behaviours else rows
    first = chosen.iloc[-1]
    return {
        "kind": "category",
        "behavior": behavior,
        "n": int(chosen["item_id"].nunique()) or 1,
        "events": len(rows),
        "period": period,
        "category": first.get("category"),
        "category_zh": first.get("category_zh"),
        "title": _text(first.get("title")),
        "title_zh": _text(first.get("title_zh")),
    }


def other_evidence(case: Case, positions: Any) -> dict[str, Any] | None:
    """The rest of the history: how many events, and their most frequent category."""
    rows = _rows(case, positions)
    if not len(rows):
        return None
    cats = rows["category"].astype(str)
    top = cats.value_counts().index[0]
    first = rows[cats == top].iloc[0]
    return {"kind": "other", "events": len(rows), "category": first.get("category"), "category_zh": first.get("category_zh")}


def group_evidence(case: Case, shapley: ShapleyValues, group: str) -> dict[str, Any] | None:
    positions = (shapley.positions or {}).get(group)
    if group == "history_item":
        return item_evidence(case)
    if group == "history_category":
        return category_evidence(case, positions)
    if group in ("history_other", "history_items", "history_behaviour", "history_time", "history_scene"):
        return other_evidence(case, positions)
    return None


# --- text -----------------------------------------------------------------------------------------


def _acts(evidence: dict[str, Any], lang: str, obj: str) -> str:
    parts = []
    for i, (behavior, n) in enumerate(evidence["counts"].items()):
        times = times_words(n, lang)
        parts.append(t(f"reason.act.{behavior}", lang, obj=obj if i == 0 else t("reason.it", lang), times=times))
    return _join(parts, lang)


def history_text(evidence: dict[str, Any], lang: str, name_item: bool = True) -> str:
    """The history evidence in words, as "this shopper ... <period>"."""
    kind = evidence["kind"]
    if kind == "item":
        obj = item_name(evidence.get("title"), evidence.get("title_zh"), lang) if name_item else t("reason.it", lang)
        what = _acts(evidence, lang, obj)
    elif kind == "category":
        category = category_name(evidence.get("category"), evidence.get("category_zh"), lang)
        if evidence["n"] == 1 and (evidence.get("title") or evidence.get("title_zh")):
            obj = item_name(evidence.get("title"), evidence.get("title_zh"), lang)
            what = t(f"reason.act.{evidence['behavior']}", lang, obj=obj, times="").rstrip() + t("reason.also_in", lang, category=category)
        else:
            items = t("reason.item_word" if evidence["n"] == 1 else "reason.items_word", lang)
            # "three coffee items", but "two items in phone accessories" / "items in category 1575622"
            plain = str(evidence.get("category") or "")
            use_in = plain.isdigit() or not _text(plain) or (lang == "en" and category.endswith("s"))
            things = t("reason.things_in" if use_in else "reason.things", lang, category=category, items=items)
            what = t(f"reason.category.{evidence['behavior']}", lang, n=count_words(evidence["n"], lang), things=things)
    else:
        category = category_name(evidence.get("category"), evidence.get("category_zh"), lang)
        return t("reason.other_history", lang, n=f"{evidence['events']:,}", category=category)
    return t("reason.shopper", lang, what=what, period=t(f"reason.period.{evidence['period']}", lang))


def moment_text(groups: list[str], case: Case, lang: str) -> str:
    """The cited aspects of the moment in words ("it is 20:30 on a Monday", "on mobile")."""
    local = case.local
    time, day = local.strftime("%H:%M"), t(f"reason.day.{local.weekday()}", lang)
    parts = []
    if "hour" in groups and "weekday" in groups:
        parts.append(t("reason.time_day", lang, time=time, day=day))
    elif "hour" in groups:
        parts.append(t("reason.time", lang, time=time))
    elif "weekday" in groups:
        parts.append(t("reason.weekday", lang, day=day))
    specific = []  # scene values with a phrase of their own read as one clause: "the push goes out during a live stream and on mobile"
    for g in groups:
        if g == "promotion":
            promo = promo_flag(local.date(), case.features.calendar, case.scenario.promo_override)
            parts.append(t("reason.promo_day" if promo else "reason.regular_day", lang))
        elif g == "recency":
            parts.append(recency_text(case, lang))
        elif g.startswith(SCENE_PREFIX):
            f = g[len(SCENE_PREFIX):]
            value = case.scenario.get(f)
            if f"reason.{f}.{value}" in TRANSLATIONS:
                specific.append(scene_phrase(f, value, lang, case.features))
            else:
                parts.append(scene_phrase(f, value, lang, case.features))
    if specific:
        parts.append(t("reason.pushed_scene", lang, scene=_join(specific, lang)))
    return t("reason.and", lang).join(parts)


def recency_text(case: Case, lang: str) -> str:
    """The time since the shopper's latest event the model read; "first visit" only without any history."""
    gap = int(case.context.get("gap", 0))
    if gap == 1 and len(case.events) == 0:
        return t("reason.recency.1", lang)
    if gap <= 1:
        return t("reason.recency.unknown", lang)
    return t(f"reason.recency.{gap}", lang)


def change_text(change: ScenarioChange, lang: str, features: Any = None) -> str:
    """A scenario change in words: "at 20:30", "on Saturday and on a PC"."""
    parts = []
    for f, (_, new) in change.changes.items():
        if f == "hour":
            parts.append(t("reason.cf.hour", lang, time=change.scenario.at.replace(hour=int(new)).strftime("%H:%M")))
        elif f == "weekday":
            parts.append(t("reason.cf.weekday", lang, day=t(f"reason.day.{int(new)}", lang)))
        elif f == "promotion":
            parts.append(t("reason.cf.promo_on" if new else "reason.cf.promo_off", lang))
        elif f != "date":
            parts.append(scene_phrase(f, new, lang, features, key="reason.cf.scene"))
    return t("reason.list_and", lang).join(parts)


def group_text(group: str, case: Case, shapley: ShapleyValues, lang: str) -> str:
    """One Shapley group in the words of a reason (what `build_reason` cites); also the Why page's labels."""
    evidence = group_evidence(case, shapley, group)
    if group.startswith("history"):
        return history_text(evidence, lang) if evidence else t("reason.history_fallback", lang)
    return moment_text([group], case, lang)


# --- the reason -----------------------------------------------------------------------------------


def cited_groups(shapley: ShapleyValues) -> list[str]:
    """The groups a reason names: the largest positive one, and the next when it carries ``MIN_SHARE`` of the positive total."""
    positive = sorted(((g, v) for g, v in shapley.values.items() if v > 0), key=lambda kv: -kv[1])
    if not positive:
        return []
    total = sum(v for _, v in positive)
    cited = [positive[0][0]]
    if len(positive) > 1 and positive[1][1] >= MIN_SHARE * total:
        cited.append(positive[1][0])
    return cited


def build_reason(case: Case, shapley: ShapleyValues, cf: ScenarioCounterfactuals) -> dict[str, Any]:
    """{"en": ..., "zh": ..., "evidence": {...}}: the reason in both languages and the facts behind it."""
    cited = cited_groups(shapley)
    history = [g for g in cited if g.startswith("history")]
    moment = [g for g in cited if not g.startswith("history")]
    evidence = {g: group_evidence(case, shapley, g) for g in history}
    mine = item_evidence(case)
    often = mine if mine and mine["n"] >= FREQUENT and "history_item" not in cited else None
    contrast = cf.smallest  # crosses the top-k boundary by construction
    texts = {}
    for lang in LANGUAGES:
        if cf.in_top_k:
            lead = t("reason.lead.ranked", lang, rank=ordinal(cf.rank, lang))
        else:
            lead = t("reason.lead.outside", lang, rank=ordinal(cf.rank, lang), k=cf.k)
        clauses = []
        for g in cited:  # in the order of their values; the moment's groups read as one clause
            if g.startswith("history"):
                clauses.append(history_text(evidence[g], lang) if evidence[g] else t("reason.history_fallback", lang))
            elif g == moment[0]:
                clauses.append(moment_text(moment, case, lang))
        body = t("reason.and", lang).join(clauses) if clauses else t("reason.no_single_input", lang)
        tails = []
        if often:
            tails.append(history_text(often, lang))
        if contrast is not None:
            tails.append(t("reason.would_rank", lang, change=change_text(contrast, lang, case.features), rank=ordinal(contrast.rank, lang)))
        else:
            tails.append(t("reason.stays_in" if cf.in_top_k else "reason.stays_out", lang, k=cf.k))
        tail = "".join(t("reason.tail_sep", lang) + x for x in tails)
        texts[lang] = t("reason.sentence", lang, lead=lead, body=body, tail=tail)
    first_history = evidence[history[0]] if history else None
    return {
        **texts,
        "evidence": {
            "cited": cited,
            "history": first_history,
            "context_groups": moment,
            "often": often,
            "shapley": {g: round(v, 6) for g, v in shapley.values.items()},
            "counterfactual": None if contrast is None else {
                "changes": {f: v[1] for f, v in contrast.changes.items()}, "rank": int(contrast.rank), "k": cf.k},
            "stays": None if contrast is not None else cf.in_top_k,
        },
    }
