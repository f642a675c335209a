"""Helpers on the pipeline's tables, shared by several stages, and reading the DuckDB file from
outside a run. DuckDB lets one process write, and while it does no other process can open the
file, not even read-only."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl


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


def medical_chunks(stable_chunks: pl.DataFrame) -> pl.DataFrame:
    """The chunks that show a medical image with a known region, in order."""
    return stable_chunks.filter(pl.col("is_medical") & pl.col("image_x").is_not_null()).sort(
        "video_id", "chunk_index"
    )


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
