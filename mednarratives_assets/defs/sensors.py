import json

import dagster as dg

from mednarratives_assets.channels import (
    CHANNEL_NAME_RULE,
    is_valid_channel_name,
    scan_channels,
    skipped_folder_message,
)
from mednarratives_assets.defs.jobs import channel_pipeline_job
from mednarratives_assets.defs.partitions import channel_partitions
from mednarratives_assets.defs.resources import DataPaths
from mednarratives_assets.defs.videos import FILES_KEY, videos
from mednarratives_assets.stages.video_downloads import read_channels_file


@dg.sensor(
    job=channel_pipeline_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def new_video_sensor(context: dg.SensorEvaluationContext, paths: DataPaths) -> dg.SensorResult:
    """Adds a channel partition for each new folder under data/videos (or channel in channels.yaml)
    and requests a `channel_pipeline_job` run (every asset, from downloads to the dataset export)
    for each channel whose video files or URLs differ from those its latest materialization of
    `videos` probed. Unchanged videos cost little in that run: they come from the stages' caches.

    A channel's fingerprint digests its files (names, sizes, mtimes) and URLs
    (channels.channel_fingerprint); `videos` records the one it probed. A channel whose files match
    that record launches nothing, even on a first tick without a cursor (the UI started after
    `mednarratives run` or `demo`). The cursor maps each channel to the fingerprint it last acted
    on, so a change is requested once while its run is under way; the run key names the change
    (`<channel>:<old>-><new>`).

    Every problem is logged and skipped on its own: each malformed channels.yaml entry (a channel
    whose entry has a bad value still gets its run, whose video_downloads fails naming the entry),
    each folder whose name is no channel name, and a channels.yaml that cannot be read at all (the
    video folders are scanned still). A channel whose folder disappears gets a warning; its
    partition and data stay.
    """
    layout = paths.layout
    channels_file = read_channels_file(layout.channels_file)
    if channels_file.error:
        context.log.error(f"{channels_file.error}; scanning the video folders only")
    for problem in channels_file.skipped + list(channels_file.bad_entries.values()):
        context.log.error(problem)
    scan = scan_channels(layout.videos_dir, channels_file.channels)
    for name in scan.invalid:
        context.log.warning(skipped_folder_message(layout.videos_dir / name))

    previous: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(channel_partitions.name))
    hostile = sorted(key for key in known if not is_valid_channel_name(key))
    for key in hostile:  # added through the UI or GraphQL; every step refuses it anyway
        context.log.error(f"removing partition {key!r}: {CHANNEL_NAME_RULE}")
    # Warned once, on the tick it goes (or the first tick): deleting data is the user's to ask.
    gone = sorted(
        c
        for c in known - set(scan.valid)
        if is_valid_channel_name(c) and (c in previous or not context.cursor)
    )
    for channel in gone:
        context.log.warning(
            f"channel {channel!r}: its folder {layout.videos_dir / channel} is gone and channels.yaml "
            "names no URLs for it; its partition and data are kept"
        )
    new_channels = [c for c in scan.valid if c not in known]
    run_requests = [
        dg.RunRequest(
            partition_key=channel,
            run_key=f"{channel}:{previous.get(channel, 'none')}->{fingerprint}",
            tags={"mednarratives/channel_fingerprint": fingerprint},
            # A change that leaves the channel current (a file touched, say) stops after videos.
            run_config={"ops": {"videos": {"config": {"skip_if_current": True}}}},
        )
        for channel, fingerprint in scan.valid.items()
        if previous.get(channel) != fingerprint
        and materialized_files(context.instance, channel) != fingerprint
    ]
    if new_channels or run_requests:
        context.log.info(f"new channels: {new_channels}; runs for: {[r.partition_key for r in run_requests]}")
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=(
            ([channel_partitions.build_add_request(new_channels)] if new_channels else [])
            + ([channel_partitions.build_delete_request(hostile)] if hostile else [])
        ),
        cursor=json.dumps(scan.valid, sort_keys=True),
    )


def materialized_files(instance: dg.DagsterInstance, channel: str) -> str | None:
    """The files fingerprint that the channel's latest materialization of `videos` recorded."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=videos.key, asset_partitions=[channel]), limit=1
    ).records
    recorded = records[0].asset_materialization.metadata.get(FILES_KEY) if records else None
    return recorded.value if recorded is not None else None
