"""Shapley values of an item's score over groups of inputs (history items, hour, device, ...).

A coalition keeps its groups' inputs and turns every other input into
padding/unknown — the same baseline as the integrated gradients — so the values
sum to f(x) − f(baseline) and ``base_value`` is the baseline score. With up to
`MAX_EXACT_GROUPS` groups every coalition is evaluated, in batched passes that
encode each distinct history coalition once and fuse it with every context
coalition; exact values then follow from the Shapley formula. With more groups
(e.g. one per recent event) shap's permutation explainer samples coalitions
(shap is imported only then: the import alone takes seconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from recsys_core.explain.attributions import eval_mode, input_layers, private_copy, repeat_batch, scaled_layers
from recsys_core.features import SCENE_FIELDS, TIME_FIELDS
from recsys_core.models.base import Batch
from recsys_core.models.context_transformer import ContextTransformer

MAX_EXACT_GROUPS = 12
CHUNK_ROWS = 4096  # coalitions fused and scored per pass

# group name -> the input layers it holds (those the model lacks are dropped)
FIELD_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("history_items", ("history.item", "history.category", "history.price_band")),
    ("history_behaviour", ("history.behavior",)),
    ("history_time", tuple(f"history.{f}" for f in TIME_FIELDS)),
    ("history_scene", tuple(f"history.{f}" for f in SCENE_FIELDS)),
    ("hour", ("context.hour",)),
    ("weekday", ("context.weekday", "context.weekend")),
    ("promotion", ("context.promo", "context.holiday")),
    ("recency", ("context.gap",)),  # the time since the shopper's latest event, when the model reads it
    ("device", ("context.device",)),
    ("channel", ("context.channel",)),
    ("location", ("context.location",)),
)
CONTEXT_GROUPS = tuple(name for name, layers in FIELD_GROUPS if layers[0].startswith("context."))


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
    base_value: float  # v(no group) = the baseline score
    score: float  # v(every group) = the item's score
    values: dict[str, float]
    exact: bool
    n_evaluations: int

    def as_dict(self) -> dict:
        return {"base_value": self.base_value, "score": self.score, "values": dict(self.values), "exact": self.exact}


def field_groups(model: ContextTransformer) -> list[FeatureGroup]:
    """The standard groups (history items, behaviour, time, scene; hour, weekday, promotion, recency, device,
    channel, location) restricted to the inputs this model has."""
    have = {layer.name for layer in input_layers(model)}
    groups = [FeatureGroup(name, tuple(l for l in layers if l in have)) for name, layers in FIELD_GROUPS]
    return [g for g in groups if g.layers]


def event_groups(model: ContextTransformer, batch: Batch, n_events: int = 8) -> list[FeatureGroup]:
    """One group per recent event (all its inputs), one for the older events, then the context groups."""
    history_layers = tuple(layer.name for layer in input_layers(model) if layer.side == "history")
    valid = np.flatnonzero(batch.history["item"][0].numpy() > 0)
    recent, older = valid[-n_events:], valid[:-n_events]
    groups = [FeatureGroup(f"event[{i - len(recent)}]", history_layers, (int(p),)) for i, p in enumerate(recent)]
    if len(older):
        groups.insert(0, FeatureGroup("older_events", history_layers, tuple(int(p) for p in older)))
    return groups + [g for g in field_groups(model) if g.side == "context"]


def _layer_scales(model: ContextTransformer, batch: Batch, groups: list[FeatureGroup], masks: np.ndarray) -> dict[str, torch.Tensor]:
    """Per input layer, its scale in every coalition: (S, T) for history layers, (S,) for context layers.
    Checks that the groups cover every input exactly once (positions without an event don't matter)."""
    layers = {layer.name: layer for layer in input_layers(model)}
    S, T = masks.shape[0], batch.length
    valid = batch.history["item"][0].numpy() > 0
    cover = {name: np.zeros(T if layer.side == "history" else 1, int) for name, layer in layers.items()}
    scales = {name: np.zeros((S, T) if layer.side == "history" else S) for name, layer in layers.items()}
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
    return {name: torch.from_numpy(s).float() for name, s in scales.items()}


@torch.no_grad()
def coalition_values(model: ContextTransformer, batch: Batch, item: int, groups: list[FeatureGroup], masks: np.ndarray) -> np.ndarray:
    """v(S) for each coalition row of ``masks`` ((S, G) bool: True = the group keeps its inputs) → (S,)."""
    model = private_copy(model)  # the hooks below must not touch a model other threads serve with
    masks = np.asarray(masks, dtype=bool)
    assert masks.ndim == 2 and masks.shape[1] == len(groups), f"masks must be (S, {len(groups)})"
    layers = {layer.name: layer for layer in input_layers(model)}
    hist_cols = [g for g, group in enumerate(groups) if group.side == "history"]
    uniq, inverse = np.unique(masks[:, hist_cols], axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    # one history encoding per distinct history coalition
    first_of = np.zeros(len(uniq), int)
    first_of[inverse[::-1]] = np.arange(len(masks))[::-1]
    scales = _layer_scales(model, batch, groups, masks)
    out = np.empty(len(masks))
    with eval_mode(model):
        hist_scales = {layers[n].module: s[first_of] for n, s in scales.items() if layers[n].side == "history"}
        with scaled_layers(hist_scales):
            state = model.shopper_state(repeat_batch(batch, len(uniq)))  # one shopper state per history coalition
        for lo in range(0, len(masks), CHUNK_ROWS):
            rows = slice(lo, lo + CHUNK_ROWS)
            n = len(masks[rows])
            ctx_scales = {layers[n_].module: s[rows] for n_, s in scales.items() if layers[n_].side == "context"}
            context = {k: v.expand(n) for k, v in batch.context.items()}
            with scaled_layers(ctx_scales):
                v = model.scores_from_state(state.select(torch.from_numpy(inverse[rows])), context)[:, item]  # (n,)
            out[rows] = v.double().numpy()
    return out


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


def shapley_values(
    model: ContextTransformer, batch: Batch, item: int, groups: list[FeatureGroup] | None = None, max_evals: int = 2000, seed: int = 0
) -> ShapleyValues:
    """Shapley values of ``item``'s score over ``groups`` (default `field_groups`) for a (1, T) batch."""
    assert batch.size == 1, f"shapley_values explains one shopper at a time, got {batch.size} rows"
    model = private_copy(model)
    groups = groups or field_groups(model)
    G = len(groups)
    if G <= MAX_EXACT_GROUPS:
        masks = all_coalitions(G)
        v = coalition_values(model, batch, item, groups, masks)
        phi = exact_from_values(v, G)
        return ShapleyValues(float(v[0]), float(v[-1]), {g.name: float(p) for g, p in zip(groups, phi)}, True, len(v))
    import shap  # lazily: seconds to import, and its first call compiles (GOTCHAS)

    calls = []

    def f(z: np.ndarray) -> np.ndarray:
        calls.append(len(z))
        return coalition_values(model, batch, item, groups, z > 0.5)

    masker = shap.maskers.Independent(np.zeros((1, G)), max_samples=1)
    explainer = shap.PermutationExplainer(f, masker, seed=seed)
    result = explainer(np.ones((1, G)), max_evals=max(max_evals, 2 * G + 1), silent=True)
    full = coalition_values(model, batch, item, groups, np.ones((1, G), bool))[0]
    return ShapleyValues(
        float(np.ravel(result.base_values)[0]), float(full), {g.name: float(p) for g, p in zip(groups, result.values[0])}, False, sum(calls)
    )
