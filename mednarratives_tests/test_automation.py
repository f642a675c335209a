"""Declarative automation (defs/automation.py), evaluated on the code location's own asset graph:
channel assets follow their upstream partition, the dataset group follows the channels, the
genmedclip group retrains at a cron tick after the pairs changed, and the trained models never run
by themselves."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from mednarratives_assets.defs.automation import (
    DEFAULT_GENMEDCLIP_CRON,
    GENMEDCLIP_CRON_ENV,
    genmedclip_cron,
)

CHANNEL = "neuro_rounds"
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
GENMEDCLIP = {"genmedclip_model", "genmedclip_no_dense_model", "benchmark_scores"}
DATASET = {"dataset_statistics", "dataset_export_all"}
# Ticks of the default cron (daily at 03:00 UTC) fall between these evaluation times.
MIDNIGHT = dt.datetime(2026, 3, 2, 0, 0)


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    from mednarratives_assets.definitions import defs

    return defs


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
        graph = self.defs.get_repository_def().asset_graph
        requested = {
            key.to_user_string(): result.get_requested_partitions(key) for key in graph.get_all_asset_keys()
        }
        return {asset: partitions for asset, partitions in requested.items() if partitions}


def materialized(instance: dg.DagsterInstance, *assets: str, partition: str | None = CHANNEL) -> None:
    for asset in assets:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=partition))


@pytest.fixture
def automation(defs, instance) -> Automation:
    instance.add_dynamic_partitions("channel", [CHANNEL, "chest_imaging"])
    automation = Automation(defs, instance)
    assert automation.tick(MIDNIGHT) == {}
    return automation


def test_a_backfill_of_videos_alone_brings_the_channels_later_assets_after_it(automation, instance):
    materialized(instance, "video_downloads", "videos")
    requested = automation.tick(MIDNIGHT + dt.timedelta(minutes=1))
    channel_assets = {asset for asset, partitions in requested.items() if partitions == {CHANNEL}}
    assert channel_assets == AFTER_VIDEOS  # not the other channel, nor videos again, nor a model
    assert set(requested) - AFTER_VIDEOS <= DATASET  # the dataset group follows in the same tick

    materialized(instance, *sorted(AFTER_VIDEOS))
    materialized(instance, *sorted(DATASET), partition=None)
    assert automation.tick(MIDNIGHT + dt.timedelta(minutes=2)) == {}


def test_a_run_that_made_the_whole_channel_leaves_only_the_dataset_to_follow(automation, instance):
    materialized(instance, "video_downloads", "videos", *sorted(AFTER_VIDEOS))
    assert set(automation.tick(MIDNIGHT + dt.timedelta(minutes=1))) == DATASET


def test_genmedclip_retrains_only_once_the_pairs_changed_and_a_cron_tick_passed(automation, instance):
    materialized(instance, "video_downloads", "videos", *sorted(AFTER_VIDEOS))
    before_the_tick = automation.tick(MIDNIGHT + dt.timedelta(hours=1))
    assert GENMEDCLIP.isdisjoint(before_the_tick)

    after_the_tick = automation.tick(MIDNIGHT + dt.timedelta(hours=3, minutes=1))
    assert {asset for asset in after_the_tick if asset in GENMEDCLIP} == GENMEDCLIP
    materialized(instance, *sorted(GENMEDCLIP), partition=None)
    assert automation.tick(MIDNIGHT + dt.timedelta(hours=3, minutes=2)) == {}

    # The next day's tick finds no new pairs: nothing to retrain.
    assert automation.tick(MIDNIGHT + dt.timedelta(days=1, hours=3, minutes=1)) == {}


def test_a_cron_tick_without_new_pairs_retrains_nothing_and_retraining_waits_a_tick(automation, instance):
    assert automation.tick(MIDNIGHT + dt.timedelta(hours=3, minutes=1)) == {}
    # A tick has passed since the last retraining: new pairs retrain at once, then wait for a tick.
    materialized(instance, "aligned_pairs", "boxes")
    assert set(automation.tick(MIDNIGHT + dt.timedelta(hours=4))) >= GENMEDCLIP
    materialized(instance, *sorted(GENMEDCLIP), partition=None)
    assert automation.tick(MIDNIGHT + dt.timedelta(hours=5)) == {}
    materialized(instance, "aligned_pairs", "boxes")
    assert GENMEDCLIP.isdisjoint(automation.tick(MIDNIGHT + dt.timedelta(hours=6)))
    assert GENMEDCLIP.isdisjoint(automation.tick(MIDNIGHT + dt.timedelta(days=1, hours=2)))
    assert set(automation.tick(MIDNIGHT + dt.timedelta(days=1, hours=3, minutes=1))) >= GENMEDCLIP


def test_models_and_ingest_are_not_automated_and_a_retrained_models_consumers_follow_it(
    defs, automation, instance
):
    graph = defs.get_repository_def().asset_graph
    # the models, and the assets the new-video sensor's runs make
    for asset in ("frame_classifier", "cursor_detector", "video_downloads", "videos"):
        assert graph.get(dg.AssetKey(asset)).automation_condition is None, asset
    materialized(instance, "video_downloads", "videos", *sorted(AFTER_VIDEOS))
    automation.tick(MIDNIGHT + dt.timedelta(minutes=1))

    materialized(instance, "frame_classifier", partition=None)  # trained on request
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
