"""Stage `video_downloads`: fetch each channel's URLs from `channels.yaml` with yt-dlp.

Files land in `<data_root>/videos/<channel>/<id>.<ext>` with yt-dlp's `<id>.info.json` beside
them, where the `videos` stage picks up title, uploader, upload date and page URL. A URL that
fails becomes a row with status 'error'; the other URLs are still fetched. A file larger than
`max_download_mb` is not kept: it becomes an error row too.

`<channel>/.video_downloads.json` remembers which files each URL gave. A video URL whose file
is still on disk is not contacted again, so re-runs are cheap and work offline; delete the file
to fetch it again. Playlists and pages are always asked again, since they gain videos; yt-dlp
skips the files it already has.

`channels.yaml` is read entry by entry: an entry with a bad name or value affects only its own
channel (see `read_channels_file`).
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import reprlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import yaml

from mednarratives_assets.atomic_files import write_file
from mednarratives_assets.channels import check_channel_name, is_valid_channel_name
from mednarratives_assets.settings import DataLayout, resolves_outside
from mednarratives_assets.stage_settings import check_settings, setting
from mednarratives_assets.tables import stored_rows

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
BYTES_PER_MB = 2**20
# yt-dlp's message when the server announces a file above `max_filesize`; it then writes nothing.
_TOO_LARGE_MESSAGE = "larger than max-filesize"

# OSErrors of the machine rather than of a URL: they fail the step instead of becoming a row.
# Permission errors count when they name a file (a socket's EPERM is a firewall's answer to a URL).
MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
FILE_PERMISSION_ERRNOS = frozenset({errno.EACCES, errno.EPERM})

# Values quoted in messages are cut short: a hostile file may nest aliases into a huge structure.
_short = reprlib.Repr()
_short.maxlevel, _short.maxlist, _short.maxdict, _short.maxstring, _short.maxother = 2, 4, 4, 80, 80


@dataclass(frozen=True)
class DownloadSettings:
    """How URLs are fetched; `validated()` names a wrong value."""

    max_download_mb: int = setting(
        4096,
        "Largest video file kept, in MB of 1,048,576 bytes; a larger one is not kept and gets an error row.",
        gt=0,
        unit="MB",
    )

    def validated(self) -> DownloadSettings:
        return check_settings(self, "download setting {name}={value!r}: must {rule}")


class ChannelsFileError(ValueError):
    """`channels.yaml`, or the channel's entry in it, is malformed; the message names the file and
    the entry."""


@dataclass(frozen=True)
class ChannelsFile:
    """`channels.yaml` read entry by entry.

    urls: channel -> URLs, for the well-formed entries. bad_entries: channel -> what is wrong with
    its entry, for entries whose name is a channel name but whose value is not a list of URLs
    (the channel exists; its downloads fail with that message). skipped: one message per entry
    whose name cannot be a channel (no channel gets it). error: what is wrong with the whole file
    (not YAML, not a mapping, unreadable), in which case nothing else is known.
    """

    path: Path
    urls: dict[str, list[str]] = field(default_factory=dict)
    bad_entries: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def channels(self) -> dict[str, list[str]]:
        """Every channel the file names, bad entries with no URLs: what the folder scan adds."""
        return {**{channel: [] for channel in self.bad_entries}, **self.urls}

    @property
    def problems(self) -> list[str]:
        """Every problem, one message each (naming the file and the entry), to log or print."""
        return ([self.error] if self.error else []) + self.skipped + list(self.bad_entries.values())

    def urls_of(self, channel: str, downloaded_before: bool) -> list[str]:
        """The channel's URLs ([] when the file does not list it).

        ChannelsFileError when its entry is malformed, or when the whole file is and the channel has
        downloaded from URLs before (`downloaded_before`): without the file nobody can tell its URLs,
        and an empty list would replace its stored downloads. A channel that never downloaded
        anything is taken for a local folder and gets [] (see `error` to warn about it)."""
        if channel in self.bad_entries:
            raise ChannelsFileError(self.bad_entries[channel])
        if self.error and downloaded_before:
            raise ChannelsFileError(
                f"{self.error}; channel {channel!r} downloaded from URLs before, so its URLs are unknown "
                "until the file is fixed (its stored downloads are kept)"
            )
        return self.urls.get(channel, [])


def read_channels_file(channels_file: Path) -> ChannelsFile:
    """`channels.yaml`: a YAML mapping of channel names to URL lists; empty when absent.

    Each entry is checked on its own, so one bad entry leaves the others usable. A file that cannot
    be read as such a mapping sets `error` instead."""
    result = ChannelsFile(channels_file)
    try:
        text = channels_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return result
    except UnicodeDecodeError as exc:
        return ChannelsFile(channels_file, error=f"{channels_file}: not UTF-8 text ({exc.reason})")
    except OSError as exc:
        return ChannelsFile(channels_file, error=f"{channels_file}: cannot read it: {exc.strerror or exc}")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return ChannelsFile(channels_file, error=f"{channels_file}: not valid YAML: {exc}")
    if raw is None:
        return result
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        error = f"{channels_file}: expected a mapping of channel names to URL lists, got {kind}"
        return ChannelsFile(channels_file, error=error)
    for key, value in raw.items():
        if not isinstance(key, str):
            problem = (
                f"{channels_file}: entry {_short.repr(key)}: a channel name must be text; quote it "
                f"in YAML ('{str(key)[:80]}':)"
            )
            name = str(key) if isinstance(key, int) and not isinstance(key, bool) else None
            if name is not None and is_valid_channel_name(name):
                result.bad_entries[name] = problem
            else:
                result.skipped.append(problem)
            continue
        try:
            check_channel_name(key)
        except ValueError as exc:
            result.skipped.append(f"{channels_file}: {exc}; the entry is skipped")
            continue
        problem = _url_list_problem(value)
        if problem is not None:
            result.bad_entries[key] = f"{channels_file}: channel {key!r} {problem}"
        else:
            result.urls[key] = [url.strip() for url in value or []]
    return result


def _url_list_problem(value: object) -> str | None:
    """What keeps `value` from being a list of URL strings, or None (an empty entry is no URLs)."""
    if value is None:
        return None
    if not isinstance(value, list):
        hint = " (write it as a list item, '- URL')" if isinstance(value, str) else ""
        return f"must map to a list of URL strings, got {_short.repr(value)}{hint}"
    for number, url in enumerate(value, 1):
        if not isinstance(url, str) or not url.strip():
            return f"must map to a list of URL strings, but item {number} is {_short.repr(url)}"
    return None


class _YtDlpLog:
    """Routes yt-dlp's messages to our logger instead of stdout, and notes a refused large file."""

    def __init__(self, log: Callable[[str], None]):
        self._log = log
        self.too_large = False  # set when yt-dlp refused a file above max_filesize

    def debug(self, msg: str) -> None:
        if _TOO_LARGE_MESSAGE in msg:
            self.too_large = True
        if not msg.startswith("[debug] "):
            self._log(msg.strip())

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
        manifest = json.loads((channel_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {}  # absent or damaged: every URL is asked again
    return manifest if isinstance(manifest, dict) else {}


def _write_manifest(channel_dir: Path, manifest: dict[str, dict]) -> None:
    write_file(channel_dir / MANIFEST_NAME, json.dumps(manifest, indent=1, ensure_ascii=False))


def has_downloaded(layout: DataLayout, channel: str) -> bool:
    """Whether the channel ever downloaded from URLs here (its download manifest exists)."""
    return (layout.channel_dir(channel) / MANIFEST_NAME).is_file()


def _still_on_disk(data_root: Path, stored: object) -> bool:
    """Whether a manifest entry is a single video whose files are all still on disk."""
    if not isinstance(stored, dict) or stored.get("is_playlist") or not stored.get("rows"):
        return False
    try:
        return all((data_root / row["path"]).is_file() for row in stored["rows"])
    except (KeyError, TypeError):
        return False


def _refused(path: Path, limit_mb: int, too_large: bool, dest: Path) -> str | None:
    """Why the downloaded file at `path` is not kept, or None. A file above the limit is deleted,
    with its info JSON."""
    if resolves_outside(path, dest) is not None:
        return f"yt-dlp wrote {path}, outside the channel folder; refused"
    if not path.is_file():
        if too_large:
            path.with_suffix(".info.json").unlink(missing_ok=True)
            return f"larger than the limit of {limit_mb} MB (max_download_mb); not downloaded"
        return "yt-dlp reported the video but wrote no file"
    size = path.stat().st_size
    if size > limit_mb * BYTES_PER_MB:
        path.unlink()
        path.with_suffix(".info.json").unlink(missing_ok=True)
        return (
            f"larger than the limit of {limit_mb} MB (max_download_mb): {size / BYTES_PER_MB:.1f} MB; "
            "the file was deleted"
        )
    return None


def machine_failure(exc: BaseException) -> OSError | None:
    """The OSError of the machine (no space, permission, I/O) behind a yt-dlp error, if any: yt-dlp
    reports a failed write as it reports a failed connection, keeping the cause in `exc_info`."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and (
            current.errno in MACHINE_ERRNOS or (current.errno in FILE_PERMISSION_ERRNOS and current.filename)
        ):
            return current
        exc_info = getattr(current, "exc_info", None)
        cause = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) == 3 else None
        pending += [current.__cause__, current.__context__, cause]
    return None


def download_channel(
    layout: DataLayout,
    channel: str,
    urls: list[str],
    settings: DownloadSettings | None = None,
    log: Callable[[str], None] = lambda _msg: None,
    socket_timeout_s: float = 30.0,
) -> pl.DataFrame:
    """Download every URL of one channel; one row per video, or one error row per failed URL or
    refused file."""
    import imageio_ffmpeg
    import yt_dlp

    settings = (settings or DownloadSettings()).validated()
    data_root = layout.data_root
    dest = layout.channel_dir(channel)  # checks the name, and that the folder stays in the data root
    dest.mkdir(parents=True, exist_ok=True)
    ytdlp_log = _YtDlpLog(log)
    options = {
        "outtmpl": {"default": str(dest / "%(id)s.%(ext)s")},
        "writeinfojson": True,
        "format": "bv*[ext=mp4]+ba[ext=m4a]/b[ext=mp4]/bv*+ba/b",
        "merge_output_format": "mp4",
        "ffmpeg_location": imageio_ffmpeg.get_ffmpeg_exe(),
        "overwrites": False,
        "retries": 2,
        "socket_timeout": socket_timeout_s,
        "max_filesize": settings.max_download_mb * BYTES_PER_MB,
        "noprogress": True,
        "logger": ytdlp_log,
    }
    manifest = _read_manifest(dest)
    rows: list[dict] = []
    with yt_dlp.YoutubeDL(options) as ydl:
        for i, url in enumerate(urls, 1):
            stored = manifest.get(url)
            if _still_on_disk(data_root, stored):
                log(f"channel {channel!r}: {i}/{len(urls)} already downloaded: {url}")
                rows += [
                    {**row, "downloaded_at": dt.datetime.fromisoformat(row["downloaded_at"])}
                    for row in stored["rows"]
                ]
                continue
            log(f"channel {channel!r}: fetching {i}/{len(urls)}: {url}")
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            ytdlp_log.too_large = False
            try:
                info = ydl.extract_info(url, download=True)
            except yt_dlp.utils.YoutubeDLError as exc:
                machine = machine_failure(exc)
                if machine is not None:  # a full disk is no property of the URL
                    raise machine from exc
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
            fetched, refused = [], []
            for entry in _downloaded_entries(info):
                path = _entry_path(ydl, entry)
                row = {
                    "channel": channel,
                    "url": url,
                    "video_id": path.stem,
                    "path": None,
                    "title": entry.get("title"),
                    "uploader": entry.get("uploader"),
                    "upload_date": entry.get("upload_date"),
                    "webpage_url": entry.get("webpage_url") or url,
                    "status": "ok",
                    "error": None,
                    "downloaded_at": now.isoformat(),
                }
                problem = _refused(path, settings.max_download_mb, ytdlp_log.too_large, dest)
                if problem is None:
                    fetched.append({**row, "path": path.relative_to(data_root).as_posix()})
                else:
                    log(f"channel {channel!r}: {url}: {path.name}: {problem}")
                    refused.append({**row, "status": "error", "error": problem})
            if fetched or info.get("_type") in PLAYLIST_TYPES:
                manifest[url] = {"is_playlist": info.get("_type") in PLAYLIST_TYPES, "rows": fetched}
            else:  # nothing kept: ask again next time
                manifest.pop(url, None)
            _write_manifest(dest, manifest)
            rows += [{**row, "downloaded_at": now} for row in fetched + refused]
    return pl.DataFrame(rows, schema=VIDEO_DOWNLOADS_SCHEMA)


def download_failures(database: Path, channels: list[str]) -> dict[str, str]:
    """channel -> "K of N downloads failed: <url>: <error>" (the first failure), for the channels
    among `channels` whose stored `video_downloads` rows include errors. Read-only; {} without a
    database or table."""
    found: dict[str, str] = {}
    for channel, n_total, n_failed, url, error in stored_rows(
        database,
        "video_downloads",
        """
        select channel, count(*), count(*) filter (where status = 'error'),
               arg_min(url, (downloaded_at, url)) filter (where status = 'error'),
               arg_min(error, (downloaded_at, url)) filter (where status = 'error')
        from main.video_downloads where channel in (select unnest(?)) group by channel
        """,
        channels,
    ):
        if n_failed:
            found[channel] = f"{n_failed} of {n_total} downloads failed: {url}: {error}"
    return found
