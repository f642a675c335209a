"""Stage `video_downloads`: fetch each channel's URLs from `channels.yaml` with yt-dlp.

Files land in `<data_root>/videos/<channel>/<id>.<ext>` with yt-dlp's `<id>.info.json` beside
them, where the `videos` stage picks up title, uploader, upload date and page URL. A URL that
fails becomes a row with status 'error'; the other URLs are still fetched.

`<channel>/.video_downloads.json` remembers which files each URL gave. A video URL whose file
is still on disk is not contacted again, so re-runs are cheap and work offline; delete the file
to fetch it again. Playlists and pages are always asked again, since they gain videos; yt-dlp
skips the files it already has.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path

import polars as pl
import yaml

from mednarratives_assets.channels import check_channel_name

VIDEO_DOWNLOADS_SCHEMA: dict[str, pl.DataType] = {
    "channel": pl.Utf8(),
    "url": pl.Utf8(),
    "video_id": pl.Utf8(),
    "path": pl.Utf8(),
    "title": pl.Utf8(),
    "uploader": pl.Utf8(),
    "upload_date": pl.Utf8(),
    "webpage_url": pl.Utf8(),
    "status": pl.Utf8(),
    "error": pl.Utf8(),
    "downloaded_at": pl.Datetime("us"),
}


MANIFEST_NAME = ".video_downloads.json"
PLAYLIST_TYPES = ("playlist", "multi_video")


class ChannelsFileError(ValueError):
    """`channels.yaml` is malformed; the message names the file and the entry."""


def load_channel_urls(channels_file: Path) -> dict[str, list[str]]:
    """`{channel: [url, ...]}` from a YAML mapping of channel names to URL lists; {} if absent."""
    if not channels_file.exists():
        return {}
    try:
        raw = yaml.safe_load(channels_file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ChannelsFileError(f"{channels_file}: not valid YAML: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ChannelsFileError(
            f"{channels_file}: expected a mapping of channel names to URL lists, got {type(raw).__name__}"
        )
    channels: dict[str, list[str]] = {}
    for channel, urls in raw.items():
        try:
            check_channel_name(str(channel))
        except ValueError as exc:
            raise ChannelsFileError(f"{channels_file}: {exc}") from exc
        urls = [] if urls is None else urls
        if not isinstance(urls, list) or not all(isinstance(u, str) and u.strip() for u in urls):
            raise ChannelsFileError(
                f"{channels_file}: channel {channel!r} must map to a list of URL strings, got {urls!r}"
            )
        channels[str(channel)] = [u.strip() for u in urls]
    return channels


class _YtDlpLog:
    """Routes yt-dlp's messages to our logger instead of stdout."""

    def __init__(self, log: Callable[[str], None]):
        self._log = log

    def debug(self, msg: str) -> None:
        if not msg.startswith("[debug] "):
            self._log(msg)

    info = debug

    def warning(self, msg: str) -> None:
        self._log(f"yt-dlp warning: {msg}")

    def error(self, msg: str) -> None:
        self._log(f"yt-dlp error: {msg}")


def _downloaded_entries(info: dict) -> list[dict]:
    if info.get("_type") in PLAYLIST_TYPES:
        return [e for entry in info.get("entries") or [] if entry for e in _downloaded_entries(entry)]
    return [info]


def _entry_path(ydl, entry: dict) -> Path:
    downloads = entry.get("requested_downloads") or []
    if downloads and downloads[0].get("filepath"):
        return Path(downloads[0]["filepath"])
    return Path(ydl.prepare_filename(entry))


def _read_manifest(channel_dir: Path) -> dict[str, dict]:
    try:
        return json.loads((channel_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _write_manifest(channel_dir: Path, manifest: dict[str, dict]) -> None:
    tmp = channel_dir / f"{MANIFEST_NAME}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, channel_dir / MANIFEST_NAME)  # atomic: a crash never leaves half a manifest


def download_channel(
    data_root: Path,
    channel: str,
    urls: list[str],
    log: Callable[[str], None] = lambda _msg: None,
    socket_timeout_s: float = 30.0,
) -> pl.DataFrame:
    """Download every URL of one channel; one row per video, or one error row per failed URL."""
    import imageio_ffmpeg
    import yt_dlp

    dest = data_root / "videos" / channel
    dest.mkdir(parents=True, exist_ok=True)
    options = {
        "outtmpl": {"default": str(dest / "%(id)s.%(ext)s")},
        "writeinfojson": True,
        "format": "bv*[ext=mp4]+ba[ext=m4a]/b[ext=mp4]/bv*+ba/b",
        "merge_output_format": "mp4",
        "ffmpeg_location": imageio_ffmpeg.get_ffmpeg_exe(),
        "overwrites": False,
        "retries": 2,
        "socket_timeout": socket_timeout_s,
        "noprogress": True,
        "logger": _YtDlpLog(log),
    }
    manifest = _read_manifest(dest)
    rows: list[dict] = []
    with yt_dlp.YoutubeDL(options) as ydl:
        for i, url in enumerate(urls, 1):
            stored = manifest.get(url)
            if (
                stored
                and not stored["is_playlist"]
                and all((data_root / row["path"]).is_file() for row in stored["rows"])
            ):
                log(f"channel {channel!r}: {i}/{len(urls)} already downloaded: {url}")
                rows += [
                    {**row, "downloaded_at": dt.datetime.fromisoformat(row["downloaded_at"])}
                    for row in stored["rows"]
                ]
                continue
            log(f"channel {channel!r}: fetching {i}/{len(urls)}: {url}")
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            try:
                info = ydl.extract_info(url, download=True)
            except yt_dlp.utils.YoutubeDLError as exc:
                message = str(exc).removeprefix("ERROR: ")
                log(f"channel {channel!r}: {url} failed: {message}")
                rows.append(
                    {
                        "channel": channel,
                        "url": url,
                        "status": "error",
                        "error": f"download failed: {message}",
                        "downloaded_at": now,
                    }
                )
                continue
            fetched = []
            for entry in _downloaded_entries(info):
                path = _entry_path(ydl, entry)
                fetched.append(
                    {
                        "channel": channel,
                        "url": url,
                        "video_id": path.stem,
                        "path": path.relative_to(data_root).as_posix(),
                        "title": entry.get("title"),
                        "uploader": entry.get("uploader"),
                        "upload_date": entry.get("upload_date"),
                        "webpage_url": entry.get("webpage_url") or url,
                        "status": "ok",
                        "error": None,
                        "downloaded_at": now.isoformat(),
                    }
                )
            manifest[url] = {"is_playlist": info.get("_type") in PLAYLIST_TYPES, "rows": fetched}
            _write_manifest(dest, manifest)
            rows += [{**row, "downloaded_at": now} for row in fetched]
    return pl.DataFrame(rows, schema=VIDEO_DOWNLOADS_SCHEMA)
