"""Does history augmentation help sparse shoppers? Paired NDCG@10 of model folders on the same test cases.

Two views of the test cases of a protocol (full ranking):

- ``all``: every test case with the history the model reads;
- ``sparse``: shoppers with at most 5 events before their target. The sample world has none (its
  shoppers have 30+ events), so the same cases are also scored with their history CUT to the newest
  5 events (``cut_to_5``) — a sparse shopper's view of a real next target.

Each model is compared with the first folder (the reference, e.g. trained without augmentation) by the
paired bootstrap / sign-flip test of `recsys_core.evaluate.paired_test` (unit: shopper).

    .venv/bin/python benchmarks/sparse_shoppers.py --db data/scenepush.duckdb REF_DIR AUG_DIR [...] [--protocol next_session]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recsys_core import evaluate  # noqa: E402
from recsys_core.augment import SPARSE_EVENTS  # noqa: E402
from recsys_core.store import connect  # noqa: E402


def sparse_report(db: str, dirs: list[str], protocol: str | None = None, max_events: int = SPARSE_EVENTS) -> dict:
    """NDCG@10 with 95% intervals per model and view, and each model's paired difference to the first."""
    con = connect(db, read_only=True)
    try:
        loaded = evaluate._load_models(dirs)
        protocol = evaluate._resolve_protocol(protocol, loaded)
        cases = evaluate._load_cases(con, loaded, protocol)
    finally:
        con.close()
    c0 = cases[0]
    history = c0.targets - c0.data.offsets[c0.users]
    truly_sparse = history <= max_events
    views = {
        "all": (None, np.ones(len(c0), bool)),
        f"cut_to_{max_events}": (max_events, np.ones(len(c0), bool)),
        f"sparse_le_{max_events}": (None, truly_sparse),
    }
    out = {"protocol": protocol, "n_cases": len(c0), "n_sparse_shoppers": int(truly_sparse.sum()), "views": {}}
    for view, (cap, keep) in views.items():
        per = [evaluate.rank_cases(lm.model, c, max_history=cap).per_case[evaluate.HEADLINE][keep] for lm, c in zip(loaded, cases)]
        rows = []
        for lm, values in zip(loaded, per):
            ci = evaluate.bootstrap_ci({"v": values})["v"] if len(values) else [float("nan")] * 2
            row = {"model": str(lm.path), "NDCG@10": round(float(values.mean()), 4) if len(values) else None,
                   "ci95": [round(x, 4) for x in ci]}
            if rows:
                t = evaluate.paired_test(per[0], values)
                row.update(diff=round(t["diff"], 4), diff_ci95=[round(x, 4) for x in t["diff_ci95"]], p_value=round(t["p_value"], 4))
            rows.append(row)
        out["views"][view] = {"n": int(keep.sum()), "models": rows}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dirs", nargs="+")
    p.add_argument("--db", default=str(ROOT / "data" / "scenepush.duckdb"))
    p.add_argument("--protocol", default=None)
    args = p.parse_args()
    print(json.dumps(sparse_report(args.db, args.model_dirs, args.protocol), indent=1))


if __name__ == "__main__":
    main()
