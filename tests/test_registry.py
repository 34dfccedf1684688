"""Model folders: save → load gives identical scores; atomic writes; clear errors; no pickle."""

import json

import pytest
import torch

from recsys_core.registry import METADATA_FILE, WEIGHTS_FILE, ModelFolderError, list_model_dirs, load_model, save_model
from recsys_core.sequences import SequenceData
from recsys_core.store import connect
from recsys_core.train import TrainConfig, build_neural_model
from tests.tiny_world import build_tiny_store

torch.set_num_threads(1)


@pytest.fixture
def saved(tmp_path):
    con = connect(build_tiny_store(tmp_path / "w.duckdb"), read_only=True)
    data = SequenceData.from_store(con)
    con.close()
    torch.manual_seed(0)
    model = build_neural_model("context_transformer", data.features, TrainConfig(d_model=16, max_len=8)).eval()
    path = save_model(model, data.features, tmp_path / "models" / "ct", {"protocol": "next_session", "metrics": {"x": 1}})
    return model, data, path


def test_save_load_gives_identical_scores(saved):
    model, data, path = saved
    lm = load_model(path)
    batch = next(data.split("next_session").test.batches(64, max_len=8))
    assert torch.equal(model.score_all(batch), lm.model.score_all(batch))
    assert lm.features.to_dict() == data.features.to_dict()
    assert lm.model_type == "context_transformer" and lm.protocol == "next_session" and lm.version.startswith("context_transformer-")
    assert not lm.model.training
    meta = json.loads((path / METADATA_FILE).read_text())
    assert {"package_version", "config", "features", "weights_sha256", "trained_at", "metrics"} <= set(meta)
    assert meta["features"]["items"] == data.features.items.to_list()  # item id <-> dense id


def test_weights_are_safetensors_not_pickle(saved):
    _, _, path = saved
    raw = (path / WEIGHTS_FILE).read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    assert "item_emb.weight" in header and not raw.startswith(b"\x80")  # pickle protocol marker


def test_overwrite_is_atomic_and_leaves_no_temporary_folders(saved):
    model, data, path = saved
    with torch.no_grad():
        model.item_bias.add_(1.0)
    save_model(model, data.features, path, {"protocol": "next_event"})
    assert load_model(path).protocol == "next_event"
    assert [p.name for p in path.parent.iterdir()] == ["ct"]
    assert list_model_dirs(path.parent) == [path]


def test_failed_save_keeps_the_old_folder(saved, monkeypatch):
    model, data, path = saved
    import recsys_core.registry as registry

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(registry, "save_file", boom)
    with pytest.raises(OSError):
        save_model(model, data.features, path, {})
    assert load_model(path).protocol == "next_session"
    assert [p.name for p in path.parent.iterdir()] == ["ct"]


def test_corrupt_weights_are_detected(saved):
    _, _, path = saved
    raw = bytearray((path / WEIGHTS_FILE).read_bytes())
    raw[-1] ^= 0xFF
    (path / WEIGHTS_FILE).write_bytes(bytes(raw))
    with pytest.raises(ModelFolderError, match="corrupt"):
        load_model(path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: "{not json", "not valid JSON"),
        (lambda m: json.dumps({**m, "format_version": 99}), "format"),
        (lambda m: json.dumps({**m, "model_type": "gpt5"}), "knows"),
        (lambda m: json.dumps({k: v for k, v in m.items() if k != "features"}), "lacks"),
        (lambda m: json.dumps({**m, "config": {**m["config"], "d_model": 32}}), "does not match"),
    ],
)
def test_bad_metadata_gives_a_clear_error(saved, edit, message):
    _, _, path = saved
    meta = json.loads((path / METADATA_FILE).read_text())
    (path / METADATA_FILE).write_text(edit(meta))
    with pytest.raises(ModelFolderError, match=message):
        load_model(path)


def test_missing_folder_or_files(tmp_path, saved):
    with pytest.raises(ModelFolderError, match="does not exist"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFolderError, match="missing"):
        load_model(tmp_path / "empty")
    _, _, path = saved
    (path / WEIGHTS_FILE).unlink()
    with pytest.raises(ModelFolderError, match="missing"):
        load_model(path)
    assert isinstance(ModelFolderError("x"), ValueError)  # the CLI prints ValueErrors without a traceback
