"""Overview: what is in the store — counts, date range, the funnel, when shoppers are active, scene mix."""

import pandas as pd  # noqa: F401 — before plotly (docs/pitfalls.md)
import plotly.express as px
import streamlit as st

from views._common import field_label, open_store, plot_text, query, scene_schema, show_chart, tr, vocab
from recsys_core.i18n import format_int, format_pct
from recsys_core.store.analytics import funnel_from_counts, scene_mix_frame

st.title(tr("overview.title"))
st.caption(tr("overview.caption"))

store = open_store()
stats = store.stats

c1, c2, c3, c4 = st.columns(4)
c1.metric(tr("col.shoppers"), format_int(stats["shoppers"]))
c2.metric(tr("col.items"), format_int(stats["items"]))
c3.metric(tr("col.events"), format_int(stats["events"]))
c4.metric(
    tr("col.date_range"),
    tr("col.days", days=format_int(stats["days"])),
    f"{stats['first_event_local'][:10]} – {stats['last_event_local'][:10]}",
    delta_color="off",
    delta_arrow="off",
)

left, right = st.columns([2, 3])
with left:
    st.subheader(tr("overview.funnel"))
    funnel = funnel_from_counts(stats["behaviors"])
    funnel["label"] = [tr(f"stage.{s}") for s in funnel["stage"]]
    funnel["text"] = [f"{format_int(n)}  ({format_pct(p)})" for n, p in zip(funnel["events"], funnel["share_of_views"])]
    fig = px.funnel(funnel, x="events", y="label", text="text", labels={"events": tr("col.events"), "label": ""})
    # Outside: later stages are a few percent of views, too narrow to hold their own label.
    fig.update_traces(
        textposition=["inside" if share >= 0.3 else "outside" for share in funnel["share_of_views"].fillna(1)],
        textinfo="text", marker_color=["#E4572E", "#F3A712", "#29335C"],
        connector={"fillcolor": "#EEF0F2"}, cliponaxis=False,
    )
    show_chart(fig, "overview_funnel", height=320)
    st.caption(tr("overview.funnel_caption"))
with right:
    st.subheader(tr("overview.heatmap"))
    grid = query(store, "hour_weekday").pivot(index="weekday", columns="hour", values="events")
    fig = px.imshow(
        grid.to_numpy(),
        x=[f"{h:02d}" for h in grid.columns],
        y=[vocab("weekday", w) for w in grid.index],
        color_continuous_scale="OrRd",
        aspect="auto",
        labels={"x": tr("common.hour"), "y": "", "color": tr("common.events")},
    )
    fig.update_traces(hovertemplate="%{y} %{x}:00 — %{z:,}<extra></extra>")
    fig.update_xaxes(side="bottom", dtick=2)
    fig.update_coloraxes(colorbar_tickformat=",")
    show_chart(fig, "overview_heatmap", height=320)
    st.caption(tr("common.local_time_note", tz=stats["timezone"]))

st.subheader(tr("overview.scene_mix"))
mix = scene_mix_frame(stats["scene_mix"])
fields = list(stats["scene_fields"])  # the data's scene fields, three charts a row
schema = scene_schema(store)
if not fields:
    st.caption(tr("overview.no_scene_fields"))
for n, scene in enumerate(fields):
    if n % 3 == 0:
        columns = st.columns(3)
    column = columns[n % 3]
    part = mix[mix["scene"] == scene].copy()
    part["label"] = [plot_text(vocab(scene, v)) for v in part["value"]]
    part["text"] = [f"{format_pct(s)}  ·  {format_int(n)}" for s, n in zip(part["share"], part["events"])]
    fig = px.bar(
        part,
        x="share",
        y="label",
        orientation="h",
        text="text",
        title=plot_text(field_label(scene, schema)),
        labels={"share": tr("common.share"), "label": ""},
    )
    fig.update_traces(marker_color="#E4572E", textposition="auto", cliponaxis=False)
    fig.update_xaxes(tickformat=".0%", range=[0, max(0.05, part["share"].max() * 1.35)])
    fig.update_yaxes(autorange="reversed", type="category")
    with column:
        show_chart(fig, f"overview_mix_{scene}", height=260)

runs = stats["import_runs"]
with st.expander(f"{tr('overview.import_runs')} ({format_int(len(runs))})"):
    if runs:
        st.dataframe(pd.DataFrame(runs), hide_index=True)
    else:
        st.caption(tr("overview.no_import_runs"))
