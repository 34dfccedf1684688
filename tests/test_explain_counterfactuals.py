"""Cases from the store, counterfactual scenarios and history edits (tiny random model, small store)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import torch

from recsys_core.context import Scenario
from recsys_core.explain import explain
from recsys_core.explain.cases import build_case, with_context
from recsys_core.models.base import Batch
from recsys_core.explain.counterfactuals import (
    append_event,
    history_counterfactuals,
    ranks_of,
    remove_columns,
    scenario_counterfactuals,
    scenario_counterfactuals_many,
    score_contexts,
    shopper_state,
    single_changes,
)
from recsys_core.store import connect
from tests.app_db import build_small_store
from tests.explain_models import tiny_batch, tiny_loaded

torch.set_num_threads(1)
MOMENT = Scenario(dt.datetime(2024, 11, 12, 8, 0), {"device": "mobile", "channel": "push", "location": "commute"})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    con = connect(build_small_store(tmp_path_factory.mktemp("cf") / "small.duckdb"), read_only=True)
    yield con
    con.close()


def test_case_reads_the_served_history(store):
    from recsys_core import recommend

    loaded = tiny_loaded()
    case = build_case(loaded, store, "u0", "i3", MOMENT)
    assert len(case.events) == loaded.model.history_len == case.batch.length
    assert case.events["ts"].is_monotonic_increasing and "title" in case.events and "category_zh" in case.events
    assert case.item == loaded.features.items.id("i3") and case.context["hour"] == 9 and case.offset == 0
    # the explained score is the served score
    served = recommend.recommend(loaded, store, "u0", MOMENT, k=30)
    assert float(loaded.model.score_all(case.batch).detach()[0, case.item]) == pytest.approx(
        float(served.set_index("item_id").loc["i3", "score"]), abs=1e-5)
    before = dt.datetime(2024, 11, 12, 0, 0)  # 08:00 Shanghai = 00:00 UTC
    past = build_case(loaded, store, "u0", "i3", MOMENT, history_before=before)
    assert past.events["ts"].max() < before <= case.events["ts"].max()
    with pytest.raises(ValueError, match="unknown shopper"):
        build_case(loaded, store, "nobody", "i3", MOMENT)
    with pytest.raises(ValueError, match="catalogue"):
        build_case(loaded, store, "u0", "i999", MOMENT)


def test_cold_shopper_gets_one_padding_column(store):
    loaded = tiny_loaded()
    case = build_case(loaded, store, "u0", "i3", MOMENT, history_before=dt.datetime(2024, 1, 1))
    assert len(case.events) == 0 and case.batch.length == 1 and case.offset == 1
    assert history_counterfactuals(loaded.model, case)[0].kind in ("add_cart", "add_buy")


def test_scenario_counterfactuals_agree_with_scoring_each_moment(store):
    from recsys_core import recommend

    loaded = tiny_loaded()
    case = build_case(loaded, store, "u0", "i3", MOMENT)
    model = loaded.model
    cf = scenario_counterfactuals(model, case, k=5)
    full = model.score_all(case.batch).detach()
    assert cf.rank == int(ranks_of(full, case.item)[0])
    # the hour profile: each hour scored on its own
    for hour in (0, 8, 20):
        ctx = case.context_for(case.scenario.at_hour(hour))
        b = with_context(case.batch, [ctx])
        assert cf.hour_ranks[hour] == int(ranks_of(model.score_all(b).detach(), case.item)[0])
    if cf.smallest is not None:
        assert (cf.smallest.rank <= 5) != cf.in_top_k
        costs = [c.cost for c in cf.candidates if cf.crosses(c)]
        assert cf.smallest.cost == min(costs)
    singles = single_changes(case)
    assert {next(iter(c.changes)) for c in singles} == {"hour", "weekday", "promotion", "device", "channel", "location"}
    assert len(singles) == 23 + 6 + 1 + 2 + 4 + 3
    # each evaluated change is ranked as `recommend` ranks the changed scenario
    evaluated = [c for c in cf.candidates if c.size == 1]
    assert len(evaluated) == len(singles)
    for change in evaluated[::5]:
        served = recommend.recommend(loaded, store, "u0", change.scenario, k=30).set_index("item_id")
        assert change.rank == int(served.loc["i3", "rank"]), change.changes


def test_pairs_are_scored_as_the_scenario_both_changes_make(store):
    loaded = tiny_loaded()
    # 1.5 hours after u0's latest event: moving the hour and the day moves the time since it (negative → 0)
    after = MOMENT.replace(at=dt.datetime(2024, 11, 17, 22, 30))
    model, case = loaded.model, build_case(loaded, store, "u0", "i3", after)
    cf = scenario_counterfactuals(model, case, k=10_000)  # every item in the top k: no single change crosses, pairs are tried
    singles = single_changes(case)
    pairs = [c for c in cf.candidates if c.size == 2]
    fields = [c.field for c in singles]
    assert len(pairs) == sum(a != b for i, a in enumerate(fields) for b in fields[i + 1 :])
    gaps = set()
    for c in pairs:  # the base ids updated by both diffs, the gap recomputed: the pair's own moment
        ctx = case.context_for(c.scenario)
        assert {**case.context, **c.diff} == ctx, c.changes
        gaps.add(ctx["gap"])
        alone = model.score_all(with_context(case.batch, [ctx])).detach()
        assert c.rank == int(ranks_of(alone, case.item)[0]) and c.score == pytest.approx(float(alone[0, case.item]), abs=1e-5)
    assert len(gaps) > 2 and 0 in gaps


def test_a_shared_shopper_state_gives_the_same_numbers(store):
    """`explain_items` encodes the history once for the scenario counterfactuals, the history edits' base and
    the integrated gradients' raw scores: each must equal what it computes on its own."""
    from recsys_core.explain.attributions import integrated_gradients_many

    loaded = tiny_loaded()
    model, case = loaded.model, build_case(loaded, store, "u0", "i3", MOMENT)
    state = shopper_state(model, case.batch)
    items = [case.item, loaded.features.items.id("i5")]
    for k in (5, 10_000):
        alone = scenario_counterfactuals_many(model, case, items, k)
        shared = scenario_counterfactuals_many(model, case, items, k, state=state)
        assert [[(c.changes, c.rank, c.score) for c in r.candidates] for r in shared] == \
            [[(c.changes, c.rank, c.score) for c in r.candidates] for r in alone]
    assert [e.as_dict() for e in history_counterfactuals(model, case, state=state)] == [e.as_dict() for e in history_counterfactuals(model, case)]
    assert [a.item_score for a in integrated_gradients_many(model, case.batch, items, 4, state=state)] == \
        [a.item_score for a in integrated_gradients_many(model, case.batch, items, 4)]


def test_fields_the_model_does_not_read_are_neither_changed_nor_attributed(store):
    read = ("hour", "weekday", "weekend", "holiday", "promo", "gap", "device", "location")
    loaded = tiny_loaded(context_fields=read)
    case = build_case(loaded, store, "u0", "i3", MOMENT)
    assert case.ignored_fields == ("channel",) and case.scene_fields_read == ("device", "location")
    assert "channel" not in {c.field for c in single_changes(case)}
    out = explain(loaded, store, "u0", "i3", MOMENT, k=5, n_steps=20)
    assert out["ignored_fields"] == ["channel"] and out["context_fields"] == list(read)
    assert "scene.channel" not in out["shapley"]["values"] and "context.channel" not in {r["feature"] for r in out["attributions"]}
    assert "channel" not in out["counterfactuals"]["per_field"]


def test_score_contexts_equals_scoring_each_context_alone():
    model, batch = tiny_loaded().model, tiny_batch(8, pad=2)
    contexts = [{"hour": h, "weekday": 3, "device": 1 + h % 3} for h in (1, 9, 21)]
    batched = score_contexts(model, batch, contexts)
    for row, ctx in enumerate(contexts):
        alone = model.score_all(with_context(batch, [ctx])).detach()
        torch.testing.assert_close(batched[row, 1:], alone[0, 1:], atol=1e-5, rtol=1e-5)


def test_history_edits(store):
    loaded = tiny_loaded()
    case = build_case(loaded, store, "u0", "i3", MOMENT)
    edits = history_counterfactuals(loaded.model, case)
    assert [e.delta_score for e in edits] == sorted(e.delta_score for e in edits)
    removed = {e.row: e for e in edits if e.kind == "remove"}
    assert set(removed) == set(range(len(case.events)))
    r = len(case.events) - 1  # removing the newest event = scoring the history without it
    shorter = Batch({k: v[:, :-1] for k, v in case.batch.history.items()}, case.batch.context)
    assert removed[r].score == pytest.approx(float(loaded.model.score_all(shorter).detach()[0, case.item]), abs=1e-5)
    add = next(e for e in edits if e.kind == "add_buy")
    longer = append_event(case.batch, {"item": case.item, "behavior": case.features.behavior.id("buy"), **case.context, "gap": 2})
    assert longer.length == case.batch.length + 1 and add.rank >= 1


def test_remove_columns_left_pads():
    batch = tiny_batch(5)
    out = remove_columns(batch, [[0], [4], [1, 3]])
    item = batch.history["item"][0]
    assert out.history["item"][0].tolist() == [0] + item[1:].tolist()
    assert out.history["item"][1].tolist() == [0] + item[:4].tolist()
    assert out.history["item"][2].tolist() == [0, 0, int(item[0]), int(item[2]), int(item[4])]


def test_explain_returns_the_design_json(store):
    out = explain(tiny_loaded(), store, "u0", "i3", MOMENT, k=5, n_steps=20)
    for key in ("score", "baseline_score", "attributions", "completeness_gap", "shapley", "reason"):
        assert key in out
    assert set(out["shapley"]) >= {"base_value", "values"}
    assert list(out["shapley"]["values"])[-7:] == ["hour", "weekday", "promotion", "recency", "scene.device", "scene.channel", "scene.location"]
    assert {g for g in out["shapley"]["values"] if g.startswith("history")} <= {"history_item", "history_category", "history_other"}
    assert out["explained"] == "log_prob" and out["ignored_fields"] == []
    assert abs(sum(out["shapley"]["values"].values()) - (out["score"] - out["shapley"]["base_value"])) <= 1e-4
    assert all(set(r) >= {"feature", "value"} for r in out["attributions"])
    assert out["attributions"][-1]["feature"] == "context.location"
    total = sum(r["value"] for r in out["attributions"])
    assert total - (out["score"] - out["baseline_score"]) == pytest.approx(out["completeness_gap"], abs=1e-6)
    assert isinstance(out["reason"], str) and out["reason_zh"] and out["model_version"] == "tiny-0"
    import json

    json.dumps(out)


def test_data_without_scene_fields(tmp_path):
    """Like the Taobao sample: time only. No scene group, change or attribution; the reason still reads."""
    from recsys_core.context import TIME_FIELDS
    from recsys_core.registry import LoadedModel
    from tests.explain_models import tiny_features, tiny_model

    con = connect(build_small_store(tmp_path / "plain.duckdb", scene=False), read_only=True)
    try:
        model = tiny_model(history_fields=TIME_FIELDS, context_fields=TIME_FIELDS)
        features = tiny_features()
        features.scene_fields, features.scene = [], {}
        features.item_category, features.item_price_band = model.item_category.numpy(), model.item_price_band.numpy()
        loaded = LoadedModel(model, features, {"model_type": "context_transformer", "version": "plain", "context_fields": list(TIME_FIELDS)}, None)
        out = explain(loaded, con, "u0", "i3", Scenario(dt.datetime(2024, 11, 18, 8, 0)), k=5, n_steps=20)
    finally:
        con.close()
    assert not [g for g in out["shapley"]["values"] if g.startswith("scene.")] and out["ignored_fields"] == []
    assert set(out["counterfactuals"]["per_field"]) == {"hour", "weekday", "promotion"}
    assert out["reason"].startswith("Ranked") and out["reason"].endswith(".") and "i3" not in out["reason"]
    assert abs(sum(out["shapley"]["values"].values()) - (out["score"] - out["shapley"]["base_value"])) <= 1e-4
