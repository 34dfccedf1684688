"""Scenario: pick a shopper, set the moment and the scene, and see what would be pushed — and how it moves.

Inputs (shopper, scenario A, reference scenario B, k, models) → `recsys_core.recommend` (cached per
model, database version, shopper and scenario) → tables and plotly charts. The scene controls are the
data's scene fields (`filter_options()["scene_fields"]`; a field with one value gets none), greyed out
when the active model does not read them. Everything shown is encoded in the URL
(`recsys_core.scenario.to_query_params`), so a copied link opens the same view.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # before plotly (docs/pitfalls.md)
import plotly.graph_objects as go
import streamlit as st

from views._common import (
    active_model_dir,
    field_label,
    lang,
    loaded_model,
    model_dirs,
    model_key,
    open_store,
    code,
    plot_text,
    query,
    read_cursor,
    reads_note,
    scene_controls,
    scene_schema,
    show_chart,
    tr,
    tr_md,
    vocab,
    vocab_formatter,
    write_cursor,
    exclusive_store,
    APP_ROOT,
)
from views._training import require_model_for_data
from views._explain import REVIEW_PAGE, WHY_PAGE, why_link, why_params
from views._explain import explanation as explain_cached, shopper_case as explain_shopper_case
from recsys_core import privacy, recommend
from recsys_core import scenario as sc
from recsys_core.context import PROMO_CHOICES, Scenario
from recsys_core.features import Calendar
from recsys_core.i18n import TRANSLATIONS, format_int, markdown_text
from recsys_core.store.analytics import EventFilter

TIME_KEYS = ("day", "hour", "minute", "promo")
TIMELINE_LIMIT = 300
RANDOM_POOL = 200
SAVED = "_scenario_saved"  # the last state shown: restores the widgets after a visit to another page
SHARED = "_shared_scenario"  # shopper, scenario and k shared with the Why page (see `share` / `adopt_shared`)
SEEN = "_scenario_seen"
PUSHED = "_scenario_pushed"
REASONS_WORKER = "_push_reasons_worker"  # the thread attaching reasons to the latest pushes (tests join it)
FORGET_ASKED = "_forget_asked"  # the shopper whose erasure waits for a confirmation
FORGOTTEN = "_forgotten"  # what the last erasure did (shown once)
SCENE_COLORS = ["#1F77B4", "#E4572E", "#2CA02C", "#9467BD", "#F3A712", "#17BECF", "#8C564B", "#7F7F7F"]
BEHAVIOR_SYMBOLS = {"pv": "circle", "fav": "star", "cart": "square", "buy": "diamond"}

st.title(tr("scenario.title"))
st.caption(tr("scenario.caption"))

store = open_store()
options = query(store, "filter_options")
schema = scene_schema(store)
zh = lang() == "zh"
scene_values: dict[str, list[str]] = options["scene"]
controls = scene_controls(options)  # scene fields with a control (more than one value)


def scene_key(field: str, prefix: str = "") -> str:
    return f"{prefix}scene_{field}"


# --- models ---------------------------------------------------------------------------------

dirs = model_dirs()
if not dirs:
    require_model_for_data(store, None)
model_keys = [model_key(d) for d in dirs]
active = active_model_dir()
default_model = model_key(active) if active else model_keys[0]


def try_model(key: str) -> Any:
    try:
        return loaded_model(key)
    except (OSError, ValueError):  # an unreadable model is reported where it is used
        return None


# --- cached queries and scores ---------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=256)
def ranking(model: str, db: str, version: tuple, user: str, scenario_key: tuple, exclude_seen: bool) -> pd.DataFrame:
    """The shopper's full ranking of the catalogue under one scenario (rank, score, item fields)."""
    m = loaded_model(model)
    with read_cursor(db) as cur:
        return recommend.recommend(m, cur, user, Scenario.from_key(scenario_key), m.model.n_items, exclude_seen)


@st.cache_data(show_spinner=False, max_entries=256)
def cold_start(model: str, db: str, version: tuple, user: str, scenario_key: tuple) -> dict | None:
    """What the list says when the shopper has no history: it is the moment's scene-aware popularity."""
    with read_cursor(db) as cur:
        return recommend.cold_start_note(loaded_model(model), cur, user, Scenario.from_key(scenario_key))


@st.cache_data(show_spinner=False, max_entries=64)
def sweep(model: str, db: str, version: tuple, user: str, scenario_key: tuple, items: tuple[str, ...], exclude_seen: bool) -> pd.DataFrame:
    """Ranks of ``items`` at each hour 0..23 of the scenario's day (`recommend.hour_sweep`: one batched call)."""
    with read_cursor(db) as cur:
        return recommend.hour_sweep(loaded_model(model), cur, user, Scenario.from_key(scenario_key), list(items), exclude_seen)


@st.cache_data(show_spinner=False, max_entries=512)
def shopper_known(db: str, version: tuple, user: str) -> bool:
    from recsys_core.store.events import user_exists

    with read_cursor(db) as cur:
        return user_exists(cur, user)


# --- state: URL ↔ widgets ----------------------------------------------------------------------

first_day, last_day = options["start"], options["end"]
today = last_day + dt.timedelta(days=1)  # the day after the data: "what would we push next?"
day_bounds = (first_day - dt.timedelta(days=366), last_day + dt.timedelta(days=366))
top_shoppers = query(store, "active_shoppers", EventFilter(), limit=RANDOM_POOL)["user_id"].tolist()
# Each field's busiest value (`scene_mix` lists them busiest first): the scene before any preset.
base_scene = {f: next(iter(store.stats["scene_mix"].get(f) or scene_values[f]), None) for f in options["scene_fields"]}
base_scene = {f: v for f, v in base_scene.items() if v is not None}
visible_presets = sc.presets_for(scene_values)


def calendar_of(key: str) -> Calendar:
    """The model's calendar (holidays, promotion days); the store's timezone and defaults when it cannot load."""
    m = try_model(key)
    return m.features.calendar if m is not None else Calendar(timezone=options["timezone"])


def preset_here(key: str, base: Scenario) -> Scenario:
    """A preset over ``base``, keeping only scene values this database has."""
    cal = calendar_of(st.session_state.get("scenario_model", default_model))
    return sc.preset(key, today, cal, base, scene_values, visible_presets)


def default_state() -> sc.ScenarioState:
    user = top_shoppers[0] if top_shoppers else ""
    base = Scenario.local(today, 8, 0, base_scene)
    keys = [p.key for p in visible_presets]
    a = preset_here("commute", base) if "commute" in keys else base
    b = preset_here("office", base) if "office" in keys else base.at_hour(14)
    return sc.ScenarioState(user, a, b, sc.DEFAULT_K, default_model)


choices = sc.Choices(scene_values, model_keys, *day_bounds)


def scenario_widgets(s: Scenario, prefix: str) -> dict[str, Any]:
    values = {prefix + "day": s.day, prefix + "hour": s.hour, prefix + "minute": s.minute, prefix + "promo": s.promo}
    values.update({scene_key(f, prefix): s.get(f, base_scene.get(f)) for f in controls})
    return values


def widget_values(state: sc.ScenarioState) -> dict[str, Any]:
    return {"user": state.user_id, "k": state.k, "scenario_model": state.model, "scenario_model_b": state.model_b,
            "unseen": state.exclude_seen, **scenario_widgets(state.a, ""), **scenario_widgets(state.b, "ref_")}


def scenario_from_widgets(prefix: str) -> Scenario:
    """The scenario the widgets of one side show (fields without a control keep the data's one value)."""
    scene = {**base_scene, **{f: st.session_state[scene_key(f, prefix)] for f in controls}}
    ss = st.session_state
    return Scenario.local(ss[prefix + "day"], ss[prefix + "hour"], int(ss[prefix + "minute"]), scene, ss[prefix + "promo"])


url_problems: list[str] = []
if SAVED not in st.session_state:  # a new session: the URL decides
    start_state, url_problems = sc.from_query_params(dict(st.query_params), default_state(), choices)
else:
    start_state = st.session_state[SAVED]
shared = st.session_state.get(SHARED)
if shared and shared["stamp"] != st.session_state.get(SEEN):  # the Why page moved on: follow its shopper and scenario
    start_state = sc.ScenarioState(shared["user"], Scenario.from_key(shared["scenario"]), start_state.b, shared["k"],
                                   shared["model"] if shared["model"] in model_keys else start_state.model,
                                   start_state.model_b, start_state.exclude_seen)
    for key, value in widget_values(start_state).items():
        if not key.startswith("ref_"):
            st.session_state[key] = value
for key, value in widget_values(start_state).items():
    if key not in st.session_state:
        st.session_state[key] = value


def apply_preset(pill_key: str, prefix: str) -> None:
    """A preset pill was clicked: set that side's scenario fields, then clear the pill (presets are actions)."""
    key = st.session_state.get(pill_key)
    if key:
        try:
            current = scenario_from_widgets(prefix)
        except (TypeError, ValueError):  # a field holds an invalid value: the preset replaces it
            current = Scenario.local(today, 8, 0, base_scene)
        values = scenario_widgets(preset_here(key, current), prefix)
        values[prefix + "promo"] = "auto"
        st.session_state.update(values)
    st.session_state[pill_key] = None


def side_keys(prefix: str) -> list[str]:
    return [prefix + k for k in TIME_KEYS] + [scene_key(f, prefix) for f in controls]


def copy_a_to_b() -> None:
    for a, b in zip(side_keys(""), side_keys("ref_")):
        st.session_state[b] = st.session_state[a]


def swap_a_b() -> None:
    for a, b in zip(side_keys(""), side_keys("ref_")):
        st.session_state[a], st.session_state[b] = st.session_state[b], st.session_state[a]


def random_shopper() -> None:
    if top_shoppers:
        st.session_state["user"] = random.choice(top_shoppers)


# --- inputs --------------------------------------------------------------------------------

problems: dict[str, str] = {}


def field_problem(widget_key: str, message: str) -> None:
    """A message right below the widget it is about; scoring waits until it is fixed."""
    problems[widget_key] = message
    st.error(message, icon=":material/error:")


with st.container(border=True):
    c_user, c_random, c_model, c_model_b, c_k = st.columns([3, 3, 3, 3, 2], vertical_alignment="top")
    c_user.text_input(tr("scenario.shopper"), key="user", help=tr("scenario.shopper_help", examples=", ".join(top_shoppers[:5])))
    c_random.button(tr("scenario.random_shopper"), key="random_user", on_click=random_shopper,
                    icon=":material/shuffle:", width="stretch")
    c_model.selectbox(tr("scenario.model"), model_keys, key="scenario_model", format_func=lambda k: Path(k).name)
    c_model_b.selectbox(tr("scenario.model_b"), ["", *model_keys], key="scenario_model_b",
                        format_func=lambda k: Path(k).name if k else tr("scenario.model_b_none"))
    with c_k:
        st.number_input(tr("scenario.k"), key="k", step=1, help=tr("scenario.k_help", low=sc.K_RANGE[0], high=sc.K_RANGE[1]))
        if sc.parse_k(st.session_state["k"]) is None:
            field_problem("k", tr("scenario.k_range", low=sc.K_RANGE[0], high=sc.K_RANGE[1]))

model = try_model(st.session_state["scenario_model"])
reads = tuple(model.context_fields) if model is not None else ()
if model is not None:
    st.caption(reads_note(reads, schema), help=tr("scenario.reads_help"))
if not options["scene_fields"]:
    st.caption(tr("scenario.no_scene_fields"))


def not_read(fields: tuple[str, ...]) -> bool:
    """A control is greyed out when the loaded model reads none of the fields it sets."""
    return model is not None and not any(f in reads for f in fields)


def scenario_inputs(prefix: str) -> None:
    """Presets, date, minute, hour (with the minute), calendar flags with the promotion override, scene fields."""
    cal = calendar_of(st.session_state["scenario_model"])
    if visible_presets:
        labels = {p.key: tr(f"scenario.preset.{p.key}") if f"scenario.preset.{p.key}" in TRANSLATIONS else dict(p.labels).get(lang(), p.key)
                  for p in visible_presets}
        st.pills(tr("scenario.presets"), [p.key for p in visible_presets], key=prefix + "preset", on_change=apply_preset,
                 args=(prefix + "preset", prefix), format_func=labels.get)
    c_day, c_min = st.columns([3, 1])
    with c_day:
        day = st.date_input(tr("scenario.date"), key=prefix + "day", min_value=dt.date(1900, 1, 1), max_value=dt.date(2199, 12, 31))
        if day is None or not day_bounds[0] <= day <= day_bounds[1]:
            field_problem(prefix + "day", tr("scenario.day_range", first=day_bounds[0].isoformat(), last=day_bounds[1].isoformat()))
    time_off = not_read(("hour",))
    time_help = tr("scenario.not_read", field=field_label("hour", schema)) if time_off else None
    with c_min:
        minute = st.number_input(tr("scenario.minute"), key=prefix + "minute", step=5, disabled=time_off, help=time_help)
        if not (float(minute).is_integer() and 0 <= minute <= 59):
            field_problem(prefix + "minute", tr("scenario.minute_range"))
    shown_minute = int(minute) if 0 <= minute <= 59 else 0
    st.slider(tr("scenario.hour"), 0, 23, key=prefix + "hour", format=f"%02d:{shown_minute:02d}", disabled=time_off, help=time_help)
    if day is not None and day_bounds[0] <= day <= day_bounds[1]:
        flags = sc.day_flags(day, cal)
        words = [vocab("weekday", flags.weekday), tr("scenario.weekend") if flags.weekend else tr("scenario.workday")]
        if flags.holiday:
            words.append(tr("scenario.holiday"))
        if flags.promo:
            words.append(tr("scenario.promo_day"))
        st.caption(" · ".join(words))
        auto = tr("scenario.promo_auto", state=tr("scenario.yes") if flags.promo else tr("scenario.no"))
    else:
        auto = tr("scenario.promo_auto", state="–")
    promo_off = not_read(("promo",))
    st.radio(tr("scenario.promo"), PROMO_CHOICES, key=prefix + "promo", horizontal=True, disabled=promo_off,
             help=tr("scenario.not_read", field=field_label("promo", schema)) if promo_off else None,
             format_func=lambda v, auto=auto: auto if v == "auto" else tr(f"scenario.promo_{v}"))
    for n, f in enumerate(controls):
        if n % 3 == 0:
            columns = st.columns(3)
        off = not_read((f,))
        columns[n % 3].selectbox(field_label(f, schema), scene_values[f], key=scene_key(f, prefix), format_func=vocab_formatter(f),
                                 disabled=off, help=tr("scenario.not_read", field=field_label(f, schema)) if off else None)


left, right = st.columns(2, gap="medium")
with left, st.container(border=True):
    st.markdown(f"**{tr('scenario.a')}**")
    scenario_inputs("")
with right, st.container(border=True):
    c_title, c_copy, c_swap = st.columns([4, 2, 2], vertical_alignment="center")
    c_title.markdown(f"**{tr('scenario.b')}**")
    c_copy.button(tr("scenario.copy_a"), key="copy_a", on_click=copy_a_to_b, width="stretch",
                  icon=":material/content_copy:")
    c_swap.button(tr("scenario.swap"), key="swap", on_click=swap_a_b, width="stretch", icon=":material/swap_horiz:")
    scenario_inputs("ref_")
st.checkbox(tr("scenario.exclude_seen"), key="unseen")

if problems:  # the messages sit next to their fields; the list waits for valid inputs
    st.stop()

state = sc.ScenarioState(
    user_id=str(st.session_state["user"]).strip(),
    a=scenario_from_widgets(""),
    b=scenario_from_widgets("ref_"),
    k=int(st.session_state["k"]),
    model=st.session_state["scenario_model"],
    model_b=st.session_state["scenario_model_b"],
    exclude_seen=bool(st.session_state["unseen"]),
)
st.session_state[SAVED] = state
stamp = time.monotonic_ns()
st.session_state[SHARED] = {"user": state.user_id, "scenario": state.a.key(), "k": state.k, "model": state.model, "stamp": stamp}
st.session_state[SEEN] = stamp
wanted_params = {**sc.to_query_params(state), "lang": lang()}
if {k: st.query_params.get(k) for k in st.query_params} != wanted_params:
    st.query_params.from_dict(wanted_params)
if url_problems:
    st.warning(tr_md("scenario.url_ignored", names=", ".join(url_problems)))

forgotten = st.session_state.pop(FORGOTTEN, None)
if forgotten and "error" in forgotten:
    st.error(tr_md("privacy.forget_failed", error=forgotten["error"]))
elif forgotten:
    st.success(tr_md("privacy.forgotten", user=forgotten["user"], events=format_int(forgotten["deleted"]["events"]),
                     pushes=format_int(forgotten["deleted"]["pushes"]), quarantine=format_int(forgotten["deleted"]["quarantine_rows"]),
                     erasure_id=forgotten["erasure_id"]), icon=":material/check_circle:")
    if forgotten["models_to_retrain"]:
        st.warning(tr_md("privacy.forgotten_models", models=", ".join(forgotten["models_to_retrain"])))

# --- checks before scoring -------------------------------------------------------------------

if not state.user_id:
    st.info(tr("scenario.pick_shopper"))
    st.stop()
if not shopper_known(store.path, store.version, state.user_id):
    st.warning(tr_md("scenario.unknown_shopper", user=state.user_id, examples=", ".join(top_shoppers[:5])))
    st.stop()
try:
    model = loaded_model(state.model)
except (OSError, ValueError) as exc:  # ModelFolderError is a ValueError
    st.error(tr_md("scenario.model_error", model=state.model, error=exc))
    st.stop()
require_model_for_data(store, state.model)  # never another catalogue's items: a notice and "Train a model for this data"


def display(frame: pd.DataFrame) -> pd.DataFrame:
    """Title and category in the UI language (the English name, then the id, when a translation is missing)."""
    out = frame.copy()
    title = out["title"].where(out["title"].notna(), out["item_id"])
    category = out["category"].where(out["category"].notna(), "–")
    if zh:
        title = out["title_zh"].where(out["title_zh"].notna() & (out["title_zh"] != ""), title)
        category = out["category_zh"].where(out["category_zh"].notna() & (out["category_zh"] != ""), category)
    out["title_shown"], out["category_shown"] = title, category
    return out


def describe(s: Scenario) -> str:
    """"Monday 2025-12-15 08:00, Mobile · Push · Commute" (plain text; scene values from the data)."""
    scene = " · ".join(vocab(f, s.get(f)) for f in controls)
    return tr("scenario.describe" if scene else "scenario.describe_time", weekday=vocab("weekday", s.day.weekday()),
              day=s.day.isoformat(), time=f"{s.hour:02d}:{s.minute:02d}", scene=scene)


COLUMNS = {
    "rank": st.column_config.NumberColumn(tr("scenario.col.rank"), format="%d", width=56),
    "arrow": st.column_config.TextColumn(tr("scenario.col.vs_b"), width=80, help=tr("scenario.col.vs_b_help")),
    "ref_rank": st.column_config.NumberColumn(tr("scenario.col.rank_b"), format="%,d", width=90),
    "place": st.column_config.TextColumn(tr("scenario.col.rank"), width=60),  # rank and a marker, e.g. "3 ＋"
    "title_shown": st.column_config.TextColumn(tr("col.title")),  # widths follow the text: nothing clipped
    "category_shown": st.column_config.TextColumn(tr("col.category")),
    "price": st.column_config.NumberColumn(tr("col.price"), format="¥%,.2f", width=100),
    "score": st.column_config.NumberColumn(tr("scenario.col.score"), format="%.3f", width=80),
    "why": st.column_config.LinkColumn(tr("scenario.col.why"), display_text=tr("scenario.why_link"), width=90,
                                       help=tr("scenario.col.why_help")),
}


def marked(frame: pd.DataFrame, items: list[str], mark: str) -> list[str]:
    """Rank with a marker for the given items: "3 ＋"."""
    chosen = set(map(str, items))
    return [f"{r} {mark}" if str(i) in chosen else str(r) for r, i in zip(frame["rank"], frame["item_id"])]


def show_list(frame: pd.DataFrame, columns: list[str], key: str) -> None:
    st.dataframe(frame[columns], hide_index=True, column_config={c: COLUMNS[c] for c in columns}, key=key,
                 height=38 + 35 * min(len(frame), 20), width="stretch")


def show_side_list(frame: pd.DataFrame, columns: list[str]) -> None:
    """One of two lists side by side: a static table whose cells wrap, so nothing is cut at half a laptop's width."""
    st.table(frame[columns].rename(columns={c: COLUMNS[c]["label"] for c in columns}), hide_index=True)


rank_a = display(ranking(state.model, store.path, store.version, state.user_id, state.a.key(), state.exclude_seen))
rank_b = display(ranking(state.model, store.path, store.version, state.user_id, state.b.key(), state.exclude_seen))
top_a, top_b = rank_a.head(state.k), rank_b.head(state.k)
titles = dict(zip(rank_a["item_id"].astype(str), rank_a["title_shown"]))

# --- the list of A, with rank changes against B; each item links to its explanation ---------------------

st.subheader(tr_md("scenario.top", k=len(top_a), user=state.user_id))
st.markdown(f"**{tr('scenario.a')}** — {markdown_text(describe(state.a))}")
cold_a = cold_start(state.model, store.path, store.version, state.user_id, state.a.key())
if cold_a:
    st.info(markdown_text(cold_a[lang()]), icon=":material/person_add:")
shown_a = sc.with_rank_changes(top_a, dict(zip(rank_b["item_id"].astype(str), rank_b["rank"].astype(int))))
shown_a["why"] = [why_link(state.user_id, i, state.a, state.k, lang(), state.model) for i in shown_a["item_id"]]
show_list(shown_a, ["rank", "arrow", "ref_rank", "title_shown", "category_shown", "price", "score", "why"], "top_a")
st.caption(tr_md("scenario.arrows_caption", scenario=describe(state.b)))
c_item, c_link = st.columns([3, 2], vertical_alignment="bottom")
explain_item = c_item.selectbox(tr("scenario.explain_item"), list(top_a["item_id"].astype(str)), key="explain_item",
                                format_func=lambda i, names=dict(zip(top_a["item_id"].astype(str), top_a["title_shown"])),
                                ranks=dict(zip(top_a["item_id"].astype(str), top_a["rank"])): f"{ranks[i]}. {names[i]}")
if explain_item:
    c_link.page_link(WHY_PAGE, label=tr("scenario.open_why"), icon=":material/psychology_alt:",
                     query_params=why_params(state.user_id, explain_item, state.a, state.k, lang(), state.model))

# --- push: idempotent (a second press stores nothing), with an optional daily cap per shopper ----------------

c_push, c_cap = st.columns([4, 1], vertical_alignment="bottom")
with c_cap:
    cap = st.number_input(tr("scenario.daily_cap"), min_value=0, max_value=1000, value=0, step=1, key="daily_cap",
                          help=tr("scenario.daily_cap_help"))
if c_push.button(tr_md("scenario.push", k=len(top_a), user=state.user_id), key="push_these", type="primary", icon=":material/send:"):
    try:
        with st.spinner(tr("scenario.pushing", k=len(top_a))):
            with read_cursor(store.path) as cur:  # what is new, what was pushed already, what the cap holds back
                plan = sc.plan_push(cur, model, state.user_id, state.a, top_a, int(cap) or None)
            ids = []
            if not plan.new.empty:
                with write_cursor(store.path) as cur:
                    ids = sc.store_push(cur, model, state.user_id, state.a, plan)
                # the reasons (seconds of explanation) are attached after answering
                st.session_state[REASONS_WORKER] = sc.attach_reasons_later(
                    lambda: read_cursor(store.path), lambda: write_cursor(store.path, wait_s=60),
                    model, state.user_id, state.a, ids, state.k)
        st.session_state[PUSHED] = {"ids": ids, "user": state.user_id, "when": describe(state.a), "version": model.version,
                                    "already": plan.already, "capped": plan.capped, "today": plan.pushed_today, "cap": plan.cap}
    except Exception as exc:  # noqa: BLE001 — a failed write is shown, never a traceback
        st.error(tr_md("scenario.push_failed", error=exc))
pushed = st.session_state.pop(PUSHED, None)
if pushed:
    if pushed["ids"]:
        st.success(tr_md("scenario.pushed", n=len(pushed["ids"]), user=pushed["user"], when=pushed["when"],
                         version=pushed["version"], push_id=pushed["ids"][0]), icon=":material/check_circle:")
        st.page_link(REVIEW_PAGE, label=tr("scenario.open_review"), icon=":material/fact_check:",
                     query_params={"user": pushed["user"], "push": pushed["ids"][0], "lang": lang()})
    if pushed["already"]:
        first = min(pushed["already"].values())
        st.info(tr_md("scenario.already_pushed", n=len(pushed["already"]), at=f"{first:%Y-%m-%d %H:%M:%S}"),
                icon=":material/history:")
    if pushed["capped"]:
        st.warning(tr_md("scenario.capped", n=len(pushed["capped"]), cap=pushed["cap"], today=pushed["today"]),
                   icon=":material/block:")


def show_a_vs_b() -> None:
    """Both lists side by side: ＋ items entering A's list, ✕ items of B's list leaving it."""
    change = sc.list_change(top_a["item_id"], top_b["item_id"])
    m1, m2, m3 = st.columns(3)
    m1.metric(tr("scenario.entering"), format_int(len(change.entering)))
    m2.metric(tr("scenario.leaving"), format_int(len(change.leaving)))
    m3.metric(tr("scenario.staying"), format_int(len(change.staying)))
    ab_a, ab_b = top_a.copy(), top_b.copy()
    ab_a["place"] = marked(ab_a, change.entering, "＋")
    ab_b["place"] = marked(ab_b, change.leaving, "✕")
    col_a, col_b = st.columns(2, gap="medium")
    with col_a:
        st.markdown(f"**{tr('scenario.a')}** — {markdown_text(describe(state.a))}")
        show_side_list(ab_a, ["place", "title_shown", "category_shown"])
    with col_b:
        st.markdown(f"**{tr('scenario.b')}** — {markdown_text(describe(state.b))}")
        show_side_list(ab_b, ["place", "title_shown", "category_shown"])
    st.caption(tr("scenario.ab_caption"))


def show_sweep() -> None:
    """A's top items' ranks at every hour of A's day, from one batched scoring call (cached per day)."""
    items = tuple(str(i) for i in top_a["item_id"].head(sc.SWEEP_MAX_ITEMS))
    frame = sweep(state.model, store.path, store.version, state.user_id, state.a.key(), items, state.exclude_seen)
    fig = go.Figure()
    for n, item in enumerate(items):
        part = frame[frame["item_id"] == item]
        name = plot_text(titles.get(item, item))
        fig.add_trace(go.Scatter(
            x=part["hour"], y=part["rank"], mode="lines+markers", name=f"{n + 1}. {name}",
            line={"width": 2}, marker={"size": 5}, customdata=[name] * len(part),
            hovertemplate="%{customdata}<br>%{x:02d}:00 — " + tr("scenario.col.rank") + " %{y:,}<extra></extra>",
        ))
    fig.add_vline(x=state.a.hour, line={"color": "#7F7F7F", "dash": "dot"})
    worst = int(frame["rank"].max()) if len(frame) else 1
    ticks = [v for v in (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000) if v <= max(worst, 2) * 1.2]
    fig.update_yaxes(type="log", autorange="reversed", title_text=tr("scenario.sweep_rank"),
                     tickvals=ticks, ticktext=[format_int(v) for v in ticks])
    fig.update_xaxes(title_text=tr("common.hour"), tickmode="array", tickvals=list(range(0, 24, 2)),
                     ticktext=[f"{h:02d}:00" for h in range(0, 24, 2)], range=[-0.5, 23.5])
    show_chart(fig, "sweep_chart", height=480)
    st.caption(tr_md("scenario.sweep_caption", scenario=describe(state.a)))


def show_two_models() -> None:
    """The second model's list for the same shopper and scenario A, and how much the two agree."""
    if not state.model_b:
        st.info(tr("scenario.pick_model_b"))
        return
    try:
        version_b = loaded_model(state.model_b).version
        other = display(ranking(state.model_b, store.path, store.version, state.user_id, state.a.key(), state.exclude_seen))
    except (OSError, ValueError) as exc:
        st.error(tr_md("scenario.model_error", model=state.model_b, error=exc))
        return
    other = other.head(state.k)
    ov = sc.overlap(top_a["item_id"], other["item_id"])
    m1, m2, m3 = st.columns(3)
    m1.metric(tr("scenario.overlap_common"), f"{len(ov.common)} / {max(len(top_a), len(other))}")
    m2.metric(tr("scenario.overlap_share"), f"{ov.share:.0%}")
    m3.metric(tr("scenario.overlap_jaccard"), f"{ov.jaccard:.2f}")
    sides = ((state.model, model.version, top_a), (state.model_b, version_b, other))
    for column, (name, version, frame) in zip(st.columns(2, gap="medium"), sides):
        shown = frame.copy()
        shown["place"] = marked(shown, ov.common, "●")
        with column:
            st.markdown(f"**{markdown_text(Path(name).name)}** · {code(version)}")
            show_side_list(shown, ["place", "title_shown", "category_shown"])  # scores of two models do not compare
    st.caption(tr_md("scenario.overlap_caption", scenario=describe(state.a)))


def show_history() -> None:
    """The shopper's recent events over time, coloured by a scene field (or behaviour), shaped by behaviour."""
    timeline = query(store, "shopper_timeline", state.user_id, TIMELINE_LIMIT)
    if timeline.empty:
        st.info(tr("scenario.no_history"))
    else:
        fields = [f for f in options["scene_fields"] if f in timeline.columns] or ["behavior"]
        labels = {f: field_label(f, schema) for f in fields} | {"behavior": tr("common.behaviour")}
        colour = st.segmented_control(tr("scenario.colour_by"), fields, key="timeline_scene",
                                      format_func=labels.get, default=fields[0]) or fields[0]
        tl = display(timeline)
        fig = go.Figure()
        for n, value in enumerate(sorted(tl[colour].astype(str).unique())):
            part = tl[tl[colour].astype(str) == value]
            fig.add_trace(go.Scatter(
                x=part["local_time"], y=[plot_text(c) for c in part["category_shown"].astype(str)], mode="markers",
                name=plot_text(vocab(colour, value)),
                marker={"color": SCENE_COLORS[n % len(SCENE_COLORS)], "size": 9, "opacity": 0.8,
                        "symbol": [BEHAVIOR_SYMBOLS.get(b, "circle") for b in part["behavior"]]},
                customdata=np.stack([[plot_text(x) for x in part["title_shown"].astype(str)],
                                     [vocab("behavior", b) for b in part["behavior"]]], axis=1),
                hovertemplate="%{x|%Y-%m-%d %H:%M} · %{customdata[1]}<br>%{customdata[0]}<extra></extra>",
            ))
        fig.update_xaxes(title_text=tr("col.local_time"), tickformat="%m-%d", hoverformat="%Y-%m-%d %H:%M")
        fig.update_yaxes(title_text="", type="category", categoryorder="category descending")  # ids stay categories
        show_chart(fig, "history_chart", height=max(320, 80 + 30 * tl["category_shown"].nunique()))
        st.caption(tr("scenario.history_caption", n=format_int(len(tl)), first=str(tl["local_time"].min())[:16],
                      last=str(tl["local_time"].max())[:16]))
    forget_shopper()


def forget_now(user: str) -> None:
    """The confirmed erasure (`recsys_core.privacy.forget`); then the page shows no shopper, and what was done."""
    st.session_state.pop(FORGET_ASKED, None)
    try:
        with exclusive_store(store.path):
            done = privacy.forget(store.path, user, models_root=APP_ROOT / "models")
    except (OSError, ValueError, RuntimeError) as exc:  # locked, unknown shopper, a file that could not be rewritten
        st.session_state[FORGOTTEN] = {"error": str(exc)}
        return
    # Nothing of the shopper stays in this server's memory either: cached query results and explanations go.
    st.cache_data.clear()
    explain_shopper_case.clear()
    explain_cached.clear()
    done["models_to_retrain"] = [Path(m).name for m in done["models_to_retrain"]]
    st.session_state[FORGOTTEN] = {"user": user, **done}
    st.session_state["user"] = ""


def forget_shopper() -> None:
    """"Forget this shopper…", then a confirmation naming the shopper and what it deletes."""
    user = state.user_id
    if st.session_state.get(FORGET_ASKED) != user:
        st.button(tr("privacy.forget"), key="forget_shopper", help=tr("privacy.forget_help"), icon=":material/person_remove:",
                  on_click=lambda: st.session_state.update({FORGET_ASKED: user}))
        return
    st.warning(tr_md("privacy.forget_confirm", user=user), icon=":material/warning:")
    c_yes, c_no = st.columns(2)
    c_yes.button(tr("privacy.forget_yes"), key="forget_confirm", type="primary", on_click=forget_now, args=(user,))
    c_no.button(tr("privacy.forget_cancel"), key="forget_cancel", on_click=lambda: st.session_state.pop(FORGET_ASKED, None))


# Only the open tab runs (its charts are the costly part of a rerun); the first one is open by default.
tabs = st.tabs(
    [tr("scenario.tab_ab"), tr("scenario.tab_sweep"), tr("scenario.tab_models"), tr("scenario.tab_history")],
    key="scenario_tab", on_change="rerun",
)
for tab, draw in zip(tabs, (show_a_vs_b, show_sweep, show_two_models, show_history)):
    with tab:
        if tab.open is not False:
            draw()
