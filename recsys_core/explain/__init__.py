"""Why would this item be pushed to this shopper, at this moment, in this scene? (docs/explanations.md)

`explain(loaded_model, con, user_id, item_id, scenario)` reads the shopper's
history, then computes — all from the live model, for the item's log-probability
under the softmax over the catalogue (why this item *rather than the others*;
docs/explanations.md) —

- integrated gradients (Captum) for every history event's item / behaviour /
  time / scene parts and every target-context field the model reads, with the completeness
  gap (`attributions`);
- per-layer, per-head attention from the target position, and rollout (`attention`);
- exact Shapley values over groups from the model's schema: the events about this item, about
  its category and the rest of the history; the hour, weekday, promotion, recency and each
  scene field the model reads (`shapley`);
- the smallest change of the scenario that moves the item across the top-k
  boundary, and history edits with the new rank (`counterfactuals`);
- a plain-language reason in English and Chinese (`reasons`), the same sentence wherever it is shown.

Scene fields the model does not read in the target context get no attribution, Shapley group or
counterfactual: they cannot change the ranking (``ignored_fields``).

`explain_case` returns the same as an `Explanation` of arrays for the Why page;
`Explanation.as_dict()` is the JSON of `python -m recsys_core explain --json`;
`push_reasons` explains the items of one push in shared batched passes.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recsys_core.explain.attention import AttentionMaps, attention_maps
from recsys_core.explain.attributions import (
    HISTORY_PARTS,
    QUANTITY,
    Attribution,
    check_explainable,
    integrated_gradients_many,
    private_copy,
)
from recsys_core.explain.cases import Case, build_case, for_item, scenario_of, shopper_case
from recsys_core.explain.counterfactuals import (
    HistoryEdit,
    ScenarioCounterfactuals,
    history_counterfactuals,
    scenario_counterfactuals_many,
    shopper_state,
)
from recsys_core.explain.reasons import build_reason
from recsys_core.explain.shapley import ShapleyValues, case_groups, shapley_values_many
from recsys_core.models.router import routed, routing_note

DEFAULT_K = 10
DEFAULT_STEPS = 32  # integrated-gradient steps (Gauss–Legendre nodes: the completeness gap stays well under 1%)
EDIT_EVENTS = 16  # history edits remove each of the events with the largest attributions (and add a cart / a purchase)
EVENT_COLUMNS = ("local_ts", "item_id", "title", "title_zh", "category", "category_zh", "behavior")


@dataclass
class Explanation:
    case: Case
    k: int
    attribution: Attribution
    shapley: ShapleyValues
    counterfactuals: ScenarioCounterfactuals
    history_edits: list[HistoryEdit]
    attention: AttentionMaps | None
    reason: dict[str, Any]
    timings_ms: dict[str, float] = field(default_factory=dict)
    model_version: str | None = None

    @property
    def rank(self) -> int:
        return self.counterfactuals.rank

    def event_frame(self) -> "Any":
        """The history events (oldest first) with their scene values, attribution parts (``attr_item``,
        ``attr_behavior``, ``attr_time``, ``attr_scene``), their sum ``attr_total`` and the attention ``rollout``."""
        case, a = self.case, self.attribution
        columns = [*EVENT_COLUMNS, *case.features.scene_names]
        ev = case.events.reindex(columns=[c for c in columns if c in case.events.columns]).copy()
        rows = slice(case.offset, None)
        for j, part in enumerate(HISTORY_PARTS):
            ev[f"attr_{part}"] = a.history[rows, j]
        ev["attr_total"] = a.event_totals[rows]
        if self.attention is not None:
            ev["rollout"] = self.attention.rollout()[rows]
        ev["position"] = np.arange(len(ev)) - len(ev)  # -1 = the newest event
        return ev

    def attribution_rows(self) -> list[dict[str, Any]]:
        """One row per input: history events' parts (``history[-1].item`` = the newest event's item part),
        then the target-context fields the model reads (``context.hour``)."""
        case, a = self.case, self.attribution
        rows = []
        n = len(case.events)
        ev = case.events
        item_ids, behaviors, times = (ev[c].astype(str).tolist() for c in ("item_id", "behavior", "local_ts")) if n else ([], [], [])
        values = a.history[case.offset :]
        for r in range(n):
            for j, part in enumerate(HISTORY_PARTS):
                rows.append({"feature": f"history[{r - n}].{part}", "value": float(values[r, j]), "item_id": item_ids[r],
                             "behavior": behaviors[r], "local_ts": times[r]})
        local = case.local
        shown = {"hour": local.strftime("%H:%M"), "weekday": local.strftime("%A"), "gap": f"gap bucket {case.context.get('gap', 0)}",
                 **{f: case.scenario.get(f, "unknown") for f in case.features.scene_names}}
        for f, v in a.context.items():
            rows.append({"feature": f"context.{f}", "value": float(v), "input": shown.get(f, int(case.context.get(f, 0)))})
        return rows

    def as_dict(self) -> dict[str, Any]:
        a, case = self.attribution, self.case
        out: dict[str, Any] = {
            "user_id": case.user_id,
            "item_id": case.item_id,
            "scenario": {"at": case.local.isoformat(timespec="minutes"), "scene": case.scenario.scene,
                         "promo_override": case.scenario.promo_override},
            "model_version": self.model_version,
            "k": self.k,
            "rank": self.rank,
            "explained": QUANTITY,
            "score": a.score,
            "baseline_score": a.baseline_score,
            "model_score": a.item_score,
            "context_fields": list(case.context_fields),
            "ignored_fields": list(case.ignored_fields),
            "attributions": self.attribution_rows(),
            "completeness_gap": a.completeness_gap,
            "completeness_gap_relative": a.relative_gap,
            "ig_steps": a.n_steps,
            "shapley": self.shapley.as_dict(),
            "counterfactuals": {
                **self.counterfactuals.as_dict(),
                "history": [e.as_dict() for e in self.history_edits],
            },
            "reason": self.reason["en"],
            "reason_zh": self.reason["zh"],
            "reason_evidence": self.reason["evidence"],
            "timings_ms": self.timings_ms,
        }
        if self.attention is not None:
            out["attention"] = {
                "note": "attention weights from the target position (where the model looked), not importance",
                "target": np.round(self.attention.target()[:, :, case.offset :], 6).tolist(),  # (L, H, n_events)
                "rollout": np.round(self.attention.rollout()[case.offset :], 6).tolist(),
            }
        return out


def _timer(timings: dict[str, float]):
    def timed(name: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        value = fn(*args, **kwargs)
        timings[name] = round(timings.get(name, 0.0) + (time.perf_counter() - t0) * 1000, 2)
        return value
    return timed


@dataclass
class ItemReason:
    """What a reason is made of for one item: the case, its Shapley values, its scenario counterfactuals and the sentence."""

    case: Case
    shapley: ShapleyValues
    counterfactuals: ScenarioCounterfactuals
    reason: dict[str, Any]


def item_reasons(model: Any, case: Case, items: list[str], k: int = DEFAULT_K, timings: dict[str, float] | None = None,
                 state: Any = None) -> list[ItemReason]:
    """The reasons of several items for one prepared shopper case (`cases.shopper_case`) in shared batched passes:
    one Shapley pass over every item's coalitions, one scoring of the candidate scenarios (``state``: the case's
    `counterfactuals.shopper_state`, when encoded already). What the Why page, the stored push, the CLI and the
    API say comes from here."""
    model = private_copy(model)  # hooked, never the model other threads serve with
    timed = _timer({} if timings is None else timings)
    cases = [for_item(case, i) for i in items]
    dense = [c.item for c in cases]
    shapley = timed("shapley", shapley_values_many, model, case.batch, dense, [case_groups(model, c) for c in cases])
    cfs = timed("scenario_counterfactuals", scenario_counterfactuals_many, model, cases[0], dense, k, state=state) if cases else []
    return [ItemReason(c, s, cf, timed("reason", build_reason, c, s, cf)) for c, s, cf in zip(cases, shapley, cfs)]


def explain_items(model: Any, case: Case, items: list[str], k: int = DEFAULT_K, n_steps: int = DEFAULT_STEPS,
                  attention: bool = True, history_edits: bool = True) -> list[Explanation]:
    """Every explanation of several items for one prepared shopper case, in shared batched passes
    (`item_reasons`, then integrated gradients of all items in batches)."""
    model = private_copy(model)
    timings: dict[str, float] = {}
    timed = _timer(timings)
    # the history as given, encoded once for every pass that reads it unchanged (timed with its first reader)
    state = timed("scenario_counterfactuals", shopper_state, model, case.batch)
    reasons = item_reasons(model, case, items, k, timings, state)
    attributions = timed("integrated_gradients", integrated_gradients_many, model, case.batch, [r.case.item for r in reasons], n_steps,
                         state=state)
    maps = timed("attention", attention_maps, model, case.batch) if attention else None
    out = []
    for r, a in zip(reasons, attributions):
        strongest = np.argsort(-np.abs(a.event_totals[r.case.offset :]))[:EDIT_EVENTS].tolist()
        edits = timed("history_counterfactuals", history_counterfactuals, model, r.case, strongest, state) if history_edits else []
        out.append(Explanation(r.case, int(k), a, r.shapley, r.counterfactuals, edits, maps, r.reason, timings))
    return out


def explain_case(model: Any, case: Case, k: int = DEFAULT_K, n_steps: int = DEFAULT_STEPS, attention: bool = True,
                 history_edits: bool = True) -> Explanation:
    """Every explanation of one prepared case (see `cases.build_case`)."""
    return explain_items(model, case, [case.item_id], k, n_steps, attention, history_edits)[0]


def explain(loaded_model: Any, con: Any, user_id: str, item_id: str, scenario: Any, k: int = DEFAULT_K,
            n_steps: int = DEFAULT_STEPS, **options: Any) -> dict[str, Any]:
    """The explanation of ``item_id`` for ``user_id`` under ``scenario`` as one JSON-ready dict (docs/design.md §7).
    A router is explained through the member it routes the moment to (named under ``routed``)."""
    note = routing_note(loaded_model, scenario_of(scenario))
    loaded_model = routed(loaded_model, scenario_of(scenario))
    check_explainable(loaded_model.model)
    case = build_case(loaded_model, con, user_id, item_id, scenario)
    return {**with_cold_start_note(explain_built(loaded_model, case, k, n_steps, **options), loaded_model, con, case), **note}


def explain_built(loaded_model: Any, case: Case, k: int = DEFAULT_K, n_steps: int = DEFAULT_STEPS, **options: Any) -> dict[str, Any]:
    """`explain` of a case already read from the store (`build_case`), before `with_cold_start_note`: the API
    reads the history on a shared cursor, then explains without holding the database."""
    result = explain_case(loaded_model.model, case, k, n_steps, **options)
    result.model_version = loaded_model.version
    return result.as_dict()


def with_cold_start_note(out: dict[str, Any], loaded_model: Any, con: Any, case: Case) -> dict[str, Any]:
    """``out`` (an `explain_built` dict) with the cold-start sentence as its reason when the shopper has no history."""
    cold = cold_start_note(loaded_model, con, case)
    if cold is not None:
        out.update(cold_start=cold, reason=cold["en"], reason_zh=cold["zh"])
    return out


def cold_start_note(loaded_model: Any, con: Any, case: Case) -> dict[str, Any] | None:
    """For a shopper without history (None otherwise): the list they get is scene-aware popularity, not the
    network's ranking (`recommend.cold_start_reason`); the sentence says so and where the item stands in it,
    followed by what the attributions then describe."""
    if len(case.events):
        return None
    from recsys_core.i18n import t
    from recsys_core.recommend import cold_start_reason

    note = cold_start_reason(loaded_model, con, case.scenario, case.item_id)
    for lang in ("en", "zh"):
        note[lang] = note[lang] + (" " if lang == "en" else "") + t("scale.cold_start.why", lang)
    return note


def push_reasons(loaded_model: Any, con: Any, user_id: str, scenario: Any, item_ids: Any, k: int | None = None) -> list[dict[str, Any]]:
    """The reasons stored with each push (one dict per item, in order), computed at push time in shared passes.

    Each holds the reason in both languages (the sentence the Why page shows for the same shopper,
    scenario, item and k), the explained quantity and its baseline, the Shapley values of the groups
    and the groups cited, the counterfactual named in the reason, the scenario explained, the scene
    fields the model ignores, and the model version — enough to answer "why" later without the model,
    and to tell whether a re-explanation comes from the same model. (Integrated gradients, which the
    sentence does not use, are left to the Why page: they cost more than the rest together.)
    """
    loaded_model = routed(loaded_model, scenario_of(scenario))  # a router's reasons are its routed member's
    check_explainable(loaded_model.model)
    items = [str(i) for i in item_ids]
    k = int(k or DEFAULT_K)
    case = shopper_case(loaded_model, con, user_id, scenario)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = []
    for r in item_reasons(loaded_model.model, case, items, k):
        s, evidence = r.shapley, r.reason["evidence"]
        cold = cold_start_note(loaded_model, con, r.case)
        out.append({
            "reason": {"en": r.reason["en"], "zh": r.reason["zh"]} if cold is None else {"en": cold["en"], "zh": cold["zh"]},
            **({"cold_start": cold} if cold is not None else {}),
            "explained": QUANTITY,
            "score": round(s.score, 6),
            "baseline_score": round(s.base_value, 6),
            "model_score": round(r.counterfactuals.score, 6),
            "rank": r.counterfactuals.rank,
            "k": k,
            "shapley": {g: round(v, 6) for g, v in s.values.items()},
            "cited": evidence["cited"],
            "top_inputs": [{"feature": g, "value": round(v, 6)} for g, v in sorted(s.values.items(), key=lambda kv: -abs(kv[1]))[:5]],
            "efficiency_gap": round(sum(s.values.values()) - (s.score - s.base_value), 9),
            "counterfactual": evidence["counterfactual"],
            "history": evidence["history"],
            "ignored_fields": list(case.ignored_fields),
            "scenario": {"at": case.local.isoformat(timespec="minutes"), "scene": case.scenario.scene,
                         "promo_override": case.scenario.promo_override},
            "model_version": loaded_model.version,
            "explained_at": stamp,
        })
    return out


def explain_cli(args: argparse.Namespace) -> dict[str, Any]:
    """Handler of `python -m recsys_core explain` (arguments in cli.py)."""
    from recsys_core import recommend
    from recsys_core.store import connect

    loaded = recommend.load_model(args.model_dir)  # one torch thread (docs/pitfalls.md: stable latency on shared cores)
    scenario = recommend.scenario_from_args(args, loaded)
    member = routed(loaded, scenario)
    if member is not loaded and not member.explainable:
        where = routing_note(loaded, scenario)["routed"]
        raise ValueError(f"the router sends this moment ({' × '.join(where['slice'].values())}) to {where['member']}, which has no "
                         "embeddings to attribute to; explanations need a context_transformer or sasrec member")
    check_explainable(member.model)
    con = connect(args.db, read_only=True)
    try:
        return explain(loaded, con, args.user, args.item, scenario)
    finally:
        con.close()


__all__ = ["Explanation", "ItemReason", "build_case", "explain", "explain_built", "explain_case", "explain_cli", "explain_items", "item_reasons",
           "push_reasons", "with_cold_start_note"]
