"""Attention maps: proper distributions over past, real events only; rollout likewise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys_core.explain.attention import attention_maps
from tests.explain_models import tiny_batch, tiny_model

torch.set_num_threads(1)


@pytest.mark.parametrize("pad", [0, 3, 7])
def test_rows_sum_to_one_with_no_weight_on_future_or_padding(pad):
    model = tiny_model(n_layers=3, n_heads=4)
    maps = attention_maps(model, tiny_batch(8, pad=pad))
    w, valid = maps.weights, maps.valid
    assert w.shape == (3, 4, 8, 8) and maps.n_layers == 3 and maps.n_heads == 4
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=1e-6)
    future = np.triu(np.ones((8, 8), bool), k=1)
    assert np.all(w[..., future] == 0)
    for q in np.flatnonzero(valid):
        assert np.all(w[:, :, q, ~valid] == 0), "a real event attends to padding"
    for q in np.flatnonzero(~valid):  # padding attends only to itself (never NaN)
        np.testing.assert_allclose(w[:, :, q, q], 1.0)
    target = maps.target()
    assert target.shape == (3, 4, 8) and np.all(target[:, :, ~valid] == 0)


def test_rollout_is_a_distribution_over_real_events():
    maps = attention_maps(tiny_model(), tiny_batch(9, pad=4))
    r = maps.rollout()
    assert r.sum() == pytest.approx(1.0)
    assert np.all(r >= 0) and np.all(r[~maps.valid] == 0)


def test_rollout_of_uniform_attention_by_hand():
    """Two positions, one layer attending half/half from the last: rollout = 0.5·[.5, .5] + 0.5·[0, 1]."""
    from recsys_core.explain.attention import AttentionMaps

    w = np.array([[[[1.0, 0.0], [0.5, 0.5]]]])  # (L=1, H=1, 2, 2)
    r = AttentionMaps(w, np.array([True, True])).rollout()
    np.testing.assert_allclose(r, [0.25, 0.75])


def test_attention_does_not_change_the_scores():
    model, batch = tiny_model(), tiny_batch(8, pad=2)
    before = model.score_all(batch).detach().clone()
    attention_maps(model, batch)
    assert torch.equal(model.score_all(batch), before) and not model.training
