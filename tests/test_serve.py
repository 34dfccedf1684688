"""The HTTP API through FastAPI's test client: every route, auth, bad input, limits, events, pushes, hot swap."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from recsys_core import recommend
from recsys_core.explain import explain
from recsys_core.serve.app import MAX_BATCH, MAX_BODY_BYTES, ServeConfig, create_app
from recsys_core.serve.explainer import WORKER_NICENESS
from recsys_core.store import connect
from tests.serve_world import AT, KEY, build_world, events, resave_model

H = {"X-API-Key": KEY}
REC = {"user": "u1", "at": AT, "scene": {"device": "mobile"}, "k": 5}


@pytest.fixture
def world(tmp_path):
    return build_world(tmp_path)


@pytest.fixture
def client(world):
    db, model_dir = world
    # merges only when a test asks (Landing.merge), so each test sees what landed before it merged
    app = create_app(ServeConfig(db=db, api_key=KEY, model_dir=model_dir, merge_interval_s=3600, model_check_s=3600))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def service(client):
    return client.app.state.service


def read(db, sql, params=()):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


# --- auth -------------------------------------------------------------------------------------------


ROUTES = [
    ("post", "/recommend", REC),
    ("post", "/recommend/batch", {"requests": [REC]}),
    ("post", "/explain", {"user": "u1", "item": "c1", "at": AT}),
    ("post", "/push", {"users": ["u1"], "at": AT}),
    ("post", "/events", {"events": events("auth", 1)}),
    ("get", "/models", None),
    ("post", "/models/reload", None),
    ("get", "/metrics", None),
    ("get", "/docs", None),
    ("get", "/openapi.json", None),
]


@pytest.mark.parametrize("method,path,body", ROUTES, ids=[p for _, p, _ in ROUTES])
def test_every_route_but_health_needs_the_key(client, method, path, body):
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}):
        r = getattr(client, method)(path, headers=headers, **({"json": body} if body is not None else {}))
        assert r.status_code == 401, (path, headers, r.text)
        assert "X-API-Key" in r.json()["detail"]
    assert client.get("/health").status_code == 200


def test_health_says_model_and_database(client, world):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["model_loaded"] and body["database"] is True
    assert body["model_version"] == recommend.load_model(world[1]).version


def test_a_key_is_required_to_start(world):
    with pytest.raises(ValueError, match="SCENEPUSH_API_KEY"):
        create_app(ServeConfig(db=world[0], api_key="", model_dir=world[1]))


def test_route_handlers_run_at_most_threads_at_once(world):
    import anyio.to_thread

    app = create_app(ServeConfig(db=world[0], api_key=KEY, model_dir=world[1], merge_interval_s=3600, model_check_s=3600, threads=3))
    with TestClient(app) as c:
        limit = c.portal.call(lambda: anyio.to_thread.current_default_thread_limiter().total_tokens)
        assert limit == 3
        assert c.post("/recommend", json=REC, headers={"X-API-Key": KEY}).status_code == 200


def test_explanations_run_in_a_lane_of_their_own(world, monkeypatch):
    """Slow explanations run one at a time and never hold the threads recommendations wait for."""
    import recsys_core.explain as explain_mod

    real, running, seen, release = explain_mod.explain_built, [0], [], threading.Event()

    def slow(*args, **kwargs):
        running[0] += 1
        seen.append(running[0])
        try:
            release.wait(30)
            return real(*args, **kwargs)
        finally:
            running[0] -= 1

    monkeypatch.setattr(explain_mod, "explain_built", slow)
    app = create_app(ServeConfig(db=world[0], api_key=KEY, model_dir=world[1], merge_interval_s=3600, model_check_s=3600, threads=1,
                                 explain_process=False))  # in this process, where the slow stand-in is patched in
    with TestClient(app) as c:
        answers = []
        posts = [threading.Thread(target=lambda: answers.append(
            c.post("/explain", headers=H, json={"user": "u1", "item": "c1", "at": AT}).status_code)) for _ in range(3)]
        for t in posts:
            t.start()
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        # an explanation is under way (and two wait in their lane): a recommendation still gets the one thread
        assert c.post("/recommend", headers=H, json=REC).status_code == 200
        assert running[0] == 1  # answered while the explanation still ran
        release.set()
        for t in posts:
            t.join(30)
    assert answers == [200, 200, 200] and max(seen) == 1


def test_threads_out_of_range_is_one_line(world, monkeypatch):
    from recsys_core import serve

    with pytest.raises(ValueError, match="--threads must be between 1 and 64, got 0"):
        serve.run(world[0], "127.0.0.1", 0, str(world[1]), KEY, threads=0)


# --- recommend --------------------------------------------------------------------------------------


def test_recommend_follows_the_contract_and_matches_the_library(client, world):
    db, model_dir = world
    r = client.post("/recommend", headers=H, json={"user": "u1", "at": AT, "scene": {"device": "pc"}, "k": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    lm = recommend.load_model(model_dir)
    con = connect(db, read_only=True)
    try:
        top = recommend.recommend(lm, con, "u1", recommend.scenario_of(lm, AT, {"device": "pc"}), k=4)
    finally:
        con.close()
    assert [i["item_id"] for i in body["items"]] == top["item_id"].tolist()
    assert [i["score"] for i in body["items"]] == pytest.approx(top["score"].tolist(), abs=1e-4)
    assert body["model_version"] == lm.version
    assert body["scene"]["device"] == "pc" and body["context_fields"] == list(lm.context_fields)
    assert body["local_time"] == "2025-11-20T08:00" and body["timezone"] == "Asia/Shanghai"


def test_exclude_seen_drops_the_shoppers_items(client, world):
    seen = {r[0] for r in read(world[0], "SELECT DISTINCT item_id FROM events WHERE user_id = 'u1'")}
    body = client.post("/recommend", headers=H, json={**REC, "k": 24, "exclude_seen": True}).json()
    assert body["items"] and not seen & {i["item_id"] for i in body["items"]}


@pytest.mark.parametrize(
    "body,status,needle",
    [
        ({**REC, "colour": "red"}, 422, "Extra inputs"),
        ({**REC, "k": 0}, 422, "greater than or equal"),
        ({**REC, "k": 101}, 422, "less than or equal"),
        ({"at": AT}, 422, "Field required"),
        ({**REC, "at": "yesterday"}, 422, "ISO 8601"),
        ({**REC, "scene": {"weather": "rain"}}, 422, "no field weather"),
        ({**REC, "user": "nobody"}, 404, "unknown shopper"),
    ],
)
def test_recommend_bad_input_is_a_clear_error_without_traceback(client, body, status, needle):
    r = client.post("/recommend", headers=H, json=body)
    assert r.status_code == status, r.text
    assert needle in r.text and "Traceback" not in r.text and 'File "' not in r.text


def test_malformed_json_is_422(client):
    r = client.post("/recommend", headers={**H, "content-type": "application/json"}, content=b"{not json")
    assert r.status_code == 422 and "Traceback" not in r.text


def test_batch_answers_each_request_and_caps_the_size(client):
    r = client.post("/recommend/batch", headers=H, json={"requests": [REC, {**REC, "user": "nobody"}, {**REC, "user": "u2", "k": 2}]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results[0]["items"]) == 5 and results[1]["error"]["status"] == 404 and len(results[2]["items"]) == 2
    over = client.post("/recommend/batch", headers=H, json={"requests": [REC] * (MAX_BATCH + 1)})
    assert over.status_code == 422 and "at most 1000" in over.text
    assert client.post("/recommend/batch", headers=H, json={"requests": []}).status_code == 422


def test_a_body_over_the_limit_is_413(client):
    big = b'{"requests": [' + b" " * (MAX_BODY_BYTES + 1) + b"]}"
    r = client.post("/recommend/batch", headers={**H, "content-type": "application/json"}, content=big)
    assert r.status_code == 413 and "bytes" in r.json()["detail"]

    def chunks():  # no Content-Length: counted while it arrives
        yield b'{"events": ['
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536
        yield b"]}"

    r = client.post("/events", headers={**H, "content-type": "application/json"}, content=chunks())
    assert r.status_code == 413 and "bytes" in r.json()["detail"]


def test_refused_requests_are_counted_under_their_route(client):
    client.post("/recommend", json=REC)  # no key
    text = client.get("/metrics", headers=H).text
    assert 'scenepush_requests_total{method="POST",route="/recommend",status="401"} 1' in text


# --- explain ----------------------------------------------------------------------------------------


def test_explain_is_the_why_pages_explanation(client, world):
    db, model_dir = world
    r = client.post("/explain", headers=H, json={"user": "u1", "item": "c3", "at": AT, "scene": {"device": "mobile"}, "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    lm = recommend.load_model(model_dir)
    con = connect(db, read_only=True)
    try:
        direct = explain(lm, con, "u1", "c3", recommend.scenario_of(lm, AT, {"device": "mobile"}), k=5)
    finally:
        con.close()
    assert body["reason"] == direct["reason"] and body["reason_zh"] == direct["reason_zh"]
    assert body["rank"] == direct["rank"] and body["model_version"] == lm.version
    assert body["shapley"] == json.loads(json.dumps(direct["shapley"]))
    bad = client.post("/explain", headers=H, json={"user": "u1", "item": "nope", "at": AT})
    assert bad.status_code == 422 and "catalogue" in bad.text
    assert client.post("/explain", headers=H, json={"user": "u1", "item": "c1", "at": AT, "why": 1}).status_code == 422
    worker = service(client).explainer
    assert worker.served == 1 and worker.pid not in (None, os.getpid())  # computed in the worker process
    niceness = int(Path(f"/proc/{worker.pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
    assert niceness == min(19, os.nice(0) + WORKER_NICENESS)  # recommendations in the API's process go first


def test_a_dead_explanation_worker_costs_speed_not_an_answer(client):
    body = {"user": "u2", "item": "g1", "at": AT, "k": 5}
    first = client.post("/explain", headers=H, json=body)
    worker = service(client).explainer
    os.kill(worker.pid, signal.SIGKILL)
    again = client.post("/explain", headers=H, json=body)
    assert first.status_code == again.status_code == 200
    assert again.json()["reason"] == first.json()["reason"] and again.json()["shapley"] == first.json()["shapley"]
    assert worker.restarts == 1 and worker.served == 2
    # a shopper without events is explained in the API's own process (its cold-start note reads the database)
    cold = client.post("/explain", headers=H, json={**body, "user": "nobody"})
    assert cold.status_code == 404 and worker.served == 2


# --- push -------------------------------------------------------------------------------------------


def test_push_records_the_audit_log_once(client, world):
    db = world[0]
    body = {"users": ["u1", "u2", "nobody"], "at": AT, "scene": {"device": "mobile"}, "k": 3}
    first = client.post("/push", headers=H, json=body)
    assert first.status_code == 200, first.text
    out = first.json()
    assert out["pushed"] == 6 and out["skipped"] == ["nobody"]
    again = client.post("/push", headers=H, json=body).json()
    assert again["pushed"] == 0 and again["already_pushed"] == 6
    rows = read(db, "SELECT push_id, user_id, model_version, reasons_json FROM pushes ORDER BY user_id, rank")
    assert {r[0] for r in rows} == {p["push_id"] for p in out["pushes"]}
    assert all(r[2] == out["model_version"] for r in rows)
    assert all(json.loads(r[3])["reason"]["en"] for r in rows)  # reasons computed at push time, as the CLI stores them
    assert client.post("/push", headers=H, json={**body, "users": []}).status_code == 422


# --- events -----------------------------------------------------------------------------------------


def test_events_are_checked_like_an_import_and_idempotent(client, world):
    db = world[0]
    batch = events("e", 5) + [
        {"event_id": "bad-ts", "user": "u1", "item": "c1", "ts": "soon"},
        {"event_id": "bad-behaviour", "user": "u1", "item": "c1", "ts": 1764000000, "behavior": "sniff"},
        {"event_id": "bad-scene", "user": "u1", "item": "c1", "ts": 1764000000, "scene": {"weather": "rain"}},
        {"event_id": "no-item", "user": "u1", "item": "", "ts": 1764000000},
        {"event_id": "e-0", "user": "u1", "item": "c1", "ts": 1764000000},  # repeated inside the batch
    ]
    r = client.post("/events", headers=H, json={"events": batch})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["received"], out["stored"], out["quarantined"], out["duplicates"]) == (10, 5, 4, 1)
    reasons = {q["event_id"]: q["reason"] for q in out["rejected"]}
    assert "field 'ts'" in reasons["bad-ts"] and "'soon'" in reasons["bad-ts"]
    assert "unknown behaviour" in reasons["bad-behaviour"]
    assert "scene.weather" in reasons["bad-scene"] and "device, channel, location" in reasons["bad-scene"]
    assert "field 'item' is empty" in reasons["no-item"]

    retry = client.post("/events", headers=H, json={"events": batch}).json()  # before the merge: landed ids count
    assert (retry["stored"], retry["quarantined"], retry["duplicates"]) == (0, 0, 10)
    before = read(db, "SELECT count(*) FROM events")[0][0]
    merged = service(client).merge()
    assert merged["rows_imported"] == 5 and merged["rows_quarantined"] == 4
    assert read(db, "SELECT count(*) FROM events")[0][0] == before + 5
    stored = read(db, "SELECT event_id, user_id, item_id, behavior, ts, device FROM events WHERE event_id IS NOT NULL ORDER BY seq")
    assert [s[0] for s in stored] == [f"e-{i}" for i in range(5)]
    assert str(stored[0][4]) == "2025-11-25 01:00:00" and stored[0][5] == "mobile"  # UTC, scene lower-cased
    quarantined = read(db, "SELECT reason, raw FROM quarantine WHERE run_id LIKE 'api-%' ORDER BY row_number")
    assert len(quarantined) == 4 and json.loads(quarantined[0][1])["event_id"] == "bad-ts"
    run = read(db, "SELECT rows_read, rows_imported, rows_quarantined FROM import_runs WHERE format = 'api'")
    assert run == [(9, 5, 4)]

    after = client.post("/events", headers=H, json={"events": batch}).json()  # after the merge: stored ids count
    assert (after["stored"], after["quarantined"], after["duplicates"]) == (0, 0, 10)
    assert service(client).merge()["segments"] == 0


def test_events_show_in_recommendations_after_the_merge(client):
    before = client.post("/recommend", headers=H, json=REC).json()["history_length"]
    client.post("/events", headers=H, json={"events": events("hist", 3, user="u1")})
    service(client).merge()
    assert client.post("/recommend", headers=H, json=REC).json()["history_length"] >= min(before + 3, 8)


@pytest.mark.parametrize(
    "body,needle",
    [
        ({"events": [{**events("x", 1)[0], "source": "app"}]}, "Extra inputs"),
        ({"events": [{k: v for k, v in events("x", 1)[0].items() if k != "event_id"}]}, "Field required"),
        ({"events": [{**events("x", 1)[0], "event_id": ""}]}, "at least 1 character"),
        ({"events": events("x", MAX_BATCH + 1)}, "at most 1000"),
        ({"events": []}, "at least 1"),
        ({"evts": events("x", 1)}, "Extra inputs"),
    ],
)
def test_events_bad_shape_is_422(client, body, needle):
    r = client.post("/events", headers=H, json=body)
    assert r.status_code == 422 and needle in r.text and "Traceback" not in r.text


# --- models and hot swap ----------------------------------------------------------------------------


def test_models_lists_the_served_model(client, world):
    body = client.get("/models", headers=H).json()
    assert body["serving"]["path"] == str(world[1]) and body["serving"]["version"].startswith("context_transformer-")
    assert any(m["serving"] for m in body["available"])


def test_reload_serves_a_new_version_and_no_request_fails(client, world):
    db, model_dir = world
    old = client.get("/models", headers=H).json()["serving"]["version"]
    seen, failures, stop = set(), [], threading.Event()

    def hammer():
        while not stop.is_set():
            r = client.post("/recommend", headers=H, json=REC)
            if r.status_code != 200:
                failures.append(r.text)
            else:
                seen.add(r.json()["model_version"])

    workers = [threading.Thread(target=hammer) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        resave_model(model_dir, db, seed=7)
        r = client.post("/models/reload", headers=H)
        assert r.status_code == 200, r.text
        new = r.json()["model_version"]
        assert new != old and r.json()["swapped"]
        deadline = time.monotonic() + 30
        while new not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert not failures and new in seen and seen <= {old, new}
    bad = client.post("/models/reload", headers=H, json={"model_dir": "/etc"})
    assert bad.status_code == 422 and "GET /models" in bad.text
    assert client.post("/models/reload", headers=H, json={"model_dir": str(model_dir), "x": 1}).status_code == 422


def test_a_changed_model_folder_is_picked_up(world):
    db, model_dir = world
    app = create_app(ServeConfig(db=db, api_key=KEY, model_dir=model_dir, merge_interval_s=3600, model_check_s=0.1))
    with TestClient(app) as c:
        old = c.get("/models", headers=H).json()["serving"]["version"]
        resave_model(model_dir, db, seed=11)
        deadline = time.monotonic() + 30
        while c.get("/models", headers=H).json()["serving"]["version"] == old:
            assert time.monotonic() < deadline, "the new model was not picked up within 30 s"
            time.sleep(0.1)
        assert c.post("/recommend", headers=H, json=REC).status_code == 200


# --- metrics and docs -------------------------------------------------------------------------------


def test_metrics_count_requests_and_latency(client):
    client.post("/recommend", headers=H, json=REC)
    client.post("/recommend", headers=H, json={**REC, "user": "nobody"})
    client.post("/events", headers=H, json={"events": events("m", 2)})
    r = client.get("/metrics", headers=H)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'scenepush_requests_total{method="POST",route="/recommend",status="200"} 1' in text
    assert 'scenepush_requests_total{method="POST",route="/recommend",status="404"} 1' in text
    assert 'scenepush_request_duration_seconds_bucket{method="POST",route="/recommend",le="+Inf"} 2' in text
    assert 'scenepush_request_duration_seconds_count{method="POST",route="/events"} 1' in text
    assert "scenepush_events_stored_total 2" in text and "scenepush_events_pending 2" in text


def test_docs_and_openapi_describe_the_routes(client):
    assert "swagger" in client.get("/docs", headers=H).text.lower()
    spec = client.get("/openapi.json", headers=H).json()
    for path in ("/recommend", "/recommend/batch", "/explain", "/push", "/events", "/models", "/models/reload", "/health", "/metrics"):
        assert path in spec["paths"], path
    assert spec["components"]["schemas"]["RecommendRequest"]["additionalProperties"] is False


def test_a_pseudonymised_database_never_stores_a_raw_shopper_id(world):
    from recsys_core.privacy import SCHEME, key_check_value, pseudonym
    from recsys_core.store.privacy import set_pseudonym_state

    db, model_dir = world
    key = b"k" * 32
    con = connect(db)
    set_pseudonym_state(con, SCHEME, key_check_value(key))
    con.close()
    app = create_app(ServeConfig(db=db, api_key=KEY, model_dir=model_dir, merge_interval_s=3600, model_check_s=3600))
    with TestClient(app) as c:
        raw = {**events("p", 1)[0], "user": "13800138000"}
        mapped = {**events("p", 2)[1], "user": pseudonym("13800138000", key)}
        out = c.post("/events", headers=H, json={"events": [raw, mapped]}).json()
        assert (out["stored"], out["quarantined"]) == (1, 1)
        assert "pseudonym" in out["rejected"][0]["reason"] and "13800138000" not in json.dumps(out)
        service(c).merge()
    assert read(db, "SELECT user_id FROM events WHERE event_id = 'p-1'") == [(pseudonym("13800138000", key),)]
    con = duckdb.connect(str(db), read_only=True)
    try:
        dumped = json.dumps(con.execute("SELECT * FROM quarantine").fetchall(), default=str)
    finally:
        con.close()
    assert "13800138000" not in dumped and "withheld" in dumped


def test_a_shopper_without_history_is_a_cold_start_that_says_so(client):
    rec = client.post("/recommend", headers=H, json={**REC, "user": "profile_only"}).json()
    assert rec["cold_start"] is True and rec["history_length"] == 0 and rec["items"] and rec["cold_start_note"]
    why = client.post("/explain", headers=H, json={"user": "profile_only", "item": rec["items"][0]["item_id"], "at": AT}).json()
    assert why["cold_start"] and why["reason"] == why["cold_start"]["en"]
