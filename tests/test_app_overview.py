"""AppTest of the frame (sidebar, language, navigation) and the Overview page, including broken databases."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from recsys_core.i18n import t
from recsys_core.store import connect
from tests.app_db import build_small_store

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")


def run_app(monkeypatch, db: Path, lang: str | None = None) -> AppTest:
    monkeypatch.setenv("RECSYS_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    if lang:
        at.query_params["lang"] = lang
    return at.run()


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


@pytest.fixture
def small_db(tmp_path) -> Path:
    return build_small_store(tmp_path / "small.duckdb")


def test_overview_shows_counts_funnel_heatmap_and_scene_mix(monkeypatch, small_db):
    at = run_app(monkeypatch, small_db)
    assert not at.exception
    assert at.title[0].value == t("overview.title", "en")
    metrics = {m.label: m.value for m in at.metric}
    con = duckdb.connect(str(small_db), read_only=True)
    events, shoppers = con.execute("SELECT count(*), count(DISTINCT user_id) FROM events").fetchone()
    con.close()
    assert metrics[t("col.events", "en")] == f"{events:,}"
    assert metrics[t("col.shoppers", "en")] == f"{shoppers:,}"
    assert metrics[t("col.date_range", "en")] == t("col.days", "en", days=21)
    assert len(at.get("plotly_chart")) == 5  # funnel, heatmap, three scene mixes
    sidebar = texts(at.sidebar.caption) + texts(at.sidebar.markdown)
    assert str(small_db) in sidebar and f"{events:,}" in sidebar
    assert "2024-10-28" in sidebar and "Asia/Shanghai" in sidebar


def test_sidebar_without_a_model_says_so(monkeypatch, small_db, tmp_path):
    import views._common as common
    from recsys_core import registry

    from recsys_core import recommend

    monkeypatch.setattr(recommend, "BUNDLED_MODEL", tmp_path / "no-model-here")  # model discovery is the core's
    monkeypatch.setattr(common, "APP_ROOT", tmp_path)  # no `models/` either, whatever the checkout holds
    at = run_app(monkeypatch, small_db)
    assert not at.exception
    assert t("sidebar.no_model", "en") in texts(at.sidebar.caption)


def test_sidebar_shows_the_active_model_with_its_protocol(monkeypatch, small_db, tmp_path):
    """Metadata only: type, version, what it was trained on (and whether that is this database), NDCG@10 + protocol."""
    import json

    from recsys_core import registry
    from recsys_core.store.events import data_fingerprint

    con = duckdb.connect(str(small_db), read_only=True)
    fingerprint = data_fingerprint(con)
    con.close()
    model_dir = tmp_path / "models" / "pop"
    model_dir.mkdir(parents=True)
    (model_dir / "metadata.json").write_text(json.dumps({
        "format_version": registry.FORMAT_VERSION, "model_type": "pop", "version": "pop-0123456789",
        "config": {}, "features": {}, "weights_sha256": "0" * 64, "protocol": "next_session",
        "training_cutoff": "2024-11-10T16:00:00+00:00", "data_fingerprint": fingerprint,
        "metrics": {"protocol": "next_session", "valid": {"NDCG@10": 0.2}, "test": {"NDCG@10": 0.1234}},
    }))
    from recsys_core import recommend

    monkeypatch.setattr(recommend, "BUNDLED_MODEL", model_dir)
    at = run_app(monkeypatch, small_db)
    assert not at.exception
    card = texts(at.sidebar.markdown)
    assert "pop-0123456789" in card and "pop" in card
    assert t("sidebar.model_metric", "en", value="0.123",
             protocol=t("protocol.full_ranking", "en", protocol="next_session")) in card
    assert f"{fingerprint['n_events']:,} events" in card and "2024-11-10" in card
    assert t("sidebar.same_data", "en") in card


def test_language_switch_and_query_parameter(monkeypatch, small_db):
    at = run_app(monkeypatch, small_db)
    assert at.query_params["lang"] == ["en"] or at.query_params["lang"] == "en"
    at.radio(key="lang").set_value("zh").run()
    assert not at.exception
    assert at.title[0].value == t("overview.title", "zh")
    assert t("sidebar.database", "zh") in texts(at.sidebar.subheader)
    assert "zh" in at.query_params["lang"]

    at = run_app(monkeypatch, small_db, lang="zh")  # a shared URL with ?lang=zh opens in Chinese
    assert at.title[0].value == t("overview.title", "zh")
    assert at.metric[0].label == t("col.shoppers", "zh")


def test_missing_database_gives_a_clear_message(monkeypatch, tmp_path):
    missing = tmp_path / "nowhere.duckdb"
    at = run_app(monkeypatch, missing)
    assert not at.exception
    assert "python -m recsys_core sample" in texts(at.info) and str(missing) in texts(at.info)
    assert t("sidebar.db_unavailable", "en") in texts(at.sidebar.warning)
    assert not missing.exists(), "the app must not create a database"


def test_empty_database_gives_a_clear_message(monkeypatch, tmp_path):
    empty = tmp_path / "empty.duckdb"
    connect(empty).close()
    at = run_app(monkeypatch, empty)
    assert not at.exception
    assert t("db.empty", "en", path=empty) in texts(at.info)
    at.switch_page("views/behaviour.py").run()
    assert not at.exception
    assert t("db.empty", "en", path=empty) in texts(at.info)


def test_a_file_that_is_not_a_scenepush_database(monkeypatch, tmp_path):
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE something (x INTEGER)")
    con.close()
    at = run_app(monkeypatch, other)
    assert not at.exception
    assert "not a ScenePush database" in texts(at.error)


def test_database_locked_by_another_process(monkeypatch, small_db):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(120)",
         str(small_db)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        at = run_app(monkeypatch, small_db)
        assert not at.exception
        assert t("db.locked", "en", path=small_db) in texts(at.error)
        assert at.button(key="db_retry").label == t("db.retry", "en")
    finally:
        holder.terminate()
        holder.wait(timeout=10)
    time.sleep(0.2)
    at.button(key="db_retry").click().run()  # the writer is gone: the page recovers
    assert not at.exception and not at.error
    assert at.title[0].value == t("overview.title", "en")


def test_page_url_paths_differ_from_their_file_names():
    """A URL equal to the file name would run the page without the frame on a server's first run (see app.py)."""
    tree = ast.parse(Path(APP).read_text(encoding="utf-8"))
    pages = next(
        ast.literal_eval(node.value) for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "PAGES"
    )
    for path, title_key, _icon, url in pages:
        assert (ROOT / path).is_file()
        assert url != Path(path).stem, f"{path}: URL path {url!r} equals the file name"
        assert t(title_key, "en") and t(title_key, "zh")


def test_a_write_gets_in_while_other_sessions_keep_reading(small_db):
    """The server's shared read-only connection is reopened by any session's next read. A write (the
    reasons of a push, attached in the background) must still get its turn while reads keep coming."""
    import threading

    from views._common import read_cursor, release_store, write_cursor

    stop = threading.Event()
    reads = []

    def keep_reading() -> None:
        while not stop.is_set():
            try:
                with read_cursor(str(small_db)) as cur:
                    reads.append(cur.execute("SELECT count(*) FROM events").fetchone()[0])
            except duckdb.Error:  # the writer holds the file for a moment
                pass

    reader = threading.Thread(target=keep_reading)
    reader.start()
    try:
        while not reads:  # the reader holds the shared connection before the write starts
            stop.wait(0.01)
        with write_cursor(str(small_db), wait_s=20) as con:
            con.execute("INSERT INTO meta VALUES ('write_test', 'ok')")
    finally:
        stop.set()
        reader.join()
        release_store()
    con = duckdb.connect(str(small_db), read_only=True)
    try:
        assert con.execute("SELECT value FROM meta WHERE key = 'write_test'").fetchone() == ("ok",)
    finally:
        con.close()


def test_a_read_during_a_write_waits_for_it_instead_of_failing(small_db):
    """While the server writes (the file is open read-write in this process), a page's read would fail with
    DuckDB's "different configuration" and show "locked"; it waits for the write and then reads."""
    import threading

    from views._common import read_cursor, release_store, write_cursor

    writing, done = threading.Event(), threading.Event()

    def write() -> None:
        with write_cursor(str(small_db)) as con:
            writing.set()
            con.execute("INSERT INTO meta VALUES ('during_write', 'ok')")
            done.wait(0.5)  # a write that takes a while (the reasons of ten pushes)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert writing.wait(20)
        with read_cursor(str(small_db)) as cur:
            assert cur.execute("SELECT value FROM meta WHERE key = 'during_write'").fetchone() == ("ok",)
    finally:
        done.set()
        writer.join()
        release_store()


def test_the_studio_takes_turns_with_another_process(small_db):
    """The API beside the studio: while another process wants a write turn, the studio's idle shared
    connection is let go (a watcher thread), the other process writes, and the studio reads it after."""
    from views._common import read_cursor, release_store

    with read_cursor(str(small_db)) as cur:  # the studio holds its shared read-only connection
        assert cur.execute("SELECT count(*) FROM events").fetchone()[0] > 0
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom recsys_core.store.turns import write_turn\nt0 = time.monotonic()\n"
         "with write_turn(sys.argv[1], wait_s=20) as con:\n"
         "    con.execute(\"INSERT INTO meta VALUES ('from_api', 'ok')\")\n"
         "print(round(time.monotonic() - t0, 2), flush=True)", str(small_db)],
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
        assert float(out) < 5, f"the other process waited {out.strip()} s for its turn"
        with read_cursor(str(small_db)) as cur:
            assert cur.execute("SELECT value FROM meta WHERE key = 'from_api'").fetchone() == ("ok",)
    finally:
        if writer.poll() is None:
            writer.kill()
        release_store()
