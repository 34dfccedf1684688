"""`python -m recsys_core import ... --json` in a subprocess, as outside checks run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recsys_core", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_import_real_sample_json_then_repeat(shared_data, tmp_db):
    sample = str(shared_data / "tianchi_mobile_user_sample.csv")
    items = str(shared_data / "tianchi_mobile_item_sample.csv")
    first = run_cli("import", sample, "--format", "tianchi", "--items", items, "--db", str(tmp_db), "--json")
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)  # one JSON object on stdout
    assert (out["rows_read"], out["rows_imported"], out["rows_quarantined"]) == (1999, 1999, 0)
    assert out["run_id"] and out["format"] == "tianchi" and out["already_imported"] is False
    assert out["items_file"]["rows_imported"] == 1999

    again = run_cli("import", sample, "--format", "tianchi", "--db", str(tmp_db), "--json")
    assert again.returncode == 0, again.stderr
    out2 = json.loads(again.stdout)
    assert out2["already_imported"] is True and out2["rows_imported"] == 0 and out2["run_id"] == out["run_id"]


def test_import_generic_csv_with_options(tmp_path, tmp_db):
    f = tmp_path / "log.csv"
    f.write_text("7;70;1731285000000\n8;71;oops\n", encoding="utf-8")
    done = run_cli("import", str(f), "--format", "csv", "--columns", "user,item,ts", "--sep", ";", "--ts-unit", "ms",
                   "--tz", "Europe/Berlin", "--db", str(tmp_db), "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["rows_read"], out["rows_imported"], out["rows_quarantined"]) == (2, 1, 1)
    assert out["status"] == "partial" and out["timezone"] == "Europe/Berlin"
    assert out["quarantine_sample"][0]["reason"].startswith("log.csv line 2: field 'ts'")


def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path, tmp_db):
    missing = run_cli("import", str(tmp_path / "nope.csv"), "--format", "taobao", "--db", str(tmp_db), "--json")
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: file not found:") and "Traceback" not in missing.stderr
    assert missing.stdout == ""

    folder = run_cli("import", str(tmp_path), "--format", "taobao", "--db", str(tmp_db))
    assert folder.returncode == 2 and "is a directory" in folder.stderr

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    result = run_cli("import", str(empty), "--format", "retailrocket", "--db", str(tmp_db))
    assert result.returncode == 2 and "is empty" in result.stderr and "Traceback" not in result.stderr


def test_locked_database_gives_the_clear_message(shared_data, tmp_db):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(60)", str(tmp_db)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        done = run_cli("import", str(shared_data / "taobao_userbehavior_sample.csv"), "--format", "taobao",
                       "--db", str(tmp_db), "--json")
        assert done.returncode == 2
        assert "is locked by another process" in done.stderr and "Traceback" not in done.stderr
    finally:
        holder.kill()
        holder.wait()
