from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from mednarratives_assets.default_models import shipped_model
from mednarratives_assets.defs.resources import build_resources
from mednarratives_assets.demo.corpus import DemoCorpusConfig, generate_corpus
from mednarratives_assets.evaluation.ground_truth import load_truth
from mednarratives_assets.mp4 import write_mp4
from mednarratives_assets.settings import DataLayout
from mednarratives_assets.stages.cursor_detector import (
    CursorDetector,
)
from mednarratives_assets.stages.cursor_traces import TraceSettings, VideoTrace, trace_video
from mednarratives_assets.stages.frame_classifier import (
    FrameClassifier,
)
from mednarratives_assets.stages.stable_chunks import ChunkingSettings, chunk_video

# A test that needs one of these renders a corpus (a minute or more on 2 cores), and an integration
# test starts dagster dev and backfills (about 6 minutes): both are `slow`, so that
# `pytest -m "not slow"` gives feedback in a few minutes.
SLOW_FIXTURES = frozenset({"default_demo_corpus", "traced_default_corpus"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.slow)


def make_video(
    path: Path,
    seconds: float = 1.0,
    fps: int = 10,
    size: tuple[int, int] = (160, 96),
    audio: bool = True,
    faststart: bool = False,
) -> Path:
    """A small H.264 clip with a moving square and, if asked, a 440 Hz tone."""
    width, height = size
    n_frames = round(seconds * fps)

    def frames():
        for i in range(n_frames):
            frame = np.full((height, width, 3), 30, np.uint8)
            x = (i * 7) % (width - 16)
            frame[20:36, x : x + 16] = (230, 230, 60)
            yield frame

    sample_rate = 16_000
    tone = None
    if audio:
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    return write_mp4(path, frames(), fps=fps, audio=tone, sample_rate=sample_rate, faststart=faststart)


def step_failure(result: dg.ExecuteInProcessResult) -> str:
    """The error of the run's one failed step (a run with none or several fails the unpacking)."""
    [failure] = [event for event in result.all_events if event.is_step_failure]
    return str(failure.step_failure_data.error)


def materialize_from_stored_parent(
    asset: dg.AssetsDefinition,
    parent: str,
    rows: pl.DataFrame,
    layout: DataLayout,
    resources: dict,
    instance: dg.DagsterInstance,
    run_config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """Channel ch1 of a channel asset, its one parent's table stored beforehand as `rows`."""
    with duckdb.connect(str(layout.duckdb_path)) as con:
        con.register("frame", rows.to_arrow())
        con.execute(f"CREATE TABLE {parent} AS SELECT * FROM frame")
    instance.add_dynamic_partitions("channel", ["ch1"])
    parent_spec = dg.AssetSpec(
        parent, partitions_def=asset.partitions_def, metadata={"partition_expr": "channel"}
    )
    return dg.materialize(
        [parent_spec, asset],
        selection=[asset],
        partition_key="ch1",
        resources=resources,
        instance=instance,
        run_config=run_config,
        raise_on_error=False,
    )


@pytest.fixture
def layout(tmp_path: Path) -> DataLayout:
    root = tmp_path / "data"
    (root / "videos").mkdir(parents=True)
    return DataLayout.at(root)


@pytest.fixture
def resources(layout: DataLayout) -> dict:
    return build_resources(layout)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture(scope="session")
def default_demo_corpus(tmp_path_factory) -> tuple[DataLayout, list[dict]]:
    """The corpus `mednarratives demo` makes: 3 channels x 2 lectures, 1280x720 (about 70 s to make)."""
    if os.environ.get("MEDNARRATIVES_SKIP_DEFAULT_CORPUS") == "1":
        pytest.skip("MEDNARRATIVES_SKIP_DEFAULT_CORPUS=1")
    root = tmp_path_factory.mktemp("default-corpus") / "data"
    layout = DataLayout(root, root / "db.duckdb")
    return layout, generate_corpus(layout, DemoCorpusConfig(), workers=2, log=lambda _: None)


@pytest.fixture(scope="session")
def default_frame_classifier() -> FrameClassifier:
    """The frame classifier that ships with the package (default_models/)."""
    return FrameClassifier.load(shipped_model("frame_classifier"))


@pytest.fixture(scope="session")
def default_cursor_detector() -> CursorDetector:
    """The cursor detector that ships with the package (default_models/)."""
    return CursorDetector.load(shipped_model("cursor_detector"))


@dataclass(frozen=True)
class TracedLecture:
    truth: dict
    chunks: list[dict]  # stable_chunks rows, with absolute keyframe paths
    traced: VideoTrace  # over the medical chunks
    root: Path


@pytest.fixture(scope="session")
def traced_default_corpus(
    default_demo_corpus, default_frame_classifier, default_cursor_detector, tmp_path_factory
) -> list[TracedLecture]:
    """Every lecture of the default corpus through stable_chunks and cursor_traces with the shipped models."""
    layout, entries = default_demo_corpus
    detector = default_cursor_detector
    root = tmp_path_factory.mktemp("traced-corpus")
    lectures = []
    for entry in entries:
        truth = load_truth(layout.data_root / entry["truth"])
        video = layout.data_root / entry["video"]
        rows, _ = chunk_video(
            video,
            root / truth["channel"] / truth["video_id"],
            default_frame_classifier.medical_scores,
            ChunkingSettings(),
            truth["duration_s"],
        )
        rows = [{"channel": truth["channel"], "video_id": truth["video_id"], **row} for row in rows]
        medical = [row for row in rows if row["is_medical"]]
        lectures.append(
            TracedLecture(truth, rows, trace_video(video, medical, root, detector, TraceSettings()), root)
        )
    return lectures
