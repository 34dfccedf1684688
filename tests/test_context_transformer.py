"""The context transformer: causal masking, padding, finiteness, context sensitivity, sasrec mode."""

import numpy as np
import pytest
import torch

from recsys_core.context import TIME_FIELDS
from recsys_core.models import MODEL_REGISTRY, build_model
from recsys_core.models.base import Batch
from recsys_core.models.context_transformer import ContextTransformer, ContextTransformerConfig

torch.set_num_threads(1)
N_ITEMS = 40
VOCAB = {"item": N_ITEMS + 1, "behavior": 5, "hour": 25, "weekday": 8, "weekend": 3, "holiday": 3, "promo": 3, "gap": 12,
         "device": 4, "channel": 6, "location": 5, "category": 5, "price_band": 9}
SCENE = ("device", "channel", "location")
HISTORY_FIELDS = ("item", "behavior", *TIME_FIELDS, *SCENE)
CONTEXT_FIELDS = (*TIME_FIELDS, *SCENE)


def make(seed=0, **flags) -> ContextTransformer:
    torch.manual_seed(seed)
    cfg = ContextTransformerConfig(n_items=N_ITEMS, vocab_sizes=VOCAB, max_len=10, d_model=16, n_heads=2, n_layers=2, dropout=0.2, **flags)
    model = ContextTransformer(cfg, torch.arange(N_ITEMS + 1) % 4, torch.arange(N_ITEMS + 1) % 8)
    with torch.no_grad():  # larger random weights than the init so that every input visibly matters
        for name, p in model.named_parameters():
            if "ln" not in name:
                p.normal_(0, 0.3)
        for m in model.modules():
            if isinstance(m, torch.nn.Embedding) and m.padding_idx is not None:
                m.weight[0].zero_()
    return model.eval()


def batch(B=3, T=10, pad=0, seed=1) -> Batch:
    g = torch.Generator().manual_seed(seed)
    history = {f: torch.randint(1, VOCAB[f], (B, T), generator=g) for f in HISTORY_FIELDS}
    for v in history.values():
        v[:, :pad] = 0
    context = {f: torch.randint(1, VOCAB[f], (B,), generator=g) for f in CONTEXT_FIELDS}
    return Batch(history, context)


def test_causal_masking_later_events_never_change_earlier_positions():
    model, b = make(), batch()
    h, _ = model.encode_history(b)
    for field in ("item", "hour", "device", "behavior"):
        changed = Batch({k: v.clone() for k, v in b.history.items()}, b.context)
        changed.history[field][:, 6] = (changed.history[field][:, 6] % (VOCAB[field] - 1)) + 1
        h2, _ = model.encode_history(changed)
        assert torch.allclose(h[:, :6], h2[:, :6], atol=1e-6), field
        assert not torch.allclose(h[:, 6:], h2[:, 6:]), field


def test_left_padding_does_not_change_the_scores():
    model = make()
    b = batch(T=10, pad=4)
    short = Batch({k: v[:, 4:] for k, v in b.history.items()}, b.context)  # same events, no padding
    assert torch.allclose(model.score_all(b), model.score_all(short), atol=1e-5)


def test_scores_finite_for_padding_and_empty_histories_and_column_zero_is_minus_inf():
    model = make()
    for pad in (0, 5, 10):  # 10 = a cold shopper with no history at all
        s = model.score_all(batch(pad=pad))
        assert s.shape == (3, N_ITEMS + 1)
        assert torch.isfinite(s[:, 1:]).all() and torch.isneginf(s[:, 0]).all()
    model.train()
    b = batch(pad=10)
    b.targets = torch.tensor([1, 2, 3])
    _, loss, _ = model(b)
    assert torch.isfinite(loss)


def test_attention_rows_sum_to_one_and_ignore_future_and_padding():
    model = make()
    maps = model.attention(batch(pad=3))
    assert len(maps) == 2 and maps[0].shape == (3, 2, 10, 10)
    for att in maps:
        assert torch.allclose(att.sum(-1), torch.ones(3, 2, 10), atol=1e-5)
        assert float(att.triu(diagonal=1).abs().max()) == 0.0  # no future
        assert float(att[:, :, 3:, :3].abs().max()) == 0.0  # real events never attend to padding


def test_attention_weights_match_the_fast_path():
    model, b = make(), batch(pad=2)
    fast, _ = model.encode_history(b)
    slow, maps = model.encode_history(b, need_weights=True)
    assert torch.allclose(fast, slow, atol=1e-5) and len(maps) == 2


def test_one_state_scored_under_many_contexts_matches_score_all():
    model, b = make(), batch(B=3)
    state = model.shopper_state(b)
    assert torch.allclose(model.scores_from_state(state, b.context), model.score_all(b))
    one = state.select(torch.zeros(3, dtype=torch.long))
    b0 = Batch({k: v[:1].expand(3, -1) for k, v in b.history.items()}, b.context)
    assert torch.allclose(model.scores_from_state(one, b.context), model.score_all(b0), atol=1e-5)
    with pytest.raises(TypeError, match="ShopperState"):
        model.scores_from_state(state.last, b.context)


def test_training_scores_match_serving_scores_at_the_last_position():
    """The per-position training path and the serving path compute the same scores."""
    model, b = make(), batch(B=2, pad=3)
    served = model.score_all(b)
    train_b = Batch(b.history, {k: v[:, None].expand(-1, 10).clone() for k, v in b.context.items()})
    train_b.targets = torch.zeros(2, 10, dtype=torch.long)
    train_b.targets[:, -1] = torch.tensor([4, 7])
    scores, _, _ = model(train_b)
    assert torch.allclose(scores[:, 1:], served[:, 1:], atol=1e-5)


def test_repeat_head_can_bring_back_history_items():
    model, b = make(), batch(B=1)
    with torch.no_grad():
        model.repeat.gate.bias.fill_(20.0)  # all mass on the pointer
    scores = model.score_all(b)[0]
    top = set(torch.topk(scores, 10).indices.tolist())
    assert top >= set(b.history["item"][0].tolist()) or set(b.history["item"][0].tolist()) >= top
    assert torch.isfinite(scores[1:]).all()


def test_target_context_changes_the_ranking_but_not_for_sasrec():
    b = batch()
    other = Batch(b.history, {**b.context, "hour": (b.context["hour"] + 11) % 24 + 1, "device": b.context["device"] % 3 + 1})
    ct = make()
    assert not torch.allclose(ct.score_all(b), ct.score_all(other))
    sas = make(use_time=False, use_scene=False)
    assert sas.model_type == "sasrec" and ct.model_type == "context_transformer"
    assert torch.equal(sas.score_all(b), sas.score_all(other))
    assert not hasattr(sas, "fusion") and len(sas.context_emb) == 0 and len(sas.history_emb) == 0


def test_registry_builds_both_modes_from_config():
    ct = make()
    again = build_model("context_transformer", ct.config_dict())
    assert again.config_dict() == ct.config_dict()
    sas = build_model("sasrec", ct.config_dict())
    assert sas.model_type == "sasrec" and MODEL_REGISTRY["sasrec"] is ContextTransformer


def test_recommend_respects_exclusions():
    model, b = make(), batch(B=2)
    _, top = model.recommend(b, k=5)
    _, top2 = model.recommend(b, k=5, exclude=[top[0, :2].tolist(), []])
    assert not set(top[0, :2].tolist()) & set(top2[0].tolist()) and torch.equal(top[1], top2[1])
    assert 0 not in top.flatten().tolist()


def test_training_batches_learn_a_context_effect():
    """Targets depend only on the target hour: the context path must learn it, sasrec cannot."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    def make_batch():
        B, T = 32, 10
        history = {f: torch.from_numpy(rng.integers(1, VOCAB[f], (B, T))) for f in HISTORY_FIELDS}
        ctx = {f: torch.from_numpy(rng.integers(1, VOCAB[f], (B, T))) for f in CONTEXT_FIELDS}
        targets = (ctx["hour"] % 5) + 1  # item 1..5 decided by the hour of the moment
        return Batch(history, ctx, targets)

    results = {}
    for flags in ({}, {"use_time": False, "use_scene": False}):
        torch.manual_seed(0)
        cfg = ContextTransformerConfig(n_items=N_ITEMS, vocab_sizes=VOCAB, max_len=10, d_model=16, n_heads=2, n_layers=1, dropout=0.0, **flags)
        model = ContextTransformer(cfg)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(60):
            opt.zero_grad()
            loss = model.loss(make_batch())
            loss.backward()
            opt.step()
        with torch.no_grad():
            results[model.model_type] = float(model.loss(make_batch()))
    assert results["context_transformer"] < 1.0 < np.log(5) - 0.2 < results["sasrec"]


def test_config_rejects_bad_shapes():
    with pytest.raises(AssertionError, match="divisible"):
        ContextTransformerConfig(n_items=3, vocab_sizes=VOCAB, d_model=10, n_heads=3)
    with pytest.raises(AssertionError, match="vocab_sizes"):
        ContextTransformerConfig(n_items=3, vocab_sizes={"behavior": 5})


def test_gradients_stay_finite_with_cold_start_positions():
    model = make()
    model.train()
    b = batch(B=2, T=10, pad=6)
    b.context = {k: v[:, None].expand(-1, 10).clone() for k, v in b.context.items()}
    b.targets = torch.zeros(2, 10, dtype=torch.long)
    b.targets[:, 5:] = torch.randint(1, N_ITEMS, (2, 5))  # position 5 is a cold start (no history before it)
    model.loss(b).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
