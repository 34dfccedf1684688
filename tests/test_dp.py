"""DP-SGD training (`train --dp-epsilon`): the ε spent is recorded and within the request, one sample per shopper,
exact per-sample gradients, clear errors for bad budgets; the model card shows ε and δ."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from recsys_core import dp
from recsys_core.registry import load_model, model_card
from recsys_core.sequences import SequenceData
from recsys_core.store import connect
from recsys_core.train import TrainConfig, build_neural_model, train
from tests.tiny_world import build_tiny_store

SMALL = dict(d_model=16, max_len=8, n_layers=1, n_heads=2, batch_size=6, eval_batch_size=64)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = build_tiny_store(tmp_path_factory.mktemp("dp") / "w.duckdb")
    con = connect(path, read_only=True)
    yield path, con, SequenceData.from_store(con)
    con.close()


def test_a_dp_run_records_an_epsilon_within_the_request_on_folder_and_card(world, tmp_path):
    _, con, data = world
    result = train(con, "context_transformer", "next_event", tmp_path / "dp", TrainConfig(seed=1, epochs=2, dp_epsilon=3.0, **SMALL),
                   progress=False, data=data)
    spent = result["differential_privacy"]
    assert 0 < spent["epsilon"] <= 3.0 and spent["delta"] == dp.default_delta(data.n_users) == 1e-5
    assert spent["shoppers"] == data.n_users and spent["sample_rate"] == pytest.approx(6 / data.n_users)
    assert spent["steps"] == 2 * round(data.n_users / 6) and spent["noise_multiplier"] > 0.3
    lm = load_model(tmp_path / "dp")
    assert lm.metadata["differential_privacy"]["epsilon"] == spent["epsilon"] and lm.metadata["training"]["config"]["dp_epsilon"] == 3.0
    assert lm.metadata["training"]["epochs_run"] == 2  # every planned epoch, no early stopping
    card = model_card(tmp_path / "dp")
    assert card["dp_epsilon"] == spent["epsilon"] and card["dp_delta"] == spent["delta"]
    ordinary = train(con, "context_transformer", "next_event", tmp_path / "plain", TrainConfig(seed=1, epochs=1, **SMALL),
                     progress=False, data=data)
    assert "differential_privacy" not in ordinary and model_card(tmp_path / "plain")["dp_epsilon"] is None


def test_a_smaller_budget_needs_more_noise_and_delta_is_honoured(world, tmp_path):
    _, con, data = world
    noise = {}
    for eps in (0.5, 8.0):
        r = train(con, "sasrec", "next_event", tmp_path / f"e{eps}", TrainConfig(seed=2, epochs=1, dp_epsilon=eps, dp_delta=1e-3, **SMALL),
                  progress=False, data=data)
        assert r["differential_privacy"]["epsilon"] <= eps and r["differential_privacy"]["delta"] == 1e-3
        noise[eps] = r["differential_privacy"]["noise_multiplier"]
    assert noise[0.5] > 2 * noise[8.0]


def test_one_sample_is_one_shopper_and_trimming_padding_changes_nothing(world):
    _, _, data = world
    split = data.split("next_event")
    windows = split.training_windows(4)
    newest = windows.newest_per_shopper()
    assert len(windows) > data.n_users and len(newest) == data.n_users == len(set(newest.first.tolist()))
    for f, last in zip(newest.first, newest.last):  # the newest window of its shopper
        assert last == windows.last[windows.first == f].max()
    torch.manual_seed(0)
    model = build_neural_model("context_transformer", data.features, TrainConfig(d_model=16, max_len=8)).eval()
    for batch in split.training_windows(8).newest_per_shopper().batches(1):
        cut = dp._trimmed(batch)
        assert cut.length <= batch.length
        assert float(model(cut)[1]) == pytest.approx(float(model(batch)[1]), abs=1e-5)


def test_per_sample_gradients_are_each_windows_own_gradient(world):
    _, _, data = world
    windows = data.split("next_event").training_windows(8).newest_per_shopper()
    torch.manual_seed(0)
    model = build_neural_model("context_transformer", data.features, TrainConfig(d_model=16, max_len=8, dropout=0.0))
    params = [p for p in model.parameters() if p.requires_grad]
    two = windows.subset(np.isin(np.arange(len(windows)), [3, 7]))
    grads, _ = dp.per_sample_gradients(model, two, params)
    assert grads[0].shape[0] == 2
    for i, batch in enumerate(two.batches(1)):
        model.zero_grad()
        model(batch)[1].backward()
        for g, p in zip(grads, params):
            expected = torch.zeros_like(p) if p.grad is None else p.grad
            assert torch.allclose(g[i], expected, atol=1e-6)
    assert not torch.allclose(grads[0][0], grads[0][1])


@pytest.mark.parametrize("args, message", [
    (["--dp-epsilon", "0"], "error: --dp-epsilon must be a finite number > 0, got 0.0"),
    (["--dp-epsilon", "-2"], "error: --dp-epsilon must be a finite number > 0, got -2.0"),
    (["--dp-epsilon", "1", "--dp-delta", "1.5"], "error: --dp-delta must be between 0 and 1 (exclusive), got 1.5"),
    (["--dp-delta", "1e-5"], "error: --dp-delta needs --dp-epsilon"),
    (["--dp-epsilon", "1", "--augment", "crop"], "error: --dp-epsilon with --augment is not supported"),
])
def test_bad_budgets_are_one_clear_line(world, tmp_path, args, message):
    path, _, _ = world
    proc = subprocess.run([sys.executable, "-m", "recsys_core", "train", "--db", str(path), "--model", "context_transformer",
                           "--out", str(tmp_path / "m"), *args], capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(message)
    assert not (tmp_path / "m").exists()
