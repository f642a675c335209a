import dagster as dg
import polars as pl

from mednarratives_assets.defs.configs import config_class, settings_from
from mednarratives_assets.defs.metadata import markdown_preview
from mednarratives_assets.defs.partitions import channel_asset
from mednarratives_assets.defs.resources import DataPaths
from mednarratives_assets.stages.video_filter import VideoFilterSettings, filter_videos

VideoFilterConfig = config_class(
    VideoFilterSettings,
    "VideoFilterConfig",
    "What a video needs to be paired: speech and medical images. 0 turns a threshold off.",
)


@channel_asset("narratives")
def video_filter(
    context: dg.AssetExecutionContext,
    config: VideoFilterConfig,
    videos: pl.DataFrame,
    transcripts: pl.DataFrame,
    transcript_words: pl.DataFrame,
    stable_chunks: pl.DataFrame,
    paths: DataPaths,
) -> dg.Output:
    """Every video of the channel, kept for pairing or not: a video without speech, with too little
    speech, or with too few medical chunks gives no pairs, and its row says why, with the measured
    value and the threshold. `aligned_pairs` pairs the kept videos only. Table `video_filter`,
    documented in docs/schema.md."""
    try:
        settings = settings_from(config, VideoFilterSettings)
    except ValueError as exc:
        raise dg.Failure(f"video_filter: {exc}") from exc
    table = filter_videos(videos, transcripts, transcript_words, stable_chunks, settings)
    filtered = table.filter(~pl.col("kept"))
    per_rule = filtered["filtered_by"].value_counts(sort=True).rows()
    for row in filtered.iter_rows(named=True):
        context.log.info(f"{row['video_id']} left out: {row['reason']}")
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": table.height,
            "n_videos_kept": table.height - filtered.height,
            "n_videos_filtered_out": filtered.height,
            "filtered_by": {rule: int(n) for rule, n in per_rule},
            "filtered_out": markdown_preview(filtered, ["video_id", "filtered_by", "reason"]),
            "videos": markdown_preview(
                table, ["video_id", "kept", "speech_s", "n_words", "n_medical_chunks", "filtered_by"]
            ),
        },
    )
