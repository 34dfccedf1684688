"""time_split end to end on the tiny world: train at a cut, evaluate / compare / ablate at it (or refuse another cut),
stored evaluations per cut, several cases per shopper with shopper-level intervals, and items that appear only
after the cut (scored, since vocabularies come from the catalogue) or that a model has never heard of (a miss)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from recsys_core import evaluate as ev
from recsys_core import train
from recsys_core.registry import load_model
from recsys_core.sequences import TIME_SPLIT_WINDOW_S, parse_cut
from recsys_core.store import connect
from tests.tiny_world import build_tiny_store

TZ = "Asia/Shanghai"
CUT = "2025-11-15"  # the tiny world's default cut too (its last event is on 2025-11-21, local time)
CUT_ISO = "2025-11-15T00:00:00+08:00"
OTHER_CUT_ISO = "2025-11-12T00:00:00+08:00"
NEW_ITEM = "x_new"
SMALL_CT = train.TrainConfig(seed=3, epochs=1, patience=10, d_model=16, n_layers=1, n_heads=1, max_len=20)


def add_new_item_after_the_cut(db: Path) -> None:
    """A catalogue item whose first events are after the cut: sessions of u0-u5 on 11-16 and of u0-u1 on 11-17 at
    03:00 local (the tiny world's sessions are at 08, 15 and 22 h, so these are sessions of their own)."""
    con = connect(db)
    con.execute("INSERT INTO items VALUES (?, 'new thing', '新东西', 'coffee', 'coffee', 'brand', 12.0)", [NEW_ITEM])
    rows = [(f"u{u}", NEW_ITEM, "pv", dt.datetime(2025, 11, day, 3, 0) - dt.timedelta(hours=8), 100_000 + 10 * u + day)
            for day, users in ((16, range(6)), (17, range(2))) for u in users]
    con.executemany("INSERT INTO events (user_id, item_id, behavior, ts, seq, source_run, device, channel, location) "
                    "VALUES (?, ?, ?, ?, ?, 'tiny', 'mobile', 'home_feed', 'home')", rows)
    con.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """base.duckdb (the tiny world) with a pop model trained on it; new.duckdb = base + NEW_ITEM after the cut,
    with pop, covisit and a small context_transformer trained under time_split at CUT."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("time-split")
    (root / "base").mkdir()
    (root / "new").mkdir()
    base, new = build_tiny_store(root / "base" / "tiny.duckdb"), root / "new" / "tiny.duckdb"
    shutil.copyfile(base, new)
    add_new_item_after_the_cut(new)
    cut = parse_cut(CUT, TZ)
    con = connect(base, read_only=True)
    try:
        train.train(con, "pop", "time_split", root / "old_pop", progress=False, cut=cut)
    finally:
        con.close()
    con = connect(new, read_only=True)
    try:
        for model_type in ("pop", "covisit"):
            train.train(con, model_type, "time_split", root / model_type, progress=False, cut=cut)
        train.train(con, "context_transformer", "time_split", root / "ct", SMALL_CT, progress=False, cut=cut, context=["hour"])
    finally:
        con.close()
    return new, root


def args(db: Path, **kw) -> argparse.Namespace:
    return argparse.Namespace(**{"db": str(db), "protocol": None, "allow_mismatch": False, "cut": None, **kw})


def test_training_records_the_cut_and_counts_cases_and_shoppers(world):
    _, root = world
    meta = json.loads((root / "ct" / "metadata.json").read_text())
    assert meta["protocol"] == "time_split" and meta["cut"] == CUT_ISO
    cutoff = dt.datetime.fromisoformat(meta["training_cutoff"]).timestamp()
    assert cutoff < parse_cut(CUT, TZ) - TIME_SPLIT_WINDOW_S  # nothing of the validation week, nothing after the cut
    split = meta["training"]["split"]
    assert split["cut"] == CUT_ISO and split["n_eval_cases"] > split["n_eval_users"] > 0
    assert meta["metrics"]["n_eval_cases"] == split["n_eval_cases"] and meta["metrics"]["n_eval_users"] == split["n_eval_users"]


def test_evaluate_uses_the_models_cut_and_says_cases_of_shoppers(world):
    db, root = world
    out = ev.evaluate_cli(args(db, model_dir=str(root / "covisit")))
    assert out["protocol"] == "time_split" and out["cut"] == CUT_ISO and out["mismatch"] is False
    assert out["evaluation"] == f"full ranking, time_split (cut {CUT_ISO}), {out['n_cases']} cases of {out['n_users']} shoppers (test targets)"
    assert out["n_cases"] > out["n_users"] > 0
    # the same numbers as at training time (same cases, same model)
    trained = json.loads((root / "covisit" / "metadata.json").read_text())["metrics"]["test"]
    assert out["metrics"]["NDCG@10"] == pytest.approx(trained["NDCG@10"])
    lo, hi = out["ci95"]["NDCG@10"]
    assert lo < out["metrics"]["NDCG@10"] < hi


def test_a_new_item_after_the_cut_is_scored_and_recommended_without_error(world):
    from recsys_core import recommend

    db, root = world
    con = connect(db, read_only=True)
    try:
        loaded = [load_model(root / m) for m in ("pop", "covisit", "ct")]
        assert all(lm.features.items.encode([NEW_ITEM])[0] > 0 for lm in loaded)  # vocabularies come from the catalogue
        results, table = ev.rank_models(con, loaded, "time_split", None, parse_cut(CUT, TZ))
        new_targets = (table["target_item"] == NEW_ITEM).to_numpy()
        assert new_targets.sum() >= 6  # u0-u5's sessions on 11-16 (and u0-u1 on 11-17 where not repeated)
        for lm, res in zip(loaded, results):
            assert (res.ranks[new_targets] < lm.model.n_items).all(), lm.model_type  # ranked, not an unknown miss
        lm = loaded[2]
        top = recommend.recommend(lm, con, "u0", recommend.scenario_of(lm, "2025-11-18T08:00", {}), k=5)
        assert len(top) == 5 and np.isfinite(top["score"]).all() and top.attrs["history_length"] > 0
        scores = recommend.score_scenarios(lm, con, "u0", [recommend.scenario_of(lm, "2025-11-18T08:00", {})])  # (1, n_items)
        assert np.isfinite(scores).all() and np.isfinite(scores[0, lm.features.items.encode([NEW_ITEM])[0] - 1])
    finally:
        con.close()


def test_a_model_that_never_heard_of_an_item_counts_it_as_a_miss(world):
    db, root = world
    old = load_model(root / "old_pop")
    assert old.features.items.encode([NEW_ITEM])[0] == 0
    with pytest.raises(ev.ProtocolMismatchError, match="old_pop was trained on other data"):
        ev.evaluate_cli(args(db, model_dir=str(root / "old_pop")))
    out = ev.evaluate_cli(args(db, model_dir=str(root / "old_pop"), allow_mismatch=True))
    assert out["mismatch"] is True and out["n_cases"] > 0
    con = connect(db, read_only=True)
    try:
        # the case table names targets in the first model's vocabulary: the new pop knows the item
        (_, res), table = ev.rank_models(con, [load_model(root / "pop"), old], "time_split", None, parse_cut(CUT, TZ))
    finally:
        con.close()
    new_targets = (table["target_item"] == NEW_ITEM).to_numpy()
    assert new_targets.any() and (res.ranks[new_targets] == old.model.n_items).all()
    assert (res.per_case["NDCG@10"][new_targets] == 0).all()


def test_another_cut_is_refused_unless_allowed(world):
    db, root = world
    with pytest.raises(ev.ProtocolMismatchError, match=re.escape(f"covisit was trained with cut {CUT_ISO}, not {OTHER_CUT_ISO}") + ".*--allow-mismatch"):
        ev.evaluate_cli(args(db, model_dir=str(root / "covisit"), cut="2025-11-12"))
    out = ev.evaluate_cli(args(db, model_dir=str(root / "covisit"), cut="2025-11-12", allow_mismatch=True))
    assert out["mismatch"] is True and out["cut"] == OTHER_CUT_ISO and out["evaluation"].startswith(f"full ranking, time_split (cut {OTHER_CUT_ISO}), ")
    # the model's own cut, written with its offset, is no mismatch
    assert ev.evaluate_cli(args(db, model_dir=str(root / "covisit"), cut="2025-11-14T16:00:00Z"))["mismatch"] is False
    with pytest.raises(ValueError, match="--cut applies with --protocol time_split, not next_session"):
        ev.evaluate_cli(args(db, model_dir=str(root / "covisit"), protocol="next_session", cut=CUT, allow_mismatch=True))
    with pytest.raises(ev.ProtocolMismatchError, match="trained under time_split, not next_session"):
        ev.compare_cli(args(db, model_dirs=[str(root / "pop"), str(root / "covisit")], protocol="next_session"))


def test_cli_cut_errors_are_one_line_and_mismatch_is_flagged(world):
    db, root = world
    base = [sys.executable, "-m", "recsys_core", "evaluate", "--model-dir", str(root / "pop"), "--db", str(db), "--json"]
    bad = subprocess.run(base + ["--cut", "next week"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and bad.stdout == "" and bad.stderr.strip().count("\n") == 0
    assert "--cut 'next week' is not an ISO date or datetime" in bad.stderr and "Traceback" not in bad.stderr
    refused = subprocess.run(base + ["--cut", "2025-11-12"], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0
    assert f"trained with cut {CUT_ISO}, not {OTHER_CUT_ISO}" in refused.stderr
    allowed = subprocess.run(base + ["--cut", "2025-11-12", "--allow-mismatch"], capture_output=True, text=True, timeout=300)
    out = json.loads(allowed.stdout)
    assert allowed.returncode == 0 and out["mismatch"] is True and out["cut"] == OTHER_CUT_ISO


def test_compare_resamples_shoppers_and_stores_each_cut_apart(world, tmp_path, monkeypatch):
    db, root = world
    store = ev.EvaluationStore(tmp_path / "evaluations")
    dirs = [str(root / "pop"), str(root / "covisit")]
    con = connect(db, read_only=True)
    try:
        first = ev.compare_models(con, dirs, store=store, with_cases=True)
        other = ev.compare_models(con, dirs, store=store, cut="2025-11-12", allow_mismatch=True)
        assert first["cut"] == CUT_ISO and other["cut"] == OTHER_CUT_ISO and other["mismatch"] is True
        assert first["n_cases"] != other["n_cases"]
        assert len(list(store.root.glob("cases__*.parquet"))) == 2 and len(list(store.root.glob("results__*.npz"))) == 4
        (test,) = first["tests"]
        assert (test["n"], test["n_shoppers"]) == (first["n_cases"], first["n_users"]) and test["n"] > test["n_shoppers"]
        # the intervals are the shopper-level bootstrap of the cases' ranks
        cases = first["cases"]
        ranks = cases["rank:covisit"].to_numpy() - 1
        ci = ev.bootstrap_ci(ev.per_case_metrics(ranks), shoppers=cases["user_id"].to_numpy())
        assert first["models"][1]["ci95"]["NDCG@10"] == ci["NDCG@10"]
        assert ci["NDCG@10"] != ev.bootstrap_ci(ev.per_case_metrics(ranks))["NDCG@10"]

        def no_ranking(*a, **k):
            raise AssertionError("a stored evaluation was ranked again")

        monkeypatch.setattr(ev, "rank_cases", no_ranking)
        monkeypatch.setattr(ev, "_load_cases", no_ranking)
        assert ev.compare_models(con, dirs, store=store)["table"] == first["table"]
        assert ev.compare_models(con, dirs, store=store, cut="2025-11-12", allow_mismatch=True)["table"] == other["table"]
    finally:
        con.close()


def test_ablate_under_time_split_uses_the_models_cut(world, tmp_path):
    from recsys_core.ablate import ablate

    db, root = world
    with pytest.raises(ev.ProtocolMismatchError, match=re.escape(f"trained with cut {CUT_ISO}, not {OTHER_CUT_ISO}")) as err:
        ablate(str(db), root / "ct", protocol="time_split", cut="2025-11-12")
    assert "--allow-mismatch" not in str(err.value) and "ablate retrains under the model's own protocol" in str(err.value)
    out = ablate(str(db), root / "ct", protocol="time_split", epochs=1, out=tmp_path / "ablation", jobs=1)
    assert out["protocol"] == "time_split" and out["cut"] == CUT_ISO
    assert out["evaluation"].startswith(f"full ranking, time_split (cut {CUT_ISO}), ") and " cases of " in out["evaluation"]
    assert [r["field_removed"] for r in out["ablation"]] == ["hour", "(all: sasrec)"]
    assert load_model(tmp_path / "ablation" / "without_hour").metadata["cut"] == CUT_ISO
    for row in out["ablation"]:
        lo, hi = row["delta_ci95"]
        assert lo <= row["delta_NDCG@10"] <= hi and 0 < row["p_value"] <= 1
