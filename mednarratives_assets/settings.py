"""Where the platform keeps its files: one data root holds videos, the DuckDB file and Dagster's home.

`MEDNARRATIVES_DATA_ROOT` moves everything at once; `MEDNARRATIVES_DUCKDB` moves only the database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mednarratives_assets.channels import check_channel_name

REPO_ROOT = Path(__file__).resolve().parents[1]
# The local instance's settings, linked from DAGSTER_HOME (data/dagster_home).
INSTANCE_CONFIG = REPO_ROOT / "dagster.yaml"
# MedPix 2.0 where the workspace keeps it: real CT and MR images with captions, read when present.
MEDPIX_DIR = REPO_ROOT.parent / "shared" / "datasets" / "medpix"
DATA_ROOT_ENV = "MEDNARRATIVES_DATA_ROOT"
DUCKDB_ENV = "MEDNARRATIVES_DUCKDB"


class OutsideDataRoot(ValueError):
    """A path that resolves (through `..` or a symlink) to a place outside the data root."""


def resolves_outside(path: Path, root: Path) -> Path | None:
    """Where `path` really leads, symlinks followed, when that is outside `root`; None when inside."""
    resolved = path.resolve()
    return None if resolved.is_relative_to(root.resolve()) else resolved


@dataclass(frozen=True)
class DataLayout:
    """The file layout under one data root."""

    data_root: Path
    duckdb_path: Path

    @classmethod
    def at(cls, data_root: Path) -> DataLayout:
        """The layout of `data_root`, with the DuckDB file in its default place."""
        return cls(data_root=Path(data_root), duckdb_path=Path(data_root) / "mednarratives.duckdb")

    @classmethod
    def from_env(cls) -> DataLayout:
        data_root = Path(os.environ.get(DATA_ROOT_ENV) or REPO_ROOT / "data").expanduser().resolve()
        duckdb_path = os.environ.get(DUCKDB_ENV)
        if not duckdb_path:
            return cls.at(data_root)
        return cls(data_root=data_root, duckdb_path=Path(duckdb_path).expanduser().resolve())

    @property
    def videos_dir(self) -> Path:
        return self.data_root / "videos"

    @property
    def channels_file(self) -> Path:
        return self.data_root / "channels.yaml"

    @property
    def ground_truth_dir(self) -> Path:
        """Ground truth of generated demo lectures: `<channel>/<video_id>.json`."""
        return self.data_root / "ground_truth"

    @property
    def cache_dir(self) -> Path:
        """What can be made again: stage caches, model training scratch space."""
        return self.data_root / "cache"

    @property
    def locks_dir(self) -> Path:
        """One lock file per stage and channel: `<stage>/<channel>.lock` (see channel_locks.py)."""
        return self.data_root / "locks"

    @property
    def transcripts_cache_dir(self) -> Path:
        """ASR output per engine fingerprint and video sha256, so unchanged videos are not re-transcribed."""
        return self.cache_dir / "transcripts"

    @property
    def keyframes_dir(self) -> Path:
        """Keyframes of stable chunks: `<channel>/<video_id>/chunk-NNN.png`."""
        return self.data_root / "keyframes"

    @property
    def models_dir(self) -> Path:
        """Trained models: `frame_classifier.pt`, `cursor_detector.pt`, `genmedclip/`."""
        return self.data_root / "models"

    @property
    def frame_classifier_path(self) -> Path:
        return self.models_dir / "frame_classifier.pt"

    @property
    def cursor_detector_path(self) -> Path:
        """YOLO pose weights; `cursor_detector.json` beside them holds the settings and metrics."""
        return self.models_dir / "cursor_detector.pt"

    @property
    def genmedclip_dir(self) -> Path:
        """CLIP models in open_clip's folder format: `genmedclip/<asset>/`."""
        return self.models_dir / "genmedclip"

    @property
    def narratives_dir(self) -> Path:
        """Localized Narratives JSONL per channel: `<channel>.jsonl`."""
        return self.data_root / "narratives"

    @property
    def pairs_dir(self) -> Path:
        """Images of aligned pairs, cropped from keyframes: `<channel>/<pair_id>.png`."""
        return self.data_root / "pairs"

    @property
    def exports_dir(self) -> Path:
        """Dataset folders, one per channel, that Hugging Face `datasets` loads."""
        return self.data_root / "exports"

    @property
    def merged_dataset_dir(self) -> Path:
        """Every channel's pairs in one dataset folder, split by lecture (`dataset_export_all`).
        Not under `exports/`, where any name (`all` too) can be a channel's."""
        return self.data_root / "dataset"

    def channel_dir(self, channel: str) -> Path:
        """The channel's video folder."""
        return self.channel_path(self.videos_dir, channel)

    def channel_path(self, folder: Path, channel: str, suffix: str = "") -> Path:
        """`folder/<channel><suffix>`, once the name passes the channel rule and the path is found to
        stay inside the data root. Every per-channel file and folder is named through here."""
        check_channel_name(channel)
        return self.inside(folder / f"{channel}{suffix}", f"channel {channel!r}")

    def inside(self, path: Path, what: str) -> Path:
        """`path` unchanged when it resolves, symlinks followed, to a place under the data root;
        otherwise OutsideDataRoot naming `what` and both paths."""
        resolved = resolves_outside(path, self.data_root)
        if resolved is not None:
            raise OutsideDataRoot(
                f"{what}: {path} resolves to {resolved}, outside the data root {self.data_root}; "
                "refusing to read, write or delete it"
            )
        return path
