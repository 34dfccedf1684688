"""`serve` as a real process: kill -9 mid-batch and retry (nothing lost, nothing twice), a graceful stop,
sharing the database file with another process that reads and writes in turns, and the CLI's key check."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import duckdb
import httpx
import pytest

from recsys_core.store.turns import SharedReader, write_turn
from tests.serve_process import ROOT, ServeProcess, serve_process, wait_merged
from tests.serve_world import KEY, AT, build_world, events

H = {"X-API-Key": KEY}
BATCH = 200


@pytest.fixture
def world(tmp_path):
    return build_world(tmp_path)


def stored_ids(db) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT event_id FROM events WHERE event_id IS NOT NULL").fetchall()]
    finally:
        con.close()


def test_kill_mid_batch_then_retry_loses_and_duplicates_nothing(world, tmp_path):
    db, model_dir = world
    batches = [events(f"k{b}", BATCH, user=f"u{b % 20}") for b in range(40)]
    acked: dict[int, dict] = {}
    in_flight: list[int] = []
    server = ServeProcess(db, KEY, tmp_path / "serve.log", model_dir)
    started = threading.Event()

    def send() -> None:
        with httpx.Client(timeout=30) as client:
            for b, batch in enumerate(batches):
                in_flight.append(b)
                if b == 3:
                    started.set()
                try:
                    r = client.post(f"{server.url}/events", headers=H, json={"events": batch})
                except httpx.HTTPError:
                    return  # the server died: this batch was never acknowledged
                assert r.status_code == 200, r.text
                acked[b] = r.json()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert started.wait(120), "the sender never got going"
        server.kill()  # kill -9 while a batch is in flight: no shutdown, no final merge
    finally:
        sender.join(timeout=60)
    assert acked and len(acked) < len(batches), f"kill landed outside the stream: {len(acked)} of {len(batches)} acknowledged"
    assert all(a["stored"] == BATCH for a in acked.values())

    with serve_process(db, KEY, tmp_path / "serve2.log", model_dir) as again:  # recovery merges what had landed
        with httpx.Client(timeout=60) as client:
            for b, batch in enumerate(batches):  # the client re-sends everything it is unsure of, and more
                r = client.post(f"{again.url}/events", headers=H, json={"events": batch}).json()
                assert r["stored"] + r["duplicates"] == BATCH and r["quarantined"] == 0, r
                if b in acked:  # acknowledged before the kill: stored then, so nothing is added now
                    assert r["duplicates"] == BATCH, (b, r)
        wait_merged(again.url, KEY)
    ids = stored_ids(db)
    expected = {e["event_id"] for batch in batches for e in batch}
    assert len(ids) == len(set(ids)), "an event was stored twice"
    assert set(ids) == expected, f"missing: {sorted(expected - set(ids))[:5]}"


def test_a_graceful_stop_merges_what_landed(world, tmp_path):
    db, model_dir = world
    with serve_process(db, KEY, tmp_path / "serve.log", model_dir) as server:
        r = httpx.post(f"{server.url}/events", headers=H, json={"events": events("g", 30)}, timeout=30)
        assert r.json()["stored"] == 30
        server.stop()  # SIGTERM right away: the final merge stores them
    assert sorted(stored_ids(db)) == sorted(f"g-{i}" for i in range(30))
    assert not list((db.parent / f"{db.name}.landing").glob("seg-*.jsonl"))


def test_another_process_reads_and_writes_in_turns_beside_serve(world, tmp_path):
    """What the studio does beside the API: hold a read connection, write a push in its turn."""
    db, model_dir = world
    with serve_process(db, KEY, tmp_path / "serve.log", model_dir) as server:
        failures, done, stop = [], [0], threading.Event()

        def hammer() -> None:
            with httpx.Client(timeout=30) as client:
                while not stop.is_set():
                    r = client.post(f"{server.url}/recommend", headers=H, json={"user": "u3", "at": AT, "k": 5})
                    if r.status_code != 200:
                        failures.append(r.text)
                    done[0] += 1

        worker = threading.Thread(target=hammer)
        worker.start()
        try:
            reader = SharedReader(db)
            with reader.cursor() as cur:  # this process reads while the API serves
                assert cur.execute("SELECT count(*) FROM events").fetchone()[0] > 0
            # events posted now wait for this process to let go of its connection (the studio's watcher does it)
            r = httpx.post(f"{server.url}/events", headers=H, json={"events": events("t", 5)}, timeout=30)
            assert r.json()["stored"] == 5
            deadline = time.monotonic() + 10
            while True:
                reader.release_if_idle()
                with reader.cursor() as cur:
                    if cur.execute("SELECT count(*) FROM events WHERE event_id LIKE 't-%'").fetchone()[0] == 5:
                        break
                assert time.monotonic() < deadline, "the API never got its write turn"
                time.sleep(0.05)
            reader.close()
            with write_turn(db, wait_s=10) as con:  # a push from "the studio" while the API serves
                con.execute(
                    "INSERT INTO pushes (push_id, pushed_at, user_id, item_id, rank, score, scene_json, model_version) "
                    "VALUES ('p-studio', TIMESTAMP '2025-11-20 00:00:00', 'u3', 'c1', 1, 1.0, '{}', 'm')"
                )
            pushed = httpx.post(f"{server.url}/push", headers=H, json={"users": ["u3"], "at": AT, "k": 2}, timeout=60).json()
            assert pushed["pushed"] == 2
        finally:
            stop.set()
            worker.join()
        assert done[0] > 0 and not failures, failures[:3]
    con = duckdb.connect(str(db), read_only=True)
    ids = {r[0] for r in con.execute("SELECT push_id FROM pushes").fetchall()}
    con.close()
    assert "p-studio" in ids and {p["push_id"] for p in pushed["pushes"]} <= ids  # one audit log


def test_serve_refuses_to_start_without_a_key_or_twice(world, tmp_path):
    db, model_dir = world
    env = {k: v for k, v in os.environ.items() if k != "SCENEPUSH_API_KEY"}
    r = subprocess.run([sys.executable, "-m", "recsys_core", "serve", "--db", str(db), "--port", "9"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "SCENEPUSH_API_KEY" in r.stderr and "Traceback" not in r.stderr
    empty = tmp_path / "key.txt"
    empty.write_text("\n")
    r = subprocess.run([sys.executable, "-m", "recsys_core", "serve", "--db", str(db), "--api-key-file", str(empty)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "is empty" in r.stderr and "Traceback" not in r.stderr
    key_file = tmp_path / "key2.txt"
    key_file.write_text(KEY + "\n")
    with serve_process(db, KEY, tmp_path / "serve.log", model_dir):
        r = subprocess.run([sys.executable, "-m", "recsys_core", "serve", "--db", str(db), "--api-key-file", str(key_file),
                            "--model-dir", str(model_dir)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "already receives events" in r.stderr and "Traceback" not in r.stderr
