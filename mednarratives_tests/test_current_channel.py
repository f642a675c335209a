"""A run that may skip (the new-video sensor's) computes nothing for a channel that is current:
`videos` yields no output and Dagster skips every asset after it. Anything the state covers (a
video, the run config, a resource, a model, a later partial run, a file a run wrote) makes the
channel compute again, and a run that was not asked to skip (a backfill) always materializes.
Through Dagster, with the real `videos` asset and a small channel asset after it."""

import dagster as dg
import polars as pl
import pytest

from mednarratives_assets.channel_state import channel_state, code_fingerprint
from mednarratives_assets.defs.partitions import channel_asset
from mednarratives_assets.defs.resources import DataPaths, SpeechRecognizer, build_resources
from mednarratives_assets.defs.video_downloads import video_downloads
from mednarratives_assets.defs.videos import STATE_KEY, videos
from mednarratives_assets.evaluation.automation_replay import unsynced
from mednarratives_tests.conftest import make_video

CHANNEL = "radiology"


class SummaryConfig(dg.Config):
    scale: float = 1.0


@channel_asset("test")
def video_summary(
    context: dg.AssetExecutionContext, config: SummaryConfig, videos: pl.DataFrame, paths: DataPaths
) -> dg.Output:
    """Stands for the channel stages: a table from videos, and a folder it writes."""
    folder = paths.layout.exports_dir / context.partition_key
    folder.mkdir(parents=True, exist_ok=True)
    frame = videos.select("channel", "video_id", (pl.col("duration_s") * config.scale).alias("scaled_s"))
    return dg.Output(frame, metadata={"folder": dg.MetadataValue.path(str(folder))})


def pipeline(layout, **resources) -> dg.Definitions:
    return dg.Definitions(
        assets=[video_downloads, videos, video_summary],
        resources=build_resources(layout) | resources,
        jobs=[dg.define_asset_job("pipeline", selection=dg.AssetSelection.all())],
    )


@pytest.fixture
def channel(layout, instance):
    instance.add_dynamic_partitions("channel", [CHANNEL])
    make_video(layout.channel_dir(CHANNEL) / "chest_ct.mp4")
    return pipeline(layout)


def run(defs, instance, run_config: dict | None = None, skip: bool = True) -> dg.ExecuteInProcessResult:
    """A run of the pipeline; `skip`: as the sensor launches it (skip_if_current)."""
    ops = {**(run_config or {}).get("ops", {}), "videos": {"config": {"skip_if_current": skip}}}
    result = defs.resolve_job_def("pipeline").execute_in_process(
        partition_key=CHANNEL, instance=instance, run_config={**(run_config or {}), "ops": ops}
    )
    assert result.success
    return result


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}


def skipped(result: dg.ExecuteInProcessResult) -> set[str]:
    return {event.step_key for event in result.all_events if event.is_step_skipped}


def test_a_current_channel_skips_everything_after_videos(layout, instance, channel):
    first = run(channel, instance)
    assert materialized(first) == {"video_downloads", "videos", "video_summary"}

    again = run(channel, instance)
    assert materialized(again) == {"video_downloads"}
    assert skipped(again) == {"video_summary"}
    logs = " ".join(entry.user_message for entry in instance.all_logs(again.run_id))
    assert f"channel {CHANNEL!r} is current" in logs and first.run_id[:8] in logs


def test_a_run_not_asked_to_skip_materializes_a_current_channel(layout, instance, channel):
    run(channel, instance)
    backfill = run(channel, instance, skip=False)
    assert materialized(backfill) == {"video_downloads", "videos", "video_summary"}
    # whether a run may skip is no part of the state: the sensor's next run finds the channel current
    assert materialized(run(channel, instance)) == {"video_downloads"}


@pytest.mark.parametrize(
    "change",
    [
        "new video",
        "changed video",
        "run config",
        "resource",
        "model",
        "partial run",
        "written folder removed",
    ],
)
def test_what_the_state_covers_makes_the_channel_compute_again(layout, instance, channel, change):
    run(channel, instance)
    config = {}
    defs = channel
    if change == "new video":
        make_video(layout.channel_dir(CHANNEL) / "brain_mr.mp4")
    elif change == "changed video":
        make_video(layout.channel_dir(CHANNEL) / "chest_ct.mp4", seconds=2.0)
    elif change == "run config":
        config = {"ops": {"video_summary": {"config": {"scale": 2.0}}}}
    elif change == "resource":
        defs = pipeline(layout, asr=SpeechRecognizer(beam_size=1))
    elif change == "model":
        layout.frame_classifier_path.parent.mkdir(parents=True, exist_ok=True)
        layout.frame_classifier_path.write_bytes(b"retrained weights")
    elif change == "partial run":  # video_summary alone, in a run of its own
        partial = dg.materialize(
            [video_summary, videos.to_source_asset()],
            resources=build_resources(layout),
            partition_key=CHANNEL,
            instance=instance,
            selection=[video_summary],
        )
        assert partial.success
    elif change == "written folder removed":
        (layout.exports_dir / CHANNEL).rmdir()
    again = run(defs, instance, config)
    assert materialized(again) == {"video_downloads", "videos", "video_summary"}, change
    # Once that run is the latest, the channel is current again.
    same = config if change == "run config" else {}
    assert materialized(run(defs, instance, same)) == {"video_downloads"}, change


def test_the_state_is_recorded_and_stable(layout, instance, channel):
    first, second = run(channel, instance, skip=False), run(channel, instance, skip=False)
    states = [
        next(
            m.metadata[STATE_KEY].value
            for m in result.asset_materializations_for_node("videos")
            if m.asset_key.path == ["videos"]
        )
        for result in (first, second)
    ]
    assert states[0] == states[1] and len(states[0]) == 64


def test_channel_state_changes_with_each_part():
    frame = pl.DataFrame({"video_id": ["a"], "sha256": ["1" * 64], "probed_at": [1]})
    models = {"frame_classifier": "x"}
    base = channel_state(frame, {}, {"asr": {"engine": "faster-whisper"}}, models)
    assert (
        channel_state(
            frame.with_columns(probed_at=pl.lit(2)), {}, {"asr": {"engine": "faster-whisper"}}, models
        )
        == base
    )
    assert (
        channel_state(
            frame.with_columns(sha256=pl.lit("2" * 64)), {}, {"asr": {"engine": "faster-whisper"}}, models
        )
        != base
    )
    assert channel_state(frame, {"ops": {"boxes": {}}}, {"asr": {"engine": "faster-whisper"}}, models) != base
    assert channel_state(frame, {}, {"asr": {"engine": "whisperx"}}, models) != base
    assert channel_state(frame, {}, {"asr": {"engine": "faster-whisper"}}, {"frame_classifier": "y"}) != base
    assert len(code_fingerprint()) == 64


def requested(defs: dg.Definitions, instance, cursor) -> tuple[set[str], object]:
    """What the automation sensor's tick requests for the channel, and its cursor."""
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    graph = defs.get_repository_def().asset_graph
    keys = {
        key.to_user_string() for key in graph.get_all_asset_keys() if result.get_requested_partitions(key)
    }
    return keys, result.cursor


def test_a_run_that_stops_at_a_current_channel_leaves_nothing_unsynced_or_to_follow(
    layout, instance, channel
):
    run(channel, instance)
    _, cursor = requested(channel, instance, None)
    again = run(channel, instance)
    assert materialized(again) == {"video_downloads"}
    # video_downloads' data version is its content: the same rows leave videos in sync with it
    assert unsynced(channel, instance, [CHANNEL]) == []
    assert requested(channel, instance, cursor)[0] == set()


def test_after_a_backfill_of_videos_alone_the_automation_brings_the_rest_in_sync(layout, instance, channel):
    run(channel, instance)
    _, cursor = requested(channel, instance, None)
    backfill = dg.materialize(
        [videos, video_downloads.to_source_asset()],
        resources=build_resources(layout),
        partition_key=CHANNEL,
        instance=instance,
        selection=[videos],
    )
    assert backfill.success
    assert unsynced(channel, instance, [CHANNEL]) == [f"video_summary[{CHANNEL}]"]

    follow, cursor = requested(channel, instance, cursor)
    assert follow == {"video_summary"}
    followed = channel.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key=CHANNEL, instance=instance, asset_selection=[dg.AssetKey("video_summary")]
    )
    assert followed.success
    assert unsynced(channel, instance, [CHANNEL]) == []
    assert requested(channel, instance, cursor)[0] == set()
