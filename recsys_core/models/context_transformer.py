"""The time- and scene-aware Transformer recommender (and SASRec, the same network with context off).

One module, nanoGPT style. A shopper's recent events become vectors — item
(with its category and price band), behaviour, per-event time (hour, weekday,
weekend, holiday, promotion day, time since the previous event) and scene
(device, channel, location), plus position — and pass through causal
self-attention. The hidden state at each position is then fused with the
TARGET context (the time and scene of the moment being predicted): a gated MLP
over [hidden; context] adds a context-dependent shift to the shopper vector, so
the same history ranks differently at 08:00 on the commute and at 21:00 at
home, and a context × item-side-feature term lets time and scene raise or lower
whole categories and price bands regardless of the history. Scores are dot
products with the tied item table plus an item bias; training is full-softmax
cross-entropy over the catalogue at every position in one pass.

``use_time=False, use_scene=False`` gives SASRec (Kang & McAuley, 2018) with a
behaviour embedding: the honest ablation. Ids 0 are padding/unknown everywhere
and embed to zero. Padding positions carry no input at all (not even position),
attend only to themselves (never NaN), and are never attended to, so the output
for an empty history is a learned constant: cold shoppers get the context path.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from recsys_core.features import CONTEXT_FIELDS, SCENE_FIELDS, TIME_FIELDS
from recsys_core.models.base import Batch, Recommender

HISTORY_TIME_FIELDS = TIME_FIELDS  # hour, weekday, weekend, holiday, promo, gap
CONTEXT_TIME_FIELDS = tuple(f for f in CONTEXT_FIELDS if f in TIME_FIELDS)  # no gap for the target moment


@dataclass
class ContextTransformerConfig:
    n_items: int
    vocab_sizes: dict[str, int] = field(default_factory=dict)  # field -> number of ids incl. 0 (features.vocab_sizes)
    max_len: int = 50
    n_layers: int = 2
    n_heads: int = 2
    d_model: int = 64
    dropout: float = 0.2
    use_time: bool = True
    use_scene: bool = True
    use_item_side: bool = True

    def __post_init__(self) -> None:
        assert self.d_model % self.n_heads == 0, f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}"
        needed = ["behavior", "category", "price_band"]
        if self.use_time:
            needed += list(HISTORY_TIME_FIELDS)
        if self.use_scene:
            needed += list(SCENE_FIELDS)
        missing = [f for f in needed if f not in self.vocab_sizes]
        assert not missing, f"vocab_sizes lacks {missing}"

    @property
    def history_fields(self) -> tuple[str, ...]:
        return (HISTORY_TIME_FIELDS if self.use_time else ()) + (SCENE_FIELDS if self.use_scene else ())

    @property
    def context_fields(self) -> tuple[str, ...]:
        return (CONTEXT_TIME_FIELDS if self.use_time else ()) + (SCENE_FIELDS if self.use_scene else ())


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention that can return its per-head weights (for explanations)."""

    def __init__(self, cfg: ContextTransformerConfig):
        super().__init__()
        self.n_heads, self.d_model = cfg.n_heads, cfg.d_model
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.attn_dropout = nn.Dropout(cfg.dropout)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        # x: (B, T, D); allowed: (B, 1, T, T) bool, True where query i may attend to key j (diagonal always True)
        B, T, D = x.shape
        H = self.n_heads
        q, k, v = self.qkv(x).split(D, dim=2)  # (B, T, D) each
        q = q.view(B, T, H, D // H).transpose(1, 2)  # (B, H, T, hd)
        k = k.view(B, T, H, D // H).transpose(1, 2)
        v = v.view(B, T, H, D // H).transpose(1, 2)
        if need_weights:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(D // H)  # (B, H, T, T)
            att = att.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
            y = self.attn_dropout(att) @ v  # (B, H, T, hd)
        else:
            att = None
            p = self.attn_dropout.p if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)  # (B, H, T, hd)
        y = y.transpose(1, 2).contiguous().view(B, T, D)  # (B, T, D)
        return self.resid_dropout(self.proj(y)), att


class Block(nn.Module):
    """Pre-norm Transformer block."""

    def __init__(self, cfg: ContextTransformerConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(), nn.Linear(4 * cfg.d_model, cfg.d_model), nn.Dropout(cfg.dropout)
        )

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        a, att = self.attn(self.ln_1(x), allowed, need_weights)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return x, att


class ContextFusion(nn.Module):
    """Shopper state × target context → query vector: h + gate ⊙ MLP([h; c]), then LayerNorm."""

    def __init__(self, cfg: ContextTransformerConfig):
        super().__init__()
        d = cfg.d_model
        self.mlp = nn.Sequential(nn.Linear(2 * d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.gate = nn.Linear(2 * d, d)
        self.ln = nn.LayerNorm(d)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        hc = torch.cat([h, c], dim=-1)  # (..., 2D)
        return self.ln(h + torch.sigmoid(self.gate(hc)) * self.mlp(hc))  # (..., D)


class ContextTransformer(Recommender):
    trainable = True

    def __init__(self, cfg: ContextTransformerConfig, item_category: torch.Tensor | None = None, item_price_band: torch.Tensor | None = None):
        super().__init__(cfg.n_items, cfg.max_len)
        self.cfg = cfg
        d, vs, N = cfg.d_model, cfg.vocab_sizes, cfg.n_items
        # item side features (dense item id -> category id / price band id); buffers, saved with the weights
        self.register_buffer("item_category", torch.zeros(N + 1, dtype=torch.long) if item_category is None else item_category.long().clone())
        self.register_buffer("item_price_band", torch.zeros(N + 1, dtype=torch.long) if item_price_band is None else item_price_band.long().clone())
        assert self.item_category.shape == (N + 1,), "item_category must have n_items + 1 entries"

        self.item_emb = nn.Embedding(N + 1, d, padding_idx=0)
        self.category_emb = nn.Embedding(vs["category"], d, padding_idx=0)
        self.price_emb = nn.Embedding(vs["price_band"], d, padding_idx=0)
        self.item_bias = nn.Parameter(torch.zeros(N + 1))
        self.behavior_emb = nn.Embedding(vs["behavior"], d, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_len, d)
        self.history_emb = nn.ModuleDict({f: nn.Embedding(vs[f], d, padding_idx=0) for f in cfg.history_fields})
        self.context_emb = nn.ModuleDict({f: nn.Embedding(vs[f], d, padding_idx=0) for f in cfg.context_fields})
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(d)
        if cfg.context_fields:
            self.fusion = ContextFusion(cfg)
            # context × item-side interaction: how this moment favours categories / price bands
            self.context_to_side = nn.Linear(d, d)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()

    @property
    def model_type(self) -> str:  # type: ignore[override]
        return "context_transformer" if (self.cfg.use_time or self.cfg.use_scene) else "sasrec"

    # --- item side ---------------------------------------------------------------------

    def item_side(self, items: torch.Tensor) -> torch.Tensor:
        """Category + price-band vector of items (any shape) → (..., D)."""
        if not self.cfg.use_item_side:
            return torch.zeros(*items.shape, self.cfg.d_model, device=items.device)
        return self.category_emb(self.item_category[items]) + self.price_emb(self.item_price_band[items])

    def item_table(self) -> torch.Tensor:
        """Item vectors (N+1, D): id embedding + side features — the tied output table."""
        table = self.item_emb.weight
        if self.cfg.use_item_side:
            table = table + self.category_emb.weight[self.item_category] + self.price_emb.weight[self.item_price_band]
        return table

    # --- forward -----------------------------------------------------------------------

    def encode_history(self, batch: Batch, need_weights: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Hidden states of every history position: ((B, T, D), [per layer (B, H, T, T)] if need_weights)."""
        hist = {k: v[:, -self.cfg.max_len :] for k, v in batch.history.items()}  # read the last max_len events
        item = hist["item"]  # (B, T)
        B, T = item.shape
        valid = item > 0  # (B, T)
        x = self.item_emb(item) + self.item_side(item) + self.behavior_emb(hist["behavior"])  # (B, T, D)
        for f, emb in self.history_emb.items():
            x = x + emb(hist[f])
        pos = torch.arange(T, device=item.device) + (self.cfg.max_len - T)  # the newest event is always the last position
        x = x + self.pos_emb(pos)[None]
        x = self.drop(x * valid.unsqueeze(-1))  # padding carries nothing
        causal = torch.ones(T, T, dtype=torch.bool, device=item.device).tril()  # (T, T)
        eye = torch.eye(T, dtype=torch.bool, device=item.device)
        allowed = (causal[None] & valid[:, None, :]) | eye[None]  # (B, T, T): past valid keys, and always itself
        allowed = allowed.unsqueeze(1)  # (B, 1, T, T)
        maps = []
        for block in self.blocks:
            x, att = block(x, allowed, need_weights)
            if need_weights:
                maps.append(att)
        return self.ln_f(x), maps

    def context_vector(self, context: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sum of the target-context embeddings: (M,) ids per field → (M, D)."""
        any_field = next(iter(context.values()))
        c = torch.zeros(*any_field.shape, self.cfg.d_model, device=any_field.device)
        for f, emb in self.context_emb.items():
            c = c + emb(context[f])
        return c

    def scores_from_state(self, h: torch.Tensor, context: dict[str, torch.Tensor]) -> torch.Tensor:
        """Shopper states (M, D) + target contexts (M,) per field → scores (M, N+1).

        score(i) = fuse(h, c) · item_i + bias_i + (W c) · (category_i + price_band_i): the last term lets
        the moment raise or lower whole categories / price bands whatever the history (computed on the
        small category and band tables, then gathered).
        """
        if not self.cfg.context_fields:
            return torch.addmm(self.item_bias, h, self.item_table().T)  # (M, N+1)
        c = self.context_vector(context)  # (M, D)
        out = torch.addmm(self.item_bias, self.fusion(h, c), self.item_table().T)  # (M, N+1)
        if self.cfg.use_item_side:
            side_q = self.context_to_side(c)  # (M, D)
            out = out + (side_q @ self.category_emb.weight.T)[:, self.item_category]  # (M, N+1)
            out = out + (side_q @ self.price_emb.weight.T)[:, self.item_price_band]
        return out

    def forward(self, batch: Batch, need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
        """(logits, loss, attention maps).

        Serving/evaluation batches (context (B,)): logits (B, N+1) for the moment after the newest event,
        loss only when ``batch.targets`` (B,) is given. Training batches (context and targets (B, T)):
        logits (M, N+1) only at the M positions that have a target, and their weighted mean cross-entropy.
        """
        h, maps = self.encode_history(batch, need_weights)  # (B, T, D)
        if batch.per_position:
            T = h.shape[1]
            tgt = batch.targets[:, -T:]  # (B, T)
            at = tgt > 0
            ctx = {k: v[:, -T:][at] for k, v in batch.context.items()}  # (M,)
            logits = self.scores_from_state(h[at], ctx)  # (M, N+1)
            tgt = tgt[at]
            w = None if batch.weights is None else batch.weights[:, -T:][at]
        else:
            logits = self.scores_from_state(h[:, -1], batch.context)  # (B, N+1)
            tgt, w = batch.targets, None
        loss = None
        if tgt is not None:
            ce = F.cross_entropy(logits, tgt, reduction="none")  # (M,)
            loss = ce.mean() if w is None else (ce * w).sum() / w.sum().clamp_min(1e-8)
        return logits, loss, maps

    def loss(self, batch: Batch) -> torch.Tensor:
        _, loss, _ = self.forward(batch)
        assert loss is not None, "a training batch needs targets"
        return loss

    def score_all(self, batch: Batch) -> torch.Tensor:
        """(B, N+1) scores for the moment in ``batch.context`` (B,); column 0 = -inf."""
        h, _ = self.encode_history(batch)
        scores = self.scores_from_state(h[:, -1], batch.context)  # (B, N+1)
        scores[:, 0] = float("-inf")
        return scores

    @torch.no_grad()
    def attention(self, batch: Batch) -> list[torch.Tensor]:
        """Attention weights of every layer, [(B, H, T, T)]; rows sum to 1, zero on future and padding keys
        (a padding query attends only to itself). The target position is the last one (T-1)."""
        was = self.training
        self.eval()
        try:
            _, maps = self.encode_history(batch, need_weights=True)
        finally:
            self.train(was)
        return maps

    # --- persistence -------------------------------------------------------------------

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.cfg)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ContextTransformer":
        """Rebuild from `config_dict()`; ``model_type: "sasrec"`` switches time and scene off."""
        known = set(ContextTransformerConfig.__dataclass_fields__)
        kwargs = {k: v for k, v in config.items() if k in known}
        if config.get("model_type") == "sasrec":
            kwargs.update(use_time=False, use_scene=False)
        return cls(ContextTransformerConfig(**kwargs))
