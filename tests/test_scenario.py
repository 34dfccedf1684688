"""Scenario page logic without the UI: presets, URL round trips, rank changes, list changes, sweeps, overlap."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recsys_core.features import Calendar
from recsys_core.scenario import (
    PRESET_KEYS,
    Choices,
    ScenarioSpec,
    ScenarioState,
    day_flags,
    effective_promo,
    from_query_params,
    hour_sweep,
    list_change,
    overlap,
    preset,
    rank_arrow,
    ranks_from_scores,
    sweep_frame,
    sweep_specs,
    to_query_params,
    to_utc,
    with_rank_changes,
)

CAL = Calendar()
DEVICES, CHANNELS, LOCATIONS = ("mobile", "pc", "tablet"), ("home_feed", "search", "push", "live_stream", "cart"), ("home", "office", "commute", "city")
CHOICES = Choices(DEVICES, CHANNELS, LOCATIONS, models=("context_transformer", "pop"),
                  first_day=dt.date(2025, 10, 13), last_day=dt.date(2026, 1, 14))
MONDAY = dt.date(2025, 12, 15)


def state(**kw) -> ScenarioState:
    base = dict(
        user_id="u00001",
        a=ScenarioSpec(MONDAY, 8, 0, "mobile", "push", "commute"),
        b=ScenarioSpec(MONDAY, 15, 0, "mobile", "home_feed", "home"),
        k=10,
        model="context_transformer",
    )
    base.update(kw)
    return ScenarioState(**base)


# --- scenarios, calendar, presets ---------------------------------------------------------


def test_spec_validates_and_converts_time():
    spec = ScenarioSpec(dt.date(2025, 11, 11), 0, 5)
    assert spec.local_time == dt.datetime(2025, 11, 11, 0, 5)
    # 11.11 00:05 in Shanghai is 11.10 16:05 UTC
    assert to_utc(spec.local_time, "Asia/Shanghai") == dt.datetime(2025, 11, 10, 16, 5)
    assert ScenarioSpec.from_key(spec.key()) == spec and hash(spec.key())
    with pytest.raises(ValueError, match="hour"):
        ScenarioSpec(MONDAY, 24)
    with pytest.raises(ValueError, match="promo"):
        ScenarioSpec(MONDAY, 8, promo="maybe")


def test_promotion_flag_from_calendar_and_override():
    d11 = ScenarioSpec(dt.date(2025, 11, 11), 0, 5)
    assert effective_promo(d11, CAL) is True
    assert effective_promo(ScenarioSpec(d11.day, 0, 5, promo="off"), CAL) is False
    assert effective_promo(ScenarioSpec(MONDAY, 8, promo="on"), CAL) is True
    assert effective_promo(ScenarioSpec(MONDAY, 8), CAL) is False
    flags = day_flags(dt.date(2025, 10, 1), CAL)  # National Day, a Wednesday
    assert flags.holiday and not flags.weekend and flags.weekday == 2 and not flags.promo


def test_presets():
    commute = preset("commute", MONDAY, CAL)
    assert (commute.day, commute.hour, commute.minute, commute.device, commute.location) == (MONDAY, 8, 0, "mobile", "commute")
    office = preset("office", dt.date(2025, 12, 13), CAL)  # a Saturday: the next working day
    assert office.day == MONDAY and (office.hour, office.device, office.location) == (14, "pc", "office")
    evening = preset("evening_home", MONDAY, CAL)
    assert (evening.hour, evening.minute, evening.location) == (20, 30, "home")
    saturday = preset("saturday", MONDAY, CAL)
    assert saturday.day == dt.date(2025, 12, 20) and saturday.day.weekday() == 5 and 12 <= saturday.hour <= 17
    d11 = preset("double11", MONDAY, CAL)
    assert (d11.day, d11.hour, d11.minute) == (dt.date(2025, 11, 11), 0, 5) and effective_promo(d11, CAL)
    assert preset("double11", dt.date(2025, 10, 20), CAL).day == dt.date(2024, 11, 11)
    # a commute never lands on a promotion day
    assert preset("commute", dt.date(2025, 11, 11), CAL).day == dt.date(2025, 11, 12)
    assert set(PRESET_KEYS) == {"commute", "office", "evening_home", "saturday", "double11"}
    with pytest.raises(ValueError, match="choose from"):
        preset("brunch", MONDAY, CAL)


# --- URL ----------------------------------------------------------------------------------


def test_query_params_round_trip():
    s = state(model_b="pop", k=7, exclude_seen=True, b=ScenarioSpec(dt.date(2025, 11, 11), 0, 5, "pc", "search", "office", "off"))
    params = to_query_params(s)
    assert params["at"] == "2025-12-15T08:00" and params["ref_at"] == "2025-11-11T00:05"
    assert all(isinstance(v, str) for v in params.values())
    back, problems = from_query_params(params, state(user_id="someone", k=3), CHOICES)
    assert problems == []
    assert back == s


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
    assert back.a == ScenarioSpec(MONDAY, 8, 0, "mobile", "search", "commute")
    assert back.b == default.b
    assert back.k == default.k and back.model == default.model and back.model_b == ""
    assert set(problems) == {"at", "device", "ref_at", "ref_promo", "k", "model"}


def test_empty_params_give_the_default():
    back, problems = from_query_params({}, state(), CHOICES)
    assert back == state() and problems == []


@given(
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    days=st.integers(0, 90),
    device=st.sampled_from(DEVICES),
    promo=st.sampled_from(["auto", "on", "off"]),
    k=st.integers(1, 50),
    user=st.text(alphabet="abcu0123456789_-", min_size=1, max_size=12),
)
def test_query_params_round_trip_property(hour, minute, days, device, promo, k, user):
    a = ScenarioSpec(dt.date(2025, 10, 13) + dt.timedelta(days=days), hour, minute, device, "cart", "city", promo)
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


def test_sweep_from_one_batched_call():
    spec = ScenarioSpec(MONDAY, 8, 30, "pc", "search", "office")
    specs = sweep_specs(spec)
    assert [s.hour for s in specs] == list(range(24)) and all(s.minute == 30 and s.device == "pc" for s in specs)

    calls = []

    def score_scenarios(scenarios):
        calls.append(len(scenarios))
        hours = np.array([s.hour for s in scenarios], dtype=float)[:, None]
        # item "morning" peaks at 8, "evening" at 20, "flat" never moves
        scores = np.hstack([-(hours - 8) ** 2, -(hours - 20) ** 2, np.full_like(hours, -50.0)])
        return scores, {"morning": 0, "evening": 1, "flat": 2}

    frame = hour_sweep(score_scenarios, lambda s: s, spec, ["morning", "evening"])
    assert calls == [24]
    by = frame.pivot(index="hour", columns="item_id", values="rank")
    assert by.loc[8, "morning"] == 1 and by.loc[20, "evening"] == 1 and by.loc[20, "morning"] == 3
    assert list(frame.columns) == ["hour", "item_id", "rank"] and len(frame) == 48
    with pytest.raises(AssertionError, match="24 rows"):
        sweep_frame(np.zeros((3, 2)), {"a": 0}, ["a"])
