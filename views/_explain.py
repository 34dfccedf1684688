"""What the Why and Push review pages share: the loaded model, cached shoppers and explanations, links.

Models and explanations are `st.cache_resource` (shared, never mutated: an
`Explanation` holds numpy arrays and the shopper's events), keyed by the model
folder and its metadata time, the database file version, the shopper, the item
and the scenario, so a rerun with the same inputs costs nothing.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import streamlit as st

from views._common import APP_ROOT, read_cursor
from recsys_core import scenario as sc

WHY_URL = "why-pushed"
REVIEW_URL = "push-review"


def model_key(path: Path) -> str:
    """How a model folder appears in a URL: relative to the app when it lives inside it."""
    try:
        return str(Path(path).resolve().relative_to(APP_ROOT))
    except ValueError:
        return str(path)


def model_path(key: str) -> Path:
    p = Path(key)
    return p if p.is_absolute() else APP_ROOT / p


def model_mtime(key: str) -> int:
    return (model_path(key) / "metadata.json").stat().st_mtime_ns


@st.cache_resource(show_spinner=False, max_entries=8)
def _load_model(path: str, mtime: int) -> Any:
    import torch

    from recsys_core import registry

    torch.set_num_threads(1)  # GOTCHAS: stable interactive latency on 2 shared cores
    return registry.load_model(path)


def loaded_model(key: str) -> Any:
    """The model folder ``key`` (see `model_key`), loaded once per server and metadata version."""
    return _load_model(str(model_path(key)), model_mtime(key))


def to_scenario(spec: sc.ScenarioSpec) -> SimpleNamespace:
    """What `recsys_core.explain` reads from a scenario."""
    return SimpleNamespace(at=spec.local_time, device=spec.device, channel=spec.channel, location=spec.location,
                           promo_override=spec.promo_override)


@st.cache_resource(show_spinner=False, max_entries=64)
def shopper_case(model: str, mtime: int, db: str, version: tuple, user: str, spec_key: tuple) -> Any:
    """The shopper's history and moment (no item yet), or the error message when there is none."""
    from recsys_core.explain.cases import shopper_case as build

    with read_cursor(db) as cur:
        try:
            return build(loaded_model(model), cur, user, to_scenario(sc.ScenarioSpec.from_key(spec_key)))
        except ValueError as exc:
            return str(exc)


@st.cache_resource(show_spinner=False, max_entries=64)
def explanation(model: str, mtime: int, db: str, version: tuple, user: str, item: str, spec_key: tuple, k: int) -> Any:
    """Every explanation of one shopper × scenario × item under the live model (an `Explanation`)."""
    from recsys_core.explain import explain_case
    from recsys_core.explain.cases import for_item

    case = shopper_case(model, mtime, db, version, user, spec_key)
    if isinstance(case, str):
        raise ValueError(case)
    loaded = loaded_model(model)
    result = explain_case(loaded.model, for_item(case, item), k)
    result.model_version = loaded.version
    return result


def why_link(user: str, item: str, spec: sc.ScenarioSpec, k: int, lang: str, model: str | None = None) -> str:
    """A relative link that opens the Why page on exactly this shopper, item and scenario."""
    params = {"user": user, "item": item, "at": spec.local_time.strftime("%Y-%m-%dT%H:%M"), "device": spec.device,
              "channel": spec.channel, "location": spec.location, "promo": spec.promo, "k": str(k), "lang": lang}
    if model:
        params["model"] = model
    return f"/{WHY_URL}?{urllib.parse.urlencode(params)}"


def spec_of_push(local_time: dt.datetime, device: str, channel: str, location: str) -> sc.ScenarioSpec:
    """The scenario a push was made for (the calendar decides the promotion flag)."""
    return sc.ScenarioSpec(local_time.date(), local_time.hour, local_time.minute, device, channel, location)
