"""History augmentation (`train --augment`): crop / mask / reorder / synthetic sequences use training events only,
keep their targets, and train end to end."""

import numpy as np
import pytest

from recsys_core import augment
from recsys_core.augment import Augmenter, parse_kinds
from recsys_core.registry import load_model
from recsys_core.sequences import SequenceData
from recsys_core.store import connect
from recsys_core.train import TrainConfig, train
from tests.tiny_world import build_tiny_store


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = build_tiny_store(tmp_path_factory.mktemp("aug") / "w.duckdb")
    con = connect(path, read_only=True)
    data = SequenceData.from_store(con)
    yield path, con, data, data.split("next_event")
    con.close()


def owner_of(split, rows):
    return np.searchsorted(split.data.offsets, rows, side="right") - 1


def training_only(split, rows) -> bool:
    owner = owner_of(split, rows)
    return bool(np.all(rows < split.train_end[owner]))


def test_parse_kinds_orders_and_names_unknown_kinds():
    assert parse_kinds("reorder, crop") == ("crop", "reorder") and parse_kinds(None) == ()
    with pytest.raises(ValueError, match="--augment: unknown kind\\(s\\) shuffle; choose from crop, mask, reorder, synthetic"):
        parse_kinds("crop,shuffle")


@pytest.mark.parametrize("kind", ["crop", "mask", "reorder"])
def test_sequence_augmentations_stay_inside_one_shoppers_training_events(world, kind):
    _, _, data, split = world
    aug = Augmenter(split, (kind,), max_len=12)
    seqs = aug.sequences(np.random.default_rng(0))
    assert len(seqs) == len(aug.users) > 0
    for a in seqs:
        assert training_only(split, a.rows) and len(set(owner_of(split, a.rows).tolist())) == 1
        window = np.arange(a.rows.min(), a.rows.max() + 1)
        if kind == "crop":
            assert np.array_equal(a.rows, window) and not a.hidden.any()
        elif kind == "reorder":
            assert sorted(a.rows.tolist()) == window.tolist() and not a.hidden.any()
        else:
            assert np.array_equal(a.rows, window) and not a.hidden[-1]
    if kind == "crop":  # shorter than the window (η = 0.6)
        assert np.mean([len(a.rows) for a in seqs]) < np.mean([min(13, e - s) for s, e in zip(aug.starts[aug.users], aug.ends[aug.users])])
    if kind == "reorder":
        assert any(not np.all(np.diff(a.rows) > 0) for a in seqs)
    if kind == "mask":
        hidden = np.concatenate([a.hidden for a in seqs])
        assert 0.15 < hidden.mean() < 0.45


def test_masked_events_carry_no_input_but_stay_targets(world):
    _, _, data, split = world
    aug = Augmenter(split, ("mask",), max_len=12)
    rng = np.random.default_rng(3)
    seqs = aug.sequences(rng)
    batch = aug._batch(seqs[:4], rng, 1.0, 1.0)
    items = data.fields["item"]
    for b, a in enumerate(seqs[:4]):
        rows, hidden = a.rows[-13:], a.hidden[-13:]
        L = len(rows) - 1
        hist = batch.history["item"][b, -L:].numpy()
        tgt = batch.targets[b, -L:].numpy()
        assert np.array_equal(hist, np.where(hidden[:-1], 0, items[rows[:-1]]))
        assert np.array_equal(tgt, np.where(hidden[:-1], 0, items[rows[1:]]))  # the hidden item is the previous position's target
        assert (batch.history["item"][b, :-L] == 0).all() and (batch.targets[b, :-L] == 0).all()


def test_synthetic_histories_continue_a_short_history_with_a_similar_shopper(world):
    _, _, data, split = world
    aug = Augmenter(split, ("synthetic",), max_len=12)
    seqs = aug.sequences(np.random.default_rng(1))
    assert len(seqs) > len(aug.users) // 2
    items = data.fields["item"]
    for a in seqs:
        owners = owner_of(split, a.rows)
        assert training_only(split, a.rows)
        own = owners == owners[0]
        n_own = int(np.argmin(own)) if not own.all() else len(own)
        assert 1 <= n_own <= augment.SPARSE_EVENTS and not own[n_own:].any() and len(set(owners[n_own:].tolist())) == 1
        j = a.rows[n_own] - 1  # the similar shopper's event just before the continuation: the same item
        assert items[j] == items[a.rows[n_own - 1]] and owner_of(split, np.array([j]))[0] == owners[n_own]


def test_training_with_every_augmentation_registers_a_model(world, tmp_path):
    _, con, data, _ = world
    cfg = TrainConfig(seed=1, epochs=2, d_model=16, max_len=8, n_layers=1, batch_size=8, augment=parse_kinds("crop,mask,reorder,synthetic"))
    result = train(con, "context_transformer", "next_event", tmp_path / "aug", cfg, progress=False, data=data)
    assert result["epochs_run"] == 2
    assert load_model(tmp_path / "aug").metadata["training"]["config"]["augment"] == ["crop", "mask", "reorder", "synthetic"]
    with pytest.raises(ValueError, match="--augment applies to the networks"):
        train(con, "pop", "next_event", tmp_path / "pop", cfg, progress=False, data=data)
