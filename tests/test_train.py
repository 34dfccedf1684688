"""Training: a registered model with metadata, early stopping, seed reproducibility, CLI handler."""

import argparse
import json

import numpy as np
import pytest
import torch

from recsys_core.registry import load_model
from recsys_core.sequences import SequenceData
from recsys_core.store import connect
from recsys_core.train import TrainConfig, train, train_cli
from tests.tiny_world import build_tiny_store

SMALL = dict(d_model=16, max_len=8, n_layers=1, n_heads=2, epochs=3, batch_size=16, eval_batch_size=64)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = build_tiny_store(tmp_path_factory.mktemp("train") / "w.duckdb")
    con = connect(path, read_only=True)
    yield path, con, SequenceData.from_store(con)
    con.close()


def test_train_registers_a_model_with_metadata(world, tmp_path):
    path, con, data = world
    result = train(con, "context_transformer", "next_session", tmp_path / "ct", TrainConfig(seed=3, **SMALL), progress=False, data=data)
    assert result["protocol"] == "next_session" and 1 <= result["best_epoch"] <= result["epochs_run"] <= 3
    assert 0.0 <= result["metrics"]["test"]["NDCG@10"] <= 1.0
    lm = load_model(tmp_path / "ct")
    meta = lm.metadata
    assert meta["protocol"] == "next_session" and meta["data_fingerprint"]["n_events"] == data.n_events
    assert meta["training_cutoff"].startswith("2025-") and meta["metrics"]["valid"]["NDCG@10"] == pytest.approx(result["best_valid_NDCG@10"], abs=1e-5)
    assert meta["training"]["config"]["seed"] == 3 and len(meta["training"]["history"]) == result["epochs_run"]


def test_same_seed_same_model_and_other_seed_differs(world, tmp_path):
    _, con, data = world
    runs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        train(con, "sasrec", "next_event", tmp_path / name, TrainConfig(seed=seed, **{**SMALL, "epochs": 2}), progress=False, data=data)
        runs[name] = load_model(tmp_path / name).model.state_dict()
    assert all(torch.equal(runs["a"][k], runs["b"][k]) for k in runs["a"])
    assert not all(torch.equal(runs["a"][k], runs["c"][k]) for k in runs["a"])


def test_early_stopping_stops_after_patience(world, tmp_path):
    _, con, data = world
    cfg = TrainConfig(seed=1, **{**SMALL, "epochs": 50}, patience=1, lr=0.0)  # lr 0: never improves after epoch 1
    result = train(con, "context_transformer", "next_event", tmp_path / "m", cfg, progress=False, data=data)
    assert result["best_epoch"] == 1 and result["epochs_run"] == 2


def test_unknown_model_or_protocol_fails_loudly(world, tmp_path):
    _, con, data = world
    with pytest.raises(ValueError, match="choose from"):
        train(con, "gru4rec", "next_event", tmp_path / "x", data=data)
    with pytest.raises(ValueError, match="choose from"):
        train(con, "sasrec", "random_split", tmp_path / "x", data=data)


def test_train_cli_returns_a_json_summary(world, tmp_path, monkeypatch):
    path, _, _ = world
    import recsys_core.train as train_module

    monkeypatch.setattr(train_module, "TrainConfig", lambda **kw: TrainConfig(**{**SMALL, **kw}))
    args = argparse.Namespace(model="context_transformer", protocol="next_session", db=str(path), out=str(tmp_path / "cli"), epochs=1, seed=2, json=True)
    out = train_cli(args)
    json.dumps(out)
    assert out["out"] == str(tmp_path / "cli") and out["epochs_run"] == 1 and set(out["metrics"]) == {"valid", "test"}


def test_weights_gone_non_finite_with_a_finite_loss_stop_training_with_a_clear_error(world, tmp_path, monkeypatch):
    """The last step of an epoch can break the weights after its loss was computed; validation must not score them."""
    from recsys_core import train as train_module

    def poisoned_epoch(model, *args, **kwargs):
        with torch.no_grad():
            model.fusion.gate.weight[0, 0] = float("nan")
        return 1.0

    monkeypatch.setattr(train_module, "train_epoch", poisoned_epoch)
    _, con, data = world
    with pytest.raises(RuntimeError, match=r"diverged at epoch 1 \(non-finite weights in fusion\.gate\.weight\)"):
        train(con, "context_transformer", "next_session", tmp_path / "ct", TrainConfig(seed=3, **SMALL), progress=False, data=data)
    assert not (tmp_path / "ct").exists()


def test_context_fields_default_to_those_known_at_decision_time(world, tmp_path):
    _, con, data = world
    train(con, "context_transformer", "next_session", tmp_path / "ct", TrainConfig(seed=3, **{**SMALL, "epochs": 1}), progress=False, data=data)
    lm = load_model(tmp_path / "ct")
    # channel is the surface the shopper arrives on: not known when a push is decided
    assert lm.context_fields == ("hour", "weekday", "weekend", "holiday", "promo", "gap", "device", "location")
    assert set(lm.model.context_emb) == set(lm.context_fields)
    assert set(lm.model.history_emb) == {"hour", "weekday", "weekend", "holiday", "promo", "gap", "device", "channel", "location"}


def test_context_option_chooses_the_fields_and_names_unknown_ones(world, tmp_path):
    _, con, data = world
    out = train(con, "context_transformer", "next_session", tmp_path / "ct", TrainConfig(seed=3, **{**SMALL, "epochs": 1}),
                progress=False, data=data, context=["device", "hour"])
    assert out["context_fields"] == ["hour", "device"] and load_model(tmp_path / "ct").context_fields == ("hour", "device")
    with pytest.raises(ValueError, match="unknown field.*weather.*this data has hour, weekday"):
        train(con, "context_transformer", "next_session", tmp_path / "x", TrainConfig(**SMALL), progress=False, data=data, context=["weather"])
    # context_pop conditions on the first decision-time scene field
    out = train(con, "context_pop", "next_session", tmp_path / "cp", progress=False, data=data)
    assert out["context_fields"] == ["hour", "weekend", "device"]


def test_ablation_retrains_without_each_field_and_pairs_the_differences(world, tmp_path):
    from recsys_core.ablate import ablate

    path, con, data = world
    train(con, "context_transformer", "next_session", tmp_path / "ct", TrainConfig(seed=3, **{**SMALL, "epochs": 2}),
          progress=False, data=data, context=["hour", "device"])
    out = ablate(str(path), tmp_path / "ct", jobs=2, out=tmp_path / "ablation")
    assert out["protocol"] == "next_session" and out["context_fields"] == ["hour", "device"]
    assert [r["field_removed"] for r in out["ablation"]] == ["hour", "device", "(all: sasrec)"]
    for row in out["ablation"]:
        lo, hi = row["delta_ci95"]
        assert lo <= row["delta_NDCG@10"] <= hi and 0 < row["p_value"] <= 1
        assert row["delta_NDCG@10"] == pytest.approx(out["NDCG@10"] - row["NDCG@10_without"], abs=2e-4)
    assert load_model(tmp_path / "ablation" / "without_hour").context_fields == ("device",)
    assert load_model(tmp_path / "ablation" / "without_all__sasrec").model_type == "sasrec"


# --- distributed training (torchrun + DDP) ----------------------------------------------------------------


def test_rank_shares_split_the_windows_by_shopper_every_window_once(world):
    _, _, data = world
    windows = data.split("next_event").training_windows(4)  # short windows: most shoppers have several
    for epoch in (1, 2):
        shares = [windows.for_rank(r, 2, (7, epoch)) for r in range(2)]
        assert sum(len(s) for s in shares) == len(windows)
        seen = [set(zip(s.first.tolist(), s.last.tolist())) for s in shares]
        assert not seen[0] & seen[1] and seen[0] | seen[1] == set(zip(windows.first.tolist(), windows.last.tolist()))
        shoppers = [set(s.first.tolist()) for s in shares]
        assert not shoppers[0] & shoppers[1] and abs(len(shoppers[0]) - len(shoppers[1])) <= 1  # dealt round-robin
    assert set(windows.for_rank(0, 2, (7, 1)).first.tolist()) != set(windows.for_rank(0, 2, (7, 2)).first.tolist())


def test_distributed_without_torchrun_is_one_clear_line(world, tmp_path, monkeypatch):
    import subprocess
    import sys

    path, _, _ = world
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    proc = subprocess.run([sys.executable, "-m", "recsys_core", "train", "--db", str(path), "--model", "context_transformer",
                           "--epochs", "1", "--out", str(tmp_path / "m"), "--distributed"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --distributed needs the torchrun launcher") and "torchrun --nproc_per_node" in lines[0]
    assert not (tmp_path / "m").exists()


def test_two_process_torchrun_training_registers_a_model_that_serves(world, tmp_path):
    """torchrun --standalone --nproc_per_node 2 (gloo on CPU): both ranks train, rank 0 alone writes the folder."""
    import datetime as dt
    import os
    import subprocess
    import sys
    from zoneinfo import ZoneInfo

    from recsys_core import recommend

    path, con, data = world
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "recsys_core", "train", "--db", str(path),
                           "--model", "context_transformer", "--epochs", "2", "--seed", "3", "--out", str(tmp_path / "ddp"),
                           "--distributed", "--json"], capture_output=True, text=True, timeout=300, cwd=os.getcwd())
    # a rank's own error comes before torchrun's long summary: show the lines that say what failed
    said = [line for line in proc.stderr.splitlines() if not line.startswith((" ", "W1", "I1")) and line.strip()]
    assert proc.returncode == 0, "\n".join(said[:40])
    outputs = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert sorted(o.get("rank", 0) for o in outputs) == [0, 1]
    assert [o for o in outputs if o.get("role") == "worker"][0]["rank"] == 1
    main = [o for o in outputs if "out" in o][0]
    assert main["distributed"] == {"world_size": 2, "backend": "gloo", "windows_per_rank_step": 16} and main["epochs_run"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]  # one folder, no temporary leftovers from another rank
    lm = recommend.load_model(tmp_path / "ddp")
    assert lm.metadata["training"]["distributed"]["world_size"] == 2
    top = recommend.recommend(lm, con, "u1", recommend.Scenario(dt.datetime(2025, 11, 20, 8, tzinfo=ZoneInfo("Asia/Shanghai"))), k=5)
    assert len(top) == 5 and top.attrs["cold_start"] is False and np.isfinite(top["score"]).all()


def test_ddp_path_on_one_rank_equals_ordinary_training(world):
    """The DDP loop (rank shares, per-rank batch, join, rank-0 validation and broadcast) on a world of one must
    train exactly what the ordinary loop trains: same seed, same weights."""
    import torch.distributed as tdist

    from recsys_core.train import DistContext, build_neural_model, fit_neural, set_seed

    _, _, data = world
    split = data.split("next_event")
    cfg = TrainConfig(seed=4, **{**SMALL, "epochs": 2})
    tdist.init_process_group("gloo", store=tdist.HashStore(), rank=0, world_size=1)
    try:
        rng = set_seed(cfg.seed, cfg.threads)
        a = build_neural_model("context_transformer", data.features, cfg)
        info = fit_neural(a, split, cfg, rng, progress=False, dist=DistContext(0, 1, 0, torch.device("cpu")))
    finally:
        tdist.destroy_process_group()
    rng = set_seed(cfg.seed, cfg.threads)
    b = build_neural_model("context_transformer", data.features, cfg)
    fit_neural(b, split, cfg, rng, progress=False)
    assert info["distributed"]["world_size"] == 1
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.allclose(sa[k], sb[k], atol=1e-6) for k in sa), "DDP on one rank must equal ordinary training"
