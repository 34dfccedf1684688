"""`benchmarks/bench_behaviour.py` keeps running as the schema changes: every Behaviour-page query, on a small
store with scene fields and on a generated store (tiny here; 10M when run by hand)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.app_db import build_small_store

ROOT = Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_behaviour", ROOT / "benchmarks" / "bench_behaviour.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_query_runs_on_both_stores(tmp_path, capsys):
    db = build_small_store(tmp_path / "small.duckdb")
    load_bench().main(["--db", str(db), "--large-events", "20000", "--repeat", "1"])
    report = json.loads(capsys.readouterr().out)
    for store in ("sample", "large"):
        for view in ("all", "narrow"):
            timed = report[store][view]
            assert {"daily_events", "scene_funnel", "scene_mix", "hour_weekday_by_category"} <= set(timed)
            assert all(q["median_ms"] >= 0 for q in timed.values())
    assert report["large"]["events"] == 20000
