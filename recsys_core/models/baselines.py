"""Count-based baselines behind the same interface as the networks (docs/design.md §4).

- `Popularity` (``pop``): how often each item occurs in the training events.
- `ContextPopularity` (``context_pop``): popularity per hour bucket × weekday/weekend ×
  scene field (the first decision-time one, e.g. the device) of the moment being predicted, smoothed toward coarser contexts
  (hour bucket × day type → hour bucket → global) so thin contexts borrow strength.
- `CoVisitation` (``covisit``): item-to-item kNN from co-occurrence within a few
  positions of each shopper's training sequence; a shopper's recent items vote for
  their neighbours, newer items louder. Only the top-N neighbours of each item are
  kept, so the saved model stays small even for a large catalogue.

Each learns from `Split.train_events()` in `fit` (never from validation or test
targets), keeps what it counts in registered buffers (so `recsys_core.registry`
saves them as safetensors and rebuilds them from `config_dict()` — no pickle), and
scores the whole catalogue in `score_all` with column 0 = -inf.

Scores are log-probabilities (or probabilities for covisit) with a popularity
back-off, so every item gets a finite score and ties are rare; the evaluator counts
remaining ties against the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from recsys_core.models.base import Batch, Recommender

if TYPE_CHECKING:  # pragma: no cover
    from recsys_core.sequences import Split

BEHAVIORS = ("pv", "fav", "cart", "buy")  # behaviour ids 1..4, as in `features.Vocabulary(BEHAVIORS)`


def _event_weights(events: dict[str, np.ndarray], behavior_weights: dict[str, float] | None, half_life_days: float | None) -> np.ndarray:
    """Weight of each training event: its behaviour's weight × an exponential recency decay."""
    n = len(events["item"])
    w = np.ones(n, dtype=np.float64)
    if behavior_weights:
        table = np.ones(len(BEHAVIORS) + 1)
        for i, name in enumerate(BEHAVIORS, start=1):
            table[i] = float(behavior_weights.get(name, 1.0))
        w *= table[np.clip(events["behavior"], 0, len(BEHAVIORS))]
    if half_life_days and n:
        age_days = (events["ts"].max() - events["ts"]).astype(np.float64) / 86400.0
        w *= 0.5 ** (age_days / half_life_days)
    return w


def _smoothed_log_probs(counts: np.ndarray, prior: np.ndarray, alpha: float) -> np.ndarray:
    """log of (counts + alpha * prior) / (total + alpha) along the last axis (a Dirichlet back-off)."""
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):  # the padding column has prior 0 → -inf, overwritten by the caller
        return np.log((counts + alpha * prior) / (total + alpha))


def _global_prior(counts: np.ndarray, n_items: int) -> np.ndarray:
    """Add-one smoothed global distribution over items 1..n (index 0 = padding gets 0)."""
    p = counts.astype(np.float64).copy()
    p[1:] += 1.0
    p[0] = 0.0
    return p / p.sum()


def _check_fields(events: dict[str, np.ndarray], needed: tuple[str, ...]) -> None:
    missing = [f for f in needed if f not in events]
    assert not missing, f"training events lack {missing}"


class _CountModel(Recommender):
    """Shared plumbing: config dataclass ↔ JSON, and the padding column."""

    config_class: ClassVar[type]

    def __init__(self, cfg: Any):
        super().__init__(cfg.n_items, cfg.history_len)
        self.cfg = cfg

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.cfg)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "_CountModel":
        known = set(cls.config_class.__dataclass_fields__)
        unknown = set(config) - known - {"model_type", "vocab_sizes"}
        if unknown:
            raise ValueError(f"unknown {cls.model_type} option(s) {sorted(unknown)}; allowed: {sorted(known)}")
        kwargs = {k: v for k, v in config.items() if k in known}
        if "vocab_sizes" in config and "n_scene" in known and "n_scene" not in config and kwargs.get("scene_field"):
            kwargs["n_scene"] = int(config["vocab_sizes"].get(kwargs["scene_field"], 1))
        return cls(cls.config_class(**kwargs))

    @staticmethod
    def _pad_column(scores: torch.Tensor) -> torch.Tensor:
        scores[:, 0] = float("-inf")
        return scores


# --- pop -----------------------------------------------------------------------------------------


@dataclass
class PopularityConfig:
    n_items: int
    history_len: int = 1
    behavior_weights: dict[str, float] | None = None  # e.g. {"pv": 1, "cart": 2, "buy": 3}; None = every event 1
    half_life_days: float | None = None  # None = all training time counts equally


class Popularity(_CountModel):
    """Global popularity over the training events: the same ranking for everyone, everywhere."""

    model_type: ClassVar[str] = "pop"
    config_class = PopularityConfig

    def __init__(self, cfg: PopularityConfig):
        super().__init__(cfg)
        self.register_buffer("log_prob", torch.zeros(cfg.n_items + 1))  # (N+1,)

    def fit(self, split: "Split") -> dict[str, Any]:
        ev = split.train_events()
        _check_fields(ev, ("item", "behavior", "ts"))
        w = _event_weights(ev, self.cfg.behavior_weights, self.cfg.half_life_days)
        counts = np.bincount(ev["item"], weights=w, minlength=self.n_items + 1)[: self.n_items + 1]
        counts[0] = 0.0
        self.log_prob.copy_(torch.from_numpy(np.log(_global_prior(counts, self.n_items) + 1e-30)))
        return {"train_events": int(len(ev["item"])), "items_seen": int((counts[1:] > 0).sum())}

    def score_all(self, batch: Batch) -> torch.Tensor:
        scores = self.log_prob.to(batch.history["item"].device).expand(batch.size, -1).clone()  # (B, N+1)
        return self._pad_column(scores)


# --- context_pop ------------------------------------------------------------------------------------


@dataclass
class ContextPopularityConfig:
    n_items: int
    scene_field: str | None = None  # the scene field popularity is conditioned on (None: time only)
    n_scene: int = 1  # number of ids of that field incl. 0 = unknown (features.vocab_sizes()[scene_field])
    history_len: int = 1
    hour_bucket_hours: int = 3  # width of an hour bucket (24 / width buckets)
    smoothing: float = 200.0  # pseudo-count pulling a context toward its parent context
    behavior_weights: dict[str, float] | None = None
    half_life_days: float | None = None

    def __post_init__(self) -> None:
        if self.hour_bucket_hours < 1 or 24 % self.hour_bucket_hours:
            raise ValueError(f"hour_bucket_hours must divide 24 (1, 2, 3, 4, 6, 8, 12, 24), got {self.hour_bucket_hours}")

    @property
    def n_hour_buckets(self) -> int:
        return 24 // self.hour_bucket_hours + 1  # + 0 = unknown


class ContextPopularity(_CountModel):
    """Popularity of items at the target moment's hour bucket × day type × one scene field (`scene_field`).

    log P(item | bucket, day type, scene value) with a hierarchical Dirichlet back-off:
    global → bucket → bucket × day type → bucket × day type × scene value. An unknown value
    (id 0) in the target context uses its parent context's distribution.
    """

    model_type: ClassVar[str] = "context_pop"
    config_class = ContextPopularityConfig

    def __init__(self, cfg: ContextPopularityConfig):
        super().__init__(cfg)
        shape = (cfg.n_hour_buckets, 3, max(1, cfg.n_scene), cfg.n_items + 1)  # day type: 0 unknown, 1 weekday, 2 weekend
        self.register_buffer("log_prob", torch.zeros(shape))  # (H, 3, D, N+1)

    def hour_buckets(self, hour_id: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Hour id 1..24 (0 unknown) → bucket id 1..24/width (0 unknown)."""
        return torch.where(hour_id > 0, (hour_id - 1) // self.cfg.hour_bucket_hours + 1, 0) if isinstance(hour_id, torch.Tensor) else np.where(hour_id > 0, (hour_id - 1) // self.cfg.hour_bucket_hours + 1, 0)

    def fit(self, split: "Split") -> dict[str, Any]:
        ev = split.train_events()
        _check_fields(ev, ("item", "behavior", "ts", "hour", "weekend"))
        N, (H, W, D, _) = self.n_items, self.log_prob.shape
        w = _event_weights(ev, self.cfg.behavior_weights, self.cfg.half_life_days)
        hb = self.hour_buckets(ev["hour"])
        we = np.clip(ev["weekend"], 0, 2)
        field = self.cfg.scene_field
        dev = np.clip(ev[field], 0, D - 1) if field and field in ev else np.zeros_like(ev["item"])
        cell = ((hb * W + we) * D + dev) * (N + 1) + ev["item"]
        c3 = np.bincount(cell, weights=w, minlength=H * W * D * (N + 1)).reshape(H, W, D, N + 1)
        c3[..., 0] = 0.0
        c2, c1, c0 = c3.sum(axis=2), c3.sum(axis=(1, 2)), c3.sum(axis=(0, 1, 2))
        a = float(self.cfg.smoothing)
        p0 = _global_prior(c0, N)  # (N+1,)
        lp1 = _smoothed_log_probs(c1, p0[None], a)  # (H, N+1)
        lp1[0] = np.log(p0 + 1e-300)  # unknown hour → global
        lp2 = _smoothed_log_probs(c2, np.exp(lp1)[:, None], a)  # (H, W, N+1)
        lp2[:, 0] = lp1  # unknown day type → hour bucket
        lp3 = _smoothed_log_probs(c3, np.exp(lp2)[:, :, None], a)  # (H, W, D, N+1)
        lp3[:, :, 0] = lp2  # unknown scene value → hour bucket × day type
        lp3[..., 0] = 0.0
        self.log_prob.copy_(torch.from_numpy(lp3.astype(np.float32)))
        cells = c3.sum(axis=-1)
        return {"train_events": int(len(ev["item"])), "contexts_with_events": int((cells > 0).sum()), "contexts": int(cells.size)}

    def score_all(self, batch: Batch) -> torch.Tensor:
        ctx = batch.context
        assert ctx["hour"].dim() == 1, "score_all takes one target context per row (B,)"
        H, W, D, _ = self.log_prob.shape
        hb = self.hour_buckets(ctx["hour"]).clamp(0, H - 1)
        we = ctx["weekend"].clamp(0, W - 1)
        field = self.cfg.scene_field
        scene = ctx[field] if field and field in ctx else torch.zeros_like(ctx["hour"])
        dev = torch.where(scene < D, scene, 0)  # a value unseen in training → unknown
        scores = self.log_prob[hb, we, dev].clone()  # (B, N+1)
        return self._pad_column(scores)


# --- covisit ----------------------------------------------------------------------------------------


@dataclass
class CoVisitationConfig:
    n_items: int
    history_len: int = 50  # how many recent history items vote
    window: int = 5  # co-visits count between events at most this many positions apart
    forward_weight: float = 1.0  # weight of "j came after i"
    backward_weight: float = 0.5  # weight of "j came before i"
    top_n: int = 50  # neighbours kept per item
    recency_decay: float = 0.7  # vote of the k-th most recent item is decay**k
    pop_weight: float = 0.05  # mixture weight of global popularity (back-off and tie-break)
    # fit picks recency_decay from this grid by validation NDCG@10 (empty = keep recency_decay): how far
    # back the useful history reaches differs by protocol (next event: the last item; next session: more)
    decay_grid: list[float] = field(default_factory=lambda: [0.3, 0.5, 0.7, 0.85, 0.95])


class CoVisitation(_CountModel):
    """Item co-visitation kNN: P(next = j | recent items) ≈ Σ_t w_t P(j | item_t), backed off to popularity.

    P(j | i) is the row-normalised co-visitation count of i with j (both directions,
    nearer positions weigh more: 1/distance), truncated to i's top-N neighbours.
    Repeats count too (i with itself), so shoppers who revisit items are covered.
    """

    model_type: ClassVar[str] = "covisit"
    config_class = CoVisitationConfig

    def __init__(self, cfg: CoVisitationConfig):
        super().__init__(cfg)
        N, K = cfg.n_items, cfg.top_n
        self.register_buffer("neighbors", torch.zeros(N + 1, K, dtype=torch.int32))  # (N+1, K) item ids, 0 = none
        self.register_buffer("neighbor_prob", torch.zeros(N + 1, K))  # (N+1, K) P(j | i), rows sum to ≤ 1
        self.register_buffer("pop_prob", torch.zeros(N + 1))  # (N+1,)

    def fit(self, split: "Split") -> dict[str, Any]:
        ev = split.train_events()
        _check_fields(ev, ("item", "user"))
        items, users = ev["item"].astype(np.int64), ev["user"]
        N, K = self.n_items, self.cfg.top_n
        rows, cols, vals = [], [], []
        for d in range(1, self.cfg.window + 1):
            same = users[d:] == users[:-d]
            a, b = items[:-d][same], items[d:][same]  # a came d positions before b
            if self.cfg.forward_weight:
                rows.append(a), cols.append(b), vals.append(np.full(len(a), self.cfg.forward_weight / d))
            if self.cfg.backward_weight:
                rows.append(b), cols.append(a), vals.append(np.full(len(a), self.cfg.backward_weight / d))
        row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        col = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        val = np.concatenate(vals) if vals else np.zeros(0)
        # sum duplicate pairs: sort by pair key and reduce
        key = row * (N + 1) + col
        uniq, inverse = np.unique(key, return_inverse=True)
        summed = np.bincount(inverse, weights=val)
        r, c = uniq // (N + 1), uniq % (N + 1)
        row_total = np.bincount(r, weights=summed, minlength=N + 1)  # (N+1,) before truncation: P(j | i) stays a share
        # keep the top-N neighbours of each row: order by (row, -value), rank within the row
        order = np.lexsort((-summed, r))
        r, c, summed = r[order], c[order], summed[order]
        row_start = np.searchsorted(r, r, side="left")
        rank = np.arange(len(r)) - row_start
        keep = rank < K
        r, c, summed, rank = r[keep], c[keep], summed[keep], rank[keep]
        nbr = np.zeros((N + 1, K), np.int32)
        prob = np.zeros((N + 1, K), np.float32)
        nbr[r, rank] = c
        prob[r, rank] = summed / row_total[r]
        nbr[0], prob[0] = 0, 0.0
        self.neighbors.copy_(torch.from_numpy(nbr))
        self.neighbor_prob.copy_(torch.from_numpy(prob))
        counts = np.bincount(items, minlength=N + 1)[: N + 1].astype(np.float64)
        counts[0] = 0.0
        self.pop_prob.copy_(torch.from_numpy(_global_prior(counts, N).astype(np.float32)))
        info: dict[str, Any] = {"train_events": int(len(items)), "pairs": int(len(uniq)), "items_with_neighbors": int((nbr[:, 0] > 0).sum())}
        if self.cfg.decay_grid and len(split.valid):
            info["valid_NDCG@10_by_decay"] = self._tune_decay(split)
        info["recency_decay"] = self.cfg.recency_decay
        return info

    @torch.no_grad()
    def _tune_decay(self, split: "Split") -> dict[str, float]:
        """Set recency_decay to the grid value with the best validation NDCG@10 (validation cases only)."""
        from recsys_core import evaluate  # evaluate imports the model registry: import lazily

        batches = list(split.valid.batches(512, max_len=self.history_len))
        results = {}
        for decay in self.cfg.decay_grid:
            self.cfg.recency_decay = float(decay)
            ranks = np.concatenate([evaluate.target_ranks(self.score_all(b), b.targets).numpy() for b in batches])
            results[str(decay)] = round(evaluate.mean_metrics(evaluate.per_case_metrics(ranks, (10,)))["NDCG@10"], 5)
        self.cfg.recency_decay = float(max(self.cfg.decay_grid, key=lambda d: results[str(d)]))
        return results

    def score_all(self, batch: Batch) -> torch.Tensor:
        item = batch.history["item"][:, -self.cfg.history_len :]  # (B, T), left-padded
        B, T = item.shape
        valid = (item > 0).float()  # (B, T)
        newer = valid.flip(1).cumsum(1).flip(1) - valid  # (B, T) how many real events are newer
        w = valid * self.cfg.recency_decay**newer  # (B, T)
        w = w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)  # votes sum to 1 (0 for an empty history)
        nbr = self.neighbors[item].long()  # (B, T, K)
        votes = self.neighbor_prob[item] * w[..., None]  # (B, T, K)
        scores = torch.zeros(B, self.n_items + 1, device=item.device)
        scores.scatter_add_(1, nbr.reshape(B, -1), votes.reshape(B, -1))  # (B, N+1)
        p = self.cfg.pop_weight
        scores = (1.0 - p) * scores + p * self.pop_prob[None]  # popularity back-off and tie-break
        return self._pad_column(scores)


BASELINES: dict[str, type[Recommender]] = {
    "pop": Popularity,
    "context_pop": ContextPopularity,
    "covisit": CoVisitation,
}
