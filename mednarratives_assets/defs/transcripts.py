from collections.abc import Iterator

import dagster as dg
import polars as pl

from mednarratives_assets.asr.engines import AlignmentModelUnavailable, AsrConfigError
from mednarratives_assets.asr.vocabulary import MedicalVocabulary
from mednarratives_assets.defs.automation import CHANNEL_FOLLOWS_UPSTREAM
from mednarratives_assets.defs.checks import rows_check
from mednarratives_assets.defs.metadata import markdown_preview
from mednarratives_assets.defs.partitions import (
    channel_check,
    channel_partitions,
    deployment,
    one_writer_per_channel,
)
from mednarratives_assets.defs.resources import DataPaths, SpeechRecognizer
from mednarratives_assets.stages.transcripts import TranscriptCache, transcribe_channel


def _table(description: str) -> dg.AssetOut:
    """An output the IO manager writes to the DuckDB table named after it, partitioned by channel."""
    return dg.AssetOut(
        description=description,
        metadata={"partition_expr": "channel"},
        kinds={"duckdb", "polars"},
        group_name="transcripts",
        automation_condition=CHANNEL_FOLLOWS_UPSTREAM,
    )


@dg.multi_asset(
    name="transcripts",
    partitions_def=channel_partitions,
    outs={
        "transcripts": _table("One row per video: ASR status, the reason when there are no words, counts."),
        "transcript_words": _table("Every recognized word with its start and end time and probability."),
        "transcript_segments": _table("One sentence per row, its text and the medical corrections."),
    },
    check_specs=[channel_check("transcripts", "all_videos_transcribed")],
    op_tags=deployment.queue_tags(gpu_heavy=True),
)
@one_writer_per_channel
def transcripts(
    context: dg.AssetExecutionContext, videos: pl.DataFrame, paths: DataPaths, asr: SpeechRecognizer
) -> Iterator:
    """Word-timed transcripts of the channel's videos (tables documented in docs/schema.md).

    ASR output is cached per engine settings and video sha256 under data/cache/transcripts, so
    re-materializing transcribes only new or changed videos.
    """
    channel = context.partition_key
    layout = paths.layout
    try:
        engine = asr.build()
    except (AsrConfigError, AlignmentModelUnavailable) as exc:
        raise dg.Failure(f"ASR resource 'asr': {exc}") from exc
    vocabulary = MedicalVocabulary() if asr.vocabulary_corrections else None
    result = transcribe_channel(
        layout.data_root,
        channel,
        videos,
        engine,
        TranscriptCache(layout.transcripts_cache_dir),
        vocabulary,
        log=context.log.info,
        tables_cache=paths.stage_cache(
            "transcripts", channel, videos, {"vocabulary": vocabulary.fingerprint if vocabulary else None}
        ),
    )
    table = result.transcripts
    errors = table.filter(pl.col("status") == "error")
    yield dg.Output(
        table,
        output_name="transcripts",
        metadata={
            "dagster/row_count": table.height,
            "engine": engine.name,
            "engine_fingerprint": engine.fingerprint,
            "n_videos_computed": table.filter(pl.col("from_cache").not_()).height,
            "n_videos_reused": table.filter(pl.col("from_cache")).height,
            "hours_of_audio": round((table["audio_s"].sum() or 0.0) / 3600, 3),
            "videos": markdown_preview(
                table, ["video_id", "status", "reason", "audio_s", "n_words", "n_corrections", "from_cache"]
            ),
        },
    )
    yield dg.Output(
        result.words,
        output_name="transcript_words",
        metadata={"dagster/row_count": result.words.height},
    )
    corrected = result.segments.filter(pl.col("corrections").list.len() > 0).with_columns(
        changes=pl.col("corrections")
        .list.eval(
            pl.format(
                "{} → {} ({})",
                pl.element().struct.field("heard"),
                pl.element().struct.field("corrected"),
                pl.element().struct.field("rule"),
            )
        )
        .list.join("; ")
    )
    yield dg.Output(
        result.segments,
        output_name="transcript_segments",
        metadata={
            "dagster/row_count": result.segments.height,
            "n_corrected_segments": corrected.height,
            "segments": markdown_preview(result.segments, ["video_id", "start_s", "end_s", "corrected_text"]),
            "corrections": markdown_preview(corrected, ["video_id", "start_s", "changes", "corrected_text"]),
        },
    )
    yield rows_check(
        "all_videos_transcribed",
        errors,
        ["video_id", "reason"],
        "errors",
        severity=dg.AssetCheckSeverity.WARN,
        asset_key="transcripts",
    )
