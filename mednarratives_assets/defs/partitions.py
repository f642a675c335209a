"""Channel partitions, and the header that every channel-partitioned asset shares."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import dagster as dg

from mednarratives_assets.channel_locks import ChannelBusy, channel_lock
from mednarratives_assets.channels import InvalidChannelName, check_channel_name
from mednarratives_assets.cpu_share import computing_seat
from mednarratives_assets.defs.automation import CHANNEL_FOLLOWS_UPSTREAM
from mednarratives_assets.defs.resources import DataPaths
from mednarratives_assets.deployment import Deployment

# One partition per channel (one video source); the new-video sensor adds them as folders appear.
channel_partitions = dg.DynamicPartitionsDefinition(name="channel")
# Where steps run: the cluster profile may send GPU-heavy ones to a Celery queue of their own.
deployment = Deployment.from_env()

TABLE_KINDS = frozenset({"duckdb", "polars"})


def channel_check(asset: str, name: str, description: str | None = None) -> dg.AssetCheckSpec:
    """A check evaluated with each channel's materialization of `asset`: one channel's pass never
    hides another's failure. A preview feature in dagster 1.13, which pyproject.toml pins exactly,
    so its warning says nothing new."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name, asset=asset, partitions_def=channel_partitions, description=description
        )


def checked_channel(partition_key: str) -> str:
    """The partition key as a channel name, or a dg.Failure that quotes it and states the rule.

    Keys come from the UI or GraphQL as well as from the folder scan, so every step checks its own
    before any path is built from it."""
    try:
        return check_channel_name(partition_key)
    except InvalidChannelName as exc:
        raise dg.Failure(f"partition {exc}; delete the partition and add a valid one") from exc


def one_writer_per_channel(compute: Callable) -> Callable:
    """Wrap a channel step: check its partition key, then hold the lock of (step, channel) while it
    runs, so that two runs of one channel, even from two Dagster instances, take turns. It computes
    with its share of the machine's cores (`cpu_share.computing_seat`). An OSError
    that escapes the stage (no space, permission, I/O) fails the step naming the path, before the IO
    manager could replace any stored row.

    The step must take the `paths` resource (DataPaths or a subclass): the lock lives under its data
    root."""
    if "paths" not in inspect.signature(compute).parameters:
        raise TypeError(f"{compute.__name__}: a channel step takes the `paths` resource (for its lock)")
    step = compute.__name__

    @contextmanager
    def turn(context: dg.AssetExecutionContext, paths: DataPaths) -> Iterator[None]:
        channel = checked_channel(context.partition_key)
        lock_path = paths.layout.channel_path(paths.layout.locks_dir / step, channel, ".lock")
        try:
            with (
                channel_lock(lock_path, f"run {context.run.run_id[:8]} ({step})", log=context.log.info),
                computing_seat(),
            ):
                yield
        except ChannelBusy as exc:
            raise dg.Failure(f"{step} of channel {channel!r}: {exc}") from exc
        except OSError as exc:  # the machine failed (disk full, permissions), not a video: store nothing
            where = f"{exc.filename}: " if exc.filename else ""
            raise dg.Failure(
                f"{step} of channel {channel!r} stopped on a system error, {where}"
                f"{exc.strerror or exc}; the stored rows and files are unchanged"
            ) from exc

    if inspect.isgeneratorfunction(compute):

        @functools.wraps(compute)
        def guarded(context: dg.AssetExecutionContext, **inputs):
            with turn(context, inputs["paths"]):
                yield from compute(context, **inputs)

    else:

        @functools.wraps(compute)
        def guarded(context: dg.AssetExecutionContext, **inputs):
            with turn(context, inputs["paths"]):
                return compute(context, **inputs)

    return guarded


def channel_asset(
    group: str,
    *,
    checks: Mapping[str, str | None] | None = None,
    deps: Sequence = (),
    kinds: frozenset[str] = TABLE_KINDS,
    output_required: bool = True,
    gpu_heavy: bool = False,
    automation_condition: dg.AutomationCondition | None = CHANNEL_FOLLOWS_UPSTREAM,
) -> Callable:
    """@dg.asset for a table with one partition per channel, written to DuckDB by the IO manager.

    Its rows are stored by their `channel` column; the IO manager takes turns with other steps for
    the DuckDB file only while it loads and stores, so channels compute in parallel.
    checks: name -> description of the asset's per-channel checks.
    Inputs come from the function's parameter names.
    output_required: False for an asset that may yield no output, so that Dagster skips the
    assets downstream of it in the run.
    gpu_heavy: the step gains most from a GPU (MEDNARRATIVES_GPU_QUEUE, deployment.py).
    automation_condition: when the automation sensor requests it (defs/automation.py); by default,
    after its upstream partition changed.
    """

    def decorate(compute: Callable) -> dg.AssetsDefinition:
        name = compute.__name__
        return dg.asset(
            name=name,
            partitions_def=channel_partitions,
            metadata={"partition_expr": "channel"},
            kinds=set(kinds),
            group_name=group,
            deps=list(deps),
            output_required=output_required,
            op_tags=deployment.queue_tags(gpu_heavy),
            automation_condition=automation_condition,
            check_specs=[
                channel_check(compute.__name__, name, description)
                for name, description in (checks or {}).items()
            ],
        )(one_writer_per_channel(compute))

    return decorate
