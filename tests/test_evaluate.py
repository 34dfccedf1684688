"""Evaluation: metric functions on hand-computed cases, ranks, intervals, paired tests, slices."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from recsys_core import evaluate as ev

torch.set_num_threads(1)
NEG_INF = float("-inf")


# --- ranks ---------------------------------------------------------------------------------


def test_target_rank_counts_better_items_and_ignores_padding_column():
    scores = torch.tensor([[100.0, 0.1, 0.5, 0.3, 0.9], [NEG_INF, 0.1, 0.5, 0.3, 0.9]])
    ranks = ev.target_ranks(scores, torch.tensor([3, 4]))
    assert ranks.tolist() == [2, 0]  # item 3 is behind 0.5 and 0.9; item 4 is best


def test_ties_are_pessimistic_so_a_constant_model_ranks_the_target_last():
    scores = torch.zeros(2, 6)
    scores[:, 0] = NEG_INF
    assert ev.target_ranks(scores, torch.tensor([1, 5])).tolist() == [4, 4]


def test_nan_scores_are_refused_not_counted_as_hits():
    scores = torch.tensor([[NEG_INF, 0.2, float("nan"), 0.1]])
    with pytest.raises(ValueError, match="NaN"):
        ev.target_ranks(scores, torch.tensor([1]))


def test_top_k_never_returns_padding():
    scores = torch.tensor([[1e9, 0.1, 0.5, 0.3]])
    assert ev.top_k_items(scores, 2).tolist() == [[2, 3]]
    assert ev.top_k_items(scores, 10).shape == (1, 3)


# --- metrics -------------------------------------------------------------------------------


def test_metrics_on_hand_computed_ranks():
    ranks = np.array([0, 1, 4, 9, 10, 25])
    m = ev.mean_metrics(ev.per_case_metrics(ranks))
    assert set(m) == {f"{name}@{k}" for name in ("HR", "NDCG", "MRR", "Recall") for k in (5, 10, 20)}
    assert m["HR@5"] == pytest.approx(3 / 6)
    assert m["HR@10"] == pytest.approx(4 / 6)
    assert m["HR@20"] == pytest.approx(5 / 6)
    assert m["Recall@10"] == m["HR@10"]
    assert m["NDCG@10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6) + 1 / math.log2(11)) / 6)
    assert m["NDCG@5"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6)) / 6)
    assert m["MRR@10"] == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 10) / 6)
    assert m["MRR@20"] == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 10 + 1 / 11) / 6)


def test_perfect_and_hopeless_rankers():
    assert ev.mean_metrics(ev.per_case_metrics(np.zeros(4, dtype=int)))["NDCG@10"] == 1.0
    assert ev.mean_metrics(ev.per_case_metrics(np.full(4, 20)))["HR@20"] == 0.0


def test_catalogue_coverage():
    top = np.array([[1, 2, 3], [3, 2, 1], [4, 1, 2]])
    assert ev.catalogue_coverage(top, n_items=8) == pytest.approx(4 / 8)


# --- intervals and paired tests ------------------------------------------------------------------


def test_bootstrap_interval_brackets_the_mean_and_is_seeded():
    values = np.random.default_rng(1).random(400)
    ci = ev.bootstrap_ci({"NDCG@10": values}, n_resamples=300, seed=3)["NDCG@10"]
    assert ci[0] < values.mean() < ci[1]
    # standard error of a uniform mean over 400 cases is ~0.0144: the 95% half-width is ~0.028
    assert 0.015 < (ci[1] - ci[0]) / 2 < 0.045
    assert ev.bootstrap_ci({"NDCG@10": values}, n_resamples=300, seed=3)["NDCG@10"] == ci
    assert ev.bootstrap_ci({"x": np.full(10, 0.25)}, n_resamples=50)["x"] == [0.25, 0.25]


def test_paired_test_identical_models_is_not_significant():
    a = np.random.default_rng(2).random(200)
    res = ev.paired_test(a, a.copy(), n_resamples=200, n_permutations=500)
    assert res["diff"] == 0.0 and res["p_value"] == 1.0 and res["ties"] == 200


def test_paired_test_detects_a_consistent_improvement():
    rng = np.random.default_rng(4)
    a = rng.random(300) * 0.5
    b = a + 0.05 + rng.normal(0, 0.02, 300)
    res = ev.paired_test(a, b, n_resamples=300, n_permutations=999, seed=1)
    assert res["p_value"] == pytest.approx(1 / 1000)
    assert res["diff"] == pytest.approx(0.05, abs=0.01)
    assert 0 < res["diff_ci95"][0] < res["diff"] < res["diff_ci95"][1]
    assert res["rel_diff"] == pytest.approx(b.mean() / a.mean() - 1)
    assert res["rel_diff_ci95"][0] > 0


def test_paired_test_noise_only_gives_a_large_p_value():
    rng = np.random.default_rng(5)
    a = rng.random(300)
    b = a + rng.normal(0, 0.1, 300)
    b -= b.mean() - a.mean()  # exactly no mean difference
    assert ev.paired_test(a, b, n_resamples=100, n_permutations=999)["p_value"] > 0.5


# --- several cases per shopper (time_split): shoppers are the unit ----------------------------------------


def test_cluster_bootstrap_and_paired_test_equal_the_case_level_ones_with_one_case_per_shopper():
    rng = np.random.default_rng(6)
    a, b = rng.random(150), rng.random(150)
    ids = rng.permutation([f"u{i}" for i in range(150)])  # unsorted ids: the order of the cases is kept
    per_case = {"NDCG@10": a, "HR@10": b}
    assert ev.bootstrap_ci(per_case, 200, seed=2, shoppers=ids) == ev.bootstrap_ci(per_case, 200, seed=2)
    clustered = ev.paired_test(a, b, 200, 999, seed=3, shoppers=ids)
    plain = ev.paired_test(a, b, 200, 999, seed=3)
    assert clustered == plain and plain["n_shoppers"] == plain["n"] == 150
    pc, labels = ev.per_case_metrics(rng.integers(0, 40, 150)), {"d": np.array(["x", "y"] * 75)}
    sl = ev.slice_metrics(pc, labels, n_resamples=50, shoppers=ids)
    assert sl == ev.slice_metrics(pc, labels, n_resamples=50) and sl["d"]["x"]["n"] == sl["d"]["x"]["n_shoppers"] == 75


def test_cluster_bootstrap_resamples_shoppers_with_all_their_cases():
    rng = np.random.default_rng(7)
    shopper_values = rng.random(40)
    repeats = rng.integers(1, 6, 40)  # 1 to 5 identical cases per shopper
    values = np.repeat(shopper_values, repeats)
    ids = np.repeat([f"s{i}" for i in range(40)], repeats)
    clustered = ev.bootstrap_ci({"m": values}, 500, seed=1, shoppers=ids)["m"]
    naive = ev.bootstrap_ci({"m": values}, 500, seed=1)["m"]
    assert clustered[0] < values.mean() < clustered[1]
    assert clustered[1] - clustered[0] > 1.3 * (naive[1] - naive[0])  # cases of one shopper are not independent
    # by hand: the same draws over shoppers, each draw's mean over all the drawn shoppers' cases
    draws = np.random.default_rng(1).integers(0, 40, size=(500, 40))
    means = (shopper_values * repeats)[draws].sum(1) / repeats[draws].sum(1)
    assert clustered == pytest.approx(list(np.quantile(means, [0.025, 0.975])))
    # the paired test counts shoppers and flips a shopper's cases together
    test = ev.paired_test(values, values + 0.01 * np.repeat(rng.normal(size=40), repeats), 200, 999, shoppers=ids)
    assert (test["n"], test["n_shoppers"]) == (len(values), 40)
    sl = ev.slice_metrics(ev.per_case_metrics(np.zeros(len(values), np.int64)), {"all": ["x"] * len(values)}, shoppers=ids)
    assert (sl["all"]["x"]["n"], sl["all"]["x"]["n_shoppers"]) == (len(values), 40)


# --- slices --------------------------------------------------------------------------------------


def test_slices_give_counts_and_means_per_value_in_natural_order():
    per_case = ev.per_case_metrics(np.array([0, 0, 30, 30, 1]))
    out = ev.slice_metrics(per_case, {"device": ["pc", "pc", "mobile", "mobile", "pc"], "history_length": ["17-32", "3-4", "3-4", "1-2", "1-2"]})
    assert out["device"]["pc"]["n"] == 3 and out["device"]["mobile"]["n"] == 2
    assert out["device"]["mobile"]["NDCG@10"] == 0.0
    assert out["device"]["pc"]["HR@10"] == 1.0
    assert list(out["history_length"]) == ["1-2", "3-4", "17-32"]
    with_ci = ev.slice_metrics(per_case, {"device": ["pc"] * 5}, n_resamples=50)
    lo, hi = with_ci["device"]["pc"]["NDCG@10_ci95"]
    assert lo <= with_ci["device"]["pc"]["NDCG@10"] <= hi


# --- evaluating model folders end to end (sample world, count-based models: seconds) ----------------


class _NaNModel(torch.nn.Module):
    """A broken model whose scores contain NaN: evaluation must refuse it, not score it perfectly."""

    model_type = "nan"
    history_len = 5

    def __init__(self, n_items: int):
        super().__init__()
        self.n_items = n_items

    def score_all(self, batch):
        scores = torch.full((batch.size, self.n_items + 1), float("nan"))
        scores[:, 0] = NEG_INF
        return scores


@pytest.fixture(scope="module")
def sample_models(tmp_path_factory):
    from recsys_core import synth, train
    from recsys_core.sequences import SequenceData
    from recsys_core.store import connect

    root = tmp_path_factory.mktemp("evaluate")
    db = root / "sample.duckdb"
    synth.build_sample_database(db)
    con = connect(db, read_only=True)
    try:
        data = SequenceData.from_store(con)
        for model_type in ("pop", "covisit"):
            train.train(con, model_type, "next_session", root / model_type, progress=False, data=data)
    finally:
        con.close()
    return db, root, data


def test_evaluate_model_returns_the_documented_fields(sample_models):
    from recsys_core.registry import load_model

    db, root, data = sample_models
    split = data.split("next_session")
    out = ev.evaluate_model(load_model(root / "pop").model, split, n_resamples=100)
    assert out["model"] == "pop" and out["protocol"] == "next_session" and out["ranking"] == "full"
    assert out["n_users"] == len(split.test) > 0
    assert set(out["metrics"]) == set(out["ci95"]) and "Recall@20" in out["metrics"]
    assert set(out["slices"]) == {"hour_bucket", "day_type", "device", "channel", "location", "promo_day", "history_length", "target_kind"}
    assert sum(v["n"] for v in out["slices"]["device"].values()) == out["n_users"]
    assert 0 < out["coverage@10"] <= 10 / out["n_items"] + 1e-9  # pop recommends one list to everyone


def test_nan_scores_stop_the_evaluation(sample_models):
    _, _, data = sample_models
    with pytest.raises(ValueError, match="NaN"):
        ev.rank_cases(_NaNModel(data.features.n_items), data.split("next_event").test)


def test_evaluate_cli_uses_the_trained_protocol(sample_models):
    import argparse

    db, root, _ = sample_models
    out = ev.evaluate_cli(argparse.Namespace(model_dir=str(root / "covisit"), protocol=None, db=str(db), allow_mismatch=False))
    assert out["protocol"] == "next_session" and out["evaluation"].startswith("full ranking, next_session")
    assert out["model"] == "covisit" and out["data_matches_training"] is True
    assert {"NDCG@10", "HR@10", "MRR@10"} <= set(out["metrics"])
    lo, hi = out["ci95"]["NDCG@10"]
    assert lo < out["metrics"]["NDCG@10"] < hi
    # the same numbers as the metrics recorded at training time (same cases, same model)
    trained = json.loads((root / "covisit" / "metadata.json").read_text())["metrics"]["test"]
    assert out["metrics"]["NDCG@10"] == pytest.approx(trained["NDCG@10"])


def test_compare_cli_pairs_models_on_the_same_cases(sample_models):
    import argparse

    db, root, _ = sample_models
    out = ev.compare_cli(argparse.Namespace(model_dirs=[str(root / "pop"), str(root / "covisit")], protocol="next_session", db=str(db),
                                            allow_mismatch=False))
    assert out["protocol"] == "next_session" and out["ranking"] == "full"
    assert [row["model"] for row in out["table"]] == ["pop", "covisit"]
    (test,) = out["tests"]
    assert (test["a"], test["b"]) == ("pop", "covisit") and test["n"] == out["n_users"]
    # on the sample world co-visitation clearly beats popularity
    assert out["best"] == "covisit" and test["p_value"] < 0.01 and test["diff_ci95"][0] > 0
    assert out["table"][1]["rel_NDCG@10_vs_pop"] == pytest.approx(test["rel_diff"], abs=1e-4)


def test_evaluate_refuses_another_protocol_unless_allowed(sample_models):
    import argparse

    db, root, _ = sample_models
    args = dict(model_dir=str(root / "covisit"), protocol="next_event", db=str(db))
    with pytest.raises(ev.ProtocolMismatchError, match="covisit was trained under next_session, not next_event"):
        ev.evaluate_cli(argparse.Namespace(**args, allow_mismatch=False))
    out = ev.evaluate_cli(argparse.Namespace(**args, allow_mismatch=True))
    assert out["mismatch"] is True and out["protocol"] == "next_event"
    assert ev.evaluate_cli(argparse.Namespace(**{**args, "protocol": None}, allow_mismatch=False))["mismatch"] is False


def test_compare_refuses_a_model_trained_on_other_data(sample_models, tmp_path):
    import argparse
    import shutil

    db, root, _ = sample_models
    other = tmp_path / "other.duckdb"
    shutil.copyfile(db, other)
    from recsys_core.store import connect

    con = connect(other)
    con.execute("DELETE FROM events WHERE user_id = (SELECT min(user_id) FROM events)")
    con.close()
    args = argparse.Namespace(model_dirs=[str(root / "pop"), str(root / "covisit")], protocol=None, db=str(other), allow_mismatch=False)
    with pytest.raises(ev.ProtocolMismatchError, match="pop was trained on other data .* this database has events"):
        ev.compare_cli(args)
    args.allow_mismatch = True
    assert ev.compare_cli(args)["mismatch"] is True


def test_cli_exit_code_and_one_line_message_for_a_protocol_mismatch(sample_models):
    import subprocess
    import sys

    db, root, _ = sample_models
    cmd = [sys.executable, "-m", "recsys_core", "evaluate", "--model-dir", str(root / "pop"), "--protocol", "next_event", "--db", str(db), "--json"]
    refused = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip().count("\n") == 0 and "trained under next_session, not next_event" in refused.stderr
    allowed = subprocess.run(cmd + ["--allow-mismatch"], capture_output=True, text=True, timeout=300)
    assert allowed.returncode == 0 and json.loads(allowed.stdout)["mismatch"] is True


def test_slice_winners_name_the_best_model_per_slice_and_leave_small_slices_unjudged():
    from recsys_core.evaluate import slice_winners

    models = [
        {"model": "a", "slices": {"device": {"mobile": {"n": 40, "NDCG@10": 0.3}, "pc": {"n": 40, "NDCG@10": 0.1},
                                             "tablet": {"n": 5, "NDCG@10": 0.9}}}},
        {"model": "b", "slices": {"device": {"mobile": {"n": 40, "NDCG@10": 0.2}, "pc": {"n": 40, "NDCG@10": 0.4},
                                             "tablet": {"n": 5, "NDCG@10": 0.1}}}},
    ]
    rows = slice_winners(models, min_cases=30)
    assert [(r["value"], r["winner"], r["too_small"]) for r in rows] == [("mobile", "a", False), ("pc", "b", False), ("tablet", None, True)]
    assert rows[1]["scores"] == {"a": 0.1, "b": 0.4}
