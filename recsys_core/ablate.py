"""`python -m recsys_core ablate`: which target-context fields does a model's gain come from?

The model is retrained once without each field it reads in the target context (history events keep
all their fields), and once with none (sasrec: no time or scene anywhere), with the same data,
protocol (time_split: the model's cut), hyper-parameters and seed. Each retrain is scored on the same test
cases as the model, and ΔNDCG@10 = model − retrained is reported with a paired bootstrap interval and a
sign-flip p-value over shoppers: a field whose interval lies above 0 carries part of the gain. Retrains run
in parallel processes (``--jobs``), one torch thread each.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import multiprocessing
import tempfile
import time
from dataclasses import fields as dataclass_fields, replace
from pathlib import Path
from typing import Any


from recsys_core import evaluate


def _retrain(db: str | None, model_type: str, protocol: str, cfg_dict: dict[str, Any], context: list[str] | None,
             out: str, cut: int | None = None) -> dict[str, Any]:
    """One retrain in a worker process; returns its summary (the folder holds the model)."""
    from recsys_core.store import connect
    from recsys_core.train import TrainConfig, train

    cfg = TrainConfig(**cfg_dict)
    con = connect(db, read_only=True)
    try:
        t0 = time.perf_counter()
        summary = train(con, model_type, protocol, out, cfg, progress=False, context=context, cut=cut)
        summary["wall_s"] = round(time.perf_counter() - t0, 1)
        return summary
    finally:
        con.close()


ABLATE_HINT = "ablate retrains under the model's own protocol, cut and data: run it on the database the model was trained on"


def ablate(db: str | None, model_dir: str | Path, protocol: str | None = None, epochs: int | None = None,
           out: str | Path | None = None, jobs: int = 1, cut: str | None = None) -> dict[str, Any]:
    """Retrain ``model_dir``'s model without each of its target-context fields (and with none) and compare.
    ``cut``: time_split's cut (ISO; default and only accepted value: the model's own)."""
    from recsys_core.registry import load_model
    from recsys_core.sequences import cut_iso
    from recsys_core.store import connect
    from recsys_core.store import events as store_events
    from recsys_core.train import TrainConfig

    lm = load_model(model_dir)
    if lm.model_type != "context_transformer":
        raise ValueError(f"ablate needs a context_transformer model; {model_dir} holds {lm.model_type!r}")
    protocol = protocol or lm.protocol or "next_event"
    con = connect(db, read_only=True)
    try:
        cut_ts = evaluate.resolve_cut(con, protocol, cut, [lm])
        cut_text = None if cut_ts is None else cut_iso(cut_ts, store_events.data_timezone(con))
        evaluate.protocol_guard(con, [lm], protocol, cut=cut_ts, hint=ABLATE_HINT)
    finally:
        con.close()
    recorded = lm.metadata.get("training", {}).get("config", {})
    known = {f.name for f in dataclass_fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in recorded.items() if k in known})
    if epochs is not None:
        cfg = replace(cfg, epochs=int(epochs))
    cfg = replace(cfg, threads=1)
    fields = list(lm.context_fields)
    runs: list[tuple[str, str, list[str] | None]] = [(f, "context_transformer", [c for c in fields if c != f]) for f in fields]
    runs.append(("(all: sasrec)", "sasrec", None))
    root = Path(out) if out else Path(tempfile.mkdtemp(prefix="scenepush-ablate-"))
    started = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(max_workers=max(1, int(jobs)), mp_context=ctx) as pool:
        pending = {
            name: pool.submit(_retrain, db, model_type, protocol, vars(cfg).copy(), context, str(root / _folder(name)), cut_ts)
            for name, model_type, context in runs
        }
        summaries = {name: f.result() for name, f in pending.items()}
    wall = time.perf_counter() - started

    dirs = [str(lm.path)] + [summaries[name]["out"] for name, _, _ in runs]
    loaded = [load_model(d) for d in dirs]
    con = connect(db, read_only=True)
    try:
        all_cases = evaluate._load_cases(con, loaded, protocol, cut=cut_ts)
    finally:
        con.close()
    results = [evaluate.rank_cases(m.model, cases) for m, cases in zip(loaded, all_cases)]
    full = results[0].per_case[evaluate.HEADLINE]
    shoppers = all_cases[0].users  # the resampling unit: several cases per shopper under time_split
    rows = []
    for (name, _, _), res in zip(runs, results[1:]):
        test = evaluate.paired_test(res.per_case[evaluate.HEADLINE], full, shoppers=shoppers)  # b − a = model − retrained
        rows.append({
            "field_removed": name,
            "NDCG@10_without": round(float(res.per_case[evaluate.HEADLINE].mean()), 4),
            "delta_NDCG@10": round(test["diff"], 4),
            "delta_ci95": [round(x, 4) for x in test["diff_ci95"]],
            "p_value": round(test["p_value"], 4),
            "retrain_s": summaries[name]["wall_s"],
            "best_epoch": summaries[name].get("best_epoch"),
        })
    return {
        "model_dir": str(lm.path),
        "version": lm.version,
        "protocol": protocol,
        **({"cut": cut_text} if cut_text else {}),
        "evaluation": evaluate.evaluation_line(protocol, len(full), all_cases[0].n_shoppers, cut_text)
        + "; delta = model − retrained without the field",
        "context_fields": fields,
        "NDCG@10": round(float(full.mean()), 4),
        "ablation": rows,
        "retrains": len(runs),
        "jobs": int(jobs),
        "wall_s": round(wall, 1),
        "retrained_models": str(root),
    }


def _folder(name: str) -> str:
    return "without_" + "".join(c if c.isalnum() else "_" for c in name).strip("_")


def ablate_cli(args: argparse.Namespace) -> dict[str, Any]:
    """Handler of `python -m recsys_core ablate` (arguments in cli.py)."""
    return ablate(args.db, args.model_dir, args.protocol, args.epochs, args.out, args.jobs, getattr(args, "cut", None))
