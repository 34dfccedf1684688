"""What would have to change for the item to enter — or leave — the shopper's top-k?

Scenario changes: every single change of the hour, the day (weekday), the promotion
flag and the value of each scene field the model reads in the target context (fields it
does not read cannot matter and are not tried) is scored in one batched pass (the history is
encoded once and fused with each candidate moment); when no single change crosses the top-k
boundary, every pair of changes is tried. A change costs its size — hours or days moved,
1 for a flag or a scene value — and the smallest crossing change wins (ties: the one that
moves the item furthest). The scores of every item come out of the same pass, so
`scenario_ranks` serves many items of one shopper at once (`push_reasons`).

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

from recsys_core.context import Scenario, promo_flag
from recsys_core.explain.attributions import eval_mode, state_scores
from recsys_core.explain.cases import Case, gap_id, with_context
from recsys_core.features import gap_bucket
from recsys_core.models.base import Batch

MAX_DAY_SHIFT = 3
TIME_CHANGES = ("hour", "weekday", "promotion")  # the time aspects a scenario change may move
_NEEDS = {"hour": "hour", "weekday": "weekday", "promotion": "promo"}  # the context field each change acts through


@torch.no_grad()
def shopper_state(model: Any, batch: Batch) -> Any:
    """The (1, T) history encoded once, for every `score_contexts` of the same shopper."""
    with eval_mode(model):
        return model.shopper_state(batch)


@torch.no_grad()
def score_contexts(model: Any, batch: Batch, contexts: list[dict[str, int]], state: Any = None) -> torch.Tensor:
    """One shopper's (1, T) history scored under S contexts, the history encoded once (or ``state``,
    its `shopper_state`) → (S, N+1)."""
    with eval_mode(model):
        state = model.shopper_state(batch) if state is None else state
        b = with_context(batch, contexts)
        scores = state_scores(model, state, torch.zeros(len(contexts), dtype=torch.long), b.context)  # (S, N+1)
    scores[:, 0] = float("-inf")
    return scores


@torch.no_grad()
def score_histories(model: Any, batch: Batch, state: Any = None) -> torch.Tensor:
    """``model.score_all(batch)``; ``state``: the batch's `shopper_state` when already encoded."""
    with eval_mode(model):
        return model.score_all(batch) if state is None else model.scores_from_state(state, batch.context)


def ranks_of(scores: torch.Tensor, item: int) -> np.ndarray:
    """1 + how many items score strictly higher than ``item``, per row (ties share the better rank)."""
    s = scores[:, 1:]
    return (1 + (s > scores[:, item : item + 1]).sum(dim=1)).numpy()


def ranks_of_items(scores: torch.Tensor, items: list[int]) -> np.ndarray:
    """(S, I): the rank of each of ``items`` in every row of ``scores``."""
    s = scores[:, 1:]
    return np.stack([ranks_of(scores, i) for i in items], axis=1) if items else np.zeros((len(s), 0), np.int64)


@dataclass
class ScenarioChange:
    """A changed scenario: field -> (from, to) as plain values, its cost, and the item's rank and score there."""

    changes: dict[str, tuple[Any, Any]]
    cost: int
    scenario: Scenario
    rank: int = 0
    score: float = 0.0
    diff: dict[str, int] | None = None  # context ids that differ from the case's (filled when evaluated)
    gap_stale: bool = False  # a combination: its time-since-last-event id is recomputed

    @property
    def field(self) -> str:
        """The scenario aspect changed (hour, weekday, promotion or a scene field); the first of a pair."""
        return next(f for f in self.changes if f != "date")

    @property
    def size(self) -> int:
        """How many aspects change (1 or 2)."""
        return len(self.changes) - ("date" in self.changes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "changes": {f: {"from": a, "to": b} for f, (a, b) in self.changes.items()},
            "cost": self.cost,
            "rank": self.rank,
            "score": self.score,
            "scenario": self.scenario.to_dict(),
        }


@dataclass
class ScenarioCounterfactuals:
    rank: int
    score: float
    k: int
    candidates: list[ScenarioChange]  # every evaluated change, crossing ones first, by cost
    smallest: ScenarioChange | None  # the smallest change that moves the item across the top-k boundary
    hour_ranks: list[int]  # the item's rank at each hour 0..23 of the same day (empty when the model reads no hour)
    per_field: dict[str, ScenarioChange | None] = field(default_factory=dict)  # smallest crossing change of each aspect

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


def changeable_fields(case: Case) -> tuple[str, ...]:
    """The aspects a scenario change may move: the time aspects and scene fields the model reads."""
    read = set(case.context_fields)
    return tuple(f for f in TIME_CHANGES if _NEEDS[f] in read) + case.scene_fields_read


def single_changes(case: Case) -> list[ScenarioChange]:
    """Every one-aspect change of the case's scenario with its cost (hours / days moved, else 1)."""
    sc, local, features = case.scenario, case.local, case.features
    fields = changeable_fields(case)
    out = []
    if "hour" in fields:
        h = local.hour
        for hour in range(24):
            if hour != h:
                d = abs(hour - h)
                out.append(ScenarioChange({"hour": (h, hour)}, min(d, 24 - d), sc.replace(at=local.replace(hour=hour))))
    if "weekday" in fields:
        for shift in range(-MAX_DAY_SHIFT, MAX_DAY_SHIFT + 1):
            if shift:
                new = local + dt.timedelta(days=shift)
                out.append(ScenarioChange({"weekday": (local.weekday(), new.weekday()), "date": (local.date().isoformat(), new.date().isoformat())},
                                          abs(shift), sc.replace(at=new)))
    if "promotion" in fields:
        promo = promo_flag(local.date(), features.calendar, sc.promo_override)
        out.append(ScenarioChange({"promotion": (promo, not promo)}, 1, sc.replace(at=local, promo_override=not promo)))
    for f in case.scene_fields_read:
        current = sc.get(f)
        for value in features.scene[f].values:
            if value != current:
                out.append(ScenarioChange({f: (current, value)}, 1, sc.replace(at=local, **{f: value})))
    return out


def _combine(a: ScenarioChange, fa: str, b: ScenarioChange, fb: str, case: Case) -> ScenarioChange:
    """Both changes at once (of different aspects ``fa`` and ``fb``); the context ids are the base ids updated by both diffs."""
    local, scene, promo = case.local, case.scenario.scene, case.scenario.promo_override
    for c, f in ((a, fa), (b, fb)):  # `single_changes` lists weekday before promotion: a forced flag wins over the new date's
        if f == "hour":
            local = local.replace(hour=c.changes["hour"][1])
        elif f == "weekday":
            local = local + (c.scenario.at.date() - case.local.date())
        elif f == "promotion":
            promo = c.scenario.promo_override
        elif (value := c.changes[f][1]) is None:
            scene.pop(f, None)
        else:
            scene[f] = value
    return ScenarioChange({**a.changes, **b.changes}, a.cost + b.cost, Scenario(local, scene, promo), diff={**a.diff, **b.diff}, gap_stale=True)


def pairs_of(singles: list[ScenarioChange], case: Case) -> list[ScenarioChange]:
    """Every pair of single changes of different aspects (`_combine`), in `itertools.combinations` order."""
    fields = [c.field for c in singles]
    return [_combine(a, fa, b, fb, case) for (a, fa), (b, fb) in itertools.combinations(zip(singles, fields), 2) if fa != fb]


def _evaluate(model: Any, case: Case, changes: list[ScenarioChange], items: list[int], state: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Score the changes (one batched pass; ``state``: the case's `shopper_state`); sets rank/score for
    ``case.item`` and returns the (S, I) ranks and scores of ``items``."""
    if not changes:
        return np.zeros((0, len(items)), np.int64), np.zeros((0, len(items)))
    last = case.history_ts.max() if len(case.events) else None
    for c in changes:
        if c.diff is None:
            ctx = case.context_for(c.scenario)
            c.diff = {f: v for f, v in ctx.items() if case.context.get(f) != v}
    stale = [c for c in changes if c.gap_stale] if "gap" in case.context else []
    # two changes that both move the moment: the gap of the result
    for c, gap in zip(stale, _gap_ids([c.scenario for c in stale], case, last)):
        c.diff["gap"] = gap
    scores = score_contexts(model, case.batch, [{**case.context, **c.diff} for c in changes], state)
    ranks = ranks_of_items(scores, items)
    if case.item:
        own = ranks[:, items.index(case.item)] if case.item in items else ranks_of(scores, case.item)
        for c, r, s in zip(changes, own, scores[:, case.item].tolist()):
            c.rank, c.score = int(r), float(s)
    return ranks, scores[:, items].double().numpy()


def _gap_ids(scenarios: list[Scenario], case: Case, last: np.datetime64 | None) -> list[int]:
    """The target-context gap id of each scenario (the time since the latest event), as `cases.moment_context` makes it."""
    if last is None:
        return [int(gap_bucket(np.array([np.nan]))[0])] * len(scenarios)
    moments: dict[Any, np.datetime64] = {}  # pairs share their moments: each converted once
    for s in scenarios:
        if s.at not in moments:
            moments[s.at] = np.datetime64(s.utc(case.timezone), "s")
    utc = np.array([moments[s.at] for s in scenarios], dtype="datetime64[s]")
    since = (utc - last).astype(np.int64).astype(np.float64)
    return np.where(since < 0, 0, gap_bucket(since)).tolist()


def scenario_counterfactuals(model: Any, case: Case, k: int = 10, pairs: bool = True) -> ScenarioCounterfactuals:
    """The smallest scenario change that moves ``case.item`` into (or out of) the top ``k``, and the hour profile."""
    return scenario_counterfactuals_many(model, case, [case.item], k, pairs)[0]


def scenario_counterfactuals_many(model: Any, case: Case, items: list[int], k: int = 10, pairs: bool = True,
                                  state: Any = None) -> list[ScenarioCounterfactuals]:
    """`scenario_counterfactuals` of several items of one shopper: the candidate scenarios are scored once for all
    (``state``: the case's `shopper_state`, when encoded already)."""
    state = shopper_state(model, case.batch) if state is None else state
    base = score_contexts(model, case.batch, [case.context], state)
    base_ranks = ranks_of_items(base, items)[0]
    singles = single_changes(case)
    single_ranks, single_scores = _evaluate(model, case, singles, items, state)
    combos: list[ScenarioChange] | None = None
    combo_ranks = combo_scores = None
    out = []
    for j, item in enumerate(items):
        rank, score = int(base_ranks[j]), float(base[0, item])
        result = ScenarioCounterfactuals(rank, score, int(k), [], None, [])
        mine = [_with_rank(c, single_ranks[s, j], single_scores[s, j]) for s, c in enumerate(singles)]
        hour_rank = {c.changes["hour"][1]: c.rank for c in mine if c.field == "hour"}
        if hour_rank:
            hour_rank[case.local.hour] = rank
            result.hour_ranks = [hour_rank[h] for h in range(24)]
        candidates = list(mine)
        if pairs and not any(result.crosses(c) for c in mine):
            if combos is None:
                combos = pairs_of(singles, case)
                combo_ranks, combo_scores = _evaluate(model, case, combos, items, state)
            candidates += [_with_rank(c, combo_ranks[s, j], combo_scores[s, j]) for s, c in enumerate(combos)]

        def order(c: ScenarioChange) -> tuple:
            movement = (rank - c.rank) if not result.in_top_k else (c.rank - rank)
            return (not result.crosses(c), c.cost, -movement)

        candidates.sort(key=order)
        result.candidates = candidates
        crossing = [c for c in candidates if result.crosses(c)]
        result.smallest = crossing[0] if crossing else None
        for f in changeable_fields(case):
            result.per_field[f] = next((c for c in crossing if c.size == 1 and c.field == f), None)
        out.append(result)
    return out


def _with_rank(change: ScenarioChange, rank: int, score: float) -> ScenarioChange:
    """A copy of ``change`` carrying one item's rank and score."""
    return ScenarioChange(change.changes, change.cost, change.scenario, int(rank), float(score), change.diff, change.gap_stale)


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
    last_ts = case.events["ts"].iloc[-1] if len(case.events) else None
    ev = dict(case.context)
    # the event's own gap: time since the event before it (history events always know theirs)
    ev.update(item=case.item, behavior=case.features.behavior.id(behavior), gap=gap_id(last_ts, case.scenario.utc(case.timezone)))
    return {f: int(ev.get(f, 0)) for f in case.batch.history}


def history_counterfactuals(model: Any, case: Case, rows: list[int] | None = None, state: Any = None) -> list[HistoryEdit]:
    """Remove each event (or each of the event ``rows`` given); add a cart / a purchase of the item.
    Sorted by how much the score moves (down first). ``state``: the case's `shopper_state`, when encoded already."""
    base = score_histories(model, case.batch, state)
    rank, score = int(ranks_of(base, case.item)[0]), float(base[0, case.item])
    edits: list[HistoryEdit] = []
    n = len(case.events)
    ts = case.history_ts
    rows = list(range(n)) if rows is None else sorted({int(r) for r in rows if 0 <= int(r) < n})
    if rows:
        removed = remove_columns(case.batch, [[case.event_column(r)] for r in rows])
        # the moment's time since the latest event changes when the latest event goes
        contexts = [case.context_for(case.scenario, np.delete(ts, r)) for r in rows]
        removed = Batch(removed.history, with_context(case.batch, contexts).context)
        scores = score_histories(model, removed)
        for r, rk, s in zip(rows, ranks_of(scores, case.item), scores[:, case.item].tolist()):
            edits.append(HistoryEdit("remove", r, int(rk), float(s), float(s) - score, int(rk) - rank))
    now = np.array([np.datetime64(case.scenario.utc(case.timezone), "s")])
    after = Batch(case.batch.history, with_context(case.batch, [case.context_for(case.scenario, np.concatenate([ts, now]))]).context)
    for kind, behavior in (("add_cart", "cart"), ("add_buy", "buy")):
        scores = score_histories(model, append_event(after, added_event(case, behavior)))
        rk, s = int(ranks_of(scores, case.item)[0]), float(scores[0, case.item])
        edits.append(HistoryEdit(kind, None, rk, s, s - score, rk - rank))
    edits.sort(key=lambda e: e.delta_score)
    return edits
