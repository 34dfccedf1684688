"""AppTest of the Push review page on the small store with pushes made by two tiny models:
filters, the stored reasons, the live re-explanation, the model-changed warning, CSV export."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import torch

from recsys_core import push, recommend, registry
from recsys_core.context import Scenario
from recsys_core.i18n import t
from recsys_core.store import connect
from tests.app_db import build_small_store, open_app_page
from tests.explain_models import save_tiny_model

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PAGE = "views/push_review.py"
torch.set_num_threads(1)
MORNING = Scenario(dt.datetime(2024, 11, 18, 8, 0), {"device": "mobile", "channel": "push", "location": "commute"})
EVENING = Scenario(dt.datetime(2024, 11, 19, 20, 0), {"device": "pc", "channel": "search", "location": "home"})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(db, live model dir, other model dir, {name: push ids}): u0 pushed by the live model with reasons,
    u1 by another model with reasons, u2 without reasons."""
    root = tmp_path_factory.mktemp("review")
    db = build_small_store(root / "small.duckdb")
    live_dir, other_dir = save_tiny_model(root / "tiny"), save_tiny_model(root / "tiny_b", seed=1)
    live, other = registry.load_model(live_dir), registry.load_model(other_dir)
    con = connect(db)
    try:
        ids = {
            "u0": push.record_pushes_with_reasons(con, live, "u0", MORNING, recommend.recommend(live, con, "u0", MORNING, k=3)),
            "u1": push.record_pushes_with_reasons(con, other, "u1", EVENING, recommend.recommend(other, con, "u1", EVENING, k=2)),
            "u2": push.record_pushes(con, live, "u2", MORNING, recommend.recommend(live, con, "u2", MORNING, k=1)),
        }
    finally:
        con.close()
    return db, live_dir, other_dir, ids


def test_list_filters_and_csv(monkeypatch, world):
    db, live_dir, _, ids = world
    at = open_review(monkeypatch, db, [live_dir])
    table = at.dataframe[0].value
    assert len(table) == 6
    reasons = table[t("review.col.reason", "en")]
    assert (reasons.str.len() > 0).sum() == 5  # u2's push has none
    assert len(at.get("download_button")) == 1
    at.text_input(key="review_user").input("u1").run()
    assert not at.exception and len(at.dataframe[0].value) == 2
    at.text_input(key="review_user").input("").run()
    at.multiselect(key="review_scene_device").set_value(["pc"]).run()
    assert set(at.dataframe[0].value[t("review.col.user_id", "en")]) == {"u1"}
    at.multiselect(key="review_scene_device").set_value([]).run()
    live_version = registry.read_metadata(live_dir)["version"]
    at.multiselect(key="review_model").set_value([live_version]).run()
    assert set(at.dataframe[0].value[t("review.col.user_id", "en")]) == {"u0", "u2"}


def test_open_a_push_with_its_stored_reasons_and_re_explain_it(monkeypatch, world):
    db, live_dir, _, ids = world
    push_id = ids["u0"][0]
    at = open_review(monkeypatch, db, [live_dir], {"push": push_id})
    assert at.selectbox(key="review_push").value == push_id
    stored = at.info[0].value
    assert stored.startswith("Ranked") and stored.endswith(".")
    assert not any("was made by model" in w.value for w in at.warning)
    at.button(key="review_reexplain").click().run()
    assert not at.exception
    live = at.info[1].value
    assert live.startswith(("Ranked", "Pushed"))
    version = registry.read_metadata(live_dir)["version"]
    assert any(c.value.startswith(f"Live model `{version}`") for c in at.caption)
    # same model, same moment and history: the live Shapley values are the stored ones
    frame = at.dataframe[1].value
    stored_col, live_col = t("review.col.stored", "en"), t("review.col.live", "en")
    assert (frame[stored_col] - frame[live_col]).abs().max() < 1e-3


def test_a_push_from_another_model_warns(monkeypatch, world):
    db, live_dir, other_dir, ids = world
    at = open_review(monkeypatch, db, [live_dir], {"push": ids["u1"][0]})
    other_version = registry.read_metadata(other_dir)["version"]
    assert any(other_version in w.value and "live model" in w.value for w in at.warning)


def test_a_push_without_reasons(monkeypatch, world):
    db, live_dir, _, ids = world
    at = open_review(monkeypatch, db, [live_dir], {"push": ids["u2"][0]})
    assert t("review.no_reasons", "en") in [w.value for w in at.warning]


def test_no_pushes_yet(monkeypatch, tmp_path):
    db = build_small_store(tmp_path / "empty_pushes.duckdb")
    at = open_review(monkeypatch, db, [])
    assert at.info[0].value == t("review.no_pushes", "en")


def test_chinese(monkeypatch, world):
    db, live_dir, _, ids = world
    at = open_review(monkeypatch, db, [live_dir], {"push": ids["u0"][0], "lang": "zh"})
    assert at.title[0].value == t("review.title", "zh")
    assert at.info[0].value.startswith("排名")


def open_review(monkeypatch, db: Path, dirs: list[Path], params: dict[str, str] | None = None):
    return open_app_page(monkeypatch, db, PAGE, params, model_dirs=dirs)
