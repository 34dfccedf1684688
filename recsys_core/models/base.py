"""The one interface every ScenePush model implements (docs/design.md §4), neural or count-based.

A model sees a `Batch` of integer ids and scores the whole catalogue; the
evaluator, the trainer, the serving API and the explanations all go through
`score_all`, so a baseline and the context transformer are interchangeable.

Dense item ids are 1..n_items; column/id 0 is padding and always scores -inf.
Every other field uses id 0 for "padding or unknown" (see `recsys_core.features`).

Persistence: a model is rebuilt from `config_dict()` (plain JSON) by
`MODEL_REGISTRY[model_type].from_config(config)` and then receives its tensors
(`state_dict()`, saved as safetensors by `recsys_core.registry`). Count-based
models keep their statistics in registered buffers so they persist the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Sequence

import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from recsys_core.sequences import Split


@dataclass
class Batch:
    """Histories plus the target context, as id tensors.

    history: field -> LongTensor (B, T), LEFT-padded (the most recent event is at T-1), 0 = padding.
        Keys: item, behavior, hour, weekday, weekend, holiday, promo, gap and every scene field
        (`FeatureSpace.history_fields()`). Padding rows are where ``history["item"] == 0``.
    context: field -> LongTensor (B,) — the time and scene of the moment being predicted
        (time fields and the scene fields the model reads; 0 = unknown).
        In TRAINING batches it is (B, T): at each position, the context of the event that follows it.
    targets: LongTensor (B,) of dense item ids 1..n_items (evaluation), or (B, T) in training with 0 = no
        target at that position; None when serving.
    weights: FloatTensor (B, T) loss weight of each training position (None = 1 where there is a target).
    """

    history: dict[str, torch.Tensor]
    context: dict[str, torch.Tensor]
    targets: torch.Tensor | None = None
    weights: torch.Tensor | None = None

    def __post_init__(self) -> None:
        assert "item" in self.history, "a batch's history needs an 'item' field"
        item = self.history["item"]
        assert item.dim() == 2, f"history tensors are (B, T), got {tuple(item.shape)}"
        for name, t in self.history.items():
            assert t.shape == item.shape, f"history field {name} has shape {tuple(t.shape)}, item has {tuple(item.shape)}"

    @property
    def size(self) -> int:
        return int(self.history["item"].shape[0])

    @property
    def length(self) -> int:
        return int(self.history["item"].shape[1])

    @property
    def per_position(self) -> bool:
        """True for training batches (context and targets per position, (B, T))."""
        ctx = next(iter(self.context.values()), None)
        return bool(ctx is not None and ctx.dim() == 2) or bool(self.targets is not None and self.targets.dim() == 2)

    def to(self, device: torch.device | str) -> "Batch":
        move = lambda d: {k: v.to(device) for k, v in d.items()}  # noqa: E731
        return Batch(
            move(self.history),
            move(self.context),
            None if self.targets is None else self.targets.to(device),
            None if self.weights is None else self.weights.to(device),
        )


class Recommender(nn.Module):
    """Base of every model.

    Subclasses set ``model_type`` (the MODEL_REGISTRY key) and implement
    `score_all`, `config_dict` and `from_config`. Neural models set
    ``trainable = True`` and implement `loss(batch)`; `recsys_core.train` runs the
    loop. Count-based models implement `fit(split)` and keep what they count in
    buffers. ``history_len`` is how many recent events the model reads (batches
    may be longer; models use the last ``history_len`` columns).
    """

    model_type: ClassVar[str] = ""
    trainable: ClassVar[bool] = False
    explainable: ClassVar[bool] = False  # embeddings to attribute to (Captum, attention, Shapley)

    def __init__(self, n_items: int, history_len: int = 50):
        super().__init__()
        assert n_items >= 1, "a model needs at least one item"
        self.n_items = int(n_items)
        self.history_len = int(history_len)

    # --- the interface ---------------------------------------------------------------

    def score_all(self, batch: Batch) -> torch.Tensor:
        """Scores of every item for each row: FloatTensor (B, n_items + 1), column 0 = -inf, all finite elsewhere."""
        raise NotImplementedError

    def config_dict(self) -> dict[str, Any]:
        """Plain-JSON configuration from which `from_config` rebuilds an untrained model of the same shape."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Recommender":
        raise NotImplementedError

    def fit(self, split: "Split") -> dict[str, Any]:
        """Count-based models learn from ``split`` (its training events only) and return summary figures.
        Neural models are trained by `recsys_core.train` through `loss` instead."""
        raise NotImplementedError(f"{self.model_type} is trained by recsys_core.train, not fit()")

    def loss(self, batch: Batch) -> torch.Tensor:
        """Training loss of a training batch (neural models only)."""
        raise NotImplementedError(f"{self.model_type} has no gradient training")

    # --- shared behaviour ------------------------------------------------------------

    @torch.no_grad()
    def recommend(
        self, batch: Batch, k: int = 10, exclude: torch.Tensor | Sequence[Iterable[int]] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k per row: (scores (B, k), dense item ids (B, k)), best first.

        ``exclude`` is a bool mask (B, n_items + 1) or, per row, an iterable of dense ids never to return.
        """
        scores = self.score_all(batch).clone()  # (B, N+1)
        if exclude is not None:
            if isinstance(exclude, torch.Tensor):
                assert exclude.shape == scores.shape, f"exclude mask must be {tuple(scores.shape)}"
                scores = scores.masked_fill(exclude.to(torch.bool), float("-inf"))
            else:
                for row, ids in enumerate(exclude):
                    ids = [int(i) for i in ids]
                    if ids:
                        scores[row, ids] = float("-inf")
        k = min(int(k), self.n_items)
        top = torch.topk(scores, k, dim=1)
        return top.values, top.indices

