"""The Dagster code location: `dagster dev -w workspace.yaml` loads `defs` from here."""

import dagster as dg

from mednarratives_assets.defs.aligned_pairs import aligned_pairs
from mednarratives_assets.defs.benchmark_scores import benchmark_scores
from mednarratives_assets.defs.boxes import boxes
from mednarratives_assets.defs.cursor_detector import cursor_detector
from mednarratives_assets.defs.cursor_traces import cursor_traces
from mednarratives_assets.defs.dataset_export import dataset_export
from mednarratives_assets.defs.frame_classifier import frame_classifier
from mednarratives_assets.defs.genmedclip_model import genmedclip_model, genmedclip_no_dense_model
from mednarratives_assets.defs.jobs import (
    channel_pipeline_job,
    cursor_detector_job,
    frame_classifier_job,
    genmedclip_job,
    ingest_job,
)
from mednarratives_assets.defs.narratives import narratives
from mednarratives_assets.defs.resources import build_resources
from mednarratives_assets.defs.sensors import new_video_sensor
from mednarratives_assets.defs.stable_chunks import stable_chunks
from mednarratives_assets.defs.transcripts import transcripts
from mednarratives_assets.defs.video_downloads import video_downloads
from mednarratives_assets.defs.videos import videos
from mednarratives_assets.settings import DataLayout


def build_definitions(layout: DataLayout) -> dg.Definitions:
    """Everything Dagster shows, bound to one data root."""
    return dg.Definitions(
        assets=[
            video_downloads,
            videos,
            transcripts,
            frame_classifier,
            stable_chunks,
            cursor_detector,
            cursor_traces,
            narratives,
            boxes,
            aligned_pairs,
            dataset_export,
            genmedclip_model,
            genmedclip_no_dense_model,
            benchmark_scores,
        ],
        jobs=[ingest_job, channel_pipeline_job, frame_classifier_job, cursor_detector_job, genmedclip_job],
        sensors=[new_video_sensor],
        resources=build_resources(layout),
    )


defs = build_definitions(DataLayout.from_env())
