import json

import dagster as dg

from mednarratives_assets.channels import scan_channels
from mednarratives_assets.defs.jobs import channel_pipeline_job
from mednarratives_assets.defs.partitions import channel_partitions
from mednarratives_assets.defs.resources import DataPaths
from mednarratives_assets.stages.video_downloads import ChannelsFileError, load_channel_urls


@dg.sensor(
    job=channel_pipeline_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def new_video_sensor(context: dg.SensorEvaluationContext, paths: DataPaths) -> dg.SensorResult:
    """Adds a channel partition for each new folder under data/videos (or channel in channels.yaml)
    and requests a `channel_pipeline_job` run (every asset, from downloads to transcripts) for each
    channel whose video files or URLs changed. Unchanged videos cost little in that run: their
    transcripts come from the cache.

    The cursor maps each channel to a fingerprint of its files (names, sizes, mtimes) and URLs.
    The run key names the change (`<channel>:<old>-><new>`), so an unchanged channel launches nothing.
    """
    layout = paths.layout
    try:
        channel_urls = load_channel_urls(layout.channels_file)
    except ChannelsFileError as exc:
        context.log.error(f"{exc}; scanning the video folders only")
        channel_urls = {}
    scan = scan_channels(layout.videos_dir, channel_urls)
    for name in scan.invalid:
        context.log.warning(f"skipping {layout.videos_dir / name}: not a valid channel name")

    previous: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(channel_partitions.name))
    new_channels = [c for c in scan.valid if c not in known]
    run_requests = [
        dg.RunRequest(
            partition_key=channel,
            run_key=f"{channel}:{previous.get(channel, 'none')}->{fingerprint}",
            tags={"mednarratives/channel_fingerprint": fingerprint},
        )
        for channel, fingerprint in scan.valid.items()
        if previous.get(channel) != fingerprint
    ]
    if new_channels or run_requests:
        context.log.info(f"new channels: {new_channels}; runs for: {[r.partition_key for r in run_requests]}")
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=(
            [channel_partitions.build_add_request(new_channels)] if new_channels else []
        ),
        cursor=json.dumps(scan.valid, sort_keys=True),
    )
