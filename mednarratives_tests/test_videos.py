"""The `videos` stage and asset: probing good files, and clear errors for bad ones."""

from __future__ import annotations

import cv2
import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from mednarratives_assets.defs.videos import videos
from mednarratives_assets.stages.videos import VIDEOS_SCHEMA, first_frames_sheet, probe_channel, probe_video
from mednarratives_tests.conftest import make_video


def test_probe_reads_stream_properties(layout):
    path = make_video(layout.channel_dir("radiology") / "chest_ct.mp4", seconds=2.0, fps=10, size=(160, 96))
    row = probe_video(path, "radiology", layout.data_root)
    assert row["status"] == "ok", row["error"]
    assert row["error"] is None
    assert row["video_id"] == "chest_ct"
    assert row["path"] == "videos/radiology/chest_ct.mp4"
    assert (row["width"], row["height"]) == (160, 96)
    assert row["fps"] == pytest.approx(10.0)
    assert row["n_frames"] == 20
    assert row["duration_s"] == pytest.approx(2.0, abs=0.15)
    assert row["has_audio"] is True
    assert row["audio_sample_rate"] == 16_000
    assert row["video_codec"] == "h264"
    assert row["size_bytes"] == path.stat().st_size
    assert len(row["sha256"]) == 64


@pytest.fixture
def bad_channel(layout):
    """One channel holding a good clip and every kind of bad input the issue names."""
    channel = layout.channel_dir("bad_inputs")
    make_video(channel / "good.mp4")
    make_video(channel / "silent.mp4", audio=False)
    make_video(channel / "Lección_ünïcode_胸部.mp4")
    (channel / "empty.mp4").write_bytes(b"")
    (channel / "notes.mp4").write_text("these are lecture notes, not a video\n")
    whole = make_video(channel / "tmp_whole.mp4", seconds=3.0).read_bytes()
    (channel / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    (channel / "tmp_whole.mp4").unlink()
    streamed = make_video(channel / "tmp_fast.mp4", seconds=3.0, faststart=True).read_bytes()
    (channel / "truncated_faststart.mp4").write_bytes(streamed[: len(streamed) * 2 // 3])
    (channel / "tmp_fast.mp4").unlink()
    (channel / "good.info.json").write_text('{"title": "Chest CT", "upload_date": "20240131"}')
    return channel


def test_bad_inputs_get_error_rows_with_clear_messages(layout, bad_channel):
    frame = probe_channel(layout.data_root, "bad_inputs")
    rows = {r["video_id"]: r for r in frame.iter_rows(named=True)}
    assert set(rows) == {
        "good",
        "silent",
        "Lección_ünïcode_胸部",
        "empty",
        "notes",
        "truncated",
        "truncated_faststart",
    }
    assert rows["good"]["status"] == "ok" and rows["good"]["has_audio"] is True
    assert rows["good"]["title"] == "Chest CT"
    assert str(rows["good"]["upload_date"]) == "2024-01-31"
    assert rows["silent"]["status"] == "ok" and rows["silent"]["has_audio"] is False
    assert rows["silent"]["audio_sample_rate"] is None
    assert rows["Lección_ünïcode_胸部"]["status"] == "ok"
    assert rows["Lección_ünïcode_胸部"]["path"] == "videos/bad_inputs/Lección_ünïcode_胸部.mp4"

    assert rows["empty"]["status"] == "error"
    assert rows["empty"]["error"] == "empty file (0 bytes)"
    assert rows["notes"]["status"] == "error"
    assert rows["notes"]["error"].startswith("not a readable video container")
    assert rows["truncated"]["status"] == "error"
    assert rows["truncated"]["error"].startswith("not a readable video container")
    assert rows["truncated_faststart"]["status"] == "error"
    assert "truncated" in rows["truncated_faststart"]["error"]
    for name in ("empty", "notes", "truncated", "truncated_faststart"):
        assert rows[name]["duration_s"] is None and rows[name]["sha256"]


def test_two_files_with_one_stem_keep_one_video_id(layout):
    channel = layout.channel_dir("dupes")
    make_video(channel / "lecture.mkv")
    make_video(channel / "lecture.mp4")
    frame = probe_channel(layout.data_root, "dupes").sort("ext")
    assert frame["status"].to_list() == ["ok", "error"]
    assert frame["error"][1] == (
        "duplicate video_id 'lecture': lecture.mkv has the same name; rename one of them"
    )


def test_a_file_gone_before_its_probe_gets_an_error_row(layout):
    row = probe_video(layout.channel_dir("neuro") / "deleted.mp4", "neuro", layout.data_root)
    assert row["status"] == "error"
    assert row["error"] == "cannot read the file: No such file or directory"
    assert row["video_id"] == "deleted" and row["sha256"] is None


def test_missing_channel_folder_gives_no_rows(layout):
    frame = probe_channel(layout.data_root, "never_created")
    assert frame.is_empty()
    assert frame.schema == pl.Schema(VIDEOS_SCHEMA)


def test_videos_asset_writes_duckdb_and_run_succeeds_despite_bad_files(
    layout, resources, instance, bad_channel
):
    instance.add_dynamic_partitions("channel", ["bad_inputs"])
    result = dg.materialize([videos], partition_key="bad_inputs", resources=resources, instance=instance)
    assert result.success
    check = result.get_asset_check_evaluations()[0]
    assert check.check_name == "all_videos_readable" and not check.passed
    assert check.partition == "bad_inputs"
    assert check.metadata["n_errors"].value == 4
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        counts = dict(con.sql("SELECT status, count(*) FROM main.videos GROUP BY status").fetchall())
        columns = {c[0] for c in con.sql("DESCRIBE main.videos").fetchall()}
    assert counts == {"ok": 3, "error": 4}
    assert set(VIDEOS_SCHEMA) <= columns


def test_first_frames_sheet_tiles_readable_videos(layout, bad_channel):
    frame = probe_channel(layout.data_root, "bad_inputs")
    png = first_frames_sheet(layout.data_root, frame, tile_width=80, columns=2)
    sheet = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    # three readable videos, two per row: two rows of 80 px tiles plus 2 px borders
    assert sheet.shape[1] == 2 * (80 + 4)
    assert sheet.shape[0] == 2 * (round(96 * 80 / 160) + 4)
    assert first_frames_sheet(layout.data_root, frame.filter(frame["status"] == "error")) is None
