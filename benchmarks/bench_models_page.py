"""Models page speed: cold evaluation of five models, the same from the evaluation store, and the page's render.

    .venv/bin/python benchmarks/bench_models_page.py [--db PATH] [--models-dir DIR] [--renders N]

Five models on the sample world's 3,000 next_session test cases: the bundled context transformer plus pop,
co-visitation, context-aware popularity and sasrec (trained here into --models-dir when missing; sasrec for
3 epochs). Measures, in this process:
  - cold_evaluation_s: `compare_models` with an empty evaluation store (load, rank every case over the whole
    catalogue, bootstrap intervals, paired tests, slices) — target ≤ 15 s on 2 cores;
  - stored_evaluation_s: the same with the store filled (no ranking);
  - page_first_render_s: the Models page opened on those five (URL state) in a fresh AppTest with empty
    Streamlit caches but stored evaluations — what a new server shows;
  - page_warm_render_ms: p50 / max of N reruns of the whole app script (frame + page) — target ≤ 1.5 s.
Prints one JSON object. Targets are reported, not asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COUNT_MODELS = ("pop", "covisit", "context_pop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None)
    parser.add_argument("--models-dir", default=None, help="where the four trained models are (or are trained into)")
    parser.add_argument("--renders", type=int, default=5)
    args = parser.parse_args()

    import torch

    from recsys_core import evaluate, synth
    from recsys_core.recommend import bundled_model_dir
    from recsys_core.store import connect

    tmp = Path(tempfile.mkdtemp(prefix="bench-models-"))
    db = args.db or str(tmp / "sample.duckdb")
    if not args.db:
        synth.build_sample_database(db)
    models = Path(args.models_dir) if args.models_dir else tmp / "models"
    for model_type in (*COUNT_MODELS, "sasrec"):
        if not (models / model_type / "metadata.json").is_file():
            extra = ["--epochs", "3"] if model_type == "sasrec" else []
            subprocess.run([sys.executable, "-m", "recsys_core", "train", "--model", model_type, "--protocol", "next_session",
                            "--db", db, "--out", str(models / model_type), *extra], cwd=ROOT, check=True, capture_output=True)
    dirs = [bundled_model_dir()] + [models / m for m in (*COUNT_MODELS, "sasrec")]

    torch.set_num_threads(min(2, torch.get_num_threads()))
    store = evaluate.EvaluationStore(tmp / "evaluations")
    con = connect(db, read_only=True)
    try:
        t0 = time.perf_counter()
        cold = evaluate.compare_models(con, [str(d) for d in dirs], store=store)
        cold_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        evaluate.compare_models(con, [str(d) for d in dirs], store=evaluate.EvaluationStore(store.root))
        stored_s = time.perf_counter() - t0
    finally:
        con.close()

    # The page reads the store beside the database: put the filled store there.
    beside = evaluate.EvaluationStore.beside(db).root
    if beside != store.root:
        beside.mkdir(parents=True, exist_ok=True)
        for f in store.root.iterdir():
            (beside / f.name).write_bytes(f.read_bytes())

    from streamlit.testing.v1 import AppTest

    import views._common as common
    from views._common import model_key

    common.model_dirs = lambda: list(dirs)
    os.environ["RECSYS_DB"] = db
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["models"] = ",".join(model_key(d) for d in dirs)
    t0 = time.perf_counter()
    at.run()
    at.switch_page("views/model_cards.py").run()
    first_s = time.perf_counter() - t0
    assert not at.exception, at.exception
    assert len(at.dataframe) >= 3, "the comparison did not render"
    warm = []
    for _ in range(args.renders):
        t0 = time.perf_counter()
        at.run()
        warm.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({
        "models": [m["model"] for m in cold["models"]],
        "cases": cold["n_users"],
        "cold_evaluation_s": round(cold_s, 2),
        "stored_evaluation_s": round(stored_s, 2),
        "page_first_render_s": round(first_s, 2),
        "page_warm_render_ms": {"p50": round(statistics.median(warm), 1), "max": round(max(warm), 1), "renders": len(warm)},
        "targets": {"cold_evaluation_s": 15.0, "page_warm_render_ms": 1500},
        "load_average": os.getloadavg()[0],
    }, indent=1))


if __name__ == "__main__":
    main()
