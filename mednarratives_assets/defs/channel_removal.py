"""`remove_channel_job`: removing a channel from the UI (the CLI's `mednarratives remove-channel`
calls `remove_channel_everywhere` too). The work is stages/channel_removal.py's."""

from collections.abc import Callable

import dagster as dg
from pydantic import Field

from mednarratives_assets.channels import InvalidChannelName, check_channel_name
from mednarratives_assets.defs.partitions import channel_partitions
from mednarratives_assets.defs.resources import DataPaths
from mednarratives_assets.settings import DataLayout
from mednarratives_assets.stages.channel_removal import ChannelRemoval, RemovalRefused, remove_channel

# Runs of a channel that may still write its rows and files.
ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def active_runs_of(instance: dg.DagsterInstance, channel: str) -> list[str]:
    """Ids of the instance's queued or running runs of the channel's partition."""
    records = instance.get_runs(
        filters=dg.RunsFilter(statuses=ACTIVE_STATUSES, tags={"dagster/partition": channel})
    )
    return [run.run_id for run in records]


def remove_channel_everywhere(
    layout: DataLayout,
    instance: dg.DagsterInstance,
    channel: str,
    delete_videos: bool = False,
    tables_url: str = "",
    log: Callable[[str], None] = lambda _msg: None,
) -> ChannelRemoval:
    """The channel's rows, files (and with `delete_videos` its videos), then its partition.
    InvalidChannelName for a hostile name; RemovalRefused while its video folder or channels.yaml
    would bring it back, or a run of it is queued or running."""
    check_channel_name(channel)
    active = active_runs_of(instance, channel)
    if active:
        raise RemovalRefused(
            f"channel {channel!r} has runs queued or in progress ({', '.join(r[:8] for r in active)}): "
            "let them finish, or cancel them, then remove it"
        )
    removal = remove_channel(layout, channel, delete_videos, tables_url, log=log)
    if instance.has_dynamic_partition(channel_partitions.name, channel):
        instance.delete_dynamic_partition(channel_partitions.name, channel)
        removal.partition_deleted = True
        log(f"deleted the partition {channel!r}")
    return removal


class RemoveChannelConfig(dg.Config):
    channel: str = Field(description="The channel to remove: its partition, rows and files.")
    delete_videos: bool = Field(
        default=False,
        description="Delete its video folder data/videos/<channel> too. Without it, removal is refused "
        "while the folder exists: the new-video sensor would add the channel again from it.",
    )


@dg.op
def remove_channel_op(context: dg.OpExecutionContext, config: RemoveChannelConfig, paths: DataPaths) -> None:
    """Remove a channel: its partition, its rows of every table, its files (keyframes, pairs,
    narratives, exports, cache entries, locks), and with delete_videos its videos. Refused for a
    name that breaks the channel rule, while data/videos/<channel> exists (without delete_videos)
    or channels.yaml lists it, and while a run of it is queued or running."""
    try:
        removal = remove_channel_everywhere(
            paths.layout,
            context.instance,
            config.channel,
            config.delete_videos,
            paths.tables_url,
            log=context.log.info,
        )
    except (InvalidChannelName, RemovalRefused) as exc:
        raise dg.Failure(f"remove_channel: {exc}") from exc
    for line in removal.lines():
        context.log.info(line)
    context.add_output_metadata(
        {
            "channel": removal.channel,
            "partition_deleted": removal.partition_deleted,
            **{f"rows_{table}": n for table, n in sorted(removal.rows.items())},
            **{f"object {name}": n for name, n in sorted(removal.objects.items())},
            "paths": dg.MetadataValue.md("\n".join(f"- `{p}`" for p in removal.paths) or "_none_"),
            **{f"cache_entries_{stage}": n for stage, n in sorted(removal.stage_cache_entries.items())},
            "n_cached_transcripts": len(removal.transcript_cache_entries),
            "videos_folder": removal.videos_folder or "kept",
            "report": dg.MetadataValue.md("\n".join(removal.lines())),
        }
    )


@dg.job(
    description="Remove one channel (run config: ops: remove_channel_op: config: channel: NAME): its "
    "partition, rows and files; then run dataset_job again. docs/stages/ingest.md#removing-a-channel"
)
def remove_channel_job():
    remove_channel_op()
