"""Why page speed: server time of a full render for a shopper the page has not seen yet.

    .venv/bin/python benchmarks/bench_why.py [--db PATH] [--model-dir DIR] [--renders N]

Streamlit's AppTest, in this process, one torch thread: open the app and the Why page once (loads the
model, imports Captum, fills the caches), then type N other shoppers into the shopper box and time each
rerun of the whole app script (frame + page: history, top k, integrated gradients, attention, Shapley
values, counterfactuals, reason, and every plotly figure). Nothing is cached for a new shopper, so this
is the full cost of a render. Without --db the sample world is built into a temporary folder; without
--model-dir the bundled model is used. Prints one JSON object (milliseconds). The target (≤ 1.5 s) is
reported, not asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None)
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--renders", type=int, default=8)
    args = parser.parse_args()

    import torch
    from streamlit.testing.v1 import AppTest

    import views._common as common
    from recsys_core import synth
    from recsys_core.store import connect
    from recsys_core.store.events import active_users

    torch.set_num_threads(1)
    db = args.db or str(Path(tempfile.mkdtemp()) / "sample.duckdb")
    if not args.db:
        synth.build_sample_database(db)
    if args.model_dir:
        common.model_dirs = lambda: [Path(args.model_dir)]  # the page lists models through this
    con = connect(db, read_only=True)
    try:
        users = active_users(con, args.renders + 1)
    finally:
        con.close()
    os.environ["RECSYS_DB"] = db
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    for key, value in {"user": users[0], "at": "2025-12-15T08:00"}.items():  # the data's busiest scene values
        at.query_params[key] = value
    at.run()
    t0 = time.perf_counter()
    at.switch_page("views/why.py").run()
    first = (time.perf_counter() - t0) * 1000
    assert not at.exception, at.exception
    times = []
    for user in users[1:]:
        at.text_input(key="why_user").set_value(user)
        t0 = time.perf_counter()
        at.run()
        times.append((time.perf_counter() - t0) * 1000)
        assert not at.exception, at.exception
    print(json.dumps({
        "why_first_render_ms": round(first, 1),
        "why_render_p50_ms": round(statistics.median(times), 1),
        "why_render_max_ms": round(max(times), 1),
        "renders": len(times),
        "target_ms": 1500,
    }))


if __name__ == "__main__":
    main()
