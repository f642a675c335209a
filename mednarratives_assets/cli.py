"""`mednarratives`: run the pipeline without the UI.

    mednarratives ingest [--channel NAME ...]

Adds a partition for every channel found on disk (or in channels.yaml), runs `ingest_job`
for each in-process, and prints the rows per table. Runs are recorded in the
Dagster instance at DAGSTER_HOME when it is set, so they show up in the UI afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys

import dagster as dg

from mednarratives_assets.channels import scan_channels
from mednarratives_assets.definitions import build_definitions
from mednarratives_assets.defs.jobs import ingest_job
from mednarratives_assets.defs.partitions import channel_partitions
from mednarratives_assets.settings import DataLayout
from mednarratives_assets.stages.video_downloads import load_channel_urls
from mednarratives_assets.tables import table_counts


def ingest(
    layout: DataLayout, instance: dg.DagsterInstance, channels: list[str] | None = None
) -> dict[str, bool]:
    """Run `ingest_job` for the given channels (default: all of them); channel -> success."""
    found = list(scan_channels(layout.videos_dir, load_channel_urls(layout.channels_file)).valid)
    unknown = sorted(set(channels or []) - set(found))
    if unknown:
        raise SystemExit(f"no such channel under {layout.videos_dir} or in {layout.channels_file}: {unknown}")
    channels = channels or found
    known = set(instance.get_dynamic_partitions(channel_partitions.name))
    instance.add_dynamic_partitions(channel_partitions.name, [c for c in channels if c not in known])
    job = build_definitions(layout).resolve_job_def(ingest_job.name)
    return {
        channel: job.execute_in_process(
            partition_key=channel, instance=instance, raise_on_error=False
        ).success
        for channel in channels
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mednarratives", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ingest_parser = commands.add_parser("ingest", help="probe (and download) every channel's videos")
    ingest_parser.add_argument("--channel", action="append", help="only this channel (repeatable)")
    args = parser.parse_args(argv)

    layout = DataLayout.from_env()
    with (
        dg.DagsterInstance.get()
        if os.environ.get("DAGSTER_HOME")
        else dg.DagsterInstance.ephemeral() as instance
    ):
        outcome = ingest(layout, instance, args.channel)
    for channel, ok in outcome.items():
        print(f"{channel}: {'ok' if ok else 'FAILED (see the run logs above)'}")
    print(f"DuckDB file: {layout.duckdb_path}")
    for table, n in table_counts(layout.duckdb_path).items():
        print(f"  {table}: {n} rows")
    print("UI: DAGSTER_HOME=$PWD/data/dagster_home dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000")
    return 0 if all(outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
