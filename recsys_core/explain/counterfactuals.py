"""What would have to change for the item to enter — or leave — the shopper's top-k?

Scenario changes: every single change of hour, weekday, promotion flag, device,
channel and location is scored in one batched pass (the history is encoded
once and fused with each candidate moment); when no single change crosses the
top-k boundary, every pair of changes is tried. A change costs its size — hours
or days moved, 1 for a flag or a scene value — and the smallest crossing change
wins (ties: the one that moves the item furthest).

History edits: remove any one event, or add a cart or a purchase of the item at
the push moment, each with the item's new rank.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from recsys_core.explain.attributions import eval_mode
from recsys_core.explain.cases import Case, Moment, gap_id, with_context
from recsys_core.features import CONTEXT_FIELDS, HISTORY_FIELDS, FeatureSpace, gap_bucket
from recsys_core.models.base import Batch
from recsys_core.models.context_transformer import ContextTransformer

SCENARIO_FIELDS = ("hour", "weekday", "promotion", "device", "channel", "location")
MAX_DAY_SHIFT = 3


@torch.no_grad()
def score_contexts(model: ContextTransformer, batch: Batch, contexts: list[dict[str, int]]) -> torch.Tensor:
    """One shopper's (1, T) history scored under S contexts, the history encoded once → (S, N+1)."""
    with eval_mode(model):
        state = model.shopper_state(batch)
        b = with_context(batch, contexts)
        scores = model.scores_from_state(state.select(torch.zeros(len(contexts), dtype=torch.long)), b.context)  # (S, N+1)
    scores[:, 0] = float("-inf")
    return scores


@torch.no_grad()
def score_histories(model: ContextTransformer, batch: Batch) -> torch.Tensor:
    with eval_mode(model):
        return model.score_all(batch)


def ranks_of(scores: torch.Tensor, item: int) -> np.ndarray:
    """1 + how many items score strictly higher than ``item``, per row (ties share the better rank)."""
    s = scores[:, 1:]
    return (1 + (s > scores[:, item : item + 1]).sum(dim=1)).numpy()


@dataclass
class ScenarioChange:
    """A changed moment: field -> (from, to) as plain values, its cost, and the item's rank and score there."""

    changes: dict[str, tuple[Any, Any]]
    cost: int
    moment: Moment
    rank: int = 0
    score: float = 0.0
    diff: dict[str, int] | None = None  # context ids that differ from the case's (filled when evaluated)
    gap_stale: bool = False  # a combination: its time-since-last-event id is recomputed

    def as_dict(self) -> dict[str, Any]:
        return {
            "changes": {f: {"from": a, "to": b} for f, (a, b) in self.changes.items()},
            "cost": self.cost,
            "rank": self.rank,
            "score": self.score,
            "moment": self.moment.as_dict(),
        }


@dataclass
class ScenarioCounterfactuals:
    rank: int
    score: float
    k: int
    candidates: list[ScenarioChange]  # every evaluated change, crossing ones first, by cost
    smallest: ScenarioChange | None  # the smallest change that moves the item across the top-k boundary
    hour_ranks: list[int]  # the item's rank at each hour 0..23 of the same day
    per_field: dict[str, ScenarioChange | None] = field(default_factory=dict)  # smallest crossing change of each field

    @property
    def in_top_k(self) -> bool:
        return self.rank <= self.k

    def crosses(self, change: ScenarioChange) -> bool:
        return (change.rank <= self.k) != self.in_top_k

    def as_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "k": self.k,
            "in_top_k": self.in_top_k,
            "smallest": None if self.smallest is None else self.smallest.as_dict(),
            "per_field": {f: (c.as_dict() if c else None) for f, c in self.per_field.items()},
            "hour_ranks": list(self.hour_ranks),
        }


def _effective_promo(moment: Moment, features: FeatureSpace) -> bool:
    if moment.promo_override is not None:
        return bool(moment.promo_override)
    return features.calendar.is_promo(moment.local.date())


def single_changes(moment: Moment, features: FeatureSpace) -> list[ScenarioChange]:
    """Every one-field change of ``moment`` with its cost (hours / days moved, else 1)."""
    out = []
    h = moment.local.hour
    for hour in range(24):
        if hour != h:
            d = abs(hour - h)
            out.append(ScenarioChange({"hour": (h, hour)}, min(d, 24 - d), moment.changed(local=moment.local.replace(hour=hour))))
    for shift in range(-MAX_DAY_SHIFT, MAX_DAY_SHIFT + 1):
        if shift:
            new = moment.local + dt.timedelta(days=shift)
            out.append(ScenarioChange({"weekday": (moment.local.weekday(), new.weekday()), "date": (moment.local.date().isoformat(), new.date().isoformat())}, abs(shift), moment.changed(local=new)))
    promo = _effective_promo(moment, features)
    out.append(ScenarioChange({"promotion": (promo, not promo)}, 1, moment.changed(promo_override=not promo)))
    for f in ("device", "channel", "location"):
        current = getattr(moment, f)
        for value in getattr(features, f).values:
            if value != current:
                out.append(ScenarioChange({f: (current, value)}, 1, moment.changed(**{f: value})))
    return out


def _combine(a: ScenarioChange, b: ScenarioChange, moment: Moment) -> ScenarioChange | None:
    """Both changes at once (fields must differ); the context ids are the base ids updated by both diffs."""
    fa, fb = _field(a), _field(b)
    if fa == fb:
        return None
    m = moment
    for c in (a, b):  # `single_changes` lists weekday before promotion: a forced flag wins over the new date's
        f = _field(c)
        if f == "hour":
            m = m.changed(local=m.local.replace(hour=c.moment.local.hour))
        elif f == "weekday":
            m = m.changed(local=m.local + (c.moment.local.date() - moment.local.date()))
        elif f == "promotion":
            m = m.changed(promo_override=c.moment.promo_override)
        else:
            m = m.changed(**{f: getattr(c.moment, f)})
    return ScenarioChange({**a.changes, **b.changes}, a.cost + b.cost, m, diff={**a.diff, **b.diff}, gap_stale=True)


def _field(change: ScenarioChange) -> str:
    return next(f for f in change.changes if f in SCENARIO_FIELDS)


def _evaluate(model: ContextTransformer, case: Case, changes: list[ScenarioChange]) -> None:
    if not changes:
        return
    last = case.history_ts.max() if len(case.events) else None
    for c in changes:
        if c.diff is None:
            ctx = case.context_for(c.moment)
            c.diff = {f: v for f, v in ctx.items() if case.context.get(f) != v}
        elif c.gap_stale and "gap" in case.context:  # two changes that both move the moment: the gap of the result
            c.diff["gap"] = _gap_id(c.moment, case, last)
    scores = score_contexts(model, case.batch, [{**case.context, **c.diff} for c in changes])
    ranks = ranks_of(scores, case.item)
    for c, r, s in zip(changes, ranks, scores[:, case.item].tolist()):
        c.rank, c.score = int(r), float(s)


def _gap_id(moment: Moment, case: Case, last: np.datetime64 | None) -> int:
    """The target-context gap id of ``moment`` (the time since the latest event), as `Moment.context` makes it."""
    if last is None:
        return int(gap_bucket(np.array([np.nan]))[0])
    since = float((np.datetime64(moment.utc(case.features.calendar.timezone), "s") - last).astype(np.int64))
    return 0 if since < 0 else int(gap_bucket(np.array([since]))[0])


def scenario_counterfactuals(model: ContextTransformer, case: Case, k: int = 10, pairs: bool = True) -> ScenarioCounterfactuals:
    """The smallest scenario change that moves ``case.item`` into (or out of) the top ``k``, and the hour profile."""
    base = score_contexts(model, case.batch, [case.context])
    rank, score = int(ranks_of(base, case.item)[0]), float(base[0, case.item])
    singles = single_changes(case.moment, case.features)
    _evaluate(model, case, singles)
    result = ScenarioCounterfactuals(rank, score, int(k), [], None, [])
    hour_rank = {c.moment.local.hour: c.rank for c in singles if _field(c) == "hour"}
    hour_rank[case.moment.local.hour] = rank
    result.hour_ranks = [hour_rank[h] for h in range(24)]
    candidates = list(singles)
    if pairs and not any(result.crosses(c) for c in singles):
        combos = [c for a, b in itertools.combinations(singles, 2) if (c := _combine(a, b, case.moment)) is not None]
        _evaluate(model, case, combos)
        candidates += combos

    def order(c: ScenarioChange) -> tuple:
        movement = (rank - c.rank) if not result.in_top_k else (c.rank - rank)
        return (not result.crosses(c), c.cost, -movement)

    candidates.sort(key=order)
    result.candidates = candidates
    crossing = [c for c in candidates if result.crosses(c)]
    result.smallest = crossing[0] if crossing else None
    for f in SCENARIO_FIELDS:
        result.per_field[f] = next((c for c in crossing if len(c.changes) - ("date" in c.changes) == 1 and _field(c) == f), None)
    return result


# --- history edits ------------------------------------------------------------------------------


def remove_columns(batch: Batch, columns: list[list[int]]) -> Batch:
    """One row per entry of ``columns``: the (1, T) history with those columns deleted and left-padded again."""
    assert batch.size == 1, "remove_columns edits one shopper's history"
    T = batch.length
    hist = {k: v[0].numpy() for k, v in batch.history.items()}
    rows = {k: np.zeros((len(columns), T), np.int64) for k in hist}
    for r, cols in enumerate(columns):
        keep = np.setdiff1d(np.arange(T), np.asarray(cols, dtype=np.int64))
        for k, v in hist.items():
            kept = v[keep]
            rows[k][r, T - len(kept) :] = kept
    return Batch({k: torch.from_numpy(v) for k, v in rows.items()}, {k: v.expand(len(columns)) for k, v in batch.context.items()})


def append_event(batch: Batch, event: dict[str, int]) -> Batch:
    """The (1, T) history with one more (newest) event → (1, T+1); the model reads the last max_len."""
    hist = {k: torch.cat([v, torch.tensor([[int(event.get(k, 0))]])], dim=1) for k, v in batch.history.items()}
    return Batch(hist, batch.context)


@dataclass
class HistoryEdit:
    kind: str  # "remove", "add_cart" or "add_buy"
    row: int | None  # events row removed (None for additions)
    rank: int
    score: float
    delta_score: float
    delta_rank: int  # new rank − current rank (negative = moves up)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "row": self.row, "rank": self.rank, "score": self.score, "delta_score": self.delta_score, "delta_rank": self.delta_rank}


def added_event(case: Case, behavior: str) -> dict[str, int]:
    """Ids of a ``behavior`` event on the case's item at the push moment, in the push scene."""
    tz = case.features.calendar.timezone
    last_ts = case.events["ts"].iloc[-1] if len(case.events) else None
    ev = {f: case.context.get(f, 0) for f in CONTEXT_FIELDS}
    # the event's own gap: time since the event before it (history events always know theirs)
    ev.update(item=case.item, behavior=case.features.behavior.id(behavior), gap=gap_id(last_ts, case.moment.utc(tz)))
    return {f: int(ev.get(f, 0)) for f in HISTORY_FIELDS}


def history_counterfactuals(model: ContextTransformer, case: Case) -> list[HistoryEdit]:
    """Remove each event; add a cart / a purchase of the item. Sorted by how much the score moves (down first)."""
    base = score_histories(model, case.batch)
    rank, score = int(ranks_of(base, case.item)[0]), float(base[0, case.item])
    edits: list[HistoryEdit] = []
    n = len(case.events)
    ts = case.history_ts
    if n:
        removed = remove_columns(case.batch, [[case.event_column(r)] for r in range(n)])
        # the moment's time since the latest event changes when the latest event goes
        contexts = [case.context_for(case.moment, np.delete(ts, r)) for r in range(n)]
        removed = Batch(removed.history, with_context(case.batch, contexts).context)
        scores = score_histories(model, removed)
        for r, (rk, s) in enumerate(zip(ranks_of(scores, case.item), scores[:, case.item].tolist())):
            edits.append(HistoryEdit("remove", r, int(rk), float(s), float(s) - score, int(rk) - rank))
    now = np.array([np.datetime64(case.moment.utc(case.features.calendar.timezone), "s")])
    after = Batch(case.batch.history, with_context(case.batch, [case.context_for(case.moment, np.concatenate([ts, now]))]).context)
    for kind, behavior in (("add_cart", "cart"), ("add_buy", "buy")):
        scores = score_histories(model, append_event(after, added_event(case, behavior)))
        rk, s = int(ranks_of(scores, case.item)[0]), float(scores[0, case.item])
        edits.append(HistoryEdit(kind, None, rk, s, s - score, rk - rank))
    edits.sort(key=lambda e: e.delta_score)
    return edits
