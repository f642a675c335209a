"""What counts as a channel and a video file, and when a channel's fingerprint changes."""

from __future__ import annotations

import pytest

from mednarratives_assets import channels
from mednarratives_assets.channels import (
    CHANNEL_NAME_RULE,
    channel_fingerprint,
    check_channel_name,
    is_valid_channel_name,
    list_video_files,
    scan_channels,
    skipped_folder_message,
)


@pytest.mark.parametrize("name", ["neuro_rounds", "Dr-Lee.radiology", "_private", "ch1"])
def test_valid_channel_names(name):
    assert is_valid_channel_name(name)


@pytest.mark.parametrize("name", ["", "bad name", "a/b", "..", "x..y", ".hidden", "-dash", "a" * 129, "ü,ok"])
def test_invalid_channel_names(name):
    assert not is_valid_channel_name(name)
    with pytest.raises(ValueError, match="invalid channel name"):
        check_channel_name(name)


def test_only_finished_video_files_count(tmp_path):
    for name in [
        "a.mp4", "b.MKV", "c.webm", "d.mov",  # videos
        "a.info.json", "e.mp4.part", "f.f137.mp4", "f.f140.m4a", "f.temp.mp4", "notes.txt",  # not
    ]:  # fmt: skip
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.mp4").mkdir()
    assert [p.name for p in list_video_files(tmp_path)] == ["a.mp4", "b.MKV", "c.webm", "d.mov"]
    assert list_video_files(tmp_path / "absent") == []


def test_fingerprint_follows_videos_and_urls_but_not_other_files(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"x")
    base = channel_fingerprint(tmp_path)
    (tmp_path / "a.info.json").write_text("{}")
    (tmp_path / "b.mp4.part").write_bytes(b"partial")
    assert channel_fingerprint(tmp_path) == base
    assert channel_fingerprint(tmp_path, ["http://127.0.0.1/x.mp4"]) != base
    (tmp_path / "a.mp4").write_bytes(b"xy")
    assert channel_fingerprint(tmp_path) != base


def test_scan_without_a_videos_folder(tmp_path):
    scan = scan_channels(tmp_path / "videos", {"web": ["http://127.0.0.1/x.mp4"]})
    assert list(scan.valid) == ["web"] and scan.invalid == []
    assert scan_channels(tmp_path / "videos").valid == {}


def test_scan_lists_bad_folder_names_but_not_hidden_folders(tmp_path):
    for name in ("neuro", "bad name!", ".hidden", "x..y"):
        (tmp_path / name).mkdir()
    scan = scan_channels(tmp_path)
    assert list(scan.valid) == ["neuro"] and scan.invalid == ["bad name!", "x..y"]
    message = skipped_folder_message(tmp_path / "bad name!")
    assert message.startswith(
        f"skipping the folder {tmp_path / 'bad name!'}: 'bad name!' is not a channel name"
    )
    assert CHANNEL_NAME_RULE in message
    assert len(skipped_folder_message(tmp_path / ("x" * 300))) < 500


def test_fingerprint_skips_a_file_removed_while_scanning(tmp_path, monkeypatch):
    (tmp_path / "a.mp4").write_bytes(b"x")
    base = channel_fingerprint(tmp_path)
    monkeypatch.setattr(channels, "list_video_files", lambda folder: [folder / "a.mp4", folder / "gone.mp4"])
    assert channel_fingerprint(tmp_path) == base
