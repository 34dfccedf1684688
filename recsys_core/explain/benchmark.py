"""Bench group "explain": how long explanations take with the bundled model on one torch thread.

Per shopper (the most active ones, their top item at 08:00 on the commute): integrated gradients
with 50 steps, attention maps, exact Shapley values over the 10 feature groups, counterfactuals
(scenario and history), the whole `explain_case`, and reasons for a pushed top 5; then the Why page
rendered by Streamlit's AppTest for shoppers it has not seen yet (server time of a full rerun, the
explanation included — nothing cached for that shopper).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

N_SHOPPERS = 10
N_PAGE_RENDERS = 5
APP = Path(__file__).resolve().parents[2] / "app.py"


def _ms(fn: Callable[[], Any], repeats: int = 3) -> float:
    best = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best.append((time.perf_counter() - t0) * 1000)
    return float(np.median(best))


def _figures(name: str, values: list[float]) -> dict[str, float]:
    return {f"explain_{name}_p50_ms": round(float(np.median(values)), 1), f"explain_{name}_max_ms": round(float(np.max(values)), 1)}


def page_render_ms(db: str | None, users: list[str]) -> list[float]:
    """Server time of a full Why page rerun (AppTest) for each shopper, after one warm-up render."""
    from streamlit.testing.v1 import AppTest

    from recsys_core.store import resolve_db_path

    old = os.environ.get("RECSYS_DB")
    os.environ["RECSYS_DB"] = str(resolve_db_path(db))
    try:
        at = AppTest.from_file(str(APP), default_timeout=300)
        at.query_params["user"] = users[0]
        at.run()
        at.switch_page("pages/why.py").run()
        assert not at.exception, at.exception
        times = []
        for user in users[1:]:
            at.text_input(key="why_user").set_value(user)
            t0 = time.perf_counter()
            at.run()
            times.append((time.perf_counter() - t0) * 1000)
            assert not at.exception, at.exception
        return times
    finally:
        if old is None:
            os.environ.pop("RECSYS_DB", None)
        else:
            os.environ["RECSYS_DB"] = old


def benchmark_explain(db: str | None) -> dict[str, float]:
    from recsys_core import recommend
    from recsys_core.explain import explain_case, push_reasons
    from recsys_core.explain.attention import attention_maps
    from recsys_core.explain.attributions import integrated_gradients
    from recsys_core.explain.cases import for_item, shopper_case
    from recsys_core.explain.counterfactuals import history_counterfactuals, scenario_counterfactuals
    from recsys_core.explain.shapley import shapley_values
    from recsys_core.store import connect
    from recsys_core.store.events import active_users

    lm = recommend.load_model()  # the bundled model, one torch thread
    model = lm.model
    scenario = recommend.Scenario(dt.datetime(2025, 12, 15, 8, 0), "mobile", "push", "commute")
    con = connect(db, read_only=True)
    timings: dict[str, list[float]] = {k: [] for k in ("ig50", "attention", "shapley", "counterfactuals", "full")}
    push5 = []
    try:
        users = active_users(con, N_SHOPPERS + N_PAGE_RENDERS + 1)
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
    figures.update(_figures("why_page_render", page_render_ms(db, users[N_SHOPPERS:])))
    return figures
