"""Scene-switching router vs its members on test: overall paired difference and the slices it wins or loses.

    .venv/bin/python benchmarks/bench_router.py [--db PATH] --members DIR,DIR[,...] [--route-by F1,F2 ...] [--json]

For each --route-by choice (repeatable; default: hour_bucket, hour_bucket,device, device,location, day_type,hour_bucket)
a router is built over the members on their validation cases (`train --model router`, folder under --out), then every
model is ranked on the TEST cases of the members' protocol (full ranking, stored evaluations reused). Reported per choice:
the router's NDCG@10 against the best member on test — the paired difference (router − best) with its 95% bootstrap
interval and permutation p-value — and, per slice of the route-by fields, the same paired difference on that slice's
test cases: a slice is won (lost) when the whole interval lies above (below) 0. Prints a table, or one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_ROUTES = ("hour_bucket", "hour_bucket,device", "device,location", "day_type,hour_bucket")


def bench(db: str | None, member_dirs: list[str], routes: list[str], out_root: Path) -> dict:
    import torch

    from recsys_core import evaluate
    from recsys_core.registry import load_model
    from recsys_core.sequences import SequenceData
    from recsys_core.store import connect
    from recsys_core.store import events as store_events
    from recsys_core.train import train_router

    torch.set_num_threads(1)
    members = [load_model(d) for d in member_dirs]
    con = connect(db, read_only=True)
    try:
        data, fp = SequenceData.from_store(con, features=members[0].features), store_events.data_fingerprint(con)
        store = evaluate.EvaluationStore.beside(db)
        protocol = members[0].protocol
        results, table = evaluate.rank_models(con, members, protocol, store)
        labels = evaluate._labels(members)
        ndcg = {lab: res.per_case[evaluate.HEADLINE] for lab, res in zip(labels, results)}
        best = max(labels, key=lambda lab: ndcg[lab].mean())
        rows = []
        for route_by in routes:
            built = train_router(data, fp, members, route_by.split(","), out=out_root / f"router-{route_by.replace(',', '-')}")
            lm = load_model(built["out"])
            (res,), _ = evaluate.rank_models(con, [lm], protocol, store)
            mine = res.per_case[evaluate.HEADLINE]
            overall = evaluate.paired_test(ndcg[best], mine)
            keys = table[lm.model.cfg.route_by].astype(str).agg(" × ".join, axis=1).to_numpy()
            route = {" × ".join(r["slice"].values()): r for r in lm.model.cfg.routes}
            cfg = lm.model.cfg
            slices = []
            for key in sorted(set(keys)):
                mask = keys == key
                r = route.get(key)
                member = cfg.members[r["member"]]["label"] if r else cfg.members[cfg.fallback]["label"]
                test = evaluate.paired_test(ndcg[best][mask], mine[mask], n_permutations=2000) if member != best else None
                lo, hi = test["diff_ci95"] if test else (0.0, 0.0)
                slices.append({"slice": key, "n_test": int(mask.sum()), "n_valid": r["n_valid"] if r else 0, "member": member,
                               "rule": r["rule"] if r else "unseen", "router": round(float(mine[mask].mean()), 4),
                               best: round(float(ndcg[best][mask].mean()), 4), "diff": round(float(mine[mask].mean() - ndcg[best][mask].mean()), 4),
                               "diff_ci95": [round(lo, 4), round(hi, 4)], "p_value": round(test["p_value"], 4) if test else 1.0, "verdict": "win" if lo > 0 else "loss" if hi < 0 else "level"})
            rows.append({
                "route_by": route_by, "router_NDCG@10": round(float(mine.mean()), 4), "best_member": best,
                "best_NDCG@10": round(float(ndcg[best].mean()), 4), "diff": round(overall["diff"], 4),
                "diff_ci95": [round(x, 4) for x in overall["diff_ci95"]], "p_value": round(overall["p_value"], 4),
                "fallback": built["fallback"], "slices": len(slices), "thin": built["thin_slices"],
                "routed_away": sum(s["member"] != best for s in slices),
                "wins": [s["slice"] for s in slices if s["verdict"] == "win"],
                "losses": [s["slice"] for s in slices if s["verdict"] == "loss"],
                "per_slice": slices,
            })
    finally:
        con.close()
    return {
        "evaluation": f"full ranking, {protocol}, {len(table)} test cases; router − best member on test, paired bootstrap 95%",
        "protocol": protocol,
        "members": {lab: round(float(v.mean()), 4) for lab, v in ndcg.items()},
        "routers": rows,
    }


def print_table(out: dict) -> None:
    print(out["evaluation"])
    print("members (test NDCG@10): " + ", ".join(f"{k} {v:.4f}" for k, v in out["members"].items()))
    head = f"{'route-by':<22} {'router':>7} {'best':>7} {'diff':>8} {'95% interval':>20} {'p':>6} {'slices':>6} {'thin':>4} {'away':>4}  wins / losses"
    print(head)
    for r in out["routers"]:
        lo, hi = r["diff_ci95"]
        print(f"{r['route_by']:<22} {r['router_NDCG@10']:>7.4f} {r['best_NDCG@10']:>7.4f} {r['diff']:>+8.4f} "
              f"[{lo:+.4f}, {hi:+.4f}] {r['p_value']:>6.3f} {r['slices']:>6} {r['thin']:>4} {r['routed_away']:>4}  "
              f"{', '.join(r['wins']) or '–'} / {', '.join(r['losses']) or '–'}")
    for r in out["routers"]:
        away = [s for s in r["per_slice"] if s["member"] != r["best_member"]]
        if away:
            print(f"\n{r['route_by']}: slices answered by another member than {r['best_member']}")
            for s in away:
                print(f"  {s['slice']:<28} n={s['n_test']:<5} {s['member']:<20} router {s['router']:.4f} vs {r['best_member']} "
                      f"{s[r['best_member']]:.4f}  diff {s['diff']:+.4f} [{s['diff_ci95'][0]:+.4f}, {s['diff_ci95'][1]:+.4f}] p {s['p_value']:.3f} {s['verdict']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None)
    parser.add_argument("--members", required=True, help="comma-separated member folders (same data and protocol)")
    parser.add_argument("--route-by", action="append", default=None, help=f"repeatable (default: {' | '.join(DEFAULT_ROUTES)})")
    parser.add_argument("--out", default="models/bench", help="folder for the routers built")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out = bench(args.db, [d for d in args.members.split(",") if d], args.route_by or list(DEFAULT_ROUTES), Path(args.out))
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        print_table(out)


if __name__ == "__main__":
    main()
