"""Integrated gradients (Captum) over every input of the context transformer.

Ids are integers, so attributions are taken at the embedding layers
(`LayerIntegratedGradients`, GOTCHAS): the path runs from every embedding
output at zero — the embedding of id 0, padding/unknown — to its actual value,
while *which* positions hold an event stays fixed. Masking an input therefore
means "this field is unknown", never "this event is gone", and the same
baseline serves integrated gradients, the exact Shapley values (`shapley`) and
the completeness check: ``sum(attributions) ≈ f(x) − f(baseline)``.

Every history event gets four parts — item (item, category and price-band
embeddings), behaviour, time (hour, weekday, weekend, holiday, promotion, gap)
and scene (device, channel, location) — and every target-context field its own
score.
"""

from __future__ import annotations

import copy
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping

import numpy as np
import torch
from torch import nn

from recsys_core.features import CONTEXT_FIELDS, HISTORY_FIELDS, TIME_FIELDS
from recsys_core.models.base import Batch
from recsys_core.models.context_transformer import ContextTransformer

HISTORY_PARTS = ("item", "behavior", "time", "scene")


@dataclass(frozen=True)
class InputLayer:
    """One embedding layer the explanations mask or attribute to.

    name: "history.<field>" or "context.<field>"; side: "history" (output (B, T, D)) or
    "context" (output (B, D)); part: the history part (item/behavior/time/scene) or the context field.
    """

    name: str
    module: nn.Embedding
    side: str
    part: str


def check_explainable(model: nn.Module) -> ContextTransformer:
    if not isinstance(model, ContextTransformer):
        kind = getattr(model, "model_type", type(model).__name__)
        raise ValueError(f"explanations need a context_transformer or sasrec model; {kind!r} has no embeddings to attribute to")
    # the baseline of an event's category/price band is that of item 0 (padding), which must be id 0 too
    assert int(model.item_category[0]) == 0 and int(model.item_price_band[0]) == 0, "item 0 must have category and price band 0"
    return model


def private_copy(model: ContextTransformer) -> ContextTransformer:
    """A copy of ``model`` (eval mode) for the explanations to hook.

    Forward hooks — Captum's and `scaled_layers` — act on every call of a module, from any thread:
    on the model the app serves with, another session's forward pass would run through them. So
    attributions hook a private copy (a few milliseconds to make; copies are marked and not copied again).
    """
    check_explainable(model)
    if getattr(model, "_explain_private", False):
        return model
    clone = copy.deepcopy(model).eval()
    clone._explain_private = True
    return clone


def input_layers(model: ContextTransformer) -> list[InputLayer]:
    """Every embedding layer that carries an input, in a fixed order (only those the model uses)."""
    check_explainable(model)
    layers = [InputLayer("history.item", model.item_emb, "history", "item")]
    if model.cfg.use_item_side:
        layers.append(InputLayer("history.category", model.category_emb, "history", "item"))
        layers.append(InputLayer("history.price_band", model.price_emb, "history", "item"))
    layers.append(InputLayer("history.behavior", model.behavior_emb, "history", "behavior"))
    for f, emb in model.history_emb.items():
        layers.append(InputLayer(f"history.{f}", emb, "history", "time" if f in TIME_FIELDS else "scene"))
    for f, emb in model.context_emb.items():
        layers.append(InputLayer(f"context.{f}", emb, "context", f))
    return layers


@contextmanager
def scaled_layers(scales: Mapping[nn.Embedding, torch.Tensor]) -> Iterator[None]:
    """Move each embedding's output towards its id-0 (padding/unknown) row by a per-row scale:
    (B,) or, for history layers, (B, T). 0 = the input is padding/unknown, 1 = as given.

    The id-0 row is zero in a trained model (``padding_idx=0``); interpolating towards the row
    itself keeps this exactly the baseline integrated gradients use even when it is not.
    """
    def hook(scale: torch.Tensor):
        def fn(module, _inputs, out):
            s = scale.to(out.dtype)
            s = s.reshape(*s.shape, *([1] * (out.dim() - s.dim())))
            base = module.weight[0]
            return base + s * (out - base)
        return fn

    handles = [m.register_forward_hook(hook(s)) for m, s in scales.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def item_scores(model: ContextTransformer, batch: Batch, items: torch.Tensor) -> torch.Tensor:
    """Score of one item per row ((B,) dense ids) — the same numbers as ``score_all`` → (B,)."""
    state = model.shopper_state(batch)
    return model.scores_from_state(state, batch.context).gather(1, items.view(-1, 1)).squeeze(1)  # (B,)


def repeat_batch(batch: Batch, n: int) -> Batch:
    """A (1, T) serving batch repeated ``n`` times."""
    assert batch.size == 1, f"expected one shopper's batch, got {batch.size} rows"
    return Batch({k: v.expand(n, -1) for k, v in batch.history.items()}, {k: v.expand(n) for k, v in batch.context.items()})


@torch.no_grad()
def baseline_score(model: ContextTransformer, batch: Batch, item: int) -> float:
    """f(baseline): every input embedding at zero (padding/unknown), the same events in the same places."""
    model = private_copy(model)
    with eval_mode(model), scaled_layers({layer.module: torch.zeros(batch.size) for layer in input_layers(model)}):
        return float(item_scores(model, batch, torch.full((batch.size,), int(item)))[0])


@torch.no_grad()
def score(model: ContextTransformer, batch: Batch, item: int) -> float:
    with eval_mode(model):
        return float(item_scores(model, batch, torch.full((batch.size,), int(item)))[0])


@dataclass
class Attribution:
    """Integrated-gradients attributions of one item's score for one shopper and moment.

    history: (T, 4) — per history position (batch order, oldest first), the item, behaviour, time
    and scene parts; positions without an event are 0. valid: (T,) True where an event is.
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


def _batch_inputs(batch: Batch) -> tuple[list[str], list[str], tuple[torch.Tensor, ...]]:
    hist = [f for f in HISTORY_FIELDS if f in batch.history]
    ctx = [f for f in CONTEXT_FIELDS if f in batch.context]
    return hist, ctx, tuple(batch.history[f] for f in hist) + tuple(batch.context[f] for f in ctx)


def integrated_gradients(
    model: ContextTransformer, batch: Batch, item: int, n_steps: int = 50, method: str = "gausslegendre"
) -> Attribution:
    """Attribute ``item``'s score for a (1, T) serving batch to every input (Captum LayerIntegratedGradients)."""
    from captum.attr import LayerIntegratedGradients

    assert batch.size == 1, f"integrated_gradients explains one shopper at a time, got {batch.size} rows"
    model = private_copy(model)
    layers = input_layers(model)
    hist, ctx, inputs = _batch_inputs(batch)
    nh = len(hist)

    def forward(*args: torch.Tensor) -> torch.Tensor:
        *ids, items = args
        b = Batch(dict(zip(hist, ids[:nh])), dict(zip(ctx, ids[nh:])))
        return item_scores(model, b, items)  # (n_steps,)

    target = torch.tensor([int(item)])
    with eval_mode(model), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Mm]ultiple layers.*")
        lig = LayerIntegratedGradients(forward, [layer.module for layer in layers])
        raw = lig.attribute(
            inputs,
            baselines=tuple(torch.zeros_like(x) for x in inputs),
            additional_forward_args=(target,),
            n_steps=n_steps,
            method=method,
        )
    per_layer: dict[str, np.ndarray | float] = {}
    T = batch.length
    history = np.zeros((T, len(HISTORY_PARTS)))
    context: dict[str, float] = {}
    for layer, a in zip(layers, raw):
        a = a.detach().double().sum(dim=-1)[0]  # (T,) or ()
        if layer.side == "history":
            per_layer[layer.name] = a.numpy()
            history[:, HISTORY_PARTS.index(layer.part)] += a.numpy()
        else:
            per_layer[layer.name] = float(a)
            context[layer.part] = float(a)
    return Attribution(
        score=score(model, batch, item),
        baseline_score=baseline_score(model, batch, item),
        history=history,
        valid=(batch.history["item"][0] > 0).numpy(),
        context=context,
        layers=per_layer,
        n_steps=n_steps,
    )
