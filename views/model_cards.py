"""Models: every model folder the studio knows, with its card; several compared on the same cases (stored
evaluations, so opening the page again is instant); where each model wins, down to the cases of a slice;
learning curves; and training a new model in the background.

The page state (models compared, reference, protocol and time_split cut, slice) lives in the URL: a copied link
opens the same view.
"""

import datetime as dt
import urllib.parse
from pathlib import Path

import pandas as pd  # noqa: F401 — before plotly (docs/pitfalls.md)
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from views._common import (
    field_label,
    lang,
    model_dirs,
    model_key,
    model_mtime,
    model_path,
    open_store,
    read_cursor,
    scene_schema,
    show_chart,
    show_table,
    store_events_hash,
    erasure_records,
    tr,
    vocab,
)
from views._training import data_fit, default_cut, job_panel, training_form
from recsys_core import evaluate, registry
from recsys_core import scenario as sc
from recsys_core.sequences import PROTOCOLS
from recsys_core.i18n import TRANSLATIONS, format_int, format_pct

MAX_COMPARED = 6
SCENARIO_URL = "scenario-simulator"
COMPARED = "_models_compared"  # the folders of the last comparison asked for
METRICS = ["HR@5", "NDCG@5", "MRR@5", "Recall@5", "HR@10", "NDCG@10", "MRR@10", "Recall@10", "HR@20", "NDCG@20", "MRR@20", "Recall@20"]

st.title(tr("models.title"))
st.caption(tr("models.caption"))
store = open_store()
events_hash = store_events_hash(store.path, store.version)


@st.cache_data(show_spinner=False)
def card(folder: str, mtime: int, events_hash: str, erasures: list[dict] | None = None) -> dict:
    return registry.model_card(folder, events_hash, erasures)


@st.cache_data(show_spinner=False)
def history(folder: str, mtime: int) -> list[dict]:
    return (registry.read_metadata(folder).get("training") or {}).get("history") or []


@st.cache_data(show_spinner=False, max_entries=16)
def comparison(path: str, version: tuple[int, int], folders: tuple[str, ...], mtimes: tuple[int, ...], protocol: str,
               cut: str | None) -> dict:
    store_dir = evaluate.EvaluationStore.beside(path)
    with read_cursor(path) as cur:
        return evaluate.compare_models(cur, list(folders), protocol, store=store_dir, with_cases=True, cut=cut)


folders = [model_key(d) for d in model_dirs()]
erased = erasure_records(store.path, store.version)
cards = [card(str(model_path(f)), model_mtime(f), events_hash, erased) | {"key": f} for f in folders]


def data_word(c: dict) -> str:
    if c["same_data"] is True:
        return tr("models.this_data")
    if c["same_data"] is False:
        return f"{tr('models.other_data')} · {tr('models.col.coverage_here')} {format_pct(data_fit(c['key'], store)['coverage'])}"
    return "–"


st.subheader(tr("models.cards"))
if not cards:
    st.info(tr("models.none"))
rows = []
for c in cards:
    if "error" in c:
        rows.append({tr("models.col.folder"): c["key"], tr("models.col.type"): tr("models.unreadable", error=c["error"])})
        continue
    rows.append({
        tr("models.col.folder"): c["key"],
        tr("models.col.type"): c["model_type"],
        tr("models.col.version"): c["version"],
        tr("models.col.protocol"): tr("ts.protocol_cut", protocol=c["protocol"], cut=c["cut"]) if c.get("cut") else c["protocol"] or "–",
        tr("models.col.reads"): ", ".join(c["context_fields"]) or "–",
        tr("models.col.data"): data_word(c),
        tr("models.col.events"): format_int(c["data_events"]) if c["data_events"] is not None else "–",
        tr("models.col.size_mb"): c["size_mb"],
        tr("models.col.parameters"): format_int(c["parameters"]),
        tr("models.col.training_s"): c["training_s"],
        tr("models.col.epochs"): f"{c['epochs_run']} / {c['best_epoch']}" if c["epochs_run"] else "–",
        tr("models.col.seed"): c["seed"],
        tr("models.col.ndcg"): round(c["test_NDCG@10"], 4) if c["test_NDCG@10"] is not None else None,
        tr("privacy.col.erased"): tr("privacy.retrain") if c.get("trained_on_erased_data") else "–",
        tr("scale.privacy.card"): (tr("scale.privacy.value", epsilon=f"{c['dp_epsilon']:.3g}", delta=f"{c['dp_delta']:.1e}")
                                   if c.get("dp_epsilon") is not None else tr("scale.privacy.none")),
    })
if rows:
    show_table(pd.DataFrame(rows), "model_cards", key="model_cards")

# --- lineage of updated models (recsys_core.update): where each new version comes from ---
updated = [c for c in cards if c.get("lineage")]
if updated:
    with st.expander(tr("lineage.title"), icon=":material/history:"):
        for c in updated:
            st.text(f"{c['key']}: {registry.lineage_text(c['lineage'], lang())}. {tr('lineage.protocol', cut=c['lineage']['cut'])}")

with st.expander(tr("train.title"), icon=":material/model_training:"):
    training_form(store)
job_panel()

# --- side by side --------------------------------------------------------------------------------------------

st.subheader(tr("models.compare_title"))
readable = [c for c in cards if "error" not in c]
comparable = [c["key"] for c in readable if c["same_data"] is not False]
others = [c["key"] for c in readable if c["same_data"] is False]
if others:
    st.caption(tr("models.not_comparable", models=", ".join(others)))
params = st.query_params
from_url = [m for m in params.get("models", "").split(",") if m in comparable][:MAX_COMPARED]
if "models_pick" not in st.session_state:
    st.session_state["models_pick"] = from_url or comparable[:MAX_COMPARED]
    if len(from_url) >= 2:
        st.session_state[COMPARED] = tuple(from_url)
chosen = st.multiselect(tr("models.pick", n=MAX_COMPARED), comparable, max_selections=MAX_COMPARED,
                        key="models_pick", help=tr("models.pick_help"))
if chosen and st.session_state.get("models_ref") not in chosen:
    st.session_state["models_ref"] = params.get("ref") if params.get("ref") in chosen else chosen[0]
reference = st.selectbox(tr("models.reference"), chosen, key="models_ref") if chosen else None
by_key = {c["key"]: c for c in readable}
if "models_protocol" not in st.session_state:  # the URL's, else the reference's training protocol
    trained = (by_key.get(reference) or {}).get("protocol")
    st.session_state["models_protocol"] = next(p for p in (params.get("protocol"), trained, "next_event") if p in PROTOCOLS)
protocol = st.selectbox(tr("train.protocol"), list(PROTOCOLS), key="models_protocol", help=tr("ts.protocol_help"))
cut = None
if protocol == "time_split":
    # default: the compared models' recorded cut (the reference's first), else the data's default
    recorded = [by_key[m]["cut"] for m in [reference, *chosen] if by_key.get(m, {}).get("protocol") == "time_split" and by_key[m].get("cut")]
    default = recorded[0] if recorded else default_cut(store)
    if "models_cut" not in st.session_state:
        try:
            st.session_state["models_cut"] = dt.date.fromisoformat(str(params.get("cut") or default)[:10])
        except ValueError:
            st.session_state["models_cut"] = dt.date.fromisoformat(default[:10])
    picked_day = st.date_input(tr("ts.cut"), key="models_cut", help=tr("ts.cut_help"))
    # the default's day keeps the default's exact time; another day is that day's local midnight
    cut = default if picked_day.isoformat() == default[:10] else picked_day.isoformat()


def write_url(slice_key: str | None) -> None:
    """The page state in the URL, so a copied link opens the same comparison, protocol, cut and slice."""
    wanted = {"models": ",".join(chosen), "ref": reference or "", "protocol": protocol, **({"cut": cut} if cut else {}),
              "lang": lang(), **({"slice": slice_key} if slice_key else {})}
    if {k: st.query_params.get(k) for k in st.query_params} != wanted:
        st.query_params.from_dict(wanted)


write_url(st.session_state.get("models_slice") or params.get("slice"))
if st.button(tr("models.compare"), key="models_compare", type="primary", disabled=len(chosen) < 2):
    st.session_state[COMPARED] = tuple(chosen)
if len(chosen) < 2:
    st.info(tr("models.need_two"))
    st.stop()
asked = st.session_state.get(COMPARED)
if not asked or set(asked) != set(chosen):  # a changed selection waits for "Compare": ranking may take seconds
    st.stop()
ordered = [reference] + [m for m in chosen if m != reference]
try:
    with st.spinner(tr("models.comparing", n=len(ordered))):
        result = comparison(store.path, store.version, tuple(str(model_path(f)) for f in ordered), tuple(model_mtime(f) for f in ordered),
                            protocol, cut)
except ValueError as exc:  # another protocol or other data than the models were trained on
    st.error(tr("models.refused", error=exc), icon=":material/block:")
    st.stop()

st.caption(tr("models.protocol", evaluation=result["evaluation"]))
table = pd.DataFrame([
    {tr("models.col.model"): m["model"],
     **{name: f"{m['metrics'][name]:.4f} [{m['ci95'][name][0]:.4f}, {m['ci95'][name][1]:.4f}]" for name in METRICS},
     tr("models.col.coverage"): round(m[f"coverage@{evaluate.COVERAGE_K}"], 4),
     tr("models.col.popularity"): m["popularity_pct@10"],
     tr("models.col.novelty"): m["novelty@10"]}
    for m in result["models"]
])
show_table(table, "model_comparison", key="model_comparison")
st.caption(tr("models.bias_caption"))

fig = go.Figure(go.Bar(
    x=[m["model"] for m in result["models"]],
    y=[m["metrics"]["NDCG@10"] for m in result["models"]],
    error_y={"type": "data", "symmetric": False,
             "array": [m["ci95"]["NDCG@10"][1] - m["metrics"]["NDCG@10"] for m in result["models"]],
             "arrayminus": [m["metrics"]["NDCG@10"] - m["ci95"]["NDCG@10"][0] for m in result["models"]]},
    marker_color="#29335C",
))
fig.update_layout(yaxis_title="NDCG@10", xaxis_title="")
show_chart(fig, "models_ndcg")
st.caption(tr("models.whiskers"))

st.subheader(tr("models.paired", reference=result["models"][0]["model"]))
tests = pd.DataFrame([
    {tr("models.col.model"): t_["b"], tr("models.col.diff"): round(t_["diff"], 4),  # model − reference
     tr("models.col.diff_ci"): f"[{t_['diff_ci95'][0]:.4f}, {t_['diff_ci95'][1]:.4f}]", tr("models.col.p"): round(t_["p_value"], 4)}
    for t_ in result["tests"]
])
show_table(tests, "model_paired_tests", key="model_paired_tests")
st.caption(tr("ts.paired_caption", cases=format_int(result["n_cases"]), shoppers=format_int(result["n_users"]))
           if protocol == "time_split" else tr("models.paired_caption"))

# --- where each model wins, down to the cases ------------------------------------------------------------------

st.subheader(tr("models.wins"))
schema = scene_schema(store)
scene_names = {f.name for f in schema}


def slice_label(name: str, value: str) -> str:
    if name in scene_names:
        return f"{field_label(name, schema)}: {vocab(name, value)}"
    value_key = f"models.value.{value}"
    shown = tr(value_key) if value_key in TRANSLATIONS else value
    return f"{tr(f'models.slice.{name}')}: {shown}"


wins = evaluate.slice_winners(result["models"])
labels = [m["model"] for m in result["models"]]
rows_shown = [f"{slice_label(r['slice'], r['value'])} (n={format_int(r['n'])})" for r in wins]
z = [[None if r["too_small"] else r["scores"][m] for m in labels] for r in wins]
text = [[f"{r['scores'][m]:.3f}" + (" ★" if r["winner"] == m else "") for m in labels] for r in wins]
heat = go.Figure(go.Heatmap(z=z, x=labels, y=rows_shown, text=text, texttemplate="%{text}", colorscale="Blues",
                            colorbar={"title": {"text": "NDCG@10"}}, hoverongaps=False, xgap=2, ygap=2))
# Streamlit reports no selection for heatmap cells: a transparent marker on every cell carries the click.
heat.add_trace(go.Scatter(x=[m for _ in rows_shown for m in labels], y=[r for r in rows_shown for _ in labels], mode="markers",
                          marker={"size": 18, "color": "rgba(0,0,0,0)"}, showlegend=False, hovertemplate="%{y}<br>%{x}<extra></extra>"))
heat.update_traces(hoverinfo="skip", selector={"type": "heatmap"})
heat.update_layout(plot_bgcolor="#D9D9D9", yaxis={"autorange": "reversed", "type": "category"}, xaxis={"side": "top"},
                   clickmode="event+select")
clicked = show_chart(heat, "models_wins", height=120 + 24 * len(wins), on_select=True)
st.caption(tr("models.wins_caption", n=evaluate.MIN_SLICE_CASES))

slice_keys = [f"{r['slice']}={r['value']}" for r in wins]
points = (clicked or {}).get("selection", {}).get("points") or []
if points and points[0].get("y") in rows_shown:  # a click on a cell picks its row's slice
    st.session_state["models_slice"] = slice_keys[rows_shown.index(points[0]["y"])]
elif "models_slice" not in st.session_state and params.get("slice") in slice_keys:
    st.session_state["models_slice"] = params["slice"]
picked = st.selectbox(tr("models.slice_pick"), [""] + slice_keys, key="models_slice",
                      format_func=lambda k: tr("models.slice_none") if not k else rows_shown[slice_keys.index(k)])
if picked:
    name, value = picked.split("=", 1)
    cases = result["cases"]
    in_slice = cases[cases[name].astype(str) == value]
    st.markdown(tr("models.slice_cases", n=format_int(len(in_slice)), slice=slice_label(name, value)))

    def scenario_link(row: pd.Series) -> str:
        query = {"user": row["user_id"], "at": row["target_at"], "lang": lang(), "model": ordered[0]}
        query.update({sc.scene_param(f): str(row[f]) for f in scene_names if f in row and str(row[f]) != "unknown"})
        return f"/{SCENARIO_URL}?{urllib.parse.urlencode(query)}"

    shown = pd.DataFrame({
        tr("models.col.user"): in_slice["user_id"],
        tr("models.col.moment"): in_slice["target_at"].str.replace("T", " "),
        tr("models.col.target"): in_slice["target_item"],
        **{tr("models.col.rank", model=m): in_slice[f"rank:{m}"] for m in labels},
        tr("models.col.open"): [scenario_link(r) for _, r in in_slice.iterrows()],
    })
    st.dataframe(shown, hide_index=True, key="model_slice_cases", column_config={
        tr("models.col.open"): st.column_config.LinkColumn(tr("models.col.open"), display_text=tr("models.open_case"))})
    from views._common import download_csv

    download_csv(shown, "model_slice_cases", key="model_slice_cases_csv")
    st.caption(tr("models.cases_caption"))

# --- learning curves ---------------------------------------------------------------------------------------------

st.subheader(tr("models.curves"))
curves = {m: history(str(model_path(m)), model_mtime(m)) for m in ordered}
curves = {m: h for m, h in curves.items() if h}
if not curves:
    st.caption(tr("models.curves_none"))
else:
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    palette = ["#29335C", "#F3A712", "#DB2B39", "#2CA02C", "#8E6C8A", "#17BECF"]
    for i, (m, h) in enumerate(curves.items()):
        colour = palette[i % len(palette)]
        epochs = [e["epoch"] for e in h]
        ndcg = [e["valid_NDCG@10"] for e in h]
        best = max(range(len(h)), key=lambda j: ndcg[j])
        name = Path(m).name
        fig.add_trace(go.Scatter(x=epochs, y=[e["loss"] for e in h], name=f"{name} · {tr('models.loss')}",
                                 line={"color": colour, "dash": "dot"}), secondary_y=False)
        fig.add_trace(go.Scatter(x=epochs, y=ndcg, name=f"{name} · {tr('models.valid_ndcg')}", line={"color": colour}), secondary_y=True)
        fig.add_trace(go.Scatter(x=[epochs[best]], y=[ndcg[best]], mode="markers", showlegend=False,
                                 marker={"symbol": "diamond", "size": 12, "color": colour}), secondary_y=True)
    fig.update_xaxes(title_text=tr("models.epoch"), dtick=1)
    fig.update_yaxes(title_text=tr("models.loss"), secondary_y=False)
    fig.update_yaxes(title_text=tr("models.valid_ndcg"), secondary_y=True, tickformat=".3f", showgrid=False)
    show_chart(fig, "models_curves")
    st.caption(tr("models.curves_caption"))

write_url(picked)
