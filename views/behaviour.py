"""Behaviour: how shoppers behave across days, hours and scenes, under filters; every table downloadable."""

from datetime import timedelta

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from views._common import (
    code,
    field_label,
    lang,
    open_store,
    plot_text,
    query,
    scene_schema,
    show_chart,
    show_table,
    tr,
    tr_md,
    vocab,
    vocab_formatter,
)
from recsys_core.i18n import format_int, format_pct
from recsys_core.series import split_outliers, with_gaps
from recsys_core.store.analytics import BEHAVIORS, EventFilter, calendar_days_between

BEHAVIOR_COLORS = {"pv": "#9AA5B1", "fav": "#F3A712", "cart": "#E4572E", "buy": "#29335C"}
MAX_CATEGORY_MAPS = 6
TIMELINE_LIMIT = 1000

st.title(tr("behaviour.title"))
st.caption(tr("behaviour.caption"))

store = open_store()
options = query(store, "filter_options")
schema = scene_schema(store)
scene_fields = [f for f in options["scene_fields"] if options["scene"].get(f)]  # the data's scene fields
zh = lang() == "zh"


def category_name(category: str) -> str:
    return str(options["category_zh"].get(category, category) if zh else category)


# --- filters ----------------------------------------------------------------------------------
with st.container(border=True):
    st.markdown(f"**{tr('behaviour.filters')}**")
    c1, c2, c3 = st.columns([2, 3, 2])
    dates = c1.date_input(
        tr("behaviour.dates"),
        value=(options["start"], options["end"]),
        min_value=options["start"],
        max_value=options["end"],
        key="f_dates",
    )
    categories = c2.multiselect(
        tr("behaviour.categories"), options["categories"], key="f_categories",
        format_func=category_name, placeholder=tr("behaviour.all"),
    )
    behaviors = c3.multiselect(
        tr("behaviour.behaviours"), BEHAVIORS, key="f_behaviors",
        format_func=vocab_formatter("behavior"), placeholder=tr("behaviour.all"),
    )
    scene_choice: dict[str, list[str]] = {}
    for n, field in enumerate(scene_fields):  # one filter per scene field of the data, three a row
        if n % 3 == 0:
            columns = st.columns(3)
        scene_choice[field] = columns[n % 3].multiselect(
            field_label(field, schema), options["scene"][field], key=f"f_scene_{field}",
            format_func=vocab_formatter(field), placeholder=tr("behaviour.all"),
        )
    if not scene_fields:
        st.caption(tr("behaviour.no_scene_fields"))

# While a range is being picked the widget holds one date: read it as "from that day on".
start, end = (tuple(dates) + (options["end"],))[:2] if dates else (options["start"], options["end"])
filters = EventFilter(
    start=start,
    end=end,
    categories=tuple(categories),
    behaviors=tuple(behaviors),
    scene={f: tuple(v) for f, v in scene_choice.items() if v},
)

counts = query(store, "behavior_counts", filters)
if not sum(counts.values()):
    st.info(tr("common.no_match"))
    st.stop()
for column, behavior in zip(st.columns(len(BEHAVIORS)), BEHAVIORS):
    column.metric(tr(f"col.{behavior}"), format_int(counts[behavior]))

# --- events per day, promotion days and holidays marked --------------------------------------------
st.subheader(tr("behaviour.daily"))
raw_daily = query(store, "daily_events", filters)
present = [b for b in BEHAVIORS if b in set(raw_daily["behavior"])]
days = split_outliers(raw_daily)  # the bulk of the data; stray dates far outside it are named below
daily = with_gaps(raw_daily, days.first, days.last)  # a day without events is a gap in the line, not a bridge
daily["label"] = [vocab("behavior", b) for b in daily["behavior"]]
# One panel per behaviour on its own scale: purchases are a few percent of views and would vanish on a shared axis.
fig = px.line(
    daily, x="date", y="events", facet_row="label", color="label", markers=daily["date"].nunique() < 40,
    category_orders={"label": [vocab("behavior", b) for b in present]},
    color_discrete_map={vocab("behavior", b): c for b, c in BEHAVIOR_COLORS.items()},
    labels={"date": "", "events": "", "label": ""},
)
fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1], textangle=0, xanchor="left", font={"size": 13}))
fig.update_yaxes(matches=None, tickformat=",", rangemode="tozero")
fig.update_xaxes(tickformat="%m-%d", hoverformat="%Y-%m-%d")
fig.update_traces(hovertemplate="%{x|%Y-%m-%d}: %{y:,}<extra></extra>")
marks = calendar_days_between(max(start, days.first), min(end, days.last))
for day in marks["holiday"]:
    fig.add_vrect(x0=day, x1=day + timedelta(days=1), fillcolor="#9AA5B1", opacity=0.15, line_width=0, layer="below")
for day in marks["promotion"]:
    fig.add_shape(type="line", x0=day, x1=day, y0=0, y1=1, xref="x", yref="paper",
                  line={"color": "#D62728", "dash": "dot"})
    fig.add_annotation(
        x=day, y=1, xref="x", yref="paper", yanchor="bottom", showarrow=False, font={"color": "#D62728"},
        text=f"{day.month}.{day.day} {tr('behaviour.promotion_day')}",
    )
fig.update_layout(showlegend=False, margin={"r": 90})
show_chart(fig, "daily_chart", height=140 * max(1, len(present)) + 80)
st.caption(tr("behaviour.daily_caption"))
if days.missing:
    st.caption(tr("behaviour.gaps", n=len(days.missing), days=", ".join(d.isoformat() for d in days.missing[:10])
                  + (" …" if len(days.missing) > 10 else "")))
if days.outliers:
    st.warning(tr("behaviour.outliers", first=days.first.isoformat(), last=days.last.isoformat(),
                  dates=", ".join(d.isoformat() for d in days.outliers[:10]) + (" …" if len(days.outliers) > 10 else "")),
               icon=":material/event_busy:")
daily_table = raw_daily.pivot_table(index="date", columns="behavior", values="events", fill_value=0)
daily_table = daily_table.reindex(columns=present).astype("int64").reset_index().assign(date=lambda d: d["date"].dt.date)
with st.expander(tr("common.table")):
    show_table(daily_table, "events_per_day", "daily_table", height=240)

# --- hour x weekday ------------------------------------------------------------------------------
st.subheader(tr("behaviour.heatmap"))
hours = [f"{h:02d}" for h in range(24)]
weekdays = [vocab("weekday", w) for w in range(7)]
if len(categories) >= 2:
    per_cat = query(store, "hour_weekday", filters, by_category=True)
    shown_cats = [c for c in categories if c in set(per_cat["category"])][:MAX_CATEGORY_MAPS]
    grids = []
    for category in shown_cats:
        grid = per_cat[per_cat["category"] == category].pivot(index="weekday", columns="hour", values="events")
        grids.append(grid.to_numpy() / max(1, grid.to_numpy().sum()))
    fig = px.imshow(
        np.stack(grids), facet_col=0, facet_col_wrap=3, x=hours, y=weekdays, aspect="auto",
        color_continuous_scale="OrRd", labels={"x": tr("common.hour"), "y": "", "color": tr("common.share")},
    )
    for annotation in fig.layout.annotations:
        annotation.text = plot_text(category_name(shown_cats[int(annotation.text.split("=")[1])]))
        annotation.font = {"size": 14}
    fig.update_traces(hovertemplate="%{y} %{x}:00 — %{z:.2%}<extra></extra>")
    fig.update_coloraxes(colorbar_tickformat=".1%")
    fig.update_xaxes(dtick=3)
    heat_height = 260 * ((len(shown_cats) + 2) // 3) + 40
    heat_table = per_cat[per_cat["category"].isin(shown_cats)].assign(
        category=lambda d: [category_name(c) for c in d["category"]]
    )
    heat_caption = tr("behaviour.heatmap_per_category")
    if len(categories) > MAX_CATEGORY_MAPS:
        heat_caption += " " + tr("behaviour.heatmap_first", shown=MAX_CATEGORY_MAPS, chosen=len(categories))
else:
    heat_table = query(store, "hour_weekday", filters)
    grid = heat_table.pivot(index="weekday", columns="hour", values="events")
    fig = px.imshow(
        grid.to_numpy(), x=hours, y=weekdays, aspect="auto", color_continuous_scale="OrRd",
        labels={"x": tr("common.hour"), "y": "", "color": tr("common.events")},
    )
    fig.update_traces(hovertemplate="%{y} %{x}:00 — %{z:,}<extra></extra>")
    fig.update_coloraxes(colorbar_tickformat=",")
    fig.update_xaxes(dtick=2)
    heat_height = 340
    heat_caption = tr("common.local_time_note", tz=options["timezone"])
show_chart(fig, "heatmap_chart", height=heat_height)
st.caption(heat_caption)
with st.expander(tr("common.table")):
    show_table(heat_table.assign(weekday=[vocab("weekday", w) for w in heat_table["weekday"]]), "hour_weekday",
               "heatmap_table", height=240)

# --- funnel per scene field (only when the data has scene fields) ----------------------------------------
if scene_fields:
    st.subheader(tr("behaviour.scene_funnel"))
    scene = st.selectbox(tr("behaviour.scene_field"), scene_fields, key="scene_field", format_func=lambda f: field_label(f, schema))
    scene_name = field_label(scene, schema)
    by_scene = query(store, "scene_funnel", filters, scene)
    by_scene.insert(1, "label", [plot_text(vocab(scene, v)) for v in by_scene["value"]])
    rates = by_scene.melt(id_vars="label", value_vars=["fav_cart_rate", "buy_rate"], var_name="rate", value_name="share")
    rates["rate"] = [tr(f"col.{r}") for r in rates["rate"]]
    fig = px.bar(
        rates, x="label", y="share", color="rate", barmode="group", text=[format_pct(s) for s in rates["share"]],
        color_discrete_sequence=["#F3A712", "#29335C"], labels={"label": plot_text(scene_name), "share": "", "rate": ""},
    )
    fig.update_traces(textposition="outside", cliponaxis=False)
    fig.update_xaxes(type="category")  # values such as store ids are names, not numbers
    fig.update_yaxes(tickformat=".0%", range=[0, max(0.05, float(rates["share"].max() or 0)) * 1.2])
    show_chart(fig, "scene_funnel_chart", height=360)
    st.caption(tr("behaviour.scene_funnel_caption"))
    show_table(by_scene.assign(label=[vocab(scene, v) for v in by_scene["value"]]).drop(columns="value")
               .rename(columns={"label": scene_name}), f"funnel_by_{scene}", "scene_funnel_table")

# --- conversion by hour ---------------------------------------------------------------------------
st.subheader(tr("behaviour.conversion"))
conversion = query(store, "conversion_by_hour", filters)
fig = make_subplots(specs=[[{"secondary_y": True}]])
fig.add_trace(go.Bar(x=conversion["hour"], y=conversion["pv"], name=tr("col.pv"), marker_color="#D5DBE1",
                     hovertemplate="%{x}:00 — %{y:,}<extra></extra>"), secondary_y=False)
for column, color in (("fav_cart_rate", "#F3A712"), ("buy_rate", "#29335C")):
    fig.add_trace(go.Scatter(x=conversion["hour"], y=conversion[column], name=tr(f"col.{column}"), mode="lines+markers",
                             line={"color": color, "width": 3}, hovertemplate="%{x}:00 — %{y:.2%}<extra></extra>"),
                  secondary_y=True)
fig.update_xaxes(title_text=tr("common.hour"), dtick=1, range=[-0.6, 23.6])
fig.update_yaxes(title_text=tr("col.pv"), tickformat=",", secondary_y=False, showgrid=False)
rate_top = float(conversion[["fav_cart_rate", "buy_rate"]].max().max() or 0)
fig.update_yaxes(title_text=tr("common.rate_per_view"), tickformat=".0%", secondary_y=True,
                 range=[0, max(0.01, rate_top) * 1.15])
show_chart(fig, "conversion_chart", height=380)
st.caption(tr("behaviour.conversion_caption") + " " + tr("common.local_time_note", tz=options["timezone"]))
with st.expander(tr("common.table")):
    show_table(conversion, "conversion_by_hour", "conversion_table", height=240)

# --- top items and categories for the chosen scene ------------------------------------------------------
st.subheader(tr("behaviour.top"))
chosen = [vocab(f, v) for f in scene_fields for v in scene_choice[f]] + [vocab("behavior", b) for b in behaviors]
st.caption(tr_md("behaviour.top_caption", scene=" · ".join(chosen) or tr("behaviour.any_scene")))
top_n = st.slider(tr("behaviour.top_n"), 5, 50, 10, step=5, key="top_n")
st.markdown(f"**{tr('behaviour.top_items')}**")
items = query(store, "top_items", filters, limit=top_n)
items["title"] = items["title_zh"].fillna(items["title"]) if zh else items["title"]
items["category"] = items["category_zh"].fillna(items["category"]) if zh else items["category"]
show_table(
    items[["item_id", "title", "category", "price", "events", "pv", "fav", "cart", "buy", "buy_rate"]],
    "top_items", "top_items_table",
)
st.markdown(f"**{tr('behaviour.top_categories')}**")
cats = query(store, "top_categories", filters, limit=top_n)
cats["category"] = [category_name(c) for c in cats["category"]]
chart_col, table_col = st.columns([1, 2])
with chart_col:
    fig = px.bar(cats.assign(category=[plot_text(c) for c in cats["category"]]), x="events", y="category", orientation="h",
                 text=[format_int(n) for n in cats["events"]], labels={"events": tr("col.events"), "category": ""})
    fig.update_traces(marker_color="#E4572E", textposition="auto", cliponaxis=False)
    fig.update_yaxes(autorange="reversed", type="category")  # category ids (Taobao) are names, not a numeric axis
    fig.update_xaxes(tickformat=",")
    show_chart(fig, "top_categories_chart", height=max(260, 28 * len(cats) + 80))
with table_col:
    show_table(cats[["category", "events", "pv", "fav", "cart", "buy", "buy_rate"]], "top_categories",
               "top_categories_table")

# --- one shopper's timeline ---------------------------------------------------------------------
st.subheader(tr("behaviour.timeline"))
examples = query(store, "active_shoppers", limit=5)["user_id"].tolist()  # overall: the timeline is unfiltered
typed = st.text_input(
    tr("behaviour.shopper_id"), key="shopper_id", placeholder=examples[0] if examples else "",
    help=tr("behaviour.shopper_help", examples=", ".join(examples)),
)
user = typed.strip() or (examples[0] if examples else "")
timeline = query(store, "shopper_timeline", user, limit=TIMELINE_LIMIT)
if timeline.empty:
    st.warning(tr_md("behaviour.unknown_shopper", user=user))
else:
    st.caption(
        f"{tr('col.user_id')} {code(user)} — "
        + tr("behaviour.timeline_caption", events=format_int(len(timeline)), limit=format_int(TIMELINE_LIMIT),
             first=f"{timeline['local_time'].iloc[0]:%Y-%m-%d}", end=f"{timeline['local_time'].iloc[-1]:%Y-%m-%d}")
    )
    shown = timeline.assign(
        title=timeline["title_zh"].fillna(timeline["title"]) if zh else timeline["title"],
        category=timeline["category_zh"].fillna(timeline["category"]) if zh else timeline["category"],
        behavior=[vocab("behavior", b) for b in timeline["behavior"]],
        **{f: [vocab(f, v) for v in timeline[f]] for f in scene_fields if f in timeline.columns},
    )[["local_time", "behavior", "item_id", "title", "category", "price", *[f for f in scene_fields if f in timeline.columns]]]
    shown["category"] = shown["category"].fillna(vocab("value", "unknown")).astype(str)
    plotted = shown.assign(**{c: [plot_text(v) for v in shown[c]] for c in ("category", "title", "item_id", *scene_fields)
                              if c in shown.columns})
    fig = px.scatter(
        plotted, x="local_time", y="category", color="behavior",
        color_discrete_map={vocab("behavior", b): c for b, c in BEHAVIOR_COLORS.items()},
        category_orders={"behavior": [vocab("behavior", b) for b in BEHAVIORS]},
        hover_data={"title": True, "price": ":,.2f", "item_id": True, **{f: True for f in scene_fields if f in shown.columns}},
        labels={"local_time": tr("col.local_time"), "category": "", "behavior": tr("common.behaviour"),
                "title": tr("col.title"), "price": tr("col.price"), "item_id": tr("col.item_id"),
                **{f: plot_text(field_label(f, schema)) for f in scene_fields}},
    )
    fig.update_traces(marker={"size": 10, "opacity": 0.8})
    fig.update_yaxes(type="category")
    fig.update_xaxes(tickformat="%m-%d", hoverformat="%Y-%m-%d %H:%M")
    show_chart(fig, "timeline_chart", height=max(300, 30 * shown["category"].nunique() + 140))
    show_table(shown, "shopper_timeline", "timeline_table", height=300)
