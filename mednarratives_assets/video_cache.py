"""Per-video results of a stage, cached by content: a channel's re-run computes only new or changed videos.

An entry holds one video's result tables of one stage, as Parquet files under
`<cache_dir>/<stage>/<key[:2]>/<key>/`. The key is a sha256 over everything that result depends on:
- the video: channel, id and content sha256;
- the stage's settings and the fingerprints of the models it uses (`StageCache.open`);
- the video's rows of the stage's table inputs (`StageCache.cached`), so a change upstream (a
  re-chunked video, a re-trained detector's traces) reaches exactly the videos it changed.

An entry is written whole or not at all; a damaged one is computed again. An OSError other than a
missing file (no space, permissions) propagates: the cache never hides the machine's faults.
Entries of videos that were removed stay until the cache folder is cleared; they cost disk, not
correctness, and bring a video that comes back for free. Each entry names its channel in a file
`channel`, so that removing a channel (stages/channel_removal.py) deletes its entries.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from mednarratives_assets.atomic_files import replaced_folder
from mednarratives_assets.file_hashing import sha256_of

# Bumped when the layout of an entry changes, so old entries are ignored rather than misread.
CACHE_FORMAT = "mednarratives-video-cache/1"
# A file in each entry naming its channel, so that removing a channel finds its entries
# (stages/channel_removal.py); readers of an entry ignore it.
CHANNEL_FILE = "channel"

Frames = dict[str, pl.DataFrame]


def frame_fingerprint(frame: pl.DataFrame) -> str:
    """sha256 of the frame's rows and column names, in their order (its JSON form is deterministic)."""
    return hashlib.sha256(frame.write_json().encode()).hexdigest()


def files_fingerprint(paths: list[Path]) -> str:
    """sha256 over the content of the files (a model's weights); a missing file counts as absent."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.name}:{sha256_of(path) if path.is_file() else 'absent'};".encode())
    return digest.hexdigest()


def _canonical(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _canonical(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, pl.DataFrame):
        return frame_fingerprint(value)
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def content_key(**parts: object) -> str:
    """sha256 of the parts in a canonical JSON form: dataclasses by their fields, frames by
    `frame_fingerprint`, mappings by sorted keys."""
    text = json.dumps(_canonical(parts), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class StageCache:
    """One stage's per-video cache for one channel; it counts the videos it computed and reused.

    `StageCache.off()` caches nothing and still counts, so stage code takes one path either way."""

    folder: Path | None
    channel: str
    fixed_key: str
    video_sha256: Mapping[str, str]
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        cache_dir: Path,
        stage: str,
        channel: str,
        videos: pl.DataFrame,
        settings: object,
        models: Mapping[str, str] | None = None,
    ) -> StageCache:
        """The cache of `stage` under `cache_dir`; `videos` (the videos table) gives each video's
        sha256, `models` each model's fingerprint by name."""
        return cls(
            folder=cache_dir / stage,
            channel=channel,
            fixed_key=content_key(format=CACHE_FORMAT, stage=stage, settings=settings, models=models or {}),
            video_sha256=dict(videos.select("video_id", "sha256").iter_rows()),
        )

    @classmethod
    def off(cls) -> StageCache:
        return cls(folder=None, channel="", fixed_key="", video_sha256={})

    def key(self, video_id: str, inputs: Mapping[str, object]) -> str:
        return content_key(
            fixed=self.fixed_key,
            channel=self.channel,
            video_id=video_id,
            sha256=self.video_sha256.get(video_id),
            inputs=inputs,
        )

    def _entry(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / key[:2] / key

    def get(self, key: str, tables: tuple[str, ...]) -> Frames | None:
        """The entry's tables, or None when there is none or it is damaged."""
        if self.folder is None:
            return None
        try:
            return {name: pl.read_parquet(self._entry(key) / f"{name}.parquet") for name in tables}
        except (FileNotFoundError, NotADirectoryError, pl.exceptions.PolarsError):
            return None

    def put(self, key: str, frames: Frames) -> None:
        """Store the entry whole: a reader never sees part of one, a failed write leaves none."""
        if self.folder is None:
            return
        with replaced_folder(self._entry(key)) as staging:
            for name, frame in frames.items():
                frame.write_parquet(staging / f"{name}.parquet")
            (staging / CHANNEL_FILE).write_text(self.channel, encoding="utf-8")

    def cached(
        self,
        video_id: str,
        inputs: Mapping[str, object],
        tables: tuple[str, ...],
        compute: Callable[[], Frames],
        usable: Callable[[Frames], bool] = lambda _frames: True,
    ) -> tuple[Frames, bool]:
        """The video's `tables` (by name) and whether they came from the cache: the entry for `inputs`
        when there is one and `usable` accepts it (the files it names are intact, say), else
        `compute()`'s, stored. An exception of `compute` propagates and stores nothing."""
        key = self.key(video_id, inputs)
        hit = self.get(key, tables)
        if hit is not None and usable(hit):
            self.reused.append(video_id)
            return hit, True
        frames = compute()
        self.put(key, frames)
        self.computed.append(video_id)
        return frames, False

    def summary(self) -> str:
        return f"{len(self.computed)} videos computed, {len(self.reused)} reused from the cache"

    def metadata(self) -> dict[str, int]:
        return {"n_videos_computed": len(self.computed), "n_videos_reused": len(self.reused)}
