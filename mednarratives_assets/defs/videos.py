from collections.abc import Iterator

import dagster as dg
import duckdb
import polars as pl

from mednarratives_assets.defs.checks import rows_check
from mednarratives_assets.defs.metadata import markdown_preview, png_image
from mednarratives_assets.defs.partitions import channel_asset
from mednarratives_assets.defs.resources import DataPaths
from mednarratives_assets.defs.video_downloads import video_downloads
from mednarratives_assets.settings import OutsideDataRoot
from mednarratives_assets.stages.videos import (
    first_frames_sheet,
    probe_channel,
    remove_files_of_deleted_videos,
    stored_videos,
)


@channel_asset("ingest", deps=[video_downloads], checks={"all_videos_readable": None})
def videos(context: dg.AssetExecutionContext, paths: DataPaths) -> Iterator:
    """Every video file of the channel, `data/videos/<channel>/<video_id>.<ext>`, probed with PyAV.

    One row per file: stream properties, size and sha256, source metadata from yt-dlp, and a
    status. Unreadable files, and links that lead out of the data root, get status 'error' and a
    message rather than failing the run; a channel folder that leads out of the data root fails it.
    The keyframes and cached transcripts of videos whose files are gone are deleted.
    Table `videos`, documented in docs/schema.md.
    """
    channel = context.partition_key
    layout = paths.layout
    data_root = layout.data_root
    try:
        previous = stored_videos(layout.duckdb_path, channel)
    except duckdb.Error as exc:  # held by another process, say: the cached transcripts wait for a later run
        context.log.warning(
            f"cannot read the stored videos of {channel!r} ({exc}); every file is read again and "
            "cached transcripts are kept"
        )
        previous = None
    try:
        frame = probe_channel(layout, channel, log=context.log.info, known=previous)
    except OutsideDataRoot as exc:
        raise dg.Failure(f"videos of channel {channel!r}: {exc}") from exc
    removed = remove_files_of_deleted_videos(layout, channel, frame, previous, log=context.log.info)
    errors = frame.filter(pl.col("status") == "error")
    yield dg.Output(
        frame,
        metadata={
            "dagster/row_count": frame.height,
            "n_errors": errors.height,
            "hours_of_video": round((frame["duration_s"].sum() or 0.0) / 3600, 3),
            "n_removed_keyframe_folders": len(removed.keyframe_folders),
            "n_removed_cached_transcripts": len(removed.transcript_cache_entries),
            "videos": markdown_preview(
                frame, ["video_id", "duration_s", "width", "height", "fps", "has_audio", "status", "error"]
            ),
            "first_frames": png_image(first_frames_sheet(data_root, frame), f"first frames of {channel}"),
        },
    )
    yield rows_check(
        "all_videos_readable", errors, ["path", "error"], "errors", severity=dg.AssetCheckSeverity.WARN
    )
