from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from mednarratives_assets.asr.engines import AsrEngine, AsrSettings, build_engine
from mednarratives_assets.default_models import shipped_model
from mednarratives_assets.defs.configs import config_class, settings_from
from mednarratives_assets.defs.duckdb_tables import DuckDBTablesIOManager
from mednarratives_assets.defs.parquet_tables import ParquetTablesIOManager
from mednarratives_assets.deployment import Deployment
from mednarratives_assets.parquet_tables import EXTENSION, read_table, stored_table, tables_root
from mednarratives_assets.settings import DataLayout
from mednarratives_assets.stages.curated_text import CurationSettings
from mednarratives_assets.stages.cursor_detector import CursorDetector
from mednarratives_assets.stages.frame_classifier import FrameClassifier
from mednarratives_assets.stages.genmedclip_model import SavedClip
from mednarratives_assets.stages.videos import (
    HASH_COLUMNS,
    known_video_columns,
    stored_video_hashes,
    stored_videos,
)
from mednarratives_assets.video_cache import StageCache, files_fingerprint


class DataPaths(dg.ConfigurableResource):
    """Where videos, channels.yaml and the DuckDB file live (see settings.py for the defaults), and
    in the cluster profile the Parquet table store (deployment.py)."""

    data_root: str
    duckdb_path: str
    tables_url: str = ""

    @property
    def layout(self) -> DataLayout:
        return DataLayout(data_root=Path(self.data_root), duckdb_path=Path(self.duckdb_path))

    def stored_videos(self, channel: str) -> pl.DataFrame:
        """The channel's stored `videos` rows that a re-probe can take over; empty when none."""
        if not self.tables_url:
            return stored_videos(self.layout.duckdb_path, channel)
        return known_video_columns(stored_table(self.tables_url, "videos", channel))

    def videos_of_other_channels(self, channel: str) -> pl.DataFrame:
        """channel, video_id, sha256 of every other channel's stored readable videos."""
        if not self.tables_url:
            return stored_video_hashes(self.layout.duckdb_path, channel)
        folder = tables_root(self.tables_url) / "videos"
        frames = [
            read_table(path)
            .filter((pl.col("status") == "ok") & pl.col("sha256").is_not_null())
            .select(list(HASH_COLUMNS))
            .cast(HASH_COLUMNS)
            for path in (sorted(folder.glob(f"*{EXTENSION}")) if folder.exists() else [])
            if path.name != f"{channel}{EXTENSION}"
        ]
        return pl.concat(frames) if frames else pl.DataFrame(schema=HASH_COLUMNS)

    def stage_cache(
        self,
        stage: str,
        channel: str,
        videos: pl.DataFrame,
        settings: object,
        models: dict[str, str] | None = None,
    ) -> StageCache:
        """The per-video cache of `stage` for one channel, keyed by its settings, the model fingerprints
        and the source of its module `stages/<stage>.py` (a new version of the code computes anew)."""
        code = files_fingerprint(
            [Path(importlib.import_module(f"mednarratives_assets.stages.{stage}").__file__)]
        )
        layout = self.layout
        layout.inside(layout.cache_dir / stage, f"the {stage} cache")  # OutsideDataRoot if it leads out
        return StageCache.open(
            layout.cache_dir, stage, channel, videos, {"settings": settings, "code": code}, models
        )


# Trained models by the asset that trains them: where the asset saves it, and how to open it.
SAVED_MODELS: dict[str, tuple[Callable[[DataLayout], Path], Callable[[Path], Any]]] = {
    "frame_classifier": (lambda layout: layout.frame_classifier_path, FrameClassifier.load),
    "cursor_detector": (lambda layout: layout.cursor_detector_path, CursorDetector.load),
    "genmedclip_model": (lambda layout: layout.genmedclip_dir / "genmedclip_model", SavedClip.load),
    "genmedclip_no_dense_model": (
        lambda layout: layout.genmedclip_dir / "genmedclip_no_dense_model",
        SavedClip.load,
    ),
}


class ModelStore(DataPaths):
    """Trained models, opened by the name of the asset that trains them (see SAVED_MODELS).

    A model trained under the data root is used when there is one; otherwise the default that ships
    with the package (default_models/), for the models that have one. Assets that use a model take
    this resource and call `load`; the CLI asks `problem` first. Both go through the same opening
    code. (It holds the data root itself rather than a nested DataPaths, whose setup makes dagster
    1.13 warn in every run.)
    """

    def path(self, model: str) -> Path:
        """Where the model's asset saves it under the data root."""
        if model not in SAVED_MODELS:
            raise KeyError(f"no model named {model!r}; known: {', '.join(SAVED_MODELS)}")
        return SAVED_MODELS[model][0](self.layout)

    def source(self, model: str) -> Path:
        """The model in use: the one trained under the data root, else the shipped default, else
        where the data root's would be (so a missing model is reported there)."""
        trained = self.path(model)
        if trained.exists():
            return trained
        shipped = shipped_model(model)
        return shipped if shipped is not None else trained

    def open(self, model: str) -> Any:
        """The model; FileNotFoundError when it was never trained, ValueError when it cannot be used."""
        return SAVED_MODELS[model][1](self.source(model))

    def fingerprint(self, model: str) -> str:
        """sha256 over the model's saved files: its weights and the settings saved beside them."""
        path = self.source(model)
        files = sorted(path.parent.glob(f"{path.stem}.*")) if path.suffix else sorted(path.rglob("*"))
        return files_fingerprint([f for f in files if f.is_file()])

    def problem(self, model: str) -> str | None:
        """None when the model opens; otherwise why not, in one line."""
        try:
            self.open(model)
        except (FileNotFoundError, ValueError) as exc:
            return str(exc).splitlines()[0]
        return None

    def load(self, model: str, needed_by: str, purpose: str | None = None, alternative: str = "") -> Any:
        """The model for the asset `needed_by`, or a dg.Failure saying to materialize `model` first.

        purpose: what the asset needs it for, when not obvious; alternative: another way out.
        """
        try:
            return self.open(model)
        except FileNotFoundError as exc:
            raise dg.Failure(
                f"{needed_by} needs {purpose or model}: {exc}; materialize {model} first{alternative}"
            ) from exc
        except ValueError as exc:  # saved by another version of the code, or damaged
            raise dg.Failure(
                f"{needed_by} cannot use the saved {model} ({exc}); materialize {model} again"
            ) from exc

    def deferred(self, model: str, needed_by: str, purpose: str | None = None, alternative: str = "") -> Any:
        """The model as `load` gives it, opened at its first use: a run whose videos all come from
        the cache never spends the time to open it."""
        return _Deferred(lambda: self.load(model, needed_by, purpose, alternative))


class _Deferred:
    """Stands for a model and opens it when one of its attributes is first asked for."""

    def __init__(self, open_model: Callable[[], Any]):
        self._open_model = open_model
        self._model = None

    def __getattr__(self, name: str) -> Any:
        if self._model is None:
            self._model = self._open_model()
        return getattr(self._model, name)


class SpeechRecognizer(dg.ConfigurableResource):
    """Offline ASR with word times. Set in the launchpad under `resources: asr: config:`.

    engine: `faster-whisper` (default) or `whisperx`. model_path: a CTranslate2 Whisper folder, or
    the name of a checkpoint a pip package ships (`tiny.en`, the default, or `base`; see
    asr/checkpoints.py). word_start_shift_s: added to every word time; empty takes the
    checkpoint's own, measured on training voices. align_model: whisperx only, a local wav2vec2
    model (see asr/engines.py).
    """

    engine: str = AsrSettings.engine
    model_path: str = AsrSettings.model_path
    device: str = AsrSettings.device
    compute_type: str = AsrSettings.compute_type
    batch_size: int = AsrSettings.batch_size
    threads: int = AsrSettings.threads
    language: str = AsrSettings.language
    beam_size: int = AsrSettings.beam_size
    vocabulary_prompt: bool = AsrSettings.vocabulary_prompt
    vocabulary_corrections: bool = True
    align_model: str = AsrSettings.align_model
    word_start_shift_s: float | None = AsrSettings.word_start_shift_s

    def build(self) -> AsrEngine:
        """The engine; a wrong setting raises an error that names it."""
        settings = {field.name: getattr(self, field.name) for field in fields(AsrSettings)}
        return build_engine(AsrSettings(**settings))


class TextCurator(
    config_class(
        CurationSettings,
        "TextCuratorSettings",
        "The curated_text stage's settings.",
        base=dg.ConfigurableResource,
    )
):
    """Where `curated_text` gets each pair's texts. Set in the launchpad under
    `resources: text_curator: config:`; docs/stages/curated_text.md has examples.

    backend: `rules` (default: aligned_pairs' own texts), `openai` (any OpenAI-compatible chat
    endpoint at base_url, serving `model`; the API key is read from the environment variable
    named by api_key_env) or `local` (the GGUF model at gguf_path, by default the pip-shipped
    SmolLM2). Each field's description gives its default and bounds.
    """

    def settings(self) -> CurationSettings:
        """The stage's settings; a wrong one raises a ValueError that names it and its value."""
        return settings_from(self, CurationSettings)


def build_resources(layout: DataLayout, deployment: Deployment | None = None) -> dict:
    deployment = deployment or Deployment()
    paths = DataPaths(
        data_root=str(layout.data_root), duckdb_path=str(layout.duckdb_path), tables_url=deployment.tables_url
    )
    if deployment.is_cluster:
        # One Parquet object per asset and channel: steps on any host store without a lock.
        io_manager = ParquetTablesIOManager(tables_url=deployment.tables_url)
    else:
        # Every table lands in the `main` schema of one DuckDB file. Each write opens a short
        # connection and commits a channel's rows in one transaction, waiting a while for another
        # process that holds the file (see defs/duckdb_tables.py).
        io_manager = DuckDBTablesIOManager(database=str(layout.duckdb_path), schema="main")
    return {
        "paths": paths,
        "models": ModelStore(data_root=paths.data_root, duckdb_path=paths.duckdb_path),
        "asr": SpeechRecognizer(),
        "text_curator": TextCurator(),
        "io_manager": io_manager,
    }
