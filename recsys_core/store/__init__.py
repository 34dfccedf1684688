"""The DuckDB store: the only place in ScenePush that writes SQL.

Submodules hold one idea each: `connection` (paths, connection factory, schema),
`ingest` (importing files through DuckDB's readers, import runs, quarantine),
`events` (reading behaviour for models), `analytics` (overview and behaviour-page
queries) and `pushes` (the push audit log).
"""

from recsys_core.store.connection import (
    DEFAULT_DB_PATH,
    DatabaseLockedError,
    OutdatedDatabaseError,
    connect,
    get_meta,
    resolve_db_path,
    set_meta,
)

__all__ = [
    "DEFAULT_DB_PATH",
    "DatabaseLockedError",
    "OutdatedDatabaseError",
    "connect",
    "get_meta",
    "resolve_db_path",
    "set_meta",
]
