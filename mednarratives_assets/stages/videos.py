"""Stage `videos`: probe every video file of a channel with PyAV into one row each.

A file that cannot be used (empty, truncated, not a video) still gets its row, with
status 'error' and a message naming the problem, so one bad upload never fails the channel.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import av
import numpy as np
import polars as pl

from mednarratives_assets.channels import list_video_files
from mednarratives_assets.contact_sheets import contact_sheet_png
from mednarratives_assets.file_hashing import sha256_of

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


def read_info_json(video_path: Path) -> dict:
    """Source metadata that yt-dlp wrote beside a downloaded video, or {} for local files."""
    info_path = video_path.with_suffix(".info.json")
    if not info_path.is_file():
        return {}
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    upload_date = info.get("upload_date")
    try:
        upload_date = dt.datetime.strptime(upload_date, "%Y%m%d").date() if upload_date else None
    except (TypeError, ValueError):
        upload_date = None
    return {
        "title": info.get("title"),
        "uploader": info.get("uploader"),
        "upload_date": upload_date,
        "webpage_url": info.get("webpage_url"),
    }


def probe_video(path: Path, channel: str, data_root: Path) -> dict:
    """One `videos` row for one file; problems become status 'error' with a message."""
    row = dict.fromkeys(VIDEOS_SCHEMA) | {
        "channel": channel,
        "video_id": path.stem,
        "path": path.relative_to(data_root).as_posix(),
        "ext": path.suffix.lower().lstrip("."),
        "probed_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
    }
    info = StreamInfo()
    try:
        stat = path.stat()
        row.update(
            size_bytes=stat.st_size,
            mtime=dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC).replace(tzinfo=None),
            sha256=sha256_of(path),
            **read_info_json(path),
        )
        info = probe_streams(path)
        row.update(status="ok", error=None)
    except VideoProbeError as exc:
        row.update(status="error", error=str(exc))
    except OSError as exc:  # removed or unreadable while the channel was being probed
        row.update(status="error", error=f"cannot read the file: {exc.strerror or exc}")
    row.update({f.name: getattr(info, f.name) for f in fields(StreamInfo)})
    return row


def probe_channel(
    data_root: Path,
    channel: str,
    log: Callable[[str], None] = lambda _msg: None,
) -> pl.DataFrame:
    """The `videos` rows of one channel: `<data_root>/videos/<channel>/*.{mp4,mkv,webm,mov}`."""
    files = list_video_files(data_root / "videos" / channel)
    log(f"channel {channel!r}: probing {len(files)} video files")
    rows = []
    first_file_of: dict[str, Path] = {}
    for i, path in enumerate(files, 1):
        row = probe_video(path, channel, data_root)
        if path.stem in first_file_of:  # video_id must identify one file downstream
            row.update(
                status="error",
                error=f"duplicate video_id {path.stem!r}: {first_file_of[path.stem].name} has the same "
                "name; rename one of them",
            )
        first_file_of.setdefault(path.stem, path)
        if row["status"] == "error":
            log(f"{row['path']}: {row['error']}")
        if i % 25 == 0 or i == len(files):
            log(f"channel {channel!r}: probed {i}/{len(files)}")
        rows.append(row)
    return pl.DataFrame(rows, schema=VIDEOS_SCHEMA)


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
