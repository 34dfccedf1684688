"""Why: why would this item be pushed to this shopper, at this moment, in this scene?

Inputs (shopper, item, scenario, k — taken from the URL first, so the Scenario and Push review pages
can link here, then from the shopper and scenario last shown on the Scenario page) → one cached
`recsys_core.explain` call → the reason, integrated-gradients attributions (bar chart and the
shopper's timeline coloured by contribution), attention per layer and head with rollout, the
Shapley waterfall from the baseline to the explained score, and counterfactuals. The scene
controls are the data's scene fields; those the model does not read are greyed out.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import pandas as pd  # before plotly (docs/pitfalls.md)
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from views._training import require_model_for_data
from views._common import (
    active_model_dir,
    download_csv,
    field_label,
    lang,
    loaded_model,
    model_dirs,
    model_key,
    model_mtime,
    open_store,
    plot_text,
    query,
    reads_note,
    scene_controls,
    scene_schema,
    show_chart,
    text_formatter,
    tr,
    tr_md,
    vocab,
    vocab_formatter,
)
from views._explain import LOWERS, RAISE_LOWER_SCALE, RAISES, explanation, group_label, shopper_case
from recsys_core import scenario as sc
from recsys_core.context import PROMO_CHOICES, Scenario
from recsys_core.explain.attributions import HISTORY_PARTS
from recsys_core.explain.reasons import change_text, ordinal
from recsys_core.features import Calendar
from recsys_core.i18n import TRANSLATIONS, format_int, markdown_text
from recsys_core.models.router import is_router, routing, routing_sentence
from recsys_core.store.analytics import EventFilter

TOP_EVENTS = 12
PART_COLORS = {"item": "#1F77B4", "behavior": "#F3A712", "time": "#17BECF", "scene": "#9467BD", "context": "#8C564B"}
BEHAVIOR_SYMBOLS = {"pv": "circle", "fav": "star", "cart": "square", "buy": "diamond"}
SAVED = "_why_saved"
SHARED = "_shared_scenario"  # shopper, scenario and k shared with the Scenario page
SEEN = "_why_seen"
WROTE = "_why_wrote"  # the URL parameters this page wrote last (anything else came with a link)
ITEM_OF = "_why_item_of"  # the shopper the chosen item was chosen for

st.title(tr("why.title"))
st.caption(tr("why.caption"))

store = open_store()
options = query(store, "filter_options")
schema = scene_schema(store)
scene_values: dict[str, list[str]] = options["scene"]
controls = scene_controls(options)
zh = lang() == "zh"

# --- the model ------------------------------------------------------------------------------------

dirs = model_dirs()
if not dirs:
    require_model_for_data(store, None)
keys = [model_key(d) for d in dirs]
wanted = st.query_params.get("model")
active = active_model_dir()
model = wanted if wanted in keys else (model_key(active) if active else keys[0])
try:
    loaded = loaded_model(model)
except Exception as exc:  # noqa: BLE001 — an unreadable model folder is a message, not a traceback
    st.error(tr_md("why.model_error", model=Path(model).name, error=exc))
    st.stop()
require_model_for_data(store, model)  # never explain another catalogue's items
if not loaded.explainable and not is_router(loaded):  # a router is explained through its member for the moment (below)
    st.info(tr_md("why.not_explainable", model=loaded.model_type))
    st.stop()

# --- state: URL ↔ widgets ---------------------------------------------------------------------------

first_day, last_day = options["start"], options["end"]
today = last_day + dt.timedelta(days=1)
day_bounds = (first_day - dt.timedelta(days=366), last_day + dt.timedelta(days=366))
calendar: Calendar = loaded.features.calendar
top_shoppers = query(store, "active_shoppers", EventFilter(), limit=20)["user_id"].tolist()
base_scene = {f: next(iter(store.stats["scene_mix"].get(f) or scene_values[f]), None) for f in options["scene_fields"]}
base_scene = {f: v for f, v in base_scene.items() if v is not None}
reads = tuple(loaded.context_fields)


def scene_key(field: str) -> str:
    return f"why_scene_{field}"


def set_widgets(user: str, s: Scenario, k: int) -> None:
    st.session_state.update({"why_user": user, "why_k": k, "why_day": s.day, "why_hour": s.hour, "why_minute": s.minute,
                             "why_promo": s.promo, **{scene_key(f): s.get(f, base_scene.get(f)) for f in controls}})


# A link from another page of this session (Scenario's "Why this item?", Push review) brings URL parameters
# this page did not write itself: they decide, as they do for a new session.
linked = SAVED in st.session_state and "user" in st.query_params and dict(st.query_params) != st.session_state.get(WROTE)
if SAVED not in st.session_state or linked:
    visible = [p.key for p in sc.presets_for(scene_values)]
    start = Scenario.local(today, 8, 0, base_scene)
    if "commute" in visible:
        start = sc.preset("commute", today, calendar, start, scene_values)
    default = sc.ScenarioState(top_shoppers[0] if top_shoppers else "", start, start)
    choices = sc.Choices(scene_values, keys, *day_bounds)
    params = dict(st.query_params)
    shared = st.session_state.get(SHARED)
    if shared and "user" not in params:  # opened from the sidebar: the Scenario page's shopper and scenario
        default = sc.ScenarioState(shared["user"], Scenario.from_key(shared["scenario"]), start, shared["k"])
    if shared:
        st.session_state[SEEN] = shared["stamp"]
    state, ignored = sc.from_query_params(params, default, choices)
    st.session_state[SAVED] = True
    set_widgets(state.user_id, state.a, state.k)
    if linked or "why_item" not in st.session_state:
        st.session_state["why_item"] = params.get("item") or None
        st.session_state[ITEM_OF] = state.user_id
    if ignored:
        st.warning(tr_md("why.url_ignored", names=", ".join(ignored)))
shared = st.session_state.get(SHARED)
if shared and shared["stamp"] != st.session_state.get(SEEN):  # the Scenario page moved on: follow it
    set_widgets(shared["user"], Scenario.from_key(shared["scenario"]), shared["k"])
    st.session_state[SEEN] = shared["stamp"]
for key in ("why_user", "why_k", "why_day", "why_hour", "why_minute", "why_promo", *map(scene_key, controls)):
    if key not in st.session_state and f"_keep{key}" in st.session_state:  # widgets of another page's visit are gone
        st.session_state[key] = st.session_state[f"_keep{key}"]

problems: list[str] = []


def not_read(fields: tuple[str, ...]) -> str | None:
    """The tooltip of a greyed-out control (the model reads none of its fields), else None."""
    if any(f in reads for f in fields):
        return None
    return tr("scenario.not_read", field=field_label(fields[0], schema))


with st.container(border=True):
    c_user, c_day, c_min, c_k = st.columns([3, 3, 1, 1], vertical_alignment="top")
    c_user.text_input(tr("why.shopper"), key="why_user", help=tr("why.shopper_help", examples=", ".join(top_shoppers[:5])))
    with c_day:
        day = st.date_input(tr("why.date"), key="why_day", min_value=dt.date(1900, 1, 1), max_value=dt.date(2199, 12, 31))
        if day is None or not day_bounds[0] <= day <= day_bounds[1]:
            problems.append("day")
            st.error(tr("scenario.day_range", first=day_bounds[0].isoformat(), last=day_bounds[1].isoformat()), icon=":material/error:")
    hour_help = not_read(("hour",))
    with c_min:
        minute = st.number_input(tr("why.minute"), key="why_minute", step=5, disabled=bool(hour_help), help=hour_help)
        if not (float(minute).is_integer() and 0 <= minute <= 59):
            problems.append("minute")
            st.error(tr("scenario.minute_range"), icon=":material/error:")
    with c_k:
        st.number_input(tr("why.k"), key="why_k", step=1)
        if sc.parse_k(st.session_state["why_k"]) is None:
            problems.append("k")
            st.error(tr("why.k_range", low=sc.K_RANGE[0], high=sc.K_RANGE[1]), icon=":material/error:")
    shown_minute = int(minute) if 0 <= minute <= 59 else 0
    st.slider(tr("why.hour"), 0, 23, key="why_hour", format=f"%02d:{shown_minute:02d}", disabled=bool(hour_help), help=hour_help)
    columns = st.columns([2] * len(controls) + [3]) if controls else st.columns([1])
    for column, f in zip(columns, controls):
        help_text = not_read((f,))
        column.selectbox(field_label(f, schema), scene_values[f], key=scene_key(f), format_func=vocab_formatter(f),
                         disabled=bool(help_text), help=help_text)
    promo_help = not_read(("promo",))
    columns[-1].radio(tr("why.promo"), PROMO_CHOICES, key="why_promo", horizontal=True, disabled=bool(promo_help), help=promo_help,
                      format_func=text_formatter("why.promo_choice"))
    st.caption(reads_note(reads, schema) + ("" if options["scene_fields"] else " · " + tr("why.no_scene_fields")))

for key in ("why_user", "why_k", "why_day", "why_hour", "why_minute", "why_promo", *map(scene_key, controls)):
    st.session_state[f"_keep{key}"] = st.session_state[key]
if problems:  # the messages sit next to their fields
    st.stop()
user = str(st.session_state["why_user"]).strip()
scene = {**base_scene, **{f: st.session_state[scene_key(f)] for f in controls}}
scenario = Scenario.local(st.session_state["why_day"], st.session_state["why_hour"], int(minute), scene, st.session_state["why_promo"])
k = int(st.session_state["why_k"])
if not user:
    st.info(tr("why.pick_shopper"))
    st.stop()
stamp = time.monotonic_ns()
st.session_state[SHARED] = {"user": user, "scenario": scenario.key(), "k": k, "model": model, "stamp": stamp}
st.session_state[SEEN] = stamp
page_model = model  # the URL keeps naming the model picked, a router included
if is_router(loaded):  # the member the router sends this moment to answers; say which and why, then explain it
    route = routing(loaded, scenario)
    st.info(routing_sentence(route, lang()))
    model = model_key(route.path)
    loaded = loaded_model(model)
    if not loaded.explainable:
        st.info(tr_md("router.why.not_explainable", model=route.label))
        st.stop()
mtime = model_mtime(model)
case = shopper_case(model, mtime, store.path, store.version, user, scenario.key())
if isinstance(case, str):
    st.warning(tr_md("why.unknown_shopper", user=user, examples=", ".join(top_shoppers[:5])))
    st.stop()

from recsys_core.explain.cases import top_items  # noqa: E402 — after the cheap checks above

@st.cache_data(show_spinner=False, max_entries=64)
def cold_start_top(model_key: str, db: str, version: tuple, shopper: str, scenario_key: tuple, k: int) -> pd.DataFrame:
    """The top k a shopper without history is served (item_id, rank)."""
    from recsys_core import recommend
    from views._common import read_cursor

    with read_cursor(db) as cur:
        return recommend.recommend(loaded_model(model_key), cur, shopper, Scenario.from_key(scenario_key), k)[["item_id", "rank"]]


top = top_items(loaded.model, case, k)
if not len(case.events):  # no history: the served list is scene-aware popularity (recommend's cold-start path)
    top = cold_start_top(model, store.path, store.version, user, scenario.key(), k)


@st.cache_data(show_spinner=False, max_entries=64)
def item_labels(db: str, version: tuple, item_ids: tuple[str, ...], language: str) -> dict[str, str]:
    from views._common import read_cursor
    from recsys_core.explain.cases import item_frame

    with read_cursor(db) as cur:
        rows = item_frame(cur, list(item_ids))
    title = "title_zh" if language == "zh" else "title"
    return {str(r.item_id): f"{getattr(r, title) or r.title or r.item_id} · {r.item_id}" for r in rows.itertuples()}


current = st.session_state.get("why_item")
if st.session_state.get(ITEM_OF) not in (None, user):  # another shopper: start from their top item
    current = None
st.session_state[ITEM_OF] = user
item_options = list(top["item_id"])
if current and current not in item_options:
    item_options.append(current)
labels = item_labels(store.path, store.version, tuple(item_options), lang())
rank_of = dict(zip(top["item_id"], top["rank"]))
if not current or current not in item_options:
    st.session_state["why_item"] = item_options[0]
st.selectbox(
    tr("why.item"), item_options, key="why_item", accept_new_options=True,
    format_func=lambda i: f"{rank_of[i]}. {labels.get(i, i)}" if i in rank_of else labels.get(i, str(i)),
    help=tr("why.item_help", k=k),
)
item = str(st.session_state["why_item"]).strip()

# the URL holds the whole view
st.session_state[WROTE] = {"user": user, "item": item, **sc.scenario_params(scenario), "k": str(k), "model": page_model, "lang": lang()}
st.query_params.from_dict(st.session_state[WROTE])

try:
    ex = explanation(model, mtime, store.path, store.version, user, item, scenario.key(), k)
except ValueError:
    st.warning(tr_md("why.unknown_item", item=item))
    st.stop()

@st.cache_data(show_spinner=False, max_entries=64)
def cold_start_why(model_key: str, db: str, version: tuple, shopper: str, item_id: str, scenario_key: tuple, k: int) -> dict:
    """The explanation's sentence for a shopper without history (`explain.cold_start_note`)."""
    from recsys_core.explain import cold_start_note
    from recsys_core.explain.cases import build_case
    from views._common import read_cursor

    with read_cursor(db) as cur:
        lm = loaded_model(model_key)
        return cold_start_note(lm, cur, build_case(lm, cur, shopper, item_id, Scenario.from_key(scenario_key)))


# --- headline ---------------------------------------------------------------------------------------

a, case = ex.attribution, ex.case
info = item_labels(store.path, store.version, (item,), lang()).get(item, item)
st.subheader(tr_md("why.item_heading", item=info))
cold = cold_start_why(model, store.path, store.version, user, item, scenario.key(), k) if not len(case.events) else None
st.info(markdown_text(cold[lang()] if cold else ex.reason[lang()]), icon=":material/lightbulb:")
m1, m2, m3, m4 = st.columns(4)
m1.metric(tr("why.rank"), ordinal(ex.rank, lang()), tr("why.of_items", n=format_int(loaded.model.n_items)), delta_color="off", delta_arrow="off")
m2.metric(tr("why.score"), f"{a.score:.3f}")
m3.metric(tr("why.baseline"), f"{a.baseline_score:.3f}", help=tr("why.baseline_help"))
m4.metric(tr("why.gap"), f"{a.relative_gap:.2%}", help=tr("why.gap_help", gap=f"{a.completeness_gap:+.4f}", steps=a.n_steps))
st.caption(tr_md("why.model_line", version=loaded.version, ms=format_int(sum(ex.timings_ms.values()))))

events = ex.event_frame()
title_col = "title_zh" if zh else "title"
cat_col = "category_zh" if zh else "category"


def event_label(row: pd.Series) -> str:
    when = pd.Timestamp(row["local_ts"]).strftime("%m-%d %H:%M")
    return plot_text(f"{when} · {vocab('behavior', row['behavior'])} · {row.get(title_col) or row['item_id']}")


def change_field_label(name: str) -> str:
    key = f"why.field.{name}"
    return tr(key) if key in TRANSLATIONS else field_label(name, schema)


events["label"] = [event_label(r) for _, r in events.iterrows()]
context_names = {f: field_label(f, schema) for f in a.context}

tab_attr, tab_time, tab_att, tab_shap, tab_cf = st.tabs(
    [tr("why.tab_attributions"), tr("why.tab_timeline"), tr("why.tab_attention"), tr("why.tab_shapley"), tr("why.tab_counterfactuals")]
)

# --- attributions -----------------------------------------------------------------------------------

with tab_attr:
    shown = events.reindex(events["attr_total"].abs().sort_values(ascending=False).index[:TOP_EVENTS]).sort_index()
    fig = go.Figure()
    rows_y = list(shown["label"]) + [tr("why.context_row", field=context_names[f]) for f in a.context]
    for part in HISTORY_PARTS:
        fig.add_trace(go.Bar(y=list(shown["label"]), x=shown[f"attr_{part}"], orientation="h", name=tr(f"why.part.{part}"),
                             marker_color=PART_COLORS[part], hovertemplate="%{y}<br>%{x:+.4f}<extra>" + tr(f"why.part.{part}") + "</extra>"))
    fig.add_trace(go.Bar(y=[tr("why.context_row", field=context_names[f]) for f in a.context], x=list(a.context.values()),
                         orientation="h", name=tr("why.part.context"), marker_color=PART_COLORS["context"],
                         hovertemplate="%{y}<br>%{x:+.4f}<extra></extra>"))
    fig.update_layout(barmode="relative", xaxis_title=tr("why.attribution"))
    fig.update_yaxes(categoryorder="array", categoryarray=rows_y[::-1])
    show_chart(fig, "why_attributions", height=max(380, 24 * len(rows_y) + 120))
    st.caption(tr("why.attr_caption", n=min(TOP_EVENTS, len(events)), total=len(events), steps=a.n_steps))
    parts = [f"attr_{p}" for p in HISTORY_PARTS]
    table = events[["label", *parts, "attr_total"]].rename(columns={"label": tr("why.col.event"), "attr_total": tr("why.col.total"),
                                                                    **{f"attr_{p}": tr(f"why.part.{p}") for p in HISTORY_PARTS}})
    st.dataframe(table.round(5), hide_index=True, key="why_attr_table", height=240)
    download_csv(pd.DataFrame(ex.attribution_rows()), f"why_{user}_{item}", key="why_attr_csv")

# --- timeline -----------------------------------------------------------------------------------------

with tab_time:
    if events.empty:
        st.info(tr("why.no_history"))
    else:
        limit = float(np.abs(events["attr_total"]).max()) or 1.0
        fig = go.Figure()
        for behavior, part in events.groupby("behavior", sort=False):
            fig.add_trace(go.Scatter(
                x=part["local_ts"], y=[plot_text(c) for c in part[cat_col].fillna(part["category"]).fillna("–").astype(str)],
                mode="markers", name=vocab("behavior", behavior),
                marker={"symbol": BEHAVIOR_SYMBOLS.get(behavior, "circle"), "size": 13, "color": part["attr_total"], "cmin": -limit,
                        "cmax": limit, "colorscale": RAISE_LOWER_SCALE, "line": {"width": 1, "color": "#555"},
                        "colorbar": {"title": {"text": tr("why.contribution")}, "x": 1.02, "tickvals": [-limit, 0, limit],
                                     "ticktext": [tr("why.lowers"), "0", tr("why.raises")]}},
                text=part["label"], customdata=part[["attr_total"]].to_numpy(),
                hovertemplate="%{text}<br>" + tr("why.col.total") + " %{customdata[0]:+.4f}<extra></extra>",
            ))
        fig.update_layout(xaxis_title=tr("why.local_time"), yaxis_title="")
        fig.update_yaxes(type="category")  # category ids are names, never numbers on an axis
        show_chart(fig, "why_timeline", height=420)
        st.caption(tr("why.timeline_caption") + " " + tr("why.colour_legend"))

# --- attention ----------------------------------------------------------------------------------------

with tab_att:
    st.warning(tr("why.attention_not_importance"), icon=":material/info:")
    maps = ex.attention
    n = len(events)
    if maps is None or n == 0:
        st.info(tr("why.no_history"))
    else:
        target = maps.target()[:, :, case.offset:]  # (L, H, n)
        rollout = maps.rollout()[case.offset:]
        view = st.segmented_control(tr("why.attention_view"), ["model", "head"], key="why_att_view", default="model",
                                    format_func=text_formatter("why.attention_view"))
        x = [f"{pos}" for pos in events["position"]]
        hover = events["label"].tolist()
        if view == "head":
            c1, c2 = st.columns(2)
            layer = c1.selectbox(tr("why.layer"), range(maps.n_layers), key="why_layer", format_func=lambda i: f"{i + 1}")
            head = c2.selectbox(tr("why.head"), range(maps.n_heads), key="why_head", format_func=lambda i: f"{i + 1}")
            fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55], horizontal_spacing=0.12)
            fig.add_trace(go.Bar(x=x, y=target[layer, head], name=tr("why.head_name", layer=layer + 1, head=head + 1),
                                 hovertext=hover, marker_color="#1F77B4"), row=1, col=1)
            fig.add_trace(go.Scatter(x=x, y=rollout, name=tr("why.rollout"), mode="lines+markers", hovertext=hover,
                                     line={"color": "#E4572E"}), row=1, col=1)
            full = maps.weights[layer, head][case.offset:, case.offset:]
            fig.add_trace(go.Heatmap(z=full, x=x, y=x, colorscale="Blues", showscale=False, hovertemplate="%{y} → %{x}: %{z:.3f}<extra></extra>"),
                          row=1, col=2)
            fig.update_yaxes(autorange="reversed", row=1, col=2, title_text=tr("why.query"))
            fig.update_yaxes(title_text=tr("why.head_row"), row=1, col=1)
            fig.update_xaxes(title_text=tr("why.event_position"), row=1, col=1)
            fig.update_xaxes(title_text=tr("why.key"), row=1, col=2)
            show_chart(fig, "why_attention_head", height=460)
        else:
            rows = [tr("why.head_name", layer=l + 1, head=h + 1) for l in range(maps.n_layers) for h in range(maps.n_heads)]
            z = np.vstack([target.reshape(-1, n), rollout[None, :]])
            fig = go.Figure(go.Heatmap(z=z, x=x, y=rows + [tr("why.rollout")], colorscale="Blues",
                                       colorbar={"title": {"text": tr("why.weight")}},
                                       customdata=np.array([hover] * z.shape[0]),
                                       hovertemplate="%{y}<br>%{customdata}<br>%{z:.3f}<extra></extra>"))
            fig.update_yaxes(autorange="reversed")
            fig.update_xaxes(title_text=tr("why.event_position"))
            show_chart(fig, "why_attention_model", height=max(300, 34 * len(rows) + 160))
        st.caption(tr("why.attention_caption", layers=maps.n_layers, heads=maps.n_heads))

# --- Shapley --------------------------------------------------------------------------------------------

with tab_shap:
    s = ex.shapley
    names = [group_label(g, schema) for g in s.values]
    fig = go.Figure(go.Waterfall(
        x=[tr("why.base_value"), *names, tr("why.score")],
        measure=["absolute", *["relative"] * len(names), "total"],
        y=[s.base_value, *s.values.values(), 0.0],
        text=[f"{s.base_value:.3f}", *[f"{v:+.3f}" for v in s.values.values()], f"{s.score:.3f}"],
        textposition="outside", cliponaxis=False,
        increasing={"marker": {"color": RAISES}}, decreasing={"marker": {"color": LOWERS}}, totals={"marker": {"color": "#29335C"}},
    ))
    fig.update_layout(showlegend=False, yaxis_title=tr("why.score"))
    show_chart(fig, "why_shapley", height=420)
    st.caption(tr("why.colour_legend"))
    st.caption(tr("why.shapley_caption", n=len(s.values), evals=format_int(s.n_evaluations),
                  gap=f"{sum(s.values.values()) - (s.score - s.base_value):+.1e}"))

# --- counterfactuals --------------------------------------------------------------------------------------

with tab_cf:
    cf = ex.counterfactuals
    where = tr("why.in_top", k=k) if cf.in_top_k else tr("why.outside_top", k=k)
    if cf.smallest is not None:
        st.success(tr_md("why.smallest", where=where, change=change_text(cf.smallest, lang(), loaded.features), rank=ordinal(cf.smallest.rank, lang()),
                      cost=cf.smallest.cost), icon=":material/swap_horiz:")
    else:
        st.info(tr("why.no_crossing", where=where, k=k))
    per_field = [
        {tr("why.col.field"): change_field_label(f), tr("why.col.change"): change_text(c, lang(), loaded.features), tr("why.col.new_rank"): c.rank}
        for f, c in cf.per_field.items() if c is not None
    ]
    if per_field:
        st.dataframe(pd.DataFrame(per_field), hide_index=True, key="why_cf_fields")
    fig = go.Figure(go.Scatter(x=list(range(24)), y=cf.hour_ranks, mode="lines+markers", name=tr("why.rank"), line={"color": "#1F77B4"},
                               hovertemplate="%{x:02d}:00 — " + tr("why.rank") + " %{y:,}<extra></extra>"))
    fig.add_hline(y=k + 0.5, line={"color": "#E4572E", "dash": "dash"}, annotation_text=tr("why.top_k_line", k=k))
    fig.add_vline(x=scenario.hour, line={"color": "#7F7F7F", "dash": "dot"})
    worst = max(max(cf.hour_ranks), k)
    fig.update_yaxes(type="log", range=[np.log10(worst * 1.6), np.log10(0.8)], title_text=tr("why.rank"), tickformat=",d")  # 1 on top
    fig.update_xaxes(title_text=tr("why.hour"), tickvals=list(range(0, 24, 2)), ticktext=[f"{h:02d}:00" for h in range(0, 24, 2)])
    show_chart(fig, "why_hour_ranks", height=320)
    st.markdown(f"**{tr('why.history_edits')}**")
    edits = []
    for e in ex.history_edits:
        if e.kind == "remove":
            what = tr("why.edit.remove", event=events["label"].iloc[e.row])
        else:
            what = tr(f"why.edit.{e.kind}")
        edits.append({tr("why.col.edit"): what, tr("why.col.new_rank"): e.rank, tr("why.col.rank_change"): -e.delta_rank,
                      tr("why.col.score_change"): round(e.delta_score, 4), "_kind": e.kind})
    frame = pd.DataFrame(edits)
    if not frame.empty:
        shown = pd.concat([frame[frame["_kind"] != "remove"], frame[frame["_kind"] == "remove"].head(5),
                           frame[frame["_kind"] == "remove"].tail(3)]).drop_duplicates().drop(columns="_kind")
        st.dataframe(shown, hide_index=True, key="why_history_edits")
        st.caption(tr("why.history_edits_caption"))
