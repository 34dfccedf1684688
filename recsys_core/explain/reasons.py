"""A plain-language reason for a recommendation, in English and Chinese, built from the explanation.

The reason names what carried the score, in order: the shopper's own history
(the category — or the item itself — whose events got the most positive
integrated-gradients attribution, counted as the shopper would see it: "viewed
three coffee items this week"), then the push moment's strongest positive
Shapley groups ("it is 08:00 on mobile"), then a counterfactual that shows the
moment matters ("at 20:00 it would rank 37th"). Words come from
`recsys_core.i18n` (keys ``reason.*``), so both languages are always complete.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recsys_core.explain.attributions import Attribution
from recsys_core.explain.cases import Case
from recsys_core.explain.counterfactuals import ScenarioChange, ScenarioCounterfactuals
from recsys_core.explain.shapley import CONTEXT_GROUPS, ShapleyValues
from recsys_core.i18n import LANGUAGES, TRANSLATIONS, label, t

HISTORY_GROUPS = ("history_items", "history_behaviour", "history_time", "history_scene")
BEHAVIOUR_STRENGTH = ("buy", "cart", "fav", "pv")  # strongest first
MIN_SHARE = 0.15  # a group must carry this share of the positive contributions to be named
MAX_CONTEXT_CLAUSES = 2
TOP_EVENTS = 5


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


def _category_name(row: pd.Series, lang: str) -> str:
    zh = row.get("category_zh")
    name = zh if lang == "zh" and isinstance(zh, str) and zh else row.get("category")
    if not isinstance(name, str) or not name:
        return t("reason.unknown_category", lang)
    return name if lang == "zh" else " ".join(w if w.isupper() else w.lower() for w in name.split())


def _scene_phrase(field: str, value: Any, lang: str) -> str:
    specific = f"reason.{field}.{value}"
    if specific in TRANSLATIONS:
        return t(specific, lang)
    return t(f"reason.{field}", lang, value=label(field, value, lang))


def _period(days: float) -> str:
    return "day" if days <= 1 else "week" if days <= 7 else "month" if days <= 31 else "recent"


# --- evidence -------------------------------------------------------------------------------------


def history_evidence(case: Case, attribution: Attribution) -> dict[str, Any] | None:
    """What in the history lifted the item most: this very item, or one category — with counts.

    Returns {"kind": "item"|"category", "behavior", "n", "period", "category", "category_zh", "rows"} or None.
    """
    ev = case.events
    if not len(ev):
        return None
    totals = attribution.event_totals[case.offset :]  # (n_events,) aligned with the event rows
    top = [int(r) for r in np.argsort(-totals)[:TOP_EVENTS] if totals[r] > 0]
    if not top:
        return None
    rows = ev.iloc[top]
    same_item = float(totals[top][(rows["item_id"].astype(str) == case.item_id).to_numpy()].sum())
    by_category = pd.Series(totals[top], index=rows["category"].fillna("").to_numpy()).groupby(level=0).sum()
    moment_ts = pd.Timestamp(case.moment.utc(case.features.calendar.timezone))
    if same_item > 0 and same_item >= 0.5 * by_category.max():
        mine = ev[ev["item_id"].astype(str) == case.item_id]
        behavior = next(b for b in BEHAVIOUR_STRENGTH if b in set(mine["behavior"]) or b == "pv")
        n = int((mine["behavior"] == behavior).sum()) or len(mine)
        days = (moment_ts - pd.Timestamp(mine["ts"].min())).total_seconds() / 86400
        return {"kind": "item", "behavior": behavior, "n": n, "period": _period(days), "rows": mine.index.tolist()}
    category = str(by_category.idxmax())
    in_cat = ev[ev["category"].fillna("") == category]
    top_in_cat = [r for r in top if str(ev["category"].fillna("").iloc[r]) == category]
    days = (moment_ts - pd.Timestamp(ev["ts"].iloc[min(top_in_cat)])).total_seconds() / 86400
    period = _period(days)
    if period != "recent":
        horizon = {"day": 1, "week": 7, "month": 31}[period]
        in_cat = in_cat[(moment_ts - pd.to_datetime(in_cat["ts"])).dt.total_seconds() <= horizon * 86400]
    behavior = next(b for b in BEHAVIOUR_STRENGTH if b in set(in_cat["behavior"]) or b == "pv")
    chosen = in_cat[in_cat["behavior"] == behavior] if behavior in set(in_cat["behavior"]) else in_cat
    first = in_cat.iloc[0] if len(in_cat) else ev.iloc[top_in_cat[0]]
    return {
        "kind": "category",
        "behavior": behavior,
        "n": int(chosen["item_id"].nunique()) or 1,
        "period": period,
        "category": first.get("category"),
        "category_zh": first.get("category_zh"),
        "rows": in_cat.index.tolist(),
    }


def _history_text(evidence: dict[str, Any], lang: str) -> str:
    if evidence["kind"] == "item":
        what = t(f"reason.item.{evidence['behavior']}", lang, times=times_words(evidence["n"], lang))
    else:
        category = _category_name(pd.Series(evidence), lang)
        items = t("reason.item_word" if evidence["n"] == 1 else "reason.items_word", lang)
        # "three coffee items", but "two items in phone accessories" (a plural category name reads badly as an adjective)
        things = t("reason.things_in" if lang == "en" and category.endswith("s") else "reason.things", lang, category=category, items=items)
        what = t(f"reason.category.{evidence['behavior']}", lang, n=count_words(evidence["n"], lang), things=things)
    return t("reason.shopper", lang, what=what, period=t(f"reason.period.{evidence['period']}", lang))


def _context_text(groups: list[str], case: Case, lang: str) -> str:
    m = case.moment
    time = m.local.strftime("%H:%M")
    day = t(f"reason.day.{m.local.weekday()}", lang)
    if "hour" in groups and "weekday" in groups:
        time_parts = [t("reason.time_day", lang, time=time, day=day)]
    elif "hour" in groups:
        time_parts = [t("reason.time", lang, time=time)]
    elif "weekday" in groups:
        time_parts = [t("reason.weekday", lang, day=day)]
    else:
        time_parts = []
    if "promotion" in groups:
        promo = m.promo_override if m.promo_override is not None else case.features.calendar.is_promo(m.local.date())
        time_parts.append(t("reason.promo_day" if promo else "reason.regular_day", lang))
    if "recency" in groups and case.context.get("gap", 0) > 0:
        time_parts.append(t(f"reason.recency.{case.context['gap']}", lang))
    scene_parts = [_scene_phrase(g, getattr(m, g), lang) for g in groups if g in ("device", "channel", "location")]
    scene = ("、" if lang == "zh" else " ").join(scene_parts)
    if not time_parts:
        return t("reason.pushed_scene", lang, scene=scene)
    text = t("reason.and", lang).join(time_parts)
    return text + (("，" if lang == "zh" else " ") + scene if scene else "")


def change_text(change: ScenarioChange, lang: str) -> str:
    """A scenario change in words: "at 20:00", "on Saturday and on a PC"."""
    parts = []
    for f, (_, new) in change.changes.items():
        if f == "hour":
            parts.append(t("reason.cf.hour", lang, time=f"{int(new):02d}:00"))
        elif f == "weekday":
            parts.append(t("reason.cf.weekday", lang, day=t(f"reason.day.{int(new)}", lang)))
        elif f == "promotion":
            parts.append(t("reason.cf.promo_on" if new else "reason.cf.promo_off", lang))
        elif f in ("device", "channel", "location"):
            parts.append(_scene_phrase(f, new, lang))
    return ("、" if lang == "zh" else " and ").join(parts)


def counterfactual_clause(cf: ScenarioCounterfactuals, groups: list[str]) -> dict[str, Any] | None:
    """The contrast to show: the worst hour when the hour is a named reason, else the smallest crossing change."""
    if "hour" in groups and cf.hour_ranks:
        worst = int(np.argmax(cf.hour_ranks))
        if cf.hour_ranks[worst] > cf.rank:
            return {"changes": {"hour": (None, worst)}, "rank": int(cf.hour_ranks[worst])}
    if cf.smallest is not None:
        return {"changes": dict(cf.smallest.changes), "rank": int(cf.smallest.rank)}
    return {"changes": {}, "rank": None, "k": cf.k, "stays": cf.in_top_k}


# --- the reason -----------------------------------------------------------------------------------


def choose_groups(shapley: ShapleyValues) -> tuple[bool, list[str]]:
    """(name the history?, context groups to name), from the Shapley values."""
    values = shapley.values
    history = sum(values.get(g, 0.0) for g in HISTORY_GROUPS)
    context = {g: values[g] for g in CONTEXT_GROUPS if g in values}
    positive = max(history, 0.0) + sum(v for v in context.values() if v > 0)
    if positive <= 0:
        return False, []
    named = [g for g, v in sorted(context.items(), key=lambda kv: -kv[1]) if v > 0 and v >= MIN_SHARE * positive]
    if not named and any(v > 0 for v in context.values()) and history < positive:
        named = [max(context, key=context.get)]
    return history > 0 and history >= MIN_SHARE * positive, named[:MAX_CONTEXT_CLAUSES]


def build_reason(
    case: Case, attribution: Attribution, shapley: ShapleyValues, cf: ScenarioCounterfactuals, pushed: bool = False
) -> dict[str, Any]:
    """{"en": ..., "zh": ..., "evidence": {...}}: the reason in both languages and the facts behind it."""
    use_history, groups = choose_groups(shapley)
    evidence = history_evidence(case, attribution) if use_history else None
    contrast = counterfactual_clause(cf, groups)
    texts = {}
    for lang in LANGUAGES:
        if pushed:
            lead = t("reason.lead.pushed", lang)
        elif cf.in_top_k:
            lead = t("reason.lead.ranked", lang, rank=ordinal(cf.rank, lang))
        else:
            lead = t("reason.lead.outside", lang, rank=ordinal(cf.rank, lang), k=cf.k)
        clauses = []
        if evidence:
            clauses.append(_history_text(evidence, lang))
        if groups:
            clauses.append(_context_text(groups, case, lang))
        body = t("reason.and", lang).join(clauses) if clauses else t("reason.no_single_input", lang)
        if contrast and contrast["changes"]:
            tail = t("reason.would_rank", lang, change=change_text(ScenarioChange(contrast["changes"], 0, case.moment), lang),
                     rank=ordinal(contrast["rank"], lang))
        elif contrast:
            tail = t("reason.stays_in" if contrast["stays"] else "reason.stays_out", lang, k=cf.k)
        else:
            tail = ""
        texts[lang] = t("reason.sentence", lang, lead=lead, body=body, tail=(t("reason.tail_sep", lang) + tail) if tail else "")
    return {
        **texts,
        "evidence": {
            "history": None if evidence is None else {k: v for k, v in evidence.items() if k != "rows"},
            "context_groups": groups,
            "shapley": {g: round(v, 6) for g, v in shapley.values.items()},
            "counterfactual": None if contrast is None else {**contrast, "changes": {f: v[1] for f, v in contrast["changes"].items()}},
        },
    }
