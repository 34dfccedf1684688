"""Training from the browser and the "this database has no model of its own" notice (Models, Scenario, Why pages).

The job itself runs in its own process (`recsys_core.jobs`); everything about it is on disk under
``models/.jobs``, so its progress shows wherever and whenever the page is opened again. One job at a time per
server: the jobs folder is the server's.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import streamlit as st

import views._common as common
from views._common import Store, field_label, loaded_model, model_key, model_mtime, read_cursor, scene_schema, tr
from recsys_core import jobs
from recsys_core.i18n import format_int, format_pct

MODELS_PAGE = "views/model_cards.py"
POLL_S = 1.0


def models_root() -> Path:
    return common.models_root()


def jobs_dir() -> Path:
    return models_root() / ".jobs"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


@st.cache_data(show_spinner=False, max_entries=64)
def _data_fit(model: str, mtime: int, path: str, version: tuple[int, int]) -> dict[str, Any]:
    from recsys_core import recommend

    with read_cursor(path) as cur:
        return recommend.data_fit(loaded_model(model), cur)


@st.cache_data(show_spinner=False, max_entries=16)
def _default_cut(path: str, version: tuple[int, int]) -> str:
    from recsys_core.sequences import cut_iso, store_default_cut
    from recsys_core.store.events import data_timezone

    with read_cursor(path) as cur:
        return cut_iso(store_default_cut(cur), data_timezone(cur))


def default_cut(store: Store) -> str:
    """time_split's default cut of the open database (ISO with its offset: the start of its last 7 local days)."""
    return _default_cut(store.path, store.version)


def data_fit(key: str, store: Store) -> dict[str, Any]:
    """Whether the model folder ``key`` may serve the open database (`recommend.data_fit`), cached per versions."""
    return _data_fit(key, model_mtime(key), store.path, store.version)


def _usable(key: str, store: Store) -> bool:
    try:
        return data_fit(key, store)["usable"]
    except (OSError, ValueError):  # an unreadable folder (ModelFolderError is a ValueError) serves nothing
        return False


def start_default_job(store: Store) -> None:
    spec = jobs.default_spec(int(store.stats["events"]), store.path, models_root())
    try:
        jobs.start(spec, jobs_dir())
    except (jobs.JobBusyError, ValueError) as exc:
        st.warning(tr("train.refused", error=exc))
        return
    st.success(tr("train.started", epochs=spec.epochs))


def require_model_for_data(store: Store, key: str | None) -> None:
    """Stop the page with one line and a way forward when the model cannot serve the open database:
    none at all, or one trained on other data whose catalogue does not cover this one."""
    fit = None if key is None else data_fit(key, store)
    if fit is not None and fit["usable"]:
        return
    if fit is None:
        st.warning(tr("train.notice_none"), icon=":material/model_training:")
    else:
        st.warning(tr("train.notice", model=Path(key).name, coverage=format_pct(fit["coverage"])), icon=":material/model_training:")
    usable = [model_key(d) for d in common.model_dirs() if model_key(d) != key and _usable(model_key(d), store)]
    if usable:
        st.caption(tr("train.other_models_usable", models=", ".join(Path(u).name for u in usable)))
    left, right = st.columns([1, 1])
    if left.button(tr("train.for_this_data"), key="train_for_this_data", type="primary", icon=":material/model_training:"):
        start_default_job(store)
    right.page_link(MODELS_PAGE, label=tr("train.open_models"), icon=":material/leaderboard:")
    st.stop()


def training_form(store: Store) -> None:
    """Model type, protocol (time_split with its cut date), context fields, epochs, seed, folder name → a background job."""
    st.caption(tr("train.caption", events=format_int(store.stats["events"])))
    default = jobs.default_spec(int(store.stats["events"]), store.path, models_root())
    schema = scene_schema(store)
    from recsys_core.context import TIME_FIELDS

    fields = list(TIME_FIELDS) + [f.name for f in schema]
    decision = list(TIME_FIELDS) + [f.name for f in schema if f.known_at_decision]
    cut_default = dt.date.fromisoformat(default_cut(store)[:10])
    with st.form("train_form"):
        c1, c2, c5, c3, c4 = st.columns([2, 2, 2, 1, 1])
        model_type = c1.selectbox(tr("train.model_type"), jobs.MODEL_TYPES, key="train_model_type")
        protocol = c2.selectbox(tr("train.protocol"), jobs.PROTOCOLS, index=jobs.PROTOCOLS.index(default.protocol), key="train_protocol")
        cut = c5.date_input(tr("ts.cut"), cut_default, key="train_cut", help=tr("ts.train_cut_help"))
        epochs = c3.number_input(tr("train.epochs"), 1, 200, default.epochs, key="train_epochs")
        seed = c4.number_input(tr("train.seed"), 0, 2**31 - 1, default.seed, key="train_seed")
        context = st.multiselect(tr("train.context"), fields, default=decision, key="train_context",
                                 format_func=lambda f: field_label(f, schema), help=tr("train.context_help"))
        name = st.text_input(tr("train.name"), Path(default.out).name, key="train_name")
        submitted = st.form_submit_button(tr("train.start"), type="primary", icon=":material/model_training:")
    if not submitted:
        return
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,80}", name or ""):
        st.error(tr("train.bad_name"))
        return
    spec = jobs.JobSpec(model_type, protocol, str(models_root() / name), store.path, int(epochs), int(seed),
                        None if set(context) == set(decision) else tuple(context),
                        cut.isoformat() if protocol == "time_split" and cut else None)  # local midnight of that day
    try:
        jobs.start(spec, jobs_dir())
    except (jobs.JobBusyError, ValueError) as exc:
        st.error(tr("train.refused", error=exc))


def _progress_text(job: dict[str, Any]) -> str:
    model = job["spec"]["model_type"]
    if job["stage"] in ("starting", "loading"):
        return tr("train.loading")
    if model not in jobs.NEURAL:
        return tr("train.running_count", model=model)
    return tr("train.running", model=model, epoch=min(job["epoch"] + 1, job["epochs"]), epochs=job["epochs"])


def job_panel() -> None:
    """The latest job: a live progress bar with cancel while it runs (refreshed every second), its outcome after."""
    job = jobs.status(jobs_dir())
    if job is None:
        return
    if job["state"] == "running":
        _live_job()
        return
    if job["state"] == "done":
        st.success(tr("train.done", model=job["spec"]["model_type"], out=Path(job["out"] or job["spec"]["out"]).name,
                      elapsed=_duration(job["elapsed_s"])), icon=":material/check_circle:")
    elif job["state"] == "cancelled":
        st.info(tr("train.cancelled", job=job["id"]))
    else:
        st.error(tr("train.failed", job=job["id"], error=job["error"]))


@st.fragment(run_every=POLL_S)
def _live_job() -> None:
    """Only this part reruns each second while a job runs; when the job ends the whole page reruns, so the new
    model shows in the cards and the outcome replaces the bar."""
    job = jobs.status(jobs_dir())
    if job is None or job["state"] != "running":
        st.rerun(scope="app")
    st.progress(job["progress"], text=_progress_text(job))
    if job["history"]:
        st.caption(tr("train.stats", loss=f"{job['loss']:.4f}", ndcg=f"{job['valid_NDCG@10']:.4f}",
                      elapsed=_duration(job["elapsed_s"]), remaining=_duration(job["remaining_s"])))
    if st.button(tr("train.cancel"), key="train_cancel", icon=":material/cancel:"):
        jobs.cancel(jobs_dir())
        st.rerun(scope="app")
