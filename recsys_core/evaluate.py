"""Honest full-ranking evaluation (docs/evaluation.md): metrics, slices, bootstrap intervals, paired tests.

Every model — network or baseline — is ranked the same way: `score_all(batch)` gives a
score for every item of the catalogue, the target's 0-based rank among all items is
counted, and every metric is a pure function of those ranks. No sampled negatives.

Ties are counted pessimistically: an item whose score equals the target's is ranked
ahead of it, so a model that gives every item the same score ranks the target last
instead of first. Scores must be finite — a NaN compares false with everything, so a
rank computed as `(scores > target).sum()` would be 0 and silently inflate every metric
(docs/pitfalls.md); `target_ranks` refuses them.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from recsys_core.sequences import cut_iso, parse_cut

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


def item_popularity(con: Any) -> "Any":
    """Share of shoppers who interacted with each item of the open database (a pandas Series by item id):
    the popularity that popularity bias and novelty are measured against."""
    import pandas as pd

    rows = con.execute(
        "SELECT item_id, count(DISTINCT user_id) AS n, (SELECT count(DISTINCT user_id) FROM events) AS total FROM events GROUP BY item_id"
    ).fetchall()
    if not rows:
        return pd.Series(dtype=float)
    return pd.Series([r[1] / r[2] for r in rows], index=[r[0] for r in rows], dtype=float)


def popularity_bias_and_novelty(top_item_ids: np.ndarray, popularity: Any) -> tuple[float, float]:
    """(mean popularity percentile of the listed items, 100 = the most popular item; mean novelty in bits,
    -log2 of the share of shoppers who interacted with the item — Zhou et al. 2010) over every top list.
    Items the database does not have are left out of both."""
    if len(popularity) == 0 or top_item_ids.size == 0:
        return float("nan"), float("nan")
    percentile = popularity.rank(pct=True, method="average") * 100.0
    flat = np.asarray(top_item_ids).reshape(-1)
    known = percentile.reindex(flat)
    ok = known.notna().to_numpy()
    if not ok.any():
        return float("nan"), float("nan")
    share = popularity.reindex(flat[ok]).to_numpy()
    return float(known.to_numpy()[ok].mean()), float((-np.log2(share)).mean())


# --- bootstrap intervals and paired tests -------------------------------------------------------


def shopper_clusters(values: np.ndarray, shoppers: Sequence[Any] | np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-shopper sums of ``values`` (n, M) -> (S, M) and case counts (S,), shoppers in order of first case.

    The unit of the intervals and tests: time_split has several cases per shopper, and they are not
    independent, so resampling cases would make the intervals too narrow. ``shoppers`` None: one case each.
    """
    if shoppers is None:
        return values, np.ones(values.shape[0])
    shoppers = np.asarray(shoppers)
    assert len(shoppers) == values.shape[0], f"{len(shoppers)} shopper ids for {values.shape[0]} cases"
    _, first, inverse = np.unique(shoppers, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first, kind="stable"), kind="stable")  # unique's sorted index -> first-appearance index
    cluster = order[inverse.reshape(-1)]
    sums = np.zeros((len(first), values.shape[1]))
    np.add.at(sums, cluster, values)
    return sums, np.bincount(cluster, minlength=len(first)).astype(np.float64)


def _bootstrap_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator, chunk: int = 100,
                     shoppers: Sequence[Any] | np.ndarray | None = None) -> np.ndarray:
    """(n_resamples, M) means of `values` (n, M) over shoppers resampled with replacement, each with all their
    cases (a cluster bootstrap; with one case per shopper exactly the case bootstrap, the same draws)."""
    sums, counts = shopper_clusters(values, shoppers)
    n = sums.shape[0]
    means = np.empty((n_resamples, values.shape[1]))
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))  # (R, S)
        if shoppers is None:
            means[start:stop] = values[idx].mean(axis=1)  # (R, M)
        else:
            means[start:stop] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)[:, None]  # (R, M)
    return means


def bootstrap_ci(
    per_case: Mapping[str, np.ndarray],
    n_resamples: int = N_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
    shoppers: Sequence[Any] | np.ndarray | None = None,
) -> dict[str, list[float]]:
    """Percentile bootstrap interval of every mean metric, resampling shoppers with all their cases
    (``shoppers``: one id per case; None: one case per shopper, as next_event and next_session have).

    All metrics share the same resamples, so the intervals are consistent with each other.
    """
    names = list(per_case)
    if not names or len(per_case[names[0]]) == 0:
        return {name: [float("nan"), float("nan")] for name in names}
    values = np.stack([per_case[name] for name in names], axis=1)  # (n, M)
    means = _bootstrap_means(values, n_resamples, np.random.default_rng(seed), shoppers=shoppers)
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
    shoppers: Sequence[Any] | np.ndarray | None = None,
) -> dict[str, Any]:
    """Compare per-case values of two models on the same cases (b minus a).

    The unit is the shopper (``shoppers``: one id per case; None: one case each). The p-value is from a
    two-sided sign-flip permutation test of the mean paired difference: under the null a shopper's summed
    difference is as likely negative as positive, so all of a shopper's cases flip together. The interval
    of the difference and of the relative difference (mean b / mean a - 1) is a paired bootstrap over
    shoppers with their cases. With one case per shopper both are the case-level test, the same draws.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape and a.ndim == 1, "paired values must be 1-d arrays over the same cases"
    n = len(a)
    if n == 0:
        return {"n": 0, "n_shoppers": 0, "mean_a": float("nan"), "mean_b": float("nan"), "diff": float("nan"),
                "diff_ci95": [float("nan")] * 2, "rel_diff": float("nan"), "rel_diff_ci95": [float("nan")] * 2,
                "p_value": float("nan"), "wins": 0, "losses": 0, "ties": 0}
    rng = np.random.default_rng(seed)
    d = b - a
    observed = d.mean()
    shopper_d = shopper_clusters(d[:, None], shoppers)[0][:, 0]  # (S,) each shopper's summed difference
    n_shoppers = len(shopper_d)

    extreme = 0
    for start in range(0, n_permutations, 200):
        r = min(200, n_permutations - start)
        signs = rng.integers(0, 2, size=(r, n_shoppers)) * 2 - 1  # (R, S) of ±1
        flipped = (signs * d).mean(axis=1) if shoppers is None else (signs * shopper_d).sum(axis=1) / n
        extreme += int((np.abs(flipped) >= abs(observed) - 1e-12).sum())
    p_value = (extreme + 1) / (n_permutations + 1)

    means = _bootstrap_means(np.stack([a, b], axis=1), n_resamples, rng, shoppers=shoppers)  # (R, 2)
    alpha = (1.0 - level) / 2.0
    diff_lo, diff_hi = np.quantile(means[:, 1] - means[:, 0], [alpha, 1 - alpha])
    mean_a, mean_b = float(a.mean()), float(b.mean())
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = means[:, 1] / means[:, 0] - 1.0
    rel = rel[np.isfinite(rel)]
    rel_lo, rel_hi = np.quantile(rel, [alpha, 1 - alpha]) if len(rel) else (float("nan"), float("nan"))
    return {
        "n": n,
        "n_shoppers": n_shoppers,
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

SLICE_METRICS: tuple[str, ...] = ("NDCG@10", "HR@10", "MRR@10", "Recall@20")
def slice_names(table: Any) -> list[str]:
    """The slice columns of a cases table (`EvalCases.slices()`): hour bucket, day type, promotion day,
    history length, repeat/new target and every scene field."""
    return [c for c in table.columns if c not in ("user_id", "target_item", "target_at")]


_DAY_ORDER = {name: i for i, name in enumerate(("night", "morning", "midday", "afternoon", "evening"))}


def _slice_order(value: str) -> tuple:
    """Natural order of slice values: numeric buckets by their lower bound, hour buckets by time of day."""
    head = value.split("-")[0].rstrip("+")
    if head.isdigit():
        return (0, int(head), value)
    return (1, _DAY_ORDER.get(value, len(_DAY_ORDER)), value)


def slice_metrics(
    per_case: Mapping[str, np.ndarray],
    attributes: Mapping[str, Sequence[Any] | np.ndarray],
    metric_names: Sequence[str] = SLICE_METRICS,
    n_resamples: int = 0,
    seed: int = DEFAULT_SEED,
    shoppers: Sequence[Any] | np.ndarray | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """{slice: {value: {"n": cases, "n_shoppers": shoppers, "NDCG@10": mean, ...}}} for every attribute of the cases.

    `attributes` maps a slice name (e.g. "device") to one label per case. With
    `n_resamples` > 0 each value also gets a bootstrap interval "NDCG@10_ci95", over the
    slice's shoppers (``shoppers``: one id per case; None: one case per shopper).
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    n = len(next(iter(per_case.values())))
    headline = per_case.get(HEADLINE)
    shoppers = None if shoppers is None else np.asarray(shoppers)
    for slice_name, labels in attributes.items():
        labels = np.asarray(labels, dtype=object).astype(str)
        assert len(labels) == n, f"slice {slice_name!r} has {len(labels)} labels for {n} cases"
        groups: dict[str, dict[str, Any]] = {}
        for value in sorted(set(labels.tolist()), key=_slice_order):
            mask = labels == value
            in_slice = None if shoppers is None else shoppers[mask]
            row: dict[str, Any] = {"n": int(mask.sum()), "n_shoppers": int(mask.sum()) if in_slice is None else len(np.unique(in_slice))}
            for name in metric_names:
                row[name] = float(per_case[name][mask].mean())
            if n_resamples and headline is not None:
                row[f"{HEADLINE}_ci95"] = bootstrap_ci({HEADLINE: headline[mask]}, n_resamples, seed, shoppers=in_slice)[HEADLINE]
            groups[value] = row
        out[slice_name] = groups
    return out


# A slice with fewer test cases than this is too small to name a winner in (shown, not judged).
MIN_SLICE_CASES = 30


def slice_winners(models: Sequence[Mapping[str, Any]], metric: str = HEADLINE, min_cases: int | None = None) -> list[dict[str, Any]]:
    """Per slice value, each model's ``metric`` and the winner — the question "which model wins where".

    ``models`` are `compare_models` entries (``model`` and ``slices``). Rows come in slice order; a slice
    value with fewer than ``min_cases`` cases has ``winner`` None and ``too_small`` True.
    """
    min_cases = MIN_SLICE_CASES if min_cases is None else min_cases
    first = models[0]["slices"]
    rows = []
    for slice_name, values in first.items():
        for value, stats in values.items():
            scores = {m["model"]: m["slices"][slice_name][value][metric] for m in models}
            small = stats["n"] < min_cases
            rows.append({"slice": slice_name, "value": value, "n": stats["n"], "scores": scores, "too_small": small,
                         "winner": None if small else max(scores, key=scores.get)})
    return rows


# --- ranking a model on evaluation cases ---------------------------------------------------------


class CaseResults:
    """What a model did on each evaluation case: the target's rank and the top-10 list, in case order."""

    def __init__(self, ranks: np.ndarray, top_items: np.ndarray, n_items: int):
        self.ranks = ranks  # (n,) 0-based ranks under full ranking
        self.top_items = top_items  # (n, COVERAGE_K) dense ids
        self.n_items = n_items
        self.extra: dict[str, float] = {}  # popularity_pct, novelty (set by `rank_models`)

    @property
    def per_case(self) -> dict[str, np.ndarray]:
        return per_case_metrics(self.ranks)


@torch.no_grad()
def rank_cases(model: Any, cases: Any, batch_size: int = 256, max_history: int | None = None) -> CaseResults:
    """Score every case of `cases` (`sequences.EvalCases`) with `model.score_all` over the full catalogue.
    ``max_history``: show the model at most this many of the newest history events (a sparse shopper's
    view of the same cases, e.g. 5; default: as many as the model reads).

    A target the model's vocabulary does not know (id 0: an item that appeared after it was
    trained) cannot be ranked and counts as a miss (rank = n_items).
    """
    was_training = model.training
    model.eval()
    ranks, tops = [], []
    try:
        for batch in cases.batches(batch_size, max_len=min(model.history_len, max_history or model.history_len)):
            scores = model.score_all(batch)  # (B, N+1)
            assert scores.shape == (batch.size, model.n_items + 1), (
                f"{model.model_type}.score_all gave {tuple(scores.shape)}, expected {(batch.size, model.n_items + 1)}"
            )
            known = batch.targets > 0
            r = torch.full((batch.size,), model.n_items, dtype=torch.long)
            if bool(known.any()):
                r[known] = target_ranks(scores[known], batch.targets[known])
            ranks.append(r.numpy())
            tops.append(top_k_items(scores, COVERAGE_K).numpy())
    finally:
        model.train(was_training)
    if not ranks:
        return CaseResults(np.zeros(0, np.int64), np.zeros((0, COVERAGE_K), np.int64), model.n_items)
    return CaseResults(np.concatenate(ranks), np.concatenate(tops), model.n_items)


# --- stored evaluations ---------------------------------------------------------------------------------
#
# Ranking every case is the slow part of an evaluation; its outcome depends only on the model's weights (its
# version), the events (the data fingerprint's hash) and the protocol. It is stored under those keys beside the
# database (``<db folder>/evaluations/``), so `evaluate`, `compare` and the Models page share it: opening the
# page again, or comparing a model again with others, costs no ranking. Files are numpy arrays (loaded without
# pickle) and a Parquet table of the cases, written atomically; a new model version or new events are new keys.


class EvaluationStore:
    """Stored `CaseResults` (and the cases' slice table) keyed by model version + data hash + protocol."""

    def __init__(self, root: str | Any):
        from pathlib import Path

        self.root = Path(root)

    @classmethod
    def beside(cls, db: str | Any | None) -> "EvaluationStore":
        from recsys_core.store import resolve_db_path

        return cls(resolve_db_path(db).resolve().parent / "evaluations")

    @staticmethod
    def _safe(*parts: str) -> str:
        import re

        return "__".join(re.sub(r"[^A-Za-z0-9_.-]", "_", str(p)) for p in parts)

    def _write(self, name: str, write: Any) -> None:
        import os
        import tempfile

        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=self.root)
        os.close(fd)
        try:
            write(tmp)
            os.replace(tmp, self.root / name)
        except BaseException:
            os.unlink(tmp)
            raise

    def load_results(self, version: str, events_hash: str, protocol: str) -> "CaseResults | None":
        path = self.root / (self._safe("results", version, events_hash, protocol) + ".npz")
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                res = CaseResults(z["ranks"], z["top_items"], int(z["n_items"]))
                res.extra = {k: float(z[k]) for k in ("popularity_pct", "novelty") if k in z}
                return res
        except (OSError, ValueError, KeyError) as exc:  # a damaged file is recomputed, never trusted
            log.warning("ignoring stored evaluation %s: %s", path, exc)
            return None

    def save_results(self, version: str, events_hash: str, protocol: str, res: "CaseResults") -> None:
        extra = getattr(res, "extra", {})

        def write(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, ranks=res.ranks, top_items=res.top_items, n_items=np.int64(res.n_items),
                         **{k: np.float64(v) for k, v in extra.items()})

        self._write(self._safe("results", version, events_hash, protocol) + ".npz", write)

    def load_cases(self, events_hash: str, protocol: str) -> "Any | None":
        import pandas as pd

        path = self.root / (self._safe("cases", events_hash, protocol) + ".parquet")
        return pd.read_parquet(path) if path.is_file() else None

    def save_cases(self, events_hash: str, protocol: str, table: Any) -> None:
        self._write(self._safe("cases", events_hash, protocol) + ".parquet", lambda tmp: table.to_parquet(tmp, index=False))

    def drop_shopper(self, user_id: str) -> int:
        """Delete every stored case table that names ``user_id``, with the results computed on the same data
        (an erased shopper leaves nothing here; both are recomputed when asked). Returns the files deleted."""
        import pandas as pd

        deleted = 0
        for path in sorted(self.root.glob("cases__*.parquet")) if self.root.is_dir() else []:
            try:
                holds = str(user_id) in set(pd.read_parquet(path, columns=["user_id"])["user_id"].astype(str))
            except (OSError, ValueError, KeyError) as exc:  # unreadable: it cannot be shown, but it may hold the shopper
                log.warning("deleting unreadable stored cases %s: %s", path, exc)
                holds = True
            if not holds:
                continue
            data_hash = path.name.split("__")[1]
            for stale in [path, *self.root.glob(f"results__*__{data_hash}__*.npz")]:
                stale.unlink(missing_ok=True)
                deleted += 1
        return deleted


def case_table(cases: Any) -> Any:
    """The cases' slice table (`EvalCases.slices`) plus ``target_at``: the target's local time, so a case can be
    opened on the Scenario page at that very moment."""
    import pandas as pd

    table = cases.slices()
    d = cases.data
    utc = pd.to_datetime(d.ts[cases.targets], unit="s", utc=True)
    table.insert(2, "target_at", utc.tz_convert(d.features.calendar.timezone).strftime("%Y-%m-%dT%H:%M"))
    return table


def case_shoppers(table: Any | None) -> np.ndarray | None:
    """One shopper id per case from a cases table (``user_id``), the unit of intervals and tests; None without one."""
    return None if table is None or "user_id" not in table else table["user_id"].astype(str).to_numpy()


def summarize(results: CaseResults, slices: Any | None = None, n_resamples: int = N_BOOTSTRAP, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Metrics, intervals, coverage and (with the cases' slice table) per-slice metrics of one model.
    Intervals resample the table's shoppers with their cases; ``n_cases`` counts cases, ``n_users`` shoppers."""
    per_case = results.per_case
    shoppers = case_shoppers(slices)
    out: dict[str, Any] = {
        "n_cases": int(len(results.ranks)),
        "n_users": int(len(results.ranks)) if shoppers is None else int(len(np.unique(shoppers))),
        "n_items": int(results.n_items),
        "metrics": mean_metrics(per_case),
        "ci95": bootstrap_ci(per_case, n_resamples, seed, shoppers=shoppers),
        f"coverage@{COVERAGE_K}": catalogue_coverage(results.top_items, results.n_items),
    }
    if slices is not None and len(results.ranks):
        attrs = {name: slices[name].to_numpy() for name in slice_names(slices)}
        out["slices"] = slice_metrics(per_case, attrs, n_resamples=min(n_resamples, 200), seed=seed, shoppers=shoppers)
    return out


def evaluation_line(protocol: str, n_cases: int, n_shoppers: int, cut: str | None = None) -> str:
    """What every evaluation output says first: ranking, protocol (with time_split's cut) and what was counted."""
    if protocol == "time_split":
        return f"full ranking, time_split (cut {cut}), {n_cases} cases of {n_shoppers} shoppers (test targets)"
    return f"full ranking, {protocol}, {n_shoppers} shoppers (test targets)"


def no_cases_message(protocol: str, cut: str | None = None) -> str:
    if protocol == "time_split":
        return (f"no session starts at or after the cut {cut} from a shopper with earlier events: nothing to evaluate "
                "under time_split (choose an earlier --cut)")
    return f"no shopper has enough history for {protocol} evaluation (needs 3 events / sessions)"


def evaluate_model(model: Any, split: Any, part: str = "test", n_resamples: int = N_BOOTSTRAP, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Full-ranking evaluation of a `Recommender` on the `part` cases of a `sequences.Split`.

    Returns {"model", "protocol", "ranking": "full", "part", "n_users", "n_items", "metrics",
    "ci95", "coverage@10", "slices", "bootstrap"}; what the app and the CLI show.
    """
    cases = split.cases(part)
    results = rank_cases(model, cases)
    return {
        "model": model.model_type,
        "protocol": split.protocol,
        **({"cut": cut_iso(split.cut, split.data.features.calendar.timezone)} if split.cut is not None else {}),
        "ranking": "full",
        "part": part,
        **summarize(results, cases.slices(), n_resamples, seed),
        "bootstrap": {"resamples": n_resamples, "unit": "shopper", "seed": seed, "level": 0.95},
    }


# --- CLI: evaluate and compare model folders -------------------------------------------------------


def _load_cases(con: Any, loaded: Sequence[Any], protocol: str, part: str = "test", cut: int | None = None) -> list[Any]:
    """The `part` cases of `protocol` (time_split: at ``cut``, UTC seconds) for each loaded model, encoded with
    that model's own vocabularies.

    Events are read once per timezone; models sharing a feature space share one encoding.
    Cases depend only on shoppers and times, so every model sees the same cases; asserted.
    """
    import json

    from recsys_core.sequences import SequenceData
    from recsys_core.store import events as store_events

    frames: dict[str, Any] = {}
    encoded: dict[str, Any] = {}
    out = []
    for lm in loaded:
        tz = lm.features.calendar.timezone
        if tz not in frames:
            frames[tz] = store_events.read_events(con, tz)
            if len(frames[tz]) == 0:
                raise ValueError("the database has no events; run `python -m recsys_core sample` or import data first")
        key = json.dumps(lm.metadata["features"], sort_keys=True)
        if key not in encoded:
            encoded[key] = SequenceData.from_frame(frames[tz], lm.features).split(protocol, cut).cases(part)
        out.append(encoded[key])
    first = out[0]
    for cases in out[1:]:
        assert np.array_equal(cases.targets, first.targets) and np.array_equal(cases.users, first.users), "models must be evaluated on the same cases"
    return out


def _load_models(model_dirs: Sequence[str]) -> list[Any]:
    from recsys_core.registry import load_model

    return [load_model(d) for d in model_dirs]


def _data_check(con: Any, lm: Any) -> bool:
    """Whether the database is the data the model was trained on (its fingerprint matches)."""
    from recsys_core.store import events as store_events

    return lm.metadata.get("data_fingerprint") == store_events.data_fingerprint(con)


def _resolve_protocol(requested: str | None, loaded: Sequence[Any]) -> str:
    from recsys_core.sequences import check_protocol

    return check_protocol(requested or loaded[0].protocol or "next_event")


def trained_cut(lm: Any) -> int | None:
    """The time_split cut a model was trained at (UTC seconds), None when it records none."""
    recorded = lm.metadata.get("cut")
    return None if not recorded else parse_cut(recorded, "UTC")  # recorded with its offset


def resolve_cut(con: Any, protocol: str, requested: str | None, loaded: Sequence[Any]) -> int | None:
    """time_split's cut in UTC seconds: ``requested`` (ISO; without an offset, the data's local time), else
    the first model's recorded cut, else the data's default (`sequences.store_default_cut`). None for the
    other protocols, which take no cut."""
    from recsys_core.sequences import store_default_cut
    from recsys_core.store import events as store_events

    if protocol != "time_split":
        if requested is not None:
            raise ValueError(f"--cut applies with --protocol time_split, not {protocol}")
        return None
    if requested is not None:
        return parse_cut(requested, store_events.data_timezone(con))
    recorded = [c for c in (trained_cut(lm) for lm in loaded if lm.protocol == "time_split") if c is not None]
    return recorded[0] if recorded else store_default_cut(con)


class ProtocolMismatchError(ValueError):
    """A model would be scored under another protocol or on other data than it was trained on."""


ALLOW_MISMATCH_HINT = "use --allow-mismatch to score anyway"


def protocol_guard(con: Any, loaded: Sequence[Any], protocol: str, allow_mismatch: bool = False, cut: int | None = None,
                   hint: str = ALLOW_MISMATCH_HINT) -> list[str]:
    """Refuse to score a model on cases it may have trained on: another protocol than its training one
    (e.g. a next_event model's training targets are next_session test targets), another time_split cut
    (a later cut's test targets are its training events), or other data (its fingerprint differs). Returns
    the mismatches found (empty when none); raises `ProtocolMismatchError` with a one-line message naming
    both unless ``allow_mismatch`` (``hint`` ends the message: what the caller can do)."""
    from recsys_core.store import events as store_events

    problems = []
    here = store_events.data_fingerprint(con)
    tz = store_events.data_timezone(con)
    for lm in loaded:
        trained = lm.protocol or "unknown"
        if trained != protocol:
            problems.append(f"{lm.path.name} was trained under {trained}, not {protocol}")
        elif protocol == "time_split" and cut is not None and trained_cut(lm) != cut:
            theirs = trained_cut(lm)
            problems.append(f"{lm.path.name} was trained with cut {cut_iso(theirs, tz) if theirs is not None else 'unknown'}, "
                            f"not {cut_iso(cut, tz)}")
        theirs = lm.metadata.get("data_fingerprint") or {}
        if theirs.get("events_hash") != here["events_hash"] or theirs.get("n_events") != here["n_events"]:
            problems.append(
                f"{lm.path.name} was trained on other data (events {theirs.get('n_events')} hash {theirs.get('events_hash')}), "
                f"this database has events {here['n_events']} hash {here['events_hash']}"
            )
    if problems and not allow_mismatch:
        raise ProtocolMismatchError("; ".join(problems) + f" — scores would not be comparable ({hint})")
    return problems


def evaluate_cli(args: Any) -> dict[str, Any]:
    """Handler of `python -m recsys_core evaluate --model-dir DIR [--protocol P [--cut ISO]] [--db PATH]` (docs/design.md §7)."""
    from recsys_core.store import connect
    from recsys_core.store import events as store_events

    torch.set_num_threads(min(2, torch.get_num_threads()))
    (lm,) = _load_models([args.model_dir])
    protocol = _resolve_protocol(getattr(args, "protocol", None), [lm])
    con = connect(args.db, read_only=True)
    try:
        cut = resolve_cut(con, protocol, getattr(args, "cut", None), [lm])
        cut_text = None if cut is None else cut_iso(cut, store_events.data_timezone(con))
        mismatches = protocol_guard(con, [lm], protocol, getattr(args, "allow_mismatch", False), cut)
        (results,), table = rank_models(con, [lm], protocol, EvaluationStore.beside(args.db), cut)
        same_data = _data_check(con, lm)
    finally:
        con.close()
    if len(table) == 0:
        raise ValueError(no_cases_message(protocol, cut_text))
    summary = summarize(results, table)
    summary["popularity_pct@10"] = _round(results.extra.get("popularity_pct"), 2)
    summary["novelty@10"] = _round(results.extra.get("novelty"), 3)
    m = summary["metrics"]
    return {
        "evaluation": evaluation_line(protocol, summary["n_cases"], summary["n_users"], cut_text),
        "model": lm.model_type,
        "model_dir": str(lm.path),
        "version": lm.version,
        "protocol": protocol,
        **({"cut": cut_text} if cut_text else {}),
        "trained_protocol": lm.protocol,
        "ranking": "full",
        "data_matches_training": same_data,
        "mismatch": bool(mismatches),
        "mismatches": mismatches,
        **summary,
        "headline": f"NDCG@10 {m['NDCG@10']:.4f} [{summary['ci95']['NDCG@10'][0]:.4f}, {summary['ci95']['NDCG@10'][1]:.4f}]  "
        f"HR@10 {m['HR@10']:.4f}  MRR@10 {m['MRR@10']:.4f}",
        "bootstrap": {"resamples": N_BOOTSTRAP, "unit": "shopper", "seed": DEFAULT_SEED, "level": 0.95},
    }


def _labels(loaded: Sequence[Any]) -> list[str]:
    """Model names for tables: the model type, made unique with the folder name when repeated."""
    types = [lm.model_type for lm in loaded]
    return [t if types.count(t) == 1 else f"{t}:{lm.path.name}" for t, lm in zip(types, loaded)]


def compare_results(labels: Sequence[str], results: Sequence[CaseResults], seed: int = DEFAULT_SEED,
                    shoppers: Sequence[Any] | np.ndarray | None = None) -> dict[str, Any]:
    """Table, intervals and paired NDCG@10 tests of several models' results on the same cases
    (``shoppers``: one id per case, the resampling unit; None: one case per shopper).

    Each model is tested against the first (the reference) and against the best by NDCG@10.
    """
    per_case = [r.per_case for r in results]
    models = []
    for label, res, pc in zip(labels, results, per_case):
        ci = bootstrap_ci(pc, N_BOOTSTRAP, seed, shoppers=shoppers)
        models.append({"model": label, "metrics": mean_metrics(pc), "ci95": ci, f"coverage@{COVERAGE_K}": catalogue_coverage(res.top_items, res.n_items)})
    best = max(range(len(models)), key=lambda i: models[i]["metrics"][HEADLINE])

    done: dict[tuple[int, int], dict[str, Any]] = {}  # the reference is often the best: each pair is tested once

    def test(i: int, j: int) -> dict[str, Any]:
        if (i, j) not in done:
            done[i, j] = {"a": labels[i], "b": labels[j], "metric": HEADLINE,
                          **paired_test(per_case[i][HEADLINE], per_case[j][HEADLINE], seed=seed, shoppers=shoppers)}
        return dict(done[i, j])

    table = [
        {
            "model": m["model"],
            HEADLINE: round(m["metrics"][HEADLINE], 4),
            f"{HEADLINE}_ci95": [round(x, 4) for x in m["ci95"][HEADLINE]],
            "HR@10": round(m["metrics"]["HR@10"], 4),
            "MRR@10": round(m["metrics"]["MRR@10"], 4),
            "Recall@20": round(m["metrics"]["Recall@20"], 4),
            f"coverage@{COVERAGE_K}": round(m[f"coverage@{COVERAGE_K}"], 4),
            f"rel_{HEADLINE}_vs_{labels[0]}": round(m["metrics"][HEADLINE] / models[0]["metrics"][HEADLINE] - 1.0, 4)
            if models[0]["metrics"][HEADLINE] > 0
            else None,
        }
        for m in models
    ]
    return {
        "models": models,
        "table": table,
        "best": labels[best],
        "tests": [test(0, j) for j in range(1, len(labels))],
        "vs_best": [test(best, j) for j in range(len(labels)) if j != best],
    }


def compare_cli(args: Any) -> dict[str, Any]:
    """Handler of `python -m recsys_core compare DIR DIR ... [--protocol P] [--db PATH]`: every model on
    the same cases, with bootstrap intervals and paired tests (each vs the first, and vs the best)."""
    from recsys_core.store import connect

    torch.set_num_threads(min(2, torch.get_num_threads()))
    con = connect(args.db, read_only=True)
    try:
        return compare_models(con, list(args.model_dirs), getattr(args, "protocol", None), getattr(args, "allow_mismatch", False),
                              store=EvaluationStore.beside(args.db), cut=getattr(args, "cut", None))
    finally:
        con.close()


def compare_models(con: Any, dirs: Sequence[str], protocol: str | None = None, allow_mismatch: bool = False,
                   store: EvaluationStore | None = None, with_cases: bool = False, cut: str | None = None) -> dict[str, Any]:
    """Every model on the same cases of the open database, with bootstrap intervals and paired tests (each vs
    the first, and vs the best), catalogue coverage, popularity bias and novelty — what `compare` prints and the
    Models page shows. With ``store``, rankings already stored are reused and new ones stored. ``with_cases``
    adds "cases": the case table with each model's 1-based rank of the target (a DataFrame, for the page).
    ``cut``: time_split's cut (ISO; default: the first model's recorded cut, else the data's default)."""
    from recsys_core.store import events as store_events

    if len(dirs) < 2:
        raise ValueError("compare needs at least two model folders")
    loaded = _load_models(list(dirs))
    protocol = _resolve_protocol(protocol, loaded)
    cut_ts = resolve_cut(con, protocol, cut, loaded)
    cut_text = None if cut_ts is None else cut_iso(cut_ts, store_events.data_timezone(con))
    mismatches = protocol_guard(con, loaded, protocol, allow_mismatch, cut_ts)
    labels = _labels(loaded)
    results, table = rank_models(con, loaded, protocol, store, cut_ts)
    if len(table) == 0:
        raise ValueError(no_cases_message(protocol, cut_text))
    same_data = {label: _data_check(con, lm) for label, lm in zip(labels, loaded)}
    shoppers = case_shoppers(table)
    n_shoppers = int(len(np.unique(shoppers)))
    out = compare_results(labels, results, shoppers=shoppers)
    for entry, res, lm in zip(out["models"], results, loaded):
        entry["slices"] = slice_metrics(res.per_case, {name: table[name].to_numpy() for name in slice_names(table)}, shoppers=shoppers)
        entry.update({"model_type": lm.model_type, "model_dir": str(lm.path), "version": lm.version, "trained_protocol": lm.protocol,
                      **({"trained_cut": lm.metadata["cut"]} if lm.metadata.get("cut") else {}),
                      "popularity_pct@10": _round(res.extra.get("popularity_pct"), 2), "novelty@10": _round(res.extra.get("novelty"), 3)})
    for row, entry in zip(out["table"], out["models"]):
        row["popularity_pct@10"], row["novelty@10"] = entry["popularity_pct@10"], entry["novelty@10"]
    extra = {}
    if with_cases:
        cases = table.copy()
        for label, res in zip(labels, results):
            cases[f"rank:{label}"] = res.ranks + 1
        extra["cases"] = cases
    return {
        "evaluation": evaluation_line(protocol, len(table), n_shoppers, cut_text),
        "protocol": protocol,
        **({"cut": cut_text} if cut_text else {}),
        "ranking": "full",
        "n_cases": len(table),
        "n_users": n_shoppers,
        "data_matches_training": same_data,
        "mismatch": bool(mismatches),
        "mismatches": mismatches,
        **out,
        "bootstrap": {"resamples": N_BOOTSTRAP, "permutations": N_PERMUTATIONS, "unit": "shopper", "seed": DEFAULT_SEED, "level": 0.95},
        **extra,
    }


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), digits)


def rank_models(con: Any, loaded: Sequence[Any], protocol: str, store: EvaluationStore | None = None,
                cut: int | None = None) -> tuple[list[CaseResults], Any]:
    """Each model's `CaseResults` on the test cases of ``protocol`` (time_split: at ``cut``, UTC seconds; with
    popularity bias and novelty in ``extra``) and the cases' table (`case_table`); from ``store`` when it has
    them, ranked (and stored) otherwise. Stored under `protocol_key`, so two cuts never share results."""
    from recsys_core.sequences import protocol_key
    from recsys_core.store import events as store_events

    if protocol == "time_split" and cut is None:
        from recsys_core.sequences import store_default_cut

        cut = store_default_cut(con)
    key = protocol_key(protocol, cut)
    events_hash = store_events.data_fingerprint(con)["events_hash"]
    results: list[CaseResults | None] = [store.load_results(lm.version, events_hash, key) if store else None for lm in loaded]
    table = store.load_cases(events_hash, key) if store else None
    if table is not None and any(r is not None and len(r.ranks) != len(table) for r in results):
        results, table = [None] * len(loaded), None  # inconsistent files: recompute everything
    missing = [i for i, r in enumerate(results) if r is None]
    if missing or table is None:
        need = missing or [0]
        all_cases = _load_cases(con, [loaded[i] for i in need], protocol, cut=cut)
        if table is None:
            table = case_table(all_cases[0])
            if store:
                store.save_cases(events_hash, key, table)
        if missing:
            popularity = item_popularity(con)
            for i, cases in zip(missing, all_cases):
                res = rank_cases(loaded[i].model, cases)
                values = np.asarray(loaded[i].features.items.values, dtype=object)
                top_ids = values[np.clip(res.top_items, 1, None) - 1][res.top_items > 0] if res.top_items.size else np.zeros(0, object)
                pct, novelty = popularity_bias_and_novelty(top_ids, popularity)
                res.extra = {"popularity_pct": pct, "novelty": novelty}
                if store:
                    store.save_results(loaded[i].version, events_hash, key, res)
                results[i] = res
    return results, table
