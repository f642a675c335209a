"""Declarative automation (defs/automation.py), evaluated on the code location's own asset graph:
channel assets follow their upstream partition, the dataset group follows the channels, the
genmedclip group retrains at a cron tick after the pairs or their curated texts changed, and the
trained models never run by themselves.

The runs are real Dagster runs of stand-ins (evaluation/automation_replay.py): one trivial asset per
asset of the graph, with its key, parents, partitions and automation condition. The conditions read
what real runs record (the run's asset selection, each materialization's inputs), which reported
events alone do not have."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from mednarratives_assets.defs.automation import (
    DEFAULT_GENMEDCLIP_CRON,
    GENMEDCLIP_CRON_ENV,
    genmedclip_cron,
)
from mednarratives_assets.evaluation.automation_replay import (
    AutomationTicks,
    StandIns,
    backfill_under_a_run,
    unsynced,
)

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
    "curated_text",
    "medical_entities",
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


@pytest.fixture
def stand_ins(defs, instance) -> StandIns:
    instance.add_dynamic_partitions("channel", CHANNELS)
    return StandIns(defs, instance)


@pytest.fixture
def automation(stand_ins, instance) -> AutomationTicks:
    automation = AutomationTicks(stand_ins.defs, instance)
    assert automation.tick(MIDNIGHT) == {}
    return automation


def run(stand_ins: StandIns, *assets: str, partition: str | None = CHANNEL) -> None:
    stand_ins.run(*assets, partition=partition)


def channel_assets(requested: dict[str, set[str | None]], channel: str = CHANNEL) -> set[str]:
    return {asset for asset, partitions in requested.items() if channel in partitions}


def test_a_backfill_of_videos_alone_brings_the_channels_later_assets_after_it(
    automation, stand_ins, defs, instance
):
    run(stand_ins, *WHOLE_CHANNEL)
    run(stand_ins, *DATASET, partition=None)
    assert automation.tick(MIDNIGHT + dt.timedelta(minutes=1)) == {}

    run(stand_ins, "videos")  # the backfill
    requested = automation.tick(MIDNIGHT + dt.timedelta(minutes=2))
    assert channel_assets(requested) == AFTER_VIDEOS  # not videos again, nor a model
    assert all(partitions == {CHANNEL} for asset, partitions in requested.items() if asset in AFTER_VIDEOS)
    assert set(requested) == AFTER_VIDEOS  # the dataset group waits for their run

    run(stand_ins, *AFTER_VIDEOS)
    assert set(automation.tick(MIDNIGHT + dt.timedelta(minutes=3))) == set()  # a tick after the change
    assert set(automation.tick(MIDNIGHT + dt.timedelta(minutes=4))) == DATASET
    run(stand_ins, *DATASET, partition=None)
    assert automation.tick(MIDNIGHT + dt.timedelta(minutes=5)) == {}
    assert unsynced(stand_ins.defs, instance, CHANNELS) == []


def test_a_run_that_made_the_whole_channel_leaves_only_the_dataset_to_follow_a_tick_later(
    automation, stand_ins
):
    run(stand_ins, *WHOLE_CHANNEL)
    assert automation.tick(MIDNIGHT + dt.timedelta(minutes=1)) == {}
    assert set(automation.tick(MIDNIGHT + dt.timedelta(minutes=2))) == DATASET


def test_the_dataset_waits_while_a_channel_run_the_tick_asked_for_is_in_flight(automation, stand_ins):
    """The tick that requests a backfill's followers does not request the dataset beside them, and
    the next tick, with their run in flight, holds it back too: it would read the channel mid-run."""
    run(stand_ins, *WHOLE_CHANNEL)
    run(stand_ins, *DATASET, partition=None)
    automation.tick(MIDNIGHT + dt.timedelta(minutes=1))
    run(stand_ins, "videos")
    requested = automation.tick(MIDNIGHT + dt.timedelta(minutes=2))
    assert not set(requested) & DATASET
    during_the_run = {}
    stand_ins.during["curated_text"] = lambda: during_the_run.update(
        automation.tick(MIDNIGHT + dt.timedelta(minutes=3))
    )
    stand_ins.launch(requested)
    assert not set(during_the_run) & DATASET
    assert set(automation.tick(MIDNIGHT + dt.timedelta(minutes=4))) == set()  # the run's last changes
    assert set(automation.tick(MIDNIGHT + dt.timedelta(minutes=5))) == DATASET


def test_a_backfill_of_videos_under_a_running_channel_run_is_followed_once_that_run_ends(
    automation, stand_ins, instance
):
    """The sensor's run of the channel is past `videos` when a backfill of `videos` lands: the
    assets that read the older `videos` are unsynced when the run ends, on the same tick as the
    backfill. What a run made from a parent that changed under it is requested again."""
    stand_ins.during["transcripts"] = lambda: run(stand_ins, "videos")
    run(stand_ins, *WHOLE_CHANNEL)
    # what the run made before the backfill, from the older videos
    read_the_older_videos = ["stable_chunks", "transcript_segments", "transcript_words", "transcripts"]
    assert unsynced(stand_ins.defs, instance, CHANNELS) == [f"{a}[{CHANNEL}]" for a in read_the_older_videos]

    ticks = automation.follow(stand_ins, MIDNIGHT + dt.timedelta(minutes=1))
    assert channel_assets(ticks[0]) == set(read_the_older_videos)
    assert unsynced(stand_ins.defs, instance, CHANNELS) == []


def test_a_tick_that_sees_the_channel_run_in_progress_still_follows_the_backfill_after_it(
    automation, stand_ins, instance
):
    """As above, with a tick between the backfill and the end of the channel run: that tick holds
    back what the run has still to make, and what the run made from the older videos is requested
    once it ends."""
    during_the_run = {}

    def backfill_then_tick():
        run(stand_ins, "videos")
        during_the_run.update(automation.tick(MIDNIGHT + dt.timedelta(minutes=1)))

    stand_ins.during["transcripts"] = backfill_then_tick
    run(stand_ins, *WHOLE_CHANNEL)
    assert "transcripts" not in during_the_run  # still to come in the running run
    stand_ins.launch(during_the_run)

    ticks = automation.follow(stand_ins, MIDNIGHT + dt.timedelta(minutes=2))
    assert "transcripts" in channel_assets(ticks[0])
    assert unsynced(stand_ins.defs, instance, CHANNELS) == []


@pytest.mark.parametrize("tick_between", [False, True], ids=["same tick", "a tick between"])
@pytest.mark.parametrize("during", ["transcripts", "narratives", "dataset_export"])
def test_a_backfill_landing_during_a_channel_run_leaves_nothing_unsynced(defs, during, tick_between):
    assert backfill_under_a_run(defs, WHOLE_CHANNEL, during, tick_between) == []


def test_dagsters_own_since_last_handled_leaves_such_a_channel_unsynced(defs):
    """The replay above, with Dagster's handling alone: the assets that read the older videos stay so."""
    stock = dg.AutomationCondition.any_deps_updated().since_last_handled()
    left = backfill_under_a_run(
        defs, WHOLE_CHANNEL, "transcripts", True, replace={"follows its parents": stock}
    )
    assert "transcripts[replayed]" in left


def test_assets_made_by_hand_after_a_backfill_are_not_made_again(automation, stand_ins):
    """A user who backfills `videos`, then materializes the rest of the channel before the
    automation's tick, has brought it in sync: the tick leaves the channel alone."""
    run(stand_ins, *WHOLE_CHANNEL)
    automation.tick(MIDNIGHT + dt.timedelta(minutes=1))
    run(stand_ins, "videos")
    run(stand_ins, *AFTER_VIDEOS)
    assert channel_assets(automation.tick(MIDNIGHT + dt.timedelta(minutes=2))) == set()


def test_genmedclip_retrains_only_once_the_pairs_changed_and_a_cron_tick_passed(automation, stand_ins):
    run(stand_ins, *WHOLE_CHANNEL)
    before_the_tick = automation.tick(MIDNIGHT + dt.timedelta(hours=1))
    assert GENMEDCLIP.isdisjoint(before_the_tick)
    run(stand_ins, *DATASET, partition=None)

    after_the_tick = automation.tick(MIDNIGHT + dt.timedelta(hours=3, minutes=1))
    assert {asset for asset in after_the_tick if asset in GENMEDCLIP} == GENMEDCLIP
    run(stand_ins, *GENMEDCLIP, partition=None)
    assert automation.tick(MIDNIGHT + dt.timedelta(hours=3, minutes=2)) == {}

    # The next day's tick finds no new pairs: nothing to retrain.
    assert automation.tick(MIDNIGHT + dt.timedelta(days=1, hours=3, minutes=1)) == {}


def test_a_cron_tick_without_new_pairs_retrains_nothing_and_retraining_waits_a_tick(automation, stand_ins):
    assert automation.tick(MIDNIGHT + dt.timedelta(hours=3, minutes=1)) == {}
    # A tick has passed since the last retraining: new pairs retrain at once, then wait for a tick.
    # At once is once their curated texts are made: not in the tick that requests them (it sees the
    # new pairs), nor in the one that sees them made.
    run(stand_ins, "aligned_pairs", "boxes")
    curating = automation.tick(MIDNIGHT + dt.timedelta(hours=4))
    assert curating["curated_text"] == {CHANNEL} and GENMEDCLIP.isdisjoint(curating)
    stand_ins.launch(curating)
    assert GENMEDCLIP.isdisjoint(automation.tick(MIDNIGHT + dt.timedelta(hours=4, minutes=1)))
    assert set(automation.tick(MIDNIGHT + dt.timedelta(hours=4, minutes=2))) >= GENMEDCLIP
    run(stand_ins, *GENMEDCLIP, partition=None)
    assert GENMEDCLIP.isdisjoint(automation.tick(MIDNIGHT + dt.timedelta(hours=5)))
    run(stand_ins, "aligned_pairs", "boxes")
    assert GENMEDCLIP.isdisjoint(automation.tick(MIDNIGHT + dt.timedelta(hours=6)))
    assert GENMEDCLIP.isdisjoint(automation.tick(MIDNIGHT + dt.timedelta(days=1, hours=2)))
    assert set(automation.tick(MIDNIGHT + dt.timedelta(days=1, hours=3, minutes=1))) >= GENMEDCLIP


def test_curated_texts_made_again_alone_retrain_at_the_next_cron_tick(automation, stand_ins):
    run(stand_ins, *WHOLE_CHANNEL)
    automation.follow(stand_ins, MIDNIGHT + dt.timedelta(hours=3, minutes=1))  # the dataset, GenMedCLIP
    run(stand_ins, "curated_text")  # a language model's texts in place of the rules', say
    ticks = automation.follow(stand_ins, MIDNIGHT + dt.timedelta(hours=4))
    assert ticks and all(GENMEDCLIP.isdisjoint(requested) for requested in ticks)
    assert set(automation.tick(MIDNIGHT + dt.timedelta(days=1, hours=3, minutes=1))) >= GENMEDCLIP


def test_models_and_ingest_are_not_automated_and_a_retrained_models_consumers_follow_it(
    defs, automation, stand_ins
):
    graph = defs.resolve_asset_graph()
    # the models, and the assets the new-video sensor's runs make
    for asset in ("frame_classifier", "cursor_detector", "video_downloads", "videos"):
        assert graph.get(dg.AssetKey(asset)).automation_condition is None, asset
    run(stand_ins, *WHOLE_CHANNEL)
    automation.tick(MIDNIGHT + dt.timedelta(minutes=1))

    run(stand_ins, "frame_classifier", partition=None)  # trained on request
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
