"""Shapley values over feature groups: efficiency, the shared baseline, dummy groups, closed-form games."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys_core.explain.attributions import (
    ITEM_MATCH,
    explained_values,
    input_layers,
    integrated_gradients,
    private_copy,
    scaled_layers,
    state_scores,
)
from recsys_core.explain.shapley import (
    FeatureGroup,
    all_coalitions,
    coalition_values,
    event_groups,
    exact_from_values,
    field_groups,
    item_event_groups,
    shapley_values,
    shapley_values_many,
)
from tests.explain_models import tiny_batch, tiny_model

torch.set_num_threads(1)


@pytest.mark.parametrize("seed", [0, 1])
def test_values_sum_to_score_minus_baseline(seed):
    model, batch = tiny_model(seed), tiny_batch(8, pad=2, seed=seed)
    ig = integrated_gradients(model, batch, 5)
    groups = field_groups(model)
    assert [g.name for g in groups] == ["history_items", "history_behaviour", "history_time", "history_scene", "hour", "weekday",
                                        "promotion", "recency", "scene.device", "scene.channel", "scene.location"]
    for gs in (groups, None):  # by input kind, and the default: by what the events are about
        s = shapley_values(model, batch, 5, gs)
        n = len(s.values)
        assert s.exact and s.n_evaluations == 2 ** n and n == (11 if gs else len(item_event_groups(model, batch, 5)))
        assert sum(s.values.values()) == pytest.approx(s.score - s.base_value, abs=1e-4)
        assert s.score == pytest.approx(ig.score, abs=1e-4)
        assert s.base_value == pytest.approx(ig.baseline_score, abs=1e-4)


def test_item_event_groups_split_the_history_by_what_it_is_about():
    model, batch = tiny_model(), tiny_batch(10, pad=1, seed=3)
    ids = batch.history["item"][0].numpy()
    item = int(ids[-1])
    groups = {g.name: g for g in item_event_groups(model, batch, item)}
    same = set(np.flatnonzero(ids == item))
    assert set(groups["history_item"].positions) == same
    cat = model.item_category.numpy()
    if "history_category" in groups:
        assert all(cat[ids[p]] == cat[item] and ids[p] != item for p in groups["history_category"].positions)
    covered = [p for name in ("history_item", "history_category", "history_other") if name in groups for p in groups[name].positions]
    assert sorted(covered) == list(np.flatnonzero(ids > 0))  # every event exactly once
    assert ITEM_MATCH in groups["history_item"].layers  # the repeat head's match goes with the events
    assert [n for n in groups if not n.startswith("history")] == ["hour", "weekday", "promotion", "recency", "scene.device",
                                                                   "scene.channel", "scene.location"]


def test_several_items_in_one_pass_equal_one_at_a_time():
    model, batch = tiny_model(), tiny_batch(9, pad=1)
    items = [2, int(batch.history["item"][0, -1]), 17]
    many = shapley_values_many(model, batch, items, [item_event_groups(model, batch, i) for i in items])
    for item, s in zip(items, many):
        one = shapley_values(model, batch, item)
        assert s.values == pytest.approx(one.values, abs=1e-5) and s.base_value == pytest.approx(one.base_value, abs=1e-5)


def test_batched_coalitions_match_one_at_a_time():
    model, batch = tiny_model(), tiny_batch(7, pad=1)
    groups = field_groups(model)
    masks = all_coalitions(len(groups))[[0, 3, 200, 513, 777, 1500, 2047]]
    batched = coalition_values(model, batch, 9, groups, masks)
    copy = private_copy(model)
    layers = {layer.name: layer.module for layer in input_layers(copy)}
    for row, value in zip(masks, batched):
        scales = {name: torch.full((1,), float(keep)) for g, keep in zip(groups, row) for name in g.layers}
        with torch.no_grad(), scaled_layers({layers[n]: v for n, v in scales.items()}):
            state = copy.shopper_state(batch)
            scores = state_scores(copy, state, torch.zeros(1, dtype=torch.long), batch.context, scales[ITEM_MATCH].expand(1, 7))
        assert value == pytest.approx(float(explained_values(scores, torch.tensor([9]))[0]), abs=1e-5)
    # the coalition of every group is the model's own log-probability
    full = torch.log_softmax(model.score_all(batch).detach(), 1)[0, 9]
    assert batched[-1] == pytest.approx(float(full), abs=1e-5)


def test_a_group_the_model_ignores_gets_zero():
    model, batch = tiny_model(), tiny_batch(6)
    with torch.no_grad():
        model.context_emb["device"].weight.zero_()
    s = shapley_values(model, batch, 2)
    assert s.values["scene.device"] == pytest.approx(0.0, abs=1e-6)


def test_a_field_the_model_does_not_read_has_no_group():
    model = tiny_model(context_fields=("hour", "weekday", "weekend", "holiday", "promo", "gap", "device", "location"))
    names = [g.name for g in item_event_groups(model, tiny_batch(6), 2)]
    assert "scene.channel" not in names and "scene.device" in names and "scene.location" in names


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
