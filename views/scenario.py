"""Scenario: pick a shopper, set the moment and the scene, and see what would be pushed — and how it moves.

Inputs (shopper, scenario A, reference scenario B, k, models) → `recsys_core.recommend` (cached per
model, database version, shopper and scenario) → tables and plotly charts. Everything shown is
encoded in the URL (`recsys_core.scenario.to_query_params`), so a copied link opens the same view.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # before plotly (GOTCHAS)
import plotly.graph_objects as go
import streamlit as st

from views._common import (
    APP_ROOT,
    active_model_dir,
    lang,
    model_dirs,
    open_store,
    query,
    read_cursor,
    show_chart,
    text_formatter,
    tr,
    vocab,
    vocab_formatter,
    write_cursor,
)
from recsys_core import recommend
from recsys_core import scenario as sc
from recsys_core.features import Calendar
from recsys_core.i18n import format_int
from recsys_core.store.analytics import EventFilter

SPEC_FIELDS = ("day", "hour", "minute", "device", "channel", "location", "promo")
SCENE = ("device", "channel", "location")
TIMELINE_LIMIT = 300
RANDOM_POOL = 200
SAVED = "_scenario_saved"  # the last state shown: restores the widgets after a visit to another page
PUSHED = "_scenario_pushed"
SCENE_COLORS = ["#1F77B4", "#E4572E", "#2CA02C", "#9467BD", "#F3A712", "#17BECF", "#8C564B", "#7F7F7F"]
BEHAVIOR_SYMBOLS = {"pv": "circle", "fav": "star", "cart": "square", "buy": "diamond"}

st.title(tr("scenario.title"))
st.caption(tr("scenario.caption"))

store = open_store()
options = query(store, "filter_options")
zh = lang() == "zh"


# --- models ---------------------------------------------------------------------------------


def model_key(path: Path) -> str:
    """How a model folder appears in the URL: relative to the app when it lives inside it."""
    try:
        return str(path.resolve().relative_to(APP_ROOT))
    except ValueError:
        return str(path)


def model_path(key: str) -> Path:
    p = Path(key)
    return p if p.is_absolute() else APP_ROOT / p


@st.cache_resource(show_spinner=False, max_entries=8)
def load_model(path: str, mtime: int) -> Any:
    """A model folder, loaded once per server (and again when its metadata file changes).
    `recommend.load_model` also sets torch to one thread (GOTCHAS: stable latency on 2 shared cores)."""
    return recommend.load_model(path)


def loaded(key: str) -> Any:
    path = model_path(key)
    return load_model(str(path), (path / "metadata.json").stat().st_mtime_ns)


dirs = model_dirs()
if not dirs:
    st.info(tr("scenario.no_model"))
    st.stop()
model_keys = [model_key(d) for d in dirs]
active = active_model_dir()
default_model = model_key(active) if active else model_keys[0]


# --- cached queries and scores ---------------------------------------------------------------


def to_scenario(spec: sc.ScenarioSpec) -> recommend.Scenario:
    return recommend.Scenario(
        at=spec.local_time, device=spec.device, channel=spec.channel, location=spec.location,
        promo_override=spec.promo_override,
    )


@st.cache_data(show_spinner=False, max_entries=256)
def ranking(model: str, db: str, version: tuple, user: str, spec_key: tuple, exclude_seen: bool) -> pd.DataFrame:
    """The shopper's full ranking of the catalogue under one scenario (rank, score, item fields)."""
    m = loaded(model)
    with read_cursor(db) as cur:
        return recommend.recommend(m, cur, user, to_scenario(sc.ScenarioSpec.from_key(spec_key)), m.model.n_items, exclude_seen)


@st.cache_data(show_spinner=False, max_entries=64)
def day_scores(model: str, db: str, version: tuple, user: str, spec_key: tuple) -> tuple[np.ndarray, dict[str, int]]:
    """Scores at each hour 0..23 of the scenario's day, in ONE batched call: ((24, N), item id → column)."""
    m = loaded(model)
    specs = sc.sweep_specs(sc.ScenarioSpec.from_key(spec_key))
    with read_cursor(db) as cur:
        scores = recommend.score_scenarios(m, cur, user, [to_scenario(s) for s in specs])
    scores = np.asarray(scores)
    return scores, {item: j for j, item in enumerate(m.features.items.values[: scores.shape[1]])}


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


def calendar_of(key: str) -> Calendar:
    """The model's calendar (holidays, promotion days); the store's timezone and defaults when it cannot load."""
    try:
        return loaded(key).features.calendar
    except (OSError, ValueError):  # an unreadable model is reported where it is used
        return Calendar(timezone=options["timezone"])


def preset_here(key: str) -> sc.ScenarioSpec:
    """A preset, with scene values this database has (imported data may lack the sample world's)."""
    spec = sc.preset(key, today, calendar_of(st.session_state.get("scenario_model", default_model)))
    known = lambda f: getattr(spec, f) if getattr(spec, f) in options[f] or not options[f] else options[f][0]  # noqa: E731
    return dataclasses.replace(spec, **{f: known(f) for f in SCENE})


def default_state() -> sc.ScenarioState:
    user = top_shoppers[0] if top_shoppers else ""
    return sc.ScenarioState(user, preset_here("commute"), preset_here("office"), sc.DEFAULT_K, default_model)


choices = sc.Choices(options["device"], options["channel"], options["location"], model_keys, *day_bounds)


def widget_values(state: sc.ScenarioState) -> dict[str, Any]:
    values: dict[str, Any] = {"user": state.user_id, "k": state.k, "scenario_model": state.model,
                              "scenario_model_b": state.model_b, "unseen": state.exclude_seen}
    for prefix, spec in (("", state.a), ("ref_", state.b)):
        values.update({prefix + f: getattr(spec, f) for f in SPEC_FIELDS})
    return values


def spec_from_widgets(prefix: str) -> sc.ScenarioSpec:
    return sc.ScenarioSpec(**{f: st.session_state[prefix + f] for f in SPEC_FIELDS})


url_problems: list[str] = []
if SAVED not in st.session_state:  # a new session: the URL decides
    start_state, url_problems = sc.from_query_params(dict(st.query_params), default_state(), choices)
else:
    start_state = st.session_state[SAVED]
for key, value in widget_values(start_state).items():
    if key not in st.session_state:
        st.session_state[key] = value


def apply_preset(pill_key: str, prefix: str) -> None:
    """A preset pill was clicked: set that side's scenario fields, then clear the pill (presets are actions)."""
    key = st.session_state.get(pill_key)
    if key:
        spec = preset_here(key)
        for f in SPEC_FIELDS:
            st.session_state[prefix + f] = getattr(spec, f)
    st.session_state[pill_key] = None


def copy_a_to_b() -> None:
    for f in SPEC_FIELDS:
        st.session_state["ref_" + f] = st.session_state[f]


def swap_a_b() -> None:
    for f in SPEC_FIELDS:
        st.session_state[f], st.session_state["ref_" + f] = st.session_state["ref_" + f], st.session_state[f]


def random_shopper() -> None:
    if top_shoppers:
        st.session_state["user"] = random.choice(top_shoppers)


# --- inputs --------------------------------------------------------------------------------

with st.container(border=True):
    c_user, c_random, c_model, c_model_b, c_k = st.columns([3, 3, 3, 3, 2], vertical_alignment="bottom")
    c_user.text_input(tr("scenario.shopper"), key="user", help=tr("scenario.shopper_help", examples=", ".join(top_shoppers[:5])))
    c_random.button(tr("scenario.random_shopper"), key="random_user", on_click=random_shopper,
                    icon=":material/shuffle:", use_container_width=True)
    c_model.selectbox(tr("scenario.model"), model_keys, key="scenario_model", format_func=lambda k: Path(k).name)
    c_model_b.selectbox(tr("scenario.model_b"), ["", *model_keys], key="scenario_model_b",
                        format_func=lambda k: Path(k).name if k else tr("scenario.model_b_none"))
    c_k.number_input(tr("scenario.k"), *sc.K_RANGE, key="k", step=1)


def scenario_inputs(prefix: str) -> None:
    """Presets, date, minute, hour, calendar flags with the promotion override, device, channel, location."""
    cal = calendar_of(st.session_state["scenario_model"])
    st.pills(tr("scenario.presets"), sc.PRESET_KEYS, key=prefix + "preset", on_change=apply_preset,
             args=(prefix + "preset", prefix), format_func=text_formatter("scenario.preset"))
    c_day, c_min = st.columns([3, 1])
    day = c_day.date_input(tr("scenario.date"), key=prefix + "day", min_value=day_bounds[0], max_value=day_bounds[1])
    c_min.number_input(tr("scenario.minute"), 0, 59, key=prefix + "minute", step=5)
    st.slider(tr("scenario.hour"), 0, 23, key=prefix + "hour", format="%02d:00")
    flags = sc.day_flags(day, cal)
    words = [vocab("weekday", flags.weekday), tr("scenario.weekend") if flags.weekend else tr("scenario.workday")]
    if flags.holiday:
        words.append(tr("scenario.holiday"))
    if flags.promo:
        words.append(tr("scenario.promo_day"))
    st.caption(" · ".join(words))
    auto = tr("scenario.promo_auto", state=tr("scenario.yes") if flags.promo else tr("scenario.no"))
    st.radio(tr("scenario.promo"), sc.PROMO_CHOICES, key=prefix + "promo", horizontal=True,
             format_func=lambda v, auto=auto: auto if v == "auto" else tr(f"scenario.promo_{v}"))
    for column, field in zip(st.columns(3), SCENE):
        column.selectbox(tr(f"scene.{field}"), options[field], key=prefix + field, format_func=vocab_formatter(field))


left, right = st.columns(2, gap="medium")
with left, st.container(border=True):
    st.markdown(f"**{tr('scenario.a')}**")
    scenario_inputs("")
with right, st.container(border=True):
    c_title, c_copy, c_swap = st.columns([4, 2, 2], vertical_alignment="center")
    c_title.markdown(f"**{tr('scenario.b')}**")
    c_copy.button(tr("scenario.copy_a"), key="copy_a", on_click=copy_a_to_b, use_container_width=True,
                  icon=":material/content_copy:")
    c_swap.button(tr("scenario.swap"), key="swap", on_click=swap_a_b, use_container_width=True, icon=":material/swap_horiz:")
    scenario_inputs("ref_")
st.checkbox(tr("scenario.exclude_seen"), key="unseen")

state = sc.ScenarioState(
    user_id=str(st.session_state["user"]).strip(),
    a=spec_from_widgets(""),
    b=spec_from_widgets("ref_"),
    k=int(st.session_state["k"]),
    model=st.session_state["scenario_model"],
    model_b=st.session_state["scenario_model_b"],
    exclude_seen=bool(st.session_state["unseen"]),
)
st.session_state[SAVED] = state
wanted_params = {**sc.to_query_params(state), "lang": lang()}
if {k: st.query_params.get(k) for k in st.query_params} != wanted_params:
    st.query_params.from_dict(wanted_params)
if url_problems:
    st.warning(tr("scenario.url_ignored", names=", ".join(url_problems)))

# --- checks before scoring -------------------------------------------------------------------

if not state.user_id:
    st.info(tr("scenario.pick_shopper"))
    st.stop()
if not shopper_known(store.path, store.version, state.user_id):
    st.warning(tr("scenario.unknown_shopper", user=state.user_id, examples=", ".join(top_shoppers[:5])))
    st.stop()
try:
    model = loaded(state.model)
except (OSError, ValueError) as exc:  # ModelFolderError is a ValueError
    st.error(tr("scenario.model_error", model=state.model, error=exc))
    st.stop()


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


def describe(spec: sc.ScenarioSpec) -> str:
    return tr(
        "scenario.describe",
        weekday=vocab("weekday", spec.day.weekday()),
        day=spec.day.isoformat(),
        time=f"{spec.hour:02d}:{spec.minute:02d}",
        scene=" · ".join(vocab(f, getattr(spec, f)) for f in SCENE),
    )


COLUMNS = {
    "rank": st.column_config.NumberColumn(tr("scenario.col.rank"), format="%d", width=56),
    "arrow": st.column_config.TextColumn(tr("scenario.col.vs_b"), width=80, help=tr("scenario.col.vs_b_help")),
    "ref_rank": st.column_config.NumberColumn(tr("scenario.col.rank_b"), format="%,d", width=90),
    "place": st.column_config.TextColumn(tr("scenario.col.rank"), width=56),  # rank and a marker, e.g. "3 ＋"
    "title_shown": st.column_config.TextColumn(tr("col.title"), width=250),
    "category_shown": st.column_config.TextColumn(tr("col.category"), width=160),
    "price": st.column_config.NumberColumn(tr("col.price"), format="¥%,.2f", width=100),
    "score": st.column_config.NumberColumn(tr("scenario.col.score"), format="%.3f", width=80),
}


def marked(frame: pd.DataFrame, items: list[str], mark: str) -> list[str]:
    """Rank with a marker for the given items: "3 ＋"."""
    chosen = set(map(str, items))
    return [f"{r} {mark}" if str(i) in chosen else str(r) for r, i in zip(frame["rank"], frame["item_id"])]


def show_list(frame: pd.DataFrame, columns: list[str], key: str) -> None:
    st.dataframe(frame[columns], hide_index=True, column_config={c: COLUMNS[c] for c in columns}, key=key,
                 height=38 + 35 * min(len(frame), 20))


rank_a = display(ranking(state.model, store.path, store.version, state.user_id, state.a.key(), state.exclude_seen))
rank_b = display(ranking(state.model, store.path, store.version, state.user_id, state.b.key(), state.exclude_seen))
top_a, top_b = rank_a.head(state.k), rank_b.head(state.k)
titles = dict(zip(rank_a["item_id"].astype(str), rank_a["title_shown"]))

# --- the list of A, with rank changes against B ---------------------------------------------------

st.subheader(tr("scenario.top", k=len(top_a), user=state.user_id))
st.markdown(f"**{tr('scenario.a')}** — {describe(state.a)}")
shown_a = sc.with_rank_changes(top_a, dict(zip(rank_b["item_id"].astype(str), rank_b["rank"].astype(int))))
show_list(shown_a, ["rank", "arrow", "ref_rank", "title_shown", "category_shown", "price", "score"], "top_a")
st.caption(tr("scenario.arrows_caption", scenario=describe(state.b)))

# --- push -----------------------------------------------------------------------------------------

if st.button(tr("scenario.push", k=len(top_a), user=state.user_id), key="push_these", type="primary", icon=":material/send:"):
    from recsys_core.push import reasons_at_push_time, record_pushes

    try:
        with st.spinner(tr("scenario.pushing", k=len(top_a))):
            with read_cursor(store.path) as cur:  # the reasons, computed before the short write
                reasons = reasons_at_push_time(cur, model, state.user_id, to_scenario(state.a), top_a)
            with write_cursor(store.path) as cur:
                ids = record_pushes(cur, model, state.user_id, to_scenario(state.a), top_a[["item_id", "rank", "score"]], reasons)
        st.session_state[PUSHED] = (len(ids), state.user_id, describe(state.a), model.version, ids[0])
    except Exception as exc:  # noqa: BLE001 — a failed write is shown, never a traceback
        st.error(tr("scenario.push_failed", error=exc))
pushed = st.session_state.pop(PUSHED, None)
if pushed:
    n, user, when, version, first_id = pushed
    st.success(tr("scenario.pushed", n=n, user=user, when=when, version=version, push_id=first_id),
               icon=":material/check_circle:")

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
        st.markdown(f"**{tr('scenario.a')}** — {describe(state.a)}")
        show_list(ab_a, ["place", "title_shown", "category_shown"], "ab_a")
    with col_b:
        st.markdown(f"**{tr('scenario.b')}** — {describe(state.b)}")
        show_list(ab_b, ["place", "title_shown", "category_shown"], "ab_b")
    st.caption(tr("scenario.ab_caption"))


def show_sweep() -> None:
    """A's top items' ranks at every hour of A's day, from one batched scoring call (cached per day)."""
    scores, columns = day_scores(state.model, store.path, store.version, state.user_id, state.a.at_hour(0).key())
    if state.exclude_seen:  # rank among the items the list may show, as the list does
        eligible = [i for i in rank_a["item_id"].astype(str) if i in columns]
        scores = scores[:, [columns[i] for i in eligible]]
        columns = {i: j for j, i in enumerate(eligible)}
    sweep_items = [str(i) for i in top_a["item_id"].head(sc.SWEEP_MAX_ITEMS) if str(i) in columns]
    sweep = sc.sweep_frame(scores, columns, sweep_items)
    fig = go.Figure()
    for n, item in enumerate(sweep_items):
        part = sweep[sweep["item_id"] == item]
        name = titles.get(item, item)
        fig.add_trace(go.Scatter(
            x=part["hour"], y=part["rank"], mode="lines+markers", name=f"{n + 1}. {name}",
            line={"width": 2}, marker={"size": 5},
            hovertemplate=f"{name}<br>%{{x:02d}}:00 — {tr('scenario.col.rank')} %{{y:,}}<extra></extra>",
        ))
    fig.add_vline(x=state.a.hour, line={"color": "#7F7F7F", "dash": "dot"})
    worst = int(sweep["rank"].max()) if len(sweep) else 1
    ticks = [v for v in (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000) if v <= max(worst, 2) * 1.2]
    fig.update_yaxes(type="log", autorange="reversed", title_text=tr("scenario.sweep_rank"),
                     tickvals=ticks, ticktext=[format_int(v) for v in ticks])
    fig.update_xaxes(title_text=tr("common.hour"), tickmode="array", tickvals=list(range(0, 24, 2)),
                     ticktext=[f"{h:02d}:00" for h in range(0, 24, 2)], range=[-0.5, 23.5])
    show_chart(fig, "sweep_chart", height=480)
    st.caption(tr("scenario.sweep_caption", scenario=describe(state.a)))


def show_two_models() -> None:
    """The second model's list for the same shopper and scenario A, and how much the two agree."""
    if not state.model_b:
        st.info(tr("scenario.pick_model_b"))
        return
    try:
        version_b = loaded(state.model_b).version
        other = display(ranking(state.model_b, store.path, store.version, state.user_id, state.a.key(), state.exclude_seen))
    except (OSError, ValueError) as exc:
        st.error(tr("scenario.model_error", model=state.model_b, error=exc))
        return
    other = other.head(state.k)
    ov = sc.overlap(top_a["item_id"], other["item_id"])
    m1, m2, m3 = st.columns(3)
    m1.metric(tr("scenario.overlap_common"), f"{len(ov.common)} / {max(len(top_a), len(other))}")
    m2.metric(tr("scenario.overlap_share"), f"{ov.share:.0%}")
    m3.metric(tr("scenario.overlap_jaccard"), f"{ov.jaccard:.2f}")
    sides = ((state.model, model.version, top_a, "models_a"), (state.model_b, version_b, other, "models_b"))
    for column, (name, version, frame, key) in zip(st.columns(2, gap="medium"), sides):
        shown = frame.copy()
        shown["place"] = marked(shown, ov.common, "●")
        with column:
            st.markdown(f"**{Path(name).name}** · `{version}`")
            show_list(shown, ["place", "title_shown", "category_shown"], key)  # scores of two models do not compare
    st.caption(tr("scenario.overlap_caption", scenario=describe(state.a)))


def show_history() -> None:
    """The shopper's recent events over time, coloured by a scene field, shaped by behaviour."""
    timeline = query(store, "shopper_timeline", state.user_id, TIMELINE_LIMIT)
    if timeline.empty:
        st.info(tr("scenario.no_history"))
    else:
        scene_field = st.segmented_control(tr("scenario.colour_by"), SCENE, key="timeline_scene",
                                           format_func=text_formatter("scene"), default="device") or "device"
        tl = display(timeline)
        fig = go.Figure()
        for n, value in enumerate(sorted(tl[scene_field].unique())):
            part = tl[tl[scene_field] == value]
            fig.add_trace(go.Scatter(
                x=part["local_time"], y=part["category_shown"], mode="markers", name=vocab(scene_field, value),
                marker={"color": SCENE_COLORS[n % len(SCENE_COLORS)], "size": 9, "opacity": 0.8,
                        "symbol": [BEHAVIOR_SYMBOLS.get(b, "circle") for b in part["behavior"]]},
                customdata=np.stack([part["title_shown"], [vocab("behavior", b) for b in part["behavior"]]], axis=1),
                hovertemplate="%{x|%Y-%m-%d %H:%M} · %{customdata[1]}<br>%{customdata[0]}<extra></extra>",
            ))
        fig.update_xaxes(title_text=tr("col.local_time"), tickformat="%m-%d", hoverformat="%Y-%m-%d %H:%M")
        fig.update_yaxes(title_text="", categoryorder="category descending")  # A at the top
        show_chart(fig, "history_chart", height=max(320, 80 + 30 * tl["category_shown"].nunique()))
        st.caption(tr("scenario.history_caption", n=format_int(len(tl)), first=str(tl["local_time"].min())[:16],
                      last=str(tl["local_time"].max())[:16]))


# Only the open tab runs (its charts are the costly part of a rerun); the first one is open by default.
tabs = st.tabs(
    [tr("scenario.tab_ab"), tr("scenario.tab_sweep"), tr("scenario.tab_models"), tr("scenario.tab_history")],
    key="scenario_tab", on_change="rerun",
)
for tab, draw in zip(tabs, (show_a_vs_b, show_sweep, show_two_models, show_history)):
    with tab:
        if tab.open is not False:
            draw()
