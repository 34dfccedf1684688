"""Honest full-ranking evaluation (DESIGN §5): metrics, slices, bootstrap intervals, paired tests.

Every model — network or baseline — is ranked the same way: `score_all(batch)` gives a
score for every item of the catalogue, the target's 0-based rank among all items is
counted, and every metric is a pure function of those ranks. No sampled negatives.

Ties are counted pessimistically: an item whose score equals the target's is ranked
ahead of it, so a model that gives every item the same score ranks the target last
instead of first. Scores must be finite — a NaN compares false with everything, so a
rank computed as `(scores > target).sum()` would be 0 and silently inflate every metric
(GOTCHAS); `target_ranks` refuses them.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)

CUTOFFS: tuple[int, ...] = (5, 10, 20)
METRIC_NAMES: tuple[str, ...] = ("HR", "NDCG", "MRR", "Recall")
HEADLINE = "NDCG@10"
COVERAGE_K = 10
N_BOOTSTRAP = 1000
N_PERMUTATIONS = 10000
DEFAULT_SEED = 0


# --- ranks ---------------------------------------------------------------------------------


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target among all real items (column 0 is padding), ties pessimistic.

    scores: (B, n_items + 1), column 0 = padding (any value, ignored).
    targets: (B,) item ids in 1..n_items.
    """
    assert scores.dim() == 2 and targets.dim() == 1 and scores.shape[0] == targets.shape[0], (
        f"scores (B, n_items+1) and targets (B,) expected, got {tuple(scores.shape)} and {tuple(targets.shape)}"
    )
    assert bool((targets >= 1).all()) and bool((targets < scores.shape[1]).all()), "targets must be real item ids 1..n_items"
    items = scores[:, 1:]  # (B, n_items)
    if not bool(torch.isfinite(items).all()):
        bad = int((~torch.isfinite(items)).any(dim=1).sum())
        raise ValueError(f"{bad} of {scores.shape[0]} score rows contain NaN or infinite values; refusing to rank them")
    target_scores = scores.gather(1, targets[:, None])  # (B, 1)
    # Pessimistic ties: every other item with an equal score is ranked ahead of the target.
    return (items >= target_scores).sum(dim=1) - 1  # (B,)


def top_k_items(scores: torch.Tensor, k: int) -> torch.Tensor:
    """(B, k) item ids of the k best-scored real items (column 0 never returned)."""
    k = min(k, scores.shape[1] - 1)
    return scores[:, 1:].topk(k, dim=1).indices + 1


# --- metrics: pure functions of ranks ------------------------------------------------------


def per_case_metrics(ranks: np.ndarray, cutoffs: Sequence[int] = CUTOFFS) -> dict[str, np.ndarray]:
    """Per-case HR, NDCG, MRR and Recall at every cutoff, keyed "NDCG@10".

    With one target per case the hit matrix has at most one hit, at column `rank`:
    HR@K = Recall@K = [rank < K], NDCG@K = 1/log2(rank + 2), MRR@K = 1/(rank + 1), both 0 beyond K.
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    assert ranks.ndim == 1 and (ranks >= 0).all(), "ranks must be a 1-d array of 0-based ranks"
    out: dict[str, np.ndarray] = {}
    for k in cutoffs:
        hit = ranks < k
        out[f"HR@{k}"] = hit.astype(np.float64)
        out[f"NDCG@{k}"] = np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)
        out[f"MRR@{k}"] = np.where(hit, 1.0 / (ranks + 1.0), 0.0)
        out[f"Recall@{k}"] = hit.astype(np.float64)
    return out


def mean_metrics(per_case: Mapping[str, np.ndarray]) -> dict[str, float]:
    return {name: float(values.mean()) if len(values) else float("nan") for name, values in per_case.items()}


def catalogue_coverage(top_items: np.ndarray, n_items: int) -> float:
    """Share of the catalogue (items 1..n_items) that appears in at least one top list."""
    return float(len(np.unique(top_items[top_items > 0]))) / n_items if n_items else 0.0


# --- bootstrap intervals and paired tests -------------------------------------------------------


def _bootstrap_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator, chunk: int = 100) -> np.ndarray:
    """(n_resamples, M) means of `values` (n, M) over cases resampled with replacement."""
    n = values.shape[0]
    means = np.empty((n_resamples, values.shape[1]))
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))  # (R, n)
        means[start:stop] = values[idx].mean(axis=1)  # (R, M)
    return means


def bootstrap_ci(
    per_case: Mapping[str, np.ndarray],
    n_resamples: int = N_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> dict[str, list[float]]:
    """Percentile bootstrap interval of every mean metric, resampling shoppers (one case each).

    All metrics share the same resamples, so the intervals are consistent with each other.
    """
    names = list(per_case)
    if not names or len(per_case[names[0]]) == 0:
        return {name: [float("nan"), float("nan")] for name in names}
    values = np.stack([per_case[name] for name in names], axis=1)  # (n, M)
    means = _bootstrap_means(values, n_resamples, np.random.default_rng(seed))
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha], axis=0)
    return {name: [float(lo[m]), float(hi[m])] for m, name in enumerate(names)}


def paired_test(
    a: np.ndarray,
    b: np.ndarray,
    n_resamples: int = N_BOOTSTRAP,
    n_permutations: int = N_PERMUTATIONS,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> dict[str, Any]:
    """Compare per-case values of two models on the same cases (b minus a).

    The p-value is from a two-sided sign-flip permutation test of the mean paired
    difference (under the null each case's difference is as likely negative as positive);
    the interval of the difference and of the relative difference (mean b / mean a - 1)
    is a paired bootstrap over cases.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape and a.ndim == 1, "paired values must be 1-d arrays over the same cases"
    n = len(a)
    if n == 0:
        return {"n": 0, "mean_a": float("nan"), "mean_b": float("nan"), "diff": float("nan"),
                "diff_ci95": [float("nan")] * 2, "rel_diff": float("nan"), "rel_diff_ci95": [float("nan")] * 2,
                "p_value": float("nan"), "wins": 0, "losses": 0, "ties": 0}
    rng = np.random.default_rng(seed)
    d = b - a
    observed = d.mean()

    extreme = 0
    for start in range(0, n_permutations, 200):
        r = min(200, n_permutations - start)
        signs = rng.integers(0, 2, size=(r, n)) * 2 - 1  # (R, n) of ±1
        extreme += int((np.abs((signs * d).mean(axis=1)) >= abs(observed) - 1e-12).sum())
    p_value = (extreme + 1) / (n_permutations + 1)

    means = _bootstrap_means(np.stack([a, b], axis=1), n_resamples, rng)  # (R, 2)
    alpha = (1.0 - level) / 2.0
    diff_lo, diff_hi = np.quantile(means[:, 1] - means[:, 0], [alpha, 1 - alpha])
    mean_a, mean_b = float(a.mean()), float(b.mean())
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = means[:, 1] / means[:, 0] - 1.0
    rel = rel[np.isfinite(rel)]
    rel_lo, rel_hi = np.quantile(rel, [alpha, 1 - alpha]) if len(rel) else (float("nan"), float("nan"))
    return {
        "n": n,
        "mean_a": mean_a,
        "mean_b": mean_b,
        "diff": float(observed),
        "diff_ci95": [float(diff_lo), float(diff_hi)],
        "rel_diff": mean_b / mean_a - 1.0 if mean_a > 0 else float("nan"),
        "rel_diff_ci95": [float(rel_lo), float(rel_hi)],
        "p_value": float(p_value),
        "wins": int((d > 0).sum()),
        "losses": int((d < 0).sum()),
        "ties": int((d == 0).sum()),
    }


# --- slices ------------------------------------------------------------------------------------

HOUR_BUCKETS: tuple[tuple[int, int, str], ...] = (
    (0, 5, "00-05 night"),
    (6, 9, "06-09 morning"),
    (10, 13, "10-13 midday"),
    (14, 17, "14-17 afternoon"),
    (18, 21, "18-21 evening"),
    (22, 23, "22-23 late"),
)
HISTORY_BUCKETS: tuple[tuple[int, int, str], ...] = (
    (0, 2, "0-2"),
    (3, 5, "3-5"),
    (6, 10, "6-10"),
    (11, 20, "11-20"),
    (21, 50, "21-50"),
    (51, 1 << 62, "51+"),
)
SLICE_METRICS: tuple[str, ...] = ("NDCG@10", "HR@10", "MRR@10", "Recall@20")


def hour_bucket_labels(hours: np.ndarray) -> np.ndarray:
    hours = np.asarray(hours)
    labels = np.full(hours.shape, "unknown", dtype=object)
    for lo, hi, name in HOUR_BUCKETS:
        labels[(hours >= lo) & (hours <= hi)] = name
    return labels


def history_length_labels(lengths: np.ndarray) -> np.ndarray:
    lengths = np.asarray(lengths)
    labels = np.empty(lengths.shape, dtype=object)
    for lo, hi, name in HISTORY_BUCKETS:
        labels[(lengths >= lo) & (lengths <= hi)] = name
    return labels


def slice_metrics(
    per_case: Mapping[str, np.ndarray],
    attributes: Mapping[str, Sequence[Any] | np.ndarray],
    metric_names: Sequence[str] = SLICE_METRICS,
) -> dict[str, dict[str, dict[str, float | int]]]:
    """{slice: {value: {"n": count, "NDCG@10": mean, ...}}} for every attribute of the cases.

    `attributes` maps a slice name (e.g. "device") to one label per case.
    """
    out: dict[str, dict[str, dict[str, float | int]]] = {}
    n = len(next(iter(per_case.values())))
    for slice_name, labels in attributes.items():
        labels = np.asarray(labels, dtype=object).astype(str)
        assert len(labels) == n, f"slice {slice_name!r} has {len(labels)} labels for {n} cases"
        groups: dict[str, dict[str, float | int]] = {}
        for value in sorted(set(labels.tolist())):
            mask = labels == value
            row: dict[str, float | int] = {"n": int(mask.sum())}
            for name in metric_names:
                row[name] = float(per_case[name][mask].mean())
            groups[value] = row
        out[slice_name] = groups
    return out
