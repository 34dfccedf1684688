"""Scenario page logic without the UI: presets, URL round trips, rank changes, list changes, sweeps, overlap."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recsys_core.context import Scenario, promo_flag, to_utc
from recsys_core.features import Calendar
from recsys_core.scenario import (
    PRESET_KEYS,
    PRESETS,
    Choices,
    Preset,
    ScenarioState,
    day_flags,
    from_query_params,
    list_change,
    load_presets,
    overlap,
    parse_k,
    preset,
    presets_for,
    rank_arrow,
    ranks_from_scores,
    scene_param,
    sweep_frame,
    to_query_params,
    with_rank_changes,
)

CAL = Calendar()
# The sample world's scene fields, as `filter_options()["scene"]` gives them; plus a data set's own field.
SCENE = {"device": ("mobile", "pc", "tablet"), "channel": ("home_feed", "search", "push", "live_stream", "cart"),
         "location": ("home", "office", "commute", "city")}
CHOICES = Choices(SCENE, models=("context_transformer", "pop"), first_day=dt.date(2025, 10, 13), last_day=dt.date(2026, 1, 14))
MONDAY = dt.date(2025, 12, 15)


def local(day, hour, minute=0, promo="auto", **scene) -> Scenario:
    return Scenario.local(day, hour, minute, scene, promo)


def state(**kw) -> ScenarioState:
    base = dict(
        user_id="u00001",
        a=local(MONDAY, 8, 0, device="mobile", channel="push", location="commute"),
        b=local(MONDAY, 15, 0, device="mobile", channel="home_feed", location="home"),
        k=10,
        model="context_transformer",
    )
    base.update(kw)
    return ScenarioState(**base)


# --- scenarios, calendar, presets ---------------------------------------------------------


def test_scenario_validates_and_converts_time():
    s = local(dt.date(2025, 11, 11), 0, 5)
    assert s.at == dt.datetime(2025, 11, 11, 0, 5) and (s.day, s.hour, s.minute, s.promo) == (dt.date(2025, 11, 11), 0, 5, "auto")
    # 11.11 00:05 in Shanghai is 11.10 16:05 UTC
    assert to_utc(s.at, "Asia/Shanghai") == dt.datetime(2025, 11, 10, 16, 5)
    assert Scenario.from_key(s.key()) == s and hash(s.key())
    with pytest.raises(ValueError, match="hour"):
        local(MONDAY, 24)
    with pytest.raises(ValueError, match="minute"):
        local(MONDAY, 8, 75)
    with pytest.raises(ValueError, match="promo"):
        local(MONDAY, 8, promo="maybe")


def test_promotion_flag_from_calendar_and_override():
    d11 = local(dt.date(2025, 11, 11), 0, 5)
    assert promo_flag(d11.day, CAL, d11.promo_override) is True
    off = local(d11.day, 0, 5, promo="off")
    assert promo_flag(off.day, CAL, off.promo_override) is False
    on = local(MONDAY, 8, promo="on")
    assert promo_flag(on.day, CAL, on.promo_override) is True
    assert promo_flag(MONDAY, CAL, None) is False
    flags = day_flags(dt.date(2025, 10, 1), CAL)  # National Day, a Wednesday
    assert flags.holiday and not flags.weekend and flags.weekday == 2 and not flags.promo


def test_presets():
    commute = preset("commute", MONDAY, CAL)
    assert (commute.day, commute.hour, commute.minute, commute.get("device"), commute.get("location")) == (MONDAY, 8, 0, "mobile", "commute")
    office = preset("office", dt.date(2025, 12, 13), CAL)  # a Saturday: the next working day
    assert office.day == MONDAY and (office.hour, office.get("device"), office.get("location")) == (14, "pc", "office")
    evening = preset("evening_home", MONDAY, CAL)
    assert (evening.hour, evening.minute, evening.get("location")) == (20, 30, "home")
    saturday = preset("saturday", MONDAY, CAL)
    assert saturday.day == dt.date(2025, 12, 20) and saturday.day.weekday() == 5 and 12 <= saturday.hour <= 17
    d11 = preset("double11", MONDAY, CAL)
    assert (d11.day, d11.hour, d11.minute) == (dt.date(2025, 11, 11), 0, 5) and promo_flag(d11.day, CAL, d11.promo_override)
    assert preset("double11", dt.date(2025, 10, 20), CAL).day == dt.date(2024, 11, 11)
    # a commute never lands on a promotion day
    assert preset("commute", dt.date(2025, 11, 11), CAL).day == dt.date(2025, 11, 12)
    assert set(PRESET_KEYS) == {"commute", "office", "evening_home", "saturday", "double11"}
    with pytest.raises(ValueError, match="choose from"):
        preset("brunch", MONDAY, CAL)


def test_presets_follow_the_data_scene_fields():
    # data without scene fields (the Taobao sample): only presets that name no scene field remain
    assert [p.key for p in presets_for({})] == ["double11"]
    # data with the sample world's fields and one of its own: every preset is shown
    assert [p.key for p in presets_for({**SCENE, "weather": ("rain", "sunny")})] == list(PRESET_KEYS)
    # a preset keeps the fields it does not name, and drops a value this data lacks (the field keeps its value)
    base = local(MONDAY, 12, device="tablet", weather="rain")
    d11 = preset("double11", MONDAY, CAL, base, {**SCENE, "weather": ("rain", "sunny")})
    assert d11.scene == {"device": "tablet", "weather": "rain"}
    few = {"device": ("mobile", "tablet"), "channel": ("push",), "location": ("home", "city")}
    office = preset("office", MONDAY, CAL, local(MONDAY, 9, device="tablet", channel="push", location="home"), few)
    assert office.scene == {"device": "tablet", "channel": "push", "location": "home"}  # none of pc/search/office here
    assert office.hour == 14


def test_presets_file(tmp_path):
    path = tmp_path / "presets.json"
    path.write_text(json.dumps({"presets": [{"key": "rainy_evening", "day": "weekday", "hour": 19, "minute": 15,
                                             "scene": {"weather": "rain"}, "labels": {"en": "Rainy evening", "zh": "雨夜"}}]}))
    (p,) = load_presets(path)
    assert p == Preset("rainy_evening", "weekday", 19, 15, (("weather", "rain"),), (("en", "Rainy evening"), ("zh", "雨夜")))
    assert presets_for(SCENE, [p]) == [] and presets_for({"weather": ("rain",)}, [p]) == [p]
    assert p.build(MONDAY, CAL).scene == {"weather": "rain"}
    assert load_presets(tmp_path / "missing.json") == ()
    path.write_text(json.dumps({"presets": [{"key": "x", "day": "someday", "hour": 8}]}))
    with pytest.raises(ValueError, match="preset 1.*someday"):
        load_presets(path)
    assert all(isinstance(p, Preset) for p in PRESETS)


# --- URL ----------------------------------------------------------------------------------


def test_query_params_round_trip():
    s = state(model_b="pop", k=7, exclude_seen=True, b=local(dt.date(2025, 11, 11), 0, 5, "off", device="pc", channel="search", location="office"))
    params = to_query_params(s)
    assert params["at"] == "2025-12-15T08:00" and params["ref_at"] == "2025-11-11T00:05"
    assert (params["device"], params["ref_location"], params["ref_promo"]) == ("mobile", "office", "off")
    assert all(isinstance(v, str) for v in params.values())
    back, problems = from_query_params(params, state(user_id="someone", k=3), CHOICES)
    assert problems == []
    assert back == s


def test_scene_fields_are_url_parameters_by_name():
    choices = Choices({"weather": ("rain", "sunny"), "k": ("a", "b")}, models=("context_transformer",), first_day=MONDAY, last_day=MONDAY)
    s = state(a=local(MONDAY, 9, weather="sunny", k="b"), b=local(MONDAY, 9, weather="rain", k="a"))
    params = to_query_params(s)
    assert params["weather"] == "sunny" and params["ref_weather"] == "rain"
    assert scene_param("k") == "scene_k" and params["scene_k"] == "b" and params["k"] == "10"  # a field named like k
    back, problems = from_query_params(params, state(a=local(MONDAY, 12), b=local(MONDAY, 12)), choices)
    assert problems == [] and back == s
    back, problems = from_query_params({"weather": "snow"}, state(a=local(MONDAY, 9, weather="rain")), choices)
    assert problems == ["weather"] and back.a.get("weather") == "rain"


def test_query_params_bad_values_fall_back_and_are_reported():
    default = state()
    params = {
        "user": " u00042 ",
        "at": "yesterday",
        "device": "smart-fridge",
        "channel": "search",
        "ref_at": "1999-01-01T08:00",  # outside the data's range
        "ref_promo": "maybe",
        "k": "500",
        "model": "../../etc",
        "model_b": "",
    }
    back, problems = from_query_params(params, default, CHOICES)
    assert back.user_id == "u00042"
    assert back.a == local(MONDAY, 8, 0, device="mobile", channel="search", location="commute")
    assert back.b == default.b
    assert back.k == default.k and back.model == default.model and back.model_b == ""
    assert set(problems) == {"at", "device", "ref_at", "ref_promo", "k", "model"}


def test_k_parsing():
    assert [parse_k(v) for v in ("7", " 50 ", "1", 3, 4.0)] == [7, 50, 1, 3, 4]
    assert [parse_k(v) for v in ("0", "51", "-5", "100000", "2.5", "x", "", float("nan"), float("inf"))] == [None] * 9


def test_empty_params_give_the_default():
    back, problems = from_query_params({}, state(), CHOICES)
    assert back == state() and problems == []


@given(
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    days=st.integers(0, 90),
    device=st.sampled_from(SCENE["device"]),
    promo=st.sampled_from(["auto", "on", "off"]),
    k=st.integers(1, 50),
    user=st.text(alphabet="abcu0123456789_-", min_size=1, max_size=12),
)
def test_query_params_round_trip_property(hour, minute, days, device, promo, k, user):
    a = local(dt.date(2025, 10, 13) + dt.timedelta(days=days), hour, minute, promo, device=device, channel="cart", location="city")
    s = state(user_id=user, a=a, k=k)
    back, problems = from_query_params(to_query_params(s), state(), CHOICES)
    assert problems == [] and back == s


# --- rankings -----------------------------------------------------------------------------


def test_ranks_from_scores_ties_and_minus_inf():
    scores = np.array([[-np.inf, 3.0, 1.0, 3.0, 2.0], [0.0, 1.0, 2.0, 3.0, 4.0]])
    assert ranks_from_scores(scores).tolist() == [[5, 1, 4, 1, 3], [5, 4, 3, 2, 1]]


def test_rank_arrows():
    assert rank_arrow(1, 4) == "▲3"
    assert rank_arrow(5, 2) == "▼3"
    assert rank_arrow(3, 3) == "="
    assert rank_arrow(2, None) == "★"
    assert rank_arrow(1, 1234) == "▲1,233"
    import pandas as pd

    top = pd.DataFrame({"item_id": ["i1", "i2", "i3"], "rank": [1, 2, 3]})
    out = with_rank_changes(top, {"i1": 1, "i2": 9, "i3": 2})
    assert out["arrow"].tolist() == ["=", "▲7", "▼1"]
    assert out["rank_change"].tolist() == [0, 7, -1]


def test_list_change_and_overlap():
    change = list_change(["a", "b", "c", "d"], ["c", "x", "a", "y"])
    assert change.entering == ["b", "d"] and change.leaving == ["x", "y"] and change.staying == ["a", "c"]
    o = overlap(["a", "b", "c", "d"], ["c", "x", "a", "y"])
    assert o.common == ["a", "c"] and o.only_a == ["b", "d"] and o.only_b == ["x", "y"]
    assert o.share == pytest.approx(0.5) and o.jaccard == pytest.approx(2 / 6)
    assert overlap([], []).share == 1.0
    same = overlap(["a", "b"], ["b", "a"])
    assert same.share == 1.0 and same.jaccard == 1.0


def test_sweep_frame_ranks_each_hour():
    hours = np.arange(24, dtype=float)[:, None]
    # item "morning" peaks at 8, "evening" at 20, "flat" never moves
    scores = np.hstack([-(hours - 8) ** 2, -(hours - 20) ** 2, np.full_like(hours, -50.0)])
    frame = sweep_frame(scores, {"morning": 0, "evening": 1, "flat": 2}, ["morning", "evening"])
    by = frame.pivot(index="hour", columns="item_id", values="rank")
    assert by.loc[8, "morning"] == 1 and by.loc[20, "evening"] == 1 and by.loc[20, "morning"] == 3
    assert list(frame.columns) == ["hour", "item_id", "rank"] and len(frame) == 48
    with pytest.raises(AssertionError, match="24 rows"):
        sweep_frame(np.zeros((3, 2)), {"a": 0}, ["a"])


# --- pushes: idempotent, capped, reasons attached after answering ------------------------------------


def test_push_plan_store_and_reasons_after_answering(tmp_path):
    from contextlib import contextmanager

    import torch

    from recsys_core import recommend
    from recsys_core.scenario import attach_reasons, plan_push, store_push
    from recsys_core.store import connect
    from tests.app_db import build_small_store
    from tests.explain_models import save_tiny_model

    torch.set_num_threads(1)
    db = build_small_store(tmp_path / "small.duckdb")
    lm = recommend.load_model(save_tiny_model(tmp_path / "tiny"))
    con = connect(db)

    @contextmanager
    def same():
        yield con

    try:
        s = local(dt.date(2024, 11, 18), 8, device="mobile", channel="push", location="commute")
        top = recommend.recommend(lm, con, "u0", s, k=10)
        plan = plan_push(con, lm, "u0", s, top)
        assert len(plan.new) == 10 and plan.already == {} and plan.capped == [] and plan.pushed_today == 0
        ids = store_push(con, lm, "u0", s, plan)
        assert len(ids) == 10
        stored = con.execute("SELECT count(*), count(reasons_json) FROM pushes WHERE user_id = 'u0'").fetchone()
        assert stored == (10, 0)  # answered before any reason was computed
        again = plan_push(con, lm, "u0", s, top)
        assert again.new.empty and set(again.already) == set(top["item_id"])  # a second press stores nothing
        assert store_push(con, lm, "u0", s, again) == []
        # a daily cap of 12: two more pushes fit that day, the rest is held back
        later = plan_push(con, lm, "u0", s.at_hour(9), top, daily_cap=12)
        assert later.pushed_today == 10 and list(later.new["item_id"]) == list(top["item_id"][:2])
        assert later.capped == list(top["item_id"][2:])
        assert attach_reasons(same, same, lm, "u0", s, ids, 10) == 10
        rows = con.execute("SELECT item_id, reasons_json FROM pushes WHERE user_id = 'u0' ORDER BY rank").fetchall()
        assert all(json.loads(r[1])["reason"]["en"] for r in rows)
        assert attach_reasons(same, same, lm, "u0", s, ids, 10) == 0  # reasons already there are never overwritten
    finally:
        con.close()
