"""Push review: the audit log of pushes — filter, open one with the reasons stored at push time,
re-explain it with the live model (warned when that is not the model that pushed), export as CSV."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd  # before plotly (docs/pitfalls.md)
import plotly.graph_objects as go
import streamlit as st

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
    read_cursor,
    scene_schema,
    show_chart,
    tr,
    tr_md,
    vocab,
    vocab_formatter,
)
from views._explain import LOWERS, RAISES, WHY_PAGE, explanation, group_label, why_params
from recsys_core.context import Scenario
from recsys_core.explain.reasons import ordinal
from recsys_core.i18n import markdown_text
from recsys_core.store import pushes as store_pushes

LIMIT = 5000
LIVE = "_review_live"  # the push id re-explained with the live model
LINKED = "_review_linked"  # the push the URL named when the session started

st.title(tr("review.title"))
st.caption(tr("review.caption"))
store = open_store()
zh = lang() == "zh"


@st.cache_data(show_spinner=False, max_entries=32)
def filter_options(db: str, version: tuple) -> dict[str, Any]:
    with read_cursor(db) as cur:
        return store_pushes.push_filter_options(cur)


@st.cache_data(show_spinner=False, max_entries=64)
def pushes(db: str, version: tuple, f: store_pushes.PushFilter) -> tuple[pd.DataFrame, int]:
    with read_cursor(db) as cur:
        return store_pushes.list_pushes(cur, f, limit=LIMIT), store_pushes.count_pushes(cur, f)


def reasons_of(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def scene_of(raw: Any) -> dict[str, str]:
    """A push's scene ({field: value}, schema order) from its ``scene_json``."""
    try:
        value = json.loads(raw) if isinstance(raw, str) and raw else {}
    except json.JSONDecodeError:
        value = {}
    value = value if isinstance(value, dict) else {}
    return {f: str(value[f]) for f in sorted(value, key=lambda f: (push_fields.index(f) if f in push_fields else 99, f))}


def reason_text(raw: Any) -> str:
    r = reasons_of(raw)
    return (r.get("reason") or {}).get(lang(), "") if r else ""


options = filter_options(store.path, store.version)
if options["start"] is None:
    st.info(tr("review.no_pushes"))
    st.stop()
schema = scene_schema(store)
order = [f.name for f in schema]
push_fields = sorted(options["scene"], key=lambda f: (order.index(f) if f in order else len(order), f))  # schema order first

# --- filters (the URL may name a push or a shopper) -------------------------------------------------

if LINKED not in st.session_state:  # a new session: the URL may name a push to open
    st.session_state[LINKED] = st.query_params.get("push")
wanted_push = st.session_state[LINKED]
if "review_user" not in st.session_state and st.query_params.get("user"):
    st.session_state["review_user"] = st.query_params["user"]
with st.container(border=True):
    c_dates, c_user, c_item, c_cat = st.columns([3, 2, 2, 3])
    dates = c_dates.date_input(tr("review.dates"), value=(options["start"], options["end"]), key="review_dates")
    user_text = c_user.text_input(tr("review.shoppers"), key="review_user", help=tr("review.ids_help"))
    item_text = c_item.text_input(tr("review.items"), key="review_item", help=tr("review.ids_help"))
    categories = c_cat.multiselect(tr("review.categories"), options["category"], key="review_category", placeholder=tr("review.all"))
    # one filter per scene field the pushes carry, then the model versions; four a row
    boxes = [*push_fields, "_model"]
    scene: dict[str, list[str]] = {}
    for n, f in enumerate(boxes):
        if n % 4 == 0:
            columns = st.columns(4)
        if f == "_model":
            versions = columns[n % 4].multiselect(tr("review.models"), options["model_version"], key="review_model",
                                                  placeholder=tr("review.all"))
        else:
            scene[f] = columns[n % 4].multiselect(field_label(f, schema), options["scene"][f], key=f"review_scene_{f}",
                                                  format_func=vocab_formatter(f), placeholder=tr("review.all"))

start, end = (dates if isinstance(dates, (tuple, list)) and len(dates) == 2 else (options["start"], options["end"]))
split = lambda text: tuple(x.strip() for x in str(text).split(",") if x.strip())  # noqa: E731
f = store_pushes.PushFilter(start=start, end=end, user_ids=split(user_text), item_ids=split(item_text), categories=tuple(categories),
                            scene=tuple((k, tuple(v)) for k, v in scene.items() if v), model_versions=tuple(versions))
frame, total = pushes(store.path, store.version, f)
unfiltered = f == store_pushes.PushFilter(start=options["start"], end=options["end"])
if wanted_push and unfiltered and wanted_push not in set(frame["push_id"]):  # a linked push beyond the list's limit
    with read_cursor(store.path) as cur:
        frame = pd.concat([store_pushes.get_pushes(cur, [wanted_push]), frame], ignore_index=True)

st.subheader(tr("review.list", shown=f"{len(frame):,}", total=f"{total:,}"))
if frame.empty:
    st.info(tr("review.none_match"))
    st.stop()

title_col, cat_col = ("title_zh", "category_zh") if zh else ("title", "category")
scenes = [scene_of(raw) for raw in frame["scene_json"]]
table = pd.DataFrame({
    "local_time": pd.to_datetime(frame["local_time"]).dt.strftime("%Y-%m-%d %H:%M"),
    "user_id": frame["user_id"],
    "item": frame[title_col].fillna(frame["item_id"]),
    "rank": frame["rank"],
    "reason": [reason_text(r) for r in frame["reasons_json"]],
    "category": frame[cat_col].fillna("–"),
    "score": frame["score"].round(4),
    "scene": [" · ".join(vocab(fl, v) for fl, v in sc_.items()) for sc_ in scenes],
    "model_version": frame["model_version"],
})
shown = table.rename(columns={c: tr(f"review.col.{c}") for c in table.columns})
selection = st.dataframe(shown, hide_index=True, key="review_table", on_select="rerun", selection_mode="single-row",
                         height=min(38 + 35 * len(shown), 360), width="stretch")  # column widths follow their text
export = frame.assign(**{f: [sc_.get(f, "unknown") for sc_ in scenes] for f in push_fields if f not in frame.columns},
                      reason_en=[(reasons_of(r) or {}).get("reason", {}).get("en", "") for r in frame["reasons_json"]],
                      reason_zh=[(reasons_of(r) or {}).get("reason", {}).get("zh", "") for r in frame["reasons_json"]])
download_csv(export, "pushes", key="review_csv")

# --- one push -----------------------------------------------------------------------------------------

ids = frame["push_id"].tolist()
rows = getattr(getattr(selection, "selection", None), "rows", None) or []
if rows:
    st.session_state["review_push"] = ids[rows[0]]
elif wanted_push in ids and "review_push" not in st.session_state:
    st.session_state["review_push"] = wanted_push
if st.session_state.get("review_push") not in ids:
    st.session_state["review_push"] = ids[0]
labels = {pid: f"{t} · {u} · {i} (#{r})" for pid, t, u, i, r in zip(ids, table["local_time"], table["user_id"], table["item"], table["rank"])}
push_id = st.selectbox(tr("review.open"), ids, key="review_push", format_func=labels.get)
st.query_params["push"] = push_id
push = frame[frame["push_id"] == push_id].iloc[0]
stored = reasons_of(push["reasons_json"])
local_time = pd.Timestamp(push["local_time"]).to_pydatetime()

push_scene = scene_of(push["scene_json"])
st.subheader(tr_md("review.push_heading", item=push[title_col] or push["item_id"], user=push["user_id"]))
st.caption(tr_md("review.push_line", when=local_time.strftime("%Y-%m-%d %H:%M"),
                 scene=" · ".join(vocab(f, v) for f, v in push_scene.items()) or "–", rank=int(push["rank"]),
                 score=f"{push['score']:.4f}", version=push["model_version"], push_id=push_id))

try:
    dirs = model_dirs()
except (ImportError, AttributeError):
    dirs = []
live_dir = active_model_dir() if dirs else None
live = None
if live_dir is not None:
    try:
        live = loaded_model(model_key(live_dir))
    except Exception as exc:  # noqa: BLE001 — shown, not raised
        st.error(tr_md("review.model_error", error=exc))
if live is not None and live.version != push["model_version"]:
    st.warning(tr_md("review.model_differs", pushed=push["model_version"], live=live.version), icon=":material/warning:")

left, right = st.columns(2)
with left:
    st.markdown(f"**{tr('review.stored')}**")
    if stored is None:
        st.warning(tr("review.no_reasons"))
        st.button(tr("review.refresh"), key="review_refresh", icon=":material/refresh:")  # a rerun reads the log again
    else:
        st.info(markdown_text(stored["reason"][lang()]), icon=":material/history:")
        values = stored.get("shapley") or {}
        if values:
            names = [plot_text(group_label(g, schema)) for g in values]
            fig = go.Figure(go.Bar(x=list(values.values()), y=names, orientation="h",
                                   marker_color=[RAISES if v >= 0 else LOWERS for v in values.values()],
                                   hovertemplate="%{y}: %{x:+.4f}<extra></extra>"))
            fig.update_yaxes(autorange="reversed")
            fig.update_xaxes(title_text=tr("review.shapley_axis"))
            show_chart(fig, "review_stored_shapley", height=340)
            st.caption(tr("why.colour_legend"))
        st.caption(tr_md("review.stored_caption", version=stored.get("model_version", push["model_version"]),
                      at=stored.get("explained_at", "–"), score=f"{stored.get('score', float('nan')):.4f}",
                      base=f"{stored.get('baseline_score', float('nan')):.4f}"))

# the scenario the push was made for (the promotion override as stored with its reasons)
scenario = Scenario(local_time.replace(second=0, microsecond=0), push_scene, ((stored or {}).get("scenario") or {}).get("promo_override"))
k = int((stored or {}).get("k") or max(10, int(push["rank"])))


def reexplain() -> None:
    st.session_state[LIVE] = st.session_state["review_push"]


with right:
    st.markdown(f"**{tr('review.live')}**")
    if live is None:
        st.info(tr("review.no_live_model"))
    elif not live.explainable:
        st.info(tr_md("why.not_explainable", model=live.model_type))
    else:
        st.button(tr("review.reexplain"), key="review_reexplain", on_click=reexplain, icon=":material/refresh:")
        if st.session_state.get(LIVE) == push_id:
            key = model_key(live_dir)
            try:
                ex = explanation(key, model_mtime(key), store.path, store.version, str(push["user_id"]), str(push["item_id"]), scenario.key(), k)
            except ValueError as exc:
                st.warning(tr_md("review.live_failed", error=exc))
            else:
                st.info(markdown_text(ex.reason[lang()]), icon=":material/bolt:")
                now = {tr("review.col.group"): [group_label(g, schema) for g in ex.shapley.values],
                       tr("review.col.live"): [round(v, 4) for v in ex.shapley.values.values()]}
                if stored and stored.get("shapley"):
                    now[tr("review.col.stored")] = [round(stored["shapley"].get(g, float("nan")), 4) for g in ex.shapley.values]
                st.dataframe(pd.DataFrame(now), hide_index=True, key="review_live_table")
                st.caption(tr_md("review.live_caption", version=live.version, score=f"{ex.attribution.score:.4f}",
                              rank=ordinal(ex.rank, lang()), stored_score=f"{push['score']:.4f}", stored_rank=ordinal(int(push["rank"]), lang())))
        st.page_link(WHY_PAGE, label=tr("review.open_why"), icon=":material/psychology_alt:",
                     query_params=why_params(str(push["user_id"]), str(push["item_id"]), scenario, k, lang()))
