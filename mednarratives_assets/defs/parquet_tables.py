"""The cluster profile's IO manager: each channel table as one Parquet object per asset and channel
(parquet_tables.py), through Dagster's UPathIOManager. No lock: every object has one writer."""

from typing import ClassVar

import dagster as dg
import polars as pl
from pydantic import Field, PrivateAttr
from upath import UPath

from mednarratives_assets.channels import check_channel_name
from mednarratives_assets.parquet_tables import EXTENSION, read_table, tables_root, write_table


class ParquetTablesIOManager(dg.ConfigurableIOManager, dg.UPathIOManager):
    """Rows of an asset's channel at `<tables_url>/<asset>/<channel>.parquet`."""

    tables_url: str = Field(
        description="s3://bucket/prefix (S3 settings from the AWS_* environment) or a shared folder."
    )
    extension: ClassVar[str] = EXTENSION
    _base_path: UPath = PrivateAttr()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._base_path = tables_root(self.tables_url)

    def get_path_for_partition(self, context, path: UPath, partition: str) -> UPath:
        return super().get_path_for_partition(context, path, check_channel_name(partition))

    def dump_to_path(self, context: dg.OutputContext, obj: pl.DataFrame, path: UPath) -> None:
        write_table(obj, path)
        context.add_output_metadata(
            {
                "dagster/row_count": obj.height,
                "dataframe_columns": dg.TableSchema(
                    columns=[dg.TableColumn(name, str(dtype)) for name, dtype in obj.schema.items()]
                ),
            }
        )

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pl.DataFrame:
        return read_table(path)

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        """A channel's rows; for an asset that reads every channel (dataset_statistics, the CLIP
        models), every channel's rows in one frame, as the DuckDB tables give them."""
        loaded = super().load_input(context)
        if isinstance(loaded, dict):  # UPathIOManager gives several partitions by key
            return pl.concat(list(loaded.values()), how="diagonal_relaxed") if loaded else pl.DataFrame()
        return loaded
