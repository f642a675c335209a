"""`mednarratives ingest`: every channel on disk, in-process, with a summary."""

from __future__ import annotations

import re

import pytest

from mednarratives_assets import cli
from mednarratives_assets.channels import CHANNEL_NAME_RULE
from mednarratives_assets.default_models import shipped_model
from mednarratives_assets.defs.resources import DataPaths
from mednarratives_assets.tables import table_counts
from mednarratives_tests.conftest import make_video
from mednarratives_tests.test_video_downloads import closed_port, http_server  # noqa: F401  a fixture


def test_ingest_adds_partitions_and_materializes_every_channel(layout, instance):
    make_video(layout.channel_dir("neuro") / "mri.mp4")
    make_video(layout.channel_dir("chest") / "cxr.mp4")
    (layout.channel_dir("chest") / "broken.mp4").write_bytes(b"\x00" * 100)

    assert cli.ingest(layout, instance) == {"chest": None, "neuro": None}
    assert sorted(instance.get_dynamic_partitions("channel")) == ["chest", "neuro"]
    assert table_counts(layout.duckdb_path) == {"videos": 3, "video_downloads": 0}  # no URLs: an empty table
    assert cli.ingest(layout, instance, ["neuro"]) == {"neuro": None}
    assert table_counts(layout.duckdb_path) == {"videos": 3, "video_downloads": 0}  # no URLs: an empty table


def test_unknown_channel_is_named(layout, instance):
    with pytest.raises(SystemExit, match=r"no such channel .*\['nope'\]"):
        cli.ingest(layout, instance, ["nope"])


def test_main_prints_the_summary(layout, monkeypatch, capsys):
    make_video(layout.channel_dir("neuro") / "mri.mp4")
    monkeypatch.setenv("MEDNARRATIVES_DATA_ROOT", str(layout.data_root))
    monkeypatch.delenv("MEDNARRATIVES_DUCKDB", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert cli.main(["ingest"]) == 0
    out = capsys.readouterr().out
    assert "neuro: ok" in out and "videos: 1 rows" in out and str(layout.duckdb_path) in out


def test_a_failed_download_fails_the_command_and_is_named(layout, monkeypatch, capsys, http_server):  # noqa: F811
    base_url, site = http_server
    make_video(site / "lecture.mp4")
    dead_url = f"http://127.0.0.1:{closed_port()}/gone.mp4"
    layout.channels_file.write_text(f"web:\n  - {base_url}/lecture.mp4\n  - {dead_url}\n")
    make_video(layout.channel_dir("neuro") / "mri.mp4")
    (layout.channel_dir("neuro") / "broken.mp4").write_bytes(b"")
    monkeypatch.setenv("MEDNARRATIVES_DATA_ROOT", str(layout.data_root))
    monkeypatch.delenv("MEDNARRATIVES_DUCKDB", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)

    assert cli.main(["ingest"]) == 1
    out = capsys.readouterr().out
    assert f"web: FAILED: 1 of 2 downloads failed: {dead_url}: download failed: " in out
    assert "neuro: ok" in out and "web: ok" not in out
    assert "neuro: 1 of 2 videos unreadable: videos/neuro/broken.mp4: empty file (0 bytes)" in out


def test_ingest_names_skipped_folders_and_bad_entries_and_goes_on(layout, instance, capsys):
    layout.channels_file.write_text("'bad name!':\n  - http://127.0.0.1:9/a.mp4\nbroken: 42\n")
    make_video(layout.channel_dir("neuro") / "mri.mp4")
    (layout.videos_dir / "my lectures").mkdir()
    (layout.videos_dir / ".hidden").mkdir()

    outcome = cli.ingest(layout, instance)
    assert outcome["neuro"] is None and "channel 'broken' must map to a list" in outcome["broken"]
    out = capsys.readouterr().out
    [bad_name] = [line for line in out.splitlines() if "'bad name!'" in line]
    assert bad_name.startswith(f"channels.yaml: {layout.channels_file}: ") and CHANNEL_NAME_RULE in bad_name
    assert f"channels.yaml: {layout.channels_file}: channel 'broken' must map to a list" in out
    [folder] = [line for line in out.splitlines() if "my lectures" in line]
    assert folder.startswith("skipping the folder") and CHANNEL_NAME_RULE in folder
    assert ".hidden" not in out
    cli._print_summary(layout, outcome)
    out = capsys.readouterr().out
    assert f"broken: FAILED: {outcome['broken']}" in out and "neuro: ok" in out


def test_ingest_with_an_unreadable_channels_file_still_ingests_local_folders(layout, instance, capsys):
    layout.channels_file.write_text("web: [unclosed\n")
    make_video(layout.channel_dir("neuro") / "mri.mp4")
    assert cli.ingest(layout, instance) == {"neuro": None}
    assert "not valid YAML" in capsys.readouterr().out
    assert table_counts(layout.duckdb_path) == {"videos": 1, "video_downloads": 0}


def test_demo_generates_the_corpus_then_materializes_every_channel(layout, monkeypatch, capsys):
    monkeypatch.setenv("MEDNARRATIVES_DATA_ROOT", str(layout.data_root))
    monkeypatch.delenv("MEDNARRATIVES_DUCKDB", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    small = [
        "--channels",
        "2",
        "--videos-per-channel",
        "1",
        "--seconds",
        "15",
        "--size",
        "320x240",
        "--fps",
        "10",
        "--workers",
        "1",
    ]
    assert cli.main(["demo", *small]) == 0
    out = capsys.readouterr().out
    assert "radiology-rounds: ok" in out and "pathology-atlas: ok" in out
    assert "videos: 2 rows" in out and str(layout.duckdb_path) in out and "mednarratives ui" in out
    assert len(list(layout.ground_truth_dir.glob("*/*.json"))) == 2
    assert re.search(r"stable_chunks: [1-9]\d* rows", out), out
    assert re.search(r"cursor_traces: \d+ rows", out), out
    assert not layout.models_dir.exists()  # the shipped models did the work
    assert f"cursor detector: {shipped_model('cursor_detector')}" in out
    assert "genmedclip: skipped" in out  # two short lectures give too few pairs for a CLIP model
    # the terminal shows each stage's start, progress and end, not Dagster's event log
    assert "  transcripts: started" in out and re.search(r"  aligned_pairs: done in [\d.]+ s", out), out
    assert "STEP_START" not in out and "PreviewWarning" not in out and "\x1b[" not in out

    assert cli.main(["demo", *small]) == 0  # the corpus is current: it is not made again
    assert "already present" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "big"], "expected WIDTHxHEIGHT"),
        (["--channels", "0"], "channels=0"),
        (["--images", "/nowhere/at/all"], "/nowhere/at/all"),
    ],
)
def test_demo_names_bad_settings(layout, monkeypatch, args, message):
    monkeypatch.setenv("MEDNARRATIVES_DATA_ROOT", str(layout.data_root))
    with pytest.raises(SystemExit, match=message):
        cli.main(["demo", "--workers", "1", *args])


def test_run_names_a_failed_channel_with_its_reason_and_runs_the_others(layout, monkeypatch, capsys):
    make_video(layout.channel_dir("neuro") / "mri.mp4", seconds=2.0)
    make_video(layout.channel_dir("chest") / "cxr.mp4", seconds=2.0)
    real_stage_cache = DataPaths.stage_cache

    def stage_cache_failing_boxes_of_chest(self, stage, channel, *args, **kwargs):
        if (stage, channel) == ("boxes", "chest"):
            raise ValueError("pointer boxes out of range in chest")
        return real_stage_cache(self, stage, channel, *args, **kwargs)

    monkeypatch.setattr(DataPaths, "stage_cache", stage_cache_failing_boxes_of_chest)
    monkeypatch.setenv("MEDNARRATIVES_DATA_ROOT", str(layout.data_root))
    monkeypatch.delenv("MEDNARRATIVES_DUCKDB", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)

    assert cli.main(["run"]) == 1
    out = capsys.readouterr().out
    assert (
        "[1/2] channel_pipeline_job: channel chest" in out
        and "[2/2] channel_pipeline_job: channel neuro" in out
    )
    assert "chest: FAILED: boxes: ValueError: pointer boxes out of range in chest" in out, out
    assert "neuro: ok" in out and "  dataset_export: done in" in out
    assert re.search(r"  boxes: FAILED: .*pointer boxes out of range", out), out
    assert str(layout.exports_dir) in out and str(layout.duckdb_path) in out

    monkeypatch.setattr(DataPaths, "stage_cache", real_stage_cache)
    assert cli.main(["run", "--channel", "chest"]) == 0  # fixed: only the asked-for channel runs
    out = capsys.readouterr().out
    assert "chest: ok" in out and "channel neuro" not in out and "neuro: " not in out
    # tones and a moving square make no pairs: the statistics are made, the merged dataset is not
    assert "no aligned pairs, so no merged dataset" in out and "dataset: ok" in out
    assert "  dataset_statistics: done in" in out and "dataset_export_all" not in out
