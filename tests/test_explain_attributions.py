"""Integrated gradients on the embedding layers: completeness, padding, ignored inputs, sasrec mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys_core.explain.attributions import (
    HISTORY_PARTS,
    baseline_score,
    input_layers,
    integrated_gradients,
    integrated_gradients_many,
    private_copy,
    raw_score,
    scaled_layers,
    score,
    state_scores,
)
from recsys_core.models.base import Batch
from recsys_core.explain.cases import trim_padding
from tests.explain_models import tiny_batch, tiny_model

torch.set_num_threads(1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_completeness_gap_is_small(seed):
    # weights of std 0.3: a random network with std 0.5 has a far sharper softmax than a trained one, and
    # its log-probability path needs hundreds of steps (the bundled model is checked in test_explain_faithfulness)
    model, batch = tiny_model(seed, std=0.3), tiny_batch(8, pad=2, seed=seed)
    a = integrated_gradients(model, batch, item=5, n_steps=50)
    diff = a.score - a.baseline_score
    assert abs(diff) > 1e-3
    assert abs(a.completeness_gap) <= 0.05 * abs(diff), (a.completeness_gap, diff)
    assert a.total == pytest.approx(a.history.sum() + sum(a.context.values()))


def test_score_is_the_log_probability_and_baseline_is_all_unknown():
    model, batch = tiny_model(), tiny_batch(8, pad=3)
    scores = model.score_all(batch).detach()[0]
    assert raw_score(model, batch, 7) == pytest.approx(float(scores[7]), abs=1e-5)
    assert score(model, batch, 7) == pytest.approx(float(torch.log_softmax(scores, 0)[7]), abs=1e-5)
    # the baseline: every embedding at its id-0 row (what ids of 0 give) and the repeat head's item match off
    copy = private_copy(model)
    zero = {layer.module: torch.zeros(1) for layer in input_layers(copy)}
    with torch.no_grad(), scaled_layers(zero):
        state = copy.shopper_state(batch)
        expected = torch.log_softmax(state_scores(copy, state, torch.zeros(1, dtype=torch.long), batch.context, torch.zeros(1, 8)), 1)[0, 7]
    assert baseline_score(model, batch, 7) == pytest.approx(float(expected), abs=1e-5)


def test_the_baseline_does_not_know_which_items_the_history_holds():
    """A repeat item's boost comes from matching history items by id; at the baseline nothing about the
    history is known, so the baseline is the same whichever items the events were about — and the boost
    is credited to the events (the item part of the history)."""
    model, batch = tiny_model(), tiny_batch(8, pad=2)
    item = int(batch.history["item"][0, -1])
    other = dict(batch.history, item=torch.where(batch.history["item"] > 0, (batch.history["item"] % 29) + 1, 0))
    swapped = Batch(other, batch.context)
    assert baseline_score(model, batch, item) == pytest.approx(baseline_score(model, swapped, item), abs=1e-5)
    a = integrated_gradients(model, batch, item)
    assert np.abs(a.layers["history.item_match"]).sum() > 1e-3  # the repeat head's match is attributed, to events


@pytest.mark.parametrize("flags", [{}, {"use_repeat": False}, {"use_time": False, "use_scene": False}])
def test_state_scores_are_the_models_scores(flags):
    model, batch = tiny_model(**flags), tiny_batch(8, pad=2)
    contexts = Batch({k: v.expand(3, -1) for k, v in batch.history.items()},
                     {k: torch.stack([v[0], (v[0] % 2) + 1, v[0]]) for k, v in batch.context.items()})
    with torch.no_grad():
        reference = model.scores_from_state(model.shopper_state(contexts), contexts.context)
        shared = state_scores(model, model.shopper_state(batch), torch.zeros(3, dtype=torch.long), contexts.context)
        per_row = state_scores(model, model.shopper_state(contexts), torch.arange(3), contexts.context, torch.ones(3, 8))
    torch.testing.assert_close(shared, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(per_row, reference, atol=1e-5, rtol=1e-5)


def test_batched_items_equal_one_at_a_time():
    model, batch = tiny_model(), tiny_batch(8, pad=1)
    many = integrated_gradients_many(model, batch, [3, 11, 20], n_steps=20)
    for item, a in zip((3, 11, 20), many):
        b = integrated_gradients(model, batch, item, n_steps=20)
        assert a.score == pytest.approx(b.score, abs=1e-5) and a.baseline_score == pytest.approx(b.baseline_score, abs=1e-5)
        np.testing.assert_allclose(a.history, b.history, atol=1e-4)
        assert a.context == pytest.approx(b.context, abs=1e-4)


def test_padding_gets_nothing_and_trimming_changes_nothing():
    model, padded = tiny_model(), tiny_batch(10, pad=4)
    a = integrated_gradients(model, padded, 3)
    assert np.all(a.history[:4] == 0) and not a.valid[:4].any() and a.valid[4:].all()
    b = integrated_gradients(model, trim_padding(padded), 3)
    assert b.history.shape == (6, len(HISTORY_PARTS))
    assert b.score == pytest.approx(a.score, abs=1e-5)
    np.testing.assert_allclose(b.history, a.history[4:], atol=1e-4)
    assert b.context == pytest.approx(a.context, abs=1e-4)


def test_an_input_the_model_ignores_gets_zero():
    model, batch = tiny_model(), tiny_batch(6)
    with torch.no_grad():
        model.context_emb["channel"].weight.zero_()
        model.history_emb["device"].weight.zero_()
    a = integrated_gradients(model, batch, 2)
    assert a.context["channel"] == 0.0
    assert np.allclose(a.layers["history.device"], 0.0)
    assert abs(a.context["hour"]) > 1e-4


def test_every_input_is_attributed_in_its_part():
    model, batch = tiny_model(), tiny_batch(5)
    a = integrated_gradients(model, batch, 1)
    assert set(a.context) == {"hour", "weekday", "weekend", "holiday", "promo", "gap", "device", "channel", "location"}
    parts = {name: np.asarray(v) for name, v in a.layers.items() if name.startswith("history.")}
    time_sum = sum(parts[f"history.{f}"] for f in ("hour", "weekday", "weekend", "holiday", "promo", "gap"))
    np.testing.assert_allclose(a.history[:, HISTORY_PARTS.index("time")], time_sum)
    item_sum = parts["history.item"] + parts["history.category"] + parts["history.price_band"] + parts["history.item_match"]
    np.testing.assert_allclose(a.history[:, HISTORY_PARTS.index("item")], item_sum)
    assert a.vector().shape == (5 * 4 + 9,)


def test_sasrec_mode_has_history_parts_only():
    model, batch = tiny_model(use_time=False, use_scene=False, std=0.3), tiny_batch(6)
    a = integrated_gradients(model, batch, 4)
    assert a.context == {}
    assert np.all(a.history[:, HISTORY_PARTS.index("time")] == 0) and np.all(a.history[:, HISTORY_PARTS.index("scene")] == 0)
    assert abs(a.completeness_gap) <= 0.05 * abs(a.score - a.baseline_score)


def test_baselines_are_not_explainable():
    from recsys_core.explain.attributions import check_explainable
    from recsys_core.models import build_model

    with pytest.raises(ValueError, match="context_transformer or sasrec"):
        check_explainable(build_model("pop", {"n_items": 3}))


def test_explanations_never_hook_the_served_model():
    """Hooks on a shared module act on every thread's forward pass: explanations hook a private copy,
    so another session scoring with the same model meanwhile gets exactly its own scores."""
    import threading

    from recsys_core.explain.shapley import shapley_values

    model, batch = tiny_model(), tiny_batch(8, pad=2)
    served = tiny_batch(8, seed=7)
    reference = model.score_all(served).detach().clone()
    errors: list[BaseException] = []

    def explain_loop():
        try:
            for _ in range(3):
                integrated_gradients(model, batch, 5, n_steps=20)
                shapley_values(model, batch, 5)
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    worker = threading.Thread(target=explain_loop)
    worker.start()
    while worker.is_alive():
        with torch.no_grad():
            assert torch.equal(model.score_all(served), reference)
        assert not any(m._forward_hooks for m in model.modules())
    worker.join()
    assert not errors, errors
