"""`new_video_sensor`: partitions for new channels, runs for channels whose files differ from what
`videos` last materialized, nothing otherwise."""

from __future__ import annotations

import json
import logging
import os
import shutil

import dagster as dg

from mednarratives_assets import cli
from mednarratives_assets.channels import CHANNEL_NAME_RULE
from mednarratives_assets.defs.resources import DataPaths
from mednarratives_assets.defs.sensors import new_video_sensor
from mednarratives_tests.conftest import make_video


def evaluate(instance, layout, cursor=None, log: logging.Handler | None = None) -> dg.SensorResult:
    paths = DataPaths(data_root=str(layout.data_root), duckdb_path=str(layout.duckdb_path))
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"paths": paths})
    if log is not None:  # the sensor's logger propagates to no parent: listen on it directly
        context.log.addHandler(log)
    result = new_video_sensor(context)
    # Apply the partition requests as the daemon would before launching the runs.
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.DeleteDynamicPartitionsRequest):
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
        else:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def test_new_channel_adds_partition_and_requests_run(instance, layout):
    make_video(layout.channel_dir("neuro_rounds") / "mri_basics.mp4")
    result = evaluate(instance, layout)
    [add] = result.dynamic_partitions_requests
    assert add.partitions_def_name == "channel" and list(add.partition_keys) == ["neuro_rounds"]
    [run] = result.run_requests
    assert run.partition_key == "neuro_rounds"
    assert run.run_key.startswith("neuro_rounds:none->")
    assert set(json.loads(result.cursor)) == {"neuro_rounds"}
    assert instance.get_dynamic_partitions("channel") == ["neuro_rounds"]


def test_unchanged_channel_requests_nothing(instance, layout):
    make_video(layout.channel_dir("neuro_rounds") / "mri_basics.mp4")
    first = evaluate(instance, layout)
    second = evaluate(instance, layout, cursor=first.cursor)
    assert second.run_requests == []
    assert not second.dynamic_partitions_requests
    assert second.cursor == first.cursor


def test_new_file_in_known_channel_requests_run(instance, layout):
    make_video(layout.channel_dir("neuro_rounds") / "mri_basics.mp4")
    make_video(layout.channel_dir("chest_imaging") / "cxr.mp4")
    first = evaluate(instance, layout)
    assert {r.partition_key for r in first.run_requests} == {"neuro_rounds", "chest_imaging"}

    make_video(layout.channel_dir("neuro_rounds") / "dwi.mp4")
    second = evaluate(instance, layout, cursor=first.cursor)
    assert not second.dynamic_partitions_requests
    [run] = second.run_requests
    assert run.partition_key == "neuro_rounds"
    assert run.run_key not in {r.run_key for r in first.run_requests}


def test_replaced_file_and_reverted_state_request_runs(instance, layout):
    video = make_video(layout.channel_dir("neuro_rounds") / "mri_basics.mp4")
    first = evaluate(instance, layout)
    stat = video.stat()
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = evaluate(instance, layout, cursor=first.cursor)
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    reverted = evaluate(instance, layout, cursor=touched.cursor)
    keys = [r.run_key for r in first.run_requests + touched.run_requests + reverted.run_requests]
    assert len(keys) == 3 and len(set(keys)) == 3


def test_channels_yaml_entries_become_partitions_and_bad_folders_are_skipped(instance, layout):
    layout.channels_file.write_text("web_lectures:\n  - http://127.0.0.1:9/lecture.mp4\n")
    (layout.videos_dir / "bad name!").mkdir()
    result = evaluate(instance, layout)
    assert [r.partition_key for r in result.run_requests] == ["web_lectures"]
    assert instance.get_dynamic_partitions("channel") == ["web_lectures"]


def test_each_problem_is_logged_with_its_rule_and_the_rest_goes_on(instance, layout, caplog):
    layout.channels_file.write_text(
        "web_lectures:\n  - http://127.0.0.1:9/lecture.mp4\n"
        "broken: 42\n"
        "'bad name!':\n  - http://127.0.0.1:9/other.mp4\n"
    )
    make_video(layout.channel_dir("neuro_rounds") / "mri_basics.mp4")
    (layout.videos_dir / "my lectures").mkdir()
    (layout.videos_dir / ".hidden").mkdir()
    with caplog.at_level(logging.INFO):
        result = evaluate(instance, layout, log=caplog.handler)

    # The malformed entry is still a channel: its run's video_downloads fails, naming the entry.
    assert sorted(r.partition_key for r in result.run_requests) == ["broken", "neuro_rounds", "web_lectures"]
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(problems) == 3, problems
    [bad_name] = [m for m in problems if "'bad name!'" in m]
    assert str(layout.channels_file) in bad_name and CHANNEL_NAME_RULE in bad_name
    [bad_value] = [m for m in problems if "'broken'" in m]
    assert bad_value == f"{layout.channels_file}: channel 'broken' must map to a list of URL strings, got 42"
    [folder] = [m for m in problems if "my lectures" in m]
    assert str(layout.videos_dir / "my lectures") in folder and CHANNEL_NAME_RULE in folder
    assert not any(".hidden" in m for m in problems)


def test_an_unreadable_channels_yaml_does_not_stop_the_folder_scan(instance, layout, caplog):
    layout.channels_file.write_text("web_lectures: [http://127.0.0.1:9/lecture.mp4\n")
    make_video(layout.channel_dir("neuro_rounds") / "mri_basics.mp4")
    with caplog.at_level(logging.INFO):
        result = evaluate(instance, layout, log=caplog.handler)
    assert [r.partition_key for r in result.run_requests] == ["neuro_rounds"]
    [error] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "not valid YAML" in error and error.endswith("scanning the video folders only")


def test_partitions_added_through_the_ui_that_are_no_channel_names_are_removed(instance, layout):
    make_video(layout.channel_dir("neuro_rounds") / "mri_basics.mp4")
    instance.add_dynamic_partitions("channel", ["..", "../../etc", "neuro_rounds"])
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    result = evaluate(instance, layout, log=handler)
    assert instance.get_dynamic_partitions("channel") == ["neuro_rounds"]
    assert [run.partition_key for run in result.run_requests] == ["neuro_rounds"]
    removed = [r.getMessage() for r in records if r.getMessage().startswith("removing partition")]
    assert len(removed) == 2 and all(CHANNEL_NAME_RULE in message for message in removed)


def test_a_channel_whose_files_match_its_last_materialization_requests_nothing_without_a_cursor(
    instance, layout
):
    """As on the first tick of the UI after `mednarratives demo` or `run`, whose runs it recorded."""
    make_video(layout.channel_dir("neuro_rounds") / "mri_basics.mp4")
    make_video(layout.channel_dir("chest_imaging") / "cxr.mp4")
    assert cli.ingest(layout, instance) == {"chest_imaging": None, "neuro_rounds": None}

    first = evaluate(instance, layout)
    assert first.run_requests == [] and not first.dynamic_partitions_requests
    assert set(json.loads(first.cursor)) == {"neuro_rounds", "chest_imaging"}

    make_video(layout.channel_dir("neuro_rounds") / "dwi.mp4")
    [run] = evaluate(instance, layout).run_requests
    assert run.partition_key == "neuro_rounds"


def test_a_channel_folder_that_disappears_is_named_in_a_warning_and_kept(instance, layout, caplog):
    make_video(layout.channel_dir("neuro_rounds") / "mri_basics.mp4")
    make_video(layout.channel_dir("chest_imaging") / "cxr.mp4")
    first = evaluate(instance, layout)

    shutil.rmtree(layout.channel_dir("chest_imaging"))
    with caplog.at_level(logging.INFO):
        gone = evaluate(instance, layout, cursor=first.cursor, log=caplog.handler)
    assert gone.run_requests == [] and not gone.dynamic_partitions_requests
    assert sorted(instance.get_dynamic_partitions("channel")) == ["chest_imaging", "neuro_rounds"]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "'chest_imaging'" in warning and str(layout.videos_dir / "chest_imaging") in warning
    assert "kept" in warning

    caplog.clear()
    with caplog.at_level(logging.INFO):  # said once, not on every tick
        evaluate(instance, layout, cursor=gone.cursor, log=caplog.handler)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
