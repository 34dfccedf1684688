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


def test_a_shopper_without_history_is_explained_as_scene_aware_popularity(tmp_path):
    """profile_only has no events: the explanation (CLI and stored push reasons) says the list is the moment's
    popularity and where the item stands in it, in both languages."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    import torch

    from recsys_core import recommend
    from recsys_core.explain import push_reasons
    from recsys_core.registry import save_model
    from recsys_core.sequences import SequenceData
    from recsys_core.store import connect
    from recsys_core.train import TrainConfig, build_neural_model
    from tests.tiny_world import build_tiny_store

    db = build_tiny_store(tmp_path / "w.duckdb")
    con = connect(db, read_only=True)
    data = SequenceData.from_store(con)
    torch.manual_seed(0)
    save_model(build_neural_model("context_transformer", data.features, TrainConfig(d_model=16, max_len=8)).eval(), data.features,
               tmp_path / "ct", {"protocol": "next_event", "context_fields": ["hour", "weekday", "weekend", "device"]})
    lm = recommend.load_model(tmp_path / "ct")
    at = recommend.Scenario(dt.datetime(2025, 11, 20, 22, 5, tzinfo=ZoneInfo("Asia/Shanghai")), {"device": "mobile"})
    top = recommend.recommend(lm, con, "profile_only", at, k=3)
    stored = push_reasons(lm, con, "profile_only", at, list(top["item_id"]), k=3)
    warm = push_reasons(lm, con, "u1", at, list(top["item_id"][:1]), k=3)
    con.close()
    for rank, (item, reason) in enumerate(zip(top["item_id"], stored), start=1):
        assert reason["cold_start"]["rank"] == rank and reason["cold_start"]["source"] == "context_pop"
        assert reason["reason"]["en"].startswith("No history for this shopper yet") and f"#{rank} there" in reason["reason"]["en"]
        assert "热门" in reason["reason"]["zh"] and f"第 {rank} 位" in reason["reason"]["zh"]
    assert "cold_start" not in warm[0] and not warm[0]["reason"]["en"].startswith("No history")
    result = subprocess.run(
        [sys.executable, "-m", "recsys_core", "explain", "--db", str(db), "--model-dir", str(tmp_path / "ct"), "--user", "profile_only",
         "--item", str(top["item_id"][0]), "--at", "2025-11-20T22:05", "--device", "mobile", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert out["cold_start"]["rank"] == 1 and "21:00–24:00" in out["reason"] and "device = mobile" in out["reason"]
    assert out["reason"] == out["cold_start"]["en"] and out["reason_zh"] == out["cold_start"]["zh"]
