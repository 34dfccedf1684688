"""Count-based baselines: what they learn on tiny hand-built logs, the interface, save → load."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import torch

from recsys_core.context import scene_field
from recsys_core.features import Calendar, FeatureSpace
from recsys_core.models import MODEL_REGISTRY, build_model
from recsys_core.models.baselines import CoVisitation, ContextPopularity, Popularity
from recsys_core.registry import load_model, save_model
from recsys_core.sequences import SequenceData, serving_batch

torch.set_num_threads(1)
T0 = dt.datetime(2025, 11, 3, 0, 0)  # a Monday, 00:00 UTC = 08:00 in Asia/Shanghai


def make_data(rows: list[tuple[str, str, float, str]], items: list[str] | None = None) -> SequenceData:
    """rows: (user, item, hours after T0 (UTC), device); local time = UTC + 8 h."""
    frame = pd.DataFrame(
        [
            {
                "user_id": u,
                "item_id": i,
                "behavior": "pv",
                "ts": T0 + dt.timedelta(hours=h),
                "local_ts": T0 + dt.timedelta(hours=h + 8),
                "device": d,
                "channel": "home_feed",
                "location": "home",
            }
            for u, i, h, d in rows
        ]
    ).sort_values(["user_id", "ts"], kind="stable").reset_index(drop=True)
    catalogue = pd.DataFrame({"item_id": items or sorted(set(frame["item_id"])), "category": None, "price": np.nan})
    features = FeatureSpace.fit(frame, catalogue, Calendar(), [scene_field(f) for f in ("device", "channel", "location")])
    return SequenceData.from_frame(frame, features)


def fitted(model_type: str, data: SequenceData, protocol: str = "next_event", **config):
    if model_type == "context_pop":
        config.setdefault("scene_field", "device")
    model = build_model(model_type, {"n_items": data.features.n_items, "vocab_sizes": data.features.vocab_sizes(), **config})
    info = model.fit(data.split(protocol))
    return model.eval(), info


def batch_for(data: SequenceData, history_items: list[str], hour_local: int = 8, device: str = "mobile", weekend: bool = False):
    f = data.features
    n = len(history_items)
    history = {k: np.ones(n, np.int64) for k in ("behavior", "hour", "weekday", "weekend", "holiday", "promo", "gap", "device", "channel", "location")}
    history["item"] = f.items.encode(history_items)
    day = dt.datetime(2025, 11, 8 if weekend else 5, hour_local)
    return serving_batch(history, [f.encode_moment(day, {"device": device, "channel": "home_feed", "location": "home"})], max_len=20)


def item(data: SequenceData, name: str) -> int:
    return data.features.items.id(name)


def test_all_three_are_registered():
    assert {"pop", "context_pop", "covisit"} <= set(MODEL_REGISTRY)
    assert MODEL_REGISTRY["pop"] is Popularity and MODEL_REGISTRY["covisit"] is CoVisitation


def test_unknown_option_fails_with_the_allowed_names():
    with pytest.raises(ValueError, match="allowed"):
        build_model("covisit", {"n_items": 3, "windw": 4})


def test_pop_ranks_by_training_counts_and_never_sees_held_out_targets():
    # u1..u3: "a" three times, "b" twice in training; "z" appears only as a test target
    rows = []
    for k, u in enumerate(["u1", "u2", "u3"]):
        rows += [(u, "a", 1 + k, "mobile"), (u, "b", 2 + k, "mobile") if k < 2 else (u, "a", 2 + k, "mobile"), (u, "c", 3 + k, "pc"), (u, "z", 4 + k, "pc")]
    data = make_data(rows)
    model, info = fitted("pop", data)
    scores = model.score_all(batch_for(data, ["c"]))[0]
    assert scores[0] == float("-inf") and torch.isfinite(scores[1:]).all()
    assert scores[item(data, "a")] > scores[item(data, "b")] > scores[item(data, "z")]
    # "c" is every shopper's validation target: held out like "z"
    assert scores[item(data, "c")] == scores[item(data, "z")]
    assert info["train_events"] == 6


def test_context_pop_follows_the_target_hour_and_device():
    # "coffee" at 08:00 local on mobile, "laptop" at 21:00 local on pc, for many shoppers, over several weekdays
    rows = []
    for u in range(12):
        for day in range(3):
            rows += [(f"u{u}", "coffee", 24 * day + 0.1 * u, "mobile"), (f"u{u}", "laptop", 24 * day + 13 + 0.1 * u, "pc")]
        rows += [(f"u{u}", "coffee", 80, "mobile"), (f"u{u}", "tea", 81, "mobile")]  # held out
    data = make_data(rows)
    model, _ = fitted("context_pop", data, smoothing=1.0)
    coffee, laptop = item(data, "coffee"), item(data, "laptop")
    morning = model.score_all(batch_for(data, [], hour_local=8, device="mobile"))[0]
    evening = model.score_all(batch_for(data, [], hour_local=21, device="pc"))[0]
    assert morning[coffee] > morning[laptop] and evening[laptop] > evening[coffee]
    # an unknown device backs off to the hour bucket: still coffee in the morning
    unknown = model.score_all(batch_for(data, [], hour_local=8, device="watch"))[0]
    assert unknown[coffee] > unknown[laptop] and torch.isfinite(unknown[1:]).all()


def test_covisit_recommends_what_follows_the_recent_items():
    rows = []
    for u in range(8):  # everyone watches a then b, c then d; e is popular on its own
        h = 0.0
        for first, second in [("a", "b"), ("e", "e"), ("c", "d"), ("e", "x")]:
            rows += [(f"u{u}", first, h, "mobile"), (f"u{u}", second, h + 0.1, "mobile")]
            h += 5
    data = make_data(rows)
    model, info = fitted("covisit", data, decay_grid=[], recency_decay=0.5, window=1)
    after_a = model.score_all(batch_for(data, ["c", "a"]))[0]
    assert after_a.argmax().item() == item(data, "b")  # the newest item's neighbour wins
    assert after_a[item(data, "d")] > after_a[item(data, "x")]  # the older item still votes
    empty = model.score_all(batch_for(data, []))[0]
    assert empty.argmax().item() == item(data, "e") and torch.isfinite(empty[1:]).all()
    assert info["items_with_neighbors"] >= 4


def test_covisit_keeps_only_top_n_neighbours_and_tunes_decay_on_validation():
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{rng.integers(30)}", 0.1 * t, "pc") for u in range(20) for t in range(15)]
    data = make_data(rows)
    model, info = fitted("covisit", data, top_n=3)
    assert model.neighbors.shape == (data.features.n_items + 1, 3)
    assert set(info["valid_NDCG@10_by_decay"]) == {"0.3", "0.5", "0.7", "0.85", "0.95"}
    assert model.cfg.recency_decay == float(max(info["valid_NDCG@10_by_decay"], key=info["valid_NDCG@10_by_decay"].get))
    probs = model.neighbor_prob
    assert (probs.sum(dim=1) <= 1 + 1e-5).all() and (probs[:, :-1] >= probs[:, 1:]).all()


@pytest.mark.parametrize("model_type", ["pop", "context_pop", "covisit"])
def test_save_and_load_give_identical_scores(model_type, tmp_path):
    rng = np.random.default_rng(1)
    rows = [(f"u{u}", f"i{rng.integers(25)}", 0.7 * t + u, ["mobile", "pc"][t % 2]) for u in range(15) for t in range(10)]
    data = make_data(rows)
    model, _ = fitted(model_type, data, "next_session" if model_type == "context_pop" else "next_event")
    batch = batch_for(data, ["i1", "i2", "i3"], hour_local=20, device="pc")
    out = save_model(model, data.features, tmp_path / model_type, {"protocol": "next_event"})
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", "model.safetensors"]
    loaded = load_model(out)
    assert loaded.model_type == model_type
    assert torch.equal(loaded.model.score_all(batch), model.score_all(batch))
    assert loaded.model.config_dict() == model.config_dict()
