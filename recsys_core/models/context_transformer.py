"""The time- and scene-aware Transformer recommender (and SASRec, the same network with context off).

One module, nanoGPT style. A shopper's recent events become vectors — item
(with its category and price band), behaviour, per-event time (hour, weekday,
weekend, holiday, promotion day, time since the previous event) and scene
(every scene field of the data's schema), plus position — and pass through causal
self-attention. The hidden state after the newest event is then fused with the
TARGET context (the time and scene of the moment being predicted):

- a gated MLP over [hidden; context] shifts the shopper vector, so the same
  history ranks differently at 08:00 on the commute and at 21:00 at home;
- a context × item-side term lets the moment raise or lower whole categories and
  price bands whatever the history (log-linear, like a factorisation machine);
- a repeat head (a pointer over the history, gated by the fused query) adds a
  boost to the shopper's own items, so they come back when the moment suits
  them — about half of the next-session targets in behaviour logs are items the
  shopper has seen before.

Scores are dot products with the tied item table plus an item bias, the
context × side term and the repeat boost; training is full-softmax
cross-entropy over the catalogue at every target position in one pass.

``use_time=False, use_scene=False`` gives SASRec (Kang & McAuley, 2018) with a
behaviour embedding and the same repeat head: the honest ablation of time and
scene. Ids 0 are padding/unknown everywhere and embed to zero. Padding positions
carry no input at all (not even position), attend only to themselves (never
NaN), and are never attended to, so the output for an empty history is a
learned constant: cold shoppers get the context path.

Explanations: `encode_history(batch, need_weights=True)` returns per-layer,
per-head attention; `shopper_state(batch)` + `scores_from_state(state, context)`
score one encoded history under many contexts; embeddings are separate modules
(`item_emb`, `behavior_emb`, `history_emb[field]`, `context_emb[field]`) for
layer attributions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from recsys_core.context import TIME_FIELDS  # hour, weekday, weekend, holiday, promo, gap (time since the previous event)
from recsys_core.models.base import Batch, Recommender

_NOT_SCENE = frozenset({"item", "behavior", "category", "price_band", *TIME_FIELDS})


def scene_fields_of(vocab_sizes: dict[str, int]) -> tuple[str, ...]:
    """The scene fields of a feature space, from its vocabulary sizes (every field that is not time or item side)."""
    return tuple(f for f in vocab_sizes if f not in _NOT_SCENE)


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
    use_repeat: bool = True  # repeat head: a context-aware pointer over the history's items
    # the id fields read, recorded in the model folder: per-event time and scene fields, and the
    # target-context fields (by default every time and scene field; training picks the decision-time ones)
    history_fields: tuple[str, ...] | None = None
    context_fields: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        assert self.d_model % self.n_heads == 0, f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}"
        scene = scene_fields_of(self.vocab_sizes)
        if self.history_fields is None:
            self.history_fields = (TIME_FIELDS if self.use_time else ()) + (scene if self.use_scene else ())
        if self.context_fields is None:
            self.context_fields = (TIME_FIELDS if self.use_time else ()) + (scene if self.use_scene else ())
        self.history_fields, self.context_fields = tuple(self.history_fields), tuple(self.context_fields)
        needed = ["behavior", "category", "price_band", *self.history_fields, *self.context_fields]
        missing = sorted({f for f in needed if f not in self.vocab_sizes})
        assert not missing, f"vocab_sizes lacks {missing}"


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


@dataclass
class ShopperState:
    """What the network knows about each shopper before the moment being scored.

    last: (B, D) hidden state after the newest event; hidden: (B, T, D) every position's state (the keys
    of the repeat head); items: (B, T) the history's item ids (0 = padding).
    """

    last: torch.Tensor
    hidden: torch.Tensor
    items: torch.Tensor

    def select(self, index: torch.Tensor) -> "ShopperState":
        """Rows by index (e.g. one shopper repeated for many contexts: ``state.select(torch.zeros(S, dtype=long))``)."""
        return ShopperState(self.last[index], self.hidden[index], self.items[index])


class RepeatHead(nn.Module):
    """Repeat scores: logit(i) += log(1 + w · Σ_j α_j [item_j = i]).

    α is a pointer over the history (attention from the context-fused query to each position's
    state, plus a learned bias by distance), w = exp(gate(query)) > 0. Items the shopper has not
    seen get exactly 0, seen items a boost that depends on the moment and on which events they
    came from. Being additive inside the one softmax, the boost combines with the context ×
    category term: a coffee the shopper bought comes back in the morning, not at midnight.
    """

    def __init__(self, cfg: ContextTransformerConfig):
        super().__init__()
        d = cfg.d_model
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.distance_bias = nn.Embedding(cfg.max_len, 1)
        self.gate = nn.Linear(d, 1)

    def pointer_logits(self, q: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """(B, Q, D) queries × (B, T, D) history states → (B, Q, T) pointer logits."""
        return self.q(q) @ self.k(keys).transpose(-2, -1) / math.sqrt(q.shape[-1])

    def forward(self, r: torch.Tensor, q: torch.Tensor, key_items: torch.Tensor, key_ok: torch.Tensor, distance: torch.Tensor, n_items: int) -> torch.Tensor:
        # r: (M, T) pointer logits; q: (M, D); key_items, key_ok, distance: (M, T) → boost (M, N+1)
        r = r + self.distance_bias(distance).squeeze(-1)
        r = r.masked_fill(~key_ok, float("-inf")).masked_fill(~key_ok.any(dim=1, keepdim=True), 0.0)  # no history: no NaN
        alpha = r.softmax(dim=1) * key_ok  # (M, T); all zero without history
        mass = torch.zeros(q.shape[0], n_items + 1, device=q.device).scatter_add_(1, key_items, alpha)  # (M, N+1)
        w = self.gate(q).clamp(max=15.0).exp()  # (M, 1)
        return torch.log1p(w * mass)


class ContextTransformer(Recommender):
    trainable = True
    explainable = True

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
        if cfg.use_repeat:
            self.repeat = RepeatHead(cfg)
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

    def shopper_state(self, batch: Batch) -> ShopperState:
        """Encode the histories once (then score many contexts with `scores_from_state`)."""
        h, _ = self.encode_history(batch)  # (B, T, D)
        return ShopperState(h[:, -1], h, batch.history["item"][:, -h.shape[1] :])

    def _fuse(self, h: torch.Tensor, context: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """States (..., D) + target contexts (...) → (fused query (..., D), context vector (..., D) or None)."""
        if not self.cfg.context_fields:
            return h, None
        c = self.context_vector(context)
        return self.fusion(h, c), c

    def _generate(self, q: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """(M, D) queries → generation logits (M, N+1); column 0 (padding) is -inf.

        logit(i) = q · item_i + bias_i + (W c) · (category_i + price_band_i): the last term lets the
        moment raise or lower whole categories / price bands whatever the history (computed on the
        small category and band tables, then gathered).
        """
        out = torch.addmm(self.item_bias, q, self.item_table().T)  # (M, N+1)
        if c is not None and self.cfg.use_item_side:
            side_q = self.context_to_side(c)  # (M, D)
            out = out + (side_q @ self.category_emb.weight.T)[:, self.item_category]  # (M, N+1)
            out = out + (side_q @ self.price_emb.weight.T)[:, self.item_price_band]
        pad = torch.zeros_like(out[0])
        pad[0] = float("-inf")
        return out + pad

    def scores_from_state(self, state: ShopperState | torch.Tensor, context: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores (M, N+1) of every item for states (M rows) under target contexts ((M,) ids per field).

        With the repeat head the scores need the whole `ShopperState` (history states and items),
        not just the last hidden state.
        """
        if isinstance(state, torch.Tensor):
            if self.cfg.use_repeat:
                raise TypeError("this model has a repeat head: pass model.shopper_state(batch) (a ShopperState), not a hidden-state tensor")
            return self._generate(*self._fuse(state, context))
        q, c = self._fuse(state.last, context)  # (M, D)
        gen = self._generate(q, c)
        if not self.cfg.use_repeat:
            return gen
        T = state.items.shape[1]
        r = self.repeat.pointer_logits(q[:, None, :], state.hidden)[:, 0]  # (M, T)
        distance = (T - 1 - torch.arange(T, device=gen.device)).clamp_max(self.cfg.max_len - 1).expand(len(gen), T)
        return gen + self.repeat(r, q, state.items, state.items > 0, distance, self.n_items)

    def forward(self, batch: Batch, need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
        """(scores, loss, attention maps).

        Serving/evaluation batches (context (B,)): scores (B, N+1) for the moment after the newest event,
        loss only when ``batch.targets`` (B,) is given. Training batches (context and targets (B, T)):
        scores (M, N+1) only at the M positions that have a target, and their (weighted) mean cross-entropy.
        """
        h, maps = self.encode_history(batch, need_weights)  # (B, T, D)
        items = batch.history["item"][:, -h.shape[1] :]  # (B, T)
        if batch.per_position:
            B, T, _ = h.shape
            tgt = batch.targets[:, -T:]  # (B, T)
            at = tgt > 0
            rows, pos = at.nonzero(as_tuple=True)  # (M,) batch row and position of each target
            q, c = self._fuse(h, {k: v[:, -T:] for k, v in batch.context.items()})  # (B, T, D) at every position
            gen = self._generate(q[at], None if c is None else c[at])  # (M, N+1)
            if self.cfg.use_repeat:
                r = self.repeat.pointer_logits(q, h)[rows, pos]  # (B, T, T) → (M, T): position pos over the history
                j = torch.arange(T, device=h.device)
                key_ok = (items[rows] > 0) & (j[None, :] <= pos[:, None])  # (M, T): the history up to the position
                distance = (pos[:, None] - j[None, :]).clamp(0, self.cfg.max_len - 1)
                scores = gen + self.repeat(r, q[at], items[rows], key_ok, distance, self.n_items)
            else:
                scores = gen
            tgt = tgt[at]
            w = None if batch.weights is None else batch.weights[:, -T:][at]
        else:
            scores = self.scores_from_state(ShopperState(h[:, -1], h, items), batch.context)  # (B, N+1)
            tgt, w = batch.targets, None
        loss = None
        if tgt is not None:
            ce = F.cross_entropy(scores, tgt, reduction="none")  # (M,)
            loss = ce.mean() if w is None else (ce * w).sum() / w.sum().clamp_min(1e-8)
        return scores, loss, maps

    def loss(self, batch: Batch) -> torch.Tensor:
        _, loss, _ = self.forward(batch)
        assert loss is not None, "a training batch needs targets"
        return loss

    def score_all(self, batch: Batch) -> torch.Tensor:
        """(B, N+1) scores for the moment in ``batch.context`` (B,); column 0 = -inf."""
        return self.scores_from_state(self.shopper_state(batch), batch.context)

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

    # --- growing vocabularies (warm-started updates, recsys_core.update) ----------------------

    @torch.no_grad()
    def grow(self, vocab_sizes: dict[str, int], item_category: torch.Tensor, item_price_band: torch.Tensor,
             new_items: str = "random", generator: torch.Generator | None = None) -> dict[str, int]:
        """Grow every id table to ``vocab_sizes`` (`FeatureSpace.vocab_sizes()` after `FeatureSpace.extend`),
        keeping the old rows bit for bit; the item side tables become ``item_category`` / ``item_price_band``
        (n_items + 1,). New item rows start as small random rows with bias 0 (``new_items="random"``, the
        default: measured better, docs/living_model.md) or from the mean embedding and bias of the old items of
        their category (``"category_mean"``; random for a new or missing category); other new rows (scene
        values, categories, behaviours) are small random rows, as at initialisation. Returns the number of rows
        added per table."""
        if new_items not in ("category_mean", "random"):
            raise ValueError(f"new_items must be 'category_mean' or 'random', not {new_items!r}")
        old_n, n = self.n_items, int(vocab_sizes["item"]) - 1
        if n < old_n or any(int(vocab_sizes.get(f, 0)) < v for f, v in self.cfg.vocab_sizes.items()):
            raise ValueError("a vocabulary cannot shrink: old ids keep their rows")
        device = self.item_emb.weight.device

        def grown(old: torch.Tensor, rows: int) -> torch.Tensor:  # (n_old, ...) → (rows, ...): old rows, then N(0, 0.02)
            extra = torch.randn(rows - old.shape[0], *old.shape[1:], generator=generator).to(device) * 0.02
            return torch.cat([old, extra.to(old.dtype)])

        def grow_embedding(emb: nn.Embedding, rows: int) -> int:
            added = rows - emb.num_embeddings
            if added > 0:
                emb.weight = nn.Parameter(grown(emb.weight.data, rows))
                emb.num_embeddings = rows
            return max(0, added)

        counts = {"item": n - old_n}
        item_w, bias = grown(self.item_emb.weight.data, n + 1), grown(self.item_bias.data[:, None], n + 1)[:, 0]
        bias[old_n + 1 :] = 0.0
        if new_items == "category_mean" and n > old_n:
            cats = item_category.to(device)
            for i in range(old_n + 1, n + 1):
                same = (self.item_category[1:] == cats[i]).nonzero().flatten() + 1  # old items of the category
                if int(cats[i]) > 0 and len(same):
                    item_w[i], bias[i] = item_w[same].mean(0), bias[same].mean()
        self.item_emb.weight, self.item_emb.num_embeddings = nn.Parameter(item_w), n + 1
        self.item_bias = nn.Parameter(bias)
        self.item_category = item_category.long().clone().to(device)
        self.item_price_band = item_price_band.long().clone().to(device)
        assert self.item_category.shape == (n + 1,), "item_category must have n_items + 1 entries"
        counts["category"] = grow_embedding(self.category_emb, int(vocab_sizes["category"]))
        counts["behavior"] = grow_embedding(self.behavior_emb, int(vocab_sizes["behavior"]))
        for table in (self.history_emb, self.context_emb):
            for f, emb in table.items():
                counts[f] = max(counts.get(f, 0), grow_embedding(emb, int(vocab_sizes[f])))
        self.n_items = self.cfg.n_items = n
        self.cfg.vocab_sizes = {**self.cfg.vocab_sizes, **{k: int(v) for k, v in vocab_sizes.items()}}
        return counts

    # --- persistence -------------------------------------------------------------------

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.cfg)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ContextTransformer":
        """Rebuild from `config_dict()`; ``model_type: "sasrec"`` switches time and scene off."""
        known = set(ContextTransformerConfig.__dataclass_fields__)
        kwargs = {k: v for k, v in config.items() if k in known}
        if config.get("model_type") == "sasrec":
            kwargs.update(use_time=False, use_scene=False, history_fields=None, context_fields=None)
        return cls(ContextTransformerConfig(**kwargs))
