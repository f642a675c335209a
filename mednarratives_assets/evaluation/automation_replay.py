"""The automation's conditions replayed on real Dagster runs of stand-in assets (used by tests and
`benchmarks/automation.py`).

A stand-in is a trivial asset with a real asset's key, parents, partitions, group and automation
condition, so a run of stand-ins records what a run of the pipeline records (its asset selection,
each materialization's inputs) in seconds. The conditions read exactly that. `StandIns.during`
runs something inside a step, such as a backfill landing while a run is part-way through.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

import dagster as dg
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

Requested = dict[str, set[str | None]]  # asset -> the partitions a tick requested


class StandIns:
    """The graph's materializable assets as trivial assets (key, parents, partitions, group and
    automation condition kept), and real runs of them on `instance`.

    `during[asset]` runs inside that asset's step, once. `replace` swaps a labelled part of every
    condition (`{"handled": other}`), to replay another version of a condition."""

    def __init__(
        self,
        defs: dg.Definitions,
        instance: dg.DagsterInstance,
        replace: dict[str, dg.AutomationCondition] | None = None,
    ) -> None:
        self.instance = instance
        self.during: dict[str, Callable[[], object]] = {}
        graph = defs.resolve_asset_graph()
        self.assets = [
            self._stand_in(graph.get(key), replace or {}) for key in graph.materializable_asset_keys
        ]
        self.defs = dg.Definitions(assets=self.assets)

    def _stand_in(self, node, replace: dict[str, dg.AutomationCondition]) -> dg.AssetsDefinition:
        name = node.key.to_user_string()
        condition = node.automation_condition
        if condition is not None:
            for label, other in replace.items():
                condition = condition.replace(label, other)

        @dg.asset(
            key=node.key,
            deps=sorted(node.parent_keys),
            partitions_def=node.partitions_def,
            group_name=node.group_name,  # conditions select by group
            automation_condition=condition,
        )
        def stand_in() -> dg.MaterializeResult:
            if name in self.during:
                self.during.pop(name)()
            return dg.MaterializeResult()

        return stand_in

    def run(self, *assets: str, partition: str | None = None) -> None:
        """One run that makes these assets (of one partition, or the unpartitioned ones)."""
        result = dg.materialize(
            self.assets, selection=list(assets), partition_key=partition, instance=self.instance
        )
        if not result.success:
            raise RuntimeError(f"the stand-ins' run of {sorted(assets)} failed")

    def launch(self, requested: Requested) -> None:
        """Run what a tick requested: one run per partition, as the sensor launches them."""
        by_partition: dict[str | None, set[str]] = {}
        for asset, partitions in requested.items():
            for partition in partitions:
                by_partition.setdefault(partition, set()).add(asset)
        for partition, assets in by_partition.items():
            self.run(*sorted(assets), partition=partition)


class AutomationTicks:
    """The automation sensor's ticks, one evaluation after another on one instance."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs, self.instance, self.cursor = defs, instance, None

    def tick(self, at: dt.datetime) -> Requested:
        """Asset -> the partitions requested at `at`."""
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.cursor, evaluation_time=at
        )
        self.cursor = result.cursor
        requested = {
            key.to_user_string(): result.get_requested_partitions(key)
            for key in self.defs.resolve_asset_graph().get_all_asset_keys()
        }
        return {asset: partitions for asset, partitions in requested.items() if partitions}

    def follow(self, stand_ins: StandIns, at: dt.datetime, max_ticks: int = 10) -> list[Requested]:
        """Tick from `at`, a minute apart, running what each tick requests, until two ticks in a row
        request nothing (the dataset and GenMedCLIP wait a tick after a change); the ticks that
        requested something. A RuntimeError after `max_ticks` of those."""
        ticks: list[Requested] = []
        quiet = minute = 0
        while quiet < 2:
            requested = self.tick(at + dt.timedelta(minutes=minute))
            minute += 1
            quiet = 0 if requested else quiet + 1
            if not requested:
                continue
            if len(ticks) == max_ticks:
                raise RuntimeError(f"the automation still requests after {max_ticks} ticks: {requested}")
            ticks.append(requested)
            stand_ins.launch(requested)
        return ticks


def unsynced(defs: dg.Definitions, instance: dg.DagsterInstance, partitions: Iterable[str]) -> list[str]:
    """The asset partitions (`asset[partition]`, or `asset` when unpartitioned) that the UI shows
    as Unsynced: stale, as Dagster's resolver says."""
    graph = defs.resolve_asset_graph()
    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    partitions = sorted(partitions)
    return sorted(
        f"{key.to_user_string()}[{partition}]" if partition else key.to_user_string()
        for key in graph.materializable_asset_keys
        for partition in (partitions if graph.get(key).is_partitioned else [None])
        if resolver.get_status(key, partition) == StaleStatus.STALE
    )


def backfill_under_a_run(
    defs: dg.Definitions,
    channel_assets: Iterable[str],
    during: str,
    tick_between: bool,
    replace: dict[str, dg.AutomationCondition] | None = None,
    channel: str = "replayed",
    start: dt.datetime = dt.datetime(2026, 3, 2, 0, 0),
) -> list[str]:
    """A run makes `channel_assets` of a channel; while it makes `during`, a backfill of `videos`
    lands (and, with `tick_between`, the sensor ticks). Then the automation ticks until quiet,
    running what it asks for. What is left Unsynced."""
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("channel", [channel])
        stand_ins = StandIns(defs, instance, replace)
        ticks = AutomationTicks(stand_ins.defs, instance)
        ticks.tick(start)
        meanwhile: Requested = {}

        def backfill() -> None:
            stand_ins.run("videos", partition=channel)
            if tick_between:
                meanwhile.update(ticks.tick(start + dt.timedelta(minutes=1)))

        stand_ins.during[during] = backfill
        stand_ins.run(*channel_assets, partition=channel)
        stand_ins.launch(meanwhile)
        ticks.follow(stand_ins, start + dt.timedelta(minutes=2))
        return unsynced(stand_ins.defs, instance, [channel])
