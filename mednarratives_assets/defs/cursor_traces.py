from collections.abc import Iterator

import dagster as dg
import polars as pl

from mednarratives_assets.defs.checks import OUTSIDE_COLUMNS, outside_their_chunk, rows_check
from mednarratives_assets.defs.configs import config_class, settings_from
from mednarratives_assets.defs.cursor_detector import cursor_detector
from mednarratives_assets.defs.metadata import markdown_preview, png_image
from mednarratives_assets.defs.partitions import channel_asset
from mednarratives_assets.defs.resources import DataPaths, ModelStore
from mednarratives_assets.stages.cursor_traces import TraceSettings, trace_channel

# Trace overlays shown on one materialization; each is an inline PNG of a few tens of kB.
MAX_OVERLAYS = 16


CursorTracesConfig = config_class(TraceSettings, "CursorTracesConfig", "Cursor tracing.")


@channel_asset(
    "cursor",
    deps=[cursor_detector],
    checks={"all_videos_traced": None, "points_inside_their_chunk": None},
    gpu_heavy=True,
)
def cursor_traces(
    context: dg.AssetExecutionContext,
    config: CursorTracesConfig,
    videos: pl.DataFrame,
    stable_chunks: pl.DataFrame,
    paths: DataPaths,
    models: ModelStore,
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
        settings = settings_from(config, TraceSettings)
    except ValueError as exc:
        raise dg.Failure(f"cursor_traces: {exc}") from exc
    detector = models.deferred("cursor_detector", "cursor_traces")
    channel = context.partition_key
    cache = paths.stage_cache(
        "cursor_traces", channel, videos, settings, {"cursor_detector": models.fingerprint("cursor_detector")}
    )
    result = trace_channel(
        layout.data_root,
        channel,
        videos,
        stable_chunks,
        detector,
        settings,
        log=context.log.info,
        cache=cache,
    )
    traces = result.traces
    errors = result.videos.filter(pl.col("status") == "error")
    outside = outside_their_chunk(traces, stable_chunks)
    overlays = {
        f"trace {video_id} #{chunk_index}": png_image(png, f"cursor trace of {video_id} chunk {chunk_index}")
        for (video_id, chunk_index), png in list(result.overlays.items())[:MAX_OVERLAYS]
    }
    n_samples = int(result.videos["n_samples"].sum() or 0)
    yield dg.Output(
        traces,
        metadata={
            "dagster/row_count": traces.height,
            **cache.metadata(),
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
    yield rows_check(
        "all_videos_traced", errors, ["video_id", "reason"], "errors", severity=dg.AssetCheckSeverity.WARN
    )
    yield rows_check(
        "points_inside_their_chunk",
        outside,
        OUTSIDE_COLUMNS,
        "outside",
    )
