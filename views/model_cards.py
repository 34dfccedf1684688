"""Models: every model folder the studio knows, with its card, and several compared on the same cases."""

import pandas as pd  # noqa: F401 — before plotly (docs/pitfalls.md)
import plotly.graph_objects as go
import streamlit as st

from views._common import (
    field_label,
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
    tr,
    vocab,
)
from recsys_core import evaluate, registry
from recsys_core.i18n import TRANSLATIONS, format_int

MAX_COMPARED = 6
COMPARED = "_models_compared"  # the folders of the last comparison asked for

st.title(tr("models.title"))
st.caption(tr("models.caption"))
store = open_store()
events_hash = store_events_hash(store.path, store.version)


@st.cache_data(show_spinner=False)
def card(folder: str, mtime: int, events_hash: str) -> dict:
    return registry.model_card(folder, events_hash)


@st.cache_data(show_spinner=False, max_entries=16)
def comparison(path: str, version: tuple[int, int], folders: tuple[str, ...], mtimes: tuple[int, ...]) -> dict:
    with read_cursor(path) as cur:
        return evaluate.compare_models(cur, list(folders))


folders = [model_key(d) for d in model_dirs()]
cards = [card(str(model_path(f)), model_mtime(f), events_hash) | {"key": f} for f in folders]
if not cards:
    st.info(tr("models.none"))
    st.stop()


def data_word(same: object) -> str:
    return tr("models.this_data") if same is True else tr("models.other_data") if same is False else "–"


st.subheader(tr("models.cards"))
rows = []
for c in cards:
    if "error" in c:
        rows.append({tr("models.col.folder"): c["key"], tr("models.col.type"): tr("models.unreadable", error=c["error"])})
        continue
    rows.append({
        tr("models.col.folder"): c["key"],
        tr("models.col.type"): c["model_type"],
        tr("models.col.version"): c["version"],
        tr("models.col.protocol"): c["protocol"] or "–",
        tr("models.col.reads"): ", ".join(c["context_fields"]) or "–",
        tr("models.col.data"): data_word(c["same_data"]),
        tr("models.col.events"): format_int(c["data_events"]) if c["data_events"] is not None else "–",
        tr("models.col.size_mb"): c["size_mb"],
        tr("models.col.parameters"): format_int(c["parameters"]),
        tr("models.col.training_s"): c["training_s"],
        tr("models.col.epochs"): f"{c['epochs_run']} / {c['best_epoch']}" if c["epochs_run"] else "–",
        tr("models.col.seed"): c["seed"],
        tr("models.col.ndcg"): round(c["test_NDCG@10"], 4) if c["test_NDCG@10"] is not None else None,
    })
show_table(pd.DataFrame(rows), "model_cards", key="model_cards")

st.subheader(tr("models.compare_title"))
readable = [c["key"] for c in cards if "error" not in c]
default = [c["key"] for c in cards if c.get("same_data")][:MAX_COMPARED]
chosen = st.multiselect(tr("models.pick", n=MAX_COMPARED), readable, default=default, max_selections=MAX_COMPARED,
                        key="models_pick", help=tr("models.pick_help"))
if st.button(tr("models.compare"), key="models_compare", type="primary", disabled=len(chosen) < 2):
    st.session_state[COMPARED] = tuple(chosen)
if len(chosen) < 2:
    st.info(tr("models.need_two"))
    st.stop()
asked = st.session_state.get(COMPARED)
if not asked:
    st.stop()
try:
    with st.spinner(tr("models.comparing", n=len(asked))):
        result = comparison(store.path, store.version, tuple(str(model_path(f)) for f in asked), tuple(model_mtime(f) for f in asked))
except ValueError as exc:  # another protocol or other data than the models were trained on
    st.error(tr("models.refused", error=exc), icon=":material/block:")
    st.stop()

st.caption(tr("models.protocol", evaluation=result["evaluation"]))
metrics = ["HR@5", "NDCG@5", "MRR@5", "Recall@5", "HR@10", "NDCG@10", "MRR@10", "Recall@10", "HR@20", "NDCG@20", "MRR@20", "Recall@20"]
table = pd.DataFrame([
    {tr("models.col.model"): m["model"],
     **{name: f"{m['metrics'][name]:.4f} [{m['ci95'][name][0]:.4f}, {m['ci95'][name][1]:.4f}]" for name in metrics},
     tr("models.col.coverage"): round(m[f"coverage@{evaluate.COVERAGE_K}"], 4)}
    for m in result["models"]
])
show_table(table, "model_comparison", key="model_comparison")

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
heat.update_layout(plot_bgcolor="#D9D9D9", yaxis={"autorange": "reversed", "type": "category"}, xaxis={"side": "top"})
show_chart(heat, "models_wins", height=120 + 24 * len(wins))
st.caption(tr("models.wins_caption", n=evaluate.MIN_SLICE_CASES))

st.subheader(tr("models.paired", reference=result["models"][0]["model"]))
tests = pd.DataFrame([
    {tr("models.col.model"): t_["b"], tr("models.col.diff"): round(t_["diff"], 4),  # model − reference
     tr("models.col.diff_ci"): f"[{t_['diff_ci95'][0]:.4f}, {t_['diff_ci95'][1]:.4f}]", tr("models.col.p"): round(t_["p_value"], 4)}
    for t_ in result["tests"]
])
show_table(tests, "model_paired_tests", key="model_paired_tests")
st.caption(tr("models.paired_caption"))
