"""Channels on disk: `<videos_dir>/<channel>/<video_id>.<ext>`.

The new-video sensor and the `videos` asset both use this module, so they agree on what counts
as a channel and as a video file. It reads only the filesystem, never DuckDB: a running
materialization may hold the database's single write lock.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".webm", ".mov"})

# yt-dlp's intermediate files while it fetches and merges formats: <id>.f137.mp4, <id>.temp.mp4.
_PARTIAL_DOWNLOAD = re.compile(r"\.(f\d+|temp)$")

# Channels become Dagster partition keys, folder names and DuckDB values: keep them to plain,
# portable names that can never step out of a folder.
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
CHANNEL_NAME_RULE = (
    "a channel name is 1 to 128 characters: ASCII letters, digits, '_', '-' and '.', "
    "starting with a letter, digit or '_', with no '..'"
)


class InvalidChannelName(ValueError):
    """A name that cannot be a channel; the message quotes it and states the rule."""


def is_valid_channel_name(name: object) -> bool:
    return isinstance(name, str) and bool(_CHANNEL_NAME.fullmatch(name)) and ".." not in name


def _shortened(name: object) -> object:
    """A name as quoted in a message: at most 80 characters, so a hostile one cannot flood a log."""
    return name if not isinstance(name, str) or len(name) <= 80 else name[:80] + "..."


def check_channel_name(name: object) -> str:
    if not is_valid_channel_name(name):
        raise InvalidChannelName(f"invalid channel name {_shortened(name)!r}: {CHANNEL_NAME_RULE}")
    return name


# Video ids name keyframe folders and pair files: no hidden names (`.`, `..`), no control characters.
_MAX_VIDEO_ID = 200


def video_id_problem(video_id: str) -> str | None:
    """Why a file name's stem cannot be a video id, or None when it can."""
    if not video_id:
        return "empty"
    if video_id.startswith("."):
        return "starts with '.' (hidden, or a folder reference such as '..')"
    if any(ord(c) < 32 or c in "/\\" for c in video_id):
        return "holds a control character or a path separator"
    if len(video_id) > _MAX_VIDEO_ID:
        return f"longer than {_MAX_VIDEO_ID} characters"
    return None


def list_video_files(channel_dir: Path) -> list[Path]:
    """The channel's video files, sorted by name; other files (info JSON, partial downloads) are skipped."""
    if not channel_dir.is_dir():
        return []
    return sorted(
        p
        for p in channel_dir.iterdir()
        if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not _PARTIAL_DOWNLOAD.search(p.stem)
    )


@dataclass(frozen=True)
class ChannelScan:
    valid: dict[str, str]  # channel -> fingerprint
    invalid: list[str]  # folder names that cannot be channels (hidden folders are not listed)


def skipped_folder_message(folder: Path) -> str:
    """Why a folder under the videos folder is no channel: its name and the rule it breaks."""
    shown = _shortened(folder.name)
    return (
        f"skipping the folder {folder.parent / shown}: {shown!r} is not a channel name "
        f"({CHANNEL_NAME_RULE}); rename it to ingest its videos"
    )


def channel_fingerprint(channel_dir: Path, urls: list[str] | tuple[str, ...] = ()) -> str:
    """A digest of the channel's video files (name, size, mtime) and its source URLs.

    It changes whenever a file lands, grows, is replaced or removed, or the URL list changes,
    without reading any video content, so a scan of thousands of files stays cheap.
    """
    digest = hashlib.sha256()
    for path in list_video_files(channel_dir):
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed since it was listed: the next scan sees the change
            continue
        digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    for url in urls:
        digest.update(f"url\0{url}\n".encode())
    return digest.hexdigest()[:16]


def scan_channels(videos_dir: Path, channel_urls: dict[str, list[str]] | None = None) -> ChannelScan:
    """Fingerprint every channel: each folder under `videos_dir`, and each channel that has URLs."""
    channel_urls = channel_urls or {}
    names = set(channel_urls)
    if videos_dir.is_dir():
        names.update(p.name for p in videos_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    valid: dict[str, str] = {}
    invalid: list[str] = []
    for name in sorted(names):
        if not is_valid_channel_name(name):
            invalid.append(name)
            continue
        valid[name] = channel_fingerprint(videos_dir / name, channel_urls.get(name, ()))
    return ChannelScan(valid=valid, invalid=invalid)
