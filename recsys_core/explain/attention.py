"""Attention weights of the context transformer, per layer and head, and attention rollout.

Attention says where the model *looked* when it built the shopper state at the
target position (the newest event, whose state is fused with the push moment);
it is not a measure of importance — that is what the attributions are for
(Jain & Wallace, 2019). Rollout (Abnar & Zuidema, 2020) follows the weights
through the layers, counting the residual connection as half of each step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recsys_core.explain.attributions import check_explainable
from recsys_core.models.base import Batch
from recsys_core.models.context_transformer import ContextTransformer


@dataclass
class AttentionMaps:
    """weights: (L, H, T, T) of one shopper (rows = queries, columns = keys); valid: (T,) True where an event is."""

    weights: np.ndarray
    valid: np.ndarray

    @property
    def n_layers(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.weights.shape[1])

    def target(self) -> np.ndarray:
        """(L, H, T): each head's weights from the target position (the newest event) over the history."""
        return self.weights[:, :, -1, :]

    def rollout(self, residual: float = 0.5) -> np.ndarray:
        """(T,) attention rollout from the target position: heads averaged, ``residual``·I added, rows
        renormalised, layers multiplied. Rows of the product still sum to 1 over valid, past positions."""
        T = self.weights.shape[-1]
        joint = np.eye(T)
        for layer in self.weights:  # (H, T, T)
            a = (1 - residual) * layer.mean(axis=0) + residual * np.eye(T)
            a = a / a.sum(axis=-1, keepdims=True)
            joint = a @ joint
        return joint[-1]


@torch.no_grad()
def attention_maps(model: ContextTransformer, batch: Batch) -> AttentionMaps:
    """Per-layer, per-head attention of a (1, T) serving batch (the model's own weights, no fast path)."""
    check_explainable(model)
    assert batch.size == 1, f"attention_maps reads one shopper at a time, got {batch.size} rows"
    maps = model.attention(batch)  # [(1, H, T', T')] with T' = min(T, max_len)
    weights = torch.stack([m[0] for m in maps]).double().numpy()  # (L, H, T', T')
    T = weights.shape[-1]
    return AttentionMaps(weights, (batch.history["item"][0, -T:] > 0).numpy())
