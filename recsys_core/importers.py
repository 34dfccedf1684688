"""Behaviour logs → the store: Taobao UserBehavior, Tianchi mobile, RetailRocket, MovieLens, generic CSV/Parquet.

What each format means lives here (which field sits where, how ids, times and
behaviours are written); all SQL lives in `store.ingest`, which reads the file
with DuckDB's own readers and validates every row in SQL.

Guarantees of `import_file`:
- rows read = rows imported + rows quarantined; every rejected row is kept in
  `quarantine` with its raw text and a reason naming the file, line and field.
- One transaction: a run that fails midway leaves the database as it was.
- A run is identified by the file's content (SHA-256), format and options;
  importing the same thing again imports nothing and says so. Identical rows
  inside one file are distinct events and are all kept (Tianchi's hour-rounded
  times repeat legitimately).
- Events keep the file's order: ties on time are broken by line (`events.seq`).
- Scene fields are whatever the file brings: `--scene COLUMN` (or NAME=COLUMN[:N]) makes any column a
  scene field of the data's schema (`recsys_core.context`); generic files' columns named like a
  well-known field (device, channel, ...) are taken as that field. Other columns are ignored.

Before DuckDB sees a CSV file, one streaming pass hashes it and checks that it
is clean text (UTF-8, no NUL bytes, one kind of line ending, no line over
`ingest.MAX_LINE_BYTES`). A file that is not gets a sanitised copy in which
each bad line is escaped or truncated and marked for quarantine, so DuckDB
always reads line *n* of the file as row *n* and nothing is dropped.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from recsys_core import privacy, store
from recsys_core.context import WELL_KNOWN, SceneField, check_field_name, scene_field
from recsys_core.store import ingest
from recsys_core.store import privacy as store_privacy
from recsys_core.store.ingest import Column, RowPlan
from recsys_core.store.scene import scene_fields as stored_scene_fields

log = logging.getLogger(__name__)

FORMATS = ("taobao", "tianchi", "retailrocket", "movielens", "csv", "parquet")
# Generic fields; the well-known scene fields (`context.WELL_KNOWN`) are also taken from a column of their name.
CORE_FIELDS = ("user", "item", "ts", "behavior", "category", "price")
FIELDS = CORE_FIELDS + tuple(WELL_KNOWN)
REQUIRED_FIELDS = ("user", "item", "ts")
DEFAULT_TZ = "Asia/Shanghai"

# Header names taken as a generic field besides the field's own name (case-insensitive).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "user": ("user_id", "userid", "visitorid", "customer_id"),
    "item": ("item_id", "itemid", "product_id", "sku"),
    "ts": ("timestamp", "time", "datetime", "event_time"),
    "behavior": ("behaviour", "behavior_type", "event", "event_type", "action"),
    "category": ("category_id", "categoryid", "item_category"),
    "price": (),
    **{name: f.aliases for name, f in WELL_KNOWN.items()},
}

# Behaviour words of generic files (lower-cased) -> pv / fav / cart / buy.
GENERIC_BEHAVIORS: dict[str, str] = {
    "pv": "pv", "view": "pv", "click": "pv", "1": "pv",
    "fav": "fav", "favorite": "fav", "favourite": "fav", "collect": "fav", "2": "fav",
    "cart": "cart", "addtocart": "cart", "add_to_cart": "cart", "3": "cart",
    "buy": "buy", "purchase": "buy", "transaction": "buy", "order": "buy", "4": "buy",
}

# Items files (`--items`) of generic imports: header name -> items column.
ITEM_FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "item": ("item", "item_id", "itemid", "product_id", "sku"),
    "title": ("title", "name"),
    "title_zh": ("title_zh",),
    "category": ("category", "category_id", "categoryid", "item_category"),
    "category_zh": ("category_zh",),
    "brand": ("brand",),
    "price": ("price",),
}

# A geohash column taken as a scene field (`--scene NAME=user_geohash`) keeps a prefix: 4 characters is a
# cell of about 20 × 40 km, city scale. Finer cells make a vocabulary of mostly one-off values that no
# model can learn from. `--scene NAME=COLUMN:N` chooses another length.
GEOHASH_PREFIX = 4

_CHUNK = 8 << 20
_KEEP_OF_LONG_LINE = 1000  # characters of an over-long line kept in quarantine
_BINARY_MAGIC = {
    b"\x1f\x8b": "gzip-compressed",
    b"PK\x03\x04": "a zip archive",
    b"PAR1": "a Parquet file (use --format parquet)",
    b"BZh": "bzip2-compressed",
    b"\xfd7zXZ": "xz-compressed",
    b"\xff\xfe": "UTF-16 text (save it as UTF-8)",
    b"\xfe\xff": "UTF-16 text (save it as UTF-8)",
}


@dataclass(frozen=True)
class _Format:
    """A fixed log format: its columns in file order and how each becomes a store field."""

    name: str
    columns: tuple[str, ...]                 # header names, also the order of a headerless file
    fields: tuple[tuple[str, str, str], ...]  # (out column, kind, source column)
    behavior_codes: dict[str, str] = field(default_factory=dict)
    ts_unit: str = "s"
    events: bool = True  # an events file (else an items file)


TAOBAO = _Format(
    "taobao",
    ("user_id", "item_id", "category_id", "behavior_type", "timestamp"),
    (("user_id", "id_numeric", "user_id"), ("item_id", "id_numeric", "item_id"), ("category", "text", "category_id"),
     ("behavior", "behavior", "behavior_type"), ("ts", "ts_unix", "timestamp")),
    {"pv": "pv", "fav": "fav", "cart": "cart", "buy": "buy"},
)
TIANCHI = _Format(
    "tianchi",
    ("user_id", "item_id", "behavior_type", "user_geohash", "item_category", "time"),
    (("user_id", "id_numeric", "user_id"), ("item_id", "id_numeric", "item_id"), ("behavior", "behavior", "behavior_type"),
     ("category", "text", "item_category"), ("ts", "ts_hour", "time")),
    {"1": "pv", "2": "fav", "3": "cart", "4": "buy"},
)
# MovieLens ratings: u.data (tab, no header), ratings.dat ("::"), ratings.csv (header). A rating is an
# interaction ("pv", as RecBole counts every rating by default); --min-rating keeps only the higher ones.
MOVIELENS = _Format(
    "movielens",
    ("user_id", "item_id", "rating", "timestamp"),
    (("user_id", "id_numeric", "user_id"), ("item_id", "id_numeric", "item_id"), ("rating", "rating", "rating"),
     ("ts", "ts_unix", "timestamp")),
)
MOVIELENS_CSV = _Format(
    "movielens",
    ("userid", "movieid", "rating", "timestamp"),
    (("user_id", "id_numeric", "userid"), ("item_id", "id_numeric", "movieid"), ("rating", "rating", "rating"),
     ("ts", "ts_unix", "timestamp")),
)
MOVIELENS_ITEMS = _Format(
    "movielens_items",
    ("item_id", "title", "category"),
    (("item_id", "id_numeric", "item_id"), ("title", "text", "title"), ("category", "text", "category")),
    events=False,
)
# u.item's 19 genre flags, in file order (the first genre flagged becomes the category).
MOVIELENS_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
                    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
RETAILROCKET = _Format(
    "retailrocket",
    ("timestamp", "visitorid", "event", "itemid", "transactionid"),
    (("ts", "ts_unix", "timestamp"), ("user_id", "id_numeric", "visitorid"), ("behavior", "behavior", "event"),
     ("item_id", "id_numeric", "itemid")),
    {"view": "pv", "addtocart": "cart", "transaction": "buy"},
    ts_unit="ms",
)
TIANCHI_ITEMS = _Format(
    "tianchi_items",
    ("item_id", "item_geohash", "item_category"),
    (("item_id", "id_numeric", "item_id"), ("category", "text", "item_category")),
    events=False,
)
RETAILROCKET_ITEMS = _Format(
    "retailrocket_items",
    ("timestamp", "itemid", "property", "value"),
    (("ts", "ts_unix", "timestamp"), ("item_id", "id_numeric", "itemid"), ("property", "text_required", "property"),
     ("value", "text", "value")),
    ts_unit="ms",
    events=False,
)
FIXED_FORMATS = {f.name: f for f in (TAOBAO, TIANCHI, RETAILROCKET, MOVIELENS, TIANCHI_ITEMS, RETAILROCKET_ITEMS, MOVIELENS_ITEMS)}
_EVENT_EXTRAS = (("category", "text"), ("price", "price"))
_OUT = {"user": "user_id", "item": "item_id"}  # generic field -> column of the checked rows


# --- public API --------------------------------------------------------------------------


def import_file(
    path: str | os.PathLike,
    fmt: str,
    db: str | os.PathLike | None = None,
    items_path: str | os.PathLike | None = None,
    mapping: Sequence[str] | None = None,
    columns: str | None = None,
    sep: str | None = None,
    ts_unit: str = "s",
    tz: str = DEFAULT_TZ,
    scene: Sequence[str] | None = None,
    min_rating: float | None = None,
    pseudonym_key: bytes | None = None,
) -> dict[str, Any]:
    """Import one behaviour log (and optionally its items file) into the store.

    ``scene``: columns to import as scene fields, each ``COLUMN`` or ``NAME=COLUMN`` with an optional
    ``:N`` (keep the first N characters). ``min_rating`` (MovieLens): ratings below it are set aside in
    quarantine with that reason, so rows read = imported + quarantined still holds.
    ``pseudonym_key``: store every shopper id as its keyed pseudonym (`recsys_core.privacy`); a database
    pseudonymised once refuses imports without its key (nothing is written then).

    Returns rows_read, rows_imported, rows_quarantined, run_id, file, format,
    already_imported, and status: "ok", "partial" (some rows quarantined),
    "rejected" (all of them) or "already_imported"; for `--items` the same
    figures under "items_file".
    Raises FileNotFoundError / IsADirectoryError / ValueError with a clear
    message for input that cannot be imported at all (nothing is written then).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if ts_unit not in ("s", "ms"):
        raise ValueError(f"--ts-unit must be 's' or 'ms', got {ts_unit!r}")
    mapping = list(mapping or [])
    if (mapping or columns) and fmt not in ("csv", "parquet"):
        raise ValueError(f"--map and --columns apply to --format csv or parquet; {fmt} has fixed columns")
    if columns and fmt == "parquet":
        raise ValueError("--columns names the columns of a headerless CSV; a Parquet file names its own")
    if sep is not None:
        sep = {"\\t": "\t", "tab": "\t"}.get(sep, sep)
        if len(sep) != 1 or sep in "\"\r\n":
            raise ValueError(f"--sep must be one character (not a quote or newline), got {sep!r}")
    if min_rating is not None and fmt != "movielens":
        raise ValueError("--min-rating applies to --format movielens")
    parsed_map = _parse_mapping(mapping)
    scene_specs = _parse_scene_specs(scene or [])
    source = _check_path(path)
    items_source = _check_path(items_path) if items_path else None

    started = time.perf_counter()
    con = store.connect(db)
    try:
        if not ingest.timezone_exists(con, tz):
            raise ValueError(f"unknown timezone {tz!r}; use an IANA name such as Asia/Shanghai or Europe/Berlin")
        with tempfile.TemporaryDirectory(prefix="scenepush-import-") as work, ingest.transaction(con):
            _check_pseudonyms(con, pseudonym_key, store.resolve_db_path(db))
            options = {"tz": tz, "sep": sep, "map": sorted(parsed_map.items()), "columns": columns,
                       "ts_unit": ts_unit if fmt in ("csv", "parquet") else None}
            if scene_specs:  # only when given, so runs recorded before scene options keep their ids
                options["scene"] = [list(spec) for spec in scene_specs]
            if min_rating is not None:
                options["min_rating"] = float(min_rating)
            result = _import_events(con, source, fmt, options, parsed_map, Path(work), pseudonym_key)
            wrote = not result["already_imported"]
            if items_source is not None:
                items = result["items_file"] = _import_items(con, items_source, fmt, sep, Path(work))
                result["warnings"] += items.pop("warnings")
                wrote = wrote or not items["already_imported"]
            if wrote:
                previous_tz = store.get_meta(con, "timezone")
                if previous_tz and previous_tz != tz:
                    result["warnings"].append(f"the store's timezone was {previous_tz}; it is now {tz} (this import's --tz)")
                store.set_meta(con, "timezone", tz)
            ingest.drop_staging(con)
    finally:
        con.close()
    result["seconds"] = round(time.perf_counter() - started, 3)
    for warning in result["warnings"]:
        log.warning("%s", warning)
    return result


def benchmark_import(db: str | os.PathLike | None = None, n_rows: int = 1_000_000) -> dict[str, Any]:
    """Import a generated 1,000,000-row generic CSV into a temporary database and time it.

    `db` is ignored on purpose: the benchmark never writes into a real store.
    """
    with tempfile.TemporaryDirectory(prefix="scenepush-bench-") as work:
        csv_path = Path(work) / "events.csv"
        ingest.write_benchmark_csv(str(csv_path), n_rows)
        t0 = time.perf_counter()
        result = import_file(csv_path, fmt="csv", db=Path(work) / "bench.duckdb")
        seconds = time.perf_counter() - t0
        size_mb = csv_path.stat().st_size / 1e6
    if result["rows_imported"] != n_rows:
        raise RuntimeError(f"import benchmark imported {result['rows_imported']} of {n_rows} rows: {result.get('quarantine_sample')}")
    return {
        "import_1m_rows_s": round(seconds * 1_000_000 / n_rows, 3),
        "import_rows_per_s": round(n_rows / seconds),
        "import_bench_rows": n_rows,
        "import_bench_file_mb": round(size_mb, 1),
    }


# --- one file -> one run -----------------------------------------------------------------


@dataclass(frozen=True)
class _Staged:
    """A file staged for checking: its plan, its rows, and how to name and count them."""

    plan: RowPlan
    rows: ingest.Rows
    unit: str = "line"              # how reasons name a row: "line" (text files) or "row" (Parquet)
    non_header_lines: int | None = None  # text files: lines but the header (rows read + blank lines)
    scene: tuple[SceneField, ...] = ()   # the file's scene fields (columns of the plan named like them)


def _check_pseudonyms(con, key: bytes | None, db: Path) -> None:
    """Refuse an import that would mix raw ids and pseudonyms (or two keys); mark a first pseudonymised import."""
    state = store_privacy.pseudonym_state(con)
    privacy.check_import_key(state, key, store_privacy.holds_shoppers(con) if state is None else False, str(db))
    if key is not None and state is None:
        store_privacy.set_pseudonym_state(con, privacy.SCHEME, privacy.key_check_value(key))


def _import_events(con, source: Path, fmt: str, options: dict, parsed_map: dict[str, str], work: Path,
                   pseudonym_key: bytes | None = None) -> dict[str, Any]:
    specs = [tuple(s) for s in options.get("scene", [])]

    def stage(scan: _FileScan) -> _Staged:
        if fmt == "parquet":
            return _parquet_events(con, source, parsed_map, options["tz"], options["ts_unit"], specs)
        return _stage_csv_events(con, source, scan, fmt, options, parsed_map, work, specs)

    def write(run_id: str, staged: _Staged) -> dict[str, int]:
        return ingest.write_events(con, run_id, staged.scene)

    pseudonymise = (lambda ids: privacy.pseudonyms(ids, pseudonym_key)) if pseudonym_key is not None else None
    result = _import_run(con, source, fmt, options, stage, write, text=fmt != "parquet", pseudonymise=pseudonymise)
    result["timezone"] = options["tz"]
    result["pseudonymised"] = pseudonym_key is not None
    return result


def _import_items(con, source: Path, fmt: str, sep: str | None, work: Path) -> dict[str, Any]:
    """An items file is its own run (its own content hash and accounting) in the same transaction."""
    if fmt in ("tianchi", "retailrocket", "movielens"):
        kind = f"{fmt}_items"
    else:
        kind = "parquet_items" if source.suffix.lower() in (".parquet", ".pq") else "csv_items"

    def stage(scan: _FileScan) -> _Staged:
        if kind == "movielens_items":  # normalised line for line into a tab-separated copy (see _movielens_items)
            copy = _movielens_items(source, work)
            text = _stage_text(con, copy, _scan_file(copy, True), "\t", work, sniff=False)
            plan, has_header = _fixed_plan(MOVIELENS_ITEMS, text.first_line, "\t", "UTC", source)
            skip = text.first_line_no if has_header else None
            rows = ingest.split_lines(con, sep="\t", skip_line=skip, quoted=False)
            return _Staged(plan, rows, non_header_lines=text.lines - (1 if skip else 0))
        if kind == "parquet_items":
            names = ingest.parquet_columns(con, str(source))
            picked = _resolve_item_columns(names, source)
            rows = ingest.parquet_rows(str(source), [names[i - 1] for i in picked.values()])
            plan = RowPlan(tuple(_item_column(f, j + 1, names[i - 1]) for j, (f, i) in enumerate(picked.items())))
            return _Staged(plan, rows, unit="row")
        text = _stage_text(con, source, scan, sep, work, sniff=kind == "csv_items")
        if kind in FIXED_FORMATS:
            plan, has_header = _fixed_plan(FIXED_FORMATS[kind], text.first_line, text.sep, "UTC", source)
        else:
            names = _split_header(text.first_line, text.sep)
            picked = _resolve_item_columns(names, source)
            plan = RowPlan(tuple(_item_column(f, i, names[i - 1]) for f, i in picked.items()),
                           n_fields=len(names), sep=text.sep)
            has_header = True
        skip = text.first_line_no if has_header else None
        rows = ingest.split_lines(con, sep=text.sep, skip_line=skip, quoted=kind == "csv_items")
        return _Staged(plan, rows, non_header_lines=text.lines - (1 if skip else 0))

    def write(run_id: str, staged: _Staged) -> dict[str, int]:
        if kind == "retailrocket_items":
            return ingest.write_item_properties(con)
        return ingest.write_items(con)

    return _import_run(con, source, kind, {"sep": sep}, stage, write, text=kind != "parquet_items")


def _import_run(con, source: Path, kind: str, options: dict, stage, write, text: bool,
                pseudonymise: Callable[[list[str]], list[str]] | None = None) -> dict[str, Any]:
    """Stage, check and write one file as one import run, unless this exact run was done before.

    ``pseudonymise`` (raw ids -> pseudonyms) replaces the shopper ids of the checked rows before anything is written."""
    scan = _scan_file(source, text)
    sha = scan.sha256
    run_id = _run_id(sha, kind, options)
    result: dict[str, Any] = {"file": str(source), "format": kind, "run_id": run_id, "warnings": []}
    existing = ingest.find_run(con, run_id)
    if existing is not None:
        return {**result, **_already(existing)}
    for earlier in ingest.runs_of_file(con, sha):
        result["warnings"].append(
            f"{source.name} was imported before as run {earlier['run_id']} ({earlier['format']}, other options); "
            "its rows are now in the store twice"
        )
    started_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    try:
        staged = stage(scan)
        ingest.check_rows(con, staged.plan, staged.rows)
    except ingest.ReadError as exc:
        raise ValueError(f"{source} could not be read: {exc}") from exc
    counts = ingest.checked_counts(con)
    if counts["rows_read"] == 0:
        raise ValueError(f"{source} has no data rows (only a header or blank lines): nothing to import")
    if pseudonymise is not None:
        ingest.pseudonymise_checked(con, pseudonymise)
    figures = write(run_id, staged)
    sample = ingest.write_quarantine(con, run_id, source.name, staged.unit)
    status = _status(counts)
    ingest.record_run(con, run_id=run_id, source=str(source.resolve()), fmt=kind, file_sha256=sha,
                      started_at=started_at, counts=counts, status=status)
    log.info("imported %s (%s): %s", source, kind, counts)
    result.update(status=status, already_imported=False, **counts, **figures, quarantine_sample=sample)
    if staged.non_header_lines is not None:
        result["blank_lines_skipped"] = staged.non_header_lines - counts["rows_read"]
    return result


# --- staging and plans -------------------------------------------------------------------


@dataclass(frozen=True)
class _StagedText:
    first_line: str      # the first non-blank line (a header, or the first row)
    first_line_no: int
    sep: str             # as given, or sniffed from the first line
    lines: int           # lines in the file


def _stage_csv_events(con, source: Path, scan: _FileScan, fmt: str, options: dict, parsed_map: dict[str, str],
                      work: Path, specs: list[tuple]) -> _Staged:
    text = _stage_text(con, source, scan, options["sep"], work, sniff=fmt not in FIXED_FORMATS)
    if fmt == "movielens":  # u.data (tab), ratings.dat ("::") or ratings.csv (comma, header)
        sep = "::" if "::" in text.first_line else "\t" if "\t" in text.first_line else ","
        text = _StagedText(text.first_line, text.first_line_no, sep, text.lines)
        fixed = MOVIELENS_CSV if sep == "," else MOVIELENS
        plan, has_header, scene = _fixed_plan(fixed, text.first_line, sep, options["tz"], source, specs, options.get("min_rating"))
        quoted = False
    elif fmt in FIXED_FORMATS:
        plan, has_header, scene = _fixed_plan(FIXED_FORMATS[fmt], text.first_line, text.sep, options["tz"], source, specs)
        quoted = False
    else:
        has_header = not options["columns"]
        if has_header:
            names, where = _split_header(text.first_line, text.sep), "the header"
        else:
            names, where = [c.strip() for c in options["columns"].split(",")], "--columns"
        plan, scene = _csv_generic_plan(names, parsed_map, text.sep, options["tz"], options["ts_unit"], source, where, specs)
        quoted = True
    skip = text.first_line_no if has_header else None
    rows = ingest.split_lines(con, sep=text.sep, skip_line=skip, quoted=quoted)
    return _Staged(plan, rows, non_header_lines=text.lines - (1 if skip else 0), scene=scene)


def _stage_text(con, source: Path, scan: _FileScan, sep: str | None, work: Path, sniff: bool) -> _StagedText:
    """Stage a text file's lines (sanitised first when it is not clean text).

    Without `sep`, a generic file's separator is sniffed from its first line
    (`sniff`); the fixed formats are comma-separated.
    """
    read_path, problems = source, []
    if not scan.clean:
        fd, name = tempfile.mkstemp(dir=work, suffix=".csv")
        os.close(fd)
        read_path = Path(name)
        problems = _sanitise(source, read_path)
        log.warning("%s has %d line(s) that are not clean text; they will be quarantined", source, len(problems))
    ingest.stage_lines(con, str(read_path), new_line=scan.new_line if scan.clean else "\\n",
                       expected_lines=scan.lines, line_problems=problems)
    first = ingest.first_content_line(con)
    if first is None:
        raise ValueError(f"{source} is empty: it has no lines with content, nothing to import")
    line_no, line = first
    if sep is None and sniff:
        counts = {c: line.count(c) for c in (",", "\t", ";", "|")}
        sep = max(counts, key=counts.get) if max(counts.values()) > 0 else ","
    return _StagedText(line, line_no, sep or ",", scan.lines)


def _fixed_plan(fmt: _Format, first_line: str, sep: str, tz: str, source: Path, specs: Sequence[tuple] = (),
                min_rating: float | None = None):
    """(plan, has_header) for an items format, (plan, has_header, scene fields) for an events format; the
    first line is a header when its first cell is a column name.

    With a header, columns are found by name (any order, extra columns ignored);
    without one, they are in the format's documented order. ``specs``: `--scene` columns.
    """
    cells = [c.strip().lower() for c in first_line.split(sep)]
    has_header = bool(cells) and cells[0] in fmt.columns
    names = cells if has_header else list(fmt.columns)
    if has_header:
        missing = [c for _, _, c in fmt.fields if c not in names]
        if missing:
            raise ValueError(
                f"{source}: the header {first_line!r} lacks column(s) {', '.join(missing)}; "
                f"a {fmt.name} file has the columns {','.join(fmt.columns)}"
            )
    columns = tuple(
        Column(out, kind, names.index(col) + 1, f"field {col!r} (column {names.index(col) + 1})")
        for out, kind, col in fmt.fields
    )
    scene: list[SceneField] = []
    if fmt.events:  # the event columns a format lacks take their defaults (pv, no category or price)
        present = {out for out, _, _ in fmt.fields}
        columns += tuple(Column(out, kind, None, out) for out, kind in (("behavior", "behavior"), *_EVENT_EXTRAS) if out not in present)
        for name, column, prefix in specs:
            if column.lower() not in names:
                raise ValueError(f"{source}: --scene {name}={column}: a {fmt.name} file has no column {column!r} "
                                 f"(its columns: {', '.join(names)})")
            i = names.index(column.lower()) + 1
            columns += (_scene_column(name, i, f"field {column!r} (column {i})", column, prefix),)
            scene.append(scene_field(name))
    codes = tuple(fmt.behavior_codes)
    plan = RowPlan(
        columns,
        n_fields=len(names),
        sep=sep,
        tz=tz,
        ts_unit=fmt.ts_unit,
        behavior_codes=codes,
        behavior_values=tuple(fmt.behavior_codes[c] for c in codes),
        min_rating=min_rating,
    )
    return (plan, has_header, tuple(scene)) if fmt.events else (plan, has_header)


def _movielens_items(source: Path, work: Path) -> Path:
    """A tab-separated copy (item_id, title, category) of a MovieLens item file, line for line, so
    quarantine reasons name the source's own line numbers.

    u.item (``|``, 19 genre flags: the first flagged genre is the category), movies.dat (``::``, genres
    joined by ``|``) and movies.csv (header, quoted titles). The older files are Latin-1: lines that
    are not UTF-8 are read as Latin-1. A line that does not parse is copied as it is, to be quarantined.
    """
    out = work / "movielens_items.tsv"
    with source.open("rb") as src, out.open("w", encoding="utf-8", newline="\n") as dst:
        for n, raw in enumerate(src, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = raw.decode("latin-1")
            line = line.rstrip("\r\n")
            row = None
            if "::" in line:
                parts = line.split("::")
                if len(parts) == 3:
                    row = (parts[0], parts[1], parts[2].split("|")[0])
            elif "|" in line and line.count("|") >= 5:
                parts = line.split("|")
                flags = parts[-len(MOVIELENS_GENRES):]
                genre = next((g for g, f in zip(MOVIELENS_GENRES, flags) if f.strip() == "1"), "")
                row = (parts[0], parts[1], genre)
            else:
                parsed = next(csv.reader([line]), [])
                if n == 1 and [c.strip().lower() for c in parsed] == ["movieid", "title", "genres"]:
                    row = ("item_id", "title", "category")
                elif len(parsed) == 3:
                    row = (parsed[0], parsed[1], parsed[2].split("|")[0])
            if row is not None and row[2] == "(no genres listed)":
                row = (row[0], row[1], "")
            text = "\t".join(c.replace("\t", " ") for c in row) if row else line.replace("\t", " ")
            dst.write(text + "\n")
    return out


def _scene_column(name: str, index: int, label: str, column: str, prefix: int | None) -> Column:
    """A scene field read from a column; a geohash column keeps a city-scale prefix unless told otherwise."""
    if prefix is None and "geohash" in column.lower():
        prefix = GEOHASH_PREFIX
    return Column(name, "scene", index, label, prefix)


def _generic_plan(positions: dict[str, int], labels: dict[str, str], n_fields: int | None, sep: str,
                  tz: str, ts_unit: str, extra_scene: Sequence[tuple[str, int, str, str, int | None]] = ()):
    """(plan, scene fields) for generic files: `positions` maps a field to its place among a row's fields;
    the well-known scene fields found there and ``extra_scene`` (name, position, label, column, prefix)
    are the file's scene fields."""
    kinds = {"user": "id_text", "item": "id_text", "ts": "ts_auto", "behavior": "behavior", "category": "text", "price": "price"}
    columns = tuple(
        Column(_OUT.get(f, f), kinds[f], positions.get(f), f"field {f!r} ({labels[f]})" if f in labels else f)
        for f in CORE_FIELDS
    )
    scene: list[SceneField] = []
    for f in WELL_KNOWN:
        if f in positions and f not in {e[0] for e in extra_scene}:
            columns += (Column(f, "scene", positions[f], f"field {f!r} ({labels[f]})"),)
            scene.append(scene_field(f))
    for name, index, label, column, prefix in extra_scene:
        columns += (_scene_column(name, index, label, column, prefix),)
        scene.append(scene_field(name))
    codes = tuple(GENERIC_BEHAVIORS)
    plan = RowPlan(columns, n_fields=n_fields, sep=sep, tz=tz, ts_unit=ts_unit, behavior_codes=codes,
                   behavior_values=tuple(GENERIC_BEHAVIORS[c] for c in codes))
    return plan, tuple(scene)


def _scene_positions(names: list[str], specs: Sequence[tuple], source: Path, where: str,
                     label: "Any") -> list[tuple[str, int, str, str, int | None]]:
    """`--scene` specs resolved to 1-based positions among ``names`` (case-insensitive)."""
    lowered = [n.strip().lower() for n in names]
    out = []
    for name, column, prefix in specs:
        if column.strip().lower() not in lowered:
            raise ValueError(f"{source}: --scene {name}={column}: no column {column!r} in {where} ({', '.join(names)})")
        i = lowered.index(column.strip().lower()) + 1
        out.append((name, i, label(i, names[i - 1]), names[i - 1], prefix))
    return out


def _csv_generic_plan(names: list[str], parsed_map: dict[str, str], sep: str, tz: str, ts_unit: str,
                      source: Path, where: str, specs: Sequence[tuple] = ()):
    picked = _resolve_fields(names, parsed_map, source, where)
    labels = {f: f"column {i}, {names[i - 1]!r}" for f, i in picked.items()}
    extra = _scene_positions(names, specs, source, where, lambda i, n: f"field {n!r} (column {i})")
    return _generic_plan(picked, labels, len(names), sep, tz, ts_unit, extra)


def _parquet_events(con, source: Path, parsed_map: dict[str, str], tz: str, ts_unit: str, specs: Sequence[tuple] = ()) -> _Staged:
    names = ingest.parquet_columns(con, str(source))
    picked = _resolve_fields(names, parsed_map, source, "the Parquet schema")
    used = [f for f in FIELDS if f in picked]
    extra = _scene_positions(names, specs, source, "the Parquet schema", lambda i, n: f"field {n!r} (column {n!r})")
    # The staged row holds only the used columns, in FIELDS order, then the --scene columns.
    rows = ingest.parquet_rows(str(source), [names[picked[f] - 1] for f in used] + [e[3] for e in extra])
    positions = {f: j + 1 for j, f in enumerate(used)}
    labels = {f: f"column {names[picked[f] - 1]!r}" for f in used}
    extra = [(name, len(used) + j + 1, label, column, prefix) for j, (name, _, label, column, prefix) in enumerate(extra)]
    plan, scene = _generic_plan(positions, labels, None, ",", tz, ts_unit, extra)
    return _Staged(plan, rows, unit="row", scene=scene)


def _resolve_fields(names: list[str], parsed_map: dict[str, str], source: Path, where: str) -> dict[str, int]:
    """Field -> 1-based column position: `--map` first, then a column named like the field or an alias."""
    lowered = [n.strip().lower() for n in names]
    picked: dict[str, int] = {}
    for f, col in parsed_map.items():
        if col.strip().lower() not in lowered:
            raise ValueError(f"{source}: --map {f}={col}: no column {col!r} in {where} ({', '.join(names)})")
        picked[f] = lowered.index(col.strip().lower()) + 1
    taken = set(picked.values())
    for f in FIELDS:
        if f in picked:
            continue
        for candidate in (f, *FIELD_ALIASES[f]):
            if candidate in lowered and lowered.index(candidate) + 1 not in taken:
                picked[f] = lowered.index(candidate) + 1
                taken.add(picked[f])
                break
    missing = [f for f in REQUIRED_FIELDS if f not in picked]
    if missing:
        raise ValueError(
            f"{source}: no column for field(s) {', '.join(missing)} in {where} ({', '.join(names)}); "
            f"name them with --map FIELD=COLUMN (fields: {', '.join(FIELDS)})"
        )
    return picked


def _resolve_item_columns(names: list[str], source: Path) -> dict[str, int]:
    lowered = [n.strip().lower() for n in names]
    picked = {}
    for f, candidates in ITEM_FIELD_ALIASES.items():
        for candidate in candidates:
            if candidate in lowered:
                picked[f] = lowered.index(candidate) + 1
                break
    if "item" not in picked:
        raise ValueError(f"{source}: an items file needs an item id column (item or item_id); its columns are {', '.join(names)}")
    return picked


def _item_column(f: str, index: int, name: str) -> Column:
    kinds = {"item": "id_text", "price": "price"}
    return Column("item_id" if f == "item" else f, kinds.get(f, "text"), index, f"field {f!r} (column {name!r})")


def _split_header(header: str, sep: str) -> list[str]:
    """Header cells, honouring CSV quotes (one line, so Python's csv module is fine here)."""
    names = next(csv.reader([header], delimiter=sep))
    return [n.strip() for n in names]


# --- the file itself ---------------------------------------------------------------------


@dataclass(frozen=True)
class _FileScan:
    sha256: str
    lines: int = 0           # text files: physical lines, as DuckDB will count them
    new_line: str = "\\n"    # text files: DuckDB's new_line option, "\\n" or "\\r\\n"
    clean: bool = True       # text files: UTF-8, no NUL, one kind of line ending, no line over MAX_LINE_BYTES


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"file not found: {p}")
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a directory, not a file; give the path of one file to import")
    if p.stat().st_size == 0:
        raise ValueError(f"{p} is empty (0 bytes): nothing to import")
    return p


def _scan_file(path: Path, text: bool) -> _FileScan:
    """One streaming pass: the content hash, and for text whether DuckDB can read it line for line.

    Raises ValueError for a binary file. Only whole-chunk operations in C
    (hashing, counting, numpy over the bytes), so it costs a fraction of a
    second per 100 MB; decoding runs only on chunks that are not plain ASCII.
    """
    h = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    newlines = cr = crlf = 0
    longest = current = 0
    utf8_ok, nul = True, False
    last = b""
    with path.open("rb") as fh:
        if text:
            _refuse_binary(path, fh.read(8192))
            fh.seek(0)
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            if not text:
                continue
            breaks = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
            newlines += len(breaks)
            if len(breaks):
                longest = max(longest, current + int(breaks[0]), int(np.diff(breaks).max(initial=1)) - 1)
                current = len(chunk) - int(breaks[-1]) - 1
            else:
                current += len(chunk)
            cr += chunk.count(b"\r")
            crlf += chunk.count(b"\r\n") + (1 if last == b"\r" and chunk[:1] == b"\n" else 0)
            nul = nul or b"\x00" in chunk
            if utf8_ok and (not chunk.isascii() or decoder.getstate()[0]):  # getstate: a split sequence
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8_ok = False
            last = chunk[-1:]
    if not text:
        return _FileScan(h.hexdigest())
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        utf8_ok = False
    longest = max(longest, current)
    lines = newlines + (1 if last and last != b"\n" else 0)
    if cr == 0:
        new_line, endings_ok = "\\n", True
    else:
        new_line, endings_ok = "\\r\\n", cr == crlf == newlines
    clean = utf8_ok and not nul and endings_ok and longest <= ingest.MAX_LINE_BYTES
    return _FileScan(h.hexdigest(), lines=lines, new_line=new_line, clean=clean)


def _refuse_binary(path: Path, head: bytes) -> None:
    """A clear error for a file that is not text at all; a few garbage lines are left to quarantine."""
    for magic, what in _BINARY_MAGIC.items():
        if head.startswith(magic):
            raise ValueError(f"{path} is {what}, not a CSV text file")
    lines = head.split(b"\n")
    lines = lines[:-1] or lines  # complete lines only, unless there is no line break at all
    text = sum(_is_text_line(line) for line in lines)
    if text < len(lines) / 2:
        raise ValueError(
            f"{path} looks like a binary file or text that is not UTF-8, not a CSV file "
            f"(only {text} of the {len(lines)} lines in its first {len(head):,} bytes are UTF-8 text)"
        )


def _is_text_line(line: bytes) -> bool:
    if any(b < 32 and b not in (9, 13) for b in line[:4096]):
        return False
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(line) - 3  # a character cut by the end of the head is still text
    return True


def _sanitise(source: Path, target: Path) -> list[tuple[int, str]]:
    """Copy a file that is not clean text so that DuckDB can read it line for line.

    Each line stays one line. Bytes that are not UTF-8, NUL bytes and stray
    carriage returns become visible escapes (\\xff, \\x00, \\r); a line over
    MAX_LINE_BYTES keeps its first characters. Returns (line number, problem)
    for every such line: those rows are quarantined with that reason.
    Only unclean files take this path, which walks the file line by line.
    """
    problems: list[tuple[int, str]] = []
    limit = ingest.MAX_LINE_BYTES
    with source.open("rb") as src, target.open("w", encoding="utf-8", newline="\n") as dst:
        line_no = 0
        while raw := src.readline(limit + 1):
            line_no += 1
            if raw.endswith(b"\n"):
                body = raw[:-1].removesuffix(b"\r")
                length = len(body)
            elif len(raw) <= limit:  # the last line, without a newline
                body, length = raw, len(raw)
            else:  # longer than the limit: measure the rest, keep only the start
                body, length = raw, len(raw)
                while more := src.readline(_CHUNK):
                    length += len(more) - more.endswith(b"\n")
                    if more.endswith(b"\n"):
                        break
            why: list[str] = []
            if length > limit:
                text = body[:_KEEP_OF_LONG_LINE].decode("utf-8", "backslashreplace") + "…"
                why.append(f"the line is {length:,} bytes long, over the {limit:,}-byte limit (only its start is kept)")
            else:
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    text = body.decode("utf-8", "backslashreplace")
                    why.append("the line has bytes that are not UTF-8 text (binary garbage?), shown as \\xNN")
            if "\x00" in text:
                text = text.replace("\x00", "\\x00")
                why.append("the line has NUL bytes, shown as \\x00")
            if "\r" in text:
                text = text.replace("\r", "\\r")
                why.append("the line has a carriage return inside it, shown as \\r")
            dst.write(text + "\n")
            if why:
                problems.append((line_no, "; ".join(why)))
    return problems


# --- small helpers -----------------------------------------------------------------------


def _parse_mapping(mapping: Sequence[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for entry in mapping:
        f, eq, col = entry.partition("=")
        f, col = f.strip().lower(), col.strip()
        if not eq or not col:
            raise ValueError(f"--map {entry!r}: expected FIELD=COLUMN, e.g. --map user=userId")
        if f not in FIELDS:
            raise ValueError(f"--map {entry!r}: unknown field {f!r}; fields are {', '.join(FIELDS)}")
        parsed[f] = col
    return parsed


def _parse_scene_specs(entries: Sequence[str]) -> list[tuple[str, str, int | None]]:
    """`--scene` entries → (field name, source column, prefix length or None): ``COLUMN`` takes the column's
    own (lower-cased) name, ``NAME=COLUMN`` renames it, a trailing ``:N`` keeps the first N characters."""
    specs: list[tuple[str, str, int | None]] = []
    for entry in entries:
        name, eq, column = str(entry).partition("=")
        if not eq:
            name, column = "", name
        column, colon, n = column.strip().rpartition(":") if ":" in column else (column.strip(), "", "")
        prefix = None
        if colon:
            if not n.isdigit() or int(n) < 1:
                raise ValueError(f"--scene {entry!r}: the prefix length after ':' must be a positive number")
            prefix = int(n)
        if not column:
            raise ValueError(f"--scene {entry!r}: expected COLUMN or NAME=COLUMN[:N], e.g. --scene store_id or --scene geo=user_geohash:4")
        name = (name.strip() or column).lower()
        try:
            check_field_name(name)
        except ValueError as exc:
            raise ValueError(f"--scene {entry!r}: {exc}") from None
        if name in [s[0] for s in specs]:
            raise ValueError(f"--scene {entry!r}: the field {name!r} is named twice")
        specs.append((name, column, prefix))
    return specs


def _run_id(sha: str, fmt: str, options: dict[str, Any]) -> str:
    """Same content + format + options -> same run id: a repeat import is recognised."""
    key = json.dumps({"sha256": sha, "format": fmt, "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _already(existing: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": "already_imported",
        "already_imported": True,
        "rows_read": 0,
        "rows_imported": 0,
        "rows_quarantined": 0,
        "previous_run": {k: existing[k] for k in ("started_at", "rows_read", "rows_imported", "rows_quarantined")},
    }


def _status(counts: dict[str, int]) -> str:
    if counts["rows_quarantined"] == 0:
        return "ok"  # as the sample loader records a complete run
    return "partial" if counts["rows_imported"] else "rejected"


# --- events posted to the API (`recsys_core.serve`) ---------------------------------------------------

API_FORMAT = "api"
API_RUN_PREFIX = "api-"
API_COLUMNS = ("event_id", "user_id", "item_id", "ts", "behavior")
WITHHELD_ID = "(withheld: not a pseudonym)"


def _api_plan(scene_names: Sequence[str], tz: str) -> RowPlan:
    """An event posted as JSON read like a generic file's row: ids as text, ``ts`` a Unix time in seconds
    or ISO 8601 (read in the data's timezone without an offset), the generic behaviour words, and one
    field per scene field of the data."""
    columns = (
        Column("event_id", "text_required", 1, "field 'event_id'"),
        Column("user_id", "id_text", 2, "field 'user'"),
        Column("item_id", "id_text", 3, "field 'item'"),
        Column("ts", "ts_auto", 4, "field 'ts'"),
        Column("behavior", "behavior", 5, "field 'behavior'"),
        Column("category", "text", None, "category"),
        Column("price", "price", None, "price"),
    ) + tuple(Column(name, "scene", 6 + j, f"field 'scene.{name}'") for j, name in enumerate(scene_names))
    codes = tuple(GENERIC_BEHAVIORS)
    return RowPlan(columns, n_fields=None, tz=tz, behavior_codes=codes, behavior_values=tuple(GENERIC_BEHAVIORS[c] for c in codes))


def check_api_events(con, events: Sequence[dict[str, Any]], scene_names: Sequence[str], tz: str,
                     label: str = "POST /events", pseudonymised: bool = False) -> list[dict[str, Any]]:
    """Validate posted events exactly as an import validates rows (`ingest.check_rows`), on any connection
    (an in-memory one will do: nothing is written). One dict per event, in order: the converted values
    (event_id, user_id, item_id, ts as UTC ISO text, behavior, scene fields), ``raw`` (the event as JSON, kept
    for rejected ones) and ``problem`` — None for a good event, else the reason naming the event and field.
    Scene fields the data does not have are a problem of the event (an API client cannot add fields).
    In a ``pseudonymised`` database a shopper id that is not a pseudonym is refused and never stored, not
    even in quarantine (the client must map ids with the key, `privacy.pseudonym`)."""
    from recsys_core.privacy import is_pseudonym

    names = list(scene_names)
    fields, raws, problems = [], [], []
    for e in events:
        scene = e.get("scene") or {}
        unknown = sorted(set(scene) - set(names))
        problem = None
        if unknown:
            problem = f"field 'scene.{unknown[0]}' is not a scene field of this data (its fields: {', '.join(names) or 'none'})"
        if pseudonymised and not is_pseudonym(str(e.get("user") or "")):
            problem = ("field 'user': this database holds pseudonymised shopper ids; send the pseudonym "
                       "(privacy.pseudonym(raw_id, key)), never the raw id (not stored)")
            e = {**e, "user": WITHHELD_ID}
        problems.append(problem)
        ts = e.get("ts")
        fields.append([e.get("event_id"), e.get("user"), e.get("item"), None if ts is None else str(ts), e.get("behavior"),
                       *(scene.get(n) for n in names)])
        raws.append(json.dumps(e, ensure_ascii=False, sort_keys=True))
    rows = ingest.stage_records(con, raws, fields, problems)
    ingest.check_rows(con, _api_plan(names, tz), rows)
    columns = [*API_COLUMNS, *names]
    out = []
    for line_no, problem, raw, *values in ingest.checked_records(con, columns):
        row = dict(zip(columns, values), line_no=line_no, raw=raw, problem=None)
        if problem is not None:
            row["problem"] = f"{label} event {events[line_no - 1].get('event_id')!r}: {problem}"
        out.append(row)
    return out


def write_api_events(con, run_id: str, rows: Sequence[dict[str, Any]], digest: str, started_at: dt.datetime) -> dict[str, int]:
    """Events checked by `check_api_events` into the store as one import run (inside the caller's
    transaction): good ones into `events` with their event id, rejected ones into `quarantine` with their
    reason. Events whose id the store already holds, or an earlier row holds, are skipped, so writing the
    same rows twice stores them once (a batch written but not acknowledged — its fsync failed — and then
    sent again lands twice in a segment). Returns rows_read / rows_imported / rows_quarantined and the
    skipped ``duplicates``."""
    names = [f.name for f in stored_scene_fields(con)]
    seen = ingest.known_event_ids(con, [r["event_id"] for r in rows], API_RUN_PREFIX)
    fresh = []
    for r in rows:
        if r["event_id"] not in seen:
            seen.add(r["event_id"])
            fresh.append({**r, "line_no": len(fresh) + 1})
    ingest.stage_checked(con, fresh, names)
    counts = ingest.checked_counts(con)
    if fresh:
        ingest.write_events(con, run_id, [f for f in stored_scene_fields(con)])
        ingest.write_quarantine(con, run_id, None)
        ingest.record_run(con, run_id=run_id, source="POST /events", fmt=API_FORMAT, file_sha256=digest,
                          started_at=started_at, counts=counts, status=_status(counts))
    ingest.drop_staging(con)
    return {**counts, "duplicates": len(rows) - len(fresh)}
