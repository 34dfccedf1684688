"""Plain-language reasons, English and Chinese, from hand-made explanations with known answers."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from recsys_core.context import Scenario, SceneField
from recsys_core.explain.cases import Case, encode_case_batch, moment_context
from recsys_core.explain.counterfactuals import ScenarioChange, ScenarioCounterfactuals
from recsys_core.explain.reasons import build_reason, category_name, cited_groups, count_words, group_label, ordinal, recency_text
from recsys_core.explain.shapley import ShapleyValues
from recsys_core.features import Vocabulary
from tests.explain_models import CONTEXT_FIELDS, tiny_features

MOMENT = Scenario(dt.datetime(2025, 12, 9, 8, 0), {"device": "mobile", "channel": "push", "location": "home"})  # a Tuesday, local time
NAMES = {"coffee": ("Coffee", "咖啡"), "acc": ("Phone Accessories", "手机配件"), "raw": ("1575622", None)}


def make_case(rows: list[tuple[str, str, str, str]], item_id: str = "i1", scenario: Scenario = MOMENT, features=None,
              titles: bool = True, history_len: int = 12) -> Case:
    """rows: (local time, item id, behaviour, category key of `NAMES`); fewer rows than ``history_len``
    are the shopper's whole history."""
    local = pd.to_datetime([r[0] for r in rows])
    events = pd.DataFrame({
        "user_id": "u1", "item_id": [r[1] for r in rows], "behavior": [r[2] for r in rows],
        "ts": local - pd.Timedelta(hours=8), "local_ts": local, "device": "mobile", "channel": "home_feed", "location": "home",
        "title": [f"T {r[1]}" if titles else None for r in rows], "title_zh": [f"商品 {r[1]}" if titles else None for r in rows],
        "category": [NAMES[r[3]][0] for r in rows], "category_zh": [NAMES[r[3]][1] for r in rows],
    })
    features = features or tiny_features()
    context = moment_context(features, scenario, pd.to_datetime(events["ts"]).to_numpy())
    batch = encode_case_batch(features, events, context, 12)
    local_at = scenario.local_time(features.calendar.timezone)
    return Case("u1", item_id, features.items.id(item_id), scenario, local_at, context, events, batch, features, CONTEXT_FIELDS,
                history_len)


def shapley(case: Case, category: str, **values: float) -> ShapleyValues:
    """Shapley values with the history groups' positions: events of the case's item, of ``category`` (other items), the rest."""
    ev = case.events
    same = (ev["item_id"] == case.item_id).to_numpy()
    cat = ~same & (ev["category"] == NAMES[category][0]).to_numpy()
    positions = {name: tuple(int(p) + case.offset for p in np.flatnonzero(mask))
                 for name, mask in (("history_item", same), ("history_category", cat), ("history_other", ~same & ~cat)) if mask.any()}
    groups = [*positions, "hour", "weekday", "promotion", "recency", "scene.device", "scene.channel", "scene.location"]
    full = {g: values.get(g, 0.0) for g in groups}
    assert set(values) <= set(full), f"no group {set(values) - set(full)} in this case"
    return ShapleyValues(-5.0, -5.0 + sum(full.values()), full, True, 2 ** len(full), positions)


def counterfactuals(rank: int = 2, smallest: ScenarioChange | None = None) -> ScenarioCounterfactuals:
    return ScenarioCounterfactuals(rank, 2.5, 10, [], smallest, [rank] * 24)


COFFEE_WEEK = [
    ("2025-11-20 09:00", "i9", "pv", "acc"),
    ("2025-12-06 08:10", "i2", "pv", "coffee"),
    ("2025-12-07 07:55", "i3", "pv", "coffee"),
    ("2025-12-07 07:58", "i3", "pv", "coffee"),
    ("2025-12-08 08:20", "i4", "pv", "coffee"),
]


def test_a_category_and_the_hour_with_a_crossing_counterfactual():
    case = make_case(COFFEE_WEEK)
    at_20 = ScenarioChange({"hour": (8, 20)}, 12, MOMENT.at_hour(20), rank=37)
    reason = build_reason(case, shapley(case, "coffee", history_category=1.2, hour=0.8, **{"scene.device": 0.45}), counterfactuals(2, at_20))
    assert reason["en"] == "Ranked 2nd because this shopper viewed three coffee items this week and it is 08:00; at 20:00 it would rank 37th."
    assert reason["zh"] == "排名第 2 位，理由：这位顾客本周浏览了三件咖啡商品，而且现在是 08:00；若改在 20:00，它将排在第 37 位。"
    ev = reason["evidence"]
    assert ev["cited"] == ["history_category", "hour"] and ev["history"]["n"] == 3 and ev["context_groups"] == ["hour"]
    assert ev["counterfactual"] == {"changes": {"hour": 20}, "rank": 37, "k": 10}


def test_the_items_own_history_with_counts_and_a_scene_counterfactual():
    rows = COFFEE_WEEK + [("2025-12-09 07:40", "i1", "pv", "coffee"), ("2025-12-09 07:41", "i1", "cart", "coffee")]
    case = make_case(rows, item_id="i1")
    change = ScenarioChange({"device": ("mobile", "pc")}, 1, MOMENT.replace(device="pc"), rank=14)
    reason = build_reason(case, shapley(case, "coffee", history_item=2.0, **{"scene.channel": 0.9}), counterfactuals(3, change))
    assert reason["en"] == ("Ranked 3rd because this shopper viewed “T i1” once and added it to the cart once in the last day and the push "
                            "goes out as a push notification; on a PC it would rank 14th.")
    assert reason["zh"].startswith("排名第 3 位，理由：这位顾客最近一天内浏览过「商品 i1」 1 次，把它加入购物车 1 次")
    assert "若使用电脑，它将排在第 14 位" in reason["zh"]
    assert reason["evidence"]["history"]["counts"] == {"pv": 1, "cart": 1}


def test_one_other_item_of_the_category_by_title_and_an_item_outside_the_top_k():
    rows = [("2025-12-01 12:00", "i5", "pv", "acc"), ("2025-12-02 12:00", "i6", "buy", "acc"), ("2025-12-03 12:00", "i6", "pv", "acc")]
    case = make_case(rows, item_id="i7")
    reason = build_reason(case, shapley(case, "acc", history_category=0.9, weekday=0.4), counterfactuals(25))
    assert reason["en"] == ("Ranked 25th, outside the top 10; what lifts it: this shopper bought “T i6”, also in phone accessories, "
                            "this month and it is a Tuesday; no change of time or scene we tried brings it into the top 10.")
    assert "购买过「商品 i6」（同属手机配件）" in reason["zh"] and "今天是星期二" in reason["zh"]


def test_an_item_the_shopper_interacted_with_often_says_so_even_when_the_moment_leads():
    rows = COFFEE_WEEK + [(f"2025-12-0{d} 09:00", "i1", "pv", "coffee") for d in (5, 6, 7, 8)]
    case = make_case(rows, item_id="i1")
    reason = build_reason(case, shapley(case, "coffee", history_item=-0.3, hour=1.0), counterfactuals(4))
    assert reason["en"] == ("Ranked 4th because it is 08:00; this shopper viewed “T i1” four times this week; "
                            "no change of time or scene we tried takes it out of the top 10.")
    assert reason["evidence"]["cited"] == ["hour"] and reason["evidence"]["often"]["n"] == 4


def test_a_count_claims_only_a_period_the_events_read_cover():
    rows = [("2025-12-01 12:00", "i5", "pv", "acc"), ("2025-12-05 12:00", "i1", "pv", "acc"), ("2025-12-06 12:00", "i1", "pv", "acc"),
            ("2025-12-08 12:00", "i1", "pv", "acc")]
    whole = make_case(rows)  # the shopper's whole history: "this week" holds every view of the item
    assert "viewed “T i1” three times this week" in build_reason(whole, shapley(whole, "acc", history_item=1.0), counterfactuals(1))["en"]
    latest = make_case(rows[2:], history_len=2)  # only the latest two events read, going back three days: no claim about the week
    reason = build_reason(latest, shapley(latest, "acc", history_item=1.0), counterfactuals(1))["en"]
    assert "viewed “T i1” twice in the last day" not in reason and "viewed “T i1” twice recently" in reason


def test_numeric_categories_and_missing_titles_read_naturally():
    rows = [("2025-12-08 10:00", "i5", "pv", "raw"), ("2025-12-08 10:05", "i6", "pv", "raw"), ("2025-12-08 11:00", "i9", "pv", "acc")]
    case = make_case(rows, item_id="i7", titles=False)
    reason = build_reason(case, shapley(case, "raw", history_category=1.0), counterfactuals(1))
    assert reason["en"].startswith("Ranked 1st because this shopper viewed two items in category 1575622 in the last day;")
    assert "类目 1575622" in reason["zh"] and "1575622商品" not in reason["zh"]
    assert category_name("1575622", None, "en") == "category 1575622" and category_name(None, None, "en") == "uncategorised"


def test_any_scene_field_of_the_data_is_named_by_its_schema_label():
    features = tiny_features()
    features.scene_fields = [SceneField("weather", "Weather", "天气")]
    features.scene = {"weather": Vocabulary(["rain", "sun"])}
    scenario = Scenario(dt.datetime(2025, 12, 9, 8, 0), {"weather": "rain"})
    case = make_case(COFFEE_WEEK, scenario=scenario, features=features)
    values = {g: 0.0 for g in ("history_category", "history_other", "hour")}
    s = ShapleyValues(-5.0, -4.0, {**values, "scene.weather": 1.0}, True, 16, {})
    change = ScenarioChange({"weather": ("rain", "sun")}, 1, scenario.replace(weather="sun"), rank=12)
    reason = build_reason(case, s, counterfactuals(1, change))
    assert reason["en"] == "Ranked 1st because the weather is rain; with weather “sun” it would rank 12th."
    assert reason["zh"] == "排名第 1 位，理由：天气为rain；若天气为sun，它将排在第 12 位。"


def test_first_visit_only_without_any_history():
    case = make_case(COFFEE_WEEK)  # the latest event 2025-12-08 08:20, the moment 23 hours 40 minutes later
    reason = build_reason(case, shapley(case, "coffee", recency=1.0), counterfactuals(1))
    assert reason["en"].startswith("Ranked 1st because they were active in the last day;")
    cold = make_case(COFFEE_WEEK)
    cold.events, cold.context = cold.events.iloc[:0], {**cold.context, "gap": 1}
    assert recency_text(cold, "en") == "it is their first visit"
    later = make_case(COFFEE_WEEK, scenario=Scenario(dt.datetime(2025, 11, 1, 8, 0), MOMENT.scene))  # before every event
    assert later.context["gap"] == 0 and recency_text(later, "en") != "it is their first visit"
    assert "this week" not in build_reason(later, shapley(later, "coffee", history_category=1.0), counterfactuals(1))["en"]


def test_group_labels_come_from_the_schema():
    features = tiny_features()
    assert group_label("history_item", "en") == "History: this item" and group_label("hour", "zh") == "时段"
    assert group_label("scene.device", "en", features) == "Device" and group_label("scene.device", "zh", features) == "设备"
    features.scene_fields = [SceneField("weather", "Weather", "天气")]
    assert group_label("scene.weather", "zh", features) == "天气"


def test_cited_groups_ignore_small_and_negative_contributions():
    s = ShapleyValues(0.0, 0.0, {"history_item": -0.5, "hour": 1.0, "scene.location": 0.05, "scene.channel": 0.4, "scene.device": -2.0},
                      True, 32)
    assert cited_groups(s) == ["hour", "scene.channel"]
    s.values["scene.channel"] = 0.3  # below a quarter of the positive total (1.35)
    assert cited_groups(s) == ["hour"]
    assert cited_groups(ShapleyValues(0.0, -1.0, {"hour": -1.0}, True, 2)) == []


@pytest.mark.parametrize(("n", "en", "zh"), [(1, "1st", "第 1 位"), (2, "2nd", "第 2 位"), (3, "3rd", "第 3 位"), (11, "11th", "第 11 位"),
                                             (22, "22nd", "第 22 位"), (113, "113th", "第 113 位"), (1001, "1,001st", "第 1,001 位")])
def test_ordinals(n, en, zh):
    assert ordinal(n, "en") == en and ordinal(n, "zh") == zh


def test_count_words():
    assert [count_words(n, "en") for n in (1, 3, 12)] == ["one", "three", "12"]
    assert [count_words(n, "zh") for n in (1, 2, 3, 10, 12)] == ["一", "两", "三", "十", "12"]
