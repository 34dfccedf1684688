"""`python -m recsys_core update`: warm-start a trained network on the events since its training cut-off.

A model is trained once on the events up to its cut-off; the shop goes on. `update` loads the model,
grows its vocabularies with what the newer events hold (new items, categories, behaviours and scene
values get ids after the old ones: old ids keep their ids and their embedding rows), and fine-tunes it
for a few epochs at a lower learning rate on the events after the cut-off and before ``--until`` — those
events are the targets; the older events are only history (`sequences.TrainingWindows.min_target`).
The result is a new model version whose metadata records its lineage (parent version and folder, the
time range added, events, shoppers, new items and scene values, seconds, epochs). docs/living_model.md.

Honest protocol: a time_split parent with cut C, updated with events before ``until <= C``, keeps its
protocol and cut: its test sessions (at or after C) are still unseen (its validation week may now be
training data, so no validation figure is recorded). Any other update is recorded as time_split with
cut = ``until``: the sessions after the newest training event are the only honest test left.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from recsys_core import evaluate
from recsys_core.registry import load_model, read_metadata, save_model
from recsys_core.sequences import SequenceData, TrainingWindows, cut_iso, parse_cut
from recsys_core.store import connect
from recsys_core.store import events as store_events
from recsys_core.train import NEURAL_MODELS, ProgressCallback, TrainConfig, set_seed

# Chosen by measurement on the sample world WITHOUT the test week (`benchmarks/bench_update.py --choose`: update
# with the events before cut - 3 days, score the sessions of the 3 days after, per shopper NDCG@10 from 0.2090):
# lr 1e-4 gave 0.2119 after 1 epoch, 0.2107-0.2109 after 2-4; 3e-4 at most 0.2096; 1e-3 fell to 0.184 by
# epoch 5. One epoch at a tenth of the training rate: the best figure for the least time.
DEFAULT_EPOCHS = 1
DEFAULT_LR = 1e-4
# Keys `registry.save_model` writes itself: not copied from the parent.
_OWN_KEYS = ("format_version", "package_version", "model_type", "version", "config", "features", "trained_at", "weights_sha256")


@dataclass
class UpdateConfig:
    """How an update fine-tunes (recorded in the lineage)."""

    epochs: int = DEFAULT_EPOCHS
    lr: float = DEFAULT_LR
    seed: int = 42
    threads: int = 1
    # initial rows of new items (`ContextTransformer.grow`). Measured (`bench_update.py --init-check`: 10% of the
    # items made new in the frozen model, updated, scored on the 3 days before the cut): NDCG@10 on the 192 cases
    # whose target is such an item 0.1125 from small random rows, 0.0874 from the category mean (the category
    # already reaches the item through its side features; the mean counts it twice). All cases: 0.2232 both.
    new_items: str = "random"


def utc_seconds(iso: str) -> int:
    """UTC seconds of a time stored in metadata (ISO with an offset; one without is UTC)."""
    return parse_cut(iso, "UTC")


def _iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(int(ts), dt.timezone.utc).isoformat()


def parse_until(text: str, timezone: str) -> int:
    """UTC seconds of ``--until`` (`sequences.parse_cut`, with an error that names the flag)."""
    try:
        return parse_cut(text, timezone)
    except ValueError:
        raise ValueError(f"--until {text!r} is not an ISO date or datetime (e.g. 2025-12-08 or 2025-12-08T00:00+08:00)") from None


def check_parent(model_dir: str | Path) -> dict[str, Any]:
    """The parent's metadata, or a one-line ValueError when it cannot be updated."""
    path = Path(model_dir)
    meta = read_metadata(path)  # ModelFolderError (a ValueError) names a missing or corrupt folder
    kind = meta.get("model_type")
    if kind == "router":
        raise ValueError(f"--model-dir {path} is a router: update each of its experts, then train the router again")
    if kind not in NEURAL_MODELS:
        raise ValueError(f"--model-dir {path} is a {kind} model: count models are refit, not updated "
                         f"(retrain it with `train --model {kind}`); update fine-tunes {', '.join(NEURAL_MODELS)}")
    if meta.get("differential_privacy"):
        raise ValueError(f"--model-dir {path} was trained with DP-SGD: fine-tuning it would spend privacy outside its "
                         "accountant; retrain with --dp-epsilon instead")
    if not meta.get("training_cutoff"):
        raise ValueError(f"--model-dir {path} has no training_cutoff in its metadata: it cannot say which events are new")
    return meta


def read_update_data(db: str | None) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], list[dict[str, Any]]]:
    """Events, catalogue, data fingerprint and erasures, read at once so the database is released before
    fine-tuning (as `train.read_training_data` does)."""
    from recsys_core.store import privacy as store_privacy

    con = connect(db, read_only=True)
    try:
        tz = store_events.data_timezone(con)
        return (store_events.read_events(con, tz), store_events.read_items(con), store_events.data_fingerprint(con),
                store_privacy.erasures(con))
    finally:
        con.close()


def update_windows(data: SequenceData, since_ts: int, until_ts: int, max_len: int, start_w: float, within_w: float) -> TrainingWindows:
    """Windows whose targets are each shopper's events in (since_ts, until_ts); older events are their history.

    The newest window of a shopper ends at their last event before ``until_ts``, so the new events see as much
    history as fits; older windows follow (every ``max_len`` rows) until the first new event is covered."""
    firsts, lasts, mins = [], [], []
    for s, e in zip(data.offsets[:-1].tolist(), data.offsets[1:].tolist()):
        ts = data.ts[s:e]
        lo = s + int(np.searchsorted(ts, since_ts, side="right"))  # first new row
        hi = s + int(np.searchsorted(ts, until_ts, side="left"))  # first row at/after --until
        for last in range(hi - 2, max(lo - 2, s - 2), -max_len):  # last input row; it predicts row last + 1
            firsts.append(s), lasts.append(last), mins.append(lo)
    arr = lambda v: np.asarray(v, np.int64)  # noqa: E731
    return TrainingWindows(data, arr(firsts), arr(lasts), max_len, start_w, within_w, min_target=arr(mins))


def fine_tune(model: torch.nn.Module, windows: TrainingWindows, cfg: UpdateConfig, batch_size: int, rng: np.random.Generator,
              on_progress: ProgressCallback | None = None) -> list[dict[str, Any]]:
    """``cfg.epochs`` passes of Adam at ``cfg.lr`` over ``windows``; returns one row per epoch (loss, seconds).
    Progress steps have the shape of training's (`train.ProgressCallback`), without a validation figure."""
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    n_batches = max(1, -(-len(windows) // batch_size))
    every = max(1, n_batches // 50)
    history = []
    for epoch in range(1, cfg.epochs + 1):
        t0, total, steps = time.perf_counter(), 0.0, 0
        model.train()
        for batch in windows.batches(batch_size, rng):
            if not bool((batch.targets > 0).any()):
                continue
            optimizer.zero_grad(set_to_none=True)
            loss = model(batch)[1]
            loss.backward()
            optimizer.step()
            total, steps = total + float(loss.detach()), steps + 1
            if on_progress is not None and steps % every == 0:
                on_progress({"stage": "batch", "epoch": epoch, "epochs": cfg.epochs, "done": min(1.0, steps / n_batches)})
        loss = total / max(1, steps)
        if not np.isfinite(loss) or any(not torch.isfinite(p).all() for p in model.parameters()):
            raise RuntimeError(f"fine-tuning diverged at epoch {epoch} (non-finite loss or weights); try a lower UpdateConfig.lr")
        history.append({"epoch": epoch, "loss": round(loss, 5), "valid_NDCG@10": None, "train_s": round(time.perf_counter() - t0, 2)})
        if on_progress is not None:
            on_progress({"stage": "epoch", "epochs": cfg.epochs, **history[-1]})
    model.eval()
    return history


def update(model_dir: str | Path, until: str, out: str | Path, cfg: UpdateConfig | None = None, db: str | None = None,
           on_progress: ProgressCallback | None = None,
           read: tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Fine-tune the model at ``model_dir`` on the events after its training cut-off and before ``until``
    (ISO; local time of the model's calendar without an offset), write the new version to ``out`` and
    return a summary (lineage, protocol, test metrics). ``read``: `read_update_data`'s result, when the
    caller has read the database already (a benchmark timing several models on the same events)."""
    cfg = cfg or UpdateConfig()
    if cfg.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, not {cfg.epochs}")
    parent_meta = check_parent(model_dir)
    if Path(out).resolve() == Path(model_dir).resolve():
        raise ValueError("--out must differ from --model-dir: an update is a new version, the parent stays")
    parent = load_model(model_dir)
    features, model = parent.features, parent.model
    tz = features.calendar.timezone
    until_ts = parse_until(until, tz)
    since_ts = utc_seconds(parent_meta["training_cutoff"])
    if until_ts <= since_ts:
        raise ValueError(f"--until {cut_iso(until_ts, tz)} is not after the model's training cut-off {cut_iso(since_ts, tz)}")
    events, items, fingerprint, erasures = read if read is not None else read_update_data(db)
    from recsys_core.privacy import trained_on_erased_data

    if trained_on_erased_data(parent_meta, erasures):
        raise ValueError(f"--model-dir {model_dir} was trained on data that held an erased shopper: retrain it, do not update it")
    utc = events["ts"].to_numpy(dtype="datetime64[s]").astype(np.int64)
    new = (utc > since_ts) & (utc < until_ts)
    if not new.any():
        raise ValueError(f"no events between the model's training cut-off {cut_iso(since_ts, tz)} and --until {cut_iso(until_ts, tz)}")

    started = time.perf_counter()
    set_seed(cfg.seed, cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    added = features.extend(events[utc < until_ts], items)  # only what the model may learn from
    old_sizes = dict(model.cfg.vocab_sizes)
    grown = model.grow(features.vocab_sizes(), torch.from_numpy(features.item_category), torch.from_numpy(features.item_price_band),
                       new_items=cfg.new_items, generator=torch.Generator().manual_seed(cfg.seed))
    data = SequenceData.from_frame(events, features)
    known = {f.name for f in fields(TrainConfig)}
    train_cfg = TrainConfig(**{k: v for k, v in ((parent_meta.get("training") or {}).get("config") or {}).items() if k in known and k != "augment"})
    start_w, within_w = train_cfg.position_weights(parent_meta.get("protocol") or "next_event")
    windows = update_windows(data, since_ts, until_ts, model.history_len, start_w, within_w)
    history = fine_tune(model, windows, cfg, train_cfg.batch_size, rng, on_progress)
    seconds = round(time.perf_counter() - started, 2)

    # the honest test left (module docstring)
    parent_cut = parse_cut(parent_meta["cut"], tz) if parent_meta.get("protocol") == "time_split" and parent_meta.get("cut") else None
    keeps = parent_cut is not None and until_ts <= parent_cut
    cut = parent_cut if keeps else until_ts
    try:
        test = data.split("time_split", cut).test
    except ValueError:
        test = None
    results = evaluate.rank_cases(model, test) if test is not None and len(test) else None
    test_metrics = evaluate.mean_metrics(results.per_case) if results is not None else {}
    new_rows = np.flatnonzero(new)
    lineage = {
        "parent_version": parent_meta["version"],
        "parent_dir": str(Path(model_dir)),
        "since": _iso(since_ts),
        "until": _iso(until_ts),
        "events_added": int(new.sum()),
        "shoppers": int(events["user_id"].iloc[new_rows].nunique()),
        "new_items": len(added["items"]),
        "new_scene_values": {f.name: len(added[f.name]) for f in features.scene_fields},
        "new_categories": len(added["category"]),
        "rows_added": {k: v for k, v in grown.items() if v},
        "seconds": seconds,
        "epochs": cfg.epochs,
        "lr": cfg.lr,
        "new_item_init": cfg.new_items,
        "seed": cfg.seed,
        "history": history,
        "vocab_sizes_before": old_sizes,
    }
    protocol_note = (f"kept time_split at the parent's cut {cut_iso(cut, tz)}: its test sessions are still unseen" if keeps else
                     f"recorded as time_split with cut = --until {cut_iso(cut, tz)}: the sessions after the newest training "
                     "event are the only honest test left")
    meta = {k: v for k, v in parent_meta.items() if k not in _OWN_KEYS}
    meta.update({
        "protocol": "time_split",
        "cut": cut_iso(cut, tz),
        "data_fingerprint": fingerprint,
        "training_cutoff": _iso(int(utc[new].max())),
        "metrics": {"protocol": "time_split", "cut": cut_iso(cut, tz), "valid": {}, "test": test_metrics,
                    "n_eval_users": 0 if test is None else len(test),
                    "n_eval_shoppers": 0 if test is None else int(len(np.unique(test.users)))},
        "lineage": lineage,
    })
    path = save_model(model, features, out, meta)
    return {
        "out": str(path),
        "parent_version": parent_meta["version"],
        "protocol": "time_split",
        "cut": cut_iso(cut, tz),
        "protocol_note": protocol_note,
        "since": cut_iso(since_ts, tz),
        "until": cut_iso(until_ts, tz),
        "events_added": lineage["events_added"],
        "shoppers": lineage["shoppers"],
        "new_items": lineage["new_items"],
        "new_scene_values": lineage["new_scene_values"],
        "epochs": cfg.epochs,
        "seconds": seconds,
        "metrics": {"test": {k: round(test_metrics[k], 5) for k in ("NDCG@10", "HR@10", "MRR@10") if k in test_metrics}},
        "n_test_cases": 0 if test is None else len(test),
    }


def update_cli(args: argparse.Namespace) -> dict[str, Any]:
    """Handler of `python -m recsys_core update` (see cli.py for the arguments)."""
    cfg = UpdateConfig(seed=int(args.seed))
    if args.epochs is not None:
        cfg = replace(cfg, epochs=int(args.epochs))
    return update(args.model_dir, args.until, args.out, cfg, db=args.db)
