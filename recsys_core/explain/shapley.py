"""Shapley values of an item's log-probability over groups of inputs (history events, hour, each scene field, ...).

A coalition keeps its groups' inputs and turns every other input into
padding/unknown — the same baseline as the integrated gradients (`attributions`),
the item match of the repeat head included — so the values sum to
f(x) − f(baseline) and ``base_value`` is the baseline's log-probability.

Groups come from the model's schema: `case_groups` (what the explanations and the
reasons use) splits the history by what the events are about — this very item,
other items of its category, everything else — and gives the moment one group per
time aspect (hour, weekday, promotion, recency) and one per scene field the model
reads in the target context; `field_groups` splits the history by input kind instead.
With up to `MAX_EXACT_GROUPS` groups every coalition is evaluated, in batched
passes that encode each distinct history coalition once and fuse it with every
context coalition (several items at once: `shapley_values_many`); exact values then
follow from the Shapley formula. With more groups (e.g. one per recent event)
shap's permutation explainer samples coalitions (imported only then: the import alone takes seconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from recsys_core.explain.attributions import (
    ITEM_MATCH,
    eval_mode,
    explained_values,
    input_layers,
    private_copy,
    repeat_batch,
    repeat_keys,
    scaled_layers,
    state_scores,
)
from recsys_core.models.base import Batch

MAX_EXACT_GROUPS = 12
CHUNK_ROWS = 2048  # coalitions fused and scored per pass

# the time aspects of the target moment: group name -> the context fields it holds
TIME_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("hour", ("hour",)),
    ("weekday", ("weekday", "weekend")),
    ("promotion", ("promo", "holiday")),
    ("recency", ("gap",)),  # the time since the shopper's latest event
)
HISTORY_FIELD_GROUPS = ("history_items", "history_behaviour", "history_time", "history_scene")
HISTORY_EVENT_GROUPS = ("history_item", "history_category", "history_other")
SCENE_PREFIX = "scene."


def scene_group(field: str) -> str:
    return SCENE_PREFIX + field


def is_history_group(name: str) -> bool:
    return name.startswith("history")


@dataclass(frozen=True)
class FeatureGroup:
    """A player: some input layers, at the given history positions (batch columns; None = all)."""

    name: str
    layers: tuple[str, ...]
    positions: tuple[int, ...] | None = None

    @property
    def side(self) -> str:
        sides = {name.split(".")[0] for name in self.layers}
        assert len(sides) == 1, f"group {self.name} mixes history and context inputs"
        return sides.pop()


@dataclass
class ShapleyValues:
    base_value: float  # v(no group) = the baseline's log-probability
    score: float  # v(every group) = the item's log-probability
    values: dict[str, float]
    exact: bool
    n_evaluations: int
    positions: dict[str, tuple[int, ...] | None] | None = None  # history groups: their batch columns

    def top_positive(self) -> str | None:
        """The group with the largest positive value (None when no group lifts the item)."""
        best = max(self.values.items(), key=lambda kv: kv[1], default=(None, 0.0))
        return best[0] if best[1] > 0 else None

    def as_dict(self) -> dict[str, Any]:
        return {"base_value": self.base_value, "score": self.score, "values": dict(self.values), "exact": self.exact}


def context_groups(model: Any) -> list[FeatureGroup]:
    """One group per time aspect and per scene field the model reads in the target context (schema order)."""
    read = [layer.part for layer in input_layers(model) if layer.side == "context"]
    groups, used = [], set()
    for name, fields in TIME_GROUPS:
        have = tuple(f for f in fields if f in read)
        if have:
            groups.append(FeatureGroup(name, tuple(f"context.{f}" for f in have)))
            used.update(have)
    for f in read:
        if f not in used:
            groups.append(FeatureGroup(scene_group(f), (f"context.{f}",)))
    return groups


def history_layer_names(model: Any) -> tuple[str, ...]:
    return tuple(layer.name for layer in input_layers(model) if layer.side == "history")


def field_groups(model: Any) -> list[FeatureGroup]:
    """Groups by input kind: history items (incl. the item match), behaviour, time, scene; then `context_groups`."""
    parts = {"history_items": "item", "history_behaviour": "behavior", "history_time": "time", "history_scene": "scene"}
    layers = [layer for layer in input_layers(model) if layer.side == "history"]
    groups = [FeatureGroup(name, tuple(l.name for l in layers if l.part == part)) for name, part in parts.items()]
    return [g for g in groups if g.layers] + context_groups(model)


def event_groups(model: Any, batch: Batch, n_events: int = 8) -> list[FeatureGroup]:
    """One group per recent event (all its inputs), one for the older events, then the context groups."""
    history_layers = history_layer_names(model)
    valid = np.flatnonzero(batch.history["item"][0].numpy() > 0)
    recent, older = valid[-n_events:], valid[:-n_events]
    groups = [FeatureGroup(f"event[{i - len(recent)}]", history_layers, (int(p),)) for i, p in enumerate(recent)]
    if len(older):
        groups.insert(0, FeatureGroup("older_events", history_layers, tuple(int(p) for p in older)))
    return groups + context_groups(model)


def item_event_groups(model: Any, batch: Batch, item: int) -> list[FeatureGroup]:
    """The history split by what each event is about — this very item, other items of its category, the rest
    (empty groups left out) — then the context groups. What the reasons name."""
    ids = batch.history["item"][0].numpy()
    cats = model.item_category[torch.from_numpy(ids)].numpy()
    own_cat = int(model.item_category[int(item)])
    valid = ids > 0
    same = valid & (ids == int(item))
    cat = valid & ~same & (cats == own_cat) & (own_cat > 0)
    other = valid & ~same & ~cat
    layers = history_layer_names(model)
    groups = [FeatureGroup(name, layers, tuple(int(p) for p in np.flatnonzero(mask)))
              for name, mask in zip(HISTORY_EVENT_GROUPS, (same, cat, other)) if mask.any()]
    return groups + context_groups(model)


def case_groups(model: Any, case: Any) -> list[FeatureGroup]:
    """`item_event_groups` of a `cases.Case`."""
    return item_event_groups(model, case.batch, case.item)


def _layer_scales(model: Any, batch: Batch, groups: list[FeatureGroup], masks: np.ndarray) -> dict[str, np.ndarray]:
    """Per input layer, its scale in every coalition: (S, T) for history layers, (S,) for context layers.
    Checks that the groups cover every input exactly once (positions without an event don't matter)."""
    layers = {layer.name: layer for layer in input_layers(model)}
    S, T = masks.shape[0], batch.length
    valid = batch.history["item"][0].numpy() > 0
    cover = {name: np.zeros(T if layer.side == "history" else 1, int) for name, layer in layers.items()}
    scales = {name: np.zeros((S, T) if layer.side == "history" else S, np.float32) for name, layer in layers.items()}
    for g, group in enumerate(groups):
        for name in group.layers:
            if name not in layers:
                raise ValueError(f"group {group.name!r} names {name!r}, which this model does not have")
            if layers[name].side == "history":
                cols = list(range(T)) if group.positions is None else list(group.positions)
                scales[name][:, cols] = masks[:, g : g + 1]
                cover[name][cols] += 1
            else:
                scales[name][:] = masks[:, g]
                cover[name] += 1
    for name, count in cover.items():
        need = valid if layers[name].side == "history" else np.ones(1, bool)
        if np.any(count[need] != 1):
            raise ValueError(f"feature groups must cover input {name} exactly once at every event")
    return scales


@torch.no_grad()
def coalition_values_many(model: Any, batch: Batch, jobs: Sequence[tuple[int, list[FeatureGroup], np.ndarray]]) -> list[np.ndarray]:
    """v(S) for several (item, groups, masks) of one shopper, in shared passes: every distinct history
    coalition (over all jobs) is encoded once, then each coalition row is scored → one (S_j,) array per job."""
    model = private_copy(model)  # the hooks below must not touch a model other threads serve with
    layers = {layer.name: layer for layer in input_layers(model)}
    encode_names = [n for n, l in layers.items() if l.side == "history" and n != ITEM_MATCH]
    per_job, items, sizes, codes = [], [], [], []
    for j, (item, groups, masks) in enumerate(jobs):
        masks = np.asarray(masks, dtype=bool)
        assert masks.ndim == 2 and masks.shape[1] == len(groups), f"masks must be (S, {len(groups)})"
        per_job.append(_layer_scales(model, batch, groups, masks))
        items.append(np.full(len(masks), int(item)))
        sizes.append(len(masks))
        # a row's history coalition: its job and the bits of its history groups (they fix the encoding's scales)
        hist = [g for g, group in enumerate(groups) if group.side == "history"]
        codes.append((masks[:, hist].astype(np.int64) << np.arange(len(hist))).sum(axis=1) + j * (1 << 20))
    scales = {name: np.concatenate([job[name] for job in per_job]) for name in layers}
    rows_item = torch.from_numpy(np.concatenate(items))
    n_rows = len(rows_item)
    _, first_of, inverse = np.unique(np.concatenate(codes), return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    out = np.empty(n_rows)
    with eval_mode(model):
        hist_scales = {layers[n].module: torch.from_numpy(scales[n][first_of]) for n in encode_names}
        with scaled_layers(hist_scales):
            state = model.shopper_state(repeat_batch(batch, len(first_of)))  # one shopper state per history coalition
        keys = repeat_keys(model, state)
        for lo in range(0, n_rows, CHUNK_ROWS):
            rows = slice(lo, lo + CHUNK_ROWS)
            n = len(rows_item[rows])
            ctx_scales = {layers[n_].module: torch.from_numpy(s[rows]) for n_, s in scales.items() if layers[n_].side == "context"}
            match = torch.from_numpy(scales[ITEM_MATCH][rows]) if ITEM_MATCH in scales else None
            context = {k: v.expand(n) for k, v in batch.context.items()}
            with scaled_layers(ctx_scales):
                scores = state_scores(model, state, torch.from_numpy(inverse[rows]), context, match, keys)
                out[rows] = explained_values(scores, rows_item[rows]).double().numpy()
    return list(np.split(out, np.cumsum(sizes)[:-1]))


def coalition_values(model: Any, batch: Batch, item: int, groups: list[FeatureGroup], masks: np.ndarray) -> np.ndarray:
    """v(S) for each coalition row of ``masks`` ((S, G) bool: True = the group keeps its inputs) → (S,)."""
    return coalition_values_many(model, batch, [(item, groups, masks)])[0]


def all_coalitions(n_groups: int) -> np.ndarray:
    """(2^G, G) bool: row s is the coalition whose bit g is set."""
    s = np.arange(2**n_groups)[:, None]
    return ((s >> np.arange(n_groups)[None, :]) & 1).astype(bool)


def exact_from_values(v: np.ndarray, n_groups: int) -> np.ndarray:
    """Shapley values from v over all coalitions (indexed by bitmask): φ_i = Σ_S |S|!(G−|S|−1)!/G! (v(S∪i) − v(S))."""
    G = n_groups
    idx = np.arange(2**G)
    size = np.array([bin(i).count("1") for i in range(2**G)])
    weight = np.array([math.factorial(s) * math.factorial(G - s - 1) / math.factorial(G) for s in range(G)])
    phi = np.empty(G)
    for i in range(G):
        without = idx[(idx >> i) & 1 == 0]
        phi[i] = np.sum(weight[size[without]] * (v[without | (1 << i)] - v[without]))
    return phi


def _exact(groups: list[FeatureGroup], v: np.ndarray) -> ShapleyValues:
    phi = exact_from_values(v, len(groups))
    return ShapleyValues(float(v[0]), float(v[-1]), {g.name: float(p) for g, p in zip(groups, phi)}, True, len(v),
                         {g.name: g.positions for g in groups if g.side == "history"})


def shapley_values_many(model: Any, batch: Batch, items: Sequence[int], groups: Sequence[list[FeatureGroup]]) -> list[ShapleyValues]:
    """Exact Shapley values of several items of one shopper (one group list per item), in shared passes."""
    model = private_copy(model)
    for g in groups:
        assert len(g) <= MAX_EXACT_GROUPS, f"{len(g)} groups: use shapley_values for sampled values"
    values = coalition_values_many(model, batch, [(int(i), g, all_coalitions(len(g))) for i, g in zip(items, groups)])
    return [_exact(g, v) for g, v in zip(groups, values)]


def shapley_values(
    model: Any, batch: Batch, item: int, groups: list[FeatureGroup] | None = None, max_evals: int = 2000, seed: int = 0
) -> ShapleyValues:
    """Shapley values of ``item``'s log-probability over ``groups`` (default `item_event_groups`) for a (1, T) batch."""
    assert batch.size == 1, f"shapley_values explains one shopper at a time, got {batch.size} rows"
    model = private_copy(model)
    groups = groups or item_event_groups(model, batch, item)
    G = len(groups)
    if G <= MAX_EXACT_GROUPS:
        return shapley_values_many(model, batch, [item], [groups])[0]
    import shap  # lazily: seconds to import, and its first call compiles (docs/pitfalls.md)

    calls = []

    def f(z: np.ndarray) -> np.ndarray:
        calls.append(len(z))
        return coalition_values(model, batch, item, groups, z > 0.5)

    masker = shap.maskers.Independent(np.zeros((1, G)), max_samples=1)
    explainer = shap.PermutationExplainer(f, masker, seed=seed)
    result = explainer(np.ones((1, G)), max_evals=max(max_evals, 2 * G + 1), silent=True)
    full = coalition_values(model, batch, item, groups, np.ones((1, G), bool))[0]
    return ShapleyValues(
        float(np.ravel(result.base_values)[0]), float(full), {g.name: float(p) for g, p in zip(groups, result.values[0])}, False, sum(calls),
        {g.name: g.positions for g in groups if g.side == "history"},
    )
