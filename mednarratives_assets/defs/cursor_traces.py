from collections.abc import Iterator

import dagster as dg
import polars as pl

from mednarratives_assets.defs.cursor_detector import cursor_detector
from mednarratives_assets.defs.metadata import markdown_preview, png_image
from mednarratives_assets.defs.partitions import channel_partitions
from mednarratives_assets.defs.resources import DUCKDB_POOL, DataPaths
from mednarratives_assets.stages.cursor_detector import CursorDetector
from mednarratives_assets.stages.cursor_traces import TraceSettings, trace_channel

DEFAULTS = TraceSettings()
# Trace overlays shown on one materialization; each is an inline PNG of a few tens of kB.
MAX_OVERLAYS = 16


class CursorTracesConfig(dg.Config):
    """Cursor tracing; see TraceSettings in stages/cursor_traces.py for each setting."""

    sample_hz: float = DEFAULTS.sample_hz
    diff_threshold: int = DEFAULTS.diff_threshold
    min_blob_px: int = DEFAULTS.min_blob_px
    max_blob_side_px: int = DEFAULTS.max_blob_side_px
    max_candidates: int = DEFAULTS.max_candidates
    outlier_px: float = DEFAULTS.outlier_px
    jitter_px: float = DEFAULTS.jitter_px
    min_lone_confidence: float = DEFAULTS.min_lone_confidence
    confirm_min_confidence: float = DEFAULTS.confirm_min_confidence


def _outside_their_chunk(traces: pl.DataFrame, chunks: pl.DataFrame) -> pl.DataFrame:
    """Trace points whose time lies outside the span of the chunk they belong to."""
    spans = chunks.select("video_id", "chunk_index", "start_s", "end_s")
    joined = traces.join(spans, on=["video_id", "chunk_index"], how="left")
    return joined.filter(~pl.col("t_s").is_between(pl.col("start_s"), pl.col("end_s")).fill_null(False))


@dg.asset(
    partitions_def=channel_partitions,
    ins={"videos": dg.AssetIn(), "stable_chunks": dg.AssetIn()},
    deps=[cursor_detector],
    metadata={"partition_expr": "channel"},
    pool=DUCKDB_POOL,
    kinds={"duckdb", "polars"},
    group_name="cursor",
    check_specs=[
        dg.AssetCheckSpec("all_videos_traced", asset="cursor_traces", partitions_def=channel_partitions),
        dg.AssetCheckSpec(
            "points_inside_their_chunk", asset="cursor_traces", partitions_def=channel_partitions
        ),
    ],
)
def cursor_traces(
    context: dg.AssetExecutionContext,
    config: CursorTracesConfig,
    videos: pl.DataFrame,
    stable_chunks: pl.DataFrame,
    paths: DataPaths,
) -> Iterator:
    """The pointer's hotspot through every medical chunk, `sample_hz` times a second, with gaps where
    no pointer shows.

    Candidates come from differencing each frame against the chunk's median keyframe; the
    cursor_detector confirms them and finds a pointer parked in the keyframe. Points are in frame
    pixels and normalized to the keyframe's medical image region. Table `cursor_traces`,
    documented in docs/schema.md; one overlay PNG per chunk in the metadata.
    """
    layout = paths.layout
    try:
        settings = TraceSettings(**config.model_dump()).validated()
        detector = CursorDetector.load(layout.cursor_detector_path)
    except FileNotFoundError as exc:
        raise dg.Failure(
            f"cursor_traces needs a trained cursor detector: materialize cursor_detector ({exc})"
        ) from exc
    except ValueError as exc:
        raise dg.Failure(f"cursor_traces: {exc}") from exc
    result = trace_channel(
        layout.data_root,
        context.partition_key,
        videos,
        stable_chunks,
        detector,
        settings,
        log=context.log.info,
    )
    traces = result.traces
    errors = result.videos.filter(pl.col("status") == "error")
    outside = _outside_their_chunk(traces, stable_chunks)
    overlays = {
        f"trace {video_id} #{chunk_index}": png_image(png, f"cursor trace of {video_id} chunk {chunk_index}")
        for (video_id, chunk_index), png in list(result.overlays.items())[:MAX_OVERLAYS]
    }
    n_samples = int(result.videos["n_samples"].sum() or 0)
    yield dg.Output(
        traces,
        metadata={
            "dagster/row_count": traces.height,
            "n_samples": n_samples,
            "share_of_samples_with_pointer": round(traces.height / max(n_samples, 1), 3),
            "points_by_method": {m: int(n) for m, n in traces["method"].value_counts().iter_rows()},
            "share_inside_image": round(float(traces["inside_image"].mean() or 0.0), 3),
            "videos": markdown_preview(result.videos, list(result.videos.columns)),
            "points": markdown_preview(
                traces.with_columns(pl.col("x_px", "y_px", "x_norm", "y_norm", "confidence").round(3)),
                [
                    "video_id",
                    "chunk_index",
                    "t_s",
                    "x_px",
                    "y_px",
                    "x_norm",
                    "y_norm",
                    "confidence",
                    "method",
                ],
            ),
            **overlays,
        },
    )
    yield dg.AssetCheckResult(
        check_name="all_videos_traced",
        passed=errors.is_empty(),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"n_errors": errors.height, "errors": markdown_preview(errors, ["video_id", "reason"])},
    )
    yield dg.AssetCheckResult(
        check_name="points_inside_their_chunk",
        passed=outside.is_empty(),
        metadata={
            "n_outside": outside.height,
            "outside": markdown_preview(outside, ["video_id", "chunk_index", "t_s", "start_s", "end_s"]),
        },
    )
