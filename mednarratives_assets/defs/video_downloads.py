import dagster as dg
import polars as pl

from mednarratives_assets.defs.metadata import markdown_preview
from mednarratives_assets.defs.partitions import channel_asset
from mednarratives_assets.defs.resources import DataPaths
from mednarratives_assets.stages.video_downloads import (
    VIDEO_DOWNLOADS_SCHEMA,
    ChannelsFileError,
    download_channel,
    load_channel_urls,
)


@channel_asset("ingest")
def video_downloads(context: dg.AssetExecutionContext, paths: DataPaths) -> pl.DataFrame:
    """Videos fetched with yt-dlp from the channel's URLs in `data/channels.yaml`.

    One row per downloaded video, or one row with status 'error' per URL that failed.
    Channels without URLs yield no rows. Table `video_downloads`, documented in docs/schema.md.
    """
    channel = context.partition_key
    layout = paths.layout
    try:
        urls = load_channel_urls(layout.channels_file).get(channel, [])
    except ChannelsFileError as exc:
        raise dg.Failure(description=str(exc)) from exc
    if not urls:
        context.log.info(f"channel {channel!r} has no URLs in {layout.channels_file}; nothing to fetch")
        frame = pl.DataFrame(schema=VIDEO_DOWNLOADS_SCHEMA)
    else:
        frame = download_channel(layout.data_root, channel, urls, log=context.log.info)
    n_errors = frame.filter(pl.col("status") == "error").height
    context.add_output_metadata(
        {
            "dagster/row_count": frame.height,
            "n_urls": len(urls),
            "n_errors": n_errors,
            "downloads": markdown_preview(frame, ["video_id", "title", "status", "error", "url"]),
        }
    )
    return frame
