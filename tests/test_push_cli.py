"""`python -m recsys_core push`: a segment of shoppers pushed at one moment and scene, with reasons stored."""

from __future__ import annotations

import json

import pytest
import torch

from recsys_core import cli, registry
from recsys_core.store import connect
from recsys_core.store.pushes import list_pushes
from tests.app_db import build_small_store
from tests.explain_models import save_tiny_model

torch.set_num_threads(1)


@pytest.fixture
def world(tmp_path):
    return build_small_store(tmp_path / "small.duckdb"), save_tiny_model(tmp_path / "tiny")


def run(capsys, *argv: str) -> tuple[int, dict | str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else out.err)


def test_push_a_segment_with_reasons(capsys, world):
    db, model_dir = world
    code, out = run(capsys, "push", "--db", str(db), "--model-dir", str(model_dir), "--users", "u0,u1,nobody,u0",
                    "--at", "2024-11-18T08:00", "--device", "mobile", "--scene", "channel=push", "--scene", "location=commute",
                    "-k", "3", "--json")
    assert code == 0, out
    version = registry.read_metadata(model_dir)["version"]
    assert (out["pushed"], out["shoppers"], out["skipped"], out["model_version"]) == (6, 2, ["nobody"], version)
    assert out["at"].startswith("2024-11-18T08:00:00+08:00")
    assert out["scene"] == {"device": "mobile", "channel": "push", "location": "commute"}
    assert all(p["reason"].startswith("Ranked ") and f"top {3}" in p["reason"] or " would rank " in p["reason"] for p in out["pushes"])
    con = connect(db, read_only=True)
    try:
        stored = list_pushes(con)
    finally:
        con.close()
    assert len(stored) == 6 and set(stored["user_id"]) == {"u0", "u1"}
    assert {json.loads(raw)["device"] for raw in stored["scene_json"]} == {"mobile"}
    assert sorted(stored[stored["user_id"] == "u0"]["rank"]) == [1, 2, 3]
    assert str(stored["local_time"].iloc[0]) == "2024-11-18 08:00:00"
    for raw in stored["reasons_json"]:
        reasons = json.loads(raw)
        assert reasons["reason"]["zh"].startswith("排名第") and reasons["model_version"] == version
        assert reasons["explained"] == "log_prob" and reasons["rank"] in (1, 2, 3)
        assert {"hour", "scene.device", "scene.channel", "scene.location"} <= set(reasons["shapley"])
        assert any(group.startswith("history") for group in reasons["shapley"]) and len(reasons["top_inputs"]) == 5
        # Shapley efficiency: the groups add up to the explained score's distance from its baseline.
        total = sum(reasons["shapley"].values())
        assert abs(total - (reasons["score"] - reasons["baseline_score"])) < 1e-3 + abs(reasons["efficiency_gap"])
        assert reasons["scenario"]["at"] == "2024-11-18T08:00" and reasons["k"] == 3


def test_default_segment_is_the_most_active_shoppers(capsys, world):
    db, model_dir = world
    code, out = run(capsys, "push", "--db", str(db), "--model-dir", str(model_dir), "--limit", "2", "--at", "2024-11-18T20:00+08:00",
                    "-k", "1", "--json")
    assert code == 0, out
    from recsys_core.store.events import active_users

    con = connect(db, read_only=True)
    try:
        expected = active_users(con, 2)
    finally:
        con.close()
    assert out["shoppers"] == 2 and [p["user_id"] for p in out["pushes"]] == expected
    # No scene given: none is recorded, and the model reads every scene field as unknown.
    assert out["scene"] == {} and {"device", "channel", "location"} <= set(out["context_fields"])


def test_bad_input_is_a_message(capsys, world):
    db, model_dir = world
    code, err = run(capsys, "push", "--db", str(db), "--model-dir", str(model_dir), "--users", "u0", "--at", "tomorrow", "--json")
    assert code == 2 and "ISO 8601" in err
    code, err = run(capsys, "push", "--db", str(db), "--model-dir", str(model_dir), "--users", "u0", "--at", "2024-11-18T08:00", "-k", "0")
    assert code == 2 and "-k" in err
