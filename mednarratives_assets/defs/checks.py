"""Asset checks on channel partitions: the spec each asset declares and the result it yields."""

from __future__ import annotations

import dagster as dg
import polars as pl

from mednarratives_assets.defs.metadata import markdown_preview
from mednarratives_assets.defs.partitions import channel_partitions

OUTSIDE_COLUMNS = ["video_id", "chunk_index", "t_s", "start_s", "end_s"]


def channel_check(asset: str, name: str, description: str | None = None) -> dg.AssetCheckSpec:
    """A check evaluated with each channel's materialization of `asset`."""
    return dg.AssetCheckSpec(name, asset=asset, partitions_def=channel_partitions, description=description)


def rows_check(
    name: str,
    offending: pl.DataFrame,
    columns: list[str],
    noun: str,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    asset_key: str | None = None,
) -> dg.AssetCheckResult:
    """Passes when `offending` has no rows; the metadata counts them (`n_<noun>`) and shows the first."""
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=asset_key,
        passed=offending.is_empty(),
        severity=severity,
        metadata={f"n_{noun}": offending.height, noun: markdown_preview(offending, columns)},
    )


def outside_their_chunk(points: pl.DataFrame, chunks: pl.DataFrame, tolerance_s: float = 0.0) -> pl.DataFrame:
    """Points (video_id, chunk_index, t_s) more than `tolerance_s` outside their chunk's span, with
    the span (the columns of OUTSIDE_COLUMNS)."""
    spans = chunks.select("video_id", "chunk_index", "start_s", "end_s")
    joined = points.join(spans, on=["video_id", "chunk_index"], how="left")
    inside = pl.col("t_s").is_between(pl.col("start_s") - tolerance_s, pl.col("end_s") + tolerance_s)
    return joined.filter(~inside.fill_null(False))
