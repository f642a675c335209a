"""What the UI shows for an asset partition: Unsynced (stale) or not, as Dagster resolves it."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest


def asset_statuses(
    defs: dg.Definitions, instance: dg.DagsterInstance, partitions: Iterable[str]
) -> dict[str, StaleStatus]:
    """`asset[partition]` (or `asset` when unpartitioned) -> its status, for every materializable asset."""
    graph = defs.resolve_asset_graph()
    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    partitions = sorted(partitions)
    return {
        f"{key.to_user_string()}[{partition}]" if partition else key.to_user_string(): resolver.get_status(
            key, partition
        )
        for key in graph.materializable_asset_keys
        for partition in (partitions if graph.get(key).is_partitioned else [None])
    }


def unsynced(defs: dg.Definitions, instance: dg.DagsterInstance, partitions: Iterable[str]) -> list[str]:
    """The asset partitions the UI shows as Unsynced."""
    statuses = asset_statuses(defs, instance, partitions)
    return sorted(name for name, status in statuses.items() if status == StaleStatus.STALE)
