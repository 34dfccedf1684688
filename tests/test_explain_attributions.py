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
    scaled_layers,
    score,
)
from recsys_core.explain.cases import trim_padding
from tests.explain_models import tiny_batch, tiny_model

torch.set_num_threads(1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_completeness_gap_is_small(seed):
    model, batch = tiny_model(seed), tiny_batch(8, pad=2, seed=seed)
    a = integrated_gradients(model, batch, item=5, n_steps=50)
    diff = a.score - a.baseline_score
    assert abs(diff) > 1e-3
    assert abs(a.completeness_gap) <= 0.05 * abs(diff), (a.completeness_gap, diff)
    assert a.total == pytest.approx(a.history.sum() + sum(a.context.values()))


def test_score_is_the_models_score_and_baseline_is_all_unknown():
    model, batch = tiny_model(), tiny_batch(8, pad=3)
    assert score(model, batch, 7) == pytest.approx(float(model.score_all(batch).detach()[0, 7]), abs=1e-5)
    # the baseline: every embedding at its id-0 row, which is what ids of 0 give without changing the mask
    zero = {layer.module: torch.zeros(1) for layer in input_layers(model)}
    with torch.no_grad(), scaled_layers(zero):
        expected = float(model.score_all(batch).detach()[0, 7])
    assert baseline_score(model, batch, 7) == pytest.approx(expected, abs=1e-5)


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
    item_sum = parts["history.item"] + parts["history.category"] + parts["history.price_band"]
    np.testing.assert_allclose(a.history[:, HISTORY_PARTS.index("item")], item_sum)
    assert a.vector().shape == (5 * 4 + 9,)


def test_sasrec_mode_has_history_parts_only():
    model, batch = tiny_model(use_time=False, use_scene=False), tiny_batch(6)
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
