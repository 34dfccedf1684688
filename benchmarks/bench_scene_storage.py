"""Which storage keeps scene-field analytics fast on 10M events? (the choice behind `store.scene`)

Builds the same events three ways in a temporary DuckDB file — one VARCHAR column per scene field,
one MAP(VARCHAR, VARCHAR) column, and a long table (event row id, field, value) — and times the
behaviour page's typical scene queries: events per value of one field under a filter on another,
and the per-field mix. Prints one JSON object (median seconds of 3 runs per query and layout).

    .venv/bin/python benchmarks/bench_scene_storage.py [--rows 10000000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

LAYOUTS = {
    "columns": (
        "CREATE TABLE ev AS SELECT i AS id, (hash(i) % 50000)::VARCHAR AS user_id, 'pv' AS behavior, "
        "TIMESTAMP '2024-11-01' + to_seconds(i // 10) AS ts, "
        "['mobile','pc','tablet'][1 + i % 3] AS device, ['home_feed','search','push','live_stream','cart'][1 + i % 5] AS channel, "
        "['home','office','commute','city'][1 + i % 4] AS location FROM range($n) r(i)",
        {
            "group_by_device_where_location": "SELECT device, count(*) FROM ev WHERE location = 'office' GROUP BY 1",
            "mix_of_three_fields": "SELECT count(*) FROM ev GROUP BY GROUPING SETS ((device), (channel), (location))",
        },
    ),
    "map": (
        "CREATE TABLE ev AS SELECT i AS id, (hash(i) % 50000)::VARCHAR AS user_id, 'pv' AS behavior, "
        "TIMESTAMP '2024-11-01' + to_seconds(i // 10) AS ts, "
        "MAP {'device': ['mobile','pc','tablet'][1 + i % 3], 'channel': ['home_feed','search','push','live_stream','cart'][1 + i % 5], "
        "'location': ['home','office','commute','city'][1 + i % 4]} AS scene FROM range($n) r(i)",
        {
            "group_by_device_where_location": "SELECT scene['device'], count(*) FROM ev WHERE scene['location'] = 'office' GROUP BY 1",
            "mix_of_three_fields": "SELECT count(*) FROM ev GROUP BY GROUPING SETS ((scene['device']), (scene['channel']), (scene['location']))",
        },
    ),
    "long_table": (
        "CREATE TABLE ev AS SELECT i AS id, (hash(i) % 50000)::VARCHAR AS user_id, 'pv' AS behavior, "
        "TIMESTAMP '2024-11-01' + to_seconds(i // 10) AS ts FROM range($n) r(i); "
        "CREATE TABLE scene AS SELECT i AS id, f.field, CASE f.field WHEN 'device' THEN ['mobile','pc','tablet'][1 + i % 3] "
        "WHEN 'channel' THEN ['home_feed','search','push','live_stream','cart'][1 + i % 5] ELSE ['home','office','commute','city'][1 + i % 4] END AS value "
        "FROM range($n) r(i), (VALUES ('device'), ('channel'), ('location')) f(field)",
        {
            "group_by_device_where_location": "SELECT d.value, count(*) FROM scene d JOIN scene l USING (id) "
            "WHERE d.field = 'device' AND l.field = 'location' AND l.value = 'office' GROUP BY 1",
            "mix_of_three_fields": "SELECT field, value, count(*) FROM scene GROUP BY ALL",
        },
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    args = ap.parse_args()
    out: dict[str, float | int] = {"rows": args.rows}
    with tempfile.TemporaryDirectory(prefix="scene-storage-") as work:
        for layout, (build, queries) in LAYOUTS.items():
            con = duckdb.connect(str(Path(work) / f"{layout}.duckdb"))
            for stmt in build.split("; "):
                con.execute(stmt, {"n": args.rows} if "$n" in stmt else {})
            con.execute("CHECKPOINT")
            out[f"{layout}_file_mb"] = round((Path(work) / f"{layout}.duckdb").stat().st_size / 2**20, 1)
            for name, sql in queries.items():
                times = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    con.execute(sql).fetchall()
                    times.append(time.perf_counter() - t0)
                out[f"{layout}_{name}_s"] = round(statistics.median(times), 3)
            con.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
