"""`python -m recsys_core explain --json`: the docs/design.md §7 object, in a subprocess as outside checks run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.app_db import build_small_store
from tests.explain_models import save_tiny_model

ROOT = Path(__file__).resolve().parents[1]


def test_explain_json(tmp_path):
    db, model_dir = build_small_store(tmp_path / "small.duckdb"), save_tiny_model(tmp_path / "tiny")
    result = subprocess.run(
        [sys.executable, "-m", "recsys_core", "explain", "--db", str(db), "--model-dir", str(model_dir), "--user", "u0", "--item", "i3",
         "--at", "2024-11-18T08:00", "--device", "mobile", "--scene", "channel=push", "--scene", "location=commute", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert {"score", "baseline_score", "attributions", "completeness_gap", "shapley", "reason"} <= set(out)
    assert {"base_value", "values"} <= set(out["shapley"])
    assert {"hour", "weekday", "promotion", "recency", "scene.device", "scene.channel", "scene.location"} <= set(out["shapley"]["values"])
    assert out["scenario"]["scene"] == {"device": "mobile", "channel": "push", "location": "commute"} and out["ignored_fields"] == []
    assert all({"feature", "value"} <= set(r) for r in out["attributions"])
    assert abs(out["completeness_gap"]) <= 0.05 * abs(out["score"] - out["baseline_score"])
    assert abs(sum(out["shapley"]["values"].values()) - (out["score"] - out["shapley"]["base_value"])) <= 1e-4
    assert out["reason"].endswith(".") and out["reason_zh"].endswith("。")


def test_explain_errors_are_messages(tmp_path):
    db, model_dir = build_small_store(tmp_path / "small.duckdb"), save_tiny_model(tmp_path / "tiny")
    base = [sys.executable, "-m", "recsys_core", "explain", "--db", str(db), "--model-dir", str(model_dir), "--at", "2024-11-18T08:00"]
    for extra, message in ((["--user", "nobody", "--item", "i3"], "unknown shopper"), (["--user", "u0", "--item", "zzz"], "catalogue"),
                           (["--user", "u0", "--item", "i3", "--scene", "weather=rain"], "no field weather")):
        result = subprocess.run(base + extra, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
