"""Removing a channel: its rows in every table, its files under the data root, and (on request) its
videos. Not an asset: `mednarratives remove-channel NAME` and the UI's `remove_channel_job` call
`remove_channel`, then delete the channel's partition.

What goes, in this order (a failure stops it; running it again finishes the job):

1. the channel's rows of every table with a `channel` column in the DuckDB file, in one
   transaction; in the cluster profile also its Parquet object of every table,
   `<tables_url>/<table>/<channel>.parquet`;
2. its files: `keyframes/<channel>/`, `pairs/<channel>/`, `narratives/<channel>.jsonl`,
   `exports/<channel>/`, `ground_truth/<channel>/` (the demo's), the temporaries writers left
   beside them, its entries in every stage cache (`cache/<stage>/..`, found by the `channel` file
   in each entry, or the `channel` column of an older entry's tables), the cached transcripts of
   its videos' content that no other channel holds, and its lock files `locks/<stage>/<channel>.lock`;
3. with `delete_videos`, its video folder `videos/<channel>/`.

The video folder decides whether the channel comes back: the new-video sensor adds a partition for
every folder under `videos/` (and every channel in `channels.yaml`). So removal is refused while
the folder exists, unless `delete_videos` says to delete it too, and while channels.yaml lists
the channel. It also waits for, then refuses, a run of the channel that holds one of its locks.

The merged dataset (`dataset/`) and `dataset_statistics` still count the channel until
`dataset_job` runs again; the report says so.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from mednarratives_assets.channel_locks import ChannelBusy, channel_lock, database_turn
from mednarratives_assets.channels import check_channel_name
from mednarratives_assets.parquet_tables import EXTENSION, read_table, tables_root
from mednarratives_assets.settings import DataLayout, OutsideDataRoot
from mednarratives_assets.stages.video_downloads import read_channels_file
from mednarratives_assets.stages.videos import remove_cached_transcripts
from mednarratives_assets.tables import connect_when_free, stored_rows, table_exists
from mednarratives_assets.video_cache import CHANNEL_FILE

# How long removal waits for a run of the channel to let go of a lock, or for the DuckDB file.
DEFAULT_WAIT_S = 30.0
_STAGE_CACHE_PREFIX = re.compile(r"[0-9a-f]{2}")
_STAGE_CACHE_KEY = re.compile(r"[0-9a-f]{64}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
DATASET_JOB_HINT = (
    "the merged dataset (dataset/) and dataset_statistics still count this channel: run dataset_job "
    "again (`mednarratives run`, or dataset_job in the UI)"
)


class RemovalRefused(ValueError):
    """The channel cannot be removed now; the message says why and what to do."""


@dataclass
class ChannelRemoval:
    """What `remove_channel` removed. Paths are relative to the data root."""

    channel: str
    rows: dict[str, int] = field(default_factory=dict)  # DuckDB table -> rows deleted
    objects: dict[str, int] = field(default_factory=dict)  # Parquet object -> rows it held
    paths: list[str] = field(default_factory=list)  # folders and files deleted
    stage_cache_entries: dict[str, int] = field(default_factory=dict)  # stage -> entries deleted
    transcript_cache_entries: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # what was left on purpose, and why
    videos_folder: str | None = None  # deleted with delete_videos
    partition_deleted: bool = False

    @property
    def removed_anything(self) -> bool:
        return bool(
            any(self.rows.values())
            or self.objects
            or self.paths
            or self.stage_cache_entries
            or self.transcript_cache_entries
            or self.videos_folder
            or self.partition_deleted
        )

    def lines(self) -> list[str]:
        """The report, one line each: rows per table, objects, folders and files, what was kept."""
        lines = [f"removed channel {self.channel!r}:"]
        lines.append(f"  partition: {'deleted' if self.partition_deleted else 'none'}")
        for table, n in sorted(self.rows.items()):
            lines.append(f"  table {table}: {n} rows")
        for name, n in sorted(self.objects.items()):
            lines.append(f"  Parquet object {name}: {n} rows")
        for path in self.paths:
            lines.append(f"  {path}")
        for stage, n in sorted(self.stage_cache_entries.items()):
            lines.append(f"  cache/{stage}: {n} entries")
        if self.transcript_cache_entries:
            lines.append(f"  cached transcripts: {len(self.transcript_cache_entries)}")
        if self.videos_folder:
            lines.append(f"  videos: {self.videos_folder}")
        for note in self.kept:
            lines.append(f"  kept: {note}")
        if not self.removed_anything:
            lines.append("  nothing: no partition, rows or files of this channel were found")
        lines.append(f"next: {DATASET_JOB_HINT}")
        return lines


def removal_refusal(layout: DataLayout, channel: str, delete_videos: bool) -> str | None:
    """Why the channel cannot be removed (a hostile name, its video folder, channels.yaml), or None.
    InvalidChannelName for a name that breaks the channel rule."""
    check_channel_name(channel)
    try:
        folder = layout.channel_dir(channel)
    except OutsideDataRoot as exc:
        return str(exc)
    if (folder.exists() or folder.is_symlink()) and not delete_videos:
        return (
            f"{folder} still exists, and the new-video sensor would add channel {channel!r} again from "
            "it: move the folder out of the videos folder first, or remove the channel with its videos "
            "(--delete-videos; in the UI, delete_videos: true)"
        )
    channels_file = read_channels_file(layout.channels_file)
    if channel in channels_file.channels:
        return (
            f"{layout.channels_file} lists channel {channel!r}, and the new-video sensor would add it "
            "again: delete its entry first"
        )
    return None


def remove_channel(
    layout: DataLayout,
    channel: str,
    delete_videos: bool = False,
    tables_url: str = "",
    wait_s: float = DEFAULT_WAIT_S,
    log: Callable[[str], None] = lambda _msg: None,
) -> ChannelRemoval:
    """Delete the channel's rows, files and (with `delete_videos`) videos, as the module doc says;
    the partition is the caller's. InvalidChannelName for a hostile name; RemovalRefused when its
    video folder or channels.yaml would bring it back, or a run of it holds a lock past `wait_s`.
    Running it again after a failure, or on a removed channel, removes what is left (or nothing)."""
    refusal = removal_refusal(layout, channel, delete_videos)
    if refusal is not None:
        raise RemovalRefused(refusal)
    removal = ChannelRemoval(channel)
    try:
        lock_files = channel_lock_files(layout, channel)
    except OutsideDataRoot as exc:
        raise RemovalRefused(f"the channel's lock files: {exc}") from exc
    with ExitStack() as locks:
        for lock in lock_files:
            try:
                locks.enter_context(channel_lock(lock, "remove-channel", wait_s=wait_s, log=log))
            except ChannelBusy as exc:
                raise RemovalRefused(f"a run of channel {channel!r} is writing: {exc}") from exc
        hashes = _channel_video_hashes(layout, channel, tables_url)
        if tables_url:
            removal.objects = _remove_table_objects(tables_url, channel, log)
        removal.rows = _remove_rows(layout.duckdb_path, channel, wait_s, log)
        _remove_channel_files(layout, channel, removal, log)
        _remove_stage_cache_entries(layout, channel, removal, log)
        _remove_cached_transcripts(layout, channel, hashes, tables_url, removal, log)
        for lock in lock_files:
            lock.unlink(missing_ok=True)
            removal.paths.append(_relative(layout, lock))
    if delete_videos:
        folder = layout.channel_dir(channel)
        if folder.exists() or folder.is_symlink():
            _delete(folder)
            removal.videos_folder = _relative(layout, folder)
            log(f"deleted the channel's videos: {folder}")
    return removal


def channel_lock_files(layout: DataLayout, channel: str) -> list[Path]:
    """The channel's lock file of every stage: `locks/<stage>/<channel>.lock`."""
    if not layout.locks_dir.is_dir():
        return []
    found = []
    for stage in sorted(layout.locks_dir.iterdir()):
        if stage.is_dir() and not stage.is_symlink():
            path = layout.channel_path(stage, channel, ".lock")
            if path.is_file():
                found.append(path)
    return found


def _relative(layout: DataLayout, path: Path) -> str:
    return path.relative_to(layout.data_root).as_posix()


def _delete(path: Path) -> None:
    """Delete a file, a folder, or a symlink itself (never what it leads to)."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


def _channel_video_hashes(layout: DataLayout, channel: str, tables_url: str) -> dict[str, int]:
    """sha256 -> size of the channel's stored videos (before their rows go)."""
    if tables_url:
        try:
            frame = read_table(tables_root(tables_url) / "videos" / f"{channel}{EXTENSION}")
        except FileNotFoundError:
            frame = None
        rows = [] if frame is None else frame.select("sha256", "size_bytes").rows()
    else:
        rows = stored_rows(
            layout.duckdb_path,
            "videos",
            "select sha256, size_bytes from main.videos where channel in (select unnest(?))",
            [channel],
        )
    return {sha: size for sha, size in rows if isinstance(sha, str) and _SHA256.fullmatch(sha)}


def _other_channels_hashes(layout: DataLayout, channel: str, tables_url: str) -> set[str]:
    """sha256 of every stored video of the other channels."""
    if tables_url:
        folder = tables_root(tables_url) / "videos"
        if not folder.exists():
            return set()
        found: set[str] = set()
        for path in folder.glob(f"*{EXTENSION}"):
            if path.name != f"{channel}{EXTENSION}":
                found.update(read_table(path)["sha256"].drop_nulls().to_list())
        return found
    rows = stored_rows(
        layout.duckdb_path,
        "videos",
        "select distinct sha256 from main.videos where channel not in (select unnest(?))",
        [channel],
    )
    return {sha for (sha,) in rows if sha}


def _remove_table_objects(tables_url: str, channel: str, log: Callable[[str], None]) -> dict[str, int]:
    """Delete `<table>/<channel>.parquet` of every table of the store; object -> rows it held."""
    root = tables_root(tables_url)
    removed: dict[str, int] = {}
    if not root.exists():
        return removed
    for table in sorted((entry for entry in root.iterdir() if entry.is_dir()), key=lambda p: p.name):
        path = table / f"{check_channel_name(channel)}{EXTENSION}"
        try:
            n_rows = read_table(path).height
        except FileNotFoundError:
            continue
        path.unlink()
        removed[f"{table.name}/{path.name}"] = n_rows
        log(f"deleted the Parquet object {table.name}/{path.name} ({n_rows} rows)")
    return removed


def _remove_rows(database: Path, channel: str, wait_s: float, log: Callable[[str], None]) -> dict[str, int]:
    """Delete the channel's rows of every table with a `channel` column, in one transaction;
    table -> rows deleted (0 for a table without any)."""
    if not database.exists():
        return {}
    with database_turn(database, "remove-channel", log=log, wait_s=wait_s):
        con = connect_when_free(database, wait_s, read_only=False)
        try:
            tables = con.execute(
                """
                select t.schema_name, t.table_name from duckdb_tables() t
                join duckdb_columns() c using (database_name, schema_name, table_name)
                where c.column_name = 'channel' and not t.internal and not t.temporary
                order by t.schema_name, t.table_name
                """
            ).fetchall()
            con.begin()
            counts = {}
            for schema, table in tables:
                if not table_exists(con, table, schema):
                    continue
                name = table if schema == "main" else f"{schema}.{table}"
                quoted = f'"{schema}"."{table}"'
                counts[name] = con.execute(
                    f"select count(*) from {quoted} where channel = ?", [channel]
                ).fetchone()[0]
                con.execute(f"delete from {quoted} where channel = ?", [channel])
            con.commit()
        except BaseException:
            con.rollback()
            raise
        finally:
            con.close()
    for name, n in counts.items():
        if n:
            log(f"deleted {n} rows of table {name}")
    return counts


_TEMPORARY = r"\.{name}\.\d+-[0-9a-f]+\.partial"


def _remove_channel_files(
    layout: DataLayout, channel: str, removal: ChannelRemoval, log: Callable[[str], None]
) -> None:
    """The channel's folders and files of the data root, and the temporaries their writers left."""
    places = (
        (layout.keyframes_dir, ""),
        (layout.pairs_dir, ""),
        (layout.narratives_dir, ".jsonl"),
        (layout.exports_dir, ""),
        (layout.ground_truth_dir, ""),
    )
    for folder, suffix in places:
        try:
            target = layout.channel_path(folder, channel, suffix)
        except OutsideDataRoot as exc:
            removal.kept.append(str(exc))
            continue
        if target.exists() or target.is_symlink():
            _delete(target)
            removal.paths.append(_relative(layout, target))
            log(f"deleted {target}")
        if folder.is_dir():
            temporary = re.compile(_TEMPORARY.format(name=re.escape(target.name)))
            for path in sorted(folder.iterdir()):
                if temporary.fullmatch(path.name):
                    _delete(path)
                    removal.paths.append(_relative(layout, path))


def stage_cache_entries(layout: DataLayout, channel: str) -> dict[str, list[Path]]:
    """stage -> the channel's entries of its per-video cache (video_cache.py)."""
    found: dict[str, list[Path]] = {}
    cache = layout.cache_dir
    if not cache.is_dir():
        return found
    layout.inside(cache, "the cache folder")
    for stage in sorted(cache.iterdir()):
        if not stage.is_dir() or stage.is_symlink():
            continue
        for prefix in sorted(stage.iterdir()):
            if not _STAGE_CACHE_PREFIX.fullmatch(prefix.name) or not prefix.is_dir():
                continue
            for entry in sorted(prefix.iterdir()):
                if _STAGE_CACHE_KEY.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
                    if entry_channel(entry) == channel:
                        found.setdefault(stage.name, []).append(entry)
    return found


def entry_channel(entry: Path) -> str | None:
    """The channel of a stage cache entry: its `channel` file, or for an entry written before that
    file was, the `channel` column of the first of its tables that has rows; None when unknown."""
    try:
        return (entry / CHANNEL_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError):
        return None
    for table in sorted(entry.glob("*.parquet")):
        try:
            frame = pl.read_parquet(table, columns=["channel"], n_rows=1)
        except (pl.exceptions.PolarsError, OSError):
            continue
        if frame.height:
            return frame["channel"][0]
    return None


def _remove_stage_cache_entries(
    layout: DataLayout, channel: str, removal: ChannelRemoval, log: Callable[[str], None]
) -> None:
    try:
        found = stage_cache_entries(layout, channel)
    except OutsideDataRoot as exc:
        removal.kept.append(str(exc))
        return
    for stage, entries in found.items():
        for entry in entries:
            shutil.rmtree(entry)
        removal.stage_cache_entries[stage] = len(entries)
        log(f"deleted {len(entries)} entries of cache/{stage}")


def _remove_cached_transcripts(
    layout: DataLayout,
    channel: str,
    hashes: dict[str, int],
    tables_url: str,
    removal: ChannelRemoval,
    log: Callable[[str], None],
) -> None:
    """The channel's cached transcripts, unless another channel's stored videos or video files hold
    the same content."""
    try:
        cached = remove_cached_transcripts(
            layout, channel, hashes, held_elsewhere=_other_channels_hashes(layout, channel, tables_url)
        )
    except OutsideDataRoot as exc:
        removal.kept.append(str(exc))
        return
    removal.transcript_cache_entries.extend(cached.deleted)
    if cached.kept:
        shared = len(cached.kept)
        removal.kept.append(f"cached transcripts of {shared} videos that another channel also holds")
    if cached.deleted:
        log(f"deleted {len(cached.deleted)} cached transcripts")
