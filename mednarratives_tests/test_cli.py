"""`mednarratives ingest`: every channel on disk, in-process, with a summary."""

from __future__ import annotations

import re

import pytest

from mednarratives_assets import cli
from mednarratives_assets.stages.cursor_detector import DetectorTrainingSettings
from mednarratives_assets.tables import table_counts
from mednarratives_tests.conftest import make_video


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
    assert "videos: 2 rows" in out and str(layout.duckdb_path) in out and "dagster dev" in out
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
