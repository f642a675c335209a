"""`mednarratives`: run the pipeline without the UI.

    mednarratives run [--channel NAME ...] [--clip]    every channel's assets (--clip: then GenMedCLIP)
    mednarratives demo [--seed N] [--images DIR] ...   generate the demo lectures, then `run --clip` on them
    mednarratives ingest [--channel NAME ...]          probe (and download) every channel's videos
    mednarratives ui [--port N] [--allow-host NAME]    the Dagster UI and daemon, refusing cross-site requests
    mednarratives publish                              cluster profile: Parquet tables into the DuckDB file
    mednarratives remove-channel NAME [--delete-videos]  a channel's partition, rows and files

Each command adds a partition for every channel found on disk (or in channels.yaml), runs its job
for each in-process, printing each stage's progress, then the rows per table and where the files
are. A failed channel is named with its reason and the others still run; the exit status is 0 only
when every channel succeeded. Runs are recorded in the Dagster instance that `mednarratives ui`
uses (DAGSTER_HOME, by default <data root>/dagster_home), so they show up in the UI afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import dagster as dg

from mednarratives_assets.channel_locks import channel_lock
from mednarratives_assets.channels import (
    InvalidChannelName,
    is_valid_channel_name,
    scan_channels,
    skipped_folder_message,
)
from mednarratives_assets.definitions import build_definitions
from mednarratives_assets.defs.channel_removal import remove_channel_everywhere
from mednarratives_assets.defs.jobs import (
    channel_pipeline_job,
    dataset_job,
    genmedclip_job,
    ingest_job,
)
from mednarratives_assets.defs.partitions import channel_partitions
from mednarratives_assets.defs.resources import SAVED_MODELS, ModelStore, build_resources
from mednarratives_assets.deployment import PROFILE_ENV, Deployment, DeploymentError
from mednarratives_assets.parquet_tables import publish
from mednarratives_assets.settings import REPO_ROOT, DataLayout
from mednarratives_assets.stages.channel_removal import RemovalRefused
from mednarratives_assets.stages.genmedclip_model import MIN_TRAINING_PAIRS
from mednarratives_assets.stages.video_downloads import download_failures, read_channels_file
from mednarratives_assets.stages.videos import unreadable_videos
from mednarratives_assets.tables import table_counts
from mednarratives_assets.terminal_progress import step_failures, terminal_progress

# GenMedCLIP trains on every channel's pairs; fewer than this teach a CLIP model nothing.

# A run's loggers start only when its config names them.
TERMINAL_LOGGER = {"loggers": {"console": {}}}
UI_HINT = "UI: mednarratives ui   (http://127.0.0.1:3000; docs/ui-security.md)"


def cli_definitions(layout: DataLayout) -> dg.Definitions:
    """The code location's definitions, with runs printing their progress for a terminal."""
    return dg.Definitions.merge(
        build_definitions(layout), dg.Definitions(loggers={"console": terminal_progress})
    )


def run_job(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    partition_key: str | None = None,
    assets: list[str] | None = None,
) -> str | None:
    """Run `job` in-process; None when it succeeded, else why not ("<stage>: <error>" per failed stage)."""
    result = job.execute_in_process(
        partition_key=partition_key,
        instance=instance,
        run_config=TERMINAL_LOGGER,
        raise_on_error=False,
        asset_selection=[dg.AssetKey(name) for name in assets] if assets else None,
    )
    if result.success:
        return None
    return "; ".join(step_failures(result.all_events)) or f"run {result.run_id} failed"


def materialize_channels(
    layout: DataLayout,
    instance: dg.DagsterInstance,
    channels: list[str] | None = None,
    job_name: str = ingest_job.name,
) -> dict[str, str | None]:
    """Run a channel-partitioned job for the given channels (default: all of them); channel -> None
    when it succeeded, else why it failed.

    A channel fails when its run fails or any of its downloads did. Each malformed channels.yaml
    entry and each folder whose name is no channel name is printed and left out; the rest go on."""
    channels_file = read_channels_file(layout.channels_file)
    for problem in channels_file.problems:
        print(f"channels.yaml: {problem}", flush=True)
    scan = scan_channels(layout.videos_dir, channels_file.channels)
    for name in scan.invalid:
        print(skipped_folder_message(layout.videos_dir / name), flush=True)
    found = list(scan.valid)
    unknown = sorted(set(channels or []) - set(found))
    if unknown:
        raise SystemExit(f"no such channel under {layout.videos_dir} or in {layout.channels_file}: {unknown}")
    channels = channels or found
    known = set(instance.get_dynamic_partitions(channel_partitions.name))
    instance.add_dynamic_partitions(channel_partitions.name, [c for c in channels if c not in known])
    job = cli_definitions(layout).resolve_job_def(job_name)
    outcome = {}
    for number, channel in enumerate(channels, 1):
        print(f"[{number}/{len(channels)}] {job_name}: channel {channel}", flush=True)
        outcome[channel] = run_job(job, instance, channel)
    for channel, failed_download in download_failures(layout.duckdb_path, channels).items():
        outcome[channel] = outcome[channel] or failed_download
    return outcome


def ingest(
    layout: DataLayout, instance: dg.DagsterInstance, channels: list[str] | None = None
) -> dict[str, str | None]:
    return materialize_channels(layout, instance, channels, ingest_job.name)


def run_pipeline(
    layout: DataLayout, instance: dg.DagsterInstance, channels: list[str] | None = None, clip: bool = False
) -> dict[str, str | None]:
    """Every channel's assets, then the dataset over every channel (dataset_job); with `clip`,
    GenMedCLIP and its scores on every channel's pairs. Name (a channel, "dataset" or "genmedclip")
    -> None when it succeeded, else why not."""
    outcome = materialize_channels(layout, instance, channels, channel_pipeline_job.name)
    if not any(reason is None for reason in outcome.values()):
        return outcome
    definitions = cli_definitions(layout)
    n_pairs = table_counts(layout.duckdb_path).get("aligned_pairs", 0)
    if n_pairs:
        print("[dataset] statistics and the merged dataset, split by lecture, over every channel", flush=True)
        outcome["dataset"] = run_job(definitions.resolve_job_def(dataset_job.name), instance)
    else:  # the statistics still say which videos were left out, and why
        print("[dataset] statistics over every channel; no aligned pairs, so no merged dataset", flush=True)
        dataset = definitions.resolve_job_def(dataset_job.name)
        outcome["dataset"] = run_job(dataset, instance, assets=["dataset_statistics"])
    if clip and n_pairs < MIN_TRAINING_PAIRS:
        print(f"genmedclip: skipped, {n_pairs} aligned pairs (at least {MIN_TRAINING_PAIRS} needed)")
    elif clip:
        print(
            f"[genmedclip] training GenMedCLIP and its baseline on {n_pairs} aligned pairs, then scoring them"
        )
        outcome["genmedclip"] = run_job(definitions.resolve_job_def(genmedclip_job.name), instance)
    return outcome


def _print_summary(layout: DataLayout, outcome: dict[str, str | None]) -> None:
    """One line per channel (ok, or FAILED and why) and per channel with unreadable videos; then the
    rows per table and where the files are."""
    channels = [name for name in outcome if is_valid_channel_name(name)]
    unreadable = unreadable_videos(layout.duckdb_path, channels)
    for name, reason in outcome.items():
        print(f"{name}: {'ok' if reason is None else f'FAILED: {reason}'}")
        if name in unreadable:
            print(f"{name}: {unreadable[name]}")
    print(f"DuckDB file: {layout.duckdb_path}")
    for table, n in table_counts(layout.duckdb_path).items():
        print(f"  {table}: {n} rows")
    _print_files(layout)
    print(UI_HINT)


def _print_files(layout: DataLayout) -> None:
    """Where the files are: dataset folders, keyframes, and the models in use."""
    for what, folder in (
        ("dataset, split by lecture", layout.merged_dataset_dir),
        ("dataset folders per channel", layout.exports_dir),
        ("keyframes", layout.keyframes_dir),
    ):
        if folder.is_dir():
            print(f"{what}: {folder}")
    models: ModelStore = build_resources(layout)["models"]
    for model in SAVED_MODELS:
        source = models.source(model)
        if source.exists():
            print(f"{model.replace('_', ' ')}: {source}")


def _demo_config(args: argparse.Namespace):
    from mednarratives_assets.demo.corpus import DemoCorpusConfig

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--size {args.size!r}: expected WIDTHxHEIGHT, such as 1280x720") from None
    try:
        return DemoCorpusConfig(
            seed=args.seed,
            channels=args.channels,
            videos_per_channel=args.videos_per_channel,
            seconds=args.seconds,
            width=width,
            height=height,
            fps=args.fps,
            images_dir=str(Path(args.images).resolve()) if args.images else None,
            styles=args.styles,
        )
    except ValueError as error:
        raise SystemExit(str(error)) from None


def open_instance(home: Path) -> dg.DagsterInstance:
    """The Dagster instance at `home`. Processes started at once take turns to open it: the first
    creates its SQLite storage, and two creating it together leave the schema half-migrated."""
    with channel_lock(home / ".instance-setup.lock", f"mednarratives CLI (pid {os.getpid()})", wait_s=300):
        return dg.DagsterInstance.from_config(str(home))


def quiet_terminal() -> None:
    """No progress bars (their escape codes garble a log) and no notices about Dagster's preview
    APIs, which the pinned version uses on purpose; stage progress comes from terminal_progress."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    for category in (dg.PreviewWarning, dg.BetaWarning):
        warnings.filterwarnings("ignore", category=category)


def publish_tables(layout: DataLayout) -> int:
    """The cluster profile's table store into the DuckDB file; rows per table."""
    try:
        deployment = Deployment.from_env()
    except DeploymentError as error:
        raise SystemExit(str(error)) from None
    if not deployment.is_cluster:
        raise SystemExit(
            f"publish gathers the cluster profile's Parquet tables ({PROFILE_ENV}=cluster); the local "
            f"profile writes {layout.duckdb_path} itself"
        )
    try:
        counts = publish(deployment.tables_url, layout.duckdb_path)
    except (OSError, ValueError) as error:
        raise SystemExit(f"publish from {deployment.tables_url}: {error}") from None
    print(f"{layout.duckdb_path}: {len(counts)} tables, {sum(counts.values())} rows")
    return 0


def remove_channel_command(
    layout: DataLayout, instance: dg.DagsterInstance, channel: str, delete_videos: bool
) -> int:
    """Remove one channel and print what went; exit status 1 when refused."""
    try:
        deployment = Deployment.from_env()
    except DeploymentError as error:
        raise SystemExit(str(error)) from None
    try:
        removal = remove_channel_everywhere(
            layout, instance, channel, delete_videos, deployment.tables_url if deployment.is_cluster else ""
        )
    except (InvalidChannelName, RemovalRefused) as error:
        print(f"remove-channel: {error}", file=sys.stderr)
        return 1
    print("\n".join(removal.lines()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mednarratives", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="every channel's assets, from the videos on disk (or channels.yaml) to the dataset"
    )
    run.add_argument("--channel", action="append", help="only this channel (repeatable)")
    run.add_argument(
        "--clip",
        action="store_true",
        help="then train GenMedCLIP and its baseline on every channel's pairs, and score them",
    )
    ingest_parser = commands.add_parser("ingest", help="probe (and download) every channel's videos")
    ingest_parser.add_argument("--channel", action="append", help="only this channel (repeatable)")
    demo = commands.add_parser(
        "demo", help="generate the demo lectures (if absent), then what `run --clip` does"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--channels", type=int, default=3)
    demo.add_argument("--videos-per-channel", type=int, default=2)
    demo.add_argument("--seconds", type=float, default=60.0, help="about how long each lecture runs")
    demo.add_argument("--size", default="1280x720")
    demo.add_argument("--fps", type=int, default=30)
    demo.add_argument(
        "--images", help="a folder with metadata.jsonl (image, caption, modality, ...), such as MedPix"
    )
    demo.add_argument(
        "--styles",
        choices=("demo", "training", "reserved"),
        default="demo",
        help="demo: the channels' fixed looks; training or reserved: each lecture draws its own style "
        "(voice, pointer, slides, frame size and rate) from that part of the style space "
        "(docs/generalization.md); --size and --fps then do not apply",
    )
    demo.add_argument("--workers", type=int, default=2, help="lectures generated at once")
    demo.add_argument(
        "--regenerate", action="store_true", help="generate again even if the corpus is current"
    )
    demo.add_argument("--no-materialize", action="store_true", help="only generate the corpus")
    ui = commands.add_parser("ui", help="serve the Dagster UI and run the daemon (see docs/ui-security.md)")
    ui.add_argument(
        "--host", default="127.0.0.1", help="address to listen on; beyond loopback needs --allow-remote"
    )
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--workspace", type=Path, default=REPO_ROOT / "workspace.yaml")
    ui.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a further Host (NAME or NAME:PORT) the UI answers to, such as its proxy's (repeatable)",
    )
    ui.add_argument(
        "--allow-remote",
        action="store_true",
        help="listen beyond loopback: only behind a proxy that authenticates users",
    )
    commands.add_parser(
        "publish",
        help="cluster profile: gather the Parquet table store into the DuckDB file (docs/cluster.md)",
    )
    remove = commands.add_parser(
        "remove-channel",
        help="remove a channel: its partition, its rows of every table and its files "
        "(docs/stages/ingest.md#removing-a-channel)",
    )
    remove.add_argument("name", help="the channel")
    remove.add_argument(
        "--delete-videos",
        action="store_true",
        help="delete its video folder data/videos/NAME too; without it, removal is refused while the "
        "folder exists (the new-video sensor would add the channel again)",
    )
    args = parser.parse_args(argv)
    quiet_terminal()

    layout = DataLayout.from_env()
    if args.command == "publish":
        return publish_tables(layout)
    if args.command == "ui":
        from mednarratives_assets.ui import serve_ui

        return serve_ui(layout, args.host, args.port, args.workspace, args.allow_host, args.allow_remote)
    if args.command == "demo":
        from mednarratives_assets.demo.corpus import generate_corpus

        config = _demo_config(args)
        try:
            entries = generate_corpus(layout, config, workers=args.workers, force=args.regenerate)
        except (FileNotFoundError, ValueError) as error:
            raise SystemExit(f"demo corpus: {error}") from None
        print(f"demo corpus: {len(entries)} lectures, ground truth under {layout.ground_truth_dir}")
        if args.no_materialize:
            return 0
    from mednarratives_assets.ui import dagster_home

    # The UI's instance, so that its sensor finds these runs' channels current and launches nothing.
    with open_instance(dagster_home(layout)) as instance:
        if args.command == "remove-channel":
            return remove_channel_command(layout, instance, args.name, args.delete_videos)
        if args.command == "demo":
            outcome = run_pipeline(layout, instance, clip=True)
        elif args.command == "run":
            outcome = run_pipeline(layout, instance, args.channel, args.clip)
        else:
            outcome = ingest(layout, instance, args.channel)
    _print_summary(layout, outcome)
    return 0 if all(reason is None for reason in outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
