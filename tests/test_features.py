"""Time and scene encoding: vocabularies, calendar, gap buckets, price bands, round trips."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from recsys_core.context import scene_field
from recsys_core.features import (
    Calendar,
    FeatureSpace,
    Vocabulary,
    gap_bucket,
    hour_bucket,
    log2_bucket_label,
    price_band_edges,
    price_bands,
    time_ids,
)


def test_vocabulary_reserves_zero_for_padding_and_unknown():
    v = Vocabulary.fit(["pc", "mobile", "unknown", "pc", None])
    assert v.to_list() == ["mobile", "pc"] and len(v) == 3
    assert v.encode(["mobile", "pc", "unknown", "tablet", None]).tolist() == [1, 2, 0, 0, 0]
    assert v.id("pc") == 2 and v.decode(2) == "pc" and v.decode(0) == "unknown" and v.decode(99) == "unknown"


def test_time_ids_hour_weekday_weekend_holiday_promo():
    ts = np.array(["2025-11-11T08:30", "2025-11-15T23:59", "2025-10-01T00:00", "2025-06-18T12:00"], dtype="datetime64[s]")
    t = time_ids(ts, Calendar())
    assert t["hour"].tolist() == [9, 24, 1, 13]  # hour + 1
    assert t["weekday"].tolist() == [2, 6, 3, 3]  # Tue, Sat, Wed, Wed (Monday = 1)
    assert t["weekend"].tolist() == [1, 2, 1, 1]
    assert t["holiday"].tolist() == [1, 1, 2, 1]  # 10-01 National Day (CN)
    assert t["promo"].tolist() == [2, 1, 1, 2]  # 11.11 and 6.18


def test_promotion_days_are_configurable_and_validated():
    ts = np.array(["2025-11-11T08:30", "2025-03-08T10:00"], dtype="datetime64[s]")
    assert time_ids(ts, Calendar(promo_days=("03-08",)))["promo"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="MM-DD"):
        Calendar(promo_days=("11/11",))


def test_gap_buckets_are_log_spaced_with_a_first_event_bucket():
    g = gap_bucket(np.array([np.nan, 0, 59, 60, 299, 1800, 86400 * 40]))
    assert g[0] == 1 and g[1] == g[2] == 2 and g[3] == 3 and g[4] == 3 and g[5] == 5
    assert g[-1] == g.max() and np.all(np.diff(g[1:]) >= 0)


def test_price_bands_from_quantiles_and_missing_price():
    edges = price_band_edges(np.arange(1, 101, dtype=float), n_bands=4)
    bands = price_bands(np.array([1.0, 30.0, 60.0, 100.0, np.nan, 0.0]), edges)
    assert bands.tolist()[:4] == [1, 2, 3, 4] and bands.tolist()[4:] == [0, 0]


def _frames():
    items = pd.DataFrame({"item_id": ["a", "b", "c"], "category": ["coffee", "games", None], "price": [5.0, 500.0, np.nan]})
    events = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2"],
            "item_id": ["a", "z", "b"],
            "behavior": ["pv", "buy", "cart"],
            "ts": pd.to_datetime(["2025-11-11 00:00", "2025-11-11 00:10", "2025-11-12 03:00"]),
            "local_ts": pd.to_datetime(["2025-11-11 08:00", "2025-11-11 08:10", "2025-11-12 11:00"]),
            "device": ["mobile", "pc", "unknown"],
            "channel": ["push", "search", "push"],
            "location": ["home", "office", "home"],
        }
    )
    return events, items


SCENE = [scene_field("device"), scene_field("channel"), scene_field("location")]


def test_feature_space_fit_encode_and_round_trip():
    events, items = _frames()
    fs = FeatureSpace.fit(events, items, Calendar(), SCENE)
    assert fs.items.to_list() == ["a", "b", "c", "z"] and fs.n_items == 4
    assert fs.item_category[fs.items.id("a")] == fs.category.id("coffee") and fs.item_category[fs.items.id("c")] == 0
    assert fs.item_price_band[fs.items.id("c")] == 0 and fs.item_price_band[0] == 0
    enc = fs.encode_events(events)
    assert enc["item"].tolist() == [1, 4, 2]
    assert enc["gap"].tolist()[0] == 1 and enc["gap"][2] == 1  # first event of each shopper
    assert enc["gap"][1] == gap_bucket(np.array([600.0]))[0]
    assert enc["device"][2] == 0 and enc["hour"].tolist() == [9, 9, 12]
    assert fs.history_fields() == ("item", "behavior", "hour", "weekday", "weekend", "holiday", "promo", "gap", "device", "channel", "location")
    assert fs.decision_time_fields() == ("hour", "weekday", "weekend", "holiday", "promo", "gap", "device", "location")  # channel: not known for a push
    assert fs.vocab_sizes()["channel"] == 3  # push, search + unknown
    again = FeatureSpace.from_dict(fs.to_dict())
    assert again.to_dict() == fs.to_dict() and again.scene_fields == SCENE
    with pytest.raises(ValueError, match="missing"):
        FeatureSpace.from_dict({"calendar": {}})


def test_data_without_scene_fields_has_time_fields_only():
    events, items = _frames()
    fs = FeatureSpace.fit(events.drop(columns=["device", "channel", "location"]), items, Calendar())
    assert fs.scene_names == () and fs.context_fields() == ("hour", "weekday", "weekend", "holiday", "promo", "gap")
    assert set(fs.encode_moment(dt.datetime(2025, 11, 11, 8), {"device": "pc"})) == set(fs.context_fields())


def test_encode_moment_and_promo_override():
    events, items = _frames()
    fs = FeatureSpace.fit(events, items, Calendar(), SCENE)
    m = fs.encode_moment(dt.datetime(2025, 11, 11, 8, 5), {"device": "pc", "channel": "search", "location": "mars"})
    assert m["hour"] == 9 and m["promo"] == 2 and m["device"] == fs.scene["device"].id("pc") and m["location"] == 0
    assert fs.encode_moment(dt.datetime(2025, 11, 11, 8), promo_override=False)["promo"] == 1
    assert fs.encode_moment(dt.datetime(2025, 11, 12, 8), promo_override=True)["promo"] == 2
    assert m["gap"] == 0  # time since the previous event unknown
    gaps = [fs.encode_moment(dt.datetime(2025, 11, 12, 8), since_last_event_s=s)["gap"] for s in (float("nan"), -5, 90, 3 * 86400)]
    assert gaps == [1, 0, int(gap_bucket(np.array([90.0]))[0]), int(gap_bucket(np.array([3 * 86400.0]))[0])]


def test_slice_labels():
    assert hour_bucket(np.array([0, 1, 9, 13, 16, 20])).tolist() == ["unknown", "night", "morning", "midday", "afternoon", "evening"]
    assert [log2_bucket_label(n) for n in (0, 1, 2, 3, 5, 16, 17)] == ["0", "1-2", "1-2", "3-4", "5-8", "9-16", "17-32"]


def test_vocabulary_extend_appends_new_values_and_keeps_old_ids():
    v = Vocabulary.fit(["pc", "mobile"])
    assert v.extend(["watch", "pc", None, "unknown", "car", "watch"]) == ["car", "watch"]  # sorted, known/unknown skipped
    assert v.to_list() == ["mobile", "pc", "car", "watch"] and v.id("mobile") == 1 and v.id("pc") == 2 and v.id("watch") == 4
    assert v.encode(["watch"] * 300).tolist() == [4] * 300  # the vectorised path sees the new ids too
    assert v.extend(["pc"]) == [] and len(v) == 5


def test_feature_space_extend_grows_items_categories_and_scene_values():
    items = pd.DataFrame({"item_id": ["a", "b"], "category": ["coffee", "games"], "price": [10.0, 200.0]})
    events = pd.DataFrame({"item_id": ["a", "b"], "behavior": ["pv", "buy"], "device": ["pc", "mobile"]})
    fs = FeatureSpace.fit(events, items, Calendar(), [scene_field("device")])
    before = fs.to_dict()
    new_items = pd.DataFrame({"item_id": ["a", "b", "t0", "z9"], "category": ["coffee", "games", "tea", None],
                              "price": [10.0, 200.0, 150.0, None]})
    new_events = pd.DataFrame({"item_id": ["t0", "a", "z9", "x1"], "behavior": ["pv", "pv", "cart", "pv"],
                               "device": ["watch", "pc", "unknown", "mobile"]})
    added = fs.extend(new_events, new_items)
    assert added == {"items": ["t0", "x1", "z9"], "category": ["tea"], "behavior": [], "device": ["watch"]}
    assert fs.items.to_list()[:2] == before["items"] and fs.items.id("t0") == 3 and fs.n_items == 5
    assert fs.item_category.tolist()[:3] == before["item_category"] and fs.item_category[3] == fs.category.id("tea") == 3
    assert fs.item_category[4] == 0 and fs.item_category[5] == 0  # x1: no catalogue row; z9: no category
    assert fs.item_price_band[3] == price_bands(np.array([150.0]), before["price_edges"])[0] and fs.price_edges == before["price_edges"]
    assert fs.scene["device"].to_list() == before["scene"]["device"] + ["watch"]
    assert fs.vocab_sizes()["item"] == 6 and fs.vocab_sizes()["device"] == 4
    assert FeatureSpace.from_dict(fs.to_dict()).items == fs.items  # saved and read back as grown
