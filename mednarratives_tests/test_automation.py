"""Declarative automation (defs/automation.py), evaluated on the code location's own asset graph:
channel assets follow their upstream partition, the dataset group follows the channels, the
genmedclip group retrains at a cron tick after the pairs changed, and the trained models never run
by themselves.

The runs are real Dagster runs of stand-ins: one trivial asset per asset of the graph, with its key,
parents, partitions and automation condition. The conditions read what real runs record (the run's
asset selection, each materialization's inputs), which reported events alone do not have."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import dagster as dg
import pytest

from mednarratives_assets.defs.automation import (
    DEFAULT_GENMEDCLIP_CRON,
    GENMEDCLIP_CRON_ENV,
    genmedclip_cron,
)
from mednarratives_tests.asset_status import unsynced

CHANNEL = "neuro_rounds"
CHANNELS = [CHANNEL, "chest_imaging"]
AFTER_VIDEOS = {
    "transcripts",
    "transcript_words",
    "transcript_segments",
    "stable_chunks",
    "cursor_traces",
    "narratives",
    "boxes",
    "video_filter",
    "aligned_pairs",
    "dataset_export",
}
WHOLE_CHANNEL = {"video_downloads", "videos", *AFTER_VIDEOS}
GENMEDCLIP = {"genmedclip_model", "genmedclip_no_dense_model", "benchmark_scores"}
DATASET = {"dataset_statistics", "dataset_export_all"}
# Ticks of the default cron (daily at 03:00 UTC) fall between these evaluation times.
MIDNIGHT = dt.datetime(2026, 3, 2, 0, 0)


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    from mednarratives_assets.definitions import defs

    return defs


class StandIns:
    """The graph's assets as trivial assets, and real runs of them. `during[asset]` runs inside that
    asset's step, once: what happens elsewhere while a run is part-way through."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self.during: dict[str, Callable[[], object]] = {}
        graph = defs.resolve_asset_graph()
        self.assets = [self._stand_in(graph.get(key)) for key in graph.materializable_asset_keys]
        self.defs = dg.Definitions(assets=self.assets)

    def _stand_in(self, node) -> dg.AssetsDefinition:
        name = node.key.to_user_string()

        @dg.asset(
            key=node.key,
            deps=sorted(node.parent_keys),
            partitions_def=node.partitions_def,
            automation_condition=node.automation_condition,
        )
        def stand_in() -> dg.MaterializeResult:
            if name in self.during:
                self.during.pop(name)()
            return dg.MaterializeResult()

        return stand_in

    def run(self, *assets: str, partition: str | None = CHANNEL) -> None:
        """One run that makes these assets (of one channel, or the unpartitioned ones)."""
        result = dg.materialize(
            self.assets, selection=list(assets), partition_key=partition, instance=self.instance
        )
        assert result.success


class Automation:
    """The automation sensor's ticks, one evaluation after another on one instance."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs, self.instance, self.cursor = defs, instance, None

    def tick(self, at: dt.datetime) -> dict[str, set[str | None]]:
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


@pytest.fixture
def stand_ins(defs, instance) -> StandIns:
    instance.add_dynamic_partitions("channel", CHANNELS)
    return StandIns(defs, instance)


@pytest.fixture
def automation(stand_ins, instance) -> Automation:
    automation = Automation(stand_ins.defs, instance)
    assert automation.tick(MIDNIGHT) == {}
    return automation


def launch(stand_ins: StandIns, requested: dict[str, set[str | None]]) -> None:
    """Run what a tick requested: one run per partition."""
    by_partition: dict[str | None, set[str]] = {}
    for asset, partitions in requested.items():
        for partition in partitions:
            by_partition.setdefault(partition, set()).add(asset)
    for partition, assets in by_partition.items():
        stand_ins.run(*sorted(assets), partition=partition)


def follow(automation: Automation, stand_ins: StandIns, at: dt.datetime) -> list[dict[str, set[str | None]]]:
    """Tick from `at`, a minute apart, running what each tick requests, until a tick requests nothing."""
    ticks = []
    while requested := automation.tick(at + dt.timedelta(minutes=len(ticks))):
        ticks.append(requested)
        assert len(ticks) < 10, ticks
        launch(stand_ins, requested)
    return ticks


def channel_assets(requested: dict[str, set[str | None]], channel: str = CHANNEL) -> set[str]:
    return {asset for asset, partitions in requested.items() if channel in partitions}


def test_a_backfill_of_videos_alone_brings_the_channels_later_assets_after_it(
    automation, stand_ins, defs, instance
):
    stand_ins.run(*WHOLE_CHANNEL)
    stand_ins.run(*DATASET, partition=None)
    assert automation.tick(MIDNIGHT + dt.timedelta(minutes=1)) == {}

    stand_ins.run("videos")  # the backfill
    requested = automation.tick(MIDNIGHT + dt.timedelta(minutes=2))
    assert channel_assets(requested) == AFTER_VIDEOS  # not videos again, nor a model
    assert all(partitions == {CHANNEL} for asset, partitions in requested.items() if asset in AFTER_VIDEOS)
    assert set(requested) - AFTER_VIDEOS <= DATASET  # the dataset group follows in the same tick

    stand_ins.run(*AFTER_VIDEOS)
    stand_ins.run(*DATASET, partition=None)
    assert automation.tick(MIDNIGHT + dt.timedelta(minutes=3)) == {}
    assert unsynced(stand_ins.defs, instance, CHANNELS) == []


def test_a_run_that_made_the_whole_channel_leaves_only_the_dataset_to_follow(automation, stand_ins):
    stand_ins.run(*WHOLE_CHANNEL)
    assert set(automation.tick(MIDNIGHT + dt.timedelta(minutes=1))) == DATASET


def test_a_backfill_of_videos_under_a_running_channel_run_is_followed_once_that_run_ends(
    automation, stand_ins, instance
):
    """The sensor's run of the channel is past `videos` when a backfill of `videos` lands: the
    assets that read the older `videos` are unsynced when the run ends, on the same tick as the
    backfill. A run ending after the parent changed under it has not handled that change."""
    stand_ins.during["transcripts"] = lambda: stand_ins.run("videos")
    stand_ins.run(*WHOLE_CHANNEL)
    # what the run made before the backfill, from the older videos
    read_the_older_videos = ["stable_chunks", "transcript_segments", "transcript_words", "transcripts"]
    assert unsynced(stand_ins.defs, instance, CHANNELS) == [f"{a}[{CHANNEL}]" for a in read_the_older_videos]

    ticks = follow(automation, stand_ins, MIDNIGHT + dt.timedelta(minutes=1))
    assert channel_assets(ticks[0]) == set(read_the_older_videos)
    assert unsynced(stand_ins.defs, instance, CHANNELS) == []


def test_a_tick_that_sees_the_channel_run_in_progress_still_follows_the_backfill_after_it(
    automation, stand_ins, instance
):
    """As above, with a tick between the backfill and the end of the channel run: that tick holds
    back what the run has still to make, and the run's end on a later tick does not count as
    handling the backfill."""
    during_the_run = {}

    def backfill_then_tick():
        stand_ins.run("videos")
        during_the_run.update(automation.tick(MIDNIGHT + dt.timedelta(minutes=1)))

    stand_ins.during["transcripts"] = backfill_then_tick
    stand_ins.run(*WHOLE_CHANNEL)
    assert "transcripts" not in during_the_run  # still to come in the running run
    launch(stand_ins, during_the_run)

    ticks = follow(automation, stand_ins, MIDNIGHT + dt.timedelta(minutes=2))
    assert "transcripts" in channel_assets(ticks[0])
    assert unsynced(stand_ins.defs, instance, CHANNELS) == []


def test_assets_made_by_hand_after_a_backfill_are_not_made_again(automation, stand_ins):
    """A user who backfills `videos`, then materializes the rest of the channel before the
    automation's tick, has brought it in sync: the tick leaves the channel alone."""
    stand_ins.run(*WHOLE_CHANNEL)
    automation.tick(MIDNIGHT + dt.timedelta(minutes=1))
    stand_ins.run("videos")
    stand_ins.run(*AFTER_VIDEOS)
    assert channel_assets(automation.tick(MIDNIGHT + dt.timedelta(minutes=2))) == set()


def test_genmedclip_retrains_only_once_the_pairs_changed_and_a_cron_tick_passed(automation, stand_ins):
    stand_ins.run(*WHOLE_CHANNEL)
    before_the_tick = automation.tick(MIDNIGHT + dt.timedelta(hours=1))
    assert GENMEDCLIP.isdisjoint(before_the_tick)
    stand_ins.run(*DATASET, partition=None)

    after_the_tick = automation.tick(MIDNIGHT + dt.timedelta(hours=3, minutes=1))
    assert {asset for asset in after_the_tick if asset in GENMEDCLIP} == GENMEDCLIP
    stand_ins.run(*GENMEDCLIP, partition=None)
    assert automation.tick(MIDNIGHT + dt.timedelta(hours=3, minutes=2)) == {}

    # The next day's tick finds no new pairs: nothing to retrain.
    assert automation.tick(MIDNIGHT + dt.timedelta(days=1, hours=3, minutes=1)) == {}


def test_a_cron_tick_without_new_pairs_retrains_nothing_and_retraining_waits_a_tick(automation, stand_ins):
    assert automation.tick(MIDNIGHT + dt.timedelta(hours=3, minutes=1)) == {}
    # A tick has passed since the last retraining: new pairs retrain at once, then wait for a tick.
    stand_ins.run("aligned_pairs", "boxes")
    assert set(automation.tick(MIDNIGHT + dt.timedelta(hours=4))) >= GENMEDCLIP
    stand_ins.run(*GENMEDCLIP, partition=None)
    assert GENMEDCLIP.isdisjoint(automation.tick(MIDNIGHT + dt.timedelta(hours=5)))
    stand_ins.run("aligned_pairs", "boxes")
    assert GENMEDCLIP.isdisjoint(automation.tick(MIDNIGHT + dt.timedelta(hours=6)))
    assert GENMEDCLIP.isdisjoint(automation.tick(MIDNIGHT + dt.timedelta(days=1, hours=2)))
    assert set(automation.tick(MIDNIGHT + dt.timedelta(days=1, hours=3, minutes=1))) >= GENMEDCLIP


def test_models_and_ingest_are_not_automated_and_a_retrained_models_consumers_follow_it(
    defs, automation, stand_ins
):
    graph = defs.resolve_asset_graph()
    # the models, and the assets the new-video sensor's runs make
    for asset in ("frame_classifier", "cursor_detector", "video_downloads", "videos"):
        assert graph.get(dg.AssetKey(asset)).automation_condition is None, asset
    stand_ins.run(*WHOLE_CHANNEL)
    automation.tick(MIDNIGHT + dt.timedelta(minutes=1))

    stand_ins.run("frame_classifier", partition=None)  # trained on request
    requested = automation.tick(MIDNIGHT + dt.timedelta(minutes=2))
    assert requested["stable_chunks"] == {CHANNEL}  # the channel never made waits for its sensor run
    assert "frame_classifier" not in requested and "videos" not in requested


def test_the_automation_sensor_runs_by_default_over_every_asset(defs):
    sensor = defs.get_repository_def().get_sensor_def("automation_sensor")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.get_repository_def().asset_graph
    assert sensor.asset_selection.resolve(graph) == graph.materializable_asset_keys


def test_the_genmedclip_cron_is_a_setting_and_a_bad_one_is_named():
    assert genmedclip_cron({}) == DEFAULT_GENMEDCLIP_CRON
    assert genmedclip_cron({GENMEDCLIP_CRON_ENV: "0 4 * * 0"}) == "0 4 * * 0"
    with pytest.raises(ValueError, match=f"{GENMEDCLIP_CRON_ENV}='every night'"):
        genmedclip_cron({GENMEDCLIP_CRON_ENV: "every night"})
