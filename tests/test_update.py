"""Warm-started updates: growing vocabularies keep old ids and rows, new items and scene values are scored,
the lineage counts what was added, bad requests are refused in one line, and the CLI speaks JSON."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import torch

from recsys_core import cli, registry
from recsys_core import update as upd
from recsys_core.sequences import SequenceData, parse_cut
from recsys_core.store import connect
from recsys_core.train import TrainConfig, read_training_data, train
from tests.tiny_world import build_tiny_store

TZ = "Asia/Shanghai"
UNTIL = "2025-11-15"  # the parent's time_split cut (start of the tiny world's last 7 days)
TINY = TrainConfig(epochs=1, max_len=20, d_model=16, seed=3)


def add_new_week(db: Path) -> None:
    """A new item (t0, a new category "tea") and a new device ("watch") after the parent's cut-off: every
    shopper views t0 on a watch at 08:00 on 11-10 and 11-12 (local), u0 also a dozen times on 11-13."""
    con = connect(db)
    con.execute("INSERT INTO items VALUES ('t0', 'tea 0', '茶0', 'tea', 'tea', 'brand', 12.0)")
    rows = [(f"u{u}", "t0", "pv", dt.datetime(2025, 11, day, 0, u), "watch", "home_feed", "home") for u in range(24) for day in (10, 12)]
    rows += [("u0", "t0", "pv", dt.datetime(2025, 11, 13, 0, 0) + dt.timedelta(minutes=m), "watch", "home_feed", "home") for m in range(12)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "behavior", "ts", "device", "channel", "location"])  # ts: UTC (08:00 local)
    con.register("new_week", frame)
    con.execute("INSERT INTO events (user_id, item_id, behavior, ts, seq, source_run, device, channel, location) "
                "SELECT user_id, item_id, behavior, ts, 100000 + row_number() OVER (ORDER BY user_id, ts), 'new', device, channel, location "
                "FROM new_week")
    con.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("update")
    db = build_tiny_store(root / "tiny.duckdb")
    data, fingerprint = read_training_data(str(db))
    train(None, "context_transformer", "time_split", root / "parent", TINY, progress=False, data=data, fingerprint=fingerprint)
    add_new_week(db)
    child = upd.update(root / "parent", UNTIL, root / "child", upd.UpdateConfig(epochs=1, seed=3), db=str(db))
    return {"root": root, "db": db, "parent": root / "parent", "child": root / "child", "summary": child}


def events_between(db: Path, since_iso: str, until_ts: int) -> tuple[int, int, str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        since = pd.Timestamp(since_iso).tz_convert("UTC").tz_localize(None).to_pydatetime()
        until = pd.Timestamp(until_ts, unit="s").to_pydatetime()
        n, shoppers, latest = con.execute("SELECT count(*), count(DISTINCT user_id), max(ts) FROM events WHERE ts > ? AND ts < ?",
                                          [since, until]).fetchone()
    finally:
        con.close()
    return n, shoppers, latest


def test_old_ids_keep_their_ids_and_rows_new_ones_are_appended(world):
    parent, child = registry.load_model(world["parent"]), registry.load_model(world["child"])
    pf, cf = parent.features, child.features
    n = pf.n_items
    assert cf.items.values[:n] == pf.items.values and cf.items.id("t0") == n + 1 and cf.n_items == n + 1
    assert cf.category.values[: len(pf.category.values)] == pf.category.values and cf.category.decode(cf.item_category[n + 1]) == "tea"
    assert cf.scene["device"].values[:-1] == pf.scene["device"].values and cf.scene["device"].values[-1] == "watch"
    assert np.array_equal(cf.item_category[: n + 1], pf.item_category)
    # the parent grown (no fine-tuning) keeps every old row bit for bit
    grown = registry.load_model(world["parent"]).model
    before = {k: v.clone() for k, v in grown.state_dict().items()}
    added = grown.grow(cf.vocab_sizes(), torch.from_numpy(cf.item_category), torch.from_numpy(cf.item_price_band))
    assert added["item"] == 1 and added["device"] == 1 and added["category"] == 1
    after = grown.state_dict()
    assert set(after) == set(before)
    for name, old in before.items():
        assert torch.equal(after[name][: old.shape[0]], old), name
    assert after["item_emb.weight"].shape[0] == n + 2 and after["context_emb.device.weight"].shape[0] == len(cf.scene["device"])
    # and scores every old item exactly as before for a history and moment it already knew
    data = SequenceData.from_store(duckdb.connect(str(world["db"]), read_only=True), features=pf)
    batch = next(data.split("time_split", parse_cut(UNTIL, TZ)).valid.batches(8, max_len=20))
    assert torch.equal(grown.score_all(batch)[:, : n + 1], parent.model.score_all(batch))


def test_new_item_rows_start_random_or_from_their_category_mean(world):
    lm = registry.load_model(world["parent"])
    f = lm.features
    con = duckdb.connect(str(world["db"]), read_only=True)
    items = pd.DataFrame({"item_id": ["c99"], "category": ["coffee"], "price": [15.0]})
    events = con.execute("SELECT * FROM events LIMIT 0").df()
    con.close()
    f.extend(events, items)
    m = lm.model
    old = m.item_emb.weight.detach().clone()
    coffee = (m.item_category == f.category.id("coffee")).nonzero().flatten()
    m.grow(f.vocab_sizes(), torch.from_numpy(f.item_category), torch.from_numpy(f.item_price_band), new_items="category_mean")
    new = f.items.id("c99")
    assert torch.allclose(m.item_emb.weight[new], old[coffee].mean(0))
    # the default: a small random row and no bias
    lm = registry.load_model(world["parent"])
    lm.features.extend(events, items)
    lm.model.grow(f.vocab_sizes(), torch.from_numpy(f.item_category), torch.from_numpy(f.item_price_band))
    row = lm.model.item_emb.weight[new].detach()
    assert 0 < float(row.norm()) < 0.02 * 5 * row.numel() ** 0.5 and float(lm.model.item_bias[new].detach()) == 0.0
    with pytest.raises(ValueError, match="category_mean"):
        m.grow(f.vocab_sizes(), torch.from_numpy(f.item_category), torch.from_numpy(f.item_price_band), new_items="zeros")


def test_lineage_counts_the_events_added(world):
    meta = registry.read_metadata(world["child"])
    parent_meta = registry.read_metadata(world["parent"])
    lin = meta["lineage"]
    until_ts = parse_cut(UNTIL, TZ)
    n, shoppers, latest = events_between(world["db"], parent_meta["training_cutoff"], until_ts)
    assert n > 48  # the tiny world's own week plus the 60 planted events
    assert lin["events_added"] == n and lin["shoppers"] == shoppers
    assert lin["parent_version"] == parent_meta["version"] and lin["parent_dir"] == str(world["parent"])
    assert lin["new_items"] == 1 and lin["new_scene_values"] == {"device": 1, "channel": 0, "location": 0}
    assert lin["since"] == parent_meta["training_cutoff"] and lin["epochs"] == 1 and lin["seconds"] > 0
    assert pd.Timestamp(meta["training_cutoff"]).tz_convert("UTC").tz_localize(None) == pd.Timestamp(latest)
    # a time_split parent updated up to its cut keeps protocol and cut (its test week is still unseen)
    assert meta["protocol"] == "time_split" and meta["cut"] == parent_meta["cut"]
    assert meta["version"] != parent_meta["version"] and meta["context_fields"] == parent_meta["context_fields"]
    assert "NDCG@10" in meta["metrics"]["test"] and meta["metrics"]["valid"] == {}
    card = registry.model_card(world["child"])
    assert card["lineage"]["parent_version"] == parent_meta["version"] and card["lineage"]["events_added"] == n


def test_the_updated_model_recommends_the_new_item_on_the_new_device(world, capsys):
    code = cli.main(["recommend", "--db", str(world["db"]), "--model-dir", str(world["child"]), "--user", "u0",
                     "--at", "2025-11-16T08:05", "--scene", "device=watch", "-k", "5", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    text = json.dumps(out)
    assert '"t0"' in text  # u0's last dozen events are t0: the repeat head brings it back
    lm = registry.load_model(world["child"])
    assert lm.features.scene["device"].id("watch") > 0


def test_refusals_are_one_line(world, tmp_path):
    parent, db = world["parent"], str(world["db"])
    cutoff = registry.read_metadata(parent)["training_cutoff"]
    with pytest.raises(ValueError, match="not after the model's training cut-off"):
        upd.update(parent, "2025-11-01", tmp_path / "a", db=db)
    one_second_later = (pd.Timestamp(cutoff) + pd.Timedelta(seconds=1)).isoformat()
    with pytest.raises(ValueError, match="--until 'yesterday' is not an ISO date"):
        upd.update(parent, "yesterday", tmp_path / "a", db=db)
    with pytest.raises(ValueError, match="no events between"):
        upd.update(parent, one_second_later, tmp_path / "a", db=db)
    with pytest.raises(ValueError, match="must differ"):
        upd.update(parent, UNTIL, parent, db=db)
    for kind, field, match in (("pop", None, "count models are refit"), ("router", None, "router"),
                               ("context_transformer", "differential_privacy", "DP-SGD")):
        fake = tmp_path / f"fake-{kind}-{field}"
        shutil.copytree(parent, fake)
        meta = json.loads((fake / registry.METADATA_FILE).read_text())
        meta["model_type"] = kind
        if field:
            meta[field] = {"epsilon": 1.0}
        (fake / registry.METADATA_FILE).write_text(json.dumps(meta))
        with pytest.raises(ValueError, match=match):
            upd.update(fake, UNTIL, tmp_path / "b", db=db)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_parent_without_a_training_cutoff_is_refused_in_one_line(world, tmp_path):
    fake = tmp_path / "no-cutoff"
    shutil.copytree(world["parent"], fake)
    meta = json.loads((fake / registry.METADATA_FILE).read_text())
    del meta["training_cutoff"]
    (fake / registry.METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=f"--model-dir {fake} has no training_cutoff"):
        upd.update(fake, UNTIL, tmp_path / "c", db=str(world["db"]))


def test_an_update_past_the_cut_is_tested_after_until(world, tmp_path):
    r = upd.update(world["parent"], "2025-11-19", tmp_path / "late", upd.UpdateConfig(epochs=1), db=str(world["db"]))
    assert r["cut"] == "2025-11-19T00:00:00+08:00" and "only honest test" in r["protocol_note"]
    meta = registry.read_metadata(tmp_path / "late")
    assert meta["cut"] == r["cut"] and meta["metrics"]["n_eval_users"] == r["n_test_cases"] > 0


def test_cli_json_and_errors(world, tmp_path, capsys):
    out = tmp_path / "cli-child"
    code = cli.main(["update", "--db", str(world["db"]), "--model-dir", str(world["child"]), "--until", "2025-11-20",
                     "--out", str(out), "--epochs", "1", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["out"] == str(out) and result["parent_version"] == registry.read_metadata(world["child"])["version"]
    assert result["events_added"] > 0 and result["new_items"] == 0 and result["epochs"] == 1
    code = cli.main(["update", "--db", str(world["db"]), "--model-dir", str(tmp_path / "nothing"), "--until", "2025-11-20",
                     "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and err.count("\n") == 1 and "Traceback" not in err


def test_models_page_shows_the_lineage(monkeypatch, world):
    from recsys_core.i18n import t
    from tests.app_db import open_app_page

    at = open_app_page(monkeypatch, world["db"], "views/model_cards.py", model_dirs=[world["parent"], world["child"]])
    assert not at.exception
    lines = [el.value for el in at.text]
    parent_version = registry.read_metadata(world["parent"])["version"]
    assert len(lines) == 1 and "child: " + t("lineage.updated_from", "en", parent=parent_version, events="", since="", until="",
                                             seconds="", new_items="")[:13] in lines[0]
    assert parent_version in lines[0] and f"with {registry.read_metadata(world['child'])['lineage']['events_added']} events" in lines[0]
    assert "2025-11-15T00:00:00+08:00" in lines[0] and "1 new items" in lines[0]


def test_a_parent_trained_on_an_erased_shopper_is_not_updated(world, tmp_path):
    from recsys_core import privacy

    db = tmp_path / "copy.duckdb"
    shutil.copy(world["db"], db)
    privacy.forget(str(db), "u5", models_root=str(tmp_path / "no-models"))
    with pytest.raises(ValueError, match="erased shopper: retrain it"):
        upd.update(world["parent"], UNTIL, tmp_path / "c", db=str(db))


def test_update_windows_target_every_new_event_once_and_nothing_older(world):
    lm = registry.load_model(world["child"])
    con = duckdb.connect(str(world["db"]), read_only=True)
    data = SequenceData.from_store(con, features=lm.features)
    con.close()
    since = upd.utc_seconds(registry.read_metadata(world["parent"])["training_cutoff"])
    until = parse_cut(UNTIL, TZ)
    windows = upd.update_windows(data, since, until, 8, 1.0, 1.0)  # short windows: several per shopper
    new = (data.ts > since) & (data.ts < until)
    assert len(windows) > data.n_users  # the planted shopper u0 needs more than one window of 8
    targets = torch.cat([b.targets[b.targets > 0] for b in windows.batches(16)])
    assert len(targets) == int(new.sum())
    assert sorted(targets.tolist()) == sorted(data.fields["item"][new].tolist())
