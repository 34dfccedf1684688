"""Tiny randomly initialised context transformers and batches for the explanation tests (no training).

Weights are drawn with std 0.5 (not the model's 0.02) so that every input visibly moves the score;
the padding rows stay zero and item 0 keeps category and price band 0, as in a trained model.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import torch

from recsys_core.context import TIME_FIELDS, scene_field
from recsys_core.features import EVENT_FIELDS, Calendar, FeatureSpace
from recsys_core.models.base import Batch
from recsys_core.models.context_transformer import ContextTransformer, ContextTransformerConfig
from recsys_core.registry import LoadedModel

N_ITEMS = 30
ID_RANGES = {"item": N_ITEMS + 1, "behavior": 5, "hour": 25, "weekday": 8, "weekend": 3, "holiday": 3, "promo": 3, "gap": 12,
             "device": 4, "channel": 6, "location": 5}
VOCAB_SIZES = {**ID_RANGES, "category": 6, "price_band": 9}
SCENE = ("device", "channel", "location")  # the scene fields of these tiny models (the sample world's)
HISTORY_FIELDS = EVENT_FIELDS + TIME_FIELDS + SCENE
CONTEXT_FIELDS = TIME_FIELDS + SCENE


def randomise(model: ContextTransformer, seed: int = 0, std: float = 0.5) -> ContextTransformer:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            for name, p in module.named_parameters(recurse=False):
                if "ln" in name or isinstance(module, torch.nn.LayerNorm):
                    continue
                p.copy_(torch.randn(p.shape, generator=g) * std)
            if isinstance(module, torch.nn.Embedding) and module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
    return model.eval()


def tiny_model(seed: int = 0, max_len: int = 12, n_layers: int = 2, n_heads: int = 2, std: float = 0.5, **flags) -> ContextTransformer:
    torch.manual_seed(seed)
    cfg = ContextTransformerConfig(n_items=N_ITEMS, vocab_sizes=VOCAB_SIZES, max_len=max_len, d_model=16,
                                   n_heads=n_heads, n_layers=n_layers, dropout=0.1, **flags)
    g = torch.Generator().manual_seed(seed + 100)
    category = torch.randint(1, VOCAB_SIZES["category"], (N_ITEMS + 1,), generator=g)
    band = torch.randint(1, VOCAB_SIZES["price_band"], (N_ITEMS + 1,), generator=g)
    category[0] = band[0] = 0
    return randomise(ContextTransformer(cfg, category, band), seed, std)


def tiny_batch(T: int = 8, pad: int = 0, seed: int = 1) -> Batch:
    """One shopper: T columns, the first ``pad`` of them padding."""
    g = torch.Generator().manual_seed(seed)
    history = {f: torch.randint(1, ID_RANGES[f], (1, T), generator=g) for f in HISTORY_FIELDS}
    for v in history.values():
        v[:, :pad] = 0
    context = {f: torch.randint(1, ID_RANGES[f], (1,), generator=g) for f in CONTEXT_FIELDS}
    return Batch(history, context)


def tiny_features() -> FeatureSpace:
    """A feature space matching `tiny_model`'s vocabularies: items i0..i29, categories c1..c5."""
    from recsys_core.features import BEHAVIORS, Vocabulary

    items = Vocabulary([f"i{n}" for n in range(N_ITEMS)])
    return FeatureSpace(
        calendar=Calendar(),
        items=items,
        behavior=Vocabulary(BEHAVIORS),
        category=Vocabulary([f"c{n}" for n in range(1, 6)]),
        scene_fields=[scene_field(f) for f in SCENE],
        scene={"device": Vocabulary(["mobile", "pc", "tablet"]),
               "channel": Vocabulary(["cart", "home_feed", "live_stream", "push", "search"]),
               "location": Vocabulary(["city", "commute", "home", "office"])},
        item_category=np.zeros(N_ITEMS + 1, np.int64),
        item_price_band=np.zeros(N_ITEMS + 1, np.int64),
    )


def tiny_loaded(seed: int = 0, std: float = 0.5, **flags) -> LoadedModel:
    features = tiny_features()
    model = tiny_model(seed, std=std, **flags)
    features.item_category = model.item_category.numpy().copy()
    features.item_price_band = model.item_price_band.numpy().copy()
    meta = {"model_type": "context_transformer", "version": f"tiny-{seed}", "context_fields": list(model.cfg.context_fields)}
    return LoadedModel(model, features, meta, None)  # type: ignore[arg-type]


def local(s: str) -> dt.datetime:
    return pd.Timestamp(s).to_pydatetime()


def save_tiny_model(out, seed: int = 0, std: float = 0.25):
    """A tiny random context transformer saved as a model folder (vocabularies of `tests.app_db`'s small store);
    smoother than the unit-test models, like a trained one, so 50 integrated-gradient steps suffice."""
    from recsys_core.registry import save_model

    lm = tiny_loaded(seed, std)
    return save_model(lm.model, lm.features, out, {"protocol": "next_session", "metrics": {}, "context_fields": list(lm.context_fields)})

