"""MovieLens-shaped check of the sequential network: is `sasrec` a competent SASRec?

Writes a synthetic MovieLens-100K-shaped ratings file (1,000 users, 1,682 movies,
100,000 ratings; every rating is an interaction, unix-second timestamps) as a
headerless generic CSV `user,item,rating,ts`, imports it through the generic CSV
importer, trains `pop`, `covisit` and `sasrec` under `next_event` (leave-one-out, full
ranking — the RecBole protocol) and compares them on the same test cases.

The generator is not a recommender benchmark of its own: it only has to make order
matter so a sequential model has something to learn. Movies have latent genre
vectors and a Zipf popularity; each user has a taste that drifts as a random walk
and is pulled toward the movie just watched, so the next movie depends on the
recent ones (sequential signal) as well as on taste (long-term) and popularity.
Each user rates a movie at most once, like MovieLens.

    .venv/bin/python benchmarks/movielens_check.py --workdir /tmp/mlcheck [--json]

Reports NDCG@10 / HR@10 of sasrec, pop and covisit (a strong first-order reference on
this kind of data) with 95% intervals, paired tests,
and the wall time of `train --model sasrec` with its time to the best validation
NDCG@10 (target: <= 120 s on 2 cores for 100,000 interactions and 1,000 users).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def generate_ratings(
    n_users: int = 1000,
    n_items: int = 1682,
    n_interactions: int = 100_000,
    n_genres: int = 18,
    dim: int = 16,
    seed: int = 0,
) -> np.ndarray:
    """(n_interactions, 4) int64 array of user, item, rating, unix ts; users' rows in time order.

    Ids are 1-based like MovieLens. Per-user lengths are heavy-tailed with a minimum of
    20 ratings (as in MovieLens-100K) and sum exactly to `n_interactions`.
    """
    rng = np.random.default_rng(seed)
    assert n_interactions >= 20 * n_users, "MovieLens keeps users with at least 20 ratings"

    # Movies: genre centre + noise, unit length; Zipf-like popularity logits.
    genres = rng.normal(size=(n_genres, dim))
    genres /= np.linalg.norm(genres, axis=1, keepdims=True)
    item_genre = rng.integers(0, n_genres, n_items)
    items = genres[item_genre] + 0.45 * rng.normal(size=(n_items, dim)) / np.sqrt(dim)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    pop = -1.1 * np.log(rng.permutation(n_items) + 8.0)  # (n_items,)

    # Lengths: lognormal, min 20, scaled to the exact total.
    raw = rng.lognormal(mean=0.0, sigma=0.9, size=n_users)
    lengths = 20 + np.floor(raw / raw.sum() * (n_interactions - 20 * n_users)).astype(np.int64)
    lengths[np.argsort(-raw)[: n_interactions - lengths.sum()]] += 1
    lengths = np.minimum(lengths, n_items // 2)
    short = n_interactions - lengths.sum()
    while short > 0:  # hand back anything the cap removed to users below it
        room = np.flatnonzero(lengths < n_items // 2)[: short]
        lengths[room] += 1
        short = n_interactions - lengths.sum()
    assert lengths.sum() == n_interactions and lengths.min() >= 20

    taste = rng.normal(size=(n_users, dim))
    taste /= np.linalg.norm(taste, axis=1, keepdims=True)
    last = np.zeros((n_users, dim))
    seen = np.zeros((n_users, n_items), dtype=bool)
    chosen = np.zeros((n_users, lengths.max()), dtype=np.int64)
    affinity = np.zeros((n_users, lengths.max()))
    for t in range(lengths.max()):
        active = np.flatnonzero(lengths > t)
        logits = (
            pop[None, :]
            + 2.5 * taste[active] @ items.T  # long-term taste
            + 5.0 * last[active] @ items.T  # the movie just watched (sequential signal)
        )  # (A, n_items)
        logits[seen[active]] = -np.inf
        pick = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)  # Gumbel-max sampling
        chosen[active, t] = pick
        seen[active, pick] = True
        affinity[active, t] = np.einsum("ad,ad->a", taste[active], items[pick])
        # Taste drifts: a random walk pulled toward what was just watched.
        taste[active] = 0.93 * taste[active] + 0.07 * items[pick] + 0.05 * rng.normal(size=(len(active), dim))
        taste[active] /= np.linalg.norm(taste[active], axis=1, keepdims=True)
        last[active] = items[pick]

    # Timestamps: each user starts somewhere in 1997-98; bursts of ratings a minute or so
    # apart, separated by gaps of days.
    t0 = 874_724_710  # 1997-09-20, the start of MovieLens-100K
    rows = []
    for u in range(n_users):
        n = lengths[u]
        burst_gap = rng.exponential(3 * 86400, n) * (rng.random(n) < 0.08)
        gaps = 1 + rng.exponential(45, n).astype(np.int64) + burst_gap.astype(np.int64)
        ts = t0 + rng.integers(0, 200 * 86400) + np.cumsum(gaps)
        a = affinity[u, :n]
        rating = np.clip(np.round(3.5 + 1.6 * a + rng.normal(0, 0.8, n)), 1, 5).astype(np.int64)
        rows.append(np.stack([np.full(n, u + 1), chosen[u, :n] + 1, rating, ts], axis=1))
    return np.concatenate(rows).astype(np.int64)


def write_csv(ratings: np.ndarray, path: Path) -> None:
    """Headerless `user,item,rating,ts`, shuffled like a real dump (order comes from ts, not rows)."""
    order = np.random.default_rng(1).permutation(len(ratings))
    np.savetxt(path, ratings[order], fmt="%d", delimiter=",")


def _cli(*argv: str) -> tuple[dict[str, Any], float, float]:
    """Run `python -m recsys_core ARGV --json`; return its JSON, wall seconds and CPU seconds (user + system).

    CPU time is reported beside wall time because these machines are shared: under
    contention wall time measures the neighbours as much as the code.
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "recsys_core", *argv, "--json"], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"`python -m recsys_core {' '.join(argv)}` failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(proc.stdout), wall, cpu


def time_to_best(model_dir: Path) -> dict[str, Any]:
    """Seconds of training until the epoch with the best validation NDCG@10, from the model's metadata.

    Each epoch's training time is recorded; the validation passes (the rest of the
    total) are shared out evenly over the epochs run.
    """
    training = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8")).get("training", {})
    history, best = training.get("history", []), training.get("best_epoch")
    if not history or not best:
        return {}
    train_s = [h["train_s"] for h in history]
    eval_share = max(0.0, training["seconds"] - sum(train_s)) / len(history)
    return {
        "best_epoch": best,
        "epochs_run": len(history),
        "best_valid_NDCG@10": training.get("best_valid_NDCG@10"),
        "seconds_to_best": round(sum(train_s[:best]) + eval_share * best, 1),
        "seconds_total": training["seconds"],
        "epoch_train_s_median": training.get("epoch_s_median"),
        "config": training.get("config"),
    }


def _oriented(tests: dict[tuple[str, str], dict[str, Any]], a: str, b: str, keep: tuple[str, ...]) -> dict[str, Any]:
    """The paired test of b against a (b - a), from whichever direction compare reported it."""
    if (a, b) in tests:
        return {k: tests[(a, b)][k] for k in keep}
    if (b, a) not in tests:
        return {}
    t = tests[(b, a)]
    return {"diff": -t["diff"], "diff_ci95": [-t["diff_ci95"][1], -t["diff_ci95"][0]], "p_value": t["p_value"], "wins": t["losses"], "losses": t["wins"], "ties": t["ties"]}


def run_check(workdir: Path, n_users: int = 1000, n_interactions: int = 100_000, n_items: int = 1682, seed: int = 0, epochs: int | None = None) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    csv_path, db = workdir / "ratings.csv", workdir / "movielens.duckdb"
    if db.exists():
        db.unlink()
    start = time.perf_counter()
    write_csv(generate_ratings(n_users, n_items, n_interactions, seed=seed), csv_path)
    generate_s = time.perf_counter() - start

    load_before = os.getloadavg()[0]
    imported, import_s, _ = _cli("import", str(csv_path), "--format", "csv", "--columns", "user,item,rating,ts", "--db", str(db))
    extra = ["--epochs", str(epochs)] if epochs else []
    _, pop_s, _ = _cli("train", "--model", "pop", "--protocol", "next_event", "--db", str(db), "--out", str(workdir / "pop"))
    _, covisit_s, _ = _cli("train", "--model", "covisit", "--protocol", "next_event", "--db", str(db), "--out", str(workdir / "covisit"))
    sasrec, sasrec_s, sasrec_cpu = _cli("train", "--model", "sasrec", "--protocol", "next_event", "--db", str(db), "--out", str(workdir / "sasrec"), "--seed", str(seed), *extra)
    load_after = os.getloadavg()[0]
    dirs = [str(workdir / name) for name in ("pop", "sasrec", "covisit")]
    compared, compare_s, _ = _cli("compare", *dirs, "--protocol", "next_event", "--db", str(db))

    models = {row["model"]: row for row in compared["models"]}
    tests = {(t["a"], t["b"]): t for t in compared["tests"] + compared["vs_best"]}
    keep = ("diff", "diff_ci95", "rel_diff", "rel_diff_ci95", "p_value", "wins", "losses", "ties")
    headline = lambda name: {k: models[name]["metrics"][k] for k in ("NDCG@10", "HR@10")} | {"NDCG@10_ci95": models[name]["ci95"]["NDCG@10"]}  # noqa: E731
    return {
        "dataset": {"users": n_users, "items": n_items, "interactions": n_interactions, "rows_imported": imported.get("rows_imported"), "generate_s": round(generate_s, 1), "import_s": round(import_s, 1)},
        "protocol": compared["protocol"],
        "ranking": "full",
        "n_test_users": compared["n_users"],
        "pop": headline("pop"),
        "sasrec": headline("sasrec"),
        "covisit": headline("covisit"),
        "best": compared["best"],
        "sasrec_vs_pop": {k: tests[("pop", "sasrec")][k] for k in keep},
        "sasrec_beats_pop": bool(tests[("pop", "sasrec")]["diff_ci95"][0] > 0 and tests[("pop", "sasrec")]["p_value"] < 0.01),
        "sasrec_vs_covisit": _oriented(tests, "covisit", "sasrec", keep),
        "sasrec_train_command_wall_s": round(sasrec_s, 1),
        "sasrec_train_command_cpu_s": round(sasrec_cpu, 1),
        "sasrec_training": time_to_best(workdir / "sasrec"),
        "load_average_1min": [round(load_before, 1), round(load_after, 1)],
        "pop_train_wall_s": round(pop_s, 1),
        "covisit_train_wall_s": round(covisit_s, 1),
        "compare_wall_s": round(compare_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default="data/movielens_check")
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--interactions", type=int, default=100_000)
    p.add_argument("--items", type=int, default=1682)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--csv-only", action="store_true", help="only write the ratings CSV into the workdir")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    workdir = Path(args.workdir)
    if args.csv_only:
        workdir.mkdir(parents=True, exist_ok=True)
        write_csv(generate_ratings(args.users, args.items, args.interactions, seed=args.seed), workdir / "ratings.csv")
        print(workdir / "ratings.csv")
        return 0
    report = run_check(workdir, args.users, args.interactions, args.items, args.seed, args.epochs)
    print(json.dumps(report, indent=None if args.json else 2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
