"""Stage `videos`: probe every video file of a channel with PyAV into one row each.

A file that cannot be used (empty, truncated, not a video, a link leading out of the data root)
still gets its row, with status 'error' and a message naming the problem, so one bad upload never
fails the channel. A failing machine (permission denied, I/O error, no space) is no property of a
video: its OSError propagates and fails the step, naming the path.

`remove_files_of_deleted_videos` clears what the later stages kept of videos whose files are gone.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import av
import numpy as np
import polars as pl

from mednarratives_assets.atomic_files import clear_abandoned
from mednarratives_assets.channels import is_valid_channel_name, list_video_files, video_id_problem
from mednarratives_assets.contact_sheets import contact_sheet_png
from mednarratives_assets.file_hashing import sha256_of
from mednarratives_assets.settings import DataLayout, OutsideDataRoot, resolves_outside
from mednarratives_assets.tables import stored_rows

VIDEOS_SCHEMA: dict[str, pl.DataType] = {
    "channel": pl.Utf8(),
    "video_id": pl.Utf8(),
    "path": pl.Utf8(),
    "ext": pl.Utf8(),
    "size_bytes": pl.Int64(),
    "mtime": pl.Datetime("us"),
    "sha256": pl.Utf8(),
    "duration_s": pl.Float64(),
    "fps": pl.Float64(),
    "width": pl.Int32(),
    "height": pl.Int32(),
    "n_frames": pl.Int64(),
    "video_codec": pl.Utf8(),
    "has_audio": pl.Boolean(),
    "audio_codec": pl.Utf8(),
    "audio_sample_rate": pl.Int32(),
    "title": pl.Utf8(),
    "uploader": pl.Utf8(),
    "upload_date": pl.Date(),
    "webpage_url": pl.Utf8(),
    "status": pl.Utf8(),
    "error": pl.Utf8(),
    "probed_at": pl.Datetime("us"),
}


class VideoProbeError(Exception):
    """The file is not a usable video; the message says why."""


@dataclass
class StreamInfo:
    duration_s: float | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    n_frames: int | None = None
    video_codec: str | None = None
    has_audio: bool | None = None
    audio_codec: str | None = None
    audio_sample_rate: int | None = None


def probe_streams(path: Path) -> StreamInfo:
    """Read the container's streams and demux every video packet, decoding the first frame.

    Demuxing (no decoding) is cheap and catches truncated files whose header still opens.
    """
    if path.stat().st_size == 0:
        raise VideoProbeError("empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except FileNotFoundError:  # gone since it was listed
        raise
    except av.FFmpegError as exc:
        raise VideoProbeError(
            f"not a readable video container (truncated, or not a video at all): {exc.strerror}"
        ) from exc
    with container:
        if not container.streams.video:
            raise VideoProbeError("the container has no video stream")
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        declared_frames = video.frames
        n_packets, first_frame_decoded = 0, False
        try:
            for packet in container.demux(video):
                if packet.size == 0:  # the demuxer's flush packet
                    continue
                n_packets += 1
                if not first_frame_decoded:
                    first_frame_decoded = bool(packet.decode())
        except av.FFmpegError as exc:
            raise VideoProbeError(f"corrupt video data after {n_packets} frames: {exc.strerror}") from exc
        if n_packets == 0:
            raise VideoProbeError("the video stream holds no frames")
        if not first_frame_decoded and not video.codec_context.decode(None):
            raise VideoProbeError(f"none of the {n_packets} video packets decodes to a frame")
        if declared_frames and n_packets < declared_frames:
            raise VideoProbeError(
                f"truncated: the header declares {declared_frames} video frames, only {n_packets} are present"
            )
        if video.duration is not None and video.time_base is not None:
            duration_s = float(video.duration * video.time_base)
        elif container.duration is not None:
            duration_s = container.duration / av.time_base
        else:
            duration_s = None
        rate = video.average_rate or video.guessed_rate
        return StreamInfo(
            duration_s=duration_s,
            fps=float(rate) if rate else None,
            width=video.codec_context.width,
            height=video.codec_context.height,
            n_frames=n_packets,
            video_codec=video.codec_context.name,
            has_audio=audio is not None,
            audio_codec=audio.codec_context.name if audio else None,
            audio_sample_rate=audio.codec_context.sample_rate if audio else None,
        )


def _refusal(path: Path, data_root: Path) -> str | None:
    """Why the file is not opened at all, or None: a symlink that leads out of the data root."""
    try:
        target = resolves_outside(path, data_root)
    except RuntimeError:  # Python 3.11's error for a symlink loop
        return "a symlink loop; refused"
    return None if target is None else f"resolves to {target}, outside the data root; refused"


def _utc(timestamp: float) -> dt.datetime | None:
    """A file time as naive UTC; None for one no datetime holds (a file dated year 300000, say)."""
    try:
        return dt.datetime.fromtimestamp(timestamp, dt.UTC).replace(tzinfo=None)
    except (OverflowError, ValueError, OSError):
        return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def read_info_json(video_path: Path, data_root: Path | None = None) -> dict:
    """Source metadata that yt-dlp wrote beside a downloaded video, or {} for local files.

    A damaged file, one that is no JSON object, or (given `data_root`) one that leads out of the
    data root gives {} too; an unreadable one (permissions, I/O) raises its OSError."""
    info_path = video_path.with_suffix(".info.json")
    if not info_path.is_file() or (data_root is not None and resolves_outside(info_path, data_root)):
        return {}
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return {}
    if not isinstance(info, dict):
        return {}
    upload_date = info.get("upload_date")
    try:
        upload_date = dt.datetime.strptime(upload_date, "%Y%m%d").date() if upload_date else None
    except (TypeError, ValueError):
        upload_date = None
    return {
        "title": _text(info.get("title")),
        "uploader": _text(info.get("uploader")),
        "upload_date": upload_date,
        "webpage_url": _text(info.get("webpage_url")),
    }


def probe_video(path: Path, channel: str, data_root: Path, known: dict | None = None) -> dict:
    """One `videos` row for one file; problems of the file become status 'error' with a message.

    A file that leads (through a symlink) out of the data root is refused before it is opened. A
    file gone before it is read gets an error row; any other OSError (permission denied, I/O error)
    is the machine's and propagates.

    known: the file's stored row from an earlier run; when it was readable and the file's size and
    modification time are unchanged, its sha256 and stream properties are taken over instead of
    reading the whole file again (as `git status` trusts its index)."""
    row = dict.fromkeys(VIDEOS_SCHEMA) | {
        "channel": channel,
        "video_id": path.stem,
        "path": path.relative_to(data_root).as_posix(),
        "ext": path.suffix.lower().lstrip("."),
        "probed_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
    }
    info = StreamInfo()
    refusal = _refusal(path, data_root)
    if refusal is not None:
        row.update(status="error", error=refusal)
    else:
        try:
            stat = path.stat()
            row.update(size_bytes=stat.st_size, mtime=_utc(stat.st_mtime), **read_info_json(path, data_root))
            if _unchanged(known, row):
                row["sha256"] = known["sha256"]
                info = StreamInfo(**{f.name: known[f.name] for f in fields(StreamInfo)})
            else:
                row["sha256"] = sha256_of(path)
                info = probe_streams(path)
            row.update(status="ok", error=None)
        except VideoProbeError as exc:
            row.update(status="error", error=str(exc))
        except FileNotFoundError:  # PyAV's own (an FFmpegError too) included
            row.update(status="error", error="the file disappeared while the channel was probed")
        except av.FFmpegError as exc:  # some are OSErrors too, but a decoder's complaint is the video's
            row.update(status="error", error=f"cannot decode the video: {exc}")
    row.update({f.name: getattr(info, f.name) for f in fields(StreamInfo)})
    return row


def _unchanged(known: dict | None, row: dict) -> bool:
    return (
        known is not None
        and known["status"] == "ok"
        and known["path"] == row["path"]
        and known["size_bytes"] == row["size_bytes"]
        and row["mtime"] is not None
        and known["mtime"] == row["mtime"]
    )


def _layout_of(data_root: Path | DataLayout) -> DataLayout:
    if isinstance(data_root, DataLayout):
        return data_root
    return DataLayout.at(data_root)


def probe_channel(
    data_root: Path | DataLayout,
    channel: str,
    log: Callable[[str], None] = lambda _msg: None,
    known: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The `videos` rows of one channel: `<data_root>/videos/<channel>/*.{mp4,mkv,webm,mov}`.

    known: the channel's stored rows (see `stored_videos`); files unchanged since are not read again.
    InvalidChannelName or OutsideDataRoot (both ValueError) when the channel's folder cannot be
    used: a bad name, or a folder (or symlink) that leads out of the data root."""
    layout = _layout_of(data_root)
    files = list_video_files(layout.channel_dir(channel))
    known_by_path = {row["path"]: row for row in known.iter_rows(named=True)} if known is not None else {}
    log(f"channel {channel!r}: probing {len(files)} video files")
    rows = []
    first_file_of: dict[str, Path] = {}
    for i, path in enumerate(files, 1):
        relative = path.relative_to(layout.data_root).as_posix()
        row = probe_video(path, channel, layout.data_root, known_by_path.get(relative))
        if path.stem in first_file_of:  # video_id must identify one file downstream
            row.update(
                status="error",
                error=f"duplicate video_id {path.stem!r}: {first_file_of[path.stem].name} has the same "
                "name; rename one of them",
            )
        first_file_of.setdefault(path.stem, path)
        if (problem := video_id_problem(path.stem)) is not None:
            row.update(status="error", error=f"the file name cannot be a video id: {problem}; rename it")
        if row["status"] == "error":
            log(f"{row['path']}: {row['error']}")
        if i % 25 == 0 or i == len(files):
            log(f"channel {channel!r}: probed {i}/{len(files)}")
        rows.append(row)
    return pl.DataFrame(rows, schema=VIDEOS_SCHEMA)


# Other steps hold the file only for their short loads and stores, so a lock held longer is another
# process's (a notebook, the CLI): the cleanup waits for a later run rather than stall this one.
STORED_VIDEOS_WAIT_S = 30.0


_STORED_COLUMNS = (
    "video_id",
    "path",
    "size_bytes",
    "mtime",
    "sha256",
    "status",
    *(f.name for f in fields(StreamInfo)),
)


def known_video_columns(stored: pl.DataFrame | None) -> pl.DataFrame:
    """The columns of stored `videos` rows that a re-probe can take over; empty for None."""
    schema = {c: VIDEOS_SCHEMA[c] for c in _STORED_COLUMNS}
    if stored is None:
        return pl.DataFrame(schema=schema)
    return stored.select(list(_STORED_COLUMNS)).cast(schema)


def stored_videos(database: Path, channel: str) -> pl.DataFrame:
    """The channel's rows of the stored `videos` table (the columns a re-probe can take over),
    read-only; empty when there are none yet. DuckDB's lock error after `STORED_VIDEOS_WAIT_S`."""
    rows = stored_rows(
        database,
        "videos",
        f"select {', '.join(_STORED_COLUMNS)} from main.videos where channel in (select unnest(?))",
        [channel],
        STORED_VIDEOS_WAIT_S,
    )
    return pl.DataFrame(rows, schema={c: VIDEOS_SCHEMA[c] for c in _STORED_COLUMNS}, orient="row")


def unreadable_videos(database: Path, channels: list[str]) -> dict[str, str]:
    """channel -> "K of N videos unreadable: <path>: <error>" (the first by path), for the channels
    among `channels` whose stored `videos` rows include errors. Read-only."""
    found: dict[str, str] = {}
    for channel, n_total, n_failed, path, error in stored_rows(
        database,
        "videos",
        """
        select channel, count(*), count(*) filter (where status = 'error'),
               arg_min(path, path) filter (where status = 'error'),
               arg_min(error, path) filter (where status = 'error')
        from main.videos where channel in (select unnest(?)) group by channel
        """,
        channels,
    ):
        if n_failed:
            found[channel] = f"{n_failed} of {n_total} videos unreadable: {path}: {error}"
    return found


def stored_video_hashes(database: Path, other_than: str) -> pl.DataFrame:
    """channel, video_id, sha256 of the stored readable videos of every channel but `other_than`,
    read-only; empty when there are none. DuckDB's lock error after `STORED_VIDEOS_WAIT_S`."""
    rows = stored_rows(
        database,
        "videos",
        "select channel, video_id, sha256 from main.videos "
        "where channel not in (select unnest(?)) and status = 'ok' and sha256 is not null",
        [other_than],
        STORED_VIDEOS_WAIT_S,
    )
    return pl.DataFrame(rows, schema=HASH_COLUMNS, orient="row")


HASH_COLUMNS = {"channel": pl.Utf8(), "video_id": pl.Utf8(), "sha256": pl.Utf8()}


def videos_in_other_channels(videos: pl.DataFrame, others: pl.DataFrame) -> pl.DataFrame:
    """The readable videos of `videos` (one channel) whose content, by sha256, a video of another
    channel (`others`: channel, video_id, sha256) has too: video_id, sha256, other_channel,
    other_video_id, and `exported_from`, the first channel by name that holds it, whose copy's
    pairs the merged export keeps (stages/dataset_export_all.py). One row per other copy."""
    mine = videos.filter((pl.col("status") == "ok") & pl.col("sha256").is_not_null()).select(
        "channel", "video_id", "sha256"
    )
    copies = others.select(
        other_channel=pl.col("channel"), other_video_id=pl.col("video_id"), sha256=pl.col("sha256")
    ).filter(pl.col("other_channel") != pl.lit(videos["channel"][0] if videos.height else ""))
    joined = mine.join(copies, on="sha256", how="inner")
    return (
        joined.with_columns(
            exported_from=pl.min_horizontal(pl.col("channel"), pl.col("other_channel").min().over("sha256"))
        )
        .select("video_id", "sha256", "other_channel", "other_video_id", "exported_from")
        .sort("video_id", "other_channel", "other_video_id")
    )


def later_copies(lectures: pl.DataFrame) -> pl.DataFrame:
    """The lectures (channel, video_id, sha256) whose video content an earlier lecture, by (channel,
    video_id), has: channel, video_id, copy_of_channel, copy_of_video_id. A lecture without a
    sha256 is no copy. The first channel by name keeps the content, whichever channel ran first."""
    lectures = (
        lectures.select("channel", "video_id", "sha256")
        .unique()
        .filter(pl.col("sha256").is_not_null())
        .sort("channel", "video_id")
    )
    first = lectures.group_by("sha256", maintain_order=True).first()
    first = first.rename({"channel": "copy_of_channel", "video_id": "copy_of_video_id"})
    return (
        lectures.join(first, on="sha256")
        .filter(
            (pl.col("channel") != pl.col("copy_of_channel"))
            | (pl.col("video_id") != pl.col("copy_of_video_id"))
        )
        .drop("sha256")
    )


_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class RemovedFiles:
    """What `remove_files_of_deleted_videos` deleted, relative to the data root."""

    keyframe_folders: list[str] = field(default_factory=list)
    transcript_cache_entries: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # what could not be checked, and why


def remove_files_of_deleted_videos(
    layout: DataLayout,
    channel: str,
    videos: pl.DataFrame,
    previous: pl.DataFrame | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> RemovedFiles:
    """Delete what later stages kept of the channel's videos whose files are gone.

    videos: the channel's new `videos` rows (the files on disk now). previous: its stored rows
    before (video_id, sha256, size_bytes; see `stored_videos`), which tell the content of the files
    that are gone.

    - `keyframes/<channel>/<video_id>/` of every video_id not in `videos` (hidden folders and
      `.partial` ones, another writer's, are left alone);
    - `cache/transcripts/*/<sha256>.json` of every previous sha256 that no file of this channel
      has now, unless a video file of another channel holds the same content (files of the same
      size are hashed to know).

    Pair images (`pairs/<channel>/`) and exports are rebuilt whole from the tables by their stages,
    so the video's pairs go with the next `aligned_pairs` run. Without the channel's video folder
    (an unmounted disk, say) nothing is removed. OSErrors (permissions) propagate."""
    removed = RemovedFiles()
    if not layout.channel_dir(channel).is_dir():
        removed.skipped.append(f"{layout.channel_dir(channel)} does not exist")
        log(f"no folder {layout.channel_dir(channel)}: the files of its videos are kept")
        return removed
    current_ids = set(videos["video_id"].to_list())
    try:
        keyframes = layout.channel_path(layout.keyframes_dir, channel)
    except OutsideDataRoot as exc:
        removed.skipped.append(str(exc))
        log(f"keyframes of deleted videos kept: {exc}")
        keyframes = None
    if keyframes is not None and keyframes.is_dir():
        for folder in sorted(keyframes.iterdir()):
            name = folder.name
            if name in current_ids or name.startswith(".") or name.endswith(".partial"):
                continue
            if folder.is_symlink() or not folder.is_dir():
                continue
            shutil.rmtree(folder)
            clear_abandoned(folder)
            removed.keyframe_folders.append(folder.relative_to(layout.data_root).as_posix())
            log(f"removed the keyframes of deleted video {name!r}: {removed.keyframe_folders[-1]}")

    if previous is None or previous.is_empty():
        return removed
    current_hashes = set(videos["sha256"].drop_nulls().to_list())
    gone = {
        row["sha256"]: row["size_bytes"]
        for row in previous.iter_rows(named=True)
        if row["sha256"] and _SHA256.fullmatch(row["sha256"]) and row["sha256"] not in current_hashes
    }
    if not gone:
        return removed
    try:
        cached = remove_cached_transcripts(layout, channel, gone)
    except OutsideDataRoot as exc:
        removed.skipped.append(str(exc))
        log(f"transcript cache entries of deleted videos kept: {exc}")
        return removed
    for sha, reason in cached.kept.items():
        if reason == UNSURE:
            removed.skipped.append(f"{sha}: {reason}")
    for path in cached.deleted:
        removed.transcript_cache_entries.append(path)
        log(f"removed the cached transcript of a deleted video: {path}")
    return removed


UNSURE = "a video file of another channel with the same size could not be hashed"


@dataclass
class CachedTranscripts:
    """What `remove_cached_transcripts` did: the entries deleted, relative to the data root, and
    sha256 -> why its entries were kept."""

    deleted: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)


def remove_cached_transcripts(
    layout: DataLayout, channel: str, sizes: dict[str, int], held_elsewhere: set[str] = frozenset()
) -> CachedTranscripts:
    """Delete `cache/transcripts/*/<sha256>.json` of the videos `sizes` names (sha256 -> size in
    bytes), a channel's videos that are gone, unless another channel still holds the same content:
    a sha256 in `held_elsewhere` (stored rows of other channels), or a video file of another
    channel (files of the same size are hashed to know). Raises OutsideDataRoot when the cache
    resolves outside the data root."""
    result = CachedTranscripts()
    cache = layout.transcripts_cache_dir
    if not sizes or not cache.is_dir():
        return result
    layout.inside(cache, "the transcript cache")
    entries = {sha: sorted(cache.glob(f"*/{sha}.json")) for sha in sizes if _SHA256.fullmatch(sha)}
    entries = {sha: paths for sha, paths in entries.items() if paths}
    if not entries:
        return result
    on_disk, unsure = video_contents_in_other_channels(layout, channel, {sizes[sha] for sha in entries})
    for sha, paths in entries.items():
        if sha in held_elsewhere or sha in on_disk:
            result.kept[sha] = "another channel holds the same video"
        elif sizes[sha] in unsure:
            result.kept[sha] = UNSURE
        else:
            for path in paths:
                path.unlink(missing_ok=True)
                result.deleted.append(path.relative_to(layout.data_root).as_posix())
    return result


def video_contents_in_other_channels(
    layout: DataLayout, channel: str, sizes: set[int]
) -> tuple[set[str], set[int]]:
    """The sha256 of every video file of the other channels whose size is in `sizes`, and the sizes
    of those that could not be hashed (unreadable): their content may be in use."""
    hashes: set[str] = set()
    unsure: set[int] = set()
    if not layout.videos_dir.is_dir():
        return hashes, unsure
    for folder in sorted(layout.videos_dir.iterdir()):
        if folder.name == channel or not is_valid_channel_name(folder.name) or not folder.is_dir():
            continue
        for path in list_video_files(folder):
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue  # gone: it holds nothing
            if size not in sizes:
                continue
            try:
                if resolves_outside(path, layout.data_root) is None:  # a file outside is never read
                    hashes.add(sha256_of(path))
            except FileNotFoundError:
                continue
            except (OSError, RuntimeError):
                unsure.add(size)
    return hashes, unsure


def first_frame(path: Path) -> np.ndarray | None:
    """The first decodable frame of a video as RGB, or None."""
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                return frame.to_ndarray(format="rgb24")
    except av.FFmpegError:
        return None
    return None


def first_frames_sheet(
    data_root: Path, videos: pl.DataFrame, max_videos: int = 12, tile_width: int = 192, columns: int = 4
) -> bytes | None:
    """A PNG contact sheet of the first frame of up to `max_videos` readable videos, or None."""
    paths = videos.filter(pl.col("status") == "ok")["path"].head(max_videos)
    frames = [frame for frame in (first_frame(data_root / p) for p in paths) if frame is not None]
    return contact_sheet_png(frames, tile_width, columns)
