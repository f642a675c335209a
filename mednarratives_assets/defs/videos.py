from collections.abc import Iterator

import dagster as dg
import polars as pl

from mednarratives_assets.defs.checks import rows_check
from mednarratives_assets.defs.metadata import markdown_preview, png_image
from mednarratives_assets.defs.partitions import channel_asset
from mednarratives_assets.defs.resources import DataPaths
from mednarratives_assets.defs.video_downloads import video_downloads
from mednarratives_assets.stages.videos import first_frames_sheet, probe_channel


@channel_asset("ingest", deps=[video_downloads], checks={"all_videos_readable": None})
def videos(context: dg.AssetExecutionContext, paths: DataPaths) -> Iterator:
    """Every video file of the channel, `data/videos/<channel>/<video_id>.<ext>`, probed with PyAV.

    One row per file: stream properties, size and sha256, source metadata from yt-dlp, and a
    status. Unreadable files get status 'error' and a message rather than failing the run.
    Table `videos`, documented in docs/schema.md.
    """
    channel = context.partition_key
    data_root = paths.layout.data_root
    frame = probe_channel(data_root, channel, log=context.log.info)
    errors = frame.filter(pl.col("status") == "error")
    yield dg.Output(
        frame,
        metadata={
            "dagster/row_count": frame.height,
            "n_errors": errors.height,
            "hours_of_video": round((frame["duration_s"].sum() or 0.0) / 3600, 3),
            "videos": markdown_preview(
                frame, ["video_id", "duration_s", "width", "height", "fps", "has_audio", "status", "error"]
            ),
            "first_frames": png_image(first_frames_sheet(data_root, frame), f"first frames of {channel}"),
        },
    )
    yield rows_check(
        "all_videos_readable", errors, ["path", "error"], "errors", severity=dg.AssetCheckSeverity.WARN
    )
