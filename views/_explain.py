"""What the Scenario, Why and Push review pages share about explanations: cached cases and explanations, links.

Explanations are `st.cache_resource` (shared, never mutated: an `Explanation` holds numpy arrays and
the shopper's events), keyed by the model folder and its metadata time, the database file version,
the shopper, the item and the scenario (`Scenario.key()`), so a rerun with the same inputs costs nothing.
The model itself comes from the one cached loader in `views._common`.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import streamlit as st

from views._common import field_label, loaded_model, read_cursor, tr
from recsys_core import scenario as sc
from recsys_core.context import Scenario, SceneField
from recsys_core.i18n import TRANSLATIONS

WHY_URL = "why-pushed"
REVIEW_URL = "push-review"
WHY_PAGE = "views/why.py"
REVIEW_PAGE = "views/push_review.py"
# One colour meaning in every explanation chart (Why and Push review): green raises the item, red lowers it.
RAISES, LOWERS = "#2CA02C", "#D62728"
RAISE_LOWER_SCALE = [[0.0, LOWERS], [0.5, "#F2F2F2"], [1.0, RAISES]]


def group_label(group: str, schema: list[SceneField]) -> str:
    """A Shapley group's name: a scene field's own label, else the group's word."""
    if group.startswith("scene."):
        return field_label(group.split(".", 1)[1], schema)
    key = f"why.group.{group}"
    return tr(key) if key in TRANSLATIONS else group.replace("_", " ")


@st.cache_resource(show_spinner=False, max_entries=64)
def shopper_case(model: str, mtime: int, db: str, version: tuple, user: str, scenario_key: tuple) -> Any:
    """The shopper's history and moment (no item yet), or the error message when there is none."""
    from recsys_core.explain.cases import shopper_case as build

    with read_cursor(db) as cur:
        try:
            return build(loaded_model(model), cur, user, Scenario.from_key(scenario_key))
        except ValueError as exc:
            return str(exc)


@st.cache_resource(show_spinner=False, max_entries=64)
def explanation(model: str, mtime: int, db: str, version: tuple, user: str, item: str, scenario_key: tuple, k: int) -> Any:
    """Every explanation of one shopper × scenario × item under the live model (an `Explanation`)."""
    from recsys_core.explain import explain_case
    from recsys_core.explain.cases import for_item

    case = shopper_case(model, mtime, db, version, user, scenario_key)
    if isinstance(case, str):
        raise ValueError(case)
    loaded = loaded_model(model)
    result = explain_case(loaded.model, for_item(case, item), k)
    result.model_version = loaded.version
    return result


def why_params(user: str, item: str | None, scenario: Scenario, k: int, lang: str, model: str | None = None) -> dict[str, str]:
    """Query parameters that open the Why page on exactly this shopper, (item,) scenario and k."""
    params = {"user": str(user), **({"item": str(item)} if item else {}), **sc.scenario_params(scenario), "k": str(k), "lang": lang}
    if model:
        params["model"] = model
    return params


def why_link(user: str, item: str, scenario: Scenario, k: int, lang: str, model: str | None = None) -> str:
    """A relative link that opens the Why page on exactly this shopper, item and scenario."""
    return f"/{WHY_URL}?{urllib.parse.urlencode(why_params(user, item, scenario, k, lang, model))}"
