"""Time every Behaviour-page query: on the sample world (target ≤ 300 ms each) and on a generated
10-million-event store (target ≤ 1.5 s each). Prints one JSON object.

    .venv/bin/python benchmarks/bench_behaviour.py --db data/scenepush.duckdb
    .venv/bin/python benchmarks/bench_behaviour.py --db data/scenepush.duckdb --large-events 0   # sample only

Each query runs as the page runs it: on a cursor of a read-only connection, first
call (cold: data not yet in DuckDB's buffer) and then `--repeat` warm calls; the
page caches results per filter, so a filter change costs one warm call of each
query. Two filter sets are timed: everything, and a typical narrowed view (two
categories, mobile, two weeks). The 10M store is built with DuckDB SQL from
`range()` and hashing in a temporary folder (about 30 s on 2 cores) and deleted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recsys_core.store import analytics, connect, resolve_db_path, set_meta  # noqa: E402
from recsys_core.context import scene_field  # noqa: E402
from recsys_core.store import scene as store_scene  # noqa: E402
from recsys_core.store.analytics import EventFilter  # noqa: E402

SAMPLE_TARGET_MS = 300
LARGE_TARGET_MS = 1500


def page_queries(con) -> dict[str, Callable[[EventFilter], Any]]:
    """Every query the Behaviour page (and the sidebar and Overview) runs, as functions of the page filter.

    The Overview needs only `database_stats` (counts, funnel, scene mix) and the unfiltered heatmap.
    The per-category heatmap runs only when categories are chosen: it is timed with three.
    Queries that ignore the filter (stats, options, most active shoppers, a timeline) run
    once per database version in the app; they are timed in both sets all the same.
    """
    top_shopper = analytics.active_shoppers(con, limit=1)["user_id"].iloc[0]
    fields = store_scene.scene_names(con)  # the funnel per scene field: the schema's last field
    three = tuple(analytics.filter_options(con)["categories"][:3])
    return {
        "database_stats": lambda f: analytics.database_stats(con),
        "filter_options": lambda f: analytics.filter_options(con),
        "behavior_counts": lambda f: analytics.behavior_counts(con, f),
        "daily_events": lambda f: analytics.daily_events(con, f),
        "hour_weekday": lambda f: analytics.hour_weekday(con, f),
        "hour_weekday_by_category": lambda f: analytics.hour_weekday(
            con, dataclasses.replace(f, categories=f.categories or three), by_category=True
        ),
        **({"scene_funnel": lambda f: analytics.scene_funnel(con, f, fields[-1])} if fields else {}),
        "scene_mix": lambda f: analytics.scene_mix(con, f),
        "conversion_by_hour": lambda f: analytics.conversion_by_hour(con, f),
        "top_items": lambda f: analytics.top_items(con, f, limit=10),
        "top_categories": lambda f: analytics.top_categories(con, f, limit=10),
        "active_shoppers": lambda f: analytics.active_shoppers(con, limit=5),
        "shopper_timeline": lambda f: analytics.shopper_timeline(con, top_shopper, limit=1000),
    }


def narrow_scene(con) -> dict[str, tuple[str, ...]]:
    """The narrowed view keeps one value of the first scene field (mobile in the sample world), if any."""
    fields = store_scene.scene_names(con)
    if not fields:
        return {}
    column = store_scene.quoted(fields[0])
    top = con.execute(f"SELECT {column} FROM events GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
    return {fields[0]: (top,)}


def filter_sets(con) -> dict[str, EventFilter]:
    options = analytics.filter_options(con)
    start = max(options["start"], options["end"] - timedelta(days=13))
    return {
        "all": EventFilter(start=options["start"], end=options["end"]),
        "narrow": EventFilter(
            start=start, end=options["end"], categories=tuple(options["categories"][:2]),
            scene=narrow_scene(con)
        ),
    }


def time_queries(db: Path, repeat: int) -> dict[str, Any]:
    """{filter set: {query: {first_ms, median_ms, max_ms}}} for one database, as the app opens it."""
    con = connect(db, read_only=True)
    cur = con.cursor()
    try:
        queries = page_queries(cur)
        results: dict[str, Any] = {}
        for set_name, f in filter_sets(cur).items():
            per_query = {}
            for name, run in queries.items():
                timings = []
                for _ in range(repeat + 1):
                    t0 = time.perf_counter()
                    run(f)
                    timings.append((time.perf_counter() - t0) * 1000)
                warm = timings[1:]
                per_query[name] = {
                    "first_ms": round(timings[0], 1),
                    "median_ms": round(statistics.median(warm), 1),
                    "max_ms": round(max(warm), 1),
                }
            results[set_name] = per_query
        results["events"] = cur.execute("SELECT count(*) FROM events").fetchone()[0]
        return results
    finally:
        cur.close()
        con.close()


def build_large_store(path: Path, n_events: int) -> float:
    """A store of `n_events` synthetic events (200k shoppers, 20k items in 20 categories, 180 days
    from 2024-07-01 with 11.11 and 12.12 surges, daily and hourly rhythm); returns seconds taken."""
    t0 = time.perf_counter()
    con = connect(path)
    con.execute("SET enable_progress_bar = false")
    store_scene.ensure_scene_fields(con, [scene_field(f) for f in ("device", "channel", "location")])
    con.execute(
        """
        INSERT INTO items
        SELECT 'i' || n, 'Item ' || n, '商品' || n, 'cat' || (n % 20), '类目' || (n % 20), 'brand' || (n % 300),
               round(5 + (hash(n) % 500000) / 100.0, 2)
        FROM range(20000) t(n)
        """
    )
    con.execute(
        """
        INSERT INTO events (user_id, item_id, behavior, ts, seq, device, channel, location, source_run)
        SELECT 'u' || (hash(n) % 200000),
               'i' || (hash(n * 7 + 1) % 20000),
               CASE WHEN hash(n * 3) % 1000 < 870 THEN 'pv' WHEN hash(n * 3) % 1000 < 935 THEN 'cart'
                    WHEN hash(n * 3) % 1000 < 975 THEN 'fav' ELSE 'buy' END,
               -- day: uniform over 180 days, one in 40 events moved to 11.11 or 12.12; time of day skewed to evenings
               TIMESTAMP '2024-07-01' - INTERVAL 8 HOUR
                 + to_days(CASE WHEN hash(n * 19) % 40 = 0 THEN 133 + (hash(n * 23) % 2)::INTEGER * 31
                                ELSE (hash(n * 5) % 180)::INTEGER END)
                 + to_seconds(((greatest(hash(n * 11) % 86400, hash(n * 13) % 86400)))::BIGINT),
               n,
               ['mobile', 'mobile', 'pc', 'tablet'][(1 + hash(n * 17) % 4)::BIGINT],
               ['home_feed', 'search', 'push', 'live_stream', 'cart'][(1 + hash(n * 29) % 5)::BIGINT],
               ['home', 'office', 'commute', 'city'][(1 + hash(n * 31) % 4)::BIGINT],
               'bench'
        FROM range(?) t(n)
        ORDER BY 4
        """,
        [n_events],
    )
    set_meta(con, "timezone", "Asia/Shanghai")
    con.close()
    return time.perf_counter() - t0


def worst(results: dict[str, Any]) -> float:
    return max(q["median_ms"] for name, per in results.items() if name != "events" for q in per.values())


def bench_group(db: str | None) -> dict[str, float]:
    """For `recsys_core/bench.py` GROUPS: the sample world only (the 10M store takes a minute to build)."""
    sample = time_queries(resolve_db_path(db), repeat=3)
    medians = [q["median_ms"] for name, per in sample.items() if name != "events" for q in per.values()]
    return {"behaviour_query_worst_median_ms": max(medians), "behaviour_query_median_ms": statistics.median(medians)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=None, help="the sample database (default: $RECSYS_DB, else data/scenepush.duckdb)")
    parser.add_argument("--large-events", type=int, default=10_000_000, help="events in the generated store (0: skip)")
    parser.add_argument("--repeat", type=int, default=5, help="warm runs per query")
    args = parser.parse_args(argv)

    report: dict[str, Any] = {"targets_ms": {"sample": SAMPLE_TARGET_MS, "large": LARGE_TARGET_MS}}
    sample_db = resolve_db_path(args.db)
    sample = time_queries(sample_db, args.repeat)
    report["sample"] = {"db": str(sample_db), **sample, "worst_median_ms": worst(sample)}
    ok = worst(sample) <= SAMPLE_TARGET_MS
    if args.large_events:
        with tempfile.TemporaryDirectory(prefix="scenepush-bench-") as tmp:
            large_db = Path(tmp) / "large.duckdb"
            build_s = build_large_store(large_db, args.large_events)
            large = time_queries(large_db, args.repeat)
            report["large"] = {"build_s": round(build_s, 1), **large, "worst_median_ms": worst(large)}
            ok = ok and worst(large) <= LARGE_TARGET_MS
    report["within_targets"] = ok
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
