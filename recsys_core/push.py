"""Pushes: turn a shopper's current top-k for a scenario into records of the push audit log.

A push record (docs/design.md §2) keeps what a later review needs to answer "why did
this shopper get this item?": the moment and scene the push was for, the item's
rank and score at that moment, the version of the model that ranked it, and
(when given) the reasons computed at push time. The SQL lives in
`recsys_core.store.pushes`; this module builds the rows.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd

from recsys_core.context import Scenario, to_utc
from recsys_core.store.analytics import data_timezone
from recsys_core.store.pushes import existing_pushes, insert_pushes

log = logging.getLogger(__name__)


def new_push_id() -> str:
    return f"p-{uuid.uuid4().hex}"


def _reasons_json(reasons: Mapping[str, Any] | Sequence[Any] | None, item_id: str, row: int) -> str | None:
    if reasons is None:
        return None
    value = reasons.get(item_id) if isinstance(reasons, Mapping) else reasons[row]
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


def record_pushes(
    con: duckdb.DuckDBPyConnection,
    loaded_model: Any,
    user_id: str,
    scenario: Scenario,
    recs_df: pd.DataFrame,
    reasons: Mapping[str, Any] | Sequence[Any] | None = None,
) -> list[str]:
    """Record ``recs_df`` (item_id, rank, score, ...) as pushes to ``user_id`` for ``scenario``; returns the ids
    of the pushes written — an item already pushed to the shopper for the same moment by the same model
    version is not pushed again (see `already_pushed`).

    ``loaded_model`` is a `registry.LoadedModel` (its ``version`` is stored); the scenario's ``at`` is
    local time in the data's timezone when naive. ``reasons`` are per item id (a mapping) or per row
    (a sequence), stored as JSON. All rows are written in one transaction on ``con``, which must be writable.
    """
    if recs_df is None or recs_df.empty:
        raise ValueError("nothing to push: the recommendation list is empty")
    missing = [c for c in ("item_id", "rank", "score") if c not in recs_df.columns]
    if missing:
        raise ValueError(f"the recommendation frame lacks {missing}")
    if reasons is not None and not isinstance(reasons, Mapping) and len(reasons) != len(recs_df):
        raise ValueError(f"{len(reasons)} reasons for {len(recs_df)} pushes")
    pushed_at = to_utc(scenario.at, data_timezone(con))
    version = loaded_model.version
    before = existing_pushes(con, user_id, recs_df["item_id"].astype(str).tolist(), pushed_at, version)
    rows = []
    for row, (item_id, rank, score) in enumerate(zip(recs_df["item_id"], recs_df["rank"], recs_df["score"])):
        rows.append(
            {
                "push_id": new_push_id(),
                "pushed_at": pushed_at,
                "user_id": str(user_id),
                "item_id": str(item_id),
                "rank": int(rank),
                "score": float(score),
                "scene_json": scenario.scene,
                "model_version": version,
                "reasons_json": _reasons_json(reasons, str(item_id), row),
            }
        )
    rows = [r for r in rows if r["item_id"] not in before]
    insert_pushes(con, rows)
    log.info("recorded %d pushes for %s at %s UTC with %s (%d already pushed)", len(rows), user_id, pushed_at, version, len(before))
    return [r["push_id"] for r in rows]


def already_pushed(con: duckdb.DuckDBPyConnection, loaded_model: Any, user_id: str, scenario: Scenario,
                   item_ids: Sequence[str]) -> dict[str, Any]:
    """Items of ``item_ids`` already pushed to the shopper for this moment by this model version: item -> when logged."""
    return existing_pushes(con, user_id, [str(i) for i in item_ids], to_utc(scenario.at, data_timezone(con)), loaded_model.version)


# --- reasons at push time, and the `push` command ----------------------------------------------------


def reasons_at_push_time(
    con: duckdb.DuckDBPyConnection, loaded_model: Any, user_id: str, scenario: Any, recs_df: pd.DataFrame, k: int | None = None
) -> list[dict[str, Any]] | None:
    """Why each item of ``recs_df`` is pushed, from the live model (`recsys_core.explain.push_reasons`): the reason
    in English and Chinese, the Shapley values, the top inputs, a counterfactual and the model version.
    None for a model without inputs to attribute to (the count-based baselines). Reads only."""
    from recsys_core.explain import push_reasons
    from recsys_core.models.router import routed

    loaded_model = routed(loaded_model, scenario)  # a router: the member that answered this moment
    if not loaded_model.explainable:
        log.info("no reasons for pushes by a %s model", loaded_model.model_type)
        return None
    return push_reasons(loaded_model, con, user_id, scenario, recs_df["item_id"].astype(str).tolist(), k=k or len(recs_df))


def record_pushes_with_reasons(
    con: duckdb.DuckDBPyConnection, loaded_model: Any, user_id: str, scenario: Any, recs_df: pd.DataFrame, k: int | None = None
) -> list[str]:
    """`record_pushes` with `reasons_at_push_time` stored beside each push."""
    reasons = reasons_at_push_time(con, loaded_model, user_id, scenario, recs_df, k)
    return record_pushes(con, loaded_model, user_id, scenario, recs_df, reasons)


def push_cli(args: Any) -> dict[str, Any]:
    """Handler of `python -m recsys_core push`: record the top-k of a segment of shoppers for one moment and
    scene, with their reasons. Shoppers the store does not know are skipped and listed."""
    from tqdm.auto import tqdm

    from recsys_core import recommend
    from recsys_core.store import connect
    from recsys_core.store.events import active_users

    if int(args.k) < 1:
        raise ValueError(f"-k must be at least 1, got {args.k}")
    lm = recommend.load_model(args.model_dir)
    scenario = recommend.scenario_from_args(args, lm)
    con = connect(args.db)  # writable: pushes are recorded
    try:
        if args.users:
            users = list(dict.fromkeys(u.strip() for u in str(args.users).split(",") if u.strip()))
        else:
            users = active_users(con, int(args.limit))
        if not users:
            raise ValueError("no shoppers to push to: give --users, or fill the database first")
        pushes, skipped, repeated = [], [], 0
        for user in tqdm(users, desc="push", unit="shopper", disable=len(users) < 2):
            try:
                top = recommend.recommend(lm, con, user, scenario, k=int(args.k))
            except recommend.UnknownUserError:
                skipped.append(user)
                continue
            done = already_pushed(con, lm, user, scenario, top["item_id"].tolist())
            repeated += len(done)
            top = top[~top["item_id"].isin(list(done))]
            if top.empty:
                continue
            ids = record_pushes_with_reasons(con, lm, user, scenario, top[["item_id", "rank", "score"]], k=int(args.k))
            for push_id, row in zip(ids, top.itertuples()):
                pushes.append({"push_id": push_id, "user_id": user, "item_id": row.item_id, "rank": int(row.rank),
                               "score": round(float(row.score), 5)})
        stored = {p["push_id"]: p for p in pushes}
        if pushes:
            from recsys_core.store.pushes import get_pushes

            for row in get_pushes(con, list(stored)).itertuples():
                stored[row.push_id]["reason"] = json.loads(row.reasons_json)["reason"]["en"] if row.reasons_json else None
    finally:
        con.close()
    return {
        "pushed": len(pushes),
        "already_pushed": repeated,
        "shoppers": len(users) - len(skipped),
        "skipped": skipped,
        "at": scenario.at.isoformat(),
        "scene": scenario.scene,
        "context_fields": list(lm.context_fields),
        "ignored_scene": sorted(set(scenario.scene) - set(lm.context_fields)),
        "model_version": lm.version,
        "pushes": pushes,
    }
