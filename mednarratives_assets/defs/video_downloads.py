import warnings

import dagster as dg
import polars as pl

from mednarratives_assets.defs.configs import config_class, settings_from
from mednarratives_assets.defs.metadata import markdown_preview
from mednarratives_assets.defs.partitions import channel_asset
from mednarratives_assets.defs.resources import DataPaths
from mednarratives_assets.settings import OutsideDataRoot
from mednarratives_assets.stages.video_downloads import (
    VIDEO_DOWNLOADS_SCHEMA,
    ChannelsFileError,
    DownloadSettings,
    download_channel,
    has_downloaded,
    read_channels_file,
)
from mednarratives_assets.video_cache import content_key

VideoDownloadsConfig = config_class(DownloadSettings, "VideoDownloadsConfig", "How URLs are downloaded.")


# The first asset of a channel: the new-video sensor's runs make it, not the automation.
@channel_asset("ingest", automation_condition=None)
def video_downloads(
    context: dg.AssetExecutionContext, config: VideoDownloadsConfig, paths: DataPaths
) -> dg.Output:
    """Videos fetched with yt-dlp from the channel's URLs in `data/channels.yaml`.

    One row per downloaded video, or one row with status 'error' per URL that failed or file
    larger than `max_download_mb`. Channels without URLs yield no rows. A malformed entry of this
    channel in channels.yaml fails the asset, naming the file, the entry and the problem; other
    channels' entries do not matter here. Table `video_downloads`, documented in docs/schema.md.
    """
    channel = context.partition_key
    layout = paths.layout
    try:
        settings = settings_from(config, DownloadSettings)
    except ValueError as exc:
        raise dg.Failure(f"video_downloads: {exc}") from exc
    channels = read_channels_file(layout.channels_file)
    try:
        # Only a file that cannot be read at all makes the channel's past downloads matter.
        downloaded_before = bool(channels.error) and has_downloaded(layout, channel)
        urls = channels.urls_of(channel, downloaded_before)
        if channels.error:
            context.log.warning(
                f"{channels.error}; channel {channel!r} never downloaded from URLs here, so it is taken "
                "for a local folder: nothing to fetch"
            )
        if not urls:
            context.log.info(f"channel {channel!r} has no URLs in {layout.channels_file}; nothing to fetch")
            frame = pl.DataFrame(schema=VIDEO_DOWNLOADS_SCHEMA)
        else:
            frame = download_channel(layout, channel, urls, settings, log=context.log.info)
    except (ChannelsFileError, OutsideDataRoot) as exc:
        raise dg.Failure(description=str(exc)) from exc
    n_errors = frame.filter(pl.col("status") == "error").height
    with warnings.catch_warnings():  # a beta parameter in dagster 1.13, which pyproject.toml pins
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.Output(
            frame,
            metadata={
                "dagster/row_count": frame.height,
                "n_urls": len(urls),
                "n_errors": n_errors,
                "downloads": markdown_preview(frame, ["video_id", "title", "status", "error", "url"]),
            },
            # By content, so that a run that fetched nothing new leaves `videos` in sync with it.
            data_version=dg.DataVersion(content_key(rows=frame.drop("downloaded_at"))),
        )
