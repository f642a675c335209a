from collections.abc import Iterator

import dagster as dg
import polars as pl

from mednarratives_assets.defs.checks import rows_check
from mednarratives_assets.defs.configs import config_class, settings_from
from mednarratives_assets.defs.frame_classifier import frame_classifier
from mednarratives_assets.defs.metadata import markdown_preview, png_image
from mednarratives_assets.defs.partitions import channel_asset
from mednarratives_assets.defs.resources import DataPaths, ModelStore
from mednarratives_assets.stages.stable_chunks import ChunkingSettings, chunk_channel

# Contact sheets shown on one materialization; each is an inline PNG of a few tens of kB.
MAX_SHEETS = 12


StableChunksConfig = config_class(ChunkingSettings, "StableChunksConfig", "Stable-chunk detection.")


@channel_asset("chunks", deps=[frame_classifier], checks={"all_videos_chunked": None})
def stable_chunks(
    context: dg.AssetExecutionContext,
    config: StableChunksConfig,
    videos: pl.DataFrame,
    paths: DataPaths,
    models: ModelStore,
) -> Iterator:
    """Spans where the slide stays still for at least `min_duration_s`, with a median keyframe each.

    Keyframes are written under data/keyframes/<channel>/<video_id>/; `is_medical` comes from the
    frame_classifier, and the medical image's rectangle on the slide is located. Table
    `stable_chunks`, documented in docs/schema.md.
    """
    layout = paths.layout
    try:
        settings = settings_from(config, ChunkingSettings)
    except ValueError as exc:
        raise dg.Failure(f"stable_chunks: {exc}") from exc
    classifier = models.deferred("frame_classifier", "stable_chunks")
    channel = context.partition_key
    cache = paths.stage_cache(
        "stable_chunks",
        channel,
        videos,
        settings,
        {"frame_classifier": models.fingerprint("frame_classifier")},
    )
    result = chunk_channel(
        layout.data_root,
        layout.keyframes_dir,
        channel,
        videos,
        lambda keyframes: classifier.medical_scores(keyframes),
        settings,
        log=context.log.info,
        cache=cache,
    )
    chunks = result.chunks
    errors = result.videos.filter(pl.col("status") == "error")
    sheets = {
        f"keyframes {video_id}": png_image(png, f"keyframes of {video_id}")
        for video_id, png in list(result.contact_sheets.items())[:MAX_SHEETS]
    }
    yield dg.Output(
        chunks,
        metadata={
            "dagster/row_count": chunks.height,
            **cache.metadata(),
            "n_medical": chunks.filter(pl.col("is_medical")).height,
            "n_duplicate_keyframes": chunks.filter(pl.col("duplicate_of").is_not_null()).height,
            "stable_hours": round(float((chunks["end_s"] - chunks["start_s"]).sum() or 0.0) / 3600, 3),
            "videos": markdown_preview(result.videos, list(result.videos.columns)),
            "chunks": markdown_preview(
                chunks,
                [
                    "video_id",
                    "chunk_index",
                    "start_s",
                    "end_s",
                    "is_medical",
                    "medical_score",
                    "duplicate_of",
                ],
            ),
            **sheets,
        },
    )
    yield rows_check(
        "all_videos_chunked", errors, ["video_id", "reason"], "errors", severity=dg.AssetCheckSeverity.WARN
    )
