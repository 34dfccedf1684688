"""AppTest of the Models page: a card per model folder, and two models compared on the same cases with the
same numbers as `python -m recsys_core compare`."""

from __future__ import annotations

import argparse

import pytest

from recsys_core import evaluate, train
from recsys_core.i18n import t
from recsys_core.store import connect
from tests.app_db import build_small_store, open_app_page

PAGE = "views/model_cards.py"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small store, two models trained on it, and one folder that is not a readable model."""
    folder = tmp_path_factory.mktemp("models-page")
    db = build_small_store(folder / "small.duckdb")
    con = connect(db, read_only=True)
    try:
        for model_type in ("pop", "context_pop"):
            train.train(con, model_type, "next_event", folder / model_type, train.TrainConfig(seed=3), progress=False)
    finally:
        con.close()
    broken = folder / "broken"
    broken.mkdir()
    (broken / "metadata.json").write_text("{not json")
    return db, [folder / "pop", folder / "context_pop", broken]


def test_cards_then_two_models_side_by_side(monkeypatch, world):
    db, dirs = world
    at = open_app_page(monkeypatch, db, PAGE, model_dirs=dirs)
    cards = at.dataframe[0].value
    types = list(cards[t("models.col.type", "en")])
    assert types[:2] == ["pop", "context_pop"]
    assert types[2].startswith("cannot be read: ") and "corrupt" in types[2]  # the broken folder says why
    assert list(cards[t("models.col.data", "en")])[:2] == [t("models.this_data", "en")] * 2
    assert list(cards[t("models.col.protocol", "en")])[:2] == ["next_event"] * 2
    assert all(int(p.replace(",", "")) > 0 for p in cards[t("models.col.parameters", "en")][:2])

    pick = at.multiselect(key="models_pick")
    assert len(pick.value) == 2  # the two trained on this database are chosen first
    at.button(key="models_compare").click().run()
    assert not at.exception
    table = at.dataframe[1].value
    assert list(table[t("models.col.model", "en")]) == ["pop", "context_pop"]

    cli = evaluate.compare_cli(argparse.Namespace(db=str(db), model_dirs=[str(d) for d in dirs[:2]], protocol=None, allow_mismatch=False))
    for row, model in zip(table["NDCG@10"], cli["models"]):
        assert row.startswith(f"{model['metrics']['NDCG@10']:.4f} [")
    tests = at.dataframe[2].value
    assert list(tests[t("models.col.model", "en")]) == ["context_pop"]
    assert tests[t("models.col.diff", "en")].iloc[0] == pytest.approx(cli["tests"][0]["diff"], abs=1e-4)
    assert at.get("plotly_chart")


def test_another_protocol_is_refused_with_the_message(monkeypatch, world, tmp_path):
    db, dirs = world
    con = connect(db, read_only=True)
    try:
        train.train(con, "pop", "next_session", tmp_path / "pop_session", train.TrainConfig(seed=3), progress=False)
    finally:
        con.close()
    at = open_app_page(monkeypatch, db, PAGE, model_dirs=[dirs[0], tmp_path / "pop_session"])
    at.button(key="models_compare").click().run()
    assert not at.exception
    assert at.error and "next_event" in at.error[0].value and "next_session" in at.error[0].value


def test_where_each_model_wins(monkeypatch, world):
    db, dirs = world
    monkeypatch.setattr(evaluate, "MIN_SLICE_CASES", 5)  # 20 test cases here: some slices judged, some too small
    at = open_app_page(monkeypatch, db, PAGE, model_dirs=dirs[:2])
    at.button(key="models_compare").click().run()
    assert not at.exception
    import json

    heat = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if json.loads(c.proto.spec)["data"][0]["type"] == "heatmap")
    trace = heat["data"][0]
    rows, text = trace["y"], trace["text"]
    assert any(r.startswith("Device: ") for r in rows)  # a scene field of the schema, by its label
    assert any(r.startswith(t("models.slice.hour_bucket", "en")) for r in rows)
    # a judged row marks exactly one winner; a row too small to judge marks none and has no colour
    judged = 0
    for row, row_text, z in zip(rows, text, trace["z"]):
        stars = sum(cell.endswith("★") for cell in row_text)
        n = int(row.rsplit("(n=", 1)[1].rstrip(")"))
        assert stars == (0 if n < 5 else 1) and all(v is None for v in z) == (n < 5), row
        judged += n >= 5
    assert 0 < judged < len(rows)
