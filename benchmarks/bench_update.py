"""Does a warm-started update keep a model fresh? FROZEN vs UPDATED vs FULL RETRAIN on the newest week.

On the sample world, with the time_split cut C at the start of the last week (default: `default_cut`):

- FROZEN: `train --model context_transformer --protocol time_split` (trained on events before C - 7 days,
  early-stopped on the week before C);
- UPDATED: `update --model-dir FROZEN --until C` (fine-tunes on exactly the week before C);
- FULL RETRAIN: the same architecture and hyper-parameters trained from scratch on every event before C,
  for FROZEN's best epoch count (no clean validation window is left for it: the week before C is its
  training data, so it cannot early-stop honestly; it gets the epoch count FROZEN's validation chose).

All three are scored on the same time_split test cases at C (sessions starting at or after C, full
ranking over the catalogue). time_split has several cases per shopper, so the paired interval
(`evaluate.paired_test`, bootstrap + sign-flip) is over SHOPPERS: each shopper's NDCG@10 is the mean
of their cases first. Seconds: UPDATED's lineage seconds (grow the vocabularies, encode, fine-tune) and
FULL RETRAIN's fit of the vocabularies, encoding and training — both after the events are read once.

    .venv/bin/python benchmarks/bench_update.py --db data/scenepush.duckdb [--seeds 42,7] [--frozen DIR,DIR] [--json]

``--frozen`` reuses FROZEN folders (one per seed, in order) trained as above. ``--init-check`` also measures
how new item rows should start (`ContextTransformer.grow`): 10% of the items are made "new" in FROZEN
(their rows reset to the category mean, or to small random rows) before an update with the events before
C - 3 days, and the sessions of [C - 3 days, C) whose target is such an item are scored. ``--choose`` picks the
update's rate and epochs on the same days. Neither looks at the test week.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recsys_core import evaluate  # noqa: E402
from recsys_core import update as upd  # noqa: E402
from recsys_core.features import Calendar, FeatureSpace  # noqa: E402
from recsys_core.registry import load_model, read_metadata, save_model  # noqa: E402
from recsys_core.sequences import EvalCases, SequenceData, Split, cut_iso, parse_cut  # noqa: E402
from recsys_core.store import connect  # noqa: E402
from recsys_core.store.events import data_timezone  # noqa: E402
from recsys_core.store.scene import scene_fields  # noqa: E402
from recsys_core.train import TrainConfig, build_neural_model, set_seed, train, train_epoch  # noqa: E402

MODEL = "context_transformer"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def full_retrain(events, items, calendar: Calendar, fields, cut: int, cfg: TrainConfig, epochs: int, context) -> tuple[torch.nn.Module, FeatureSpace, float]:
    """From scratch on every event before ``cut``, ``epochs`` epochs; (model, features, seconds)."""
    t0 = time.perf_counter()
    rng = set_seed(cfg.seed, cfg.threads)
    features = FeatureSpace.fit(events, items, calendar, fields)
    data = SequenceData.from_frame(events, features)
    train_end = np.array([s + np.searchsorted(data.ts[s:e], cut, side="left")
                          for s, e in zip(data.offsets[:-1], data.offsets[1:])], np.int64)
    none = np.zeros(0, np.int64)
    split = Split(data, "time_split", train_end, EvalCases(data, "valid", none, none), EvalCases(data, "test", none, none), 0, cut)
    model = build_neural_model(MODEL, features, cfg, context)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for _ in range(epochs):
        train_epoch(model, split, cfg, optimizer, rng)
    model.eval()
    return model, features, time.perf_counter() - t0


def shopper_ndcg(model, features: FeatureSpace, events, cut: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-case NDCG@10 on the time_split test cases at ``cut`` (events encoded with the model's own
    vocabularies); (per-case values, case shoppers, case target rows)."""
    cases = SequenceData.from_frame(events, features).split("time_split", cut).test
    values = evaluate.rank_cases(model, cases).per_case[evaluate.HEADLINE]
    return values, cases.users, cases.targets


def per_shopper(values: np.ndarray, users: np.ndarray) -> np.ndarray:
    """Mean of each shopper's cases (shoppers in index order)."""
    shoppers, inverse = np.unique(users, return_inverse=True)
    return np.bincount(inverse, weights=values) / np.bincount(inverse)


def run_seed(seed: int, db: str, read, cut: int, work: Path, frozen_dir: str | None, epochs: int, frozen_epochs: int) -> dict:
    events, items, _, _ = read
    con = connect(db, read_only=True)
    try:
        fields = scene_fields(con)
    finally:
        con.close()
    if frozen_dir is None:
        frozen_dir = str(work / f"frozen-{seed}")
        from recsys_core.train import read_training_data

        data, fingerprint = read_training_data(db)
        train(None, MODEL, "time_split", frozen_dir, TrainConfig(seed=seed, epochs=frozen_epochs), progress=False, data=data,
              fingerprint=fingerprint, cut=cut)
    meta = read_metadata(frozen_dir)
    tz = meta["features"]["calendar"]["timezone"]
    if meta.get("protocol") != "time_split" or parse_cut(meta["cut"], tz) != cut:
        raise SystemExit(f"{frozen_dir} is not a time_split model at cut {cut_iso(cut, tz)}")
    frozen = load_model(frozen_dir)
    best_epoch = int(meta["training"]["best_epoch"])
    cfg_record = meta["training"]["config"]
    cfg = TrainConfig(**{k: v for k, v in cfg_record.items() if k in TrainConfig.__dataclass_fields__ and k != "augment"})

    updated_dir = work / f"updated-{seed}"
    summary = upd.update(frozen_dir, cut_iso(cut, tz), updated_dir, upd.UpdateConfig(seed=seed, epochs=epochs), read=read)
    updated = load_model(updated_dir)
    retrained, retrained_features, retrain_s = full_retrain(events, items, frozen.features.calendar, fields, cut, cfg, best_epoch,
                                                            meta.get("context_fields"))

    scored = {}
    for name, model, features in (("frozen", frozen.model, frozen.features), ("updated", updated.model, updated.features),
                                  ("full_retrain", retrained, retrained_features)):
        scored[name] = shopper_ndcg(model, features, events, cut)
    users, targets = scored["frozen"][1], scored["frozen"][2]
    for name, (_, u, t) in scored.items():
        assert np.array_equal(u, users) and np.array_equal(t, targets), f"{name} was scored on other cases"
    shop = {name: per_shopper(v, users) for name, (v, _, _) in scored.items()}
    vs_frozen = evaluate.paired_test(shop["frozen"], shop["updated"], seed=seed)
    vs_retrain = evaluate.paired_test(shop["full_retrain"], shop["updated"], seed=seed)
    frozen_s = float(meta["training"]["seconds"])
    rows = [
        {"model": "frozen", "trained_on": f"< {cut_iso(cut - 7 * 86400, tz)[:10]}", "epochs": f"{meta['training']['epochs_run']} (best {best_epoch})",
         "seconds": round(frozen_s, 1)},
        {"model": "updated", "trained_on": f"frozen + [{cut_iso(cut - 7 * 86400, tz)[:10]}, {cut_iso(cut, tz)[:10]})",
         "epochs": f"{epochs} (fine-tune)", "seconds": summary["seconds"]},
        {"model": "full_retrain", "trained_on": f"< {cut_iso(cut, tz)[:10]}", "epochs": str(best_epoch), "seconds": round(retrain_s, 1)},
    ]
    for row in rows:
        v = scored[row["model"]][0]
        row["NDCG@10_cases"] = round(float(v.mean()), 4)
        row["NDCG@10_shoppers"] = round(float(shop[row["model"]].mean()), 4)
        row["ci95_shoppers"] = [round(x, 4) for x in evaluate.bootstrap_ci({"v": shop[row["model"]]}, seed=seed)["v"]]
    return {
        "seed": seed,
        "frozen_dir": frozen_dir,
        "n_cases": int(len(users)),
        "n_shoppers": int(len(np.unique(users))),
        "events_added": summary["events_added"],
        "new_items": summary["new_items"],
        "rows": rows,
        "updated_minus_frozen": {"diff": round(vs_frozen["diff"], 4), "diff_ci95": [round(x, 4) for x in vs_frozen["diff_ci95"]],
                                 "p_value": round(vs_frozen["p_value"], 4)},
        "updated_minus_retrain": {"diff": round(vs_retrain["diff"], 4), "diff_ci95": [round(x, 4) for x in vs_retrain["diff_ci95"]],
                                  "p_value": round(vs_retrain["p_value"], 4)},
        "ratio_to_retrain": round(float(shop["updated"].mean() / shop["full_retrain"].mean()), 4),
        "ratio_to_retrain_cases": round(float(scored["updated"][0].mean() / scored["full_retrain"][0].mean()), 4),
        "time_share": round(summary["seconds"] / retrain_s, 4),
    }


def selection_cases(events, features: FeatureSpace, cut: int) -> EvalCases:
    """The sessions starting in [cut - 3 days, cut): where choices are measured, never the test week."""
    data = SequenceData.from_frame(events, features)
    cases = data.split("time_split", cut - 3 * 86400).test
    keep = data.ts[cases.targets] < cut
    return EvalCases(data, "test", cases.users[keep], cases.targets[keep])


def init_check(db: str, read, cut: int, work: Path, frozen_dir: str, epochs: int, seed: int = 0, share: float = 0.1) -> dict:
    """How should a new item's rows start? Make ``share`` of the items "new" in FROZEN (rows reset), update it with
    the events before cut - 3 days and score the sessions of the 3 days before the cut (not the test week)."""
    events, _, _, _ = read
    frozen = load_model(frozen_dir)
    meta = read_metadata(frozen_dir)
    tz = frozen.features.calendar.timezone
    n = frozen.model.n_items
    picked = np.random.default_rng(seed).choice(np.arange(1, n + 1), size=max(1, int(share * n)), replace=False)
    out = {"items_made_new": len(picked)}
    for init in ("category_mean", "random"):
        m = load_model(frozen_dir).model
        with torch.no_grad():
            keep = torch.ones(n + 1, dtype=torch.bool)
            keep[torch.from_numpy(picked)] = False
            keep[0] = False
            for i in picked:
                same = ((m.item_category == m.item_category[i]) & keep).nonzero().flatten()
                if init == "category_mean" and len(same):
                    m.item_emb.weight[i], m.item_bias[i] = m.item_emb.weight[same].mean(0), m.item_bias[same].mean()
                else:
                    m.item_emb.weight[i], m.item_bias[i] = torch.randn(m.item_emb.weight.shape[1]) * 0.02, 0.0
        reset = work / f"reset-{init}"
        save_model(m, frozen.features, reset, {k: v for k, v in meta.items() if k not in upd._OWN_KEYS})
        upd.update(reset, cut_iso(cut - 3 * 86400, tz), work / f"reset-{init}-updated", upd.UpdateConfig(seed=seed, epochs=epochs), read=read)
        updated = load_model(work / f"reset-{init}-updated")
        cases = selection_cases(events, updated.features, cut)
        values = evaluate.rank_cases(updated.model, cases).per_case[evaluate.HEADLINE]
        hit = np.isin(cases.data.fields["item"][cases.targets], picked)
        out[init] = {"NDCG@10_new_item_cases": round(float(values[hit].mean()), 4), "cases": int(hit.sum()),
                     "NDCG@10_all_cases": round(float(values.mean()), 4)}
    return out


def choose(read, frozen_dir: str, cut: int, lrs: tuple[float, ...] = (1e-4, 3e-4, 1e-3), max_epochs: int = 5, seed: int = 0) -> list[dict]:
    """How many epochs, at which rate? Chosen WITHOUT the test week: FROZEN is updated with the events before
    S = cut - 3 days and scored (NDCG@10 per shopper) on the sessions starting in [S, cut) after every epoch."""
    events, items, _, _ = read
    select_cut = cut - 3 * 86400
    utc = events["ts"].to_numpy(dtype="datetime64[s]").astype(np.int64)
    rows = []
    for lr in lrs:
        lm = load_model(frozen_dir)
        meta = lm.metadata
        since = upd.utc_seconds(meta["training_cutoff"])
        lm.features.extend(events[utc < select_cut], items)
        f = lm.features
        lm.model.grow(f.vocab_sizes(), torch.from_numpy(f.item_category), torch.from_numpy(f.item_price_band))
        cases = selection_cases(events, f, cut)
        data = cases.data
        cfg = TrainConfig(**{k: v for k, v in meta["training"]["config"].items() if k in TrainConfig.__dataclass_fields__ and k != "augment"})
        windows = upd.update_windows(data, since, select_cut, lm.model.history_len, *cfg.position_weights("time_split"))

        def score(epoch: int) -> None:
            v = evaluate.rank_cases(lm.model, cases).per_case[evaluate.HEADLINE]
            rows.append({"lr": lr, "epoch": epoch, "NDCG@10_shoppers": round(float(per_shopper(v, cases.users).mean()), 4)})

        score(0)
        set_seed(seed, 1)
        upd.fine_tune(lm.model, windows, upd.UpdateConfig(epochs=max_epochs, lr=lr, seed=seed), cfg.batch_size, np.random.default_rng(seed),
                      on_progress=lambda step: score(step["epoch"]) if step["stage"] == "epoch" else None)
    return rows


def print_table(report: dict) -> None:
    print(f"{report['db']}: cut {report['cut']}, full ranking over {report['n_items']} items; load average at start {report['load_start']}, "
          f"end {report['load_end']}")
    for r in report["seeds"]:
        print(f"\nseed {r['seed']}: {r['n_cases']} test cases of {r['n_shoppers']} shoppers; update adds {r['events_added']} events, "
              f"{r['new_items']} new items")
        print(f"| model | trained on | epochs | seconds | NDCG@10 (cases) | NDCG@10 (per shopper) [95% CI] |")
        print("|---|---|---|---|---|---|")
        for row in r["rows"]:
            ci = row["ci95_shoppers"]
            print(f"| {row['model']} | {row['trained_on']} | {row['epochs']} | {row['seconds']} | {row['NDCG@10_cases']} | "
                  f"{row['NDCG@10_shoppers']} [{ci[0]}, {ci[1]}] |")
        f, t = r["updated_minus_frozen"], r["updated_minus_retrain"]
        print(f"updated − frozen (per shopper): {f['diff']:+.4f} [{f['diff_ci95'][0]:+.4f}, {f['diff_ci95'][1]:+.4f}], p = {f['p_value']}")
        print(f"updated − retrain (per shopper): {t['diff']:+.4f} [{t['diff_ci95'][0]:+.4f}, {t['diff_ci95'][1]:+.4f}], p = {t['p_value']}")
        print(f"updated / retrain NDCG@10: {r['ratio_to_retrain']} per shopper ({r['ratio_to_retrain_cases']} over cases); "
              f"update time / retrain time: {r['time_share']}")
    if "init_check" in report:
        print(f"\nnew item rows: {json.dumps(report['init_check'])}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default=str(ROOT / "data" / "scenepush.duckdb"))
    ap.add_argument("--cut", default=None, help="ISO cut (default: the start of the data's last 7 local days)")
    ap.add_argument("--seeds", default="42", help="comma-separated seeds (one FROZEN / UPDATED / RETRAIN each)")
    ap.add_argument("--frozen", default=None, help="comma-separated FROZEN folders, one per seed (default: train them)")
    ap.add_argument("--epochs", type=int, default=upd.DEFAULT_EPOCHS, help="update epochs")
    ap.add_argument("--frozen-epochs", type=int, default=40, help="upper bound of FROZEN's epochs (early stopping)")
    ap.add_argument("--work", default="/tmp/bench_update", help="folder for the model folders written")
    ap.add_argument("--init-check", action="store_true", help="also measure how new item rows should start")
    ap.add_argument("--choose", action="store_true",
                    help="only choose the update's epochs and rate on the week before the cut (needs --frozen), not the test week")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    load_start = load_average()
    read = upd.read_update_data(args.db)
    con = connect(args.db, read_only=True)
    try:
        data_tz = data_timezone(con)
    finally:
        con.close()
    if args.cut is None:  # `SequenceData.default_cut`: local midnight starting the last 7 days
        last = pd.Timestamp(read[0]["local_ts"].max())
        cut = int((last.normalize() - pd.Timedelta(days=6)).tz_localize(data_tz).tz_convert("UTC").timestamp())
    else:
        cut = parse_cut(args.cut, data_tz)
    if args.choose:
        if not args.frozen:
            raise SystemExit("--choose needs --frozen DIR")
        rows = choose(read, args.frozen.split(",")[0], cut)
        if args.json:
            print(json.dumps({"cut": cut_iso(cut, data_tz), "select_cut": cut_iso(cut - 3 * 86400, data_tz), "rows": rows}))
        else:
            print(f"selection: update with events before {cut_iso(cut - 3 * 86400, data_tz)}, scored on sessions until {cut_iso(cut, data_tz)}")
            print("| lr | epoch | NDCG@10 (per shopper) |\n|---|---|---|")
            for r in rows:
                print(f"| {r['lr']:g} | {r['epoch']} | {r['NDCG@10_shoppers']} |")
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    frozen = args.frozen.split(",") if args.frozen else [None] * len(seeds)
    if len(frozen) != len(seeds):
        raise SystemExit("--frozen needs one folder per seed")
    report = {"db": Path(args.db).name, "cut": cut_iso(cut, data_tz), "n_items": int(read[0]["item_id"].nunique()), "load_start": load_start,
              "update_epochs": args.epochs, "update_lr": upd.DEFAULT_LR,
              "seeds": [run_seed(s, args.db, read, cut, work, f, args.epochs, args.frozen_epochs) for s, f in zip(seeds, frozen)]}
    if args.init_check:
        report["init_check"] = init_check(args.db, read, cut, work, report["seeds"][0]["frozen_dir"], args.epochs)
    report["load_end"] = load_average()
    print(json.dumps(report, ensure_ascii=False)) if args.json else print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
