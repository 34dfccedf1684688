"""Integrated gradients (Captum) of the explained quantity over every input of the context transformer.

The explained quantity is the item's log-probability under the model's softmax over the whole
catalogue, ``log p(item) = s_item − logsumexp_j s_j`` (`explained_values`): it rises only when
an input lifts this item *more than the other items*, so it answers "why this item rather than
others" (docs/explanations.md). The raw score is kept beside it (``item_score``).

Ids are integers, so attributions are taken at the embedding layers
(`LayerIntegratedGradients`, docs/pitfalls.md): the path runs from every embedding
output at zero — the embedding of id 0, padding/unknown — to its actual value,
while *which* positions hold an event stays fixed. Masking an input therefore
means "this field is unknown", never "this event is gone". The repeat head
matches history events to items by id, outside any embedding; its item match is
one more input (``history.item_match``, `ItemMatch`): at the baseline the pointer
still looks at every event but lands on "unknown item", so a repeat boost is
credited to the history events that carry it. The same baseline serves
integrated gradients, the exact Shapley values (`shapley`) and the completeness
check: ``sum(attributions) ≈ f(x) − f(baseline)``.

Every history event gets four parts — item (item, category, price-band and item match),
behaviour, time (`context.TIME_FIELDS`) and scene (the data's scene fields) — and every
target-context field the model reads its own score.
"""

from __future__ import annotations

import copy
import math
import threading
import weakref
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from recsys_core.context import TIME_FIELDS
from recsys_core.models.base import Batch

HISTORY_PARTS = ("item", "behavior", "time", "scene")
QUANTITY = "log_prob"  # what the attributions explain (see the module docstring)
ITEM_MATCH = "history.item_match"
IG_ROWS = 256  # rows (items × steps) per integrated-gradients pass: bounds the memory of a batched pass


class ItemMatch(nn.Module):
    """The repeat head's item match as an input layer: 1 where a history position holds a known item.

    Its output scales how much of the pointer's weight on each event lands on that event's item
    (`scaled_layers`); integrated gradients and Shapley values move it from 0 (the pointer lands on
    "unknown item") to 1 like every embedding, so repeat boosts are credited to the events behind them.
    """

    def forward(self, item: torch.Tensor) -> torch.Tensor:  # (B, T) ids → (B, T) float
        return (item > 0).float()


@dataclass(frozen=True)
class InputLayer:
    """One input layer the explanations mask or attribute to.

    name: "history.<field>", "history.item_match" or "context.<field>"; side: "history" (output (B, T, D),
    or (B, T) for the item match) or "context" (output (B, D)); part: the history part (item/behavior/time/scene)
    or the context field.
    """

    name: str
    module: nn.Module
    side: str
    part: str


def check_explainable(model: nn.Module) -> nn.Module:
    """The model, when explanations apply to it (`explainable`: embeddings to attribute to); else ValueError."""
    if not getattr(model, "explainable", False):
        kind = getattr(model, "model_type", type(model).__name__)
        raise ValueError(f"explanations need a context_transformer or sasrec model; {kind!r} has no embeddings to attribute to")
    # the baseline of an event's category/price band is that of item 0 (padding), which must be id 0 too
    assert int(model.item_category[0]) == 0 and int(model.item_price_band[0]) == 0, "item 0 must have category and price band 0"
    return model


_private = threading.local()  # per thread: {id(served model): (weak reference to it, its weights' versions, the copy)}


def private_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) for the explanations to hook.

    Forward hooks — Captum's and `scaled_layers` — act on every call of a module, from any thread:
    on the model the app serves with, another session's forward pass would run through them. So
    attributions hook a private copy. A copy costs ~15 ms, so each thread keeps its own per model and
    makes a new one when the model's weights change in place (training); one thread runs one
    explanation at a time, so its copy is never hooked twice at once. Copies are marked and not copied again.
    """
    check_explainable(model)
    if getattr(model, "_explain_private", False):
        return model
    versions = tuple(p._version for p in model.parameters())
    kept = getattr(_private, "copies", None)
    if kept is None:
        kept = _private.copies = {}
    held = kept.get(id(model))
    if held is not None and held[0]() is model and held[1] == versions:
        return held[2]
    clone = copy.deepcopy(model).eval()
    clone._explain_private = True
    if getattr(clone.cfg, "use_repeat", False):
        clone._item_match = ItemMatch()
    for key in [k for k, (ref, _, _) in kept.items() if ref() is None]:
        del kept[key]  # models gone since (a swapped-out version)
    kept[id(model)] = (weakref.ref(model), versions, clone)
    return clone


def context_fields_read(model: nn.Module) -> tuple[str, ...]:
    """The target-context fields the model reads (an embedding each)."""
    return tuple(model.context_emb.keys())


def input_layers(model: nn.Module) -> list[InputLayer]:
    """Every layer that carries an input, in a fixed order (only those the model uses)."""
    check_explainable(model)
    layers = [InputLayer("history.item", model.item_emb, "history", "item")]
    if model.cfg.use_item_side:
        layers.append(InputLayer("history.category", model.category_emb, "history", "item"))
        layers.append(InputLayer("history.price_band", model.price_emb, "history", "item"))
    if model.cfg.use_repeat:  # (on a model that is not a private copy, a stand-in: the name is what counts there)
        layers.append(InputLayer(ITEM_MATCH, getattr(model, "_item_match", None) or ItemMatch(), "history", "item"))
    layers.append(InputLayer("history.behavior", model.behavior_emb, "history", "behavior"))
    for f, emb in model.history_emb.items():
        layers.append(InputLayer(f"history.{f}", emb, "history", "time" if f in TIME_FIELDS else "scene"))
    for f, emb in model.context_emb.items():
        layers.append(InputLayer(f"context.{f}", emb, "context", f))
    return layers


@contextmanager
def scaled_layers(scales: Mapping[nn.Module, torch.Tensor]) -> Iterator[None]:
    """Move each embedding's output towards its id-0 (padding/unknown) row by a per-row scale:
    (B,) or, for history layers, (B, T). 0 = the input is padding/unknown, 1 = as given.

    The id-0 row is zero in a trained model (``padding_idx=0``); interpolating towards the row
    itself keeps this exactly the baseline integrated gradients use even when it is not.
    (The item match is not an embedding: pass its scale to `state_scores`.)
    """
    def hook(scale: torch.Tensor):
        def fn(module, _inputs, out):
            s = scale.to(out.dtype)
            s = s.reshape(*s.shape, *([1] * (out.dim() - s.dim())))
            base = module.weight[0]
            return base + s * (out - base)
        return fn

    handles = [m.register_forward_hook(hook(s)) for m, s in scales.items() if isinstance(m, nn.Embedding)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    was = model.training
    if not was:  # already (a private copy always is): switching walks every module twice, ~1 ms
        yield
        return
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def explained_values(scores: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """The explained quantity per row: log-probability of ``items`` ((M,) dense ids) under the softmax of
    ``scores`` ((M, N+1), column 0 = −inf) → (M,)."""
    return torch.log_softmax(scores, dim=1).gather(1, items.view(-1, 1)).squeeze(1)


def item_scores(model: nn.Module, batch: Batch, items: torch.Tensor) -> torch.Tensor:
    """Raw score of one item per row ((B,) dense ids) — the same numbers as ``score_all`` → (B,)."""
    state = model.shopper_state(batch)
    return model.scores_from_state(state, batch.context).gather(1, items.view(-1, 1)).squeeze(1)  # (B,)


def item_values(model: nn.Module, batch: Batch, items: torch.Tensor) -> torch.Tensor:
    """The explained quantity (`explained_values`) of one item per row → (B,)."""
    state = model.shopper_state(batch)
    return explained_values(model.scores_from_state(state, batch.context), items)


def repeat_keys(model: nn.Module, state: Any) -> torch.Tensor | None:
    """The repeat head's keys of each state's history positions (U, T, D); None without a repeat head."""
    return model.repeat.k(state.hidden) if model.cfg.use_repeat else None


def state_scores(model: nn.Module, state: Any, index: torch.Tensor, context: Mapping[str, torch.Tensor],
                 match: torch.Tensor | None = None, keys: torch.Tensor | None = None) -> torch.Tensor:
    """``model.scores_from_state(state.select(index), context)`` computed for explaining: (M, N+1).

    Thousands of coalitions or candidate moments share a handful of shopper states, so the states are
    not copied per row: the repeat head's keys are projected once per state, the generation logits and
    the moment's category / price-band term come from one matrix product against a precomputed table,
    and the repeat boost is computed on the history's items only. ``match`` ((M, T) in [0, 1]) scales how
    much of the pointer's weight on each event lands on that event's item (`ItemMatch`; None = 1, the
    model's own scores); ``keys``: the states' projected keys when the caller scores them in chunks
    (`repeat_keys`). The same numbers as the model's (tests/test_explain_attributions.py).
    """
    index = torch.as_tensor(index, dtype=torch.long)
    M = len(index)
    q, c = model._fuse(state.last[index], context)  # (M, D)
    table = model.item_table()  # (N+1, D)
    if c is not None and model.cfg.use_item_side:
        side = model.category_emb.weight[model.item_category] + model.price_emb.weight[model.item_price_band]  # (N+1, D)
        out = torch.addmm(model.item_bias, torch.cat([q, model.context_to_side(c)], dim=1), torch.cat([table, side], dim=1).T)
    else:
        out = torch.addmm(model.item_bias, q, table.T)
    out[:, 0] = float("-inf")
    if not model.cfg.use_repeat:
        return out
    head = model.repeat
    T = state.items.shape[1]
    keys = repeat_keys(model, state) if keys is None else keys
    queries = head.q(q) / math.sqrt(q.shape[-1])  # (M, D)
    states = torch.unique(index)
    if 4 * len(states) >= M:
        r = torch.einsum("md,mtd->mt", queries, keys[index])
    else:
        r = torch.empty(M, T, dtype=queries.dtype)
        for u in states.tolist():
            rows = (index == u).nonzero().squeeze(1)
            r[rows] = queries[rows] @ keys[u].T
    items = state.items[index]  # (M, T)
    key_ok = items > 0
    distance = (T - 1 - torch.arange(T)).clamp_max(model.cfg.max_len - 1)
    r = r + head.distance_bias(distance).squeeze(-1)[None, :]
    r = r.masked_fill(~key_ok, float("-inf")).masked_fill(~key_ok.any(dim=1, keepdim=True), 0.0)
    alpha = r.softmax(dim=1) * key_ok  # (M, T)
    if match is not None:
        alpha = alpha * match[:, -T:].to(alpha.dtype)
    seen, where = torch.unique(items, return_inverse=True)  # the history's items (and 0)
    mass = torch.zeros(M, len(seen), dtype=alpha.dtype).scatter_add(1, where, alpha)  # (M, n_seen)
    w = head.gate(q).clamp(max=15.0).exp()  # (M, 1)
    boost = torch.log1p(w * mass)
    return out.index_add(1, seen, boost)


def repeat_batch(batch: Batch, n: int) -> Batch:
    """A (1, T) serving batch repeated ``n`` times."""
    assert batch.size == 1, f"expected one shopper's batch, got {batch.size} rows"
    return Batch({k: v.expand(n, -1) for k, v in batch.history.items()}, {k: v.expand(n) for k, v in batch.context.items()})


@torch.no_grad()
def values_at(model: nn.Module, batch: Batch, items: Sequence[int], keep: float) -> np.ndarray:
    """The explained quantity of each item with every input at ``keep`` (1 = as given, 0 = the baseline) → (I,)."""
    model = private_copy(model)
    n = len(items)
    rows = repeat_batch(batch, n)
    layers = input_layers(model)
    hist = {l.module: torch.full((n, batch.length), float(keep)) for l in layers if l.side == "history"}
    ctx = {l.module: torch.full((n,), float(keep)) for l in layers if l.side == "context"}
    match = torch.full((n, batch.length), float(keep))
    with eval_mode(model), scaled_layers(hist):
        state = model.shopper_state(rows)
    with eval_mode(model), scaled_layers(ctx):
        scores = state_scores(model, state, torch.arange(n), rows.context, match)
    return explained_values(scores, torch.tensor([int(i) for i in items])).double().numpy()


def baseline_score(model: nn.Module, batch: Batch, item: int) -> float:
    """f(baseline): every input at padding/unknown (the item match at "unknown item"), the same events in the same places."""
    return float(values_at(model, batch, [item], 0.0)[0])


def score(model: nn.Module, batch: Batch, item: int) -> float:
    """f(x): the explained quantity (the item's log-probability) for the batch as given."""
    return float(values_at(model, batch, [item], 1.0)[0])


@torch.no_grad()
def raw_score(model: nn.Module, batch: Batch, item: int) -> float:
    """The model's own score of the item (what `recommend` ranks by)."""
    with eval_mode(model):
        return float(item_scores(model, batch, torch.full((batch.size,), int(item)))[0])


@dataclass
class Attribution:
    """Integrated-gradients attributions of one item's log-probability for one shopper and moment.

    score / baseline_score: the explained quantity at the input and at the baseline; item_score: the
    model's raw score. history: (T, 4) — per history position (batch order, oldest first), the item,
    behaviour, time and scene parts; positions without an event are 0. valid: (T,) True where an event is.
    context: target-context field -> attribution. layers: layer name -> attribution summed over
    embedding dimensions ((T,) for history layers, a float for context layers).
    """

    score: float
    baseline_score: float
    history: np.ndarray
    valid: np.ndarray
    context: dict[str, float]
    layers: dict[str, np.ndarray | float]
    n_steps: int
    item_score: float = float("nan")
    quantity: str = QUANTITY

    @property
    def total(self) -> float:
        return float(self.history.sum() + sum(self.context.values()))

    @property
    def completeness_gap(self) -> float:
        """sum(attributions) − (f(x) − f(baseline)): zero for exact integrated gradients."""
        return self.total - (self.score - self.baseline_score)

    @property
    def relative_gap(self) -> float:
        """|completeness gap| as a share of |f(x) − f(baseline)|."""
        diff = abs(self.score - self.baseline_score)
        return abs(self.completeness_gap) / diff if diff > 0 else 0.0

    @property
    def event_totals(self) -> np.ndarray:
        """(T,) the sum of each history event's four parts."""
        return self.history.sum(axis=1)

    def vector(self) -> np.ndarray:
        """Every input's attribution as one flat vector (valid events × parts, then context fields)."""
        return np.concatenate([self.history[self.valid].ravel(), np.array(list(self.context.values()))])


def integrated_gradients(model: nn.Module, batch: Batch, item: int, n_steps: int = 50, method: str = "gausslegendre") -> Attribution:
    """Attribute ``item``'s log-probability for a (1, T) serving batch to every input (Captum LayerIntegratedGradients)."""
    return integrated_gradients_many(model, batch, [item], n_steps, method)[0]


def integrated_gradients_many(
    model: nn.Module, batch: Batch, items: Sequence[int], n_steps: int = 50, method: str = "gausslegendre", state: Any = None
) -> list[Attribution]:
    """`integrated_gradients` of several items of one shopper in batched passes (items × steps rows each).
    ``state``: the batch's ``model.shopper_state``, when encoded already (for the raw scores)."""
    from captum.attr import LayerIntegratedGradients

    assert batch.size == 1, f"integrated_gradients explains one shopper at a time, got {batch.size} rows"
    model = private_copy(model)
    layers = input_layers(model)
    hist, ctx = list(batch.history), list(batch.context)
    nh = len(hist)
    has_match = hasattr(model, "_item_match")

    def forward(*args: torch.Tensor) -> torch.Tensor:
        *ids, targets = args
        b = Batch(dict(zip(hist, ids[:nh])), dict(zip(ctx, ids[nh:])))
        state = model.shopper_state(b)
        match = model._item_match(b.history["item"]) if has_match else None  # Captum interpolates this output
        return explained_values(state_scores(model, state, torch.arange(b.size), b.context, match), targets)  # (rows,)

    items = [int(i) for i in items]
    n = len(items)
    inputs = tuple(batch.history[f].expand(n, -1) for f in hist) + tuple(batch.context[f].expand(n) for f in ctx)
    with eval_mode(model), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Mm]ultiple layers.*")
        lig = LayerIntegratedGradients(forward, [layer.module for layer in layers])
        raw = lig.attribute(
            inputs,
            baselines=tuple(torch.zeros_like(x) for x in inputs),
            additional_forward_args=(torch.tensor(items),),
            n_steps=n_steps,
            method=method,
            internal_batch_size=max(n_steps, IG_ROWS),
        )
    f_x, f_b = values_at(model, batch, items, 1.0), values_at(model, batch, items, 0.0)
    with torch.no_grad(), eval_mode(model):
        scores = model.score_all(batch) if state is None else model.scores_from_state(state, batch.context)
        raw_scores = scores[0, items].double().numpy()
    T = batch.length
    valid = (batch.history["item"][0] > 0).numpy()
    out = []
    for r in range(n):
        per_layer: dict[str, np.ndarray | float] = {}
        history = np.zeros((T, len(HISTORY_PARTS)))
        context: dict[str, float] = {}
        for layer, a in zip(layers, raw):
            a = a.detach().double()[r]
            a = a.sum(dim=-1) if a.dim() == 2 or (layer.side == "context" and a.dim() == 1) else a  # (T,) or ()
            if layer.side == "history":
                per_layer[layer.name] = a.numpy()
                history[:, HISTORY_PARTS.index(layer.part)] += a.numpy()
            else:
                per_layer[layer.name] = float(a)
                context[layer.part] = float(a)
        out.append(Attribution(float(f_x[r]), float(f_b[r]), history, valid, context, per_layer, n_steps, float(raw_scores[r])))
    return out
