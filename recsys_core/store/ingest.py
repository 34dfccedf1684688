"""All SQL of importing: DuckDB's readers, staging, validation, insert, import runs, quarantine.

The importer (`recsys_core.importers`) decides *what* a format means — which field
sits where, how ids, times and behaviours are written — and describes it as a
`RowPlan`. This module turns that plan into SQL over staged rows:

    stage_lines -> _imp_lines(line); split_lines -> Rows   (or parquet_rows -> Rows)
    Rows: a query of (line_no, raw, f VARCHAR[], problem), one row per data row
    check_rows(plan, rows)      -> _imp_checked(line_no, <plan's columns>, problem, raw of rejected rows)
    write_events / write_items  -> events, items, users, quarantine, import_runs

Every row of the file is staged as text (CSV lines are read whole, one VARCHAR
column, then split in SQL), so a rejected row keeps its exact raw text and its
line number, and rows read = rows imported + rows quarantined by construction.
The caller runs all of it inside one transaction (`transaction`).

SQL text is fixed fragments chosen by the plan's kinds; every value (path,
separator, timezone, codes, labels, run id) travels as a bound parameter. Column
positions are integers and Parquet column names are quoted identifiers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import duckdb

from recsys_core.context import SceneField
from recsys_core.store.scene import ensure_scene_fields, select_list

# A CSV line longer than this is quarantined rather than parsed (the importer
# truncates it before DuckDB sees it); DuckDB's own limit is set above it.
MAX_LINE_BYTES = 1 << 20
DUCKDB_MAX_LINE_SIZE = 8 * MAX_LINE_BYTES

# Times outside this window are almost always a unit mix-up (ms read as s, or the reverse).
TS_MIN = dt.datetime(1990, 1, 1)
TS_MAX = dt.datetime(2100, 1, 1)
_TS_MIN_S = int((TS_MIN - dt.datetime(1970, 1, 1)).total_seconds())
_TS_MAX_S = int((TS_MAX - dt.datetime(1970, 1, 1)).total_seconds())

# Column kinds a plan may use. Required kinds quarantine a row when empty.
KINDS = {
    "id_numeric",   # required; digits only (Taobao, Tianchi, RetailRocket ids)
    "id_text",      # required; any non-empty text
    "ts_unix",      # required; Unix time in plan.ts_unit
    "ts_hour",      # required; local 'YYYY-MM-DD HH' in plan.tz (Tianchi)
    "ts_auto",      # required; Unix time in plan.ts_unit, or ISO 8601 (read in plan.tz without an offset)
    "behavior",     # required; mapped through plan.behavior_codes -> plan.behavior_values
    "scene",        # optional; lower-cased text (its first `Column.prefix` characters when set), 'unknown' when empty
    "text",         # optional; text, NULL when empty
    "rating",       # optional; a number; below plan.min_rating the row is set aside (quarantined, not imported)
    "text_required",  # required; any non-empty text
    "price",        # optional; non-negative number
}

# A scene value is a short label: longer text, or control characters, is a broken row, not a scene.
MAX_SCENE_CHARS = 64
_CONTROL_RE = "[\\x00-\\x1f\\x7f]"

# A line with content has a character other than blanks; NULL (an empty line) does not match.
_CONTENT_RE = "[^ \t\r]"

_STAGED_TABLES = ("_imp_lines", "_imp_line_problems", "_imp_checked", "_imp_pseudonyms", "_imp_redact", "_imp_records")


class ReadError(ValueError):
    """DuckDB could not read the file's content (a corrupt Parquet file, for one)."""


@dataclass(frozen=True)
class Rows:
    """A query yielding one (line_no, raw, f VARCHAR[], problem) per data row, with its parameters.

    Kept as a subquery (not a table or view) so the split runs in the same pass
    as the checks; its parameters are named r_* to stay apart from check_rows' own.
    """

    sql: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Column:
    """One output column of `_imp_checked`, read from the row's field `index` (1-based)."""

    out: str            # column name in _imp_checked, e.g. "user_id" (scene columns: the field name)
    kind: str           # one of KINDS
    index: int | None   # position among the row's fields; None: absent from the file (default applies)
    label: str          # how reasons name it, e.g. "field 'user_id' (column 1)"
    prefix: int | None = None  # scene: keep only the first N characters (e.g. a geohash cell)


@dataclass(frozen=True)
class RowPlan:
    """What every row of one file must look like, and how its fields convert."""

    columns: tuple[Column, ...]
    n_fields: int | None = None         # fields per CSV row; None for Parquet (fixed by the schema)
    sep: str = ","
    tz: str = "UTC"
    ts_unit: str = "s"                  # unit of numeric times: "s" or "ms"
    behavior_codes: tuple[str, ...] = ()   # lower-cased source codes ...
    behavior_values: tuple[str, ...] = ()  # ... and the behaviour each one means
    behavior_default: str = "pv"        # when the file has no behaviour column
    min_rating: float | None = None     # rows rated below it are set aside (MovieLens --min-rating)

    def __post_init__(self) -> None:
        for c in self.columns:
            assert c.kind in KINDS, f"unknown column kind {c.kind!r}"
            assert c.index is None or c.index >= 1, "field positions are 1-based"
        assert len(self.behavior_codes) == len(self.behavior_values), "behaviour codes and values must pair up"
        assert self.ts_unit in ("s", "ms"), f"ts_unit must be 's' or 'ms', got {self.ts_unit!r}"


# --- transaction and bookkeeping ---------------------------------------------------------


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One import is one transaction: any failure leaves the database as it was."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def find_run(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
    row = con.execute(
        "SELECT run_id, source, format, file_sha256, started_at, rows_read, rows_imported, rows_quarantined, status "
        "FROM import_runs WHERE run_id = ?",
        [run_id],
    ).fetchone()
    if row is None:
        return None
    keys = ("run_id", "source", "format", "file_sha256", "started_at", "rows_read", "rows_imported", "rows_quarantined", "status")
    return dict(zip(keys, row))


def runs_of_file(con: duckdb.DuckDBPyConnection, file_sha256: str) -> list[dict[str, Any]]:
    """Earlier runs of the same file content (any format or options)."""
    rows = con.execute(
        "SELECT run_id, format, started_at FROM import_runs WHERE file_sha256 = ? ORDER BY started_at", [file_sha256]
    ).fetchall()
    return [{"run_id": r[0], "format": r[1], "started_at": r[2]} for r in rows]


def timezone_exists(con: duckdb.DuckDBPyConnection, tz: str) -> bool:
    return con.execute("SELECT count(*) FROM pg_timezone_names() WHERE name = ?", [tz]).fetchone()[0] > 0


def drop_staging(con: duckdb.DuckDBPyConnection) -> None:
    for table in _STAGED_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {table}")


# --- staging -----------------------------------------------------------------------------


def stage_lines(
    con: duckdb.DuckDBPyConnection,
    path: str,
    *,
    new_line: str,
    expected_lines: int,
    line_problems: Sequence[tuple[int, str]] = (),
) -> None:
    """Read every line of a text file as one VARCHAR into `_imp_lines(line_no, line)`.

    The file must be clean UTF-8 without NUL bytes or stray carriage returns and
    with lines under MAX_LINE_BYTES (the importer sanitises it first when not), so
    DuckDB reads every line: no quoting, no delimiter, nothing rejected.
    `line_no` comes from `row_number() OVER ()`, a streaming window over the
    scan in file order (insertion order is preserved); not `rowid`, which inside
    a transaction starts at an internal offset. The count check below confirms
    nothing was lost. `line_problems` marks lines the importer already knows are
    bad (binary bytes, over-long), with the reason.
    """
    sql = (
        "CREATE OR REPLACE TEMP TABLE _imp_lines AS "
        "SELECT row_number() OVER () AS line_no, line FROM read_csv($path, columns = {'line': 'VARCHAR'}, "
        "header = false, delim = $delim, quote = '', escape = '', new_line = $new_line, auto_detect = false, "
        "max_line_size = $max_line)"
    )
    try:
        con.execute(sql, {"path": path, "delim": "\\0", "new_line": new_line, "max_line": DUCKDB_MAX_LINE_SIZE})
    except (duckdb.InvalidInputException, duckdb.IOException) as exc:
        raise ReadError(str(exc).splitlines()[0]) from exc
    n = con.execute("SELECT count(*) FROM _imp_lines").fetchone()[0]
    if n != expected_lines:
        raise RuntimeError(f"{path}: DuckDB read {n} lines but the file has {expected_lines}; nothing was imported")
    con.execute("CREATE OR REPLACE TEMP TABLE _imp_line_problems (line_no BIGINT, problem VARCHAR)")
    if line_problems:
        con.execute(
            "INSERT INTO _imp_line_problems SELECT unnest($nos), unnest($problems)",
            {"nos": [n for n, _ in line_problems], "problems": [why for _, why in line_problems]},
        )


def first_content_line(con: duckdb.DuckDBPyConnection) -> tuple[int, str] | None:
    """The first non-blank line of the staged file: (line_no, text), or None when all are blank."""
    row = con.execute(
        "SELECT line_no, line FROM _imp_lines "
        "WHERE regexp_matches(line, $content) ORDER BY line_no LIMIT 1",
        {"content": _CONTENT_RE},
    ).fetchone()
    return (row[0], row[1]) if row else None


def split_lines(con: duckdb.DuckDBPyConnection, *, sep: str, skip_line: int | None, quoted: bool) -> Rows:
    """Staged lines split into fields, one row per non-blank line but the header.

    Blank lines are not rows (as in DuckDB's own CSV reader); `skip_line` is the
    header. With `quoted`, lines holding a double quote are split by the
    RFC 4180 rule (a quoted field may contain the separator, "" is a quote); a
    field may not span lines. Other lines are a plain split, which is fast.
    """
    params: dict[str, Any] = {"r_sep": sep, "r_skip": skip_line or 0, "r_content": _CONTENT_RE}
    split = "string_split(line, $r_sep)"
    if quoted:
        s = _regex_class_escape(sep)
        field = f'"(?:[^"]|"")*"|[^"{s}]*'
        params["r_field_re"] = f"({field}){s}"
        params["r_row_re"] = f"(?:(?:{field}){s})*"
        split = (
            "CASE WHEN NOT contains(line, '\"') THEN string_split(line, $r_sep) "
            "WHEN regexp_full_match(line || $r_sep, $r_row_re) THEN list_transform("
            "  regexp_extract_all(line || $r_sep, $r_field_re, 1),"
            "  lambda x: CASE WHEN starts_with(x, '\"') THEN replace(x[2:-2], '\"\"', '\"') ELSE x END) "
            "END"
        )
        quoting_problem = "CASE WHEN f IS NULL THEN 'malformed quoting (a quoted field must end with a quote before the next separator)' END"
    else:
        quoting_problem = "NULL"
    has_line_problems = con.execute("SELECT count(*) FROM _imp_line_problems").fetchone()[0] > 0
    # Most files have no known-bad lines: skip the join then (it is a third of this step's time).
    line_problems = (
        "LEFT JOIN _imp_line_problems p USING (line_no)" if has_line_problems else ", (SELECT NULL::VARCHAR AS problem) p"
    )
    rows = Rows(
        f"SELECT line_no, raw, f, coalesce(line_problem, {quoting_problem}) AS problem FROM ("
        f"  SELECT l.line_no, l.line AS raw, {split} AS f, p.problem AS line_problem"
        f"   FROM _imp_lines l {line_problems}"
        "   WHERE regexp_matches(l.line, $r_content) AND l.line_no <> $r_skip)",
        params,
    )
    return rows


def parquet_columns(con: duckdb.DuckDBPyConnection, path: str) -> list[str]:
    """Column names of a Parquet file; a clear ValueError when it is not one."""
    try:
        rows = con.execute("DESCRIBE SELECT * FROM read_parquet($path)", {"path": path}).fetchall()
    except duckdb.Error as exc:
        raise ValueError(f"{path} is not a readable Parquet file: {str(exc).splitlines()[0]}") from exc
    return [r[0] for r in rows]


def parquet_rows(path: str, columns: Sequence[str]) -> Rows:
    """A Parquet file's chosen columns as text rows.

    `line_no` is the 1-based row number in the file; `raw` is the row as JSON.
    Values become text with DuckDB's casts (a TIMESTAMP WITH TIME ZONE keeps its
    offset; a plain TIMESTAMP is local time, like an ISO text time without offset).
    """
    cols = ", ".join(f"CAST({_ident(c)} AS VARCHAR)" for c in columns)
    return Rows(
        "SELECT file_row_number + 1 AS line_no, "
        "  CAST(json_merge_patch(to_json(t), '{\"file_row_number\": null}') AS VARCHAR) AS raw, "
        f"  [{cols}] AS f, NULL::VARCHAR AS problem "
        "FROM read_parquet($r_path, file_row_number = true) AS t",
        {"r_path": path},
    )


# --- validation and conversion -----------------------------------------------------------


def check_rows(con: duckdb.DuckDBPyConnection, plan: RowPlan, rows: Rows) -> None:
    """Validate and convert staged rows into `_imp_checked` — one row per staged row.

    `problem` is NULL for a good row, else every reason it was rejected, each
    naming the field and the offending value. The statement is layered so each
    parse (a cast, a time conversion) runs once per row, however often the
    value and the problem messages refer to it:
    v_<col> trimmed text -> n_<col> number -> c_<col> converted -> <col> final + problem.
    """
    p = _Params()
    layers: list[list[str]] = [[], [], []]  # v_*, n_*, c_*
    finals: list[str] = []
    problems: list[str] = []
    for c in plan.columns:
        conv = _convert(c, plan, p)
        for layer, expr in zip(layers, (conv.text, conv.number, conv.converted)):
            if expr is not None:
                layer.append(expr)
        finals.append(f"{conv.final} AS {c.out}")
        if conv.problem:
            problems.append(conv.problem)

    field_problems = f"nullif(concat_ws('; ', {', '.join(problems)}), '')" if problems else "NULL"
    if plan.n_fields is not None:
        count_problem = (
            f"CASE WHEN len(f) <> {int(plan.n_fields)} THEN "
            f"'expected {int(plan.n_fields)} fields separated by ' || {p.add(_sep_name(plan.sep))} || ', found ' || len(f) END"
        )
    else:
        count_problem = "NULL"
    source = f"({rows.sql})"
    for layer in layers:
        source = f"(SELECT *{''.join(', ' + e for e in layer)} FROM {source})"
    # The raw text is kept for rejected rows only: they are the ones quarantine shows. `split_ok`: the row
    # split into the plan's fields, so a field sits where the plan says (pseudonymising relies on it).
    sql = (
        "CREATE OR REPLACE TEMP TABLE _imp_checked AS "
        "SELECT * EXCLUDE (raw), CASE WHEN problem IS NOT NULL THEN raw END AS raw FROM ("
        f"SELECT line_no, raw, {', '.join(finals)}, "
        f"  coalesce(problem, {count_problem}, {field_problems}) AS problem, "
        f"  (problem IS NULL AND ({count_problem}) IS NULL) AS split_ok "
        f"FROM {source})"
    )
    try:
        con.execute(sql, {**p.used_in(sql), **rows.params})
    except (duckdb.InvalidInputException, duckdb.IOException) as exc:
        raise ReadError(str(exc).splitlines()[0]) from exc


@dataclass(frozen=True)
class _Conversion:
    text: str | None         # "<expr> AS v_<col>": the field's trimmed text
    number: str | None       # "<expr> AS n_<col>": a numeric parse, when the kind needs one
    converted: str | None    # "<expr> AS c_<col>": the converted value, NULL when it does not parse
    final: str               # the output value (NULL on a bad row is fine: the row is quarantined)
    problem: str | None      # NULL when the field is fine, else the reason


def _convert(c: Column, plan: RowPlan, p: "_Params") -> _Conversion:
    v, n, cv = f"v_{c.out}", f"n_{c.out}", f"c_{c.out}"
    if c.index is None:
        default = {
            "scene": "'unknown'",
            "rating": "NULL::DOUBLE",
            "behavior": p.add(plan.behavior_default),
            "text": "NULL::VARCHAR",
            "price": "NULL::DOUBLE",
        }
        assert c.kind in default, f"column {c.out} ({c.kind}) is required and must have a field position"
        return _Conversion(None, None, None, default[c.kind], None)

    text = f"trim(f[{int(c.index)}]) AS {v}"
    label = p.add(c.label)
    shown = f"(' ' || '''' || left({v}, 40) || CASE WHEN length({v}) > 40 THEN '…' ELSE '' END || '''')"
    empty = f"({v} IS NULL OR {v} = '')"

    if c.kind in ("id_numeric", "id_text", "text_required"):
        problem = f"CASE WHEN {empty} THEN {label} || ' is empty'"
        if c.kind == "id_numeric":
            problem += f" WHEN NOT regexp_full_match({v}, '[0-9]+') THEN {label} || ':' || {shown} || ' is not a numeric id'"
        return _Conversion(text, None, None, v, problem + " END")

    if c.kind in ("ts_unix", "ts_hour", "ts_auto"):
        number = f"TRY_CAST({v} AS DOUBLE) AS {n}" if c.kind != "ts_hour" else None
        expr, what = _time_expr(c.kind, v, n, plan, p)
        in_range = f"{cv} >= {p.add(TS_MIN)} AND {cv} < {p.add(TS_MAX)}"
        problem = (
            f"CASE WHEN {empty} THEN {label} || ' is empty' "
            f"WHEN {cv} IS NULL THEN {label} || ':' || {shown} || ' is not ' || {p.add(what)} "
            f"WHEN NOT ({in_range}) THEN {label} || ':' || {shown} || ' is outside 1990–2100 "
            f"(a time in milliseconds read as seconds, or the reverse?)' END"
        )
        return _Conversion(text, number, f"{expr} AS {cv}", f"CASE WHEN {in_range} THEN {cv} END", problem)

    if c.kind == "behavior":
        expr = (
            f"list_extract({p.add(list(plan.behavior_values))}::VARCHAR[], "
            f"list_position({p.add(list(plan.behavior_codes))}::VARCHAR[], lower({v})))"
        )
        expected = ", ".join(dict.fromkeys(plan.behavior_codes))
        problem = (
            f"CASE WHEN {empty} THEN {label} || ' is empty' "
            f"WHEN {cv} IS NULL THEN {label} || ': unknown behaviour' || {shown} || ' (expected one of ' || {p.add(expected)} || ')' END"
        )
        return _Conversion(text, None, f"{expr} AS {cv}", cv, problem)

    if c.kind == "scene":
        value = f"lower({v})" if c.prefix is None else f"left(lower({v}), {p.add(int(c.prefix))})"
        problem = (
            f"CASE WHEN length({v}) > {p.add(MAX_SCENE_CHARS)} THEN {label} || ':' || {shown} || "
            f"' is longer than {MAX_SCENE_CHARS} characters (a scene value is a short label)' "
            f"WHEN regexp_matches({v}, {p.add(_CONTROL_RE)}) THEN {label} || ' has control characters' END"
        )
        return _Conversion(text, None, None, f"coalesce(nullif({value}, ''), 'unknown')", problem)
    if c.kind == "rating":
        number = f"TRY_CAST(nullif({v}, '') AS DOUBLE) AS {n}"
        problem = f"CASE WHEN NOT {empty} AND ({n} IS NULL OR NOT isfinite({n})) THEN {label} || ':' || {shown} || ' is not a number'"
        if plan.min_rating is not None:
            problem += (f" WHEN {n} < {p.add(float(plan.min_rating))} THEN {label} || ':' || {shown} || "
                        f"' is below --min-rating {plan.min_rating:g} (set aside, not imported)'")
        return _Conversion(text, number, None, n, problem + " END")
    if c.kind == "text":
        return _Conversion(text, None, None, f"nullif({v}, '')", None)
    if c.kind == "price":
        number = f"TRY_CAST(nullif({v}, '') AS DOUBLE) AS {n}"
        problem = (
            f"CASE WHEN NOT {empty} AND ({n} IS NULL OR NOT isfinite({n}) OR {n} < 0) "
            f"THEN {label} || ':' || {shown} || ' is not a price (a non-negative number)' END"
        )
        return _Conversion(text, number, None, f"CASE WHEN isfinite({n}) AND {n} >= 0 THEN {n} END", problem)
    raise AssertionError(f"unhandled kind {c.kind}")


def _time_expr(kind: str, v: str, n: str, plan: RowPlan, p: "_Params") -> tuple[str, str]:
    """A naive-UTC TIMESTAMP expression for a time field, and what a valid value looks like.

    `n` is the field parsed as a number (NULL when it is not one).
    """
    unit_name = "seconds" if plan.ts_unit == "s" else "milliseconds"
    per_second = 1 if plan.ts_unit == "s" else 1000
    # Bounded before conversion so an absurd number cannot overflow make_timestamp; a finite
    # number out of bounds becomes 1970-01-01 so that the range check reports it as such.
    unix = (
        f"CASE WHEN {n} >= {p.add(_TS_MIN_S * per_second)} AND {n} < {p.add(_TS_MAX_S * per_second)} "
        f"THEN make_timestamp(CAST(round({n} * {p.add(1_000_000 // per_second)}) AS BIGINT)) "
        f"WHEN isfinite({n}) THEN TIMESTAMP '1970-01-01' END"
    )
    tz = p.add(plan.tz)
    if kind == "ts_unix":
        return unix, f"a Unix time in {unit_name}"
    if kind == "ts_hour":
        return (f"timezone('UTC', timezone({tz}, try_strptime({v}, '%Y-%m-%d %H')))",
                "a local time like '2014-12-06 02' (YYYY-MM-DD HH)")
    offset_re = p.add(r"[0-9]:[0-9]{2}(:[0-9]{2}(\.[0-9]*)?)?\s*([zZ]|[+-][0-9]{2}(:?[0-9]{2})?)$")
    expr = (
        f"CASE WHEN {n} IS NOT NULL THEN {unix} "
        f"WHEN regexp_matches({v}, {offset_re}) THEN timezone('UTC', TRY_CAST({v} AS TIMESTAMPTZ)) "
        f"ELSE timezone('UTC', timezone({tz}, coalesce(TRY_CAST({v} AS TIMESTAMP), try_strptime({v}, '%Y-%m-%d %H')))) END"
    )
    return expr, f"a Unix time in {unit_name} or an ISO 8601 time"


# --- writing -----------------------------------------------------------------------------


def checked_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """rows_read / rows_imported / rows_quarantined of `_imp_checked`: read = imported + quarantined."""
    read, good = con.execute("SELECT count(*), count(*) FILTER (WHERE problem IS NULL) FROM _imp_checked").fetchone()
    return {"rows_read": read, "rows_imported": good, "rows_quarantined": read - good}


def write_quarantine(con: duckdb.DuckDBPyConnection, run_id: str, file_label: str | None, unit: str = "line") -> list[dict[str, Any]]:
    """Every rejected row into `quarantine` with its raw text (and its shopper id, so that forgetting the
    shopper finds it); returns the first few for the report. Without ``file_label`` the problem already
    names where the row came from (API events)."""
    has_user = "user_id" in {r[0] for r in con.execute("DESCRIBE _imp_checked").fetchall()}
    where = "" if file_label is None else "$file || ' ' || $unit || ' ' || line_no || ': ' || "
    con.execute(
        "INSERT INTO quarantine (run_id, row_number, raw, reason, user_id) "
        f"SELECT $run, line_no, raw, {where}problem, "
        f"{'nullif(user_id, ' + chr(39) * 2 + ')' if has_user else 'NULL'} "
        "FROM _imp_checked WHERE problem IS NOT NULL",
        {"run": run_id} if file_label is None else {"run": run_id, "file": file_label, "unit": unit},
    )
    rows = con.execute(
        "SELECT row_number, reason FROM quarantine WHERE run_id = ? ORDER BY row_number LIMIT 5", [run_id]
    ).fetchall()
    return [{"row": r[0], "reason": r[1]} for r in rows]


# Shown in place of a rejected row's raw text when the shopper id in it cannot be located for replacing.
WITHHELD = " (raw text withheld: pseudonymised import)"


def pseudonymise_checked(con: duckdb.DuckDBPyConnection, to_pseudonyms: Callable[[list[str]], list[str]]) -> int:
    """Replace every shopper id in `_imp_checked` by its pseudonym, before anything reaches the database.

    ``to_pseudonyms`` maps distinct raw ids to pseudonyms (the key stays with the caller). Rejected rows
    keep their raw text and reason with the id replaced wherever it stands as a whole value (as written,
    CSV-quoted or JSON-escaped); a rejected row that did not split into the plan's fields (the id's
    position is unknown), or whose raw text would still show the id, keeps no raw text. Staged tables are
    temporary (memory, or the temp directory), never the database file. Returns the number of distinct ids.
    Raises ValueError when two ids of the file share a pseudonym (negligible, but never silent).
    """
    raw_ids = [r[0] for r in con.execute(
        "SELECT DISTINCT user_id FROM _imp_checked WHERE user_id IS NOT NULL AND user_id <> ''").fetchall()]
    mapped = to_pseudonyms(raw_ids)
    if len(set(mapped)) != len(raw_ids):
        raise ValueError("two shopper ids of this file map to the same pseudonym; nothing was imported")
    con.execute("CREATE OR REPLACE TEMP TABLE _imp_pseudonyms AS SELECT unnest($raw) AS raw_id, unnest($ps) AS pseudonym",
                {"raw": raw_ids, "ps": mapped})
    rejected = [r[0] for r in con.execute(
        "SELECT DISTINCT c.user_id FROM _imp_checked c WHERE c.problem IS NOT NULL AND c.split_ok AND c.user_id <> ''").fetchall()]
    if rejected:
        ps = dict(zip(raw_ids, mapped))
        shown = ["'" + r[:40] + ("…" if len(r) > 40 else "") + "'" for r in rejected]
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _imp_redact AS SELECT unnest($raw) AS raw_id, unnest($pattern) AS pattern, "
            "unnest($ps) AS pseudonym, unnest($shown) AS shown",
            {"raw": rejected, "pattern": [whole_value_pattern(r) for r in rejected], "ps": [ps[r] for r in rejected],
             "shown": shown},
        )
        # Twice: a match consumes the separator after it, so a value repeated in the next field waits one pass.
        replace_raw = ("regexp_replace(regexp_replace(c.raw, r.pattern, '\\1' || r.pseudonym || '\\2', 'g'), "
                       "r.pattern, '\\1' || r.pseudonym || '\\2', 'g')")
        replace_problem = "replace(c.problem, r.shown, chr(39) || r.pseudonym || chr(39))"
        con.execute(
            f"UPDATE _imp_checked c SET raw = {replace_raw}, problem = {replace_problem} "
            "FROM _imp_redact r WHERE c.user_id = r.raw_id AND c.problem IS NOT NULL AND c.split_ok"
        )
        con.execute(
            "UPDATE _imp_checked c SET raw = NULL, problem = c.problem || $withheld "
            "FROM _imp_redact r WHERE c.user_id = r.raw_id AND c.problem IS NOT NULL AND regexp_matches(c.raw, r.pattern)",
            {"withheld": WITHHELD},
        )
    con.execute(
        "UPDATE _imp_checked SET raw = NULL, problem = problem || $withheld WHERE problem IS NOT NULL AND NOT split_ok",
        {"withheld": WITHHELD},
    )
    con.execute("UPDATE _imp_checked c SET user_id = p.pseudonym FROM _imp_pseudonyms p WHERE c.user_id = p.raw_id")
    con.execute("DROP TABLE IF EXISTS _imp_redact")
    con.execute("DROP TABLE IF EXISTS _imp_pseudonyms")
    return len(raw_ids)


def whole_value_pattern(value: str) -> str:
    """An RE2 pattern matching ``value`` as a whole field: as written, CSV-quoted ("" for ") or JSON-escaped."""
    forms = dict.fromkeys([value, value.replace('"', '""'), json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]])
    special = set("\\.^$|?*+()[]{}")
    escaped = ["".join("\\" + ch if ch in special else ch for ch in form) for form in forms]
    return "(^|[^0-9A-Za-z_])(?:" + "|".join(escaped) + ")([^0-9A-Za-z_]|$)"


def write_events(con: duckdb.DuckDBPyConnection, run_id: str, scene: Sequence[SceneField] = ()) -> dict[str, int]:
    """Good rows into `events`, their users into `users`, their items (and categories, prices) into `items`.

    ``scene``: the scene fields of the file (columns of `_imp_checked` named like the fields); the data's
    schema gains those it lacks. Each event's ``seq`` is its line in the file after every earlier
    event, so events of one second keep the file's order (and a re-import the same order).
    Returns the number of distinct users and items among the imported rows.

    Item fields from an events file only fill gaps: an item's existing category
    or price is kept (an items file, `write_items`, is what overrides them).
    """
    ensure_scene_fields(con, scene)
    cols = select_list([f.name for f in scene])
    if "event_id" in {r[0] for r in con.execute("DESCRIBE _imp_checked").fetchall()}:
        cols += ", event_id"  # a client's id of the event (events posted to the API)
    base = con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
    con.execute(
        f"INSERT INTO events (user_id, item_id, behavior, ts, seq, source_run{cols}) "
        f"SELECT user_id, item_id, behavior, ts, $base + line_no, $run{cols} FROM _imp_checked WHERE problem IS NULL",
        {"run": run_id, "base": int(base)},
    )
    con.execute(
        "INSERT INTO users (user_id) SELECT DISTINCT user_id FROM _imp_checked WHERE problem IS NULL "
        "ON CONFLICT DO NOTHING"
    )
    con.execute(
        "INSERT INTO items (item_id, category, price) "
        "SELECT item_id, min(category), arg_max(price, ts) FILTER (WHERE price IS NOT NULL) "
        "FROM _imp_checked WHERE problem IS NULL GROUP BY item_id "
        "ON CONFLICT (item_id) DO UPDATE SET category = coalesce(items.category, excluded.category), "
        "price = coalesce(items.price, excluded.price)"
    )
    users, items = con.execute(
        "SELECT count(DISTINCT user_id), count(DISTINCT item_id) FROM _imp_checked WHERE problem IS NULL"
    ).fetchone()
    return {"users": users, "items": items}


ITEM_FIELDS = ("title", "title_zh", "category", "category_zh", "brand", "price")


def write_items(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Good rows of an items file into `items`; the file's values override existing ones.

    An item listed several times (Tianchi lists an item once per geohash) takes
    its last non-empty value of each field. Returns the number of distinct items.
    """
    present = {r[0] for r in con.execute("DESCRIBE _imp_checked").fetchall()}
    fields = [f for f in ITEM_FIELDS if f in present]
    aggs = "".join(f", arg_max({f}, line_no) FILTER (WHERE {f} IS NOT NULL) AS {f}" for f in fields)
    updates = ", ".join(f"{f} = coalesce(excluded.{f}, items.{f})" for f in fields)
    conflict = f"DO UPDATE SET {updates}" if fields else "DO NOTHING"
    cols = "".join(f", {f}" for f in fields)
    con.execute(
        f"INSERT INTO items (item_id{cols}) SELECT item_id{aggs} FROM _imp_checked WHERE problem IS NULL "
        f"GROUP BY item_id ON CONFLICT (item_id) {conflict}"
    )
    return {"items": _distinct_good_items(con)}


def write_item_properties(con: duckdb.DuckDBPyConnection, category_property: str = "categoryid") -> dict[str, int]:
    """RetailRocket item properties: each item's latest `categoryid` becomes its category.

    Other properties (mostly hashed values) are read and validated but not stored.
    Returns the number of distinct items.
    """
    con.execute(
        "INSERT INTO items (item_id, category) "
        "SELECT item_id, arg_max(value, ts) FILTER (WHERE property = $prop AND value IS NOT NULL) "
        "FROM _imp_checked WHERE problem IS NULL GROUP BY item_id "
        "ON CONFLICT (item_id) DO UPDATE SET category = coalesce(excluded.category, items.category)",
        {"prop": category_property},
    )
    return {"items": _distinct_good_items(con)}


def _distinct_good_items(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT count(DISTINCT item_id) FROM _imp_checked WHERE problem IS NULL").fetchone()[0]


def record_run(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    source: str,
    fmt: str,
    file_sha256: str,
    started_at: dt.datetime,
    counts: dict[str, int],
    status: str,
) -> None:
    con.execute(
        "INSERT INTO import_runs (run_id, source, format, file_sha256, started_at, rows_read, rows_imported, "
        "rows_quarantined, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, source, fmt, file_sha256, started_at, counts["rows_read"], counts["rows_imported"],
         counts["rows_quarantined"], status],
    )


# --- events posted to the API ------------------------------------------------------------


def stage_records(con: duckdb.DuckDBPyConnection, raws: Sequence[str], fields: Sequence[Sequence[str | None]],
                  problems: Sequence[str | None]) -> Rows:
    """Records that arrived as data, not as a file (events posted to the API), staged as `Rows` for
    `check_rows`: row i (1-based) has the raw text ``raws[i]``, the fields ``fields[i]`` and a known
    ``problems[i]`` (None when none)."""
    con.execute("CREATE OR REPLACE TEMP TABLE _imp_records (line_no BIGINT, raw VARCHAR, f VARCHAR[], problem VARCHAR)")
    if raws:
        con.execute(
            "INSERT INTO _imp_records SELECT generate_subscripts($raws, 1), unnest($raws), unnest($fs), unnest($problems)",
            {"raws": list(raws), "fs": [list(f) for f in fields], "problems": list(problems)},
        )
    return Rows("SELECT line_no, raw, f, problem FROM _imp_records", {})


def checked_records(con: duckdb.DuckDBPyConnection, columns: Sequence[str]) -> list[tuple]:
    """(line_no, problem, raw, *columns) of every checked row, in order; times as ISO text (UTC)."""
    cols = "".join(f", CAST({_ident(c)} AS VARCHAR)" if c == "ts" else f", {_ident(c)}" for c in columns)
    return con.execute(f"SELECT line_no, problem, raw{cols} FROM _imp_checked ORDER BY line_no").fetchall()


def known_event_ids(con: duckdb.DuckDBPyConnection, event_ids: Sequence[str], run_prefix: str) -> set[str]:
    """Which of ``event_ids`` the store already holds: as events, or quarantined by a run whose id starts
    with ``run_prefix`` (whose raw text is the event as JSON). A retried event is recognised by them."""
    if not event_ids:
        return set()
    rows = con.execute(
        "SELECT event_id FROM events WHERE event_id IN (SELECT unnest($ids)) "
        "UNION SELECT json_extract_string(raw, '$.event_id') FROM quarantine "
        "WHERE starts_with(run_id, $prefix) AND json_extract_string(raw, '$.event_id') IN (SELECT unnest($ids))",
        {"ids": list(event_ids), "prefix": run_prefix},
    ).fetchall()
    return {r[0] for r in rows}


def stage_checked(con: duckdb.DuckDBPyConnection, rows: Sequence[dict[str, Any]], scene: Sequence[str]) -> None:
    """Rows checked earlier (by `check_rows` on another connection) as `_imp_checked` again, for
    `write_events` / `write_quarantine` inside a write transaction: each dict has line_no, event_id,
    user_id, item_id, ts (ISO, UTC), behavior, the scene fields, problem and raw."""
    names = ["line_no", "event_id", "user_id", "item_id", "ts", "behavior", *scene, "problem", "raw"]
    types = {"line_no": "BIGINT", "ts": "TIMESTAMP"}
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _imp_checked ("
        + ", ".join(f"{_ident(n)} {types.get(n, 'VARCHAR')}" for n in names)
        + ", category VARCHAR, price DOUBLE)"
    )
    if rows:
        params = {f"c{j}": [r.get(n) for r in rows] for j, n in enumerate(names)}
        unnests = ", ".join(f"unnest(${k})" for k in params)
        con.execute(f"INSERT INTO _imp_checked ({', '.join(_ident(n) for n in names)}) SELECT {unnests}", params)


# --- benchmark data ----------------------------------------------------------------------


def write_benchmark_csv(path: str, n_rows: int, seed: int = 0) -> None:
    """A generic behaviour CSV with header for the import benchmark, written by DuckDB's COPY.

    Columns: user,item,behavior,ts,category,device,channel,city — ISO local
    times, a pv-heavy behaviour mix, 50k users and 100k items. Deterministic in
    `seed`; uses its own in-memory connection (nothing touches a store).
    """
    con = duckdb.connect()
    try:
        con.execute(
            "COPY (SELECT (hash(i, $seed) % 50000)::VARCHAR AS user, (hash(i * 7, $seed) % 100000)::VARCHAR AS item, "
            "  CASE WHEN i % 100 < 88 THEN 'pv' WHEN i % 100 < 93 THEN 'cart' WHEN i % 100 < 97 THEN 'fav' ELSE 'buy' END AS behavior, "
            "  strftime(TIMESTAMP '2024-11-01' + to_seconds(i * 5), '%Y-%m-%dT%H:%M:%S') AS ts, "
            "  'cat' || (hash(i * 7, $seed) % 100000) % 40 AS category, "
            "  ['mobile', 'pc', 'tablet'][1 + i % 3] AS device, "
            "  ['home_feed', 'search', 'push', 'live_stream', 'cart'][1 + i % 5] AS channel, "
            "  ['beijing', 'shanghai', 'shenzhen', 'chengdu'][1 + i % 4] AS city "
            " FROM range($n) r(i)) TO $path (HEADER, DELIMITER ',')",
            {"n": n_rows, "seed": seed, "path": path},
        )
    finally:
        con.close()


# --- helpers -----------------------------------------------------------------------------


class _Params:
    """Named parameters collected while building one statement."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"${name}"

    def used_in(self, sql: str) -> dict[str, Any]:
        """The parameters the finished statement refers to (DuckDB refuses unused ones)."""
        used = set(re.findall(r"\$(p[0-9]+)\b", sql))
        return {k: v for k, v in self.values.items() if k in used}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _regex_class_escape(sep: str) -> str:
    """The separator for RE2, inside or outside a character class (any punctuation may be escaped)."""
    assert len(sep) == 1, "the separator is one character"
    if sep == "\t":
        return "\\t"
    return sep if sep.isalnum() else "\\" + sep


def _sep_name(sep: str) -> str:
    return {"\t": "tabs", ",": "commas", ";": "semicolons", "|": "bars"}.get(sep, repr(sep))
