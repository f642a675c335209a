from collections.abc import Iterator, Mapping
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
from pydantic import Field

from mednarratives_assets.channel_state import channel_state
from mednarratives_assets.channels import channel_fingerprint
from mednarratives_assets.defs.checks import rows_check
from mednarratives_assets.defs.metadata import markdown_preview, png_image
from mednarratives_assets.defs.partitions import channel_asset
from mednarratives_assets.defs.resources import DataPaths, ModelStore
from mednarratives_assets.defs.video_downloads import video_downloads
from mednarratives_assets.settings import OutsideDataRoot
from mednarratives_assets.stages.video_downloads import read_channels_file
from mednarratives_assets.stages.videos import (
    first_frames_sheet,
    probe_channel,
    remove_files_of_deleted_videos,
    videos_in_other_channels,
)

# Metadata key of a materialization of `videos`: the channel's state (channel_state.py) in its run.
STATE_KEY = "channel_state"
# Metadata key of a materialization of `videos`: the fingerprint of the channel's files and URLs
# (channels.channel_fingerprint) that it probed, which the new-video sensor compares the folder with.
FILES_KEY = "files_fingerprint"
# The trained models that channel stages use.
CHANNEL_MODELS = ("frame_classifier", "cursor_detector")


class VideosConfig(dg.Config):
    skip_if_current: bool = Field(
        default=False,
        description="Yield nothing when the channel is current, so the run stops here: its videos, "
        "run config, resources, code and models are those of the run that made the latest "
        "materialization of every asset this run would make. The new-video sensor's runs set it.",
    )


# Not automated: video_downloads is made again by every sensor run, even one that stops here, and
# what it fetches lands in the folder, which the new-video sensor watches.
@channel_asset(
    "ingest",
    deps=[video_downloads],
    checks={
        "all_videos_readable": None,
        "no_video_in_another_channel": "Warns for each video whose content (sha256) another channel "
        "has too: the merged dataset keeps the pairs of the copy in the first channel by name.",
    },
    output_required=False,
    automation_condition=None,
)
def videos(
    context: dg.AssetExecutionContext, config: VideosConfig, paths: DataPaths, models: ModelStore
) -> Iterator:
    """Every video file of the channel, `data/videos/<channel>/<video_id>.<ext>`, probed with PyAV.

    One row per file: stream properties, size and sha256, source metadata from yt-dlp, and a
    status. Unreadable files, and links that lead out of the data root, get status 'error' and a
    message rather than failing the run; a channel folder that leads out of the data root fails it.
    The keyframes and cached transcripts of videos whose files are gone are deleted.
    Table `videos`, documented in docs/schema.md.

    With `skip_if_current` (the new-video sensor's runs), a channel that is current yields nothing
    and Dagster skips every asset after it in the run: its videos, the run's config, the code and
    the models are those of the last run that materialized every asset this run would, and that
    run's rows are still the latest (channel_state.py). Without it, as in a backfill, every asset
    is materialized, each video from the stages' caches.
    """
    channel = context.partition_key
    layout = paths.layout
    data_root = layout.data_root
    try:
        previous = paths.stored_videos(channel)
    except (duckdb.Error, pl.exceptions.PolarsError) as exc:  # a writer holds it, say: clean up later
        context.log.warning(
            f"cannot read the stored videos of {channel!r} ({exc}); every file is read again and "
            "cached transcripts are kept"
        )
        previous = None
    try:
        # Taken before probing: a file that lands meanwhile differs from it, so the sensor sees it.
        files = channel_fingerprint(
            layout.channel_dir(channel), read_channels_file(layout.channels_file).channels.get(channel, ())
        )
        frame = probe_channel(layout, channel, log=context.log.info, known=previous)
    except OutsideDataRoot as exc:
        raise dg.Failure(f"videos of channel {channel!r}: {exc}") from exc
    state = channel_state(
        frame,
        without_own_config(context.run.run_config),
        configured_resources(context.job_def),
        {model: models.fingerprint(model) for model in CHANNEL_MODELS},
    )
    errors = frame.filter(pl.col("status") == "error")
    readable = rows_check(
        "all_videos_readable", errors, ["path", "error"], "errors", severity=dg.AssetCheckSeverity.WARN
    )
    copies = copies_in_other_channels(context, paths, frame)
    elsewhere = rows_check(
        "no_video_in_another_channel",
        copies,
        list(copies.columns),
        "videos_in_another_channel",
        severity=dg.AssetCheckSeverity.WARN,
    )
    current_as_of = run_with_state(context, state) if config.skip_if_current else None
    if current_as_of is not None:
        context.log.info(
            f"channel {channel!r} is current: its {frame.height} videos, this run's config, the code "
            f"and the models are those of run {current_as_of[:8]}, which materialized what this run "
            "would; nothing to compute"
        )
        yield readable  # the checks hold for the stored rows, which are these
        yield elsewhere
        return
    removed = remove_files_of_deleted_videos(layout, channel, frame, previous, log=context.log.info)
    yield dg.Output(
        frame,
        metadata={
            "dagster/row_count": frame.height,
            STATE_KEY: state,
            FILES_KEY: files,
            "n_errors": errors.height,
            "hours_of_video": round((frame["duration_s"].sum() or 0.0) / 3600, 3),
            "n_removed_keyframe_folders": len(removed.keyframe_folders),
            "n_removed_cached_transcripts": len(removed.transcript_cache_entries),
            "n_videos_in_another_channel": copies["video_id"].n_unique(),
            "videos": markdown_preview(
                frame, ["video_id", "duration_s", "width", "height", "fps", "has_audio", "status", "error"]
            ),
            "first_frames": png_image(first_frames_sheet(data_root, frame), f"first frames of {channel}"),
        },
    )
    yield readable
    yield elsewhere


def copies_in_other_channels(
    context: dg.AssetExecutionContext, paths: DataPaths, frame: pl.DataFrame
) -> pl.DataFrame:
    """The channel's videos that another channel's stored videos hold too (by sha256), each logged
    as a warning; none when the other channels' rows cannot be read now (a writer holds the file)."""
    channel = context.partition_key
    try:
        others = paths.videos_of_other_channels(channel)
    except (duckdb.Error, pl.exceptions.PolarsError, OSError) as exc:
        context.log.warning(f"cannot read the other channels' videos ({exc}); copies are not looked for")
        return videos_in_other_channels(frame.clear(), frame.clear().select("channel", "video_id", "sha256"))
    copies = videos_in_other_channels(frame, others)
    for video_id, _sha, other_channel, other_video_id, exported_from in copies.iter_rows():
        context.log.warning(
            f"video {video_id!r} of channel {channel!r} is the same file as {other_video_id!r} of channel "
            f"{other_channel!r}: the merged dataset keeps the pairs of channel {exported_from!r}'s copy"
        )
    return copies


def without_own_config(run_config: Mapping) -> dict:
    """The run config without the `videos` op's own, which decides whether to compute, not what."""
    ops = {op: config for op, config in (run_config.get("ops") or {}).items() if op != "videos"}
    return {**run_config, "ops": ops}


def configured_resources(job: dg.JobDefinition) -> dict:
    """Each resource of the job by its configured values (a ConfigurableResource's fields)."""
    return {
        name: resource.config_schema.default_value if resource.config_schema.default_provided else None
        for name, resource in job.resource_defs.items()
    }


def run_with_state(context: dg.AssetExecutionContext, state: str) -> str | None:
    """The run whose materialization of this channel's videos recorded `state`, when it also holds the
    latest materialization of every asset this run would materialize after videos, and every path
    those name (an export folder, say) is still there; else None."""
    instance = context.instance
    channel = context.partition_key

    def latest(key: dg.AssetKey):
        found = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[channel]), limit=1
        ).records
        return found[0] if found else None

    own = latest(context.asset_key)
    if own is None:
        return None
    recorded = own.asset_materialization.metadata.get(STATE_KEY)
    if recorded is None or recorded.value != state:
        return None
    graph = context.job_def.asset_layer.asset_graph
    after = dg.AssetSelection.assets(context.asset_key).downstream(include_self=False).resolve(graph)
    selected = context.run.asset_selection
    for key in after:
        if selected and key not in selected:  # empty: the whole job
            continue
        record = latest(key)
        if record is None or record.run_id != own.run_id:
            return None
        named = record.asset_materialization.metadata.values()
        files = [Path(v.path) for v in named if isinstance(v, dg.PathMetadataValue) and "://" not in v.path]
        if not all(path.exists() for path in files):  # a table store's objects are the IO manager's
            return None
    return own.run_id
