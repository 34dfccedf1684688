"""Pushes: turn a shopper's current top-k for a scenario into records of the push audit log.

A push record (DESIGN §2) keeps what a later review needs to answer "why did
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

from recsys_core.features import UNKNOWN
from recsys_core.store.analytics import data_timezone
from recsys_core.store.pushes import insert_pushes

log = logging.getLogger(__name__)


def moment_utc(at: dt.datetime, timezone: str) -> dt.datetime:
    """The naive UTC instant of a push moment: aware times are converted, naive ones are local in ``timezone``."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=ZoneInfo(timezone))
    return aware.astimezone(dt.timezone.utc).replace(tzinfo=None)


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
    scenario: Any,
    recs_df: pd.DataFrame,
    reasons: Mapping[str, Any] | Sequence[Any] | None = None,
) -> list[str]:
    """Record ``recs_df`` (item_id, rank, score, ...) as pushes to ``user_id`` for ``scenario``; returns the push ids.

    ``loaded_model`` is a `registry.LoadedModel` (its ``version`` is stored); ``scenario`` has
    ``at`` (a naive time is local in the data's timezone), ``device``, ``channel``, ``location``.
    ``reasons`` are per item id (a mapping) or per row (a sequence), stored as JSON. All rows
    are written in one transaction on ``con``, which must be writable.
    """
    if recs_df is None or recs_df.empty:
        raise ValueError("nothing to push: the recommendation list is empty")
    missing = [c for c in ("item_id", "rank", "score") if c not in recs_df.columns]
    if missing:
        raise ValueError(f"the recommendation frame lacks {missing}")
    if reasons is not None and not isinstance(reasons, Mapping) and len(reasons) != len(recs_df):
        raise ValueError(f"{len(reasons)} reasons for {len(recs_df)} pushes")
    pushed_at = moment_utc(scenario.at, data_timezone(con))
    version = loaded_model.version
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
                "device": scenario.device or UNKNOWN,
                "channel": scenario.channel or UNKNOWN,
                "location": scenario.location or UNKNOWN,
                "model_version": version,
                "reasons_json": _reasons_json(reasons, str(item_id), row),
            }
        )
    insert_pushes(con, rows)
    log.info("recorded %d pushes for %s at %s UTC with %s", len(rows), user_id, pushed_at, version)
    return [r["push_id"] for r in rows]
