"""Helpers on the pipeline's tables, shared by several stages, and reading the DuckDB file from
outside a run. DuckDB lets one process write, and while it does no other process can open the
file, not even read-only."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import polars as pl

# DuckDB's message when another process has the file open: "... held in <program> (PID <n>) ..."
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")


def is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def lock_holder(message: str) -> str:
    """Who holds the file, from DuckDB's lock error: the program's command line and PID when known."""
    match = _LOCK_HOLDER.search(message)
    if match is None:
        return "another process"
    pid = match["pid"]
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        command = match["program"]
    return f"process {pid} ({command.strip()[:160]})"


def connect_when_free(
    database: Path | str,
    wait_s: float,
    read_only: bool,
    config: dict | None = None,
    on_held: Callable[[str], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """A connection to the DuckDB file. While another process holds its lock, retry for up to
    `wait_s`, calling `on_held(holder)` once with who holds it; then DuckDB's lock error is raised."""
    delay, deadline, told = 0.1, time.monotonic() + wait_s, False
    while True:
        try:
            return duckdb.connect(str(database), read_only=read_only, config=config or {})
        except duckdb.IOException as exc:
            if not is_lock_error(exc) or time.monotonic() + delay > deadline:
                raise
            if on_held is not None and not told:
                on_held(lock_holder(str(exc)))
                told = True
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def connect_read_only(database: Path, wait_s: float = 60.0) -> duckdb.DuckDBPyConnection:
    """A read-only connection, retrying while a writer holds the lock, for up to `wait_s`."""
    return connect_when_free(database, wait_s, read_only=True)


def table_exists(connection: duckdb.DuckDBPyConnection, table: str, schema: str = "main") -> bool:
    query = "select 1 from duckdb_tables() where schema_name = ? and table_name = ?"
    return connection.execute(query, [schema, table]).fetchone() is not None


def stored_rows(
    database: Path, table: str, query: str, channels: list[str], wait_s: float = 60.0
) -> list[tuple]:
    """The rows of `query` (one parameter: the channel list) on the DuckDB file, opened read-only
    (waiting up to `wait_s` for a writer); [] when the file or the table does not exist."""
    if not channels or not database.exists():
        return []
    with connect_read_only(database, wait_s) as con:
        return con.execute(query, [channels]).fetchall() if table_exists(con, table) else []


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


def medical_chunks(stable_chunks: pl.DataFrame) -> pl.DataFrame:
    """The chunks that show a medical image with a known region, in order."""
    return stable_chunks.filter(pl.col("is_medical") & pl.col("image_x").is_not_null()).sort(
        "video_id", "chunk_index"
    )


def medical_chunks_by_video(
    stable_chunks: pl.DataFrame, **tables: pl.DataFrame
) -> Iterator[tuple[str, dict[str, pl.DataFrame]]]:
    """Each video with medical chunks, in order, with its rows: `chunks` and each of `tables` (by
    its keyword; no rows where the video has none)."""
    chunks = medical_chunks(stable_chunks)
    of = {"chunks": grouped(chunks, "video_id")} | {
        name: grouped(t, "video_id") for name, t in tables.items()
    }
    for video_id in chunks["video_id"].unique(maintain_order=True):
        yield video_id, {name: rows_of(video_id) for name, rows_of in of.items()}


def chunk_region(chunk: dict) -> tuple[int, int, int, int]:
    return chunk["image_x"], chunk["image_y"], chunk["image_w"], chunk["image_h"]


def grouped(frame: pl.DataFrame, *keys: str) -> Callable[..., pl.DataFrame]:
    """The rows of `frame` by the values of `keys`, split once: `grouped(traces, "video_id",
    "chunk_index")("a", 1)` is chunk 1 of video a (no rows when it has none)."""
    groups = frame.partition_by(*keys, as_dict=True) if not frame.is_empty() else {}
    empty = frame.clear()
    return lambda *values: groups.get(values, empty)


def pair_id(channel: str, video_id: str, chunk_index: int) -> str:
    """A stable id of one chunk's image-text pair, also the narrative's image_id."""
    return hashlib.sha1(f"{channel}/{video_id}/{chunk_index}".encode()).hexdigest()[:16]
