"""Channel tables as Parquet objects, the cluster profile's table store (see deployment.py).

Each asset's rows of one channel are one object, `<tables_url>/<table>/<channel>.parquet`, on
S3-compatible storage (`s3://bucket/prefix`) or in a shared folder. Every object has one writer,
the step of that asset and channel, so steps on any host store without a lock. An object is
replaced whole: one PUT on S3, a rename in a folder.

`publish` gathers them into the DuckDB file, the user's query surface in both profiles, with the
tables and columns the local profile writes there.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
from upath import UPath

from mednarratives_assets.atomic_files import write_file
from mednarratives_assets.channels import check_channel_name

EXTENSION = ".parquet"


def tables_root(tables_url: str) -> UPath:
    """The table store; S3 settings (endpoint, keys) come from the AWS_* environment, as boto3's.

    The endpoint is passed on by name: s3fs keeps one filesystem per set of arguments, and one made
    for another endpoint must not be reused."""
    if not tables_url:
        raise ValueError("the table store's URL is empty: set MEDNARRATIVES_TABLES_URL")
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint and tables_url.startswith(("s3://", "s3a://")):
        return UPath(tables_url, endpoint_url=endpoint)
    return UPath(tables_url)


def table_object(tables_url: str, table: str, channel: str) -> UPath:
    """Where the rows of `table` for `channel` live (the channel name is checked first)."""
    return tables_root(tables_url) / table / f"{check_channel_name(channel)}{EXTENSION}"


def is_local(path: UPath) -> bool:
    return path.protocol in ("", "file", "local")


def write_table(frame: pl.DataFrame, path: UPath) -> None:
    """Replace the object at `path` with `frame`, whole or not at all."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    if is_local(path):
        write_file(Path(path.path), buffer.getvalue())
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.getvalue())


def read_table(path: UPath) -> pl.DataFrame:
    """The rows at `path`; FileNotFoundError when the object does not exist."""
    return pl.read_parquet(io.BytesIO(path.read_bytes()))


def stored_table(tables_url: str, table: str, channel: str) -> pl.DataFrame | None:
    """The stored rows of `table` for `channel`, or None when there are none yet."""
    try:
        return read_table(table_object(tables_url, table, channel))
    except FileNotFoundError:
        return None


def publish(tables_url: str, database: Path, log: Callable[[str], None] = print) -> dict[str, int]:
    """Replace every table of the DuckDB file that the store holds with the union of its channel
    objects, in one transaction; rows per table. Columns a channel's object lacks are NULL there."""
    root = tables_root(tables_url)
    tables = sorted(entry.name for entry in root.iterdir() if entry.is_dir()) if root.exists() else []
    database.parent.mkdir(parents=True, exist_ok=True)
    counts = {}
    with duckdb.connect(str(database)) as con:
        con.begin()
        for table in tables:
            objects = sorted((root / table).glob(f"*{EXTENSION}"), key=lambda p: p.name)
            if not objects:
                continue
            frame = pl.concat([read_table(path) for path in objects], how="diagonal_relaxed")
            arrow = frame.to_arrow()  # noqa: F841  DuckDB reads it by its name
            con.execute(f'create or replace table main."{table}" as select * from arrow')
            counts[table] = frame.height
            log(f"published {table}: {frame.height} rows from {len(objects)} channel objects")
        con.commit()
    return counts
