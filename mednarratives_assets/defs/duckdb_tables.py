"""The DuckDB IO manager: dagster-duckdb-polars' own, with five changes.

- A channel's delete and insert commit in one transaction, so a crash between them leaves the old
  rows (the stock client commits each statement on its own).
- Steps take turns for the file only while they load or store (`channel_locks.database_turn`), so
  their compute runs in parallel, across runs and Dagster instances, and never meets the lock.
- Partition keys are checked as channel names before any SQL is built from them.
- Another process holding the file (a notebook, the DuckDB CLI) is named in the log as soon as a
  writer meets it, and after `lock_wait_s` the step fails saying what to close, instead of a
  silent stall ending deep in a traceback.
- Tables exist without rows and take new columns, and a table that does not exist fails the step
  that reads it with what to run (see DuckDBTablesPolarsTypeHandler).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
import polars as pl
from dagster._core.storage.db_io_manager import DbIOManager, TableSlice
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_polars import DuckDBPolarsIOManager, DuckDBPolarsTypeHandler
from pydantic import Field

from mednarratives_assets.channel_locks import database_turn
from mednarratives_assets.channels import check_channel_name
from mednarratives_assets.tables import connect_when_free, is_lock_error, lock_holder, table_exists

# How long a writer waits for another process to let go of the file, by default.
DEFAULT_LOCK_WAIT_S = 120.0


class DatabaseBusy(RuntimeError):
    """Another process kept the DuckDB file open for longer than a writer waits."""


def open_for_writing(database: str, config: dict, wait_s: float, log) -> duckdb.DuckDBPyConnection:
    """A read-write connection; while another process holds the file, say who, wait, then give up."""
    try:
        return connect_when_free(
            database,
            wait_s,
            read_only=False,
            config={"custom_user_agent": "dagster", **config},
            on_held=lambda holder: log.warning(
                f"{database} is held open by {holder}; waiting up to {wait_s:.0f} s for it to close"
            ),
        )
    except duckdb.IOException as exc:
        if not is_lock_error(exc):
            raise
        raise DatabaseBusy(
            f"{database} is held open by {lock_holder(str(exc))}; waited {wait_s:.0f} s. Close that "
            "connection (a notebook's con.close(), or quit the DuckDB CLI), or while runs write "
            "read a copy of the file instead, then run again"
        ) from exc


def check_partition_keys(table_slice: TableSlice) -> None:
    """Every partition key of the slice must be a channel name, before it reaches SQL or a path."""
    for dimension in table_slice.partition_dimensions or []:
        for key in dimension.partitions:
            check_channel_name(key)


class TransactionalDuckDbClient(DuckDbClient):
    """The stock client, with each connection one transaction (see the module docstring)."""

    def __init__(self, lock_wait_s: float):
        self.lock_wait_s = lock_wait_s

    @contextmanager
    def connect(self, context, table_slice: TableSlice) -> Iterator[duckdb.DuckDBPyConnection]:
        check_partition_keys(table_slice)
        config = context.resource_config
        holder = (
            f"run {context.run_id[:8]} storing {table_slice.table}"
            if isinstance(context, dg.OutputContext)
            else f"a step loading {table_slice.table}"
        )
        with database_turn(config["database"], holder, log=context.log.info):
            connection = open_for_writing(
                config["database"], config["connection_config"], self.lock_wait_s, context.log
            )
            try:
                connection.begin()
                yield connection
                connection.commit()
            except BaseException:
                connection.rollback()
                raise
            finally:
                connection.close()

    @staticmethod
    def delete_table_slice(context, table_slice: TableSlice, connection) -> None:
        # A failed statement aborts the transaction: ask whether the table exists instead of
        # letting the stock client catch the error of a delete from a missing table.
        if table_exists(connection, table_slice.table, table_slice.schema):
            DuckDbClient.delete_table_slice(context, table_slice, connection)


def missing_table_failure(context: dg.InputContext, table_slice: TableSlice) -> dg.Failure:
    """The failure of a step whose input's table was never stored (its asset is newer than the data)."""
    runs = (
        "`mednarratives run`, or channel_pipeline_job for every channel in the UI"
        if table_slice.partition_dimensions
        else f"`mednarratives run`, or materialize {table_slice.table} in the UI"
    )
    return dg.Failure(
        f"input {context.name}: table {table_slice.schema}.{table_slice.table} does not exist in "
        f"{context.resource_config['database']}: asset {table_slice.table} was never materialized "
        f"there (the data root may predate it). Materialize it first: {runs}"
    )


class DuckDBTablesPolarsTypeHandler(DuckDBPolarsTypeHandler):
    """Writes and reads frames as the stock handler does, with three changes.

    - A frame without rows still creates its table, with its columns: the stock handler skips
      the write, so a table whose channels all came out empty (no medical chunk yet, say) never
      exists, and every asset reading it fails to load its input.
    - A column the table lacks is added (NULL in the rows already stored), and rows are inserted
      by column name: the stock handler inserts by position, so a table written by an older
      version of an asset refuses the new version's rows.
    - A table that does not exist fails the reading step with a dg.Failure that names it and what
      to run: the stock handler's DuckDB error ("Table with name ... does not exist! Did you mean
      "sqlite_master"?") comes at the end of a chained traceback and says neither.
    """

    def load_input(self, context: dg.InputContext, table_slice, connection) -> pl.DataFrame:
        # As in the stock handler, a partitioned table read for no partition gives an empty frame.
        reads_rows = not table_slice.partition_dimensions or context.asset_partition_keys
        if reads_rows and not table_exists(connection, table_slice.table, table_slice.schema):
            raise missing_table_failure(context, table_slice)
        return super().load_input(context, table_slice, connection)

    def handle_output(self, context: dg.OutputContext, table_slice, obj: pl.DataFrame, connection) -> None:
        frame = obj.to_arrow()  # noqa: F841  DuckDB reads it by its name
        table = f"{table_slice.schema}.{table_slice.table}"
        connection.execute(f"create schema if not exists {table_slice.schema};")
        stored = connection.execute(
            "select column_name from duckdb_columns() where schema_name = ? and table_name = ?",
            [table_slice.schema, table_slice.table],
        ).fetchall()
        if not stored:
            connection.execute(f"create table {table} as select * from frame;")
        else:
            known = {name for (name,) in stored}
            for name, column_type, *_ in connection.execute("describe select * from frame").fetchall():
                if name not in known:
                    connection.execute(f'alter table {table} add column "{name}" {column_type};')
            connection.execute(f"insert into {table} by name select * from frame;")
        context.add_output_metadata(
            {
                # The key the assets report too: one "Row count" on the page, not a second `row_count`.
                "dagster/row_count": obj.height,
                "dataframe_columns": dg.TableSchema(
                    columns=[dg.TableColumn(name, str(dtype)) for name, dtype in obj.schema.items()]
                ),
            }
        )


class DuckDBTablesIOManager(DuckDBPolarsIOManager):
    """dagster-duckdb-polars' IO manager with the changes listed in the module docstring."""

    lock_wait_s: float = Field(
        default=DEFAULT_LOCK_WAIT_S,
        description="Seconds a step waits for another process to close the DuckDB file, then fails.",
    )

    @staticmethod
    def type_handlers() -> list:
        return [DuckDBTablesPolarsTypeHandler()]

    def create_io_manager(self, context) -> DbIOManager:
        return DbIOManager(
            db_client=TransactionalDuckDbClient(self.lock_wait_s),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
            io_manager_name="DuckDBIOManager",
        )
