"""Asset check results on channel partitions (each asset declares its checks with `channel_asset`)."""

from __future__ import annotations

import dagster as dg
import polars as pl

from mednarratives_assets.defs.metadata import markdown_preview

OUTSIDE_COLUMNS = ["video_id", "chunk_index", "t_s", "start_s", "end_s"]


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
