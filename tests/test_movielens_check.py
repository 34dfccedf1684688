"""The MovieLens-shaped generator behind benchmarks/movielens_check.py (the benchmark itself is not run here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "movielens_check.py"
_spec = importlib.util.spec_from_file_location("movielens_check", _PATH)
movielens_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(movielens_check)


def test_ratings_have_the_movielens_shape_and_are_reproducible():
    r = movielens_check.generate_ratings(n_users=60, n_items=300, n_interactions=2400, seed=3)
    assert r.shape == (2400, 4)
    users, items, ratings, ts = r.T
    assert set(np.unique(users)) == set(range(1, 61)) and items.min() >= 1 and items.max() <= 300
    assert np.bincount(users)[1:].min() >= 20  # every user has at least 20 ratings
    assert set(np.unique(ratings)) <= {1, 2, 3, 4, 5}
    for u in (1, 30, 60):  # each user rates a movie once, in strictly increasing time
        mine = r[users == u]
        assert len(np.unique(mine[:, 1])) == len(mine) and (np.diff(mine[:, 3]) > 0).all()
    assert np.array_equal(r, movielens_check.generate_ratings(n_users=60, n_items=300, n_interactions=2400, seed=3))


def test_order_matters_consecutive_movies_are_related():
    """The sequential signal: a movie's successor repeats across users far more than chance."""
    r = movielens_check.generate_ratings(n_users=200, n_items=400, n_interactions=8000, seed=0)
    same_user = r[1:, 0] == r[:-1, 0]
    pairs = r[:-1, 1][same_user] * 1000 + r[1:, 1][same_user]
    shuffled = np.random.default_rng(0).permutation(r[:, 1])
    pairs_null = shuffled[:-1][same_user] * 1000 + shuffled[1:][same_user]
    repeated = lambda p: len(p) - len(np.unique(p))  # noqa: E731
    assert repeated(pairs) > 3 * repeated(pairs_null)


def test_csv_is_headerless_user_item_rating_ts(tmp_path):
    r = movielens_check.generate_ratings(n_users=20, n_items=100, n_interactions=400, seed=1)
    movielens_check.write_csv(r, tmp_path / "r.csv")
    rows = np.loadtxt(tmp_path / "r.csv", delimiter=",", dtype=np.int64)
    assert rows.shape == (400, 4)
    assert sorted(map(tuple, rows)) == sorted(map(tuple, r))
