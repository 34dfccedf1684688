"""The serving API: what a shopper would be pushed at a given moment and scene.

The app, the explanations and the CLI call these functions; any registered model
(the context transformer, sasrec, or a baseline) serves through the same path:

    lm = load_model()                                   # the bundled model; cache it (st.cache_resource)
    sc = Scenario(datetime(2025, 11, 11, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai")), {"device": "mobile"})
    recommend(lm, con, "u00042", sc, k=10)             # DataFrame: item_id, rank, score, title, ...
    score_scenarios(lm, con, "u00042", [sc.at_hour(h) for h in range(24)])   # (24, n_items), one batch

History: the shopper's most recent events in the store (at most the model's
``history_len``), or only those strictly before ``history_before`` when given
(to replay a past moment). The target context is the scenario's local time
(in the model's timezone) and the scene values of the fields the model reads (`lm.context_fields`);
unknown scene values map to "unknown", and fields the model does not read are ignored.

Shoppers: an id found nowhere in the store raises `UnknownUserError`. A known
shopper without usable history (profile only, or only items the model never
saw) is a cold start: whatever the model, the list is the scene-aware popularity
of the current context — the `context_pop` baseline (hour bucket × weekday/weekend ×
the first scene field the model reads), counted over the store's events with the
model's vocabularies (`cold_start_model`, fitted once per model and data version).
The result says so (``attrs["cold_start"]``, ``attrs["cold_start_source"]``) and
`cold_start_reason` gives the sentence the list and the explanation show.

Threads: `load_model` sets torch and numpy's BLAS to one thread (``SERVING_THREADS``): on a shared
2-core machine one thread gives the most stable interactive latency, and OpenBLAS's idle threads
spin — explanations burnt half a core more for the same answers (docs/pitfalls.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from recsys_core import registry
from recsys_core.context import Scenario, parse_moment
from recsys_core.models.router import routing_note
from recsys_core.registry import LoadedModel
from recsys_core.sequences import serving_batch
from recsys_core.store import connect
from recsys_core.store import events as store_events

SERVING_THREADS = 1
BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "sample_data" / "models" / "context_transformer"
MODELS_ROOT = Path("models")


COLD_START_SOURCE = "context_pop"


class UnknownUserError(ValueError):
    """The shopper id is not in the store."""


def bundled_model_dir() -> Path:
    """The context transformer shipped with the sample world."""
    return BUNDLED_MODEL


def list_model_dirs(root: str | os.PathLike = MODELS_ROOT) -> list[Path]:
    """The bundled model (when present) followed by every model folder under ``root`` (default ./models)."""
    found = [BUNDLED_MODEL] if (BUNDLED_MODEL / registry.METADATA_FILE).is_file() else []
    return found + [p for p in registry.list_model_dirs(root) if p.resolve() != BUNDLED_MODEL.resolve()]


def load_model(model_dir: str | os.PathLike | None = None) -> LoadedModel:
    """Load a model folder (default: the bundled model) for serving; callers cache the result.
    Raises `registry.ModelFolderError` with a clear message for a missing/corrupt/incompatible folder."""
    torch.set_num_threads(SERVING_THREADS)
    threadpool_limits(SERVING_THREADS, user_api="blas")  # numpy's OpenBLAS: its idle threads spin (docs/pitfalls.md)
    return registry.load_model(model_dir or BUNDLED_MODEL)


def context_ids(lm: LoadedModel, scenario: Scenario, history_ts: np.ndarray | None = None) -> dict[str, int]:
    """Target-context ids of a scenario under the model's vocabularies and calendar.

    ``history_ts``: the UTC times (naive datetime64) of the shopper's history, for the time since
    their latest event; None = unknown, empty = no history (a cold start).
    """
    fs = lm.features
    since = None
    if history_ts is not None:
        if len(history_ts) == 0:
            since = float("nan")
        else:
            at_utc = np.datetime64(scenario.utc(fs.calendar.timezone).replace(tzinfo=None), "s")
            since = float((at_utc - np.asarray(history_ts).astype("datetime64[s]").max()).astype(np.int64))
    local = scenario.local_time(fs.calendar.timezone)
    return fs.encode_moment(local, scenario.scene, scenario.promo_override, since)


def _history_arrays(
    lm: LoadedModel, con, user_id: str, history_before: dt.datetime | None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(raw columns, encoded history fields) of the events the model reads, oldest first."""
    fs, keep_n = lm.features, lm.model.history_len
    before = None
    if history_before is not None:
        before = history_before.astimezone(dt.timezone.utc).replace(tzinfo=None) if history_before.tzinfo else history_before
    # one extra event so the oldest kept event still gets its real time-since-previous bucket
    cols = store_events.read_user_events(con, user_id, fs.calendar.timezone, before=before, limit=keep_n + 1)
    n = len(cols["item_id"])
    if n == 0:
        if not store_events.user_exists(con, user_id):
            raise UnknownUserError(f"unknown shopper {user_id!r}: no events or profile in this database")
        return cols, {k: np.zeros(0, np.int64) for k in fs.history_fields()}
    enc = fs.encode_events(cols)
    keep = enc["item"] > 0  # items the model knows
    keep[: max(0, n - keep_n)] = False
    return {k: v[keep] for k, v in cols.items()}, {k: v[keep] for k, v in enc.items()}


def user_history(
    lm: LoadedModel, con, user_id: str, history_before: dt.datetime | None = None
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The shopper's recent events the model reads (raw rows, oldest first) and their encoded history fields.

    At most ``history_len`` events; events of items the model does not know are dropped.
    Raises `UnknownUserError` for an id the store has never seen.
    """
    cols, enc = _history_arrays(lm, con, user_id, history_before)
    return pd.DataFrame(cols), enc


def cold_start_scene_field(lm: LoadedModel) -> str | None:
    """The scene field cold-start popularity is conditioned on: the first the model reads (as `train` picks for context_pop)."""
    reads = lm.context_fields or tuple(getattr(getattr(lm.model, "cfg", None), "context_fields", None) or ())
    return next((f for f in reads if f in lm.features.scene_names), None)


def cold_start_model(lm: LoadedModel, con) -> Any:
    """The scene-aware popularity model (`context_pop`) for shoppers without history, over every event of the
    store encoded with the model's vocabularies. Fitted on first use and kept on ``lm`` per data version
    (event count and time range), so an import or an erasure refits it."""
    from recsys_core.models.baselines import ContextPopularity, ContextPopularityConfig
    from recsys_core.sequences import SequenceData

    n, first, last = con.execute("SELECT count(*), min(ts), max(ts) FROM events").fetchone()
    key = (int(n), str(first), str(last))
    cache = lm.__dict__.setdefault("_cold_start", {})
    if key not in cache:
        field = cold_start_scene_field(lm)
        n_scene = int(lm.features.vocab_sizes().get(field, 1)) if field else 1
        model = ContextPopularity(ContextPopularityConfig(n_items=lm.model.n_items, scene_field=field, n_scene=n_scene))
        if n:
            model.fit(SequenceData.from_store(con, features=lm.features).serving_split())
        model.eval()
        cache.clear()
        cache[key] = model
    return cache[key]


def _scores(lm: LoadedModel, history: dict[str, np.ndarray], contexts: list[dict[str, int]], con=None) -> torch.Tensor:
    """Scores (S, N+1) of every item under each context; an empty history (and a store to count in) → cold-start popularity."""
    cold = len(history["item"]) == 0 and con is not None
    model = cold_start_model(lm, con) if cold else lm.model
    batch = serving_batch(history, contexts, 1 if cold else lm.model.history_len)
    with torch.no_grad():
        scores = model.score_all(batch)  # (S, N+1)
    assert bool(torch.isfinite(scores[:, 1:]).all()), "model produced non-finite scores"
    return scores


def score_scenarios(
    lm: LoadedModel, con, user_id: str, scenarios: Sequence[Scenario], history_before: dt.datetime | None = None
) -> np.ndarray:
    """Scores of every item under each scenario, in ONE batch: float32 (S, n_items); column j is the
    item ``lm.features.items.values[j]`` (dense id j + 1). Use for a 24-hour sweep."""
    cols, hist = _history_arrays(lm, con, user_id, history_before)
    scores = _scores(lm, hist, [context_ids(lm, s, cols["ts"]) for s in scenarios], con)
    return scores[:, 1:].numpy().astype(np.float32)


@dataclass
class Ranked:
    """A top-k as plain columns (what `recommend` returns as a DataFrame): building the frame costs more than
    the ranking itself, so the API serialises these directly (`recommendation_dict`)."""

    columns: dict[str, list]  # item_id, rank, score, title, title_zh, category, category_zh, price
    attrs: dict[str, Any]

    def frame(self) -> pd.DataFrame:
        out = pd.DataFrame({k: np.asarray(v, dtype=np.float64) if k in ("score", "price") else
                            (np.asarray(v, dtype=np.int64) if k == "rank" else v) for k, v in self.columns.items()})
        out.attrs.update(self.attrs)
        return out


def rank_items(
    lm: LoadedModel,
    con,
    user_id: str,
    scenario: Scenario,
    k: int = 10,
    exclude_seen: bool = False,
    history_before: dt.datetime | None = None,
) -> Ranked:
    """`recommend` without the DataFrame (same arguments, same rows)."""
    cols, hist = _history_arrays(lm, con, user_id, history_before)
    scores = _scores(lm, hist, [context_ids(lm, scenario, cols["ts"])], con)  # (1, N+1)
    if exclude_seen:
        seen = lm.features.items.encode(store_events.user_item_ids(con, user_id))
        scores[0, seen[seen > 0]] = float("-inf")
    k = max(1, min(int(k), lm.model.n_items))
    ids, values, details = _top_in_catalogue(lm, con, scores[0], k)
    info = [details[i] for i in ids]
    columns = {
        "item_id": ids,
        "rank": list(range(1, len(ids) + 1)),
        "score": values.tolist(),
        "title": [r[0] for r in info],
        "title_zh": [r[1] for r in info],
        "category": [r[2] for r in info],
        "category_zh": [r[3] for r in info],
        "price": [np.nan if r[5] is None else float(r[5]) for r in info],
    }
    n_history = len(hist["item"])
    attrs = dict(
        user_id=str(user_id),
        cold_start=n_history == 0,
        cold_start_source=COLD_START_SOURCE if n_history == 0 else None,
        history_length=n_history,
        model_version=lm.version,
        scenario=scenario.to_dict(),
    )
    return Ranked(columns, attrs)


def recommend(
    lm: LoadedModel,
    con,
    user_id: str,
    scenario: Scenario,
    k: int = 10,
    exclude_seen: bool = False,
    history_before: dt.datetime | None = None,
) -> pd.DataFrame:
    """Top-k items for the shopper under the scenario, best first.

    Columns: item_id, rank (1-based), score, title, title_zh, category, category_zh, price.
    ``attrs``: user_id, cold_start, cold_start_source (None, or "context_pop": the list is the scene-aware
    popularity of the moment), history_length, model_version, scenario.
    ``exclude_seen`` drops every item the shopper has interacted with.
    """
    return rank_items(lm, con, user_id, scenario, k, exclude_seen, history_before).frame()


def _top_in_catalogue(lm: LoadedModel, con, scores: torch.Tensor, k: int) -> tuple[list[str], np.ndarray, dict[str, tuple]]:
    """The k best-scored items that exist in the open database's catalogue, with their catalogue rows.

    A model trained on other data knows items this database has never seen; those are never recommended
    (nor explained or pushed through this list). On its own data every top item is in the catalogue, so
    this costs the one lookup the details needed anyway; otherwise the whole ranking is checked once.
    """
    finite = int(torch.isfinite(scores[1:]).sum())
    top = torch.topk(scores, min(k, finite)) if finite else None
    ids = [] if top is None else [lm.features.items.decode(i) for i in top.indices.tolist()]
    details = store_events.read_items_by_id(con, ids)
    if len(details) < len(ids) and finite > len(ids):  # some items are not in this database: rank them all
        top = torch.topk(scores, finite)
        ids = [lm.features.items.decode(i) for i in top.indices.tolist()]
        details = store_events.read_items_by_id(con, ids)
    if top is None:
        return [], np.zeros(0, np.float64), {}
    keep = [j for j, i in enumerate(ids) if i in details][:k]
    return [ids[j] for j in keep], top.values[keep].numpy().astype(np.float64), details


# A model trained on other data serves a database only when its vocabulary knows at least this share of the
# database's catalogue (items with events); below it most shoppers' histories and items would be unknown to it.
MIN_CATALOGUE_COVERAGE = 0.9


def data_fit(lm: LoadedModel, con) -> dict[str, Any]:
    """Whether ``lm`` may serve the open database: trained on this very data, or on other data whose catalogue
    covers this one's (``coverage``: share of the database's items with events that the model knows).

    Returns {"same_data", "coverage", "usable", "n_items_here", "n_items_known"}."""
    here = store_events.data_fingerprint(con)
    trained = lm.metadata.get("data_fingerprint") or {}
    same = bool(trained.get("events_hash")) and trained.get("events_hash") == here["events_hash"]
    item_ids = [r[0] for r in con.execute("SELECT DISTINCT item_id FROM events").fetchall()]
    known = int((lm.features.items.encode(item_ids) > 0).sum()) if item_ids else 0
    coverage = known / len(item_ids) if item_ids else 0.0
    return {
        "same_data": same,
        "coverage": round(coverage, 4),
        "usable": same or coverage >= MIN_CATALOGUE_COVERAGE,
        "n_items_here": len(item_ids),
        "n_items_known": known,
    }


def cold_start_reason(lm: LoadedModel, con, scenario: Scenario, item_id: str | None = None) -> dict[str, Any]:
    """What the list and the explanation say for a shopper without history, in English and Chinese: the list is
    the popularity of this moment (hour bucket, weekday/weekend, the scene value the model reads), and where
    ``item_id`` stands in it. Keys: en, zh, source, scene_field, scene_value, hour_bucket, day_type, rank."""
    from recsys_core.i18n import t

    field = cold_start_scene_field(lm)
    ctx = context_ids(lm, scenario, np.zeros(0, "datetime64[s]"))
    pop = cold_start_model(lm, con)
    width = pop.cfg.hour_bucket_hours
    hour = int(ctx.get("hour", 0)) - 1
    lo = (hour // width) * width if hour >= 0 else None
    hours = f"{lo:02d}:00–{lo + width:02d}:00" if lo is not None else "?"
    weekend = ctx.get("weekend", 0) == 2
    value = scenario.get(field, "unknown") if field else None
    rank = None
    if item_id is not None:
        dense = int(lm.features.items.encode([str(item_id)])[0])
        if dense > 0:
            scores = _scores(lm, {k: np.zeros(0, np.int64) for k in lm.features.history_fields()}, [ctx], con)[0]
            rank = int((scores[1:] > scores[dense]).sum()) + 1
    out: dict[str, Any] = {"source": COLD_START_SOURCE, "scene_field": field, "scene_value": value, "hours": hours,
                           "day_type": "weekend" if weekend else "weekday", "rank": rank}
    for lang in ("en", "zh"):
        day = t("scale.cold_start.weekend" if weekend else "scale.cold_start.weekday", lang)
        scene = t("scale.cold_start.scene", lang, field=field, value=value) if field else ""
        text = t("scale.cold_start.list", lang, hours=hours, day=day, scene=scene)
        if rank is not None:
            text += (" " if lang == "en" else "") + t("scale.cold_start.rank", lang, rank=rank)
        out[lang] = text
    return out


def cold_start_note(lm: LoadedModel, con, user_id: str, scenario: Scenario, history_before: dt.datetime | None = None) -> dict[str, Any] | None:
    """`cold_start_reason` when the shopper has no usable history (their list is scene-aware popularity), else None."""
    _, hist = _history_arrays(lm, con, user_id, history_before)
    return None if len(hist["item"]) else cold_start_reason(lm, con, scenario)


def scenario_from_args(args: argparse.Namespace, lm: LoadedModel) -> Scenario:
    """The CLI's scenario: ``--at`` plus the scene the CLI parsed (``args.scene``: field -> value, from
    ``--scene NAME=VALUE`` and its shorthands). A field the model's data does not have is an error naming
    the fields it has."""
    return scenario_of(lm, args.at, dict(getattr(args, "scene", None) or {}), where="--scene")


def scenario_of(lm: LoadedModel, at: str, scene: dict[str, str], where: str = "scene") -> Scenario:
    """A scenario from an ISO moment (read in the model's timezone without an offset) and scene values,
    as the CLI and the API receive them; a field the model's data lacks is a ValueError naming its fields."""
    unknown = sorted(set(scene) - set(lm.features.scene_names))
    if unknown:
        have = ", ".join(lm.features.scene_names) or "none"
        raise ValueError(f"{where}: the model's data has no field {', '.join(unknown)} (its scene fields: {have})")
    return Scenario(parse_moment(at, lm.features.calendar.timezone), scene)


def hour_sweep(lm: LoadedModel, con, user_id: str, scenario: Scenario, item_ids: Sequence[str],
               exclude_seen: bool = False) -> pd.DataFrame:
    """Ranks (hour, item_id, rank) of ``item_ids`` at every hour 0..23 of the scenario's day, from ONE batched
    scoring call. With ``exclude_seen`` the ranks count only items the shopper has not interacted with,
    as the list does (an excluded item itself gets no rank)."""
    from recsys_core import scenario as sc

    scores = score_scenarios(lm, con, user_id, [scenario.at_hour(h) for h in range(24)])
    columns = {item: j for j, item in enumerate(lm.features.items.values)}
    if exclude_seen:
        seen = set(store_events.user_item_ids(con, user_id))
        keep = [j for item, j in columns.items() if item not in seen]
        scores = scores[:, keep]
        columns = {lm.features.items.values[j]: n for n, j in enumerate(keep)}
    return sc.sweep_frame(scores, columns, [str(i) for i in item_ids if str(i) in columns][: sc.SWEEP_MAX_ITEMS])


def recommend_cli(args: argparse.Namespace) -> dict[str, Any]:
    """Handler of `python -m recsys_core recommend`."""
    lm = load_model(args.model_dir)
    scenario = scenario_from_args(args, lm)
    con = connect(args.db, read_only=True)
    try:
        top = rank_items(lm, con, args.user, scenario, k=args.k)
        note = cold_start_reason(lm, con, scenario)["en"] if top.attrs["cold_start"] else None
    finally:
        con.close()
    return recommendation_dict(lm, scenario, top, note)


def recommendation_dict(lm: LoadedModel, scenario: Scenario, top: Ranked | pd.DataFrame, note: str | None = None) -> dict[str, Any]:
    """A `recommend` result as JSON-ready data: the items with scores, the moment, the scene and context
    fields the model read, and the model version — what the CLI prints and the API returns. ``note``: the
    cold-start sentence (`cold_start_reason`) when the shopper has no history."""
    tz = lm.features.calendar.timezone
    ctx = context_ids(lm, scenario)
    local = scenario.local_time(tz)
    columns = top.columns if isinstance(top, Ranked) else {name: top[name].tolist() for name in top.columns}
    items = [
        {k: (None if pd.isna(v) else (round(float(v), 5) if k == "score" else (int(v) if k == "rank" else v)))
         for k, v in zip(columns, row)}
        for row in zip(*columns.values())
    ]
    return {
        "items": items,
        "user": str(top.attrs["user_id"]),
        "at": scenario.at.isoformat(),
        "local_time": local.isoformat(timespec="minutes"),
        "timezone": tz,
        "scene": {name: scenario.get(name, "unknown") for name in lm.features.scene_names},
        "context_fields": list(lm.context_fields),
        "ignored_scene": sorted(set(scenario.scene) - set(lm.context_fields)),
        "context": {
            "hour": local.hour,
            "weekday": local.strftime("%A"),
            "weekend": ctx["weekend"] == 2,
            "holiday": ctx["holiday"] == 2,
            "promo_day": ctx["promo"] == 2,
        },
        "cold_start": top.attrs["cold_start"],
        **({"cold_start_note": note} if note else {}),
        "history_length": top.attrs["history_length"],
        "model_version": lm.version,
        "model": {"type": lm.model_type, "version": lm.version, "path": str(lm.path), "protocol": lm.protocol},
        **routing_note(lm, scenario),  # a router: the member that answered this moment, and why
    }


# --- benchmark ("serving" group) --------------------------------------------------------------


def _serving_figures(db: str | None, model_dir: str | None = None, n_users: int = 20, repeats: int = 10) -> dict[str, float]:
    """Latency and memory of serving, measured in this process (run it in a fresh one for RSS)."""
    t0 = time.perf_counter()
    lm = load_model(model_dir)
    load_ms = (time.perf_counter() - t0) * 1000
    con = connect(db, read_only=True)
    try:
        users = store_events.active_users(con, n_users)
        tz = lm.features.calendar.timezone
        scene = {name: vocab.values[0] for name, vocab in lm.features.scene.items() if vocab.values}
        base = Scenario(dt.datetime(2025, 11, 18, 8, 0, tzinfo=ZoneInfo(tz)), scene)
        for u in users[:5]:  # warm-up: first calls pay for allocations and DuckDB plan caches
            recommend(lm, con, u, base)
            score_scenarios(lm, con, u, [base.at_hour(h) for h in range(24)])
        one, sweep = [], []
        for r in range(repeats):
            for i, u in enumerate(users):
                sc = base.at_hour((r * 7 + i) % 24)
                t = time.perf_counter()
                recommend(lm, con, u, sc, k=10)
                one.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            score_scenarios(lm, con, users[r % len(users)], [base.at_hour(h) for h in range(24)])
            sweep.append((time.perf_counter() - t) * 1000)
    finally:
        con.close()
    return {
        "serving_model_load_ms": round(load_ms, 1),
        "recommend_p50_ms": round(float(np.percentile(one, 50)), 2),
        "recommend_p99_ms": round(float(np.percentile(one, 99)), 2),
        "recommend_calls": len(one),
        "sweep24_p50_ms": round(float(np.percentile(sweep, 50)), 2),
        "sweep24_max_ms": round(float(np.max(sweep)), 2),
        "serving_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def benchmark_serving(db: str | None) -> dict[str, float]:
    """Bench group "serving": recommend p50/p99, 24-hour sweep, peak RSS — in a fresh process so the
    RSS is that of serving alone (bundled model, one torch thread)."""
    code = "import json,sys; from recsys_core.recommend import _serving_figures; print(json.dumps(_serving_figures(sys.argv[1] or None)))"
    out = subprocess.run([sys.executable, "-c", code, db or ""], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
