"""Stored evaluations: `compare`/`evaluate` and the Models page reuse rankings keyed by model version + data hash +
protocol; popularity bias and novelty of the top-10; the case table that links a slice to its cases."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from recsys_core import evaluate as ev
from recsys_core.store import connect
from tests.test_evaluate import sample_models  # noqa: F401 — the sample world with pop and covisit trained


def compare(db, root, store, **kw):
    con = connect(db, read_only=True)
    try:
        return ev.compare_models(con, [str(root / "pop"), str(root / "covisit")], "next_session", store=store, **kw)
    finally:
        con.close()


def test_second_comparison_ranks_nothing_and_gives_the_same_numbers(sample_models, tmp_path, monkeypatch):
    db, root, _ = sample_models
    store = ev.EvaluationStore(tmp_path / "evaluations")
    first = compare(db, root, store)
    assert len(list(store.root.glob("results__*.npz"))) == 2 and len(list(store.root.glob("cases__*.parquet"))) == 1

    def no_ranking(*a, **k):
        raise AssertionError("a stored evaluation was ranked again")

    monkeypatch.setattr(ev, "rank_cases", no_ranking)
    monkeypatch.setattr(ev, "_load_cases", no_ranking)
    again = compare(db, root, store)
    assert again["table"] == first["table"] and again["tests"] == first["tests"]
    assert again["models"][1]["slices"] == first["models"][1]["slices"]


def test_a_damaged_stored_file_is_recomputed_not_trusted(sample_models, tmp_path):
    db, root, _ = sample_models
    store = ev.EvaluationStore(tmp_path / "ev")
    first = compare(db, root, store)
    for f in store.root.glob("results__*.npz"):
        f.write_bytes(b"not a numpy file")
    assert compare(db, root, store)["table"] == first["table"]


def test_the_cli_fills_the_store_beside_the_database(sample_models):
    db, root, _ = sample_models
    out = ev.evaluate_cli(argparse.Namespace(model_dir=str(root / "covisit"), protocol=None, db=str(db), allow_mismatch=False))
    stored = list((db.parent / "evaluations").glob("results__covisit-*__next_session.npz"))
    assert len(stored) == 1 and out["novelty@10"] > 0


def test_popularity_bias_and_novelty_separate_pop_from_covisit(sample_models, tmp_path):
    db, root, _ = sample_models
    out = compare(db, root, ev.EvaluationStore(tmp_path / "e"))
    pop, cov = out["models"]
    assert pop["popularity_pct@10"] > 95 and pop["popularity_pct@10"] > cov["popularity_pct@10"]
    assert cov["novelty@10"] > pop["novelty@10"] > 0
    assert out["table"][0]["popularity_pct@10"] == pop["popularity_pct@10"]


def test_popularity_percentile_and_novelty_by_hand():
    pop = pd.Series({"a": 0.5, "b": 0.25, "c": 0.125, "d": 0.125})
    pct, nov = ev.popularity_bias_and_novelty(np.array(["a", "b", "zz"], dtype=object), pop)
    assert pct == pytest.approx((100 + 75) / 2)  # "zz" is not in the database: left out
    assert nov == pytest.approx((1 + 2) / 2)


def test_case_table_links_each_case_to_its_moment(sample_models, tmp_path):
    db, root, _ = sample_models
    out = compare(db, root, ev.EvaluationStore(tmp_path / "c"), with_cases=True)
    cases = out["cases"]
    assert len(cases) == out["n_users"] and {"user_id", "target_item", "target_at", "rank:pop", "rank:covisit"} <= set(cases.columns)
    assert cases["target_at"].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d$").all()
    assert "target_at" not in ev.slice_names(cases)
    # the hour of the moment is the case's hour bucket
    hours = cases["target_at"].str[11:13].astype(int)
    assert (cases.loc[hours.between(6, 10), "hour_bucket"] == "morning").all() and (cases.loc[hours >= 18, "hour_bucket"] == "evening").all()
    # ranks are 1-based and NDCG@10 recomputed from them matches the table
    r = cases["rank:covisit"].to_numpy() - 1
    ndcg = np.where(r < 10, 1 / np.log2(r + 2), 0).mean()
    assert ndcg == pytest.approx(out["models"][1]["metrics"]["NDCG@10"])
