"""Reading the DuckDB file from outside a run, politely: DuckDB lets one process write, and
while it does no other process can open the file, not even read-only."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb


def connect_read_only(database: Path, wait_s: float = 60.0) -> duckdb.DuckDBPyConnection:
    """A read-only connection, retrying while a writer holds the lock, for up to `wait_s`."""
    delay, deadline = 0.1, time.monotonic() + wait_s
    while True:
        try:
            return duckdb.connect(str(database), read_only=True)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def table_counts(database: Path) -> dict[str, int]:
    """Rows per table in the `main` schema; {} when the file does not exist yet."""
    if not database.exists():
        return {}
    with connect_read_only(database) as con:
        tables = [
            t
            for (t,) in con.sql(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
            ).fetchall()
        ]
        return {t: con.sql(f'SELECT count(*) FROM main."{t}"').fetchone()[0] for t in sorted(tables)}
