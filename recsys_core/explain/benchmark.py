"""Bench group "explain": how long explanations take with the bundled model on one torch thread.

Per shopper (the most active ones, their top item at 08:00 on the commute): integrated gradients
with 50 steps, attention maps, exact Shapley values over the 10 feature groups, counterfactuals
(scenario and history), the whole `explain_case`, reasons for a pushed top 5, and the calls the
Why page makes for a shopper it has not seen (history, top k, every explanation). The page's full
render (Streamlit's AppTest, figures included) is measured by `benchmarks/bench_why.py`, outside
the core, which never imports streamlit.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Callable

import numpy as np

N_SHOPPERS = 10


def _ms(fn: Callable[[], Any], repeats: int = 3) -> float:
    best = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best.append((time.perf_counter() - t0) * 1000)
    return float(np.median(best))


def _figures(name: str, values: list[float]) -> dict[str, float]:
    return {f"explain_{name}_p50_ms": round(float(np.median(values)), 1), f"explain_{name}_max_ms": round(float(np.max(values)), 1)}


def benchmark_explain(db: str | None) -> dict[str, float]:
    from recsys_core import recommend
    from recsys_core.explain import explain_case, push_reasons
    from recsys_core.explain.attention import attention_maps
    from recsys_core.explain.attributions import integrated_gradients
    from recsys_core.explain.cases import for_item, item_frame, shopper_case, top_items
    from recsys_core.explain.counterfactuals import history_counterfactuals, scenario_counterfactuals
    from recsys_core.explain.shapley import shapley_values
    from recsys_core.store import connect
    from recsys_core.store.events import active_users

    lm = recommend.load_model()  # the bundled model, one torch thread
    model = lm.model
    scenario = recommend.Scenario(dt.datetime(2025, 12, 15, 8, 0), "mobile", "push", "commute")
    con = connect(db, read_only=True)
    timings: dict[str, list[float]] = {k: [] for k in ("ig50", "attention", "shapley", "counterfactuals", "full")}
    push5, page_calls = [], []
    try:
        users = active_users(con, 2 * N_SHOPPERS)
        for i, user in enumerate(users[:N_SHOPPERS]):
            case = shopper_case(lm, con, user, scenario)
            item = recommend.recommend(lm, con, user, scenario, k=1)["item_id"].iloc[0]
            case = for_item(case, item)
            if i == 0:  # warm-up: first calls import captum and allocate
                explain_case(model, case)
            timings["ig50"].append(_ms(lambda: integrated_gradients(model, case.batch, case.item, n_steps=50)))
            timings["attention"].append(_ms(lambda: attention_maps(model, case.batch)))
            timings["shapley"].append(_ms(lambda: shapley_values(model, case.batch, case.item)))
            timings["counterfactuals"].append(_ms(lambda: (scenario_counterfactuals(model, case), history_counterfactuals(model, case))))
            timings["full"].append(_ms(lambda: explain_case(model, case), repeats=1))
            if i < 3:
                top = recommend.recommend(lm, con, user, scenario, k=5)
                push5.append(_ms(lambda: push_reasons(lm, con, user, scenario, top["item_id"], k=5), repeats=1))
        for user in users[N_SHOPPERS:]:  # what the Why page computes for a shopper it has not seen

            def page() -> None:
                shopper = shopper_case(lm, con, user, scenario)
                top = top_items(model, shopper, 10)
                item_frame(con, list(top["item_id"]))
                explain_case(model, for_item(shopper, top["item_id"].iloc[0]), 10)

            page_calls.append(_ms(page, repeats=1))
        n_groups = len(shapley_values(model, case.batch, case.item).values)
        history_len = case.batch.length
    finally:
        con.close()
    figures: dict[str, float] = {}
    for name, values in timings.items():
        figures.update(_figures(name, values))
    figures.update(_figures("push_reasons_top5", push5))
    figures["explain_shapley_groups"] = n_groups
    figures["explain_history_events"] = history_len
    figures.update(_figures("why_page_calls", page_calls))
    return figures
