"""`python -m recsys_core ...` — the stable CLI of docs/design.md §7.

Each command handler returns one dict: `--json` prints it as one JSON object on
stdout; otherwise it is printed for people. Errors print a clear message on
stderr and exit non-zero, never a traceback for bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Callable

from recsys_core.store import DatabaseLockedError

MODEL_TYPES = ["context_transformer", "sasrec", "pop", "context_pop", "covisit", "router"]
PROTOCOLS = ["next_event", "next_session", "time_split"]
IMPORT_FORMATS = ["taobao", "tianchi", "retailrocket", "movielens", "csv", "parquet"]


class CliError(Exception):
    """A user-facing error: printed without a traceback."""


# --- handlers: each imports its module lazily so `--help` stays fast --------------------


def cmd_sample(args: argparse.Namespace) -> dict[str, Any]:
    from recsys_core import synth

    return synth.build_sample_database(args.db, seed=args.seed)


def cmd_import(args: argparse.Namespace) -> dict[str, Any]:
    from recsys_core import importers, privacy

    if args.key_file and not args.pseudonymise:
        raise CliError("--key-file applies with --pseudonymise")
    key = privacy.load_key(args.key_file) if args.pseudonymise else None
    return importers.import_file(
        args.path,
        fmt=args.format,
        db=args.db,
        items_path=args.items,
        mapping=args.map,
        columns=args.columns,
        sep=args.sep,
        ts_unit=args.ts_unit,
        tz=args.tz,
        scene=args.scene,
        min_rating=args.min_rating,
        pseudonym_key=key,
    )


def cmd_stats(args: argparse.Namespace) -> dict[str, Any]:
    from recsys_core.store import analytics, connect

    con = connect(args.db, read_only=True)
    try:
        return analytics.database_stats(con)
    finally:
        con.close()


def cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    from recsys_core import train

    return train.train_cli(args)


def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from recsys_core import evaluate

    return evaluate.evaluate_cli(args)


def cmd_compare(args: argparse.Namespace) -> dict[str, Any]:
    from recsys_core import evaluate

    return evaluate.compare_cli(args)


def cmd_ablate(args: argparse.Namespace) -> dict[str, Any]:
    from recsys_core import ablate

    return ablate.ablate_cli(args)


def cmd_update(args: argparse.Namespace) -> dict[str, Any]:
    from recsys_core import update

    return update.update_cli(args)


def cmd_migrate(args: argparse.Namespace) -> dict[str, Any]:
    from recsys_core.store import connect
    from recsys_core.store.scene import scene_names

    con = connect(args.db)  # a writable open brings the schema up to date
    try:
        return {"db": str(args.db or ""), "scene_fields": scene_names(con), "status": "up to date"}
    finally:
        con.close()


def cmd_monitor(args: argparse.Namespace) -> dict[str, Any]:
    from recsys_core import monitor

    return monitor.monitor_cli(args)


def cmd_recommend(args: argparse.Namespace) -> dict[str, Any]:
    from recsys_core import recommend

    return recommend.recommend_cli(args)


def cmd_explain(args: argparse.Namespace) -> dict[str, Any]:
    from recsys_core import explain

    return explain.explain_cli(args)


def cmd_push(args: argparse.Namespace) -> dict[str, Any]:
    from recsys_core import push

    return push.push_cli(args)


def cmd_forget(args: argparse.Namespace) -> dict[str, Any]:
    from recsys_core import privacy

    return privacy.forget(args.db, args.user, key=privacy.key_if_given(args.key_file), models_root=args.models)


def cmd_serve(args: argparse.Namespace) -> dict[str, Any]:
    from recsys_core import serve

    return serve.run(args.db, args.host, args.port, args.model_dir, serve.read_api_key(args.api_key_file), args.threads)


def cmd_bench(args: argparse.Namespace) -> dict[str, Any]:
    from recsys_core import bench

    return bench.run_all(args.db, only=args.only)


# --- parser ---------------------------------------------------------------------------


# Shorthand options for the sample world's scene fields: `--device mobile` is `--scene device=mobile`.
SCENE_SHORTHANDS = ("device", "channel", "location")


def _scenario_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--at", required=True, help="ISO 8601 moment of the push; without an offset it is read in the data's timezone")
    p.add_argument("--scene", action="append", default=[], metavar="NAME=VALUE",
                   help="a scene field's value at the push (repeatable), e.g. --scene device=mobile --scene store_id=s12")
    for name in SCENE_SHORTHANDS:
        p.add_argument(f"--{name}", default=None, help=f"shorthand for --scene {name}=VALUE")
    p.add_argument("--model-dir", default=None, help="model folder (default: the bundled context_transformer)")
    p.set_defaults(parse_scene=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recsys_core", description="ScenePush: time- and scene-aware recommendation.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Callable, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--db", default=None, help="DuckDB file (default: $RECSYS_DB, else data/scenepush.duckdb)")
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        p.set_defaults(handler=handler)
        return p

    p = add("sample", cmd_sample, "Build the deterministic sample world into the database.")
    p.add_argument("--seed", type=int, default=None, help="generator seed (default: the seed of the shipped sample data)")

    p = add("import", cmd_import, "Import a behaviour log into the database.")
    p.add_argument("path", help="file to import")
    p.add_argument("--format", required=True, choices=IMPORT_FORMATS)
    p.add_argument("--items", default=None, help="item file (Tianchi items, RetailRocket item properties, or a generic CSV/Parquet of items)")
    p.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN", help="take FIELD from COLUMN (repeatable)")
    p.add_argument("--columns", default=None, help="column names of a headerless file, in order (unknown names are ignored)")
    p.add_argument("--sep", default=None, help="field separator (default: sniffed)")
    p.add_argument("--ts-unit", default="s", choices=["s", "ms"], help="unit of numeric timestamps")
    p.add_argument("--tz", default="Asia/Shanghai", help="timezone of text times without an offset; recorded as the data's local timezone")
    p.add_argument("--scene", action="append", default=[], metavar="COLUMN | NAME=COLUMN[:N]",
                   help="import a column as a scene field (repeatable); NAME=COLUMN renames it, :N keeps its first N characters "
                   "(e.g. --scene location=user_geohash:4)")
    p.add_argument("--min-rating", type=float, default=None, help="movielens: keep ratings >= R (default: keep all)")
    p.add_argument("--pseudonymise", action="store_true",
                   help="store shopper ids as keyed pseudonyms (HMAC-SHA256); key from $SCENEPUSH_PSEUDONYM_KEY or --key-file")
    p.add_argument("--key-file", default=None, help="file holding the pseudonymisation key (at least 16 random bytes)")

    add("stats", cmd_stats, "Summarise the database: counts, date range, behaviours, scenes, import runs.")

    p = add("train", cmd_train, "Train a model and register it in a model folder.")
    p.add_argument("--model", required=True, choices=MODEL_TYPES)
    p.add_argument("--protocol", default=None, choices=PROTOCOLS, help="default: next_event (router: its members' protocol)")
    p.add_argument("--cut", default=None, metavar="ISO",
                   help="time_split: the global cut (ISO date/datetime, local time without an offset; default: start of the last 7 days)")
    p.add_argument("--out", default=None, help="model folder to write (default: models/<model>)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--context", default=None, metavar="F1,F2",
                   help="target-context fields the model reads (time and scene fields; default: those known at decision time)")
    p.add_argument("--distributed", action="store_true",
                   help="train with PyTorch DDP under torchrun (`torchrun --nproc_per_node N -m recsys_core train ... --distributed`)")
    p.add_argument("--dp-epsilon", type=float, default=None, metavar="E",
                   help="differentially private training (DP-SGD, one sample per shopper) within privacy budget ε = E (default epochs: 10)")
    p.add_argument("--dp-delta", type=float, default=None, metavar="D", help="the δ of --dp-epsilon (default: min(1e-5, 1/(10·shoppers)))")
    p.add_argument("--augment", default=None, metavar="K1,K2",
                   help="augment histories for sparse shoppers: any of crop, mask, reorder, synthetic")
    p.add_argument("--members", default=None, metavar="DIR,DIR",
                   help="router: the trained model folders it switches between (same data, protocol and cut)")
    p.add_argument("--route-by", default=None, metavar="F1,F2",
                   help="router: context slices that pick the member, any of hour_bucket (hour), day_type, promo_day and the decision-time scene fields")

    p = add("evaluate", cmd_evaluate, "Evaluate a model folder with full ranking (docs/evaluation.md).")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--protocol", default=None, choices=PROTOCOLS, help="default: the protocol the model was trained with")
    p.add_argument("--cut", default=None, metavar="ISO",
                   help="time_split: the cut (ISO date/datetime; without an offset, the data's local time; default: the model's cut)")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="evaluate under another protocol, cut or data than the model was trained on (output says mismatch)")

    p = add("compare", cmd_compare, "Compare model folders on one protocol with bootstrap intervals and paired tests.")
    p.add_argument("model_dirs", nargs="+", metavar="DIR")
    p.add_argument("--protocol", default=None, choices=PROTOCOLS)
    p.add_argument("--cut", default=None, metavar="ISO",
                   help="time_split: the cut (ISO date/datetime; without an offset, the data's local time; default: the first model's cut)")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="compare models trained under another protocol, cut or data (output says mismatch)")

    p = add("ablate", cmd_ablate, "Retrain a model without each target-context field in turn; paired ΔNDCG@10 per field.")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--protocol", default=None, choices=PROTOCOLS, help="default: the model's protocol")
    p.add_argument("--cut", default=None, metavar="ISO",
                   help="time_split: the cut (ISO date/datetime; without an offset, the data's local time; default: the model's cut, the only one accepted)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per retrain (default: as the model was trained)")
    p.add_argument("--out", default=None, help="folder for the retrained models (default: a temporary folder)")
    p.add_argument("--jobs", type=int, default=1, help="retrains run in parallel (one torch thread each)")

    p = add("update", cmd_update, "Warm-start a trained network on the events since its training cut-off (a new version with lineage).")
    p.add_argument("--model-dir", required=True, help="the model folder to update (context_transformer or sasrec)")
    p.add_argument("--until", required=True, metavar="ISO",
                   help="learn the events before this moment (ISO date/datetime; local time without an offset)")
    p.add_argument("--out", required=True, help="model folder to write (the new version; the parent stays)")
    p.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default: 1, chosen by measurement: docs/living_model.md)")
    p.add_argument("--seed", type=int, default=42)

    add("migrate", cmd_migrate, "Bring a database written by an older ScenePush up to date (in place, one transaction).")

    p = add("monitor", cmd_monitor, "Backtest and drift per time window after the model's training cut-off, with alerts.")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--window", default="7d", help="window length in whole days: 7d (default), 3d, 24h, 2w; windows start at local midnight")
    p.add_argument("--as-of", default=None, metavar="ISO",
                   help="consider only data before this moment (a date: up to the end of that local day)")
    p.add_argument("--ndcg-drop", type=float, default=0.2, metavar="S",
                   help="alert when NDCG@10 is more than this share below its first window's (default 0.2)")
    p.add_argument("--psi", type=float, default=0.2, metavar="P", help="alert when a field's PSI exceeds P (default 0.2)")

    p = add("recommend", cmd_recommend, "Top-k items for a shopper at a time and scene.")
    p.add_argument("--user", required=True)
    p.add_argument("-k", type=int, default=10)
    _scenario_args(p)

    p = add("explain", cmd_explain, "Why would this item be pushed to this shopper at this time and scene?")
    p.add_argument("--user", required=True)
    p.add_argument("--item", required=True)
    _scenario_args(p)

    p = add("push", cmd_push, "Record pushes for a segment of shoppers at a time and scene, with reasons.")
    p.add_argument("--users", default=None, help="comma-separated shopper ids (default: the most active shoppers)")
    p.add_argument("--limit", type=int, default=20, help="how many shoppers when --users is not given")
    p.add_argument("-k", type=int, default=5)
    _scenario_args(p)

    p = add("forget", cmd_forget, "Erase one shopper: events, pushes and reasons, quarantined rows, profile; "
            "rewrites the file and flags models trained on the shopper for retraining.")
    p.add_argument("--user", required=True, help="the pseudonym (or raw id) the database holds, or a raw id with the key")
    p.add_argument("--key-file", default=None, help="pseudonymisation key file (default: $SCENEPUSH_PSEUDONYM_KEY)")
    p.add_argument("--models", default="models", help="folder of model folders to check (besides the bundled model)")

    p = add("serve", cmd_serve, "Serve recommendations, explanations, pushes and live events over HTTP (FastAPI + uvicorn).")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: localhost only; put a TLS proxy in front)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model-dir", default=None, help="model folder to serve (default: the bundled context_transformer)")
    p.add_argument("--api-key-file", default=None, help="file whose first line is the API key (default: $SCENEPUSH_API_KEY)")
    p.add_argument("--threads", type=int, default=None,
                   help="recommendations handled at once (default 2; more only contend for the cores, the rest wait in the event loop; explanations and event batches have a thread each)")

    p = add("bench", cmd_bench, "Benchmarks: import rate, serving latency, training speed, explanations.")
    p.add_argument("--only", action="append", default=None, help="run only the named benchmark group (repeatable)")
    return parser


def _print_human(result: dict[str, Any], indent: int = 0) -> None:
    pad = "  " * indent
    for key, value in result.items():
        if isinstance(value, dict):
            print(f"{pad}{key}:")
            _print_human(value, indent + 1)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            print(f"{pad}{key}:")
            for row in value:
                print(pad + "  - " + ", ".join(f"{k}={v}" for k, v in row.items()))
        else:
            print(f"{pad}{key}: {value}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        if getattr(args, "parse_scene", False):
            from recsys_core.context import parse_scene_args

            args.scene = parse_scene_args(args.scene, **{name: getattr(args, name) for name in SCENE_SHORTHANDS})
        result = args.handler(args)
    except (CliError, DatabaseLockedError, FileNotFoundError, IsADirectoryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, ensure_ascii=False, default=str))
    else:
        _print_human(result)
    return 0
