"""Plain-language reasons, English and Chinese, from hand-made explanations with known answers."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from recsys_core.explain.attributions import Attribution
from recsys_core.explain.cases import Case, Moment, encode_case_batch
from recsys_core.explain.counterfactuals import ScenarioChange, ScenarioCounterfactuals
from recsys_core.explain.reasons import build_reason, choose_groups, count_words, ordinal
from recsys_core.explain.shapley import ShapleyValues
from tests.explain_models import tiny_features

MOMENT = Moment(dt.datetime(2025, 12, 9, 8, 0), "mobile", "push", "home")  # a Tuesday, local time


def make_case(rows: list[tuple[str, str, str, str]], item_id: str = "i1") -> Case:
    """rows: (local time, item id, behaviour, category); categories coffee / phone accessories."""
    names = {"coffee": ("Coffee", "咖啡"), "acc": ("Phone Accessories", "手机配件")}
    local = pd.to_datetime([r[0] for r in rows])
    events = pd.DataFrame({
        "user_id": "u1", "item_id": [r[1] for r in rows], "behavior": [r[2] for r in rows],
        "ts": local - pd.Timedelta(hours=8), "local_ts": local, "device": "mobile", "channel": "home_feed", "location": "home",
        "title": [f"T {r[1]}" for r in rows], "title_zh": [f"商品 {r[1]}" for r in rows],
        "category": [names[r[3]][0] for r in rows], "category_zh": [names[r[3]][1] for r in rows],
    })
    features = tiny_features()
    context = MOMENT.context(features, pd.to_datetime(events["ts"]).to_numpy())
    batch = encode_case_batch(features, events, context, 12)
    return Case("u1", item_id, features.items.id(item_id), MOMENT, context, events, batch, features)


def attribution(case: Case, event_totals: list[float]) -> Attribution:
    history = np.zeros((case.batch.length, 4))
    history[case.offset :, 0] = event_totals
    return Attribution(3.0, 1.0, history, np.ones(case.batch.length, bool), {"hour": 0.5}, {}, 50)


def shapley(**values: float) -> ShapleyValues:
    groups = ("history_items", "history_behaviour", "history_time", "history_scene", "hour", "weekday", "promotion",
              "recency", "device", "channel", "location")
    full = {g: values.get(g, 0.0) for g in groups}
    return ShapleyValues(1.0, 1.0 + sum(full.values()), full, True, 1024)


def counterfactuals(rank: int = 2, hour_ranks: dict[int, int] | None = None, smallest: ScenarioChange | None = None) -> ScenarioCounterfactuals:
    ranks = [rank] * 24
    for h, r in (hour_ranks or {}).items():
        ranks[h] = r
    return ScenarioCounterfactuals(rank, 2.5, 10, [], smallest, ranks)


COFFEE_WEEK = [
    ("2025-11-20 09:00", "i9", "pv", "acc"),
    ("2025-12-06 08:10", "i2", "pv", "coffee"),
    ("2025-12-07 07:55", "i3", "pv", "coffee"),
    ("2025-12-07 07:58", "i3", "pv", "coffee"),
    ("2025-12-08 08:20", "i4", "pv", "coffee"),
]


def test_the_issue_example():
    case = make_case(COFFEE_WEEK)
    reason = build_reason(case, attribution(case, [-0.1, 0.4, 0.3, 0.2, 0.5]), shapley(history_items=1.2, hour=0.8, device=0.45),
                          counterfactuals(2, {20: 37, 21: 30}), pushed=True)
    assert reason["en"] == ("Pushed because this shopper viewed three coffee items this week and it is 08:00 on mobile; "
                            "at 20:00 it would rank 37th.")
    assert reason["zh"] == "推送理由：这位顾客本周浏览了三件咖啡商品，而且现在是 08:00，使用手机；若改在 20:00，它将排在第 37 位。"
    ev = reason["evidence"]
    assert ev["history"]["n"] == 3 and ev["context_groups"] == ["hour", "device"] and ev["counterfactual"]["rank"] == 37


def test_cart_of_the_same_item_and_a_scene_counterfactual():
    rows = COFFEE_WEEK + [("2025-12-09 07:40", "i1", "pv", "coffee"), ("2025-12-09 07:41", "i1", "cart", "coffee")]
    case = make_case(rows, item_id="i1")
    change = ScenarioChange({"device": ("mobile", "pc")}, 1, MOMENT.changed(device="pc"), rank=14)
    reason = build_reason(case, attribution(case, [0, 0.1, 0, 0, 0.1, 0.6, 0.9]), shapley(history_items=2.0, channel=0.5),
                          counterfactuals(3, smallest=change))
    assert reason["en"] == ("Ranked 3rd because this shopper added this item to the cart in the last day and the push goes out "
                            "as a push notification; on a PC it would rank 14th.")
    assert reason["zh"].startswith("排名第 3 位，理由：这位顾客最近一天内把这件商品加入过购物车")
    assert "若使用电脑，它将排在第 14 位" in reason["zh"]


def test_plural_category_and_an_item_outside_the_top_k():
    rows = [("2025-12-01 12:00", "i5", "pv", "acc"), ("2025-12-02 12:00", "i6", "buy", "acc"), ("2025-12-03 12:00", "i6", "pv", "acc")]
    case = make_case(rows, item_id="i7")
    reason = build_reason(case, attribution(case, [0.2, 0.3, 0.1]), shapley(history_items=0.9, weekday=0.4), counterfactuals(25))
    assert reason["en"] == ("Ranked 25th, outside the top 10; what lifts it: this shopper bought one item in phone accessories "
                            "this month and it is a Tuesday; no change of time or scene we tried brings it into the top 10.")
    assert "购买了一件手机配件商品" in reason["zh"] and "今天是星期二" in reason["zh"]


def test_choose_groups_ignores_small_and_negative_contributions():
    named_history, groups = choose_groups(shapley(history_items=-0.5, hour=1.0, location=0.05, channel=0.4, device=-2.0))
    assert not named_history and groups == ["hour", "channel"]
    assert choose_groups(shapley(hour=-1.0)) == (False, [])


@pytest.mark.parametrize(("n", "en", "zh"), [(1, "1st", "第 1 位"), (2, "2nd", "第 2 位"), (3, "3rd", "第 3 位"), (11, "11th", "第 11 位"),
                                             (22, "22nd", "第 22 位"), (113, "113th", "第 113 位"), (1001, "1,001st", "第 1,001 位")])
def test_ordinals(n, en, zh):
    assert ordinal(n, "en") == en and ordinal(n, "zh") == zh


def test_count_words():
    assert [count_words(n, "en") for n in (1, 3, 12)] == ["one", "three", "12"]
    assert [count_words(n, "zh") for n in (1, 2, 3, 10, 12)] == ["一", "两", "三", "十", "12"]
