"""Evaluation: metric functions on hand-computed cases, ranks, intervals, paired tests, slices."""

from __future__ import annotations

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


# --- slices --------------------------------------------------------------------------------------


def test_slices_give_counts_and_means_per_value():
    per_case = ev.per_case_metrics(np.array([0, 0, 30, 30, 1]))
    out = ev.slice_metrics(per_case, {"device": ["pc", "pc", "mobile", "mobile", "pc"]})
    assert out["device"]["pc"]["n"] == 3 and out["device"]["mobile"]["n"] == 2
    assert out["device"]["mobile"]["NDCG@10"] == 0.0
    assert out["device"]["pc"]["HR@10"] == 1.0


def test_bucket_labels():
    assert list(ev.hour_bucket_labels(np.array([0, 7, 13, 23]))) == ["00-05 night", "06-09 morning", "10-13 midday", "22-23 late"]
    assert list(ev.history_length_labels(np.array([1, 4, 60]))) == ["0-2", "3-5", "51+"]
