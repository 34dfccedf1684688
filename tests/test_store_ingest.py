"""store.ingest at a scale where DuckDB reads in parallel: line numbers stay exact; the import benchmark runs."""

from __future__ import annotations

import random

from recsys_core import importers, store


def test_line_numbers_stay_exact_in_a_large_file(tmp_path, tmp_db):
    # ~12 MB: DuckDB scans it in several parallel chunks; each bad line must keep its own number.
    rng = random.Random(7)
    n = 400_000
    bad_at = sorted(rng.sample(range(1, n + 1), 40))
    bad = set(bad_at)
    lines = [
        f"{i % 997},bad-{i},3,pv,1511544070" if i in bad else f"{i % 997},{i},3,pv,{1511544070 + i}"
        for i in range(1, n + 1)
    ]
    path = tmp_path / "large.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    r = importers.import_file(path, fmt="taobao", db=tmp_db)
    assert (r["rows_read"], r["rows_imported"], r["rows_quarantined"]) == (n, n - 40, 40)
    con = store.connect(tmp_db, read_only=True)
    try:
        q = con.execute("SELECT row_number, raw FROM quarantine ORDER BY row_number").fetchall()
        # Good rows are intact: item i carries time base + i.
        misplaced = con.execute(
            "SELECT count(*) FROM events WHERE epoch(ts)::BIGINT - 1511544070 <> item_id::BIGINT"
        ).fetchone()[0]
    finally:
        con.close()
    assert q == [(i, lines[i - 1]) for i in bad_at]
    assert misplaced == 0


def test_benchmark_import_reports_figures_with_units():
    figures = importers.benchmark_import(None, n_rows=20_000)
    assert set(figures) == {"import_1m_rows_s", "import_rows_per_s", "import_bench_rows", "import_bench_file_mb"}
    assert figures["import_bench_rows"] == 20_000
    assert figures["import_rows_per_s"] > 0 and figures["import_1m_rows_s"] > 0
