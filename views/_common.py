"""Thin helpers every page shares: language, the cached read-only store, cached queries, the sidebar.

Pages call `tr(key)` for words, `open_store()` once at the top (it shows a clear
message and stops the page when the database is missing, locked, not a ScenePush
file or empty), then `query(name, ...)` for any `recsys_core.store.analytics`
query: results are cached per database file version and arguments.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd  # before plotly: see docs/pitfalls.md (partially initialised pandas on a fresh server)
import duckdb
import streamlit as st

from recsys_core.context import SceneField, scene_field
from recsys_core.i18n import DEFAULT_LANGUAGE, LANGUAGE_NAMES, LANGUAGES, TRANSLATIONS, format_int, label, markdown_text, t, t_markdown
from recsys_core.store import DatabaseLockedError, analytics, connect, resolve_db_path
from recsys_core.store import scene as store_scene
from recsys_core.store import turns

APP_ROOT = Path(__file__).resolve().parents[1]
LANG_KEY = "lang"
MODEL_KEY = "model_dir"
# The analytics functions pages may call through `query` (all read-only).
QUERIES = frozenset(
    {
        "database_stats",
        "filter_options",
        "behavior_counts",
        "daily_events",
        "hour_weekday",
        "scene_funnel",
        "conversion_by_hour",
        "top_items",
        "top_categories",
        "scene_mix",
        "active_shoppers",
        "shopper_timeline",
    }
)


# --- language ----------------------------------------------------------------------------


def lang() -> str:
    return st.session_state.get(LANG_KEY, DEFAULT_LANGUAGE)


def tr(key: str, **values: object) -> str:
    """`recsys_core.i18n.t` in the session's language."""
    return t(key, lang(), **values)


def tr_md(key: str, **values: object) -> str:
    """`tr` for elements that render Markdown (st.warning, st.caption, st.success, st.markdown, headers):
    every value shows as its plain text, never as Markdown or HTML."""
    return t_markdown(key, lang(), **values)


def code(value: object) -> str:
    """``value`` as a Markdown code span (rendered literally; backticks cannot close it)."""
    return "`" + " ".join(str(value).replace("`", "ʼ").split()) + "`"


def plot_text(value: object) -> str:
    """``value`` for plotly text (names, axis categories, hover text): its tags shown, not applied."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def vocab(field: str, value: object) -> str:
    """Display name of a vocabulary value (a behaviour, a weekday, a scene value of the data)."""
    return label(field, value, lang())


def vocab_formatter(field: str) -> Callable[[object], str]:
    """A widget `format_func` for vocabulary values, bound to this run's language.

    Widgets may call their format function outside the script run (AppTest does),
    where session state is unavailable, so the language is fixed when it is made.
    """
    current = lang()
    return lambda value: label(field, value, current)


def text_formatter(prefix: str) -> Callable[[object], str]:
    """A widget `format_func` showing `tr(f"{prefix}.{value}")`, bound to this run's language."""
    current = lang()
    return lambda value: t(f"{prefix}.{value}", current)


def language_switch() -> None:
    """中文 / English in the sidebar; remembered in session state and in the `lang` query parameter."""
    if LANG_KEY not in st.session_state:
        wanted = st.query_params.get(LANG_KEY)
        st.session_state[LANG_KEY] = wanted if wanted in LANGUAGES else DEFAULT_LANGUAGE
    st.sidebar.radio(
        t("sidebar.language", lang()), LANGUAGES, key=LANG_KEY, format_func=LANGUAGE_NAMES.get, horizontal=True
    )
    # Page switches drop query parameters: set it again on every run so a copied URL keeps the language.
    st.query_params[LANG_KEY] = lang()


# --- the store ---------------------------------------------------------------------------


def db_path() -> Path:
    return resolve_db_path(None)


def _db_version(path: Path) -> tuple[int, int]:
    """Changes whenever the file (or its write-ahead log) changes, so cached results go stale with it."""
    def mtime(p: Path) -> int:
        return p.stat().st_mtime_ns if p.exists() else 0

    return mtime(path), mtime(Path(f"{path}.wal"))


@st.cache_resource(show_spinner=False)
def _connection(path: str) -> duckdb.DuckDBPyConnection:
    """One read-only connection per database file for the whole server; queries use a cursor each.

    Read-only, so the CLI can read the same file while the app runs (DuckDB allows
    many readers or one writer). Failures are not cached: the next run tries again.
    """
    return connect(path, read_only=True)


# Held while this process writes the file. DuckDB opens a file in one mode per process, so while a write
# is open every read would fail with "different configuration" (and show "locked"); reads wait instead.
_WRITING = threading.Lock()
WRITE_WAIT_S = 10.0


def shared_connection(path: str) -> duckdb.DuckDBPyConnection:
    """The shared read-only connection, after any write of this process has finished (at most ``WRITE_WAIT_S``)
    and any write turn of another process (the API merging events, a push) is over (`recsys_core.store.turns`)."""
    if _WRITING.acquire(timeout=WRITE_WAIT_S):
        _WRITING.release()
    _watch_turns(path)
    deadline = time.monotonic() + WRITE_WAIT_S
    while True:
        if turns.writer_waiting(path):
            release_store()
            turns.wait_for_writer(path, max(0.0, deadline - time.monotonic()))
        try:
            return _connection(path)
        except DatabaseLockedError:  # a writer took its turn between the check and the open
            if time.monotonic() > deadline or not turns.writer_waiting(path):
                raise


_WATCHED: set[str] = set()
_WATCH_LOCK = threading.Lock()
_WATCHER: list[threading.Thread] = []
TURN_POLL_S = 0.05


def _watch_turns(path: str) -> None:
    """Have the watcher thread (one per server, started here once) close the shared connection whenever
    another process wants a write turn on ``path``, so an idle studio never keeps the API from storing
    events or pushes. A file that no longer exists is dropped from the watch."""
    with _WATCH_LOCK:
        _WATCHED.add(path)
        if not _WATCHER:
            _WATCHER.append(threading.Thread(target=_watch, name="store-turns", daemon=True))
            _WATCHER[0].start()


def _watch() -> None:
    while True:
        time.sleep(TURN_POLL_S)
        with _WATCH_LOCK:
            paths = list(_WATCHED)
        for path in paths:
            if not Path(path).exists():
                with _WATCH_LOCK:
                    _WATCHED.discard(path)
            elif turns.writer_waiting(path):
                release_store()


def release_store() -> None:
    """Close the cached connection (e.g. to let another program write, or before writing yourself)."""
    _connection.clear()


@contextmanager
def read_cursor(path: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor of the shared connection for this thread, closed afterwards (for queries outside `query`)."""
    cur = shared_connection(path).cursor()
    try:
        yield cur
    finally:
        cur.close()


@contextmanager
def write_cursor(path: str, wait_s: float = 3.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-write connection for a page that writes (the Scenario page's pushes).

    A process opens a DuckDB file in one mode at a time, so the shared read-only
    connection is released first and reopened by the next read (reads wait for it).
    While a query of another session, or another process that takes turns (the API),
    still holds the file, opening waits up to ``wait_s``. Raises `DatabaseLockedError`
    when the file stays held (a program outside the turn protocol).
    """
    if not _WRITING.acquire(timeout=wait_s):
        raise DatabaseLockedError(f"{path}: another write of this server did not finish within {wait_s:.0f} s")
    try:
        release_store()
        # A write turn shared with other processes (the API): they close their connections while it is wanted.
        with turns.write_turn(path, wait_s) as con:
            yield con
    finally:
        _WRITING.release()


@contextmanager
def exclusive_store(path: str, wait_s: float = 3.0) -> Iterator[None]:
    """No connection of this server holds the file while the block runs (forgetting a shopper replaces the file).

    Like `write_cursor`, but the block opens (and closes) the file itself. Raises `DatabaseLockedError` when
    this server could not let go of the file within ``wait_s`` or another process holds it.
    """
    with write_cursor(path, wait_s) as con:
        con.close()  # the writable open proved nothing else holds the file; the block reopens it
        yield


@dataclass(frozen=True)
class Store:
    """The open database as pages see it: its path, version (cache key) and summary statistics."""

    path: str
    version: tuple[int, int]
    stats: dict[str, Any]


def _store_problem(path: Path) -> tuple[str, str] | None:
    """(level, message) describing why the database cannot be used, or None when it can."""
    if not path.exists():
        return "info", tr_md("db.missing", path=path)
    try:
        cur = shared_connection(str(path)).cursor()
    except DatabaseLockedError:
        return "error", tr_md("db.locked", path=path)
    except duckdb.ConnectionException as exc:
        # The same process already holds the file read-write (e.g. a page writing pushes).
        if "different configuration" in str(exc):
            return "error", tr_md("db.locked", path=path)
        return "error", tr_md("db.error", path=path, error=exc)
    except duckdb.CatalogException as exc:  # opened, but without the store's tables
        return "error", tr_md("db.not_scenepush", path=path, error=exc)
    except duckdb.Error as exc:
        return "error", tr_md("db.error", path=path, error=exc)
    try:
        cur.execute("SELECT count(*) FROM events").fetchone()
    except duckdb.CatalogException as exc:
        return "error", tr_md("db.not_scenepush", path=path, error=exc)
    finally:
        cur.close()
    return None


def store_status() -> Store | str:
    """The usable store, or the message saying why there is none (nothing drawn)."""
    path = db_path()
    problem = _store_problem(path)
    if problem:
        return problem[1]
    version = _db_version(path)
    return Store(str(path), version, _cached("database_stats", str(path), version, (), ()))


def open_store(require_events: bool = True) -> Store:
    """The store for this page; otherwise a clear message (and a retry button) and the page stops."""
    path = db_path()
    problem = _store_problem(path)
    if problem:
        level, message = problem
        getattr(st, level)(message)
        if level == "error" and st.button(tr("db.retry"), key="db_retry"):
            release_store()
            st.rerun()
        st.stop()
    version = _db_version(path)
    store = Store(str(path), version, _cached("database_stats", str(path), version, (), ()))
    if require_events and not store.stats["events"]:
        st.info(tr_md("db.empty", path=path))
        st.stop()
    return store


@st.cache_data(show_spinner=False, max_entries=512)
def _cached(name: str, path: str, version: tuple[int, int], args: tuple, kwargs: tuple) -> Any:
    """Run one analytics query on its own cursor; cached per (query, file, file version, arguments)."""
    cur = shared_connection(path).cursor()
    try:
        return getattr(analytics, name)(cur, *args, **dict(kwargs))
    finally:
        cur.close()


def query(store: Store, name: str, *args: Any, **kwargs: Any) -> Any:
    """`analytics.<name>(cursor, *args, **kwargs)`, cached. Arguments must be hashable values."""
    if name not in QUERIES:
        raise ValueError(f"unknown analytics query {name!r}; choose from {sorted(QUERIES)}")
    return _cached(name, store.path, store.version, args, tuple(sorted(kwargs.items())))


# --- the model ---------------------------------------------------------------------------


@st.cache_data(show_spinner=False)
def _model_metadata(model_dir: str, mtime: int) -> dict[str, Any]:
    """What the sidebar shows about a model folder (metadata only; the weights are not loaded)."""
    from recsys_core import registry

    return registry.read_metadata(model_dir)


def models_root() -> Path:
    """Where the studio finds (and trains) model folders: the app's `models/`, or `$SCENEPUSH_MODELS_DIR`."""
    chosen = os.environ.get("SCENEPUSH_MODELS_DIR")
    return Path(chosen) if chosen else APP_ROOT / "models"


def model_dirs() -> list[Path]:
    """Every model folder: the bundled one first, then those under `models_root()` (`recommend.list_model_dirs`).
    `$SCENEPUSH_MODEL_DIR` names a folder to serve first instead of the bundled one (your own model)."""
    from recsys_core import recommend

    found = recommend.list_model_dirs(models_root())
    chosen = os.environ.get("SCENEPUSH_MODEL_DIR")
    if chosen:
        found = [Path(chosen)] + [d for d in found if d.resolve() not in (Path(chosen).resolve(), recommend.BUNDLED_MODEL.resolve())]
    return found


def model_key(path: Path | str) -> str:
    """How a model folder appears in a URL: relative to the app when it lives inside it."""
    try:
        return str(Path(path).resolve().relative_to(APP_ROOT))
    except ValueError:
        return str(path)


def model_path(key: str) -> Path:
    p = Path(key)
    return p if p.is_absolute() else APP_ROOT / p


def model_mtime(key: str) -> int:
    return (model_path(key) / "metadata.json").stat().st_mtime_ns


@st.cache_resource(show_spinner=False, max_entries=8)
def _load_model(path: str, mtime: int) -> Any:
    """One loaded model per folder and metadata version for the whole server, shared by every page.
    `recommend.load_model` also sets torch to one thread (stable latency on shared cores)."""
    from recsys_core import recommend

    return recommend.load_model(path)


def loaded_model(key: str) -> Any:
    """The model folder ``key`` (see `model_key`), loaded once per server; raises on an unreadable folder."""
    return _load_model(str(model_path(key)), model_mtime(key))


def active_model_dir() -> Path | None:
    """The model the sidebar shows as active (the bundled one unless the user picked another), or None."""
    choice = st.session_state.get(MODEL_KEY)
    dirs = model_dirs()
    if choice and Path(choice) in dirs:
        return Path(choice)
    return dirs[0] if dirs else None


# --- the data's scene fields -------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=32)
def _scene_schema(path: str, version: tuple[int, int]) -> list[SceneField]:
    with read_cursor(path) as cur:
        return store_scene.scene_fields(cur)


def scene_schema(store: "Store") -> list[SceneField]:
    """The data's scene fields (names, labels, decision-time flags), in schema order."""
    return _scene_schema(store.path, store.version)


def field_label(name: str, schema: list[SceneField] | None = None) -> str:
    """Display name of a context field: a scene field's own label, else the time field's word."""
    for f in schema or ():
        if f.name == name:
            return f.label(lang())
    if f"why.context.{name}" in TRANSLATIONS:
        return tr(f"why.context.{name}")
    try:
        return scene_field(name).label(lang())
    except ValueError:
        return str(name)


def scene_controls(options: dict[str, Any]) -> list[str]:
    """Scene fields that get a control: those with more than one value in the data."""
    return [f for f in options.get("scene_fields", []) if len(options["scene"].get(f, [])) > 1]


def reads_note(context_fields: tuple[str, ...], schema: list[SceneField]) -> str:
    """"Reads: hour, weekday, …; ignores: <fields>" for a model's target-context fields."""
    low = (lambda x: x.lower()) if lang() == "en" else (lambda x: x)
    read = [low(field_label(f, schema)) for f in context_fields]
    ignored = [low(field_label(f.name, schema)) for f in schema if f.name not in context_fields]
    text = tr("model.reads", fields=", ".join(read) or "–")
    if ignored:
        text += " · " + tr("model.ignores", fields=", ".join(ignored))
    return text


def _metric_line(meta: dict[str, Any]) -> str:
    """NDCG@10 on the held-out test targets, with the protocol it was measured under."""
    metrics = meta.get("metrics") or {}
    protocol = meta.get("protocol") or metrics.get("protocol")
    ndcg = (metrics.get("test") or {}).get("NDCG@10", metrics.get("NDCG@10"))
    if ndcg is None or not protocol:
        return tr("sidebar.model_no_metric")
    if meta.get("cut"):  # time_split: the protocol says its cut
        protocol = tr("ts.protocol_cut", protocol=protocol, cut=meta["cut"])
    return tr("sidebar.model_metric", value=f"{ndcg:.3f}", protocol=tr("protocol.full_ranking", protocol=protocol))


@st.cache_data(show_spinner=False)
def store_events_hash(path: str, version: tuple[int, int]) -> str:
    """The store's event fingerprint, to tell whether a model was trained on this very data."""
    from recsys_core.store.events import data_fingerprint

    cur = shared_connection(path).cursor()
    try:
        return data_fingerprint(cur)["events_hash"]
    finally:
        cur.close()


def _trained_on_line(meta: dict[str, Any], store: Store | None) -> str:
    data = meta.get("data_fingerprint") or {}
    if not data:
        return tr("sidebar.model_trained_on", value="–")
    cutoff = (meta.get("training_cutoff") or data.get("last_ts") or "")[:10]
    text = tr(
        "sidebar.trained_on_data",
        events=format_int(data.get("n_events")),
        shoppers=format_int(data.get("n_users")),
        cutoff=cutoff or "–",
    )
    if store is not None and data.get("events_hash"):
        same = store_events_hash(store.path, store.version) == data["events_hash"]
        text += " · " + tr("sidebar.same_data" if same else "sidebar.other_data")
    return tr("sidebar.model_trained_on", value=text)


def _model_sidebar(store: Store | None) -> None:
    st.sidebar.subheader(tr("sidebar.model"))
    try:
        dirs = model_dirs()
    except (ImportError, AttributeError):  # no registry API yet: nothing to show
        dirs = []
    if not dirs:
        st.sidebar.caption(tr("sidebar.no_model"))
        return
    if len(dirs) > 1:
        st.sidebar.selectbox(tr("sidebar.model_pick"), [str(d) for d in dirs], key=MODEL_KEY, format_func=lambda d: Path(d).name)
    model_dir = active_model_dir()
    try:
        meta = _model_metadata(str(model_dir), (model_dir / "metadata.json").stat().st_mtime_ns)
    except (OSError, ValueError) as exc:
        st.sidebar.warning(tr("sidebar.model_error", error=exc))
        return
    lines = [
        tr_md("sidebar.model_type", value=meta.get("model_type", "–")),
        tr("sidebar.model_version", value=code(meta.get("version", "–"))),
        _trained_on_line(meta, store),
        _metric_line(meta),
    ]
    if "context_fields" in meta:
        lines.append(markdown_text(reads_note(tuple(meta["context_fields"]), scene_schema(store) if store else [])))
    st.sidebar.markdown("  \n".join(lines))
    if store is not None and needs_retrain(meta, store):
        st.sidebar.warning(tr("privacy.retrain"), icon=":material/person_remove:")


@st.cache_data(show_spinner=False, max_entries=32)
def erasure_records(path: str, version: tuple[int, int]) -> list[dict[str, Any]]:
    """The database's erasures (`recsys_core.store.privacy.erasures`), cached per file version."""
    from recsys_core.store.privacy import erasures

    with read_cursor(path) as cur:
        return erasures(cur)


def needs_retrain(meta: dict[str, Any], store: Store) -> bool:
    """Whether the model (its metadata) was trained on data of a shopper erased from this database since."""
    from recsys_core.privacy import trained_on_erased_data

    return trained_on_erased_data(meta, erasure_records(store.path, store.version))


# --- sidebar -----------------------------------------------------------------------------


def sidebar() -> None:
    """Language switch, the database and the active model. Called by `app.py` on every run."""
    language_switch()
    st.sidebar.subheader(tr("sidebar.database"))
    status = store_status()
    if isinstance(status, str):
        st.sidebar.caption(code(db_path()))
        st.sidebar.warning(tr("sidebar.db_unavailable"))
    else:
        s = status.stats
        lines = [code(status.path), tr("sidebar.db_events", events=format_int(s["events"]), shoppers=format_int(s["shoppers"]))]
        if s["first_event_local"]:
            lines.append(
                tr("sidebar.db_range", start=s["first_event_local"][:10], end=s["last_event_local"][:10], tz=s["timezone"])
            )
        st.sidebar.caption("  \n".join(lines))
    _model_sidebar(None if isinstance(status, str) else status)


_COUNT_COLUMNS = {"events", "pv", "fav", "cart", "buy", "shoppers"}
_RATE_COLUMNS = {"fav_cart_rate", "buy_rate", "share", "share_of_views"}


def show_table(df: pd.DataFrame, name: str, key: str, height: int | str = "auto") -> None:
    """A table with translated headers, thousands separators and percentages, and its CSV download.

    The CSV holds the numbers themselves (rates as fractions), under the same translated headers.
    """
    headers = {c: tr(f"col.{c}") for c in df.columns if f"col.{c}" in TRANSLATIONS}
    shown = df.rename(columns=headers)
    config: dict[str, Any] = {}
    rate_headers = []
    for column in df.columns:
        header = headers.get(column, column)
        if column in _COUNT_COLUMNS:
            config[header] = st.column_config.NumberColumn(header, format="%,d")
        elif column in _RATE_COLUMNS:
            rate_headers.append(header)  # formatted by the Styler: one decimal always ("2.0%", not "2%")
        elif column == "price":
            config[header] = st.column_config.NumberColumn(header, format="¥%,.2f")
        elif column == "title":  # product titles are long: give them the room
            config[header] = st.column_config.TextColumn(header, width="large")
    styled = shown.style.format("{:.1%}", subset=rate_headers, na_rep="–") if rate_headers else shown
    st.dataframe(styled, hide_index=True, column_config=config, height=height, key=key)
    download_csv(shown, name, key=f"{key}_csv")


def download_csv(df: pd.DataFrame, name: str, key: str) -> None:
    """A CSV download of a table; UTF-8 with a byte-order mark so spreadsheet apps read Chinese correctly."""
    st.download_button(
        tr("common.download_csv"),
        df.to_csv(index=False).encode("utf-8-sig"),
        file_name=f"{name}.csv",
        mime="text/csv",
        key=key,
        icon=":material/download:",
    )


def show_chart(fig: Any, key: str, height: int = 380, on_select: bool = False) -> Any:
    """Draw a plotly figure full-width with room for its axis titles and legend (no clipped labels).

    Margins the figure already sets (e.g. room on the right for facet labels) are kept. With ``on_select``
    a click on a point reruns the page and the selection event is returned.
    """
    margin = {"l": 10, "r": 10, "t": 40, "b": 10}
    margin.update({k: v for k, v in fig.layout.margin.to_plotly_json().items() if v is not None})
    fig.update_layout(
        height=height,
        margin=margin,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0, "title_text": ""},
        separators=".,",
        hoverlabel={"namelength": -1},
    )
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    if on_select:
        return st.plotly_chart(fig, key=key, config={"displaylogo": False}, on_select="rerun", selection_mode="points")
    st.plotly_chart(fig, key=key, config={"displaylogo": False})
    return None
