from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster_duckdb_polars import DuckDBPolarsIOManager

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


def build_resources(layout: DataLayout) -> dict:
    return {
        "paths": DataPaths(data_root=str(layout.data_root), duckdb_path=str(layout.duckdb_path)),
        # Every table lands in the `main` schema of one DuckDB file. Each write opens a short
        # connection, and the IO manager retries while another process holds the write lock.
        "io_manager": DuckDBPolarsIOManager(database=str(layout.duckdb_path), schema="main"),
    }
