from collections.abc import Iterator

import dagster as dg
import polars as pl

from mednarratives_assets.defs.checks import OUTSIDE_COLUMNS, outside_their_chunk, rows_check
from mednarratives_assets.defs.configs import config_class, settings_from
from mednarratives_assets.defs.metadata import markdown_preview
from mednarratives_assets.defs.partitions import channel_asset
from mednarratives_assets.defs.resources import DataPaths
from mednarratives_assets.stages.narratives import NarrativeSettings, narrate_channel, write_jsonl

NarrativesConfig = config_class(NarrativeSettings, "NarrativesConfig", "How each chunk's words are taken.")


def traces_outside_their_chunk(narratives: pl.DataFrame, chunks: pl.DataFrame) -> pl.DataFrame:
    """Trace points (as narrative rows, one per point) whose time lies outside their chunk's span."""
    points = (
        narratives.select("video_id", "chunk_index", "window_start_s", "traces")
        .explode("traces")
        .explode("traces")
        .drop_nulls("traces")
        .with_columns(t_s=pl.col("window_start_s") + pl.col("traces").struct.field("t"))
    )
    return outside_their_chunk(points, chunks, tolerance_s=1e-3)  # LN times are rounded to the millisecond


@channel_asset(
    "narratives",
    checks={"trace_times_inside_their_chunk": "Every trace point's time lies inside its chunk's span."},
)
def narratives(
    context: dg.AssetExecutionContext,
    config: NarrativesConfig,
    videos: pl.DataFrame,
    stable_chunks: pl.DataFrame,
    cursor_traces: pl.DataFrame,
    transcript_words: pl.DataFrame,
    paths: DataPaths,
) -> Iterator:
    """Localized Narratives: each medical chunk's words, each with the pointer's trace while it was said.

    Table `narratives` (docs/schema.md) and `data/narratives/<channel>.jsonl` in Google's Localized
    Narratives format, readable by its loader.
    """
    try:
        settings = settings_from(config, NarrativeSettings)
    except ValueError as exc:
        raise dg.Failure(f"narratives: {exc}") from exc
    channel = context.partition_key
    cache = paths.stage_cache("narratives", channel, videos, settings)
    table = narrate_channel(videos, stable_chunks, cursor_traces, transcript_words, settings, cache)
    context.log.info(f"channel {channel!r}: {cache.summary()}")
    layout = paths.layout
    jsonl = write_jsonl(table, layout.channel_path(layout.narratives_dir, channel, ".jsonl"))
    outside = traces_outside_their_chunk(table, stable_chunks)
    context.log.info(f"{table.height} narratives written to {jsonl}")
    yield dg.Output(
        table,
        metadata={
            "dagster/row_count": table.height,
            **cache.metadata(),
            "jsonl": dg.MetadataValue.path(str(jsonl)),
            "n_words": int(table["n_words"].sum() or 0),
            "n_trace_points": int(table["n_trace_points"].sum() or 0),
            "narratives": markdown_preview(
                table, ["video_id", "chunk_index", "image_id", "n_words", "n_trace_points", "caption"]
            ),
        },
    )
    yield rows_check(
        "trace_times_inside_their_chunk",
        outside,
        OUTSIDE_COLUMNS,
        "outside",
    )
