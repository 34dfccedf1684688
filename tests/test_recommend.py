"""The serving API: Scenario, recommend, score_scenarios, CLI output, unknown and cold shoppers;
and context sensitivity of the BUNDLED model on the sample world (no training in these tests)."""

import argparse
import datetime as dt
import json
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import torch

from recsys_core import recommend as rec
from recsys_core.recommend import Scenario, UnknownUserError
from recsys_core.registry import save_model
from recsys_core.sequences import SequenceData
from recsys_core.store import connect
from recsys_core.train import TrainConfig, build_neural_model
from tests.tiny_world import build_tiny_store

SH = ZoneInfo("Asia/Shanghai")


def S(device: str, channel: str, location: str) -> dict[str, str]:
    """The sample world's scene as a scenario's scene dict."""
    return {"device": device, "channel": channel, "location": location}


# --- API on the tiny world --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec")
    db = build_tiny_store(root / "w.duckdb")
    con = connect(db, read_only=True)
    data = SequenceData.from_store(con)
    torch.manual_seed(0)
    model = build_neural_model("context_transformer", data.features, TrainConfig(d_model=16, max_len=8)).eval()
    save_model(model, data.features, root / "models" / "ct", {"protocol": "next_session"})
    lm = rec.load_model(root / "models" / "ct")
    yield lm, con, db, root
    con.close()


def test_recommend_returns_a_ranked_frame_with_item_details(tiny):
    lm, con, _, _ = tiny
    top = rec.recommend(lm, con, "u1", Scenario(dt.datetime(2025, 11, 20, 8, tzinfo=SH), S("mobile", "push", "home")), k=5)
    assert list(top.columns) == ["item_id", "rank", "score", "title", "title_zh", "category", "category_zh", "price"]
    assert top["rank"].tolist() == [1, 2, 3, 4, 5] and top["score"].is_monotonic_decreasing
    assert top["title"].notna().all() and np.isfinite(top["score"]).all()
    assert top.attrs["cold_start"] is False and top.attrs["history_length"] == 8 and top.attrs["model_version"] == lm.version


def test_a_served_model_uses_one_thread_for_torch_and_for_numpys_blas(tiny):
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(2, user_api="blas"):  # as numpy starts on a 2-core machine
        rec.load_model(tiny[3] / "models" / "ct")
        blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    assert blas and set(blas) == {1} and torch.get_num_threads() == 1  # idle OpenBLAS threads spin (docs/pitfalls.md)


def test_score_scenarios_is_one_batch_consistent_with_recommend(tiny):
    lm, con, _, _ = tiny
    base = Scenario(dt.datetime(2025, 11, 20, 0, tzinfo=SH), S("pc", "search", "office"))
    sweep = rec.score_scenarios(lm, con, "u2", [base.at_hour(h) for h in range(24)])
    assert sweep.shape == (24, lm.model.n_items) and np.isfinite(sweep).all()
    top = rec.recommend(lm, con, "u2", base.at_hour(8), k=3)
    best = np.argsort(-sweep[8])[:3]
    assert [lm.features.items.values[j] for j in best] == top["item_id"].tolist()
    assert np.allclose(np.sort(sweep[8])[::-1][:3], top["score"].to_numpy(), atol=1e-5)


def test_scenario_time_zones_naive_is_local():
    naive = Scenario(dt.datetime(2025, 11, 11, 8, 0))
    aware = Scenario(dt.datetime(2025, 11, 11, 0, 0, tzinfo=dt.timezone.utc))
    assert naive.local_time("Asia/Shanghai") == aware.local_time("Asia/Shanghai") == dt.datetime(2025, 11, 11, 8, 0)
    assert naive.at_hour(21).at.hour == 21 and json.dumps(naive.to_dict())


def test_unknown_shopper_is_a_clear_error_and_profile_only_is_a_cold_start(tiny):
    lm, con, _, _ = tiny
    sc = Scenario(dt.datetime(2025, 11, 20, 8, tzinfo=SH))
    with pytest.raises(UnknownUserError, match="unknown shopper 'nobody'"):
        rec.recommend(lm, con, "nobody", sc)
    cold = rec.recommend(lm, con, "profile_only", sc, k=5)
    assert cold.attrs["cold_start"] is True and len(cold) == 5 and np.isfinite(cold["score"]).all()


def test_exclude_seen_and_history_before(tiny):
    lm, con, _, _ = tiny
    sc = Scenario(dt.datetime(2025, 11, 20, 8, tzinfo=SH))
    seen = set(con.execute("SELECT DISTINCT item_id FROM events WHERE user_id = 'u3'").df()["item_id"])
    fresh = rec.recommend(lm, con, "u3", sc, k=24, exclude_seen=True)
    assert not seen & set(fresh["item_id"]) and len(fresh) == 24 - len(seen)
    past = rec.recommend(lm, con, "u3", sc, history_before=dt.datetime(2025, 11, 1, tzinfo=SH))
    assert past.attrs["cold_start"] is True  # nothing before the world began


def test_recommend_cli_prints_the_contract(tiny):
    lm, _, db, root = tiny
    args = argparse.Namespace(user="u4", at="2025-11-11T08:00", scene={"device": "mobile", "location": "commute"}, k=3,
                              model_dir=str(root / "models" / "ct"), db=str(db), json=True)
    out = rec.recommend_cli(args)
    json.dumps(out, ensure_ascii=False)
    assert len(out["items"]) == 3 and {"item_id", "score", "rank", "title", "category"} <= set(out["items"][0])
    assert out["user"] == "u4" and out["at"].startswith("2025-11-11T08:00:00+08:00")
    assert out["context"]["promo_day"] is True and out["scene"] == {"device": "mobile", "channel": "unknown", "location": "commute"}
    assert out["model"]["version"] == lm.version and out["context_fields"] == list(lm.context_fields)
    with pytest.raises(ValueError, match=r"--scene: the model's data has no field weather \(its scene fields: device, channel, location\)"):
        rec.recommend_cli(argparse.Namespace(**{**vars(args), "scene": {"weather": "rain"}}))


def test_scene_values_the_model_does_not_read_change_nothing(tiny):
    lm, con, _, _ = tiny
    at = dt.datetime(2025, 11, 20, 8, tzinfo=SH)
    assert "channel" not in lm.context_fields
    a = rec.score_scenarios(lm, con, "u1", [Scenario(at, S("mobile", "push", "home")), Scenario(at, S("mobile", "search", "home")),
                                             Scenario(at, S("pc", "push", "home"))])
    assert np.array_equal(a[0], a[1]) and not np.allclose(a[0], a[2])


def test_cli_scene_options_and_shorthands(tiny, capsys):
    from recsys_core.cli import main

    _, _, db, root = tiny
    base = ["recommend", "--user", "u4", "--at", "2025-11-11T08:00", "-k", "2", "--model-dir", str(root / "models" / "ct"), "--db", str(db), "--json"]
    assert main(base + ["--scene", "device=pc", "--location", "home"]) == 0
    assert json.loads(capsys.readouterr().out)["scene"] == {"device": "pc", "channel": "unknown", "location": "home"}
    assert main(base + ["--scene", "device"]) == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err


def test_model_listing_and_a_missing_folder(tiny, tmp_path, monkeypatch):
    _, _, _, root = tiny
    assert rec.list_model_dirs(root / "models")[-1] == root / "models" / "ct"
    with pytest.raises(ValueError, match="does not exist"):
        rec.load_model(tmp_path / "nothing")


# --- the bundled model on the sample world -------------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from recsys_core import synth

    db = tmp_path_factory.mktemp("sample") / "sample.duckdb"
    synth.build_sample_database(db)
    con = connect(db, read_only=True)
    users = con.execute("SELECT user_id FROM events GROUP BY user_id ORDER BY hash(user_id) LIMIT 60").df()["user_id"].tolist()
    yield rec.load_model(), con, users
    con.close()


def _mean_count(lm, con, users, scenario, categories):
    counts = [rec.recommend(lm, con, u, scenario, k=10)["category"].isin(categories).sum() for u in users]
    return float(np.mean(counts))


def test_bundled_model_is_small_and_registered():
    lm = rec.load_model()
    assert lm.model_type == "context_transformer" and lm.protocol == "next_session"
    size = sum(p.stat().st_size for p in rec.bundled_model_dir().iterdir())
    assert size < 8 * 2**20, f"bundled model is {size / 2**20:.1f} MiB"
    assert rec.bundled_model_dir() in rec.list_model_dirs()


def test_breakfast_and_coffee_rise_at_08_not_15(sample):
    lm, con, users = sample
    at = dt.datetime(2025, 11, 18, 8, 0, tzinfo=SH)  # a Tuesday
    morning = _mean_count(lm, con, users, Scenario(at, S("mobile", "home_feed", "home")), ["Breakfast", "Coffee"])
    afternoon = _mean_count(lm, con, users, Scenario(at.replace(hour=15), S("mobile", "home_feed", "home")), ["Breakfast", "Coffee"])
    assert morning >= 2 * afternoon + 0.5, (morning, afternoon)


def test_electronics_rise_on_pc(sample):
    lm, con, users = sample
    at = dt.datetime(2025, 11, 18, 14, 0, tzinfo=SH)
    electronics = ["Computer Accessories", "Phones", "Headphones & Speakers"]
    pc = _mean_count(lm, con, users, Scenario(at, S("pc", "home_feed", "home")), electronics)
    mobile = _mean_count(lm, con, users, Scenario(at, S("mobile", "home_feed", "home")), electronics)
    assert pc >= 1.5 * mobile + 0.3, (pc, mobile)


def test_promotion_day_categories_rise_on_11_11(sample):
    lm, con, users = sample
    promo_cats = ["Phones", "Home Appliances", "Computer Accessories", "Headphones & Speakers"]
    on = _mean_count(lm, con, users, Scenario(dt.datetime(2025, 11, 11, 20, 0, tzinfo=SH), S("mobile", "home_feed", "home")), promo_cats)
    off = _mean_count(lm, con, users, Scenario(dt.datetime(2025, 11, 18, 20, 0, tzinfo=SH), S("mobile", "home_feed", "home")), promo_cats)
    forced = _mean_count(
        lm, con, users, Scenario(dt.datetime(2025, 11, 18, 20, 0, tzinfo=SH), S("mobile", "home_feed", "home"), promo_override=True), promo_cats
    )
    assert on > off + 0.3 and forced > off + 0.3, (on, off, forced)


def test_bundled_scores_are_finite_for_every_hour(sample):
    lm, con, users = sample
    base = Scenario(dt.datetime(2025, 11, 18, 0, 0, tzinfo=SH), S("tablet", "live_stream", "city"))
    for u in users[:5]:
        sweep = rec.score_scenarios(lm, con, u, [base.at_hour(h) for h in range(24)])
        assert np.isfinite(sweep).all()
        assert (np.argsort(-sweep[8])[:10] != np.argsort(-sweep[22])[:10]).any()  # the list moves over the day


# --- cold start: scene-aware popularity of the moment ---------------------------------------------------


def test_a_shopper_without_history_gets_the_scene_aware_popularity_of_the_moment(tiny):
    from recsys_core.models.baselines import ContextPopularity, ContextPopularityConfig

    lm, con, _, _ = tiny
    assert rec.cold_start_scene_field(lm) == "device"  # the first scene field the model reads
    reference = ContextPopularity(ContextPopularityConfig(n_items=lm.model.n_items, scene_field="device",
                                                          n_scene=lm.features.vocab_sizes()["device"]))
    reference.fit(SequenceData.from_store(con, features=lm.features).serving_split())
    lists = {}
    for hour, device in ((8, "mobile"), (22, "mobile"), (15, "pc")):
        sc = Scenario(dt.datetime(2025, 11, 20, hour, tzinfo=SH), {"device": device})
        cold = rec.recommend(lm, con, "profile_only", sc, k=6)
        assert cold.attrs["cold_start"] is True and cold.attrs["cold_start_source"] == "context_pop"
        expected = rec.serving_batch({k: np.zeros(0, np.int64) for k in lm.features.history_fields()},
                                     [rec.context_ids(lm, sc, np.zeros(0, "datetime64[s]"))], 1)
        want = torch.topk(reference.score_all(expected)[0], 6).indices.tolist()
        assert cold["item_id"].tolist() == [lm.features.items.decode(i) for i in want]
        lists[(hour, device)] = cold["item_id"].tolist()
    # the planted world: coffee at 08, games at 22, electronics on pc in the afternoon
    assert all(i.startswith("c") for i in lists[(8, "mobile")][:3])
    assert all(i.startswith("g") for i in lists[(22, "mobile")][:3])
    assert all(i.startswith("e") for i in lists[(15, "pc")][:3])
    warm = rec.recommend(lm, con, "u1", Scenario(dt.datetime(2025, 11, 20, 8, tzinfo=SH)), k=3)
    assert warm.attrs["cold_start"] is False and warm.attrs["cold_start_source"] is None


def test_cold_start_sweep_and_note_say_so_in_both_languages(tiny):
    lm, con, _, _ = tiny
    base = Scenario(dt.datetime(2025, 11, 22, 0, tzinfo=SH), {"device": "mobile"})  # a Saturday
    sweep = rec.score_scenarios(lm, con, "profile_only", [base.at_hour(h) for h in range(24)])
    top = rec.recommend(lm, con, "profile_only", base.at_hour(8), k=1)
    assert sweep[8].argmax() + 1 == lm.features.items.encode([top["item_id"][0]])[0]  # the sweep uses the same path
    note = rec.cold_start_note(lm, con, "profile_only", base.at_hour(8))
    assert note["en"].startswith("No history for this shopper yet") and "06:00–09:00" in note["en"] and "weekend" in note["en"]
    assert "device = mobile" in note["en"] and "周末" in note["zh"] and "热门" in note["zh"]
    assert rec.cold_start_note(lm, con, "u1", base.at_hour(8)) is None
    ranked = rec.cold_start_reason(lm, con, base.at_hour(8), top["item_id"][0])
    assert ranked["rank"] == 1 and "#1" in ranked["en"]


def test_cold_start_cli_output_carries_the_note(tiny, capsys):
    from recsys_core.cli import main

    _, _, db, root = tiny
    assert main(["recommend", "--db", str(db), "--model-dir", str(root / "models" / "ct"), "--user", "profile_only",
                 "--at", "2025-11-20T22:10", "--device", "mobile", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cold_start"] is True and "21:00–24:00" in out["cold_start_note"] and "device = mobile" in out["cold_start_note"]
    assert all(i["item_id"].startswith("g") for i in out["items"][:3])
