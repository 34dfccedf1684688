"""Behaviour logs → the store: Taobao UserBehavior, Tianchi mobile, RetailRocket, generic CSV/Parquet.

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
from typing import Any, Sequence

import numpy as np

from recsys_core import store
from recsys_core.store import ingest
from recsys_core.store.ingest import Column, RowPlan

log = logging.getLogger(__name__)

FORMATS = ("taobao", "tianchi", "retailrocket", "csv", "parquet")
FIELDS = ("user", "item", "ts", "behavior", "category", "device", "channel", "location", "price")
REQUIRED_FIELDS = ("user", "item", "ts")
DEFAULT_TZ = "Asia/Shanghai"

# Header names taken as a generic field besides the field's own name (case-insensitive).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "user": ("user_id", "userid", "visitorid", "customer_id"),
    "item": ("item_id", "itemid", "product_id", "sku"),
    "ts": ("timestamp", "time", "datetime", "event_time"),
    "behavior": ("behaviour", "behavior_type", "event", "event_type", "action"),
    "category": ("category_id", "categoryid", "item_category"),
    "device": (),
    "channel": (),
    "location": ("city",),
    "price": (),
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

# Tianchi's user_geohash is kept as a prefix: 4 characters is a cell of about
# 20 × 40 km, city scale. Finer cells would make a location vocabulary of mostly
# one-off values that no model can learn from.
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
     ("location", "geohash", "user_geohash"), ("category", "text", "item_category"), ("ts", "ts_hour", "time")),
    {"1": "pv", "2": "fav", "3": "cart", "4": "buy"},
)
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
FIXED_FORMATS = {f.name: f for f in (TAOBAO, TIANCHI, RETAILROCKET, TIANCHI_ITEMS, RETAILROCKET_ITEMS)}
_EVENT_EXTRAS = (("device", "scene"), ("channel", "scene"), ("location", "scene"), ("category", "text"), ("price", "price"))
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
) -> dict[str, Any]:
    """Import one behaviour log (and optionally its items file) into the store.

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
    parsed_map = _parse_mapping(mapping)
    source = _check_path(path)
    items_source = _check_path(items_path) if items_path else None

    started = time.perf_counter()
    con = store.connect(db)
    try:
        if not ingest.timezone_exists(con, tz):
            raise ValueError(f"unknown timezone {tz!r}; use an IANA name such as Asia/Shanghai or Europe/Berlin")
        with tempfile.TemporaryDirectory(prefix="scenepush-import-") as work, ingest.transaction(con):
            options = {"tz": tz, "sep": sep, "map": sorted(parsed_map.items()), "columns": columns,
                       "ts_unit": ts_unit if fmt in ("csv", "parquet") else None}
            result = _import_events(con, source, fmt, options, parsed_map, Path(work))
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


def _import_events(con, source: Path, fmt: str, options: dict, parsed_map: dict[str, str], work: Path) -> dict[str, Any]:
    def stage(scan: _FileScan) -> _Staged:
        if fmt == "parquet":
            return _parquet_events(con, source, parsed_map, options["tz"], options["ts_unit"])
        return _stage_csv_events(con, source, scan, fmt, options, parsed_map, work)

    def write(run_id: str) -> dict[str, int]:
        return ingest.write_events(con, run_id)

    result = _import_run(con, source, fmt, options, stage, write, text=fmt != "parquet")
    result["timezone"] = options["tz"]
    return result


def _import_items(con, source: Path, fmt: str, sep: str | None, work: Path) -> dict[str, Any]:
    """An items file is its own run (its own content hash and accounting) in the same transaction."""
    if fmt in ("tianchi", "retailrocket"):
        kind = f"{fmt}_items"
    else:
        kind = "parquet_items" if source.suffix.lower() in (".parquet", ".pq") else "csv_items"

    def stage(scan: _FileScan) -> _Staged:
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

    def write(run_id: str) -> dict[str, int]:
        if kind == "retailrocket_items":
            return ingest.write_item_properties(con)
        return ingest.write_items(con)

    return _import_run(con, source, kind, {"sep": sep}, stage, write, text=kind != "parquet_items")


def _import_run(con, source: Path, kind: str, options: dict, stage, write, text: bool) -> dict[str, Any]:
    """Stage, check and write one file as one import run, unless this exact run was done before."""
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
    figures = write(run_id)
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
                      work: Path) -> _Staged:
    text = _stage_text(con, source, scan, options["sep"], work, sniff=fmt not in FIXED_FORMATS)
    if fmt in FIXED_FORMATS:
        plan, has_header = _fixed_plan(FIXED_FORMATS[fmt], text.first_line, text.sep, options["tz"], source)
        quoted = False
    else:
        has_header = not options["columns"]
        if has_header:
            names, where = _split_header(text.first_line, text.sep), "the header"
        else:
            names, where = [c.strip() for c in options["columns"].split(",")], "--columns"
        plan = _csv_generic_plan(names, parsed_map, text.sep, options["tz"], options["ts_unit"], source, where)
        quoted = True
    skip = text.first_line_no if has_header else None
    rows = ingest.split_lines(con, sep=text.sep, skip_line=skip, quoted=quoted)
    return _Staged(plan, rows, non_header_lines=text.lines - (1 if skip else 0))


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


def _fixed_plan(fmt: _Format, first_line: str, sep: str, tz: str, source: Path) -> tuple[RowPlan, bool]:
    """(plan, has_header) for a fixed format; the first line is a header when its first cell is a column name.

    With a header, columns are found by name (any order, extra columns ignored);
    without one, they are in the format's documented order.
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
    if fmt.events:  # the event columns a format lacks take their defaults ('unknown' scene, no category or price)
        present = {out for out, _, _ in fmt.fields}
        columns += tuple(Column(out, kind, None, out) for out, kind in _EVENT_EXTRAS if out not in present)
    codes = tuple(fmt.behavior_codes)
    plan = RowPlan(
        columns,
        n_fields=len(names),
        sep=sep,
        tz=tz,
        ts_unit=fmt.ts_unit,
        behavior_codes=codes,
        behavior_values=tuple(fmt.behavior_codes[c] for c in codes),
        geohash_prefix=GEOHASH_PREFIX,
    )
    return plan, has_header


def _generic_plan(positions: dict[str, int], labels: dict[str, str], n_fields: int | None, sep: str,
                  tz: str, ts_unit: str) -> RowPlan:
    """Plan for generic files: `positions` maps a field to its place among a row's fields."""
    kinds = {"user": "id_text", "item": "id_text", "ts": "ts_auto", "behavior": "behavior", "category": "text",
             "device": "scene", "channel": "scene", "location": "scene", "price": "price"}
    columns = tuple(
        Column(_OUT.get(f, f), kinds[f], positions.get(f), f"field {f!r} ({labels[f]})" if f in labels else f)
        for f in FIELDS
    )
    codes = tuple(GENERIC_BEHAVIORS)
    return RowPlan(columns, n_fields=n_fields, sep=sep, tz=tz, ts_unit=ts_unit, behavior_codes=codes,
                   behavior_values=tuple(GENERIC_BEHAVIORS[c] for c in codes))


def _csv_generic_plan(names: list[str], parsed_map: dict[str, str], sep: str, tz: str, ts_unit: str,
                      source: Path, where: str) -> RowPlan:
    picked = _resolve_fields(names, parsed_map, source, where)
    labels = {f: f"column {i}, {names[i - 1]!r}" for f, i in picked.items()}
    return _generic_plan(picked, labels, len(names), sep, tz, ts_unit)


def _parquet_events(con, source: Path, parsed_map: dict[str, str], tz: str, ts_unit: str) -> _Staged:
    names = ingest.parquet_columns(con, str(source))
    picked = _resolve_fields(names, parsed_map, source, "the Parquet schema")
    used = [f for f in FIELDS if f in picked]
    # The staged row holds only the used columns, in FIELDS order.
    rows = ingest.parquet_rows(str(source), [names[picked[f] - 1] for f in used])
    positions = {f: j + 1 for j, f in enumerate(used)}
    labels = {f: f"column {names[picked[f] - 1]!r}" for f in used}
    return _Staged(_generic_plan(positions, labels, None, ",", tz, ts_unit), rows, unit="row")


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
