"""Monitoring: has the model got worse, has behaviour shifted since it was trained? Per time window after the
model's training cut-off: NDCG@10 / HR@10, PSI per field, the category mix of inputs against the top-10
predictions, coverage, and the alerts. The measuring is `recsys_core.monitor` (stored beside the database,
like evaluations); this page picks, draws and lists. "Update now" starts `update` as a background job.
"""

import datetime as dt
from pathlib import Path

import pandas as pd  # noqa: F401 — before plotly (docs/pitfalls.md)
import plotly.graph_objects as go
from plotly.colors import qualitative
import streamlit as st
from plotly.subplots import make_subplots

from views._common import (
    field_label,
    lang,
    model_dirs,
    model_key,
    model_mtime,
    model_path,
    models_root,
    open_store,
    plot_text,
    query,
    read_cursor,
    scene_schema,
    show_chart,
    show_table,
    tr,
)
from views._training import job_panel, jobs_dir
from recsys_core import jobs, registry
from recsys_core import monitor as mon
from recsys_core.i18n import TRANSLATIONS, format_int, format_pct

WINDOWS = ["7d", "3d", "1d", "14d"]
PALETTE = ["#29335C", "#F3A712", "#DB2B39", "#2CA02C", "#8E6C8A", "#17BECF", "#7F7F7F", "#BCBD22", "#E377C2", "#8C564B"]
MANY = qualitative.Dark24 + qualitative.Light24  # one colour per category or field, however many the data has

st.title(tr("monitor.title"))
st.caption(tr("monitor.caption"))
store = open_store()
options = query(store, "filter_options")
schema = scene_schema(store)


@st.cache_data(show_spinner=False, max_entries=32)
def monitoring(path: str, version: tuple[int, int], folder: str, mtime: int, window: str, as_of: str | None) -> dict:
    with read_cursor(path) as cur:
        return mon.monitor(cur, folder, window, as_of, store=mon.MonitorStore.beside(path))


@st.cache_data(show_spinner=False)
def protocol_of(folder: str, mtime: int) -> str | None:
    try:
        return registry.read_metadata(folder).get("protocol")
    except ValueError:  # an unreadable folder: the page says why once it is picked
        return None


def field_name(name: str) -> str:
    key = f"monitor.field.{name}"
    return tr(key) if key in TRANSLATIONS else field_label(name, schema)


def category_name(category: str) -> str:
    return str(options["category_zh"].get(category, category) if lang() == "zh" else category)


# --- what to monitor ------------------------------------------------------------------------------------------

folders = [model_key(d) for d in model_dirs()]
if not folders:
    st.info(tr("monitor.no_model"))
    st.stop()
# time_split models first in mind: they are the ones with weeks of data after their training cut-off
time_split = next((i for i, f in enumerate(folders) if protocol_of(str(model_path(f)), model_mtime(f)) == "time_split"), 0)
first_day = dt.date.fromisoformat(store.stats["first_event_local"][:10])
last_day = dt.date.fromisoformat(store.stats["last_event_local"][:10])
with st.container(border=True):
    c1, c2, c3, c4, c5 = st.columns([3, 1, 2, 1, 1])
    model = c1.selectbox(tr("monitor.model"), folders, index=time_split, key="monitor_model", format_func=lambda f: Path(f).name,
                         help=tr("monitor.model_help"))
    window = c2.selectbox(tr("monitor.window"), WINDOWS, key="monitor_window", format_func=lambda w: tr("monitor.days", n=int(w[:-1])))
    as_of_day = c3.date_input(tr("monitor.as_of"), value=last_day, min_value=first_day, max_value=last_day, key="monitor_as_of",
                              help=tr("monitor.as_of_help"))
    ndcg_drop = c4.number_input(tr("monitor.ndcg_drop"), 0.01, 0.99, mon.DEFAULT_NDCG_DROP, 0.05, key="monitor_ndcg_drop",
                                help=tr("monitor.ndcg_drop_help"))
    psi_limit = c5.number_input(tr("monitor.psi"), 0.01, 5.0, mon.DEFAULT_PSI, 0.05, key="monitor_psi", help=tr("monitor.psi_help"))

# --- update now: fine-tune on everything up to the end of the as-of day, as a background job ------------------
until = (as_of_day + dt.timedelta(days=1)).isoformat()  # local midnight after the last day shown
if st.button(tr("monitor.update_now"), key="monitor_update", icon=":material/update:", help=tr("monitor.update_help", until=until)):
    out = models_root() / f"{Path(model).name}-upd-{dt.datetime.now():%Y%m%d-%H%M%S}"
    try:
        jobs.start_update(str(model_path(model)), until, str(out), store.path, jobs_dir())
        st.success(tr("monitor.update_started", model=Path(model).name, out=out.name))
    except (jobs.JobBusyError, ValueError) as exc:
        st.warning(tr("monitor.update_refused", error=exc))
job_panel()

as_of = None if as_of_day >= last_day else as_of_day.isoformat()  # the last day: all the data (shares the CLI's stored windows)
try:
    with st.spinner(tr("monitor.measuring")):
        result = monitoring(store.path, store.version, str(model_path(model)), model_mtime(model), window, as_of)
except ValueError as exc:  # no window after the cut-off (not a time_split model), an unreadable folder, ...
    st.warning(tr("monitor.refused", error=exc), icon=":material/block:")
    st.stop()

thresholds = mon.Thresholds(float(ndcg_drop), float(psi_limit))
alerts = mon.find_alerts(result["windows"], thresholds)
windows = result["windows"]
x = [w["start"][:10] for w in windows]
last_included = (pd.Timestamp(result["as_of"]) - pd.Timedelta(seconds=1)).strftime("%Y-%m-%d")  # as_of is the exclusive end
st.markdown(tr("monitor.as_of_line", as_of=last_included, n=len(windows), window=tr("monitor.days", n=int(result["window"][:-1])),
               cutoff=result["training_cutoff"][:16].replace("T", " "), alerts=len(alerts)))
st.caption(tr("monitor.protocol", protocol=result["protocol"] or "–", cut=(result.get("cut") or "–")[:10],
              cases=format_int(result["n_cases"])))

# --- alerts ---------------------------------------------------------------------------------------------------

st.subheader(tr("monitor.alerts"))
if alerts:
    show_table(pd.DataFrame([{
        tr("monitor.col.window"): f"{a['window_start'][:10]} – {a['window_end'][:10]}",
        tr("monitor.col.kind"): tr(f"monitor.kind.{a['kind']}"),
        tr("monitor.col.field"): field_name(a["field"]),
        tr("monitor.col.value"): a["value"],
        tr("monitor.col.threshold"): a["threshold"],
    } for a in alerts]), "monitoring_alerts", key="monitor_alerts")
else:
    st.success(tr("monitor.no_alerts"), icon=":material/check_circle:")

# --- quality over time ---------------------------------------------------------------------------------------

st.subheader(tr("monitor.quality"))
fig = go.Figure()
for i, metric in enumerate(mon.QUALITY):
    fig.add_trace(go.Scatter(x=x, y=[w["metrics"][metric] for w in windows], name=metric, mode="lines+markers",
                             line={"color": PALETTE[i]}, customdata=[w["n_cases"] for w in windows],
                             hovertemplate="%{x}: %{y:.4f} (n=%{customdata})<extra>" + metric + "</extra>"))
first_ndcg = next((w["metrics"]["NDCG@10"] for w in windows if w["n_cases"] >= mon.MIN_ALERT_CASES and w["metrics"]["NDCG@10"]), None)
if first_ndcg:
    fig.add_hline(y=first_ndcg * (1 - thresholds.ndcg_drop), line_dash="dash", line_color="#DB2B39",
                  annotation_text=plot_text(tr("monitor.ndcg_line", share=format_pct(thresholds.ndcg_drop, 0))))
fig.update_layout(xaxis_title=tr("monitor.window_start"), yaxis_title=tr("monitor.metric"), xaxis={"type": "category"})
show_chart(fig, "monitor_chart_quality")

# --- input and prediction drift ------------------------------------------------------------------------------

st.subheader(tr("monitor.drift"))
fig = go.Figure()
for i, name in enumerate(result["fields"]):
    fig.add_trace(go.Scatter(x=x, y=[w["drift"][name]["psi"] for w in windows], name=plot_text(field_name(name)),
                             mode="lines+markers", line={"color": MANY[i % len(MANY)], "dash": "dot" if name == mon.PREDICTION_FIELD else "solid"}))
fig.add_hline(y=thresholds.psi, line_dash="dash", line_color="#DB2B39", annotation_text=f"PSI {thresholds.psi:g}")
fig.update_layout(xaxis_title=tr("monitor.window_start"), yaxis_title="PSI", xaxis={"type": "category"})
show_chart(fig, "monitor_chart_psi")
ref = result["reference"]
st.caption(tr("monitor.drift_caption", start=ref["start"][:10], end=ref["end"][:10], weeks=ref["weeks"], events=format_int(ref["n_events"])))

st.subheader(tr("monitor.mix"))
categories = list(ref["category_mix"])
for w in windows:
    categories += [c for c in list(w["category_mix"]) + list(w["top10_category_mix"]) if c not in categories]
fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04)
input_x = [tr("monitor.training")] + x
for i, c in enumerate(categories):
    colour = MANY[i % len(MANY)]
    name = plot_text(category_name(c))
    fig.add_trace(go.Bar(x=input_x, y=[ref["category_mix"].get(c, 0)] + [w["category_mix"].get(c, 0) for w in windows], name=name,
                         legendgroup=c, marker_color=colour), row=1, col=1)
    fig.add_trace(go.Bar(x=x, y=[w["top10_category_mix"].get(c, 0) for w in windows], name=name, legendgroup=c, showlegend=False,
                         marker_color=colour), row=1, col=2)
fig.update_layout(barmode="stack", yaxis={"tickformat": ".0%", "title": tr("monitor.share")})
fig.update_xaxes(type="category")
fig.update_xaxes(title_text=tr("monitor.mix_inputs"), row=1, col=1)  # axis titles, not subplot titles: the legend sits on top
fig.update_xaxes(title_text=tr("monitor.mix_top10"), row=1, col=2)
show_chart(fig, "monitor_chart_mix", height=460)

st.subheader(tr("monitor.coverage"))
fig = go.Figure()
fig.add_trace(go.Scatter(x=x, y=[w["coverage@10"] for w in windows], name=plot_text(tr("monitor.coverage_line")), mode="lines+markers",
                         line={"color": PALETTE[0]}))
for i, name in enumerate(mon.NEW_FIELDS):
    fig.add_trace(go.Scatter(x=x, y=[w["share"][name] for w in windows], name=plot_text(tr(f"monitor.share_of.{name}")),
                             mode="lines+markers", line={"color": PALETTE[i + 1], "dash": "dot"}))
fig.update_layout(xaxis_title=tr("monitor.window_start"), yaxis={"tickformat": ".1%", "title": tr("monitor.share")}, xaxis={"type": "category"})
show_chart(fig, "monitor_chart_coverage")
st.caption(tr("monitor.coverage_caption"))

st.subheader(tr("monitor.table"))
show_table(pd.DataFrame([{
    tr("monitor.col.window"): f"{w['start'][:10]} – {w['end'][:10]}" + ("" if w["complete"] else " *"),
    tr("monitor.col.events"): format_int(w["n_events"]),
    tr("monitor.col.cases"): format_int(w["n_cases"]),
    **{m: w["metrics"][m] for m in mon.QUALITY},
    tr("monitor.coverage_line"): w["coverage@10"],
    **{f"PSI {field_name(f)}": w["drift"][f]["psi"] for f in result["fields"]},
    **{f"JS {field_name(f)}": w["drift"][f]["js"] for f in result["fields"]},
} for w in windows]), "monitoring_windows", key="monitor_windows")
st.caption(tr("monitor.table_caption"))
