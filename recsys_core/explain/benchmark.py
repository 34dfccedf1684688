"""Bench group "explain": how long explanations take with the bundled model on one torch thread.

Per shopper (the most active ones, their top item at 08:00 on mobile, on the commute, where the data has
those fields): integrated gradients with the Why page's steps, attention maps, exact Shapley values over
the groups of `shapley.case_groups`, counterfactuals (scenario and history), the whole `explain_case`;
the reasons stored with a push of the top 10 (`push_reasons`, issue 15's target ≤ 1.5 s); and the calls
the Why page makes for a shopper it has not seen (history, top k, every explanation; target ≤ 1.5 s).
The page's full render (Streamlit's AppTest, figures included) is measured by `benchmarks/bench_why.py`,
outside the core, which never imports streamlit. Each figure has a CPU-time twin (``*_cpu_ms``): on a
shared machine wall time also counts other processes; one thread's CPU time is what the call costs.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Callable

import numpy as np

N_SHOPPERS = 10


def _ms(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``fn``."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return float(np.median(wall)), float(np.median(cpu))


def _figures(name: str, values: list[tuple[float, float]]) -> dict[str, float]:
    wall, cpu = [v[0] for v in values], [v[1] for v in values]
    return {f"explain_{name}_p50_ms": round(float(np.median(wall)), 1), f"explain_{name}_max_ms": round(float(np.max(wall)), 1),
            f"explain_{name}_p50_cpu_ms": round(float(np.median(cpu)), 1)}


def benchmark_explain(db: str | None) -> dict[str, float]:
    from recsys_core import recommend
    from recsys_core.context import Scenario
    from recsys_core.explain import DEFAULT_STEPS, explain_case, push_reasons
    from recsys_core.explain.attention import attention_maps
    from recsys_core.explain.attributions import integrated_gradients, private_copy
    from recsys_core.explain.cases import for_item, item_frame, shopper_case, top_items
    from recsys_core.explain.counterfactuals import history_counterfactuals, scenario_counterfactuals
    from recsys_core.explain.shapley import case_groups, shapley_values
    from recsys_core.store import connect
    from recsys_core.store.events import active_users

    lm = recommend.load_model()  # the bundled model, one torch thread
    model = private_copy(lm.model)
    # a known value of every scene field of the model's schema (timings do not depend on which)
    scene = {name: vocab.values[0] for name, vocab in lm.features.scene.items() if vocab.values}
    scenario = Scenario(dt.datetime(2025, 12, 15, 8, 0), scene)
    con = connect(db, read_only=True)
    timings: dict[str, list[tuple[float, float]]] = {k: [] for k in ("ig", "attention", "shapley", "counterfactuals", "full")}
    push10, page_calls = [], []
    try:
        users = active_users(con, 2 * N_SHOPPERS)
        for i, user in enumerate(users[:N_SHOPPERS]):
            case = shopper_case(lm, con, user, scenario)
            item = recommend.recommend(lm, con, user, scenario, k=1)["item_id"].iloc[0]
            case = for_item(case, item)
            if i == 0:  # warm-up: first calls import captum and allocate
                explain_case(model, case)
            timings["ig"].append(_ms(lambda: integrated_gradients(model, case.batch, case.item, n_steps=DEFAULT_STEPS)))
            timings["attention"].append(_ms(lambda: attention_maps(model, case.batch)))
            timings["shapley"].append(_ms(lambda: shapley_values(model, case.batch, case.item)))
            timings["counterfactuals"].append(_ms(lambda: (scenario_counterfactuals(model, case), history_counterfactuals(model, case))))
            timings["full"].append(_ms(lambda: explain_case(lm.model, case), repeats=1))
            if i < 3:
                top = recommend.recommend(lm, con, user, scenario, k=10)
                push10.append(_ms(lambda: push_reasons(lm, con, user, scenario, top["item_id"], k=10), repeats=1))
        for user in users[N_SHOPPERS:]:  # what the Why page computes for a shopper it has not seen

            def page() -> None:
                shopper = shopper_case(lm, con, user, scenario)
                top = top_items(lm.model, shopper, 10)
                item_frame(con, list(top["item_id"]))
                explain_case(lm.model, for_item(shopper, top["item_id"].iloc[0]), 10)

            page_calls.append(_ms(page, repeats=1))
        n_groups = len(case_groups(model, case))
        history_len = case.batch.length
    finally:
        con.close()
    figures: dict[str, float] = {}
    for name, values in timings.items():
        figures.update(_figures(name, values))
    figures.update(_figures("push_reasons_top10", push10))
    figures["explain_ig_steps"] = DEFAULT_STEPS
    figures["explain_shapley_groups"] = n_groups
    figures["explain_history_events"] = history_len
    figures.update(_figures("why_page_calls", page_calls))
    return figures
