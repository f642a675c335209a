import dagster as dg
import polars as pl

from mednarratives_assets.defs.automation import DATASET_FOLLOWS_CHANNELS
from mednarratives_assets.defs.metadata import markdown_preview, png_image
from mednarratives_assets.defs.resources import DataPaths
from mednarratives_assets.stages.dataset_statistics import compute_statistics, statistics_plots


@dg.asset(kinds={"duckdb", "polars"}, group_name="dataset", automation_condition=DATASET_FOLLOWS_CHANNELS)
def dataset_statistics(
    context: dg.AssetExecutionContext,
    videos: pl.DataFrame,
    transcript_words: pl.DataFrame,
    stable_chunks: pl.DataFrame,
    narratives: pl.DataFrame,
    boxes: pl.DataFrame,
    video_filter: pl.DataFrame,
    aligned_pairs: pl.DataFrame,
    medical_entities: pl.DataFrame,
    paths: DataPaths,
) -> dg.Output:
    """The figures a paper about the dataset reports, over every channel: hours of video and speech,
    videos kept and filtered out (by rule), medical chunks, duplicates removed, pairs and pairs per
    hour, words per caption, pairs per domain, traces, boxes and their area, medical entities and
    the most frequent concepts, ASR confidence.
    Table `dataset_statistics` (statistic, breakdown, value, unit), documented in docs/schema.md;
    the materialization shows it with plots. Not partitioned: each materialization replaces it."""
    data_root = paths.layout.data_root
    try:
        statistics = compute_statistics(
            videos,
            transcript_words,
            stable_chunks,
            narratives,
            boxes,
            aligned_pairs,
            video_filter,
            medical_entities,
            keyframe_exists=lambda path: (data_root / path).is_file(),
        )
    except ValueError as exc:
        raise dg.Failure(f"dataset_statistics: {exc}") from exc
    table = statistics.table
    if statistics.channels_left_out:
        context.log.warning(
            f"left out channel(s) {', '.join(statistics.channels_left_out)}: video_filter has not seen all "
            "their videos (materialize their channel_pipeline_job)"
        )
    n_channels = videos["channel"].n_unique() - len(statistics.channels_left_out)
    context.log.info(f"{table.height} figures over {n_channels} channels")
    plots = {
        f"plot_{name}": png_image(png, name.replace("_", " "))
        for name, png in statistics_plots(statistics).items()
    }
    overall = {
        statistic: value
        for statistic, breakdown, value, _ in table.rows()
        if breakdown == "" and statistic in ("videos", "video_hours", "pairs", "videos_filtered_out")
    }
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": table.height,
            "n_pairs": int(overall["pairs"]),
            "n_videos": int(overall["videos"]),
            "n_videos_filtered_out": int(overall["videos_filtered_out"]),
            "video_hours": round(overall["video_hours"], 3),
            "channels_left_out": ", ".join(statistics.channels_left_out) or "none",
            "statistics": markdown_preview(table, list(table.columns), max_rows=table.height),
            **plots,
        },
    )
