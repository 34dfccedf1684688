"""Pseudonymised imports and erasure (`recsys_core.privacy`, `recsys_core.store.privacy`).

"Never in the file" is checked on the bytes of the DuckDB file and its write-ahead log, and every such
check has a control that finds the same bytes when they are stored (so the scan is able to see them).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from recsys_core import importers, privacy, registry
from recsys_core.store import connect
from recsys_core.store import privacy as store_privacy
from recsys_core.store.pushes import insert_pushes

ROOT = Path(__file__).resolve().parents[1]
KEY = b"k3y-for-tests-0123456789abcdef"
OTHER_KEY = b"another-key-for-tests-987654321"
# Shopper ids that look like what shops really send: phone- and account-derived, distinctive as bytes.
SHOPPERS = [f"phone-1380013{n:04d}" for n in range(12)] + [f"acct_zhang.wei+{n}@example.cn" for n in range(12)]


def file_has(db: Path, text: str) -> bool:
    return store_privacy.file_contains(db, text)


def write_events_csv(path: Path, shoppers: list[str], days: int = 12, bad_rows: bool = False) -> Path:
    """A generic CSV: each shopper views and buys items over ``days`` days, two sessions a day."""
    rows = []
    start = dt.datetime(2024, 11, 1, 8)
    for s, user in enumerate(shoppers):
        for d in range(days):
            for h in (0, 12):
                for k in range(2):
                    t = start + dt.timedelta(days=d, hours=h, minutes=5 * k)
                    rows.append([user, f"item{(s * 7 + d * 3 + h + k) % 40}", "pv" if k == 0 else "cart",
                                 t.strftime("%Y-%m-%dT%H:%M:%S"), "mobile" if h == 0 else "pc"])
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["user", "item", "behavior", "ts", "device"])
        w.writerows(rows)
        if bad_rows:
            w.writerow([shoppers[0], "item1", "pv", "not-a-time", "mobile"])          # a bad time: quarantined
            w.writerow([shoppers[1], "item2", "teleport", "2024-11-02T10:00:00", "pc"])  # a bad behaviour
            f.write(f"{shoppers[2]},item3,pv\n")                                      # too few fields
    return path


def import_csv(path: Path, db: Path, key: bytes | None = KEY) -> dict:
    return importers.import_file(path, "csv", db=db, pseudonym_key=key)


def rows(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


# --- pseudonyms ----------------------------------------------------------------------------


def test_pseudonym_is_keyed_stable_and_short():
    p = privacy.pseudonym("phone-13800138000", KEY)
    assert p == privacy.pseudonym(" phone-13800138000 ", KEY)  # ids are trimmed as importers trim them
    assert p != privacy.pseudonym("phone-13800138000", OTHER_KEY)
    assert p != privacy.pseudonym("phone-13800138001", KEY)
    assert privacy.is_pseudonym(p) and len(p) == len("ps_") + 20
    assert not privacy.is_pseudonym("phone-13800138000")
    assert privacy.pseudonym("007", KEY) != privacy.pseudonym("7", KEY)  # text ids, not numbers
    # the check value recognises the key without being the key or a pseudonym of it
    assert privacy.key_check_value(KEY) != privacy.key_check_value(OTHER_KEY)
    assert KEY.hex() not in privacy.key_check_value(KEY) and KEY.decode() not in privacy.key_check_value(KEY)


def test_key_comes_from_the_file_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(privacy.KEY_ENV, raising=False)
    with pytest.raises(privacy.PseudonymKeyError, match="SCENEPUSH_PSEUDONYM_KEY"):
        privacy.load_key()
    monkeypatch.setenv(privacy.KEY_ENV, "short")
    with pytest.raises(privacy.PseudonymKeyError, match="at least 16"):
        privacy.load_key()
    monkeypatch.setenv(privacy.KEY_ENV, KEY.decode())
    assert privacy.load_key() == KEY
    key_file = tmp_path / "key"
    key_file.write_bytes(OTHER_KEY + b"\n")  # as `echo` or `openssl rand -hex 32 > key` leaves it
    assert privacy.load_key(key_file) == OTHER_KEY
    with pytest.raises(privacy.PseudonymKeyError, match="does not exist"):
        privacy.load_key(tmp_path / "missing")


def test_raw_ids_never_reach_the_database_file(tmp_path):
    source = write_events_csv(tmp_path / "events.csv", SHOPPERS, bad_rows=True)
    plain = tmp_path / "plain.duckdb"
    import_csv(source, plain, key=None)
    assert all(file_has(plain, u) for u in SHOPPERS)  # control: stored ids are visible to the scan
    db = tmp_path / "pseudo.duckdb"
    result = import_csv(source, db)
    assert result["pseudonymised"] and result["rows_quarantined"] == 3
    for user in SHOPPERS:
        assert not file_has(db, user), user
    stored = {r[0] for r in rows(db, "SELECT user_id FROM events UNION SELECT user_id FROM users")}
    assert stored == {privacy.pseudonym(u, KEY) for u in SHOPPERS}
    assert not any(KEY.decode() in str(r) for r in rows(db, "SELECT * FROM meta"))  # the key is never stored
    assert not file_has(db, KEY.decode())


def test_quarantined_rows_keep_pseudonyms_not_raw_ids(tmp_path):
    source = write_events_csv(tmp_path / "events.csv", SHOPPERS[:3], bad_rows=True)
    db = tmp_path / "p.duckdb"
    import_csv(source, db)
    quarantined = rows(db, "SELECT raw, reason, user_id FROM quarantine ORDER BY row_number")
    assert len(quarantined) == 3
    (raw_ts, why_ts, u0), (raw_b, why_b, u1), (raw_short, why_short, u2) = quarantined
    p0, p1 = privacy.pseudonym(SHOPPERS[0], KEY), privacy.pseudonym(SHOPPERS[1], KEY)
    assert raw_ts == f"{p0},item1,pv,not-a-time,mobile" and "not-a-time" in why_ts and u0 == p0
    assert raw_b == f"{p1},item2,teleport,2024-11-02T10:00:00,pc" and "teleport" in why_b and u1 == p1
    # a row that did not split into the file's fields: where its id stands is unknown, so no raw text is kept
    assert raw_short is None and "withheld" in why_short
    for raw, why, _ in quarantined:
        assert not any(u in (raw or "") or u in why for u in SHOPPERS)


def test_reasons_that_quote_the_id_quote_the_pseudonym(tmp_path):
    """Taobao ids must be numeric: a rejected id is quoted in the reason (cut at 40 characters when long)."""
    long_id = "account-" + "x" * 50 + "-13800138000"
    source = tmp_path / "UserBehavior.csv"
    source.write_text(f"13800138000,11,21,pv,1511544070\nphone-13900139000,12,22,pv,1511544071\n{long_id},13,23,buy,1511544072\n"
                      "13800138000,14,24,pv,1511544073\n")
    db = tmp_path / "t.duckdb"
    result = importers.import_file(source, "taobao", db=db, pseudonym_key=KEY)
    assert result["rows_imported"] == 2 and result["rows_quarantined"] == 2
    (raw1, why1), (raw2, why2) = rows(db, "SELECT raw, reason FROM quarantine ORDER BY row_number")
    p1, p2 = privacy.pseudonym("phone-13900139000", KEY), privacy.pseudonym(long_id, KEY)
    assert raw1 == f"{p1},12,22,pv,1511544071" and f"'{p1}' is not a numeric id" in why1
    assert raw2 == f"{p2},13,23,buy,1511544072" and f"'{p2}' is not a numeric id" in why2
    for raw_id in ("13800138000", "phone-13900139000", long_id, long_id[:40]):
        assert not file_has(db, raw_id), raw_id
    assert rows(db, "SELECT DISTINCT user_id FROM events") == [(privacy.pseudonym("13800138000", KEY),)]


def test_every_format_goes_through_pseudonyms(tmp_path, shared_data):
    """The real Taobao and Tianchi samples, and a Parquet file with a quarantined row."""
    taobao, tianchi = shared_data / "taobao_userbehavior_sample.csv", shared_data / "tianchi_mobile_user_sample.csv"
    db = tmp_path / "real.duckdb"
    a = importers.import_file(taobao, "taobao", db=db, pseudonym_key=KEY)
    b = importers.import_file(tianchi, "tianchi", db=db, pseudonym_key=KEY)
    assert a["rows_imported"] == 4321 and b["rows_read"] == 1999
    raw_users = {line.split(",")[0] for line in taobao.read_text().splitlines() if line}
    tianchi_users = {line.split(",")[0] for line in tianchi.read_text().splitlines()[1:] if line}
    stored = {r[0] for r in rows(db, "SELECT DISTINCT user_id FROM events")}
    assert stored == {privacy.pseudonym(u, KEY) for u in raw_users | tianchi_users}
    # Tianchi's 8-digit ids are distinctive bytes: scan for those that appear nowhere else in the file
    other_fields = {f for line in tianchi.read_text().splitlines()[1:] for f in line.split(",")[1:]}
    distinctive = [u for u in tianchi_users if not any(u in f for f in other_fields)]
    assert len(distinctive) > 20
    assert not any(file_has(db, u) for u in distinctive)

    table = tmp_path / "events.parquet"
    con = duckdb.connect()
    con.execute(
        "COPY (SELECT * FROM (VALUES ('acct-li.na-0001', 'i1', 'pv', '2024-11-01T08:00:00'), "
        "('acct-li.na-0001', 'i2', 'buy', 'never'), ('acct-wang-0002', 'i3', 'pv', '2024-11-01T09:00:00')) "
        "t(user, item, behavior, ts)) TO ? (FORMAT parquet)", [str(table)])
    con.close()
    pq_db = tmp_path / "pq.duckdb"
    result = importers.import_file(table, "parquet", db=pq_db, pseudonym_key=KEY)
    assert result["rows_quarantined"] == 1
    (raw,) = rows(pq_db, "SELECT raw FROM quarantine")[0]
    assert json.loads(raw)["user"] == privacy.pseudonym("acct-li.na-0001", KEY)
    assert not file_has(pq_db, "acct-li.na-0001") and not file_has(pq_db, "acct-wang-0002")


def test_same_pseudonym_across_imports_and_databases(tmp_path):
    first = write_events_csv(tmp_path / "a.csv", SHOPPERS[:6], days=2)
    second = write_events_csv(tmp_path / "b.csv", SHOPPERS[3:9], days=3)
    db = tmp_path / "p.duckdb"
    import_csv(first, db)
    import_csv(second, db)
    by_user = dict(rows(db, "SELECT user_id, count(*) FROM events GROUP BY user_id"))
    assert len(by_user) == 9
    for user in SHOPPERS[3:6]:  # in both files: one shopper, with the events of both
        assert by_user[privacy.pseudonym(user, KEY)] == 8 + 12
    other = tmp_path / "other.duckdb"
    import_csv(second, other)
    assert {r[0] for r in rows(other, "SELECT user_id FROM users")} <= set(by_user)


def test_imports_that_would_mix_id_spaces_are_refused(tmp_path):
    source = write_events_csv(tmp_path / "a.csv", SHOPPERS[:2], days=1)
    more = write_events_csv(tmp_path / "b.csv", SHOPPERS[2:4], days=1)
    db = tmp_path / "p.duckdb"
    import_csv(source, db)
    before = rows(db, "SELECT count(*) FROM events")
    with pytest.raises(privacy.PseudonymKeyError, match="holds pseudonymised shopper ids"):
        import_csv(more, db, key=None)
    with pytest.raises(privacy.PseudonymKeyError, match="another key"):
        import_csv(more, db, key=OTHER_KEY)
    assert rows(db, "SELECT count(*) FROM events") == before  # nothing written
    raw_db = tmp_path / "raw.duckdb"
    import_csv(source, raw_db, key=None)
    with pytest.raises(privacy.PseudonymKeyError, match="already holds raw shopper ids"):
        import_csv(more, raw_db)
    from recsys_core.store.samples import replace_sample_world

    con = connect(db)
    try:
        with pytest.raises(ValueError, match="pseudonymised"):
            replace_sample_world(con, None, None, None, file_sha256="", timezone="UTC", scene=[])
    finally:
        con.close()


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    full_env = {k: v for k, v in os.environ.items() if k != privacy.KEY_ENV} | (env or {})
    return subprocess.run([sys.executable, "-m", "recsys_core", *args], capture_output=True, text=True, cwd=ROOT,
                          env=full_env, timeout=300)


def test_cli_pseudonymise_and_its_errors(tmp_path):
    source = write_events_csv(tmp_path / "a.csv", SHOPPERS[:2], days=1)
    db = str(tmp_path / "p.duckdb")
    missing = run_cli("import", str(source), "--format", "csv", "--db", db, "--pseudonymise")
    assert missing.returncode != 0 and missing.stderr.strip().count("\n") == 0
    assert "no pseudonymisation key" in missing.stderr and "Traceback" not in missing.stderr
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY + b"\n")
    done = run_cli("import", str(source), "--format", "csv", "--db", db, "--pseudonymise", "--key-file", str(key_file), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["pseudonymised"] is True
    via_env = run_cli("import", str(write_events_csv(tmp_path / "b.csv", SHOPPERS[2:3], days=1)), "--format", "csv",
                      "--db", db, "--pseudonymise", env={privacy.KEY_ENV: KEY.decode()})
    assert via_env.returncode == 0, via_env.stderr
    refused = run_cli("import", str(tmp_path / "b.csv"), "--format", "csv", "--db", db)
    assert refused.returncode != 0 and refused.stderr.strip().count("\n") == 0 and "--pseudonymise" in refused.stderr


# --- forget ---------------------------------------------------------------------------------


def shopper_everywhere(db: Path, user: str) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return store_privacy.shopper_rows(con, user)
    finally:
        con.close()


def add_pushes(db: Path, user: str, n: int = 3) -> None:
    con = connect(db)
    try:
        insert_pushes(con, [{"push_id": f"{user}-{i}", "pushed_at": dt.datetime(2024, 11, 20, 8), "user_id": user,
                             "item_id": f"item{i}", "rank": i + 1, "score": 1.0 - i / 10, "scene_json": {"device": "mobile"},
                             "model_version": "pop-test", "reasons_json": json.dumps({"reason": {"en": f"for {user}"}})}
                            for i in range(n)])
    finally:
        con.close()


@pytest.fixture
def pseudo_world(tmp_path):
    """A pseudonymised database with pushes and quarantined rows, and a model trained on it."""
    from recsys_core import train

    db = tmp_path / "p.duckdb"
    import_csv(write_events_csv(tmp_path / "events.csv", SHOPPERS, bad_rows=True), db)
    target = privacy.pseudonym(SHOPPERS[0], KEY)
    add_pushes(db, target)
    add_pushes(db, privacy.pseudonym(SHOPPERS[5], KEY))
    models = tmp_path / "models"
    con = connect(db, read_only=True)
    try:
        train.train(con, "pop", "next_session", models / "pop", progress=False)
    finally:
        con.close()
    return db, models, target


def test_forget_removes_every_row_and_marks_the_models(pseudo_world):
    from recsys_core import train

    db, models, target = pseudo_world
    assert shopper_everywhere(db, target) == {"events": 48, "pushes": 3, "quarantine_rows": 1, "users_rows": 1}
    assert file_has(db, target)  # control: the scan sees the pseudonym while it is stored
    from types import SimpleNamespace

    from recsys_core import evaluate

    evaluate.evaluate_cli(SimpleNamespace(db=str(db), model_dir=str(models / "pop"), protocol=None, allow_mismatch=False))
    stored_cases = list((db.parent / "evaluations").glob("cases__*.parquet"))
    assert stored_cases and any(target in set(pd.read_parquet(p)["user_id"]) for p in stored_cases)  # they name shoppers
    others_before = rows(db, "SELECT count(*) FROM events WHERE user_id <> ?", [target])
    result = privacy.forget(db, SHOPPERS[0], key=KEY, models_root=models)
    assert result["deleted"] == {"events": 48, "pushes": 3, "quarantine_rows": 1, "users_rows": 1}
    assert result["database_rewritten"] and str(models / "pop") in result["models_to_retrain"]
    assert result["stored_evaluation_files_deleted"] >= 2  # the cases and the results computed on them
    assert not any(target in set(pd.read_parquet(p)["user_id"]) for p in (db.parent / "evaluations").glob("cases__*"))
    assert shopper_everywhere(db, target) == {"events": 0, "pushes": 0, "quarantine_rows": 0, "users_rows": 0}
    assert not file_has(db, target) and not file_has(db, SHOPPERS[0])
    assert not file_has(db, f"for {target}")  # the push's stored reason
    assert rows(db, "SELECT count(*) FROM events WHERE user_id <> ?", [target]) == others_before  # others untouched
    assert rows(db, "SELECT count(*) FROM pushes") == [(3,)]
    # the audit row: counts and times, nothing that names the shopper
    (audit,) = rows(db, "SELECT * FROM erasures")
    assert not any(target in str(v) or SHOPPERS[0] in str(v) for v in audit)
    assert audit[2:6] == (48, 3, 1, 1)
    # the model card and the metadata flag say retrain; a model trained after the erasure is clean
    con = connect(db, read_only=True)
    try:
        erasures = store_privacy.erasures(con)
        train.train(con, "pop", "next_session", models / "after", progress=False)
    finally:
        con.close()
    assert registry.model_card(models / "pop", None, erasures)["trained_on_erased_data"] is True
    assert registry.model_card(models / "after", None, erasures)["trained_on_erased_data"] is False
    assert registry.model_card(models / "pop")["trained_on_erased_data"] is None  # not asked


def test_forget_by_pseudonym_needs_no_key(pseudo_world):
    db, models, target = pseudo_world
    result = privacy.forget(db, target, models_root=models)
    assert result["deleted"]["events"] == 48 and shopper_everywhere(db, target)["events"] == 0
    with pytest.raises(privacy.UnknownShopperError, match="holds no shopper"):
        privacy.forget(db, target, models_root=models)  # already gone
    with pytest.raises(privacy.PseudonymKeyError, match="give the key"):
        privacy.forget(db, SHOPPERS[1], models_root=models)  # a raw id without the key
    with pytest.raises(privacy.PseudonymKeyError, match="another key"):
        privacy.forget(db, SHOPPERS[1], key=OTHER_KEY, models_root=models)


def test_forget_on_a_raw_database(tmp_path):
    db = tmp_path / "raw.duckdb"
    import_csv(write_events_csv(tmp_path / "events.csv", SHOPPERS[:4], bad_rows=True), db, key=None)
    assert file_has(db, SHOPPERS[0])
    result = privacy.forget(db, SHOPPERS[0], models_root=tmp_path / "none")
    assert result["deleted"]["quarantine_rows"] == 1 and result["file_scan"].startswith("not run")
    assert not file_has(db, SHOPPERS[0])  # the rewrite leaves no deleted row behind
    assert shopper_everywhere(db, SHOPPERS[1])["events"] == 48


def test_erased_data_flags_follow_the_training_time_and_fingerprint():
    erased = {"erased_at": dt.datetime(2025, 1, 10), "data_since": dt.datetime(2025, 1, 1), "data_hash": "abc"}
    meta = lambda when, h="zzz": {"trained_at": when, "data_fingerprint": {"events_hash": h}}  # noqa: E731
    assert privacy.trained_on_erased_data(meta("2025-01-05T00:00:00+00:00"), [erased])       # trained in between
    assert not privacy.trained_on_erased_data(meta("2024-12-31T00:00:00+00:00"), [erased])   # before the data came
    assert not privacy.trained_on_erased_data(meta("2025-01-11T00:00:00+00:00"), [erased])   # after the erasure
    assert privacy.trained_on_erased_data(meta("2024-06-01T00:00:00+00:00", "abc"), [erased])  # the very data
    assert privacy.trained_on_erased_data(meta("2024-06-01T08:00:00+08:00"), [{**erased, "data_since": None}])
    assert not privacy.trained_on_erased_data(meta("2025-01-05T00:00:00+00:00"), [])


def test_cli_forget_and_its_errors(pseudo_world, tmp_path):
    db, models, target = pseudo_world
    env = {privacy.KEY_ENV: KEY.decode()}
    unknown = run_cli("forget", "--user", "nobody-here", "--db", str(db), "--models", str(models), env=env)
    assert unknown.returncode != 0 and "holds no shopper 'nobody-here'" in unknown.stderr
    assert unknown.stderr.strip().count("\n") == 0 and "Traceback" not in unknown.stderr
    no_key = run_cli("forget", "--user", SHOPPERS[2], "--db", str(db), "--models", str(models))
    assert no_key.returncode != 0 and "SCENEPUSH_PSEUDONYM_KEY" in no_key.stderr and no_key.stderr.strip().count("\n") == 0
    done = run_cli("forget", "--user", SHOPPERS[2], "--db", str(db), "--models", str(models), "--json", env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["deleted"]["events"] == 48 and out["models_to_retrain"] == [str(models / "pop")]
    assert not file_has(db, privacy.pseudonym(SHOPPERS[2], KEY))
