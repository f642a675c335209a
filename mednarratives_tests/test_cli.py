"""`mednarratives ingest`: every channel on disk, in-process, with a summary."""

from __future__ import annotations

import re

import pytest

from mednarratives_assets import cli
from mednarratives_assets.channels import CHANNEL_NAME_RULE
from mednarratives_assets.stages.cursor_detector import DetectorTrainingSettings
from mednarratives_assets.tables import table_counts
from mednarratives_tests.conftest import make_video
from mednarratives_tests.test_video_downloads import closed_port, http_server  # noqa: F401  a fixture


def test_ingest_adds_partitions_and_materializes_every_channel(layout, instance):
    make_video(layout.channel_dir("neuro") / "mri.mp4")
    make_video(layout.channel_dir("chest") / "cxr.mp4")
    (layout.channel_dir("chest") / "broken.mp4").write_bytes(b"\x00" * 100)

    assert cli.ingest(layout, instance) == {"chest": True, "neuro": True}
    assert sorted(instance.get_dynamic_partitions("channel")) == ["chest", "neuro"]
    assert table_counts(layout.duckdb_path) == {"videos": 3, "video_downloads": 0}  # no URLs: an empty table
    assert cli.ingest(layout, instance, ["neuro"]) == {"neuro": True}
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

    assert cli.ingest(layout, instance) == {"broken": False, "neuro": True}
    out = capsys.readouterr().out
    [bad_name] = [line for line in out.splitlines() if "'bad name!'" in line]
    assert bad_name.startswith(f"channels.yaml: {layout.channels_file}: ") and CHANNEL_NAME_RULE in bad_name
    assert f"channels.yaml: {layout.channels_file}: channel 'broken' must map to a list" in out
    [folder] = [line for line in out.splitlines() if "my lectures" in line]
    assert folder.startswith("skipping the folder") and CHANNEL_NAME_RULE in folder
    assert ".hidden" not in out
    cli._print_summary(layout, {"broken": False, "neuro": True})
    out = capsys.readouterr().out
    assert "broken: FAILED (see the run logs above)" in out and "neuro: ok" in out


def test_ingest_with_an_unreadable_channels_file_still_ingests_local_folders(layout, instance, capsys):
    layout.channels_file.write_text("web: [unclosed\n")
    make_video(layout.channel_dir("neuro") / "mri.mp4")
    assert cli.ingest(layout, instance) == {"neuro": True}
    assert "not valid YAML" in capsys.readouterr().out
    assert table_counts(layout.duckdb_path) == {"videos": 1, "video_downloads": 0}


def test_demo_generates_the_corpus_then_materializes_every_channel(
    layout, monkeypatch, capsys, trained_cursor_detector
):
    # A saved detector is kept: training the default one would take about 20 minutes here.
    trained_cursor_detector[0].save(layout.cursor_detector_path, DetectorTrainingSettings())
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
    assert "training the frame classifier" in out and layout.frame_classifier_path.is_file()
    assert re.search(r"stable_chunks: [1-9]\d* rows", out), out
    assert "training the cursor detector" not in out and re.search(r"cursor_traces: \d+ rows", out), out
    assert "genmedclip: skipped" in out  # two short lectures give too few pairs for a CLIP model

    assert cli.main(["demo", *small]) == 0  # corpus and classifier are current: nothing is made again
    out = capsys.readouterr().out
    assert "already present" in out and "training the frame classifier" not in out


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
