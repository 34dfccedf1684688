"""What one explanation is about: a shopper's history, an item, and the moment of the push.

`build_case` reads the shopper's history exactly as the recommender serves it
(`recommend.user_history`: the latest events the model reads), encodes the
moment with the model's own vocabularies, and keeps the readable event rows
beside the (1, T) batch so every attribution can be shown against its event. The batch carries no
left padding (a shopper with no history gets one padding position: the model's
cold-start state), which gives the same scores as a padded serving batch.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from recsys_core.context import Scenario
from recsys_core.features import FeatureSpace, gap_bucket
from recsys_core.models.base import Batch
from recsys_core.sequences import serving_batch
from recsys_core.store import events as store_events


def scenario_of(scenario: Any) -> Scenario:
    """A `context.Scenario` from a Scenario or anything with ``at`` (str or datetime), ``scene`` (a dict) and
    optionally ``promo_override`` (e.g. a page's spec)."""
    if isinstance(scenario, Scenario):
        return scenario
    at = scenario.at
    if isinstance(at, str):
        at = dt.datetime.fromisoformat(at)
    return Scenario(at, dict(getattr(scenario, "scene", None) or {}), getattr(scenario, "promo_override", None))


def moment_context(features: FeatureSpace, scenario: Scenario, history_ts: np.ndarray | None = None) -> dict[str, int]:
    """Target-context ids of ``scenario``, as `recommend.context_ids` makes them: ``history_ts`` (naive UTC
    times of the shopper's history) gives the time since their latest event — None = unknown, empty = no history."""
    tz = features.calendar.timezone
    since = None
    if history_ts is not None:
        ts = np.asarray(history_ts).astype("datetime64[s]")
        if len(ts) == 0:
            since = float("nan")
        else:
            since = float((np.datetime64(scenario.utc(tz), "s") - ts.max()).astype(np.int64))
    return features.encode_moment(scenario.local_time(tz), scenario.scene, scenario.promo_override, since)


@dataclass
class Case:
    """One shopper × scenario × item, ready for the model.

    scenario: the push moment and scene; local: its naive LOCAL time in the model's timezone.
    events: the history rows the model reads, oldest first (batch column i ↔ row i − offset where
    offset = T − len(events)), with item fields; batch: (1, T); item: dense item id.
    context_fields: the target-context fields the model reads (the rest of the scenario cannot matter).
    """

    user_id: str
    item_id: str
    item: int
    scenario: Scenario
    local: dt.datetime
    context: dict[str, int]
    events: pd.DataFrame
    batch: Batch
    features: FeatureSpace
    context_fields: tuple[str, ...] = ()
    history_len: int = 0  # how many events the model reads: fewer events than this = the shopper's whole history

    @property
    def complete_history(self) -> bool:
        """Whether ``events`` hold every event of the shopper (else only the latest ``history_len``)."""
        return len(self.events) < self.history_len

    @property
    def timezone(self) -> str:
        return self.features.calendar.timezone

    @functools.cached_property
    def history_ts(self) -> np.ndarray:
        """Naive UTC times of the history events (datetime64[s]), oldest first (computed once: every candidate
        moment of the counterfactuals asks)."""
        if not len(self.events):
            return np.zeros(0, "datetime64[s]")
        return pd.to_datetime(self.events["ts"]).to_numpy().astype("datetime64[s]")

    def context_for(self, scenario: Scenario, history_ts: np.ndarray | None = None) -> dict[str, int]:
        """Context ids of another scenario for this shopper (or for an edited history's times)."""
        return moment_context(self.features, scenario, self.history_ts if history_ts is None else history_ts)

    @property
    def scene_fields_read(self) -> tuple[str, ...]:
        """The data's scene fields the model reads in the target context, in schema order."""
        return tuple(f for f in self.features.scene_names if f in self.context_fields)

    @property
    def ignored_fields(self) -> tuple[str, ...]:
        """Scene fields of the data the model does not read in the target context (they cannot matter)."""
        return tuple(f for f in self.features.scene_names if f not in self.context_fields)

    @property
    def offset(self) -> int:
        """Batch column of the oldest event (1 for a cold shopper: one padding column)."""
        return self.batch.length - len(self.events)

    def event_column(self, row: int) -> int:
        return self.offset + int(row)


def trim_padding(batch: Batch) -> Batch:
    """Drop left-padding columns common to every row (keeping at least one column)."""
    valid = batch.history["item"] > 0
    n = int(valid.sum(dim=1).max()) if valid.numel() else 0
    keep = max(n, 1)
    return Batch({k: v[:, -keep:] for k, v in batch.history.items()}, batch.context, batch.targets, batch.weights)


def encode_case_batch(features: FeatureSpace, events: pd.DataFrame, context: dict[str, int], max_len: int) -> Batch:
    """(1, T) batch of a shopper's event rows (oldest first) under one context."""
    if len(events):
        frame = events.assign(user_id=events["user_id"].astype(str))
        history = features.encode_events(frame)
    else:
        history = {f: np.zeros(0, np.int64) for f in features.history_fields()}
    return trim_padding(serving_batch(history, [context], max_len))


def with_context(batch: Batch, contexts: list[dict[str, int]]) -> Batch:
    """One history (1, T) under S contexts → (S, T) (history rows shared, not copied)."""
    S = len(contexts)
    ctx = {k: torch.tensor([int(c.get(k, 0)) for c in contexts], dtype=torch.long) for k in batch.context}
    return Batch({k: v.expand(S, -1) for k, v in batch.history.items()}, ctx)


ITEM_COLUMNS = ("title", "title_zh", "category", "category_zh", "brand", "price")


def item_frame(con: Any, item_ids: list[str]) -> pd.DataFrame:
    """Catalogue fields of the given items as a frame (item_id + `ITEM_COLUMNS`)."""
    rows = store_events.read_items_by_id(con, item_ids)
    return pd.DataFrame([(i, *fields) for i, fields in rows.items()], columns=["item_id", *ITEM_COLUMNS])


def shopper_case(loaded: Any, con: Any, user_id: str, scenario: Any, history_before: dt.datetime | None = None) -> Case:
    """Read and encode one shopper × moment for ``loaded`` (a `registry.LoadedModel`), no item chosen yet
    (``item`` 0; see `for_item`). The history is exactly what `recommend.recommend` scores (the latest
    events, or those before ``history_before``), so explained scores are the served scores.
    Raises ValueError (`recommend.UnknownUserError`) for an unknown shopper."""
    from recsys_core import recommend

    features: FeatureSpace = loaded.features
    scenario = scenario_of(scenario)
    events, history = recommend.user_history(loaded, con, str(user_id), history_before)
    if len(events):
        events = events.merge(item_frame(con, events["item_id"].astype(str).unique().tolist()), on="item_id", how="left")
    history_ts = pd.to_datetime(events["ts"]).to_numpy().astype("datetime64[s]") if len(events) else np.zeros(0, "datetime64[s]")
    context = moment_context(features, scenario, history_ts)
    batch = trim_padding(serving_batch(history, [context], int(loaded.model.history_len)))
    fields = tuple(loaded.context_fields) or tuple(getattr(getattr(loaded.model, "cfg", None), "context_fields", ()) or ())
    local = scenario.local_time(features.calendar.timezone)
    return Case(str(user_id), "", 0, scenario, local, context, events.reset_index(drop=True), batch, features, fields,
                int(loaded.model.history_len))


def for_item(case: Case, item_id: str) -> Case:
    """The same shopper and moment about ``item_id``; ValueError when the model does not know the item."""
    item = case.features.items.id(str(item_id))
    if item == 0:
        raise ValueError(f"item {item_id!r} is not in the model's catalogue")
    return replace(case, item_id=str(item_id), item=item)


def build_case(loaded: Any, con: Any, user_id: str, item_id: str, scenario: Any, history_before: dt.datetime | None = None) -> Case:
    """`shopper_case` + `for_item`: one shopper × moment × item, ready for the explanations."""
    if loaded.features.items.id(str(item_id)) == 0:
        raise ValueError(f"item {item_id!r} is not in the model's catalogue")
    return for_item(shopper_case(loaded, con, user_id, scenario, history_before), item_id)


@torch.no_grad()
def top_items(model: Any, case: Case, k: int) -> pd.DataFrame:
    """The shopper's top ``k`` at the case's moment: item_id, rank (1 = best), score."""
    was = model.training
    model.eval()
    try:
        scores = model.score_all(case.batch)[0]
    finally:
        model.train(was)
    top = torch.topk(scores[1:], min(int(k), scores.shape[0] - 1))
    ids = (top.indices + 1).tolist()
    return pd.DataFrame({"item_id": [case.features.items.decode(i) for i in ids], "rank": range(1, len(ids) + 1),
                         "score": top.values.tolist()})


def gap_id(previous_ts: Any, moment_utc: dt.datetime) -> int:
    """Gap bucket id between the newest event (naive UTC) and the moment (1 = no previous event)."""
    if previous_ts is None or pd.isna(previous_ts):
        return 1
    seconds = (pd.Timestamp(moment_utc) - pd.Timestamp(previous_ts)).total_seconds()
    return int(gap_bucket(np.array([seconds]))[0])
