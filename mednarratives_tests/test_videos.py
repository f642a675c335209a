"""The `videos` stage and asset: probing good files, clear errors for bad ones, links that lead out
of the data root refused, machine failures failing the step, and deleted videos' files removed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import av
import cv2
import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from mednarratives_assets.defs.videos import videos
from mednarratives_assets.settings import OutsideDataRoot
from mednarratives_assets.stages import videos as videos_stage
from mednarratives_assets.stages.videos import (
    VIDEOS_SCHEMA,
    first_frames_sheet,
    probe_channel,
    probe_video,
    remove_cached_transcripts,
    remove_files_of_deleted_videos,
    stored_videos,
)
from mednarratives_tests.conftest import make_video, step_failure


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


def test_a_file_name_that_cannot_name_a_keyframe_folder_gets_an_error_row(layout):
    channel = layout.channel_dir("odd")
    for name in ("...mp4", ".hidden.mp4", "fine name.mp4"):
        make_video(channel / name)
    rows = {row["video_id"]: row for row in probe_channel(layout.data_root, "odd").iter_rows(named=True)}
    assert rows["fine name"]["status"] == "ok"
    for video_id in ("..", ".hidden"):
        assert rows[video_id]["status"] == "error"
        assert rows[video_id]["error"].startswith("the file name cannot be a video id: starts with '.'")


def test_a_file_gone_before_its_probe_gets_an_error_row(layout):
    row = probe_video(layout.channel_dir("neuro") / "deleted.mp4", "neuro", layout.data_root)
    assert row["status"] == "error"
    assert row["error"] == "the file disappeared while the channel was probed"
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


def test_a_link_out_of_the_data_root_is_refused_unread(layout, tmp_path, monkeypatch):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    make_video(outside / "lecture.mp4")
    channel = layout.channel_dir("links")
    channel.mkdir(parents=True)
    targets = {"lecture.mp4": outside / "lecture.mp4"}
    if Path("/etc/passwd").is_file():
        targets["passwd.mp4"] = Path("/etc/passwd")
    for name, target in targets.items():
        (channel / name).symlink_to(target)
    make_video(layout.channel_dir("store") / "inside.mp4")
    (channel / "inside.mp4").symlink_to(layout.channel_dir("store") / "inside.mp4")
    (outside / "secret.json").write_text('{"title": "secret"}')
    make_video(channel / "local.mp4")
    (channel / "local.info.json").symlink_to(outside / "secret.json")

    read = []
    real_sha256_of = videos_stage.sha256_of
    monkeypatch.setattr(
        videos_stage, "sha256_of", lambda path: read.append(path.name) or real_sha256_of(path)
    )
    rows = {r["video_id"]: r for r in probe_channel(layout.data_root, "links").iter_rows(named=True)}

    for name, target in targets.items():
        row = rows[Path(name).stem]
        assert row["status"] == "error"
        assert row["error"] == f"resolves to {target.resolve()}, outside the data root; refused"
        assert row["sha256"] is None and row["size_bytes"] is None and row["duration_s"] is None
    assert sorted(read) == ["inside.mp4", "local.mp4"]  # the links out were never opened
    assert rows["inside"]["status"] == "ok"  # a link within the data root is fine
    assert rows["local"]["status"] == "ok" and rows["local"]["title"] is None  # its info JSON leads out


def test_the_etc_passwd_hash_is_never_stored(layout, resources, instance):
    if not Path("/etc/passwd").is_file():
        pytest.skip("no /etc/passwd here")
    channel = layout.channel_dir("sneaky")
    channel.mkdir(parents=True)
    (channel / "passwd.mp4").symlink_to("/etc/passwd")
    instance.add_dynamic_partitions("channel", ["sneaky"])
    assert dg.materialize([videos], partition_key="sneaky", resources=resources, instance=instance).success
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:
        stored = con.sql("SELECT sha256, status, error FROM main.videos").fetchall()
    assert stored == [(None, "error", "resolves to /etc/passwd, outside the data root; refused")]
    assert hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest() not in str(stored)


def test_a_channel_folder_leading_out_of_the_data_root_fails_the_asset(layout, resources, instance, tmp_path):
    outside = tmp_path / "elsewhere"
    make_video(outside / "lecture.mp4")
    layout.channel_dir("linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutsideDataRoot, match="outside the data root"):
        probe_channel(layout.data_root, "linked")
    instance.add_dynamic_partitions("channel", ["linked"])
    result = dg.materialize(
        [videos], partition_key="linked", resources=resources, instance=instance, raise_on_error=False
    )
    assert not result.success
    message = step_failure(result)
    assert "videos of channel 'linked'" in message and f"resolves to {outside}" in message


def test_hostile_info_json_gives_no_metadata(layout):
    channel = layout.channel_dir("odd")
    for name, text in [
        ("list", "[1, 2, 3]"),
        ("numbers", '{"title": 42, "uploader": ["x"], "upload_date": 20240101, "webpage_url": {}}'),
        ("binary", "\udcff"),
    ]:
        make_video(channel / f"{name}.mp4")
        (channel / f"{name}.info.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    frame = probe_channel(layout.data_root, "odd")
    assert frame["status"].to_list() == ["ok", "ok", "ok"]
    assert frame.select("title", "uploader", "upload_date", "webpage_url").null_count().row(0) == (3, 3, 3, 3)


def test_a_permission_error_fails_the_step_naming_the_file(layout, resources, instance, monkeypatch):
    path = make_video(layout.channel_dir("locked") / "lecture.mp4")
    instance.add_dynamic_partitions("channel", ["locked"])
    assert dg.materialize([videos], partition_key="locked", resources=resources, instance=instance).success

    def denied(file):
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(videos_stage, "sha256_of", denied)
    with pytest.raises(PermissionError):
        probe_video(path, "locked", layout.data_root)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1000))  # changed: read again
    result = dg.materialize(
        [videos], partition_key="locked", resources=resources, instance=instance, raise_on_error=False
    )
    assert not result.success
    message = step_failure(result)
    assert str(path) in message and "Permission denied" in message
    with duckdb.connect(str(layout.duckdb_path), read_only=True) as con:  # the stored row stays
        assert con.sql("SELECT status FROM main.videos").fetchall() == [("ok",)]


def test_a_decoder_error_that_is_an_oserror_is_the_videos_problem(layout, monkeypatch):
    path = make_video(layout.channel_dir("neuro") / "lecture.mp4")

    def broken_decoder(_path):
        raise av.error.OSError(5, "Input/output error")

    monkeypatch.setattr(videos_stage, "probe_streams", broken_decoder)
    row = probe_video(path, "neuro", layout.data_root)
    assert row["status"] == "error" and row["error"].startswith("cannot decode the video: ")
    assert row["sha256"]


def _keyframes(layout, channel, video_id):
    folder = layout.keyframes_dir / channel / video_id
    folder.mkdir(parents=True)
    (folder / "chunk-000.png").write_bytes(b"png")
    return folder


def _cached_transcript(layout, sha256, fingerprint="engine1"):
    entry = layout.transcripts_cache_dir / fingerprint / f"{sha256}.json"
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text("{}")
    return entry


def test_files_of_deleted_videos_are_removed_and_shared_ones_kept(layout):
    gone = make_video(layout.channel_dir("a") / "gone.mp4", seconds=1.0)
    shared = make_video(layout.channel_dir("a") / "shared.mp4", seconds=1.5)
    kept = make_video(layout.channel_dir("a") / "kept.mp4", seconds=2.0)
    (layout.channel_dir("b")).mkdir()
    (layout.channel_dir("b") / "copy.mp4").write_bytes(shared.read_bytes())  # the same content
    before = probe_channel(layout.data_root, "a")
    sha = dict(zip(before["video_id"], before["sha256"], strict=True))
    keyframes = {video_id: _keyframes(layout, "a", video_id) for video_id in sha}
    staging = layout.keyframes_dir / "a" / f".gone.{os.getpid()}-abc.partial"  # a live writer's temporary
    staging.mkdir()
    abandoned = layout.keyframes_dir / "a" / f".gone.{2**22 + 1}-abc.partial"  # its writer is gone
    abandoned.mkdir()
    cache = {video_id: _cached_transcript(layout, digest) for video_id, digest in sha.items()}
    other_engine = _cached_transcript(layout, sha["gone"], "engine2")
    unrelated = _cached_transcript(layout, "f" * 64)

    gone.unlink()
    shared.unlink()
    after = probe_channel(layout.data_root, "a")
    logged = []
    removed = remove_files_of_deleted_videos(layout, "a", after, before, log=logged.append)

    assert removed.keyframe_folders == ["keyframes/a/gone", "keyframes/a/shared"]
    assert not keyframes["gone"].exists() and not keyframes["shared"].exists()
    assert keyframes["kept"].is_dir() and staging.is_dir() and not abandoned.exists()
    assert sorted(removed.transcript_cache_entries) == sorted(
        p.relative_to(layout.data_root).as_posix() for p in (cache["gone"], other_engine)
    )
    assert not cache["gone"].exists() and not other_engine.exists()
    assert cache["shared"].is_file()  # channel b still holds that content
    assert cache["kept"].is_file() and unrelated.is_file()
    assert len(logged) == 4 and all("removed" in line for line in logged)
    assert kept.is_file()


def test_a_cached_transcript_another_channel_may_hold_is_kept_and_says_why(layout, monkeypatch):
    """Kept: content another channel's stored rows name, and content a same-size file of another
    channel may hold but that could not be hashed. Deleted: the rest."""
    contents = {name: f"{n:064x}" for n, name in enumerate(("stored_elsewhere", "unsure", "alone"), 1)}
    entries = {name: _cached_transcript(layout, sha) for name, sha in contents.items()}
    (layout.channel_dir("b")).mkdir(parents=True)
    (layout.channel_dir("b") / "unreadable.mp4").write_bytes(b"x" * 700)
    monkeypatch.setattr(videos_stage, "sha256_of", lambda path: (_ for _ in ()).throw(PermissionError(path)))
    sizes = {contents["stored_elsewhere"]: 500, contents["unsure"]: 700, contents["alone"]: 900}

    cached = remove_cached_transcripts(layout, "a", sizes, held_elsewhere={contents["stored_elsewhere"]})

    assert cached.deleted == [entries["alone"].relative_to(layout.data_root).as_posix()]
    assert cached.kept == {
        contents["stored_elsewhere"]: "another channel holds the same video",
        contents["unsure"]: "a video file of another channel with the same size could not be hashed",
    }
    assert entries["stored_elsewhere"].is_file() and entries["unsure"].is_file()
    assert not entries["alone"].exists()


def test_the_videos_asset_removes_the_files_of_a_deleted_video(layout, resources, instance):
    gone = make_video(layout.channel_dir("neuro") / "gone.mp4")
    make_video(layout.channel_dir("neuro") / "kept.mp4", seconds=1.5)
    instance.add_dynamic_partitions("channel", ["neuro"])
    assert dg.materialize([videos], partition_key="neuro", resources=resources, instance=instance).success
    stored = stored_videos(layout.duckdb_path, "neuro")
    assert sorted(stored["video_id"]) == ["gone", "kept"]
    sha = dict(zip(stored["video_id"], stored["sha256"], strict=True))
    keyframes = {video_id: _keyframes(layout, "neuro", video_id) for video_id in sha}
    cache = {video_id: _cached_transcript(layout, digest) for video_id, digest in sha.items()}

    gone.unlink()
    result = dg.materialize([videos], partition_key="neuro", resources=resources, instance=instance)
    assert result.success
    assert not keyframes["gone"].exists() and not cache["gone"].exists()
    assert keyframes["kept"].is_dir() and cache["kept"].is_file()
    [materialization] = result.asset_materializations_for_node("videos")
    assert materialization.metadata["n_removed_keyframe_folders"].value == 1
    assert materialization.metadata["n_removed_cached_transcripts"].value == 1


def test_a_file_dated_beyond_any_calendar_still_gets_its_row(layout, monkeypatch):
    path = make_video(layout.channel_dir("neuro") / "future.mp4")
    real_stat = Path.stat

    def far_future(self, **kwargs):
        result = real_stat(self, **kwargs)
        if self.name != "future.mp4":
            return result
        fields = list(result)
        fields[8] = 2**40  # st_mtime in the year 36812 (ext4 itself stops at 2446)
        return os.stat_result(fields)

    monkeypatch.setattr(Path, "stat", far_future)
    row = probe_video(path, "neuro", layout.data_root)
    assert row["status"] == "ok" and row["mtime"] is None


def test_nothing_is_removed_while_the_channel_folder_is_missing(layout):
    make_video(layout.channel_dir("mounted") / "lecture.mp4")
    before = probe_channel(layout.data_root, "mounted")
    keyframes = _keyframes(layout, "mounted", "lecture")
    cache = _cached_transcript(layout, before["sha256"][0])
    (layout.channel_dir("mounted") / "lecture.mp4").unlink()
    layout.channel_dir("mounted").rmdir()  # an unmounted disk looks like this
    removed = remove_files_of_deleted_videos(
        layout, "mounted", probe_channel(layout.data_root, "mounted"), before
    )
    assert removed.keyframe_folders == [] and removed.transcript_cache_entries == []
    assert keyframes.is_dir() and cache.is_file()


def test_a_file_unchanged_since_its_stored_row_is_not_read_again(layout, resources, instance, monkeypatch):
    kept = make_video(layout.channel_dir("neuro") / "kept.mp4", seconds=1.5)
    edited = make_video(layout.channel_dir("neuro") / "edited.mp4")
    instance.add_dynamic_partitions("channel", ["neuro"])
    assert dg.materialize([videos], partition_key="neuro", resources=resources, instance=instance).success
    first = stored_videos(layout.duckdb_path, "neuro").sort("video_id")

    read: list[str] = []
    hash_file, probe = videos_stage.sha256_of, videos_stage.probe_streams
    monkeypatch.setattr(videos_stage, "sha256_of", lambda path: read.append(path.name) or hash_file(path))
    monkeypatch.setattr(videos_stage, "probe_streams", lambda path: read.append(path.name) or probe(path))
    again = probe_channel(layout, "neuro", known=first).sort("video_id")
    assert read == []
    assert again.drop("probed_at").select(first.columns).equals(first)

    make_video(edited, seconds=2.0)  # new content: new size and time
    os.utime(kept, ns=(kept.stat().st_atime_ns, kept.stat().st_mtime_ns + 1000))  # touched: read again
    changed = probe_channel(layout, "neuro", known=first).sort("video_id")
    assert sorted(read) == ["edited.mp4", "edited.mp4", "kept.mp4", "kept.mp4"]
    assert changed["sha256"].to_list() == [hashlib.sha256(p.read_bytes()).hexdigest() for p in (edited, kept)]
    assert changed["n_frames"][0] == 20
