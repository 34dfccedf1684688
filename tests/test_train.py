"""Training: a registered model with metadata, early stopping, seed reproducibility, CLI handler."""

import argparse
import json

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
