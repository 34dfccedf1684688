"""The scene-switching router (recsys_core/models/router.py, `train --model router`) on the tiny world."""

from __future__ import annotations

import copy
import datetime as dt
import json
import pickle
import shutil
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import torch

from recsys_core import cli, evaluate
from recsys_core import recommend as rec
from recsys_core.context import Scenario
from recsys_core.explain import explain
from recsys_core.models.router import (
    Router,
    RouterError,
    build_router,
    route_table,
    routing_sentence,
    slice_labels,
)
from recsys_core.registry import ModelFolderError, list_model_dirs, load_model, model_card, save_model
from recsys_core.sequences import SequenceData
from recsys_core.store import connect
from recsys_core.store import events as store_events
from recsys_core.train import TrainConfig, build_neural_model, train, train_router
from tests.tiny_world import build_tiny_store

SH = ZoneInfo("Asia/Shanghai")
COUNT_MODELS = ("pop", "context_pop", "covisit")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny store and three count models trained on it under next_event."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("router")
    db = build_tiny_store(root / "w.duckdb")
    con = connect(db, read_only=True)
    for m in COUNT_MODELS:
        train(con, m, "next_event", out=root / "models" / m, progress=False)
    yield con, db, root
    con.close()


def members_of(root, names=COUNT_MODELS):
    return [load_model(root / "models" / n) for n in names]


def data_of(con, members):
    return SequenceData.from_store(con, features=members[0].features)


# --- the route table ----------------------------------------------------------------------------------


def test_route_table_picks_each_slices_best_validation_member_and_thin_slices_fall_back():
    # 3 members; slice A (60 cases) is member 2's, slice B (60) member 1's, slice C (10) would be member 2's but is thin
    keys = [("A",)] * 60 + [("B",)] * 60 + [("C",)] * 10
    per_case = np.zeros((130, 3))
    per_case[:60] = [0.1, 0.2, 0.5]
    per_case[60:120] = [0.3, 0.6, 0.1]
    per_case[120:] = [0.0, 0.0, 0.9]
    routes, fallback, overall = route_table(per_case, keys, ["a", "b", "c"], ["hour_bucket"], min_cases=50)
    assert fallback == 1 and overall["b"] == pytest.approx(per_case[:, 1].mean(), abs=1e-6)  # b is best overall
    by_slice = {r["slice"]["hour_bucket"]: r for r in routes}
    assert (by_slice["A"]["member"], by_slice["A"]["rule"]) == (2, "best")
    assert (by_slice["B"]["member"], by_slice["B"]["rule"]) == (1, "best")
    assert (by_slice["C"]["member"], by_slice["C"]["rule"], by_slice["C"]["n_valid"]) == (1, "thin", 10)
    assert by_slice["C"]["valid_NDCG@10"]["c"] == pytest.approx(0.9)  # recorded though not followed
    # a slice where a member ties with the fallback keeps the fallback (b wins overall on slice B)
    per_case = np.array([[0.2, 0.5], [0.8, 0.5]] * 30 + [[0.1, 0.4]] * 60)
    routes, fallback, _ = route_table(per_case, [("A",)] * 60 + [("B",)] * 60, ["a", "b"], ["day_type"], 50)
    assert fallback == 1 and [r["member"] for r in routes] == [1, 1]


def test_built_table_matches_each_members_validation_slices(world):
    con, _, root = world
    members = members_of(root)
    split = data_of(con, members).split("next_event")
    router = build_router(members, split, ["hour", "device"], min_cases=3)
    assert router.cfg.route_by == ["hour_bucket", "device"]
    table = split.valid.slices()
    per_member = [evaluate.rank_cases(lm.model, split.valid).per_case["NDCG@10"] for lm in members]
    key = table["hour_bucket"].astype(str) + " × " + table["device"].astype(str)
    overall = [v.mean() for v in per_member]
    assert router.cfg.fallback == int(np.argmax(overall))
    assert {" × ".join(r["slice"].values()) for r in router.cfg.routes} == set(key)
    for r in router.cfg.routes:
        mask = (key == " × ".join(r["slice"].values())).to_numpy()
        means = [v[mask].mean() for v in per_member]
        assert r["n_valid"] == int(mask.sum())
        assert [r["valid_NDCG@10"][m["label"]] for m in router.cfg.members] == pytest.approx(means, abs=1e-6)
        if r["n_valid"] < 3:
            assert r["rule"] == "thin" and r["member"] == router.cfg.fallback
        else:
            assert r["rule"] == "best" and means[r["member"]] == pytest.approx(max(means))


def test_routing_labels_are_the_evaluation_slices_and_scores_are_the_routed_members(world):
    con, _, root = world
    members = members_of(root)
    split = data_of(con, members).split("next_event")
    built = build_router(members, split, ["hour_bucket", "day_type"], min_cases=1)
    cfg = copy.deepcopy(built.cfg)
    for k, r in enumerate(cfg.routes):  # every member answers some slice
        r["member"] = k % len(members)
    router = Router(cfg, members).eval()
    table = split.valid.slices()
    used = set()
    for lo, batch in zip(range(0, len(split.valid), 7), split.valid.batches(7, max_len=router.history_len)):
        keys = slice_labels(router.features, batch.context, cfg.route_by)
        assert keys == list(zip(table["hour_bucket"][lo : lo + 7], table["day_type"][lo : lo + 7]))
        who = router.route_rows(batch.context)
        scores = router.score_all(batch)
        for row, m in enumerate(who.tolist()):
            used.add(m)
            member = members[m].model
            alone = member.score_all(type(batch)({k: v[row : row + 1, -member.history_len :] for k, v in batch.history.items()},
                                                 {k: v[row : row + 1] for k, v in batch.context.items()}))
            assert torch.equal(scores[row], alone[0]), f"row {row} differs from member {m}"
    assert used == {0, 1, 2}


def test_route_names_the_member_and_why(world):
    con, _, root = world
    members = members_of(root)
    router = build_router(members, data_of(con, members).split("next_event"), ["hour_bucket"], min_cases=5)
    for r in router.cfg.routes:
        hour = {"night": 3, "morning": 9, "midday": 12, "afternoon": 16, "evening": 21}[r["slice"]["hour_bucket"]]
        route = router.route({"hour": hour})
        assert route.member == r["member"] and route.rule == r["rule"] and route.n_valid == r["n_valid"]
        text = routing_sentence(route, "en")
        assert route.label in text and str(r["n_valid"]) in text
        assert ("thin slice" in text) == (r["rule"] == "thin") and "样本" in routing_sentence(route, "zh")
    unseen = router.route({"hour": 0})  # hour id 0: unknown, never a validation slice
    assert unseen.rule == "unseen" and unseen.member == router.cfg.fallback


# --- the folder ---------------------------------------------------------------------------------------


@pytest.fixture
def own_members(world, tmp_path):
    """Copies of the members (a test may damage them)."""
    con, _, root = world
    for m in COUNT_MODELS:
        shutil.copytree(root / "models" / m, tmp_path / m)
    return con, tmp_path


def test_save_load_round_trip_without_pickle(own_members, monkeypatch):
    con, d = own_members
    members = [load_model(d / m) for m in COUNT_MODELS]
    out = train_router(data_of(con, members), store_events.data_fingerprint(con), members, ["hour", "device"], out=d / "router")
    meta = json.loads((d / "router" / "metadata.json").read_text())
    assert meta["model_type"] == "router" and meta["protocol"] == "next_event" and meta["config"]["route_by"] == ["hour_bucket", "device"]
    assert [m["path"] for m in meta["config"]["members"]] == [str((d / m).resolve()) for m in COUNT_MODELS]
    assert all(m["version"] and len(m["weights_sha256"]) == 64 for m in meta["config"]["members"])
    assert all("n_valid" in r and len(r["valid_NDCG@10"]) == 3 for r in meta["config"]["routes"])
    assert set(meta["metrics"]["members"]) == set(COUNT_MODELS) and "NDCG@10" in meta["metrics"]["test"]
    assert out["fallback"] == meta["config"]["members"][meta["config"]["fallback"]]["label"]

    def no_pickle(*a, **k):
        raise AssertionError("a model folder must load without pickle")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    lm = load_model(d / "router")
    assert lm.model_type == "router" and lm.version == meta["version"]
    card = model_card(d / "router")
    assert card["model_type"] == "router" and card["test_NDCG@10"] == meta["metrics"]["test"]["NDCG@10"] and "error" not in card
    assert d / "router" in list_model_dirs(d)
    split = data_of(con, members).split("next_event")
    batch = next(split.test.batches(64, max_len=lm.model.history_len))
    fresh = build_router(members, split, ["hour", "device"])
    assert torch.equal(lm.model.score_all(batch), fresh.score_all(batch))
    assert torch.equal(lm.model.route_member, fresh.route_member)
    # the router's test metrics are its own ranking of the test cases
    ndcg = evaluate.rank_cases(lm.model, split.test).per_case["NDCG@10"].mean()
    assert meta["metrics"]["test"]["NDCG@10"] == pytest.approx(ndcg)


def test_refuses_a_changed_or_missing_member(own_members):
    con, d = own_members
    members = [load_model(d / m) for m in COUNT_MODELS]
    train_router(data_of(con, members), store_events.data_fingerprint(con), members, ["hour"], out=d / "router")
    load_model(d / "router")
    other = load_model(d / "pop")  # covisit's folder now holds another model
    save_model(other.model, other.features, d / "covisit", {"protocol": "next_event"})
    with pytest.raises(ModelFolderError, match=r"router member 3 \(covisit\) changed: .* rebuild the router"):
        load_model(d / "router")
    shutil.rmtree(d / "covisit")
    with pytest.raises(ModelFolderError, match=r"router member 3 \(covisit\) is missing: .*covisit does not exist"):
        load_model(d / "router")


def test_refuses_members_of_other_data_or_protocol_and_late_route_fields(world, tmp_path):
    con, _, root = world
    members = members_of(root, ("pop", "covisit"))
    data, fp = data_of(con, members), store_events.data_fingerprint(con)
    train(con, "context_pop", "next_session", out=tmp_path / "ns", progress=False)
    with pytest.raises(RouterError, match="trained under next_session"):
        train_router(data, fp, [members[0], load_model(tmp_path / "ns")], ["hour"], out=tmp_path / "r")
    other = connect(build_tiny_store(tmp_path / "other.duckdb", seed=1), read_only=True)
    try:
        train(other, "pop", "next_event", out=tmp_path / "other_pop", progress=False)
    finally:
        other.close()
    with pytest.raises(RouterError, match="trained on other data"):
        train_router(data, fp, [members[1], load_model(tmp_path / "other_pop")], ["hour"], out=tmp_path / "r")
    with pytest.raises(RouterError, match="--protocol next_session: the members were trained under next_event"):
        train_router(data, fp, members, ["hour"], protocol="next_session", out=tmp_path / "r")
    with pytest.raises(RouterError, match=r"'channel' cannot route \(known only once the shopper acts\)"):
        train_router(data, fp, members, ["channel"], out=tmp_path / "r")
    with pytest.raises(RouterError, match="'weather' cannot route"):
        train_router(data, fp, members, ["hour", "weather"], out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_time_split_router_takes_the_members_cut_and_refuses_another(world, tmp_path, capsys):
    con, db, _ = world
    for m in ("pop", "covisit"):
        train(con, m, "time_split", out=tmp_path / m, progress=False)
    dirs = f"{tmp_path / 'pop'},{tmp_path / 'covisit'}"
    code = cli.main(["train", "--model", "router", "--members", dirs, "--route-by", "day_type", "--db", str(db),
                     "--out", str(tmp_path / "router"), "--json"])
    out = json.loads(capsys.readouterr().out)
    member_cut = load_model(tmp_path / "pop").metadata["cut"]
    assert code == 0 and out["protocol"] == "time_split" and out["cut"] == member_cut
    assert load_model(tmp_path / "router").metadata["cut"] == member_cut
    code = cli.main(["train", "--model", "router", "--members", dirs, "--route-by", "day_type", "--cut", "2025-11-10",
                     "--db", str(db), "--out", str(tmp_path / "other")])
    err = capsys.readouterr().err
    assert code == 2 and f"the members were trained with the cut {member_cut}" in err and not (tmp_path / "other").exists()


# --- CLI, recommend and explain -------------------------------------------------------------------------


def test_cli_train_router_json_and_clear_errors(world, tmp_path, capsys):
    con, db, root = world
    dirs = ",".join(str(root / "models" / m) for m in COUNT_MODELS)
    code = cli.main(["train", "--model", "router", "--members", dirs, "--route-by", "hour,device", "--db", str(db),
                     "--out", str(tmp_path / "router"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["model"] == "router" and out["protocol"] == "next_event" and out["route_by"] == ["hour_bucket", "device"]
    # 24 validation cases split over many slices: every one is thin (< 50), so the router is its fallback member
    assert out["thin_slices"] == out["slices"] == len(out["routes"]) and all(r["rule"] == "thin" for r in out["routes"])
    assert out["metrics"]["test"] == out["members_metrics"][out["fallback"]]["test"]
    assert load_model(tmp_path / "router").model_type == "router"
    for argv, message in [
        (["--members", str(root / "models" / "pop"), "--route-by", "hour"], "at least two model folders"),
        (["--members", dirs], "needs --members DIR,DIR[,...] and --route-by"),
        (["--members", dirs, "--route-by", "hour", "--epochs", "3"], "--epochs does not apply to --model router"),
        (["--members", dirs + ",/nonexistent/model", "--route-by", "hour"], "/nonexistent/model does not exist"),
    ]:
        code = cli.main(["train", "--model", "router", "--db", str(db), "--out", str(tmp_path / "bad"), *argv])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, err
    code = cli.main(["train", "--model", "pop", "--route-by", "hour", "--db", str(db), "--out", str(tmp_path / "bad")])
    assert code == 2 and "apply with --model router" in capsys.readouterr().err


@pytest.fixture(scope="module")
def neural_router(world):
    """A router whose mornings go to a tiny (untrained) context transformer and the rest to context_pop."""
    con, _, root = world
    pop = load_model(root / "models" / "context_pop")
    torch.manual_seed(0)
    ct = build_neural_model("context_transformer", pop.features, TrainConfig(d_model=16, max_len=8)).eval()
    save_model(ct, pop.features, root / "models" / "ct", {k: pop.metadata[k] for k in ("protocol", "data_fingerprint")}
               | {"context_fields": list(ct.cfg.context_fields)})
    members = [load_model(root / "models" / "ct"), pop]
    built = build_router(members, data_of(con, members).split("next_event"), ["hour_bucket"], min_cases=0)
    cfg = copy.deepcopy(built.cfg)
    for r in cfg.routes:
        r["member"] = 0 if r["slice"]["hour_bucket"] == "morning" else 1
    save_model(Router(cfg, members), pop.features, root / "models" / "router_ct",
               {"protocol": "next_event", "data_fingerprint": pop.metadata["data_fingerprint"], "context_fields": cfg.context_fields})
    return rec.load_model(root / "models" / "router_ct"), members


def test_recommend_on_a_router_is_the_routed_members_list_and_names_it(world, neural_router):
    con, _, _ = world
    lm, (ct, pop) = neural_router
    for hour, member in [(8, ct), (22, pop)]:
        sc = Scenario(dt.datetime(2025, 11, 20, hour, tzinfo=SH), {"device": "mobile"})
        top = rec.recommend(lm, con, "u1", sc, k=5)
        assert top["item_id"].tolist() == rec.recommend(member, con, "u1", sc, k=5)["item_id"].tolist()
        out = rec.recommendation_dict(lm, sc, top)
        assert out["routed"]["member"] == member.model_type and out["routed"]["version"] == member.version
        assert out["routed"]["router_version"] == lm.version == out["model_version"]


def test_explain_on_a_router_explains_the_routed_member(world, neural_router):
    con, _, _ = world
    lm, (ct, _) = neural_router
    morning = Scenario(dt.datetime(2025, 11, 20, 8, tzinfo=SH), {"device": "mobile"})
    out = explain(lm, con, "u1", "c1", morning, n_steps=4)
    assert out["routed"]["member"] == "context_transformer" and out["routed"]["slice"] == {"hour_bucket": "morning"}
    assert out["model_version"] == ct.version and out["reason"]
    direct = explain(ct, con, "u1", "c1", morning, n_steps=4)
    assert out["rank"] == direct["rank"] and out["model_score"] == pytest.approx(direct["model_score"])
    with pytest.raises(ValueError, match="'context_pop' has no embeddings"):  # evenings go to the count model
        explain(lm, con, "u1", "c1", Scenario(dt.datetime(2025, 11, 20, 22, tzinfo=SH), {"device": "mobile"}), n_steps=4)


def test_push_reasons_and_the_api_go_through_the_routed_member(world, neural_router, tmp_path):
    from fastapi.testclient import TestClient

    from recsys_core.push import reasons_at_push_time
    from recsys_core.serve.app import ServeConfig, create_app

    con, db, _ = world
    lm, (ct, _) = neural_router
    morning = Scenario(dt.datetime(2025, 11, 20, 8, tzinfo=SH), {"device": "mobile"})
    evening = Scenario(dt.datetime(2025, 11, 20, 22, tzinfo=SH), {"device": "mobile"})
    top = rec.recommend(lm, con, "u1", morning, k=3)
    reasons = reasons_at_push_time(con, lm, "u1", morning, top[["item_id", "rank", "score"]])
    assert len(reasons) == 3 and {r["model_version"] for r in reasons} == {ct.version}
    assert reasons_at_push_time(con, lm, "u1", evening, top[["item_id", "rank", "score"]]) is None  # context_pop: none
    shutil.copy(db, tmp_path / "serve.duckdb")  # the API opens its own file
    app = create_app(ServeConfig(db=tmp_path / "serve.duckdb", api_key="k" * 20, model_dir=lm.path, merge_interval_s=3600, model_check_s=3600))
    with TestClient(app, raise_server_exceptions=False) as client:
        h = {"X-API-Key": "k" * 20}
        body = client.post("/recommend", headers=h, json={"user": "u1", "at": "2025-11-20T08:00:00+08:00", "k": 3}).json()
        assert body["routed"]["member"] == "context_transformer" and body["model_version"] == lm.version
        r = client.post("/explain", headers=h, json={"user": "u1", "item": "c1", "at": "2025-11-20T08:00:00+08:00", "k": 5})
        assert r.status_code == 200, r.text
        assert r.json()["routed"]["member"] == "context_transformer" and r.json()["model_version"] == ct.version
        r = client.post("/explain", headers=h, json={"user": "u1", "item": "c1", "at": "2025-11-20T22:00:00+08:00", "k": 5})
        assert r.status_code == 422 and "context_pop" in r.text


# --- the Why page -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_router(tmp_path_factory):
    """The pages' small store and a router over two tiny context transformers: mornings to a (validation 0.21 vs
    0.18 on 412 cases), evenings to b by the thin-slice rule."""
    from recsys_core.models.router import RouterConfig
    from tests.app_db import build_small_store
    from tests.explain_models import save_tiny_model

    tmp_path = tmp_path_factory.mktemp("app_router")
    db = build_small_store(tmp_path / "small.duckdb")
    a, b = (load_model(save_tiny_model(tmp_path / name, std=std)) for name, std in (("a", 0.25), ("b", 0.35)))
    labels = ["context_transformer:a", "context_transformer:b"]
    cfg = RouterConfig(
        members=[{"label": lab, "path": str(lm.path.resolve()), "model_type": lm.model_type, "version": lm.version,
                  "weights_sha256": lm.metadata["weights_sha256"]} for lab, lm in zip(labels, (a, b))],
        route_by=["hour_bucket"], fallback=1, n_items=a.model.n_items, history_len=a.model.history_len,
        context_fields=list(a.context_fields), valid_overall={labels[0]: 0.2, labels[1]: 0.25},
        routes=[{"slice": {"hour_bucket": "morning"}, "member": 0, "rule": "best", "n_valid": 412, "valid_NDCG@10": {labels[0]: 0.21, labels[1]: 0.18}},
                {"slice": {"hour_bucket": "evening"}, "member": 1, "rule": "thin", "n_valid": 12, "valid_NDCG@10": {labels[0]: 0.3, labels[1]: 0.1}}],
    )
    router = save_model(Router(cfg, [a, b]), a.features, tmp_path / "router", {"protocol": "next_session", "context_fields": cfg.context_fields})
    return db, router, a, b, labels


APP_PARAMS = {"user": "u0", "item": "i3", "at": "2024-11-18T08:00", "device": "mobile", "channel": "push", "location": "commute", "k": "5"}


def test_why_page_names_the_member_that_answered_and_why(monkeypatch, app_router):
    from recsys_core.i18n import t
    from tests.app_db import open_app_page

    db, router, a, b, labels = app_router
    at = open_app_page(monkeypatch, db, "views/why.py", APP_PARAMS, model_dirs=[router])
    infos = [i.value for i in at.info]
    assert t("router.why.best", "en", member=labels[0], slice="morning", score="0.210", other="0.180", n=412) in infos
    assert any(m.startswith(("Ranked", "Pushed")) for m in infos)  # the explanation of member a is shown
    assert a.version in " ".join(c.value for c in at.caption)
    at.slider(key="why_hour").set_value(21).run()
    assert not at.exception
    infos = [i.value for i in at.info]
    assert t("router.why.thin", "en", member=labels[1], slice="evening", n=12, min=50) in infos
    assert b.version in " ".join(c.value for c in at.caption)
    assert at.query_params["model"] in (str(router), [str(router)])  # the URL keeps naming the router


@pytest.mark.parametrize("page", ["views/scenario.py", "views/model_cards.py"])
def test_other_pages_take_a_router(monkeypatch, app_router, page):
    from tests.app_db import open_app_page

    db, router, *_ = app_router
    at = open_app_page(monkeypatch, db, page, APP_PARAMS, model_dirs=[router])  # asserts no exception
    assert not at.error, [e.value for e in at.error]
