"""Shapley values over feature groups: efficiency, the shared baseline, dummy groups, closed-form games."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys_core.explain.attributions import input_layers, integrated_gradients, item_scores, scaled_layers
from recsys_core.explain.shapley import (
    FeatureGroup,
    all_coalitions,
    coalition_values,
    event_groups,
    exact_from_values,
    field_groups,
    shapley_values,
)
from tests.explain_models import tiny_batch, tiny_model

torch.set_num_threads(1)


@pytest.mark.parametrize("seed", [0, 1])
def test_values_sum_to_score_minus_baseline(seed):
    model, batch = tiny_model(seed), tiny_batch(8, pad=2, seed=seed)
    s = shapley_values(model, batch, 5)
    n = len(field_groups(model))
    assert n == 11 and s.exact and s.n_evaluations == 2 ** n and len(s.values) == n  # incl. recency
    assert sum(s.values.values()) == pytest.approx(s.score - s.base_value, abs=1e-4)
    ig = integrated_gradients(model, batch, 5)
    assert s.score == pytest.approx(ig.score, abs=1e-4)
    assert s.base_value == pytest.approx(ig.baseline_score, abs=1e-4)


def test_batched_coalitions_match_one_at_a_time():
    model, batch = tiny_model(), tiny_batch(7, pad=1)
    groups = field_groups(model)
    masks = all_coalitions(len(groups))[[0, 3, 200, 513, 777, 1500, 2047]]
    batched = coalition_values(model, batch, 9, groups, masks)
    layers = {layer.name: layer.module for layer in input_layers(model)}
    for row, value in zip(masks, batched):
        scales = {layers[name]: torch.full((1,), float(keep)) for g, keep in zip(groups, row) for name in g.layers}
        with torch.no_grad(), scaled_layers(scales):
            assert value == pytest.approx(float(item_scores(model, batch, torch.tensor([9]))[0]), abs=1e-5)


def test_a_group_the_model_ignores_gets_zero():
    model, batch = tiny_model(), tiny_batch(6)
    with torch.no_grad():
        model.context_emb["device"].weight.zero_()
    s = shapley_values(model, batch, 2)
    assert s.values["device"] == pytest.approx(0.0, abs=1e-6)


def test_closed_form_games():
    # additive game: v(S) = sum of members' weights -> φ = weights
    w = np.array([1.0, -2.0, 0.5])
    masks = all_coalitions(3)
    np.testing.assert_allclose(exact_from_values(masks @ w, 3), w)
    # unanimity game of players 0 and 1 (v = 1 only when both are in): 1/2 each, 0 for the dummy
    v = (masks[:, 0] & masks[:, 1]).astype(float)
    np.testing.assert_allclose(exact_from_values(v, 3), [0.5, 0.5, 0.0])


def test_groups_must_cover_every_input_once():
    model, batch = tiny_model(), tiny_batch(5)
    groups = field_groups(model)
    with pytest.raises(ValueError, match="exactly once"):
        shapley_values(model, batch, 1, groups[1:])
    with pytest.raises(ValueError, match="does not have"):
        shapley_values(model, batch, 1, groups + [FeatureGroup("nope", ("context.nope",))])


def test_many_groups_use_shap_and_keep_efficiency():
    model, batch = tiny_model(max_len=16), tiny_batch(14, pad=1)
    groups = event_groups(model, batch, n_events=10)  # 1 older + 10 events + 7 context = 18 groups
    assert len(groups) == 18
    s = shapley_values(model, batch, 4, groups, max_evals=400)
    assert not s.exact
    assert sum(s.values.values()) == pytest.approx(s.score - s.base_value, abs=1e-4)
    exact = shapley_values(model, batch, 4)
    assert s.base_value == pytest.approx(exact.base_value, abs=1e-5)
