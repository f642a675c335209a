from collections.abc import Iterator

import dagster as dg
import polars as pl

from mednarratives_assets.defs.checks import rows_check
from mednarratives_assets.defs.configs import config_class, settings_from
from mednarratives_assets.defs.metadata import markdown_preview, png_image
from mednarratives_assets.defs.partitions import channel_asset
from mednarratives_assets.defs.resources import DataPaths
from mednarratives_assets.stages.boxes import BoxSettings, box_channel, boxes_png

MAX_PICTURES = 16  # box pictures shown on one materialization, each a small inline PNG
NORMALIZED = ["x1_norm", "y1_norm", "x2_norm", "y2_norm"]


BoxesConfig = config_class(BoxSettings, "BoxesConfig", "Dwell detection and boxing.")


@channel_asset(
    "narratives",
    checks={"boxes_inside_the_image": "Normalized box corners lie in [0, 1] of the pair's image."},
)
def boxes(
    context: dg.AssetExecutionContext,
    config: BoxesConfig,
    videos: pl.DataFrame,
    stable_chunks: pl.DataFrame,
    cursor_traces: pl.DataFrame,
    transcript_words: pl.DataFrame,
    paths: DataPaths,
) -> Iterator:
    """Where the pointer dwelt on each medical image, boxed, with the phrase said meanwhile.

    Dwells are found in time, stray points dropped, and each box sized by the image structure
    under the pointer (see stages/boxes.py). Table `boxes`, documented in docs/schema.md; corners
    in frame pixels and as fractions of the image region.
    """
    try:
        settings = settings_from(config, BoxSettings)
    except ValueError as exc:
        raise dg.Failure(f"boxes: {exc}") from exc
    data_root = paths.layout.data_root
    cache = paths.stage_cache("boxes", context.partition_key, videos, settings)
    table = box_channel(
        data_root,
        stable_chunks,
        cursor_traces,
        transcript_words,
        settings,
        log=context.log.warning,
        cache=cache,
    )
    context.log.info(f"channel {context.partition_key!r}: {cache.summary()}")
    outside = table.filter(pl.any_horizontal([~pl.col(c).is_between(0.0, 1.0) for c in NORMALIZED]))
    pictures = {
        f"boxes {video_id} #{chunk_index}": png_image(png, f"boxes of {video_id} chunk {chunk_index}")
        for (video_id, chunk_index), png in boxes_png(data_root, stable_chunks, table, MAX_PICTURES).items()
    }
    yield dg.Output(
        table,
        metadata={
            "dagster/row_count": table.height,
            **cache.metadata(),
            "n_chunks_with_boxes": table.select("video_id", "chunk_index").unique().height,
            "boxes": markdown_preview(
                table.with_columns(pl.col(NORMALIZED).round(3)),
                ["video_id", "chunk_index", "box_index", *NORMALIZED, "start_s", "end_s", "phrase"],
            ),
            **pictures,
        },
    )
    yield rows_check("boxes_inside_the_image", outside, ["video_id", "chunk_index", *NORMALIZED], "outside")
