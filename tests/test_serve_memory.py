"""The API's memory of shoppers' events (serve.memory): the same answers as the file, kept true after our
merges and after other processes' writes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from recsys_core import recommend
from recsys_core.serve.app import ServeConfig, Service
from recsys_core.store import events as store_events
from recsys_core.store.privacy import erase_shopper
from recsys_core.store.turns import write_turn
from tests.serve_world import AT, KEY, build_world, events

TZ = "Asia/Shanghai"


@pytest.fixture
def service(tmp_path):
    db, model_dir = build_world(tmp_path)
    svc = Service(ServeConfig(db=db, api_key=KEY, model_dir=model_dir, merge_interval_s=3600, model_check_s=3600))
    svc.merge()  # no housekeeping thread: each test merges and watches the file when it says so
    yield svc
    svc.landing.close()
    svc.reader.close()


def from_file(svc, user, before=None, limit=None):
    with svc.reader.cursor() as cur:
        return store_events.read_user_events(cur, user, TZ, before=before, limit=limit)


def from_memory(svc, user, before=None, limit=None):
    with svc.reads() as cur:
        return store_events.read_user_events(cur, user, TZ, before=before, limit=limit)


def same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("before,limit", [(None, None), (None, 5), (dt.datetime(2025, 11, 15), None), (dt.datetime(2025, 11, 15), 3),
                                          (dt.datetime(2020, 1, 1), 4)])
def test_reads_from_memory_equal_the_file(service, before, limit):
    for user in ("u1", "u2", "u7", "nobody"):
        same(from_memory(service, user, before, limit), from_file(service, user, before, limit))
        same(from_memory(service, user, before, limit), from_file(service, user, before, limit))  # now from memory
    assert service.memory.stats()["hits"] == 4 and service.memory.stats()["misses"] == 4
    with service.reads() as cur, service.reader.cursor() as file:
        ids = ["c1", "g3", "e7", "missing"]
        assert store_events.read_items_by_id(cur, ids) == store_events.read_items_by_id(file, ids)
        assert set(store_events.user_item_ids(cur, "u3")) == set(store_events.user_item_ids(file, "u3"))


def test_warming_loads_the_most_recent_shoppers_within_the_budget(service):
    with service.reader.cursor() as cur:
        n_users, n_events = cur.execute("SELECT count(DISTINCT user_id), count(*) FROM events").fetchone()
        latest = cur.execute("SELECT user_id FROM events GROUP BY user_id ORDER BY max(ts) DESC, user_id LIMIT 1").fetchone()[0]
    service.memory.clear()
    assert service.memory.warm() == n_users == service.memory.stats()["users"]
    service.memory.clear()
    few = service.memory.warm(max_events=n_events // 4)
    assert 0 < few < n_users and latest in service.memory._users
    same(from_memory(service, latest), from_file(service, latest))


def test_a_recommendation_from_memory_is_the_one_from_the_file(service):
    lm = service.models.current
    sc = recommend.scenario_of(lm, AT, {"device": "mobile"})
    with service.reads() as cur:
        warm = recommend.recommend(lm, cur, "u1", sc, k=8, exclude_seen=True)
    with service.reader.cursor() as file:
        plain = recommend.recommend(lm, file, "u1", sc, k=8, exclude_seen=True)
    assert warm.equals(plain) and warm.attrs == plain.attrs


def test_our_merge_appends_the_new_events_in_time_order(service):
    from_memory(service, "u1")  # cached
    # one event older than the shopper's latest, so it must be sorted into place, not appended at the end
    posted = events("mem", 3, user="u1") + [{**events("old", 1, user="u1")[0], "ts": "2025-11-02T10:00:00+08:00"}]
    assert service.landing.receive(posted).stored == 4
    assert len(from_memory(service, "u1")["ts"]) == len(from_file(service, "u1")["ts"])  # not merged yet: neither has them
    service.merge()
    after = from_memory(service, "u1")
    same(after, from_file(service, "u1"))
    assert np.all(np.diff(after["ts"].astype("int64")) >= 0)
    stats = service.memory.stats()
    assert stats["appended"] == 4 and stats["clears"] == 0
    service.watch_file()  # our own write changed the file: recognised, nothing emptied
    assert service.memory.stats()["clears"] == 0


def test_another_writers_erasure_empties_the_memory(service):
    assert len(from_memory(service, "u2")["ts"]) > 0
    service.reader.close()  # idle: the housekeeping thread would let go of it for the write turn
    with write_turn(service.config.db) as con:  # as the studio's "forget" does, from another process
        erase_shopper(con, "u2")
    service.watch_file()
    assert service.memory.stats()["clears"] == 1
    assert len(from_memory(service, "u2")["ts"]) == 0
    with service.reads() as cur, pytest.raises(recommend.UnknownUserError):
        recommend.recommend(service.models.current, cur, "u2", recommend.scenario_of(service.models.current, AT, {}))


def test_a_read_during_a_merge_is_answered_but_not_kept(service):
    with service.memory.own_write() as stored:
        fresh = from_memory(service, "u5")
        stored(None)
    assert len(fresh["ts"]) > 0
    assert "u5" not in service.memory._users
    from_memory(service, "u5")
    assert "u5" in service.memory._users


def test_a_failed_merge_empties_the_memory(service):
    from_memory(service, "u1")
    with pytest.raises(RuntimeError):
        with service.memory.own_write():
            raise RuntimeError("the write turn failed")
    assert service.memory.stats()["users"] == 0 and service.memory.stats()["clears"] == 1


def test_without_memory_the_routes_read_the_file(tmp_path):
    db, model_dir = build_world(tmp_path)
    svc = Service(ServeConfig(db=db, api_key=KEY, model_dir=model_dir, memory=False))
    try:
        assert svc.memory is None
        with svc.reads() as cur:
            assert not hasattr(cur, "cached_user_events")
            assert len(store_events.read_user_events(cur, "u1", TZ)["ts"]) > 0
    finally:
        svc.landing.close()
        svc.reader.close()
