"""Why would this item be pushed to this shopper, at this moment, in this scene? (DESIGN §6)

`explain(loaded_model, con, user_id, item_id, scenario)` reads the shopper's
history, then computes — all from the live model —

- integrated gradients (Captum) for every history event's item / behaviour /
  time / scene parts and every target-context field, with the completeness gap
  (`attributions`);
- per-layer, per-head attention from the target position, and rollout (`attention`);
- Shapley values over the feature groups (ten, or eleven when the model reads the time since the
  shopper's latest event), exact from batched coalitions (`shapley`);
- the smallest change of the scenario that moves the item across the top-k
  boundary, and history edits with the new rank (`counterfactuals`);
- a plain-language reason in English and Chinese (`reasons`).

`explain_case` returns the same as an `Explanation` of arrays for the Why page;
`Explanation.as_dict()` is the JSON of `python -m recsys_core explain --json`.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recsys_core.explain.attention import AttentionMaps, attention_maps
from recsys_core.explain.attributions import HISTORY_PARTS, Attribution, check_explainable, integrated_gradients, private_copy
from recsys_core.explain.cases import Case, Moment, build_case
from recsys_core.explain.counterfactuals import (
    HistoryEdit,
    ScenarioCounterfactuals,
    history_counterfactuals,
    scenario_counterfactuals,
)
from recsys_core.explain.reasons import build_reason
from recsys_core.explain.shapley import ShapleyValues, shapley_values

DEFAULT_K = 10
DEFAULT_STEPS = 50
EVENT_COLUMNS = ("local_ts", "item_id", "title", "title_zh", "category", "category_zh", "behavior", "device", "channel", "location")


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
        """The history events (oldest first) with their attribution parts (``attr_item``, ``attr_behavior``,
        ``attr_time``, ``attr_scene``), their sum ``attr_total`` and the attention ``rollout``."""
        case, a = self.case, self.attribution
        ev = case.events.reindex(columns=[c for c in EVENT_COLUMNS if c in case.events.columns]).copy()
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
        then the target-context fields (``context.hour``)."""
        case, a = self.case, self.attribution
        rows = []
        n = len(case.events)
        for r in range(n):
            col = case.event_column(r)
            ev = case.events.iloc[r]
            for j, part in enumerate(HISTORY_PARTS):
                rows.append({
                    "feature": f"history[{r - n}].{part}",
                    "value": float(a.history[col, j]),
                    "item_id": str(ev["item_id"]),
                    "behavior": str(ev["behavior"]),
                    "local_ts": str(ev["local_ts"]),
                })
        ctx = case.moment
        shown = {"hour": ctx.local.strftime("%H:%M"), "weekday": ctx.local.strftime("%A"), "device": ctx.device,
                 "channel": ctx.channel, "location": ctx.location, "gap": f"gap bucket {case.context.get('gap', 0)}"}
        for f, v in a.context.items():
            rows.append({"feature": f"context.{f}", "value": float(v), "input": shown.get(f, int(case.context.get(f, 0)))})
        return rows

    def as_dict(self) -> dict[str, Any]:
        a, case = self.attribution, self.case
        out: dict[str, Any] = {
            "user_id": case.user_id,
            "item_id": case.item_id,
            "scenario": case.moment.as_dict(),
            "model_version": self.model_version,
            "k": self.k,
            "rank": self.rank,
            "score": a.score,
            "baseline_score": a.baseline_score,
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


def explain_case(model: Any, case: Case, k: int = DEFAULT_K, n_steps: int = DEFAULT_STEPS, attention: bool = True,
                 history_edits: bool = True, pushed: bool = False) -> Explanation:
    """Every explanation of one prepared case (see `cases.build_case`)."""
    model = private_copy(model)  # hooked, never the model other threads serve with
    timings: dict[str, float] = {}

    def timed(name: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        value = fn(*args, **kwargs)
        timings[name] = round((time.perf_counter() - t0) * 1000, 2)
        return value

    attribution = timed("integrated_gradients", integrated_gradients, model, case.batch, case.item, n_steps)
    shapley = timed("shapley", shapley_values, model, case.batch, case.item)
    cf = timed("scenario_counterfactuals", scenario_counterfactuals, model, case, k)
    edits = timed("history_counterfactuals", history_counterfactuals, model, case) if history_edits else []
    maps = timed("attention", attention_maps, model, case.batch) if attention else None
    reason = timed("reason", build_reason, case, attribution, shapley, cf, pushed)
    return Explanation(case, int(k), attribution, shapley, cf, edits, maps, reason, timings)


def explain(loaded_model: Any, con: Any, user_id: str, item_id: str, scenario: Any, k: int = DEFAULT_K,
            n_steps: int = DEFAULT_STEPS, **options: Any) -> dict[str, Any]:
    """The explanation of ``item_id`` for ``user_id`` under ``scenario`` as one JSON-ready dict (DESIGN §7)."""
    check_explainable(loaded_model.model)
    case = build_case(loaded_model, con, user_id, item_id, scenario)
    result = explain_case(loaded_model.model, case, k, n_steps, **options)
    result.model_version = loaded_model.version
    return result.as_dict()


def push_reasons(loaded_model: Any, con: Any, user_id: str, scenario: Any, item_ids: Any, k: int | None = None,
                 n_steps: int = DEFAULT_STEPS) -> list[dict[str, Any]]:
    """The reasons stored with each push (one dict per item, in order), computed at push time.

    Each holds the reason in both languages, the score and baseline score, the Shapley values of
    the feature groups, the five inputs with the largest attributions, the counterfactual named in
    the reason, the moment and scene explained, and the model version — enough to answer "why"
    later without the model, and to tell whether a re-explanation comes from the same model.
    """
    from recsys_core.explain.cases import for_item, shopper_case

    items = [str(i) for i in item_ids]
    k = int(k or len(items))
    case = shopper_case(loaded_model, con, user_id, scenario)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = []
    for item_id in items:
        ex = explain_case(loaded_model.model, for_item(case, item_id), k, n_steps, attention=False, history_edits=False, pushed=True)
        rows = sorted(ex.attribution_rows(), key=lambda r: -abs(r["value"]))[:5]
        out.append({
            "reason": {"en": ex.reason["en"], "zh": ex.reason["zh"]},
            "score": round(ex.attribution.score, 6),
            "baseline_score": round(ex.attribution.baseline_score, 6),
            "rank": ex.rank,
            "k": k,
            "shapley": {g: round(v, 6) for g, v in ex.shapley.values.items()},
            "top_inputs": [{**r, "value": round(r["value"], 6)} for r in rows],
            "completeness_gap": round(ex.attribution.completeness_gap, 6),
            "counterfactual": ex.reason["evidence"]["counterfactual"],
            "history": ex.reason["evidence"]["history"],
            "scenario": case.moment.as_dict(),
            "model_version": loaded_model.version,
            "explained_at": stamp,
        })
    return out


def explain_cli(args: argparse.Namespace) -> dict[str, Any]:
    """Handler of `python -m recsys_core explain` (arguments in cli.py)."""
    from recsys_core import recommend
    from recsys_core.store import connect

    loaded = recommend.load_model(args.model_dir)  # one torch thread (GOTCHAS: stable latency on shared cores)
    at = recommend.parse_moment(args.at, loaded.features.calendar.timezone)
    scenario = recommend.Scenario(at, args.device, args.channel, args.location)
    con = connect(args.db, read_only=True)
    try:
        return explain(loaded, con, args.user, args.item, scenario)
    finally:
        con.close()


__all__ = ["Explanation", "Moment", "build_case", "explain", "explain_case", "explain_cli", "push_reasons"]
